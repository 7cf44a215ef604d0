//! The `bpf()` commands when the crate is built without the `libbpf` feature: every call fails
//! with ENOSYS, and [`crate::load`] and [`crate::available`] say so before reaching them.

use bpfpatch_insn::Insn;
use std::ffi::CStr;
use std::os::fd::{BorrowedFd, OwnedFd};

/// ENOSYS, negated as the kernel's calls return it.
const NO_BPF: i32 = -38;

/// What `bpf_prog_load` needs besides the instructions.
pub(crate) struct LoadAttr<'a> {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub prog_flags: u32,
    pub name: &'a CStr,
    pub license: &'a CStr,
    pub log_level: u32,
}

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

/// The fields of `bpf_prog_info` the crate reads.
#[derive(Debug, Default)]
pub(crate) struct ProgInfo {
    pub id: u32,
    pub verified_insns: u32,
    pub xlated: Option<Vec<u8>>,
    pub jited_len: u32,
}

/// Always ENOSYS.
pub(crate) fn prog_info(fd: BorrowedFd<'_>, xlated: bool) -> Result<ProgInfo, i32> {
    let _ = (fd, xlated);
    Err(NO_BPF)
}
