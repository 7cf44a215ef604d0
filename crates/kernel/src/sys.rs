//! The only `unsafe` of the workspace's kernel access: three `bpf()` commands through libbpf's
//! C API (libbpf-sys), each wrapped in a safe function over owned buffers.
//!
//! Why not a safe API: libbpf-rs 0.27 loads programs only from ELF objects (its docs list the
//! low-level `bpf_prog_load` as "superseded by the object API"), and its `test_run` and
//! `ProgramInfo` work on programs of an `Object` (`ProgramInfo::load_from_fd` is private). An
//! in-memory ELF loaded through the object API would let libbpf re-lay the code (it appends and
//! reorders bpf-to-bpf subprograms, rewrites relocated instructions), so the kernel would not see
//! the exact instruction array under test. aya has no raw-instruction load or test run either.
//!
//! Every pointer handed to the kernel points into a slice or struct that outlives the call, with
//! its length taken from the same slice; every returned fd is wrapped in an [`OwnedFd`] at once,
//! so it is closed on drop.
#![allow(unsafe_code)]

pub(crate) use crate::attr::{LoadAttr, ProgInfo};
use bpfpatch_insn::Insn;
use libbpf_sys as sys;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn to_sys(i: &Insn) -> sys::bpf_insn {
    sys::bpf_insn {
        code: i.code,
        _bitfield_align_1: [],
        _bitfield_1: sys::bpf_insn::new_bitfield_1(i.dst(), i.src()),
        off: i.off,
        imm: i.imm,
    }
}

/// `BPF_PROG_LOAD`: the program's fd, or the negative errno. `log` receives the verifier's log
/// (NUL-terminated; empty slice: no log). libbpf retries once with log level 1 when a load with
/// level 0 and a buffer fails, so a rejection always comes with its reason.
pub(crate) fn prog_load(attr: &LoadAttr<'_>, insns: &[Insn], log: &mut [u8]) -> Result<OwnedFd, i32> {
    let raw: Vec<sys::bpf_insn> = insns.iter().map(to_sys).collect();
    let log_size = u32::try_from(log.len()).unwrap_or(u32::MAX);
    let mut opts = sys::bpf_prog_load_opts {
        sz: size_of::<sys::bpf_prog_load_opts>() as sys::size_t,
        expected_attach_type: attr.expected_attach_type,
        prog_flags: attr.prog_flags,
        log_level: if log.is_empty() { 0 } else { attr.log_level },
        log_size: if log.is_empty() { 0 } else { log_size },
        log_buf: if log.is_empty() { std::ptr::null_mut() } else { log.as_mut_ptr().cast() },
        ..Default::default()
    };
    // SAFETY: `name`, `license` are NUL-terminated and live through the call; `raw` holds
    // `raw.len()` instructions; `opts.sz` is the size of `opts`; the log buffer is `log_size`
    // writable bytes of `log`, which outlives the call.
    let fd = unsafe {
        sys::bpf_prog_load(
            attr.prog_type,
            attr.name.as_ptr(),
            attr.license.as_ptr(),
            raw.as_ptr(),
            raw.len() as sys::size_t,
            &mut opts,
        )
    };
    if fd < 0 {
        return Err(fd);
    }
    // SAFETY: a non-negative return of bpf_prog_load is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_PROG_TEST_RUN` with `data` as the packet: `(retval, duration in ns)` or the negative
/// errno.
pub(crate) fn test_run(fd: BorrowedFd<'_>, data: &[u8], repeat: u32) -> Result<(u32, u32), i32> {
    let mut opts = sys::bpf_test_run_opts {
        sz: size_of::<sys::bpf_test_run_opts>() as sys::size_t,
        data_in: data.as_ptr().cast(),
        data_size_in: u32::try_from(data.len()).map_err(|_| -libc_e2big())?,
        repeat: i32::try_from(repeat).unwrap_or(i32::MAX),
        ..Default::default()
    };
    // SAFETY: `data_in` points to `data_size_in` readable bytes of `data`, alive through the
    // call; no output buffers are given; `opts.sz` is its size; `fd` is a live program fd.
    let rc = unsafe { sys::bpf_prog_test_run_opts(fd.as_raw_fd(), &mut opts) };
    if rc < 0 {
        return Err(rc);
    }
    Ok((opts.retval, opts.duration))
}

const fn libc_e2big() -> i32 {
    7
}

#[allow(clippy::cast_possible_truncation)] // a few hundred bytes
const INFO_LEN: u32 = size_of::<sys::bpf_prog_info>() as u32;

/// `BPF_OBJ_GET_INFO_BY_FD`, twice: once for the lengths, once with a buffer for the xlated
/// image (when `xlated`).
pub(crate) fn prog_info(fd: BorrowedFd<'_>, xlated: bool) -> Result<ProgInfo, i32> {
    let mut info = sys::bpf_prog_info::default();
    let mut len = INFO_LEN;
    // SAFETY: `info` is a zeroed bpf_prog_info of `len` bytes; no output arrays are requested.
    let rc = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if rc < 0 {
        return Err(rc);
    }
    let mut out =
        ProgInfo { id: info.id, verified_insns: info.verified_insns, jited_len: info.jited_prog_len, xlated: None };
    if !xlated || info.xlated_prog_len == 0 {
        return Ok(out);
    }
    let mut buf = vec![0u8; info.xlated_prog_len as usize];
    let mut second = sys::bpf_prog_info {
        xlated_prog_len: info.xlated_prog_len,
        xlated_prog_insns: buf.as_mut_ptr() as u64,
        ..Default::default()
    };
    let mut len = INFO_LEN;
    // SAFETY: the only output array requested is `xlated_prog_insns`, `buf`, of exactly
    // `xlated_prog_len` writable bytes, alive through the call.
    let rc = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut second, &mut len) };
    if rc < 0 {
        return Err(rc);
    }
    // The kernel reports the full length and fills at most the buffer; the program cannot change.
    buf.truncate((second.xlated_prog_len as usize).min(buf.len()));
    // Zero: the kernel withheld the image (bpf_dump_raw_ok: kptr_restrict for this credential).
    out.xlated = (second.xlated_prog_insns != 0).then_some(buf);
    Ok(out)
}
