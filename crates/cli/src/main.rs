//! The `bpfpatch` command.
fn main() {}
