//! The kernel's rules the passes follow where they differ from a naive reading, one test each
//! (Linux 6.18 `opt_subreg_zext_lo32_rnd_hi32`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bpfpatch_insn::{AluOp, Insn, Op, Operand, Reg, Size, Width};
use bpfpatch_passes::pass::{Options, Pipeline};

fn enc(ops: &[Op]) -> Vec<Insn> {
    ops.iter().flat_map(|o| o.encode().as_slice().to_vec()).collect()
}

fn r(n: u8) -> Reg {
    Reg::new(n).unwrap()
}

fn run(list: &str, ops: &[Op]) -> Vec<Op> {
    let out = Pipeline::parse(list).unwrap().run(&enc(ops), &Options::default()).unwrap().insns;
    let d = bpfpatch_insn::decode_program(&out, bpfpatch_insn::DecodeOptions::INTERNAL).unwrap();
    d.into_iter().map(|(_, o)| o).collect()
}

/// A 32-bit load from the context whose upper half is read gets no zero-extension (nor random
/// upper bits): the kernel's context conversion may widen it into a 64-bit pointer load. The
/// same load from the stack gets one.
#[test]
fn no_zext_after_a_context_load() {
    for (base, off, want_zext) in [(1u8, 0i16, false), (10, -8, true)] {
        let mut ops = Vec::new();
        if base == 10 {
            ops.push(Op::Store { size: Size::DW, dst: r(10), off: -8, src: Operand::Imm(7) });
        }
        ops.push(Op::Load { size: Size::W, signed: false, dst: r(2), src: r(base), off });
        ops.push(Op::Alu { width: Width::W64, op: AluOp::Mov, dst: r(0), src: Operand::Reg(r(2)) });
        ops.push(Op::Exit);
        for list in ["zext", "rnd-hi32", "zext,rnd-hi32"] {
            let out = run(list, &ops);
            let zexts = out.iter().filter(|o| matches!(o, Op::Zext { .. })).count();
            let zext_expected = want_zext && list.contains("zext");
            assert_eq!(zexts, usize::from(zext_expected), "{list}, load from r{base}: {out:?}");
            if base == 1 {
                assert_eq!(out.len(), ops.len(), "{list}: the context load is left alone: {out:?}");
            }
        }
    }
}
