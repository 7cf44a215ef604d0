//! Reference interpreter of the full RFC 9669 instruction set, and the conformance runner
#![deny(missing_docs)]
