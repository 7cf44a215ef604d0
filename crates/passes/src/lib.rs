//! Rewriting passes (blinding, zext, dce, fixups, ctx, lower-v4) on the patching engine
#![deny(missing_docs)]
