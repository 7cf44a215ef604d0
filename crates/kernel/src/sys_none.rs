//! The `bpf()` commands when the crate is built without the `libbpf` feature: every call fails
//! with ENOSYS, and [`crate::load`] and [`crate::available`] say so before reaching them.

pub(crate) use crate::attr::{LoadAttr, ProgInfo};
use bpfpatch_insn::Insn;
use std::os::fd::{BorrowedFd, OwnedFd};

/// ENOSYS, negated as the kernel's calls return it.
const NO_BPF: i32 = -38;

/// Always ENOSYS.
pub(crate) fn prog_load(attr: &LoadAttr<'_>, insns: &[Insn], log: &mut [u8]) -> Result<OwnedFd, i32> {
    let _ = (attr.prog_type, attr.expected_attach_type, attr.prog_flags, attr.name, attr.license, attr.log_level);
    let _ = (insns, log);
    Err(NO_BPF)
}

/// Always ENOSYS.
pub(crate) fn test_run(fd: BorrowedFd<'_>, data: &[u8], repeat: u32) -> Result<(u32, u32), i32> {
    let _ = (fd, data, repeat);
    Err(NO_BPF)
}

/// Always ENOSYS.
pub(crate) fn prog_info(fd: BorrowedFd<'_>, xlated: bool) -> Result<ProgInfo, i32> {
    let _ = (fd, xlated);
    Err(NO_BPF)
}
