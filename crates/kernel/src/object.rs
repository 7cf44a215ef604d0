//! ELF objects through libbpf-rs's safe object API, one program at a time as veristat does.
//!
//! [`load_object`] opens the object once to list its programs, then for each program opens it
//! again with only that program set to autoload and loads it: libbpf creates the maps the object
//! declares (`.maps`, `.bss`/`.data`/`.rodata`), links `.text` subprograms, applies CO-RE and map
//! relocations, and calls `BPF_PROG_LOAD` with the verifier's statistics requested. A program
//! the verifier rejects is loaded once more with the full log (level 1) to collect its reason.
//! libbpf's messages are captured per thread through `libbpf_rs::set_print` (the previous
//! callback is put back afterwards; concurrent calls of [`load_object`] take turns, since the
//! callback is process-wide). Everything is closed when each load's `Object` drops:
//! nothing is attached or pinned.

use crate::{KernelError, ProgType, Stats};
/// One program of an object, as libbpf sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ObjectProgram {
    /// The program's (function) name.
    pub name: String,
    /// Its section.
    pub section: String,
    /// The type libbpf derived from the section name.
    pub prog_type: ProgType,
    /// The load: accepted with its numbers, or why not.
    pub outcome: Result<ProgramLoad, KernelError>,
}

/// An accepted program's numbers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProgramLoad {
    /// The verifier's and the kernel's numbers; `load_time` is the wall time of libbpf's whole
    /// object load (map creation, relocation, `BPF_PROG_LOAD`).
    pub stats: Stats,
    /// For skb and xdp programs: `BPF_PROG_TEST_RUN`'s return value on the packet given.
    pub retval: Option<Result<u32, KernelError>>,
}

/// Loads every program of the ELF object `bytes` (named `what` in errors), each on its own, and
/// test-runs the skb and xdp ones on `packet`.
///
/// # Errors
/// [`KernelError::Object`] when libbpf cannot open the object at all; per-program failures are
/// in [`ObjectProgram::outcome`].
pub fn load_object(bytes: &[u8], what: &str, packet: &[u8]) -> Result<Vec<ObjectProgram>, KernelError> {
    #[cfg(feature = "libbpf")]
    {
        imp::load_object(bytes, what, packet)
    }
    #[cfg(not(feature = "libbpf"))]
    {
        let _ = (bytes, what, packet);
        Err(KernelError::NotBuilt)
    }
}

/// The libbpf side, built with the `libbpf` feature.
#[cfg(feature = "libbpf")]
mod imp {
    use super::{ObjectProgram, ProgramLoad};
    use crate::{Errno, KernelError, ProgType, error_line, parse_stats, sys};
    use libbpf_rs::{ObjectBuilder, OpenObject, PrintLevel, ProgramInput};
    use std::cell::RefCell;
    use std::os::fd::AsFd;
    use std::sync::Mutex;
    use std::time::Instant;

    thread_local! {
        static CAPTURED: RefCell<String> = const { RefCell::new(String::new()) };
    }

    fn capture(_level: PrintLevel, msg: String) {
        CAPTURED.with(|c| c.borrow_mut().push_str(&msg));
    }

    fn take_captured() -> String {
        CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()))
    }

    /// The errno of a failed load: libbpf's `... load failed: -EACCES` line, else the error's kind
    /// (libbpf-rs keeps the raw errno private; its kind merges EPERM and EACCES).
    fn errno_of(e: &libbpf_rs::Error, captured: &str) -> Option<Errno> {
        let mut named = captured.lines().filter_map(|l| l.split_once("load failed: ")).filter_map(|(_, rest)| {
            let token = rest.trim().trim_start_matches('-');
            (1..1024).map(Errno).find(|e| e.name() == Some(token))
        });
        if let Some(errno) = named.next_back() {
            return Some(errno);
        }
        match e.kind() {
            libbpf_rs::ErrorKind::PermissionDenied => Some(Errno(1)),
            libbpf_rs::ErrorKind::InvalidInput => Some(Errno(22)),
            libbpf_rs::ErrorKind::TooBig => Some(Errno(7)),
            libbpf_rs::ErrorKind::OutOfMemory => Some(Errno(12)),
            libbpf_rs::ErrorKind::NotFound => Some(Errno(2)),
            _ => None,
        }
    }

    fn open(bytes: &[u8], what: &str) -> Result<OpenObject, KernelError> {
        ObjectBuilder::default().open_memory(bytes).map_err(|e| KernelError::Object {
            stage: "open",
            what: what.to_string(),
            message: format!("{e:#}; {}", last_libbpf_line(&take_captured())),
        })
    }

    fn last_libbpf_line(captured: &str) -> String {
        captured.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("no libbpf message").to_string()
    }

    /// The verifier's log inside libbpf's `-- BEGIN PROG LOAD LOG --` framing, if any.
    fn framed_log(captured: &str) -> Option<String> {
        let start = captured.find("-- BEGIN PROG LOAD LOG --")?;
        let body = &captured[start..];
        let body = body.split_once('\n').map_or("", |(_, rest)| rest);
        let end = body.find("-- END PROG LOAD LOG --").unwrap_or(body.len());
        Some(body[..end].to_string())
    }

    pub(super) fn load_object(bytes: &[u8], what: &str, packet: &[u8]) -> Result<Vec<ObjectProgram>, KernelError> {
        // libbpf's print callback is process-wide: one object load at a time sets and restores it.
        static PRINT: Mutex<()> = Mutex::new(());
        let _guard = PRINT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let prev = libbpf_rs::set_print(Some((PrintLevel::Debug, capture)));
        let result = load_all(bytes, what, packet);
        libbpf_rs::set_print(prev);
        result
    }

    fn load_all(bytes: &[u8], what: &str, packet: &[u8]) -> Result<Vec<ObjectProgram>, KernelError> {
        take_captured();
        let listing: Vec<(String, String, ProgType)> = open(bytes, what)?
            .progs()
            .map(|p| {
                let ty = ProgType::from_id(p.prog_type() as u32);
                (p.name().to_string_lossy().into_owned(), p.section().to_string_lossy().into_owned(), ty)
            })
            .collect();
        let mut out = Vec::with_capacity(listing.len());
        for (name, section, prog_type) in listing {
            // An EPERM here is this program's (tracing programs without their attach target,
            // for one): whether bpf() works at all is `available()`'s question, asked once.
            let outcome = load_one(bytes, &format!("{what}:{name}"), &name, prog_type, packet);
            out.push(ObjectProgram { name, section, prog_type, outcome });
        }
        Ok(out)
    }

    type Attempt = Result<(libbpf_rs::Object, std::time::Duration, String), (libbpf_rs::Error, String)>;

    fn attempt(bytes: &[u8], what: &str, name: &str, log_level: u32) -> Result<Attempt, KernelError> {
        take_captured();
        let mut obj = open(bytes, what)?;
        for mut p in obj.progs_mut() {
            let me = p.name() == name;
            p.set_autoload(me);
            if me {
                p.set_log_level(log_level);
            }
        }
        let t0 = Instant::now();
        let loaded = obj.load();
        let elapsed = t0.elapsed();
        let captured = take_captured();
        Ok(match loaded {
            Ok(o) => Ok((o, elapsed, captured)),
            Err(e) => Err((e, captured)),
        })
    }

    fn load_one(
        bytes: &[u8],
        what: &str,
        name: &str,
        prog_type: ProgType,
        packet: &[u8],
    ) -> Result<ProgramLoad, KernelError> {
        let (obj, load_time, captured) = match attempt(bytes, what, name, 4)? {
            Ok(x) => x,
            Err((e, captured)) => {
                let errno = errno_of(&e, &captured).unwrap_or(Errno(0));
                if errno.is_permission() && framed_log(&captured).is_none() {
                    return Err(KernelError::NotPermitted { op: "BPF_PROG_LOAD", errno });
                }
                // The statistics-only log has no reason: load again with the full log.
                match attempt(bytes, what, name, 1 | 4)? {
                    Ok(x) => x, // accepted the second time: keep it
                    Err((e, captured)) => {
                        let errno = errno_of(&e, &captured).unwrap_or(errno);
                        return Err(match framed_log(&captured) {
                            Some(log) => KernelError::Rejected { prog_type, errno, error_line: error_line(&log), log },
                            None => KernelError::Object {
                                stage: "load",
                                what: what.to_string(),
                                message: format!("{e:#}; {}", last_libbpf_line(&captured)),
                            },
                        });
                    }
                }
            }
        };
        let Some(prog) = obj.progs_mut().find(|p| p.name() == name) else {
            return Err(KernelError::Object {
                stage: "load",
                what: what.to_string(),
                message: "the program is missing from the loaded object".into(),
            });
        };
        let mut stats = framed_log(&captured).map(|l| parse_stats(&l)).unwrap_or_default();
        stats.load_time = load_time;
        let info = sys::prog_info(prog.as_fd(), true).map_err(|r| KernelError::syscall("BPF_OBJ_GET_INFO_BY_FD", r))?;
        stats.verified_insns = (info.verified_insns != 0).then_some(info.verified_insns);
        stats.jited_len = info.jited_len as usize;
        stats.xlated_len = info.xlated.as_ref().map_or(0, |x| x.len() / 8);
        let retval = prog_type.runs_on_packet().then(|| {
            let input = ProgramInput { data_in: Some(packet), ..ProgramInput::default() };
            prog.test_run(input).map(|o| o.return_value).map_err(|e| match errno_of(&e, "") {
                Some(errno) if errno.is_permission() => KernelError::NotPermitted { op: "BPF_PROG_TEST_RUN", errno },
                Some(errno) => KernelError::Syscall { op: "BPF_PROG_TEST_RUN", errno },
                None => KernelError::Object { stage: "test run", what: what.to_string(), message: format!("{e:#}") },
            })
        });
        Ok(ProgramLoad { stats, retval })
    }
}

/// A 64-byte Ethernet/IPv4/UDP packet (10.0.0.1:1234 -> 10.0.0.2:5678, 22 bytes of payload),
/// the fixed input of `bpfpatch load`'s test runs.
#[must_use]
pub fn udp_packet() -> [u8; 64] {
    let mut p = [0u8; 64];
    // Ethernet: dst, src, type IPv4.
    p[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    // IPv4: version 4, IHL 5, total length 50, TTL 64, UDP, checksum, 10.0.0.1 -> 10.0.0.2.
    let ip = [0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    p[14..34].copy_from_slice(&ip);
    let mut sum: u32 = ip.chunks(2).map(|w| u32::from(w[0]) << 8 | u32::from(w[1])).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = !u16::try_from(sum).unwrap_or(u16::MAX);
    p[24..26].copy_from_slice(&csum.to_be_bytes());
    // UDP: 1234 -> 5678, length 30, checksum 0 (none).
    p[34..42].copy_from_slice(&[0x04, 0xd2, 0x16, 0x2e, 0, 30, 0, 0]);
    for (i, b) in p[42..].iter_mut().enumerate() {
        *b = u8::try_from(i).unwrap_or(0);
    }
    p
}
