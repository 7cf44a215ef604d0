//! Load, test-run and read back small programs on the running kernel. Each test first checks
//! `available()`; where bpf() is not permitted it prints `SKIPPED: needs bpf()` and returns
//! (or panics under `BPFPATCH_REQUIRE_INPUTS=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bpfpatch_insn::Insn;
use bpfpatch_kernel::object::{load_object, udp_packet};
use bpfpatch_kernel::{KernelError, LoadOptions, ProgType, available, load};

/// Whether bpf() works here; if not, a counted skip (a failure under
/// `BPFPATCH_REQUIRE_INPUTS=1`; see `bpfpatch-testkit`).
#[track_caller]
fn kernel_or_skip(test: &str) -> bool {
    let Err(reason) = available() else { return true };
    bpfpatch_testkit::skip("bpf()", &format!("{test}: {reason}"));
    false
}

const MOV_IMM: u8 = 0xb7; // alu64 mov k
const ADD_IMM: u8 = 0x07; // alu64 add k
const EXIT: u8 = 0x95;
const CALL: u8 = 0x85;

fn mov(dst: u8, imm: i32) -> Insn {
    Insn::new(MOV_IMM, dst, 0, 0, imm)
}

fn exit() -> Insn {
    Insn::new(EXIT, 0, 0, 0, 0)
}

#[test]
fn returns_and_reads_back() {
    if !kernel_or_skip("returns_and_reads_back") {
        return;
    }
    let prog = [mov(0, 40), Insn::new(ADD_IMM, 0, 0, 0, 2), exit()];
    let loaded = load(ProgType::SocketFilter, &prog, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.test_run(&udp_packet()).unwrap(), 42);
    assert_eq!(loaded.xlated().unwrap(), prog.to_vec());
    let stats = loaded.stats();
    assert_eq!(stats.xlated_len, 3);
    assert_eq!(stats.processed_insns, Some(3));
    assert!(stats.verified_insns.is_some_and(|n| n >= 3), "{stats:?}");
    assert!(loaded.id() > 0);
}

#[test]
fn xdp_reads_packet_length() {
    if !kernel_or_skip("xdp_reads_packet_length") {
        return;
    }
    // r2 = data_end; r1 = data; r0 = r2; r0 -= r1; exit
    let prog = [
        Insn::new(0x61, 2, 1, 4, 0),
        Insn::new(0x61, 1, 1, 0, 0),
        Insn::new(0xbf, 0, 2, 0, 0),
        Insn::new(0x1f, 0, 1, 0, 0),
        exit(),
    ];
    let loaded = load(ProgType::Xdp, &prog, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.test_run(&[0u8; 100]).unwrap(), 100);
}

#[test]
fn rejection_names_the_reason() {
    if !kernel_or_skip("rejection_names_the_reason") {
        return;
    }
    let err = load(ProgType::SocketFilter, &[exit()], &LoadOptions::default()).unwrap_err();
    match &err {
        KernelError::Rejected { error_line, log, .. } => {
            assert_eq!(error_line, "R0 !read_ok", "{log}");
        }
        e => panic!("{e}"),
    }
    assert!(err.to_string().contains("R0 !read_ok"));
    let err = load(ProgType::SocketFilter, &[], &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, KernelError::BadLength { len: 0 }));
    let err = load(ProgType::SocketFilter, &[mov(0, 0), exit()], &LoadOptions::default().with_license("G\0PL"));
    assert!(matches!(err, Err(KernelError::NulInString { what: "license" })));
}

#[test]
fn xlated_calls_keep_their_shape() {
    if !kernel_or_skip("xlated_calls_keep_their_shape") {
        return;
    }
    // call bpf_ktime_get_ns (5); call local +3; r0 += 1; r0 -= 1; exit; subprog: r0 = 1; exit
    let prog = [
        Insn::new(CALL, 0, 0, 0, 5),
        Insn::new(CALL, 0, 1, 0, 3),
        Insn::new(ADD_IMM, 0, 0, 0, 1),
        Insn::new(0x17, 0, 0, 0, 1),
        exit(),
        mov(0, 1),
        exit(),
    ];
    let loaded = load(ProgType::SocketFilter, &prog, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.test_run(&udp_packet()).unwrap(), 1);
    let x = loaded.xlated().unwrap();
    assert_eq!(x.len(), 7, "{x:?}");
    assert_eq!((x[0].code, x[0].src()), (CALL, 0), "{x:?}");
    assert_eq!((x[1].code, x[1].src()), (CALL, 1), "{x:?}");
    // bpf_insn_prepare_dump's input: the callee's subprogram index in imm, the PC-relative
    // offset in off.
    assert_eq!((x[1].imm, x[1].off), (1, 3), "{x:?}");
}

#[test]
fn object_programs_load_one_by_one() {
    if !kernel_or_skip("object_programs_load_one_by_one") {
        return;
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../object/tests/data/prog-el.o");
    let bytes = std::fs::read(path).unwrap();
    let progs = load_object(&bytes, "prog-el.o", &udp_packet()).unwrap();
    assert!(!progs.is_empty());
    for p in &progs {
        println!("{} {} {}: {:?}", p.section, p.name, p.prog_type, p.outcome);
    }
    let xdp = progs.iter().find(|p| p.prog_type == ProgType::Xdp).expect("an xdp program");
    let ok = xdp.outcome.as_ref().unwrap();
    assert!(ok.stats.xlated_len > 0 && ok.stats.processed_insns.is_some());
    assert!(matches!(ok.retval, Some(Ok(1 | 2))), "{:?}", ok.retval);
}
