//! The running kernel as the judge: load a raw eBPF instruction array through the kernel's
//! verifier and JIT, run it with `BPF_PROG_TEST_RUN`, and read back the kernel's translated
//! ("xlated") image and the verifier's statistics.
//!
//! ```no_run
//! use bpfpatch_insn::{Insn, opcode as c};
//! use bpfpatch_kernel::{LoadOptions, ProgType, available, load};
//!
//! available()?; // Err(Reason) where bpf() is not permitted
//! let prog = [Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 7), Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0)];
//! let loaded = load(ProgType::SocketFilter, &prog, &LoadOptions::default())?;
//! assert_eq!(loaded.test_run(&[0u8; 64])?, 7);
//! println!("{} xlated slots, {:?}", loaded.xlated()?.len(), loaded.stats());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crates and `unsafe`
//! Raw programs go through libbpf's C API (crate `libbpf-sys`, the FFI layer of libbpf-rs): the
//! three calls that no safe API offers (program load, test run, program info) are wrapped in one
//! private module, `sys`, the only place with `#[allow(unsafe_code)]`; its docs say why
//! libbpf-rs's safe API (which loads ELF objects only) and aya do not fit. ELF objects are
//! loaded through libbpf-rs's safe object API ([`object::load_object`]), which creates the maps
//! the object declares and relocates its programs as veristat does.
//!
//! # Rules kept
//! Nothing is attached or pinned and no sysctl is touched; every program fd is an
//! [`OwnedFd`] closed on drop. Where `bpf()` is not permitted, every entry point returns
//! [`KernelError::NotPermitted`] (and [`available`] a [`Reason`]), never a silent success.
#![deny(missing_docs)]

mod attr;
pub mod object;
#[cfg(feature = "libbpf")]
mod sys;
#[cfg(not(feature = "libbpf"))]
#[path = "sys_none.rs"]
mod sys;
pub mod xlated;

use bpfpatch_insn::{Endian, Insn, slots_from_bytes};
use core::fmt;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// A kernel program type (`enum bpf_prog_type`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum ProgType {
    /// `BPF_PROG_TYPE_SOCKET_FILTER`: takes an skb; test-runs on a packet.
    SocketFilter,
    /// `BPF_PROG_TYPE_KPROBE`.
    Kprobe,
    /// `BPF_PROG_TYPE_SCHED_CLS` (tc): test-runs on a packet.
    SchedCls,
    /// `BPF_PROG_TYPE_SCHED_ACT`: test-runs on a packet.
    SchedAct,
    /// `BPF_PROG_TYPE_TRACEPOINT`.
    Tracepoint,
    /// `BPF_PROG_TYPE_XDP`: test-runs on a packet.
    Xdp,
    /// `BPF_PROG_TYPE_PERF_EVENT`.
    PerfEvent,
    /// `BPF_PROG_TYPE_CGROUP_SKB`: test-runs on a packet.
    CgroupSkb,
    /// Any other type, by number.
    Other(u32),
}

impl ProgType {
    /// The kernel's number of this type.
    #[must_use]
    pub fn id(self) -> u32 {
        match self {
            ProgType::SocketFilter => 1,
            ProgType::Kprobe => 2,
            ProgType::SchedCls => 3,
            ProgType::SchedAct => 4,
            ProgType::Tracepoint => 5,
            ProgType::Xdp => 6,
            ProgType::PerfEvent => 7,
            ProgType::CgroupSkb => 8,
            ProgType::Other(n) => n,
        }
    }

    /// The type of number `id`.
    #[must_use]
    pub fn from_id(id: u32) -> ProgType {
        match id {
            1 => ProgType::SocketFilter,
            2 => ProgType::Kprobe,
            3 => ProgType::SchedCls,
            4 => ProgType::SchedAct,
            5 => ProgType::Tracepoint,
            6 => ProgType::Xdp,
            7 => ProgType::PerfEvent,
            8 => ProgType::CgroupSkb,
            n => ProgType::Other(n),
        }
    }

    /// Whether `BPF_PROG_TEST_RUN` runs this type on a packet (skb and xdp programs).
    #[must_use]
    pub fn runs_on_packet(self) -> bool {
        matches!(
            self,
            ProgType::SocketFilter | ProgType::SchedCls | ProgType::SchedAct | ProgType::Xdp | ProgType::CgroupSkb
        )
    }
}

impl fmt::Display for ProgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgType::SocketFilter => f.write_str("socket_filter"),
            ProgType::Kprobe => f.write_str("kprobe"),
            ProgType::SchedCls => f.write_str("sched_cls"),
            ProgType::SchedAct => f.write_str("sched_act"),
            ProgType::Tracepoint => f.write_str("tracepoint"),
            ProgType::Xdp => f.write_str("xdp"),
            ProgType::PerfEvent => f.write_str("perf_event"),
            ProgType::CgroupSkb => f.write_str("cgroup_skb"),
            ProgType::Other(n) => write!(f, "prog_type {n}"),
        }
    }
}

/// An errno from a `bpf()` command, printed by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Errno(pub i32);

impl Errno {
    fn from_ret(ret: i32) -> Errno {
        Errno(ret.saturating_neg())
    }

    /// Whether this errno means the caller may not use `bpf()` (EPERM).
    #[must_use]
    pub fn is_permission(self) -> bool {
        self.0 == 1
    }

    /// The symbolic name, when known.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            7 => "E2BIG",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            16 => "EBUSY",
            22 => "EINVAL",
            28 => "ENOSPC",
            38 => "ENOSYS",
            95 => "EOPNOTSUPP",
            524 => "ENOTSUPP",
            _ => return None,
        })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// What failed, and where.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// This build has no kernel access (the crate's `libbpf` feature, the CLI's `kernel`).
    #[error("bpfpatch was built without kernel access: rebuild with `--features kernel` (needs libelf-dev)")]
    NotBuilt,
    /// `bpf()` is not permitted to this process (no CAP_BPF, seccomp, a container's policy).
    #[error("bpf({op}) is not permitted: {errno} (needs CAP_BPF, or root)")]
    NotPermitted {
        /// The command.
        op: &'static str,
        /// The errno.
        errno: Errno,
    },
    /// The verifier rejected the program.
    #[error("the verifier rejected the {prog_type} program ({errno}): {error_line}")]
    Rejected {
        /// The program type it was loaded as.
        prog_type: ProgType,
        /// The errno of `BPF_PROG_LOAD`.
        errno: Errno,
        /// The verifier's first error line (see [`error_line`]).
        error_line: String,
        /// The whole verifier log (its tail when the kernel truncated it).
        log: String,
    },
    /// A `bpf()` command failed otherwise.
    #[error("bpf({op}) failed: {errno}")]
    Syscall {
        /// The command.
        op: &'static str,
        /// The errno.
        errno: Errno,
    },
    /// The program has no instruction, or more than the kernel's `u32` count.
    #[error("cannot load a program of {len} instructions")]
    BadLength {
        /// The number of slots given.
        len: usize,
    },
    /// A string given to the kernel (license, name) holds a NUL byte.
    #[error("the {what} holds a NUL byte")]
    NulInString {
        /// Which string.
        what: &'static str,
    },
    /// The kernel withheld the xlated image from this process (`kptr_restrict`).
    #[error("the kernel withheld the xlated image of program {id} (kernel.kptr_restrict for this credential)")]
    XlatedWithheld {
        /// The program's id.
        id: u32,
    },
    /// The xlated image is not a whole number of instructions.
    #[error("the xlated image of program {id} has {len} bytes, not a multiple of 8")]
    XlatedLength {
        /// The program's id.
        id: u32,
        /// Its length in bytes.
        len: usize,
    },
    /// An ELF object could not be opened or loaded by libbpf.
    #[error("{stage} of {what} failed: {message}")]
    Object {
        /// `open` or `load`.
        stage: &'static str,
        /// The object, or object and program.
        what: String,
        /// libbpf's error and its last warning line.
        message: String,
    },
}

impl KernelError {
    /// Whether this is [`KernelError::NotPermitted`].
    #[must_use]
    pub fn is_not_permitted(&self) -> bool {
        matches!(self, KernelError::NotPermitted { .. })
    }

    fn syscall(op: &'static str, ret: i32) -> KernelError {
        let errno = Errno::from_ret(ret);
        if errno.is_permission() { KernelError::NotPermitted { op, errno } } else { KernelError::Syscall { op, errno } }
    }
}

/// Why [`available`] says `bpf()` cannot be used.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Reason {
    /// This build has no kernel access (the crate's `libbpf` feature, the CLI's `kernel`).
    #[error("bpfpatch was built without kernel access: rebuild with `--features kernel` (needs libelf-dev)")]
    NotBuilt,
    /// `bpf()` returned EPERM.
    #[error("bpf() is not permitted ({0}): run as root or with CAP_BPF")]
    NotPermitted(Errno),
    /// The kernel has no `bpf()` (ENOSYS) or refuses the probe program's type.
    #[error("bpf() is not supported by this kernel ({0})")]
    NotSupported(Errno),
    /// The probe failed otherwise.
    #[error("the bpf() probe failed: {0}")]
    Failed(String),
}

/// Probes whether programs can be loaded and run: loads `r0 = 0; exit` as a socket filter and
/// test-runs it once.
///
/// # Errors
/// The [`Reason`] it cannot.
pub fn available() -> Result<(), Reason> {
    if !cfg!(feature = "libbpf") {
        return Err(Reason::NotBuilt);
    }
    let prog = [Insn::new(0xb7, 0, 0, 0, 0), Insn::new(0x95, 0, 0, 0, 0)];
    let to_reason = |e: KernelError| match e {
        KernelError::NotPermitted { errno, .. } => Reason::NotPermitted(errno),
        KernelError::Syscall { errno, .. } if matches!(errno.0, 38 | 22) => Reason::NotSupported(errno),
        e => Reason::Failed(e.to_string()),
    };
    let loaded = load(ProgType::SocketFilter, &prog, &LoadOptions::default()).map_err(to_reason)?;
    match loaded.test_run(&[0u8; 64]).map_err(to_reason)? {
        0 => Ok(()),
        r => Err(Reason::Failed(format!("the probe returned {r}, not 0"))),
    }
}

/// Options of [`load`].
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The license string (default `GPL`, which every helper accepts).
    pub license: String,
    /// The program name the kernel shows (at most 15 bytes are kept; default `bpfpatch`).
    pub name: String,
    /// `expected_attach_type` (default 0).
    pub expected_attach_type: u32,
    /// `prog_flags` (default 0).
    pub prog_flags: u32,
    /// The size of the log buffer of a rejected program's second load, which collects the
    /// verifier's reason (default 16 MiB; the kernel keeps the tail of a longer log).
    pub log_size: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            license: "GPL".into(),
            name: "bpfpatch".into(),
            expected_attach_type: 0,
            prog_flags: 0,
            log_size: 16 << 20,
        }
    }
}

impl LoadOptions {
    /// These options with another license.
    #[must_use]
    pub fn with_license(mut self, license: &str) -> Self {
        self.license = license.into();
        self
    }

    /// These options with another program name.
    #[must_use]
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
}

/// The verifier's and the kernel's numbers for a loaded program.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    /// `processed N insns` of the verifier's statistics, when the log had it.
    pub processed_insns: Option<u32>,
    /// `bpf_prog_info.verified_insns` (kernels 5.16+; `None` when 0).
    pub verified_insns: Option<u32>,
    /// `verification time N usec` of the verifier's statistics, when the log had it.
    pub verification_time: Option<Duration>,
    /// Instructions in the xlated image.
    pub xlated_len: usize,
    /// Bytes of JITed code (0 when not JITed).
    pub jited_len: usize,
    /// Wall time of the `BPF_PROG_LOAD` call (verification, fixups, JIT).
    pub load_time: Duration,
}

/// A loaded program. Its fd is closed on drop; it is never attached or pinned.
#[derive(Debug)]
pub struct Loaded {
    fd: OwnedFd,
    id: u32,
    prog_type: ProgType,
    stats: Stats,
    log: String,
}

/// The byte order of the kernel's instruction images.
const HOST_ENDIAN: Endian = if cfg!(target_endian = "big") { Endian::Big } else { Endian::Little };

/// `BPF_LOG_STATS`: the statistics lines only (a few hundred bytes).
const LOG_STATS: u32 = 4;
/// `BPF_LOG_LEVEL1`: the verifier's trace and its error.
const LOG_LEVEL1: u32 = 1;

fn log_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Loads `insns` as a `prog_type` program through the verifier and JIT.
///
/// The first load asks for the verifier's statistics only; when it fails, a second load with
/// the full log (level 1 and statistics) collects the reason.
///
/// # Errors
/// [`KernelError::Rejected`] with the verifier's log, [`KernelError::NotPermitted`],
/// [`KernelError::BadLength`], [`KernelError::NulInString`], or [`KernelError::Syscall`].
pub fn load(prog_type: ProgType, insns: &[Insn], opts: &LoadOptions) -> Result<Loaded, KernelError> {
    if !cfg!(feature = "libbpf") {
        return Err(KernelError::NotBuilt);
    }
    if insns.is_empty() || u32::try_from(insns.len()).is_err() {
        return Err(KernelError::BadLength { len: insns.len() });
    }
    let license = CString::new(opts.license.as_str()).map_err(|_| KernelError::NulInString { what: "license" })?;
    let name: String =
        opts.name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.').take(15).collect();
    let name = CString::new(name).map_err(|_| KernelError::NulInString { what: "program name" })?;
    let mut attr = sys::LoadAttr {
        prog_type: prog_type.id(),
        expected_attach_type: opts.expected_attach_type,
        prog_flags: opts.prog_flags,
        name: &name,
        license: &license,
        log_level: LOG_STATS,
    };
    let mut log = vec![0u8; 64 << 10];
    let t0 = Instant::now();
    let first = sys::prog_load(&attr, insns, &mut log);
    let load_time = t0.elapsed();
    let fd = match first {
        Ok(fd) => fd,
        Err(ret) if Errno::from_ret(ret).is_permission() => return Err(KernelError::syscall("BPF_PROG_LOAD", ret)),
        Err(_) => {
            attr.log_level = LOG_LEVEL1 | LOG_STATS;
            let mut log = vec![0u8; opts.log_size.max(4096)];
            match sys::prog_load(&attr, insns, &mut log) {
                Ok(fd) => fd, // accepted the second time: keep it (its log is the long one)
                Err(ret) => {
                    let errno = Errno::from_ret(ret);
                    if errno.is_permission() {
                        return Err(KernelError::NotPermitted { op: "BPF_PROG_LOAD", errno });
                    }
                    let log = log_text(&log);
                    return Err(KernelError::Rejected { prog_type, errno, error_line: error_line(&log), log });
                }
            }
        }
    };
    let log = log_text(&log);
    let info = sys::prog_info(fd.as_fd(), false).map_err(|r| KernelError::syscall("BPF_OBJ_GET_INFO_BY_FD", r))?;
    let mut stats = parse_stats(&log);
    stats.verified_insns = (info.verified_insns != 0).then_some(info.verified_insns);
    stats.jited_len = info.jited_len as usize;
    stats.load_time = load_time;
    let mut loaded = Loaded { fd, id: info.id, prog_type, stats, log };
    loaded.stats.xlated_len = loaded.xlated().map_or(0, |x| x.len());
    Ok(loaded)
}

impl Loaded {
    /// Runs the program once with `data` as its packet (`BPF_PROG_TEST_RUN`): its 32-bit return
    /// value. skb and xdp programs need at least 14 bytes (an Ethernet header).
    ///
    /// # Errors
    /// [`KernelError::Syscall`] (`EINVAL` for a type that cannot be test-run or too short a
    /// packet), [`KernelError::NotPermitted`].
    pub fn test_run(&self, data: &[u8]) -> Result<u32, KernelError> {
        sys::test_run(self.fd.as_fd(), data, 1)
            .map(|(r, _)| r)
            .map_err(|r| KernelError::syscall("BPF_PROG_TEST_RUN", r))
    }

    /// The kernel's translated image, read back (`bpf_prog_info.xlated_prog_insns`, as
    /// `bpf_insn_prepare_dump` presents it: helper calls keep their fixed-up `imm`, map
    /// references become `src = PSEUDO_MAP_*` with the map id, bpf-to-bpf calls hold the callee's
    /// subprogram index in `imm`).
    ///
    /// # Errors
    /// [`KernelError::XlatedWithheld`], [`KernelError::XlatedLength`], [`KernelError::Syscall`].
    pub fn xlated(&self) -> Result<Vec<Insn>, KernelError> {
        let info =
            sys::prog_info(self.fd.as_fd(), true).map_err(|r| KernelError::syscall("BPF_OBJ_GET_INFO_BY_FD", r))?;
        let bytes = info.xlated.ok_or(KernelError::XlatedWithheld { id: self.id })?;
        slots_from_bytes(&bytes, HOST_ENDIAN).map_err(|_| KernelError::XlatedLength { id: self.id, len: bytes.len() })
    }

    /// The verifier's and the kernel's numbers.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The verifier's log of the accepted load (its statistics lines).
    #[must_use]
    pub fn verifier_log(&self) -> &str {
        &self.log
    }

    /// The kernel's id of the program.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The type it was loaded as.
    #[must_use]
    pub fn prog_type(&self) -> ProgType {
        self.prog_type
    }

    /// The program's fd (closed when `self` drops).
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn is_stats_line(l: &str) -> bool {
    const STATS: [&str; 6] =
        ["processed ", "verification time", "stack depth", "max_states_per_insn", "peak_states", "mark_read"];
    STATS.iter().any(|p| l.starts_with(p))
}

/// The verifier's reason in a log: the last line that is neither a statistics line
/// (`processed N insns ...`, `verification time ...`, `stack depth ...`) nor libbpf's
/// framing; `(empty verifier log)` when there is none.
#[must_use]
pub fn error_line(log: &str) -> String {
    log.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !is_stats_line(l) && !l.contains("PROG LOAD LOG --"))
        .map_or_else(|| "(empty verifier log)".to_string(), str::to_string)
}

/// `processed N insns` and `verification time N usec` of a statistics log.
fn parse_stats(log: &str) -> Stats {
    let mut s = Stats::default();
    for l in log.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("processed ") {
            s.processed_insns = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(rest) = l.strip_prefix("verification time ") {
            s.verification_time =
                rest.split_whitespace().next().and_then(|n| n.parse().ok()).map(Duration::from_micros);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_skips_statistics() {
        let log = "0: R1=ctx() R10=fp0\n0: (95) exit\nR0 !read_ok\nprocessed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n";
        assert_eq!(error_line(log), "R0 !read_ok");
        assert_eq!(error_line(""), "(empty verifier log)");
    }

    #[test]
    fn stats_are_parsed() {
        let s = parse_stats(
            "processed 12 insns (limit 1000000) max_states_per_insn 0\nverification time 34 usec\nstack depth 0\n",
        );
        assert_eq!(s.processed_insns, Some(12));
        assert_eq!(s.verification_time, Some(Duration::from_micros(34)));
    }
}
