//! `lower-v4` makes loadable output: no kernel-internal encodings (AX), a scratch register
//! taken from whole-register liveness, a clear error when none is free, and `gotol` kept where
//! no `goto` reaches. Checked on the interpreter (the lowered program returns what the cpu-v4
//! original returns) and by decoding the output *without* kernel-internal forms, which is what
//! the kernel's loader accepts.
// Test code: values are small and known; panicking on a broken expectation is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation
)]

use bpfpatch_insn::{AluOp, DecodeOptions, Insn, Op, Operand, Reg, Width, decode_program};
use bpfpatch_passes::{Options, PassError, Pipeline};
use bpfpatch_vm::{Input, LoadOptions, LoadedProgram, Vm, VmConfig};

fn enc(ops: &[Op]) -> Vec<Insn> {
    ops.iter().flat_map(|o| o.encode().as_slice().to_vec()).collect()
}

fn r(n: u8) -> Reg {
    Reg::new(n).unwrap()
}

fn mov(d: u8, v: i64) -> Op {
    Op::LdImm64 { dst: r(d), kind: bpfpatch_insn::LdImm64Kind::Imm, lo: v as i32, hi: (v >> 32) as i32 }
}

fn add(d: u8, s: u8) -> Op {
    Op::Alu { width: Width::W64, op: AluOp::Add, dst: r(d), src: Operand::Reg(r(s)) }
}

fn run(insns: &[Insn]) -> u64 {
    let prog = LoadedProgram::load(insns, &LoadOptions::default()).expect("loads without internal forms");
    let mut vm = Vm::new(VmConfig::default()).unwrap();
    vm.run(&prog, Input::mem(&mut [])).expect("runs").r0
}

fn lower(insns: &[Insn]) -> Result<Vec<Insn>, PassError> {
    Pipeline::parse("lower-v4").unwrap().run(insns, &Options::default()).map(|r| r.insns)
}

const VALUES: [i64; 8] = [0, 1, -1, 7, -7, i64::MIN, i64::MAX, -0x1_0000_0003];

/// `sdiv`/`smod` by a register, 32 and 64 bits, `dst != src` and `dst == src`, with every
/// register r2..r9 live afterwards (summed into r0, the divisor included, so a divisor not
/// restored to its whole 64-bit value shows): the lowering needs no scratch register, and the
/// output has no kernel-internal encoding.
#[test]
fn signed_division_by_register_is_lowered_without_a_scratch_register() {
    for width in [Width::W32, Width::W64] {
        for op in [AluOp::SDiv, AluOp::SMod] {
            for same in [false, true] {
                for &a in &VALUES {
                    for &b in &VALUES {
                        let mut ops = vec![mov(1, a), mov(2, b)];
                        for k in 3..10 {
                            ops.push(mov(k, i64::from(k) * 1000));
                        }
                        let src = if same { 1 } else { 2 };
                        ops.push(Op::Alu { width, op, dst: r(1), src: Operand::Reg(r(src)) });
                        ops.push(Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(0), src: Operand::Reg(r(1)) });
                        for k in 2..10 {
                            // Scale so a change of any register's upper half shows in r0.
                            ops.push(Op::Alu { width: Width::W64, op: AluOp::Mul, dst: r(0), src: Operand::Imm(31) });
                            ops.push(add(0, k));
                        }
                        ops.push(Op::Exit);
                        let p = enc(&ops);
                        let out = lower(&p).unwrap_or_else(|e| panic!("{width:?} {op:?}: {e}"));
                        decode_program(&out, DecodeOptions::default())
                            .unwrap_or_else(|e| panic!("{width:?} {op:?}: output is not loadable: {e}"));
                        assert_ne!(out, p, "lowered");
                        assert_eq!(run(&out), run(&p), "{width:?} {op:?} {a} {b} same register: {same}");
                    }
                }
            }
        }
    }
}

/// A `gotol` beyond 16 bits stays (the program is cpu v4); one within becomes `goto`.
#[test]
fn long_gotol_stays_short_one_becomes_goto() {
    for (dist, stays) in [(300usize, false), (40_000, true)] {
        let mut ops = vec![mov(0, 0), Op::Ja { delta: dist as i32, long: true }];
        ops.extend(std::iter::repeat_n(add(0, 0), dist));
        ops.push(Op::Exit);
        let out = lower(&enc(&ops)).unwrap();
        let gotol = Insn::new(bpfpatch_insn::opcode::JMP32 | bpfpatch_insn::opcode::JA, 0, 0, 0, dist as i32);
        assert_eq!(out[2] == gotol, stays, "distance {dist}");
        assert_eq!(out[2].abs_target(2), Some(3 + dist as i64));
        assert_eq!(run(&out), 0);
    }
}

/// The raw test of a cpu-v4 slot (`Insn::is_cpu_v4`, which decides relaxation into `gotol`)
/// agrees with the decoded one `lower-v4` uses, on every instruction of a grid.
#[test]
fn raw_and_decoded_cpu_v4_tests_agree() {
    use bpfpatch_insn::{DecodeOptions, decode};
    use bpfpatch_passes::internals::lower_v4::uses_v4;
    let mut n = 0;
    for code in 0..=255u8 {
        for off in [0i16, 1, 8, 16, 32, 5] {
            for imm in [0i32, 16, 32, 64, 7] {
                let slots = [Insn::new(code, 1, 2, off, imm), Insn::new(0, 0, 0, 0, 0)];
                let Ok((op, _)) = decode(&slots, DecodeOptions::default()) else { continue };
                assert_eq!(slots[0].is_cpu_v4(), uses_v4(&op), "{op:?} ({:?})", slots[0]);
                n += 1;
            }
        }
    }
    assert!(n > 200, "{n} decodable slots"); // every opcode with its valid off/imm forms
}
