//! Linear-time list-based patching of eBPF programs with side tables, and the kernel reference algorithm
#![deny(missing_docs)]
