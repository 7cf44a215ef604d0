//! What the `bpf()` commands of `sys` take and give, shared by the libbpf implementation and
//! the stub of a build without it.

use std::ffi::CStr;

/// What `bpf_prog_load` needs besides the instructions.
pub(crate) struct LoadAttr<'a> {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub prog_flags: u32,
    pub name: &'a CStr,
    pub license: &'a CStr,
    pub log_level: u32,
}

/// The fields of `bpf_prog_info` this crate reads.
#[derive(Debug, Default)]
pub(crate) struct ProgInfo {
    pub id: u32,
    pub verified_insns: u32,
    /// `None` when the kernel withheld the image from this credential (`bpf_dump_raw_ok`).
    pub xlated: Option<Vec<u8>>,
    pub jited_len: u32,
}
