//! Analyses on hand-built programs, and their soundness against the VM on random programs
//! (every executed path must be covered by the facts).
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::{AluOp, Cond, Insn, Op, Operand, Size, Slot, Width};
use bpfpatch_passes::internals::analysis::cfg::{BlockId, Cfg, CfgError, SubprogId};
use bpfpatch_passes::internals::analysis::liveness::Liveness;
use bpfpatch_passes::internals::analysis::ptrkind::{Base, PtrKinds};
use bpfpatch_passes::internals::analysis::reach::{Fate, Reach};
use bpfpatch_passes::internals::emit::Emit;
use bpfpatch_passes::internals::program::{InsnIdx, ProgramError};
use bpfpatch_patch::PatchBuf;
use bpfpatch_vm::Hi32Mode;
use common::apply::rewrite_each;
use common::vm::{self, CTX_ADDR, FRAME};
use common::*;
use std::collections::HashSet;

fn cfg(ops: &[Op]) -> Cfg {
    Cfg::new(&enc(ops)).expect("cfg")
}

const I: fn(u32) -> InsnIdx = InsnIdx;

// ---------------------------------------------------------------------------------------------
// CFG

#[test]
fn cfg_blocks_and_successors_of_a_diamond() {
    let c = cfg(&[
        mov64(0, 0),            // 0  b0
        jmp(Cond::Eq, 1, 0, 2), // 1  b0 -> b2 (4) / b1 (2)
        mov64(0, 1),            // 2  b1
        ja(1),                  // 3  b1 -> b3 (5)
        mov64(0, 2),            // 4  b2 -> b3
        exit(),                 // 5  b3
    ]);
    let b: Vec<_> = c.blocks().iter().map(|b| (b.start.0, b.end.0, b.fall, b.jump)).collect();
    assert_eq!(
        b,
        vec![
            (0, 2, Some(BlockId(1)), Some(BlockId(2))),
            (2, 4, None, Some(BlockId(3))),
            (4, 5, Some(BlockId(3)), None),
            (5, 6, None, None),
        ]
    );
    assert_eq!(c.preds(BlockId(3)), &[BlockId(1), BlockId(2)]);
    assert_eq!(c.subprogs().len(), 1);
}

#[test]
fn cfg_subprograms_from_calls_and_func_refs_with_ld_imm64_slots() {
    // slot: 0 lddw(2 slots) 2 call +2 -> 5, 3 func_ref -> 7 (2 slots), 5 exit? layout below.
    let ops = [
        lddw(1, 7),     // slots 0-1
        call_local(3),  // slot 2 -> 6
        func_ref(2, 3), // slots 3-4 -> 3+3+1 = 7
        exit(),         // slot 5
        exit(),         // slot 6: subprog 1
        mov64(0, 1),    // slot 7: subprog 2 (callback)
        exit(),         // slot 8
    ];
    let c = cfg(&ops);
    let sp: Vec<_> = c.subprogs().iter().map(|s| (s.start.0, s.end.0, s.callers.len(), s.refs.len())).collect();
    assert_eq!(sp, vec![(0, 4, 0, 0), (4, 5, 1, 0), (5, 7, 0, 1)]);
    assert_eq!(c.prog().slot(I(5)), Slot(7));
    assert_eq!(c.prog().at_slot(1), None);
    assert_eq!(c.callee(I(1)), Some(SubprogId(1)));
    assert_eq!(c.callee(I(2)), Some(SubprogId(2)));
    assert!(c.subprog(SubprogId(2)).is_callback());
}

#[test]
fn cfg_rejects_bad_targets_with_their_slot() {
    let e = Cfg::new(&enc(&[lddw(0, 1), jmp(Cond::Eq, 0, 0, -2), exit()])).unwrap_err();
    assert_eq!(e, CfgError::Program(ProgramError::TargetInLdImm64 { slot: Slot(2), target: 1 }));
    let e = Cfg::new(&enc(&[ja(5), exit()])).unwrap_err();
    assert_eq!(e, CfgError::Program(ProgramError::TargetOutOfRange { slot: Slot(0), target: 6 }));
    // jump from the main program into the subprogram
    let e = Cfg::new(&enc(&[call_local(2), jmp(Cond::Eq, 0, 0, 1), exit(), exit()])).unwrap_err();
    assert_eq!(e, CfgError::JumpOutOfSubprog { slot: Slot(1), target: Slot(3) });
    assert_eq!(Cfg::new(&[]).unwrap_err(), CfgError::Program(ProgramError::Empty));
    let bad = [Insn::new(0xff, 0, 0, 0, 0)];
    assert!(matches!(Cfg::new(&bad).unwrap_err(), CfgError::Program(ProgramError::Decode(_))));
}

#[test]
fn cfg_marks_fall_off_the_end_of_a_subprogram() {
    let c = cfg(&[call_local(1), mov64(0, 0), mov64(0, 1), exit()]);
    // subprogram 0 is [0, 2): its last instruction `mov` falls into subprogram 1.
    assert!(c.blocks()[0].falls_off);
    assert_eq!(c.blocks()[0].fall, None);
}

// ---------------------------------------------------------------------------------------------
// Reachability and constant branches

#[test]
fn reach_decides_constant_branches_and_removes_dead_subprograms() {
    let c = cfg(&[
        mov64(1, 5),              // 0
        jmp(Cond::Gt, 1, 3, 2),   // 1: 5 > 3: always taken -> 4
        call_local(4),            // 2: dead; calls subprog at 7
        mov64(0, 9),              // 3: dead
        jmp32(Cond::Eq, 1, 6, 1), // 4: 5 == 6 never -> fall to 5
        mov64(0, 1),              // 5
        exit(),                   // 6
        mov64(0, 2),              // 7: subprog 1, only called from dead code
        exit(),                   // 8
    ]);
    let r = Reach::analyze(&c);
    assert_eq!(r.fate(I(1)), Some(Fate::Taken));
    assert_eq!(r.fate(I(4)), Some(Fate::NotTaken));
    assert!(!r.reached(I(2)) && !r.reached(I(3)));
    assert!(r.reached(I(5)));
    assert!(!r.subprog_reached(SubprogId(1)));
    assert!(!r.reached(I(7)));
    assert_eq!(r.fall_off(), None);
}

#[test]
fn reach_keeps_unknown_inputs_loops_and_may_goto_undecided() {
    let c = cfg(&[
        mov64(2, 0),              // 0
        alu64(AluOp::Add, 2, 1),  // 1 loop: r2 += 1
        jmp(Cond::Lt, 2, 10, -2), // 2: r2 < 10 -> 1 (r2 varies: unknown)
        jmp(Cond::Eq, 1, 0, 1),   // 3: r1 is an input
        Op::MayGoto { off: 0 },   // 4
        jmpr(Cond::Ge, 3, 3, 1),  // 5: r3 >= r3 always
        mov64(0, 1),              // 6 dead
        exit(),                   // 7
    ]);
    let r = Reach::analyze(&c);
    assert_eq!(r.fate(I(2)), Some(Fate::Unknown));
    assert_eq!(r.fate(I(3)), Some(Fate::Unknown));
    assert_eq!(r.fate(I(4)), Some(Fate::Unknown));
    assert_eq!(r.fate(I(5)), Some(Fate::Taken));
    assert!(!r.reached(I(6)));
}

#[test]
fn reach_learns_equality_on_the_taken_edge() {
    let c = cfg(&[
        jmp(Cond::Ne, 1, 7, 3), // 0: fall-through knows r1 == 7
        jmp(Cond::Eq, 1, 7, 1), // 1: always taken
        mov64(0, 0),            // 2: dead
        exit(),                 // 3
        exit(),                 // 4
    ]);
    let r = Reach::analyze(&c);
    assert_eq!(r.fate(I(1)), Some(Fate::Taken));
    assert!(!r.reached(I(2)));
}

#[test]
fn reach_learns_nothing_on_the_inequality_edge() {
    let c = cfg(&[
        jmp(Cond::Ne, 1, 7, 1), // 0: taken edge: r1 != 7, value unknown
        exit(),                 // 1: r1 == 7 here
        jmp(Cond::Eq, 1, 7, 1), // 2: must stay undecided
        mov64(0, 1),            // 3
        exit(),                 // 4
    ]);
    let r = Reach::analyze(&c);
    assert_eq!(r.fate(I(2)), Some(Fate::Unknown));
    assert!(r.reached(I(3)));
}

#[test]
fn reach_reports_a_reachable_fall_off_only() {
    let dead = cfg(&[ja(1), mov64(0, 0), exit(), mov64(0, 1)]);
    // The trailing `mov` is unreachable: fine.
    assert_eq!(Reach::analyze(&dead).fall_off(), None);
    let live = cfg(&[mov64(0, 0), jmp(Cond::Eq, 1, 0, 1), exit(), mov64(0, 1)]);
    assert_eq!(Reach::analyze(&live).fall_off(), Some(I(3)));
}

// ---------------------------------------------------------------------------------------------
// Liveness

fn upper(ops: &[Op]) -> Vec<Option<bool>> {
    let c = cfg(ops);
    let l = Liveness::analyze(&c);
    (0..c.prog().len() as u32).map(|i| l.upper_read(I(i))).collect()
}

#[test]
fn liveness_classifies_32_and_64_bit_reads() {
    use Size::*;
    let u = upper(&[
        mov32(1, 1),              // 0: read by add64 -> needed
        alu64r(AluOp::Add, 0, 1), // 1
        mov32(2, 2),              // 2: read by add32 and stxw only -> not needed
        alu32r(AluOp::Add, 0, 2), // 3: def32 of r0; r0 read by exit -> needed
        stx(W, 10, -8, 2),        // 4
        mov32(3, 3),              // 5: stxdw reads 64 -> needed
        stx(DW, 10, -16, 3),      // 6
        mov32(4, 4),              // 7: jmp32 only -> not needed
        jmp32(Cond::Eq, 4, 0, 0), // 8
        mov32(5, 5),              // 9: overwritten before any read -> not needed
        mov64(5, 1),              // 10
        ldx(W, 6, 10, -8),        // 11: ldxw def32; base read 64 of r10 irrelevant; r6 unused
        exit(),                   // 12
    ]);
    assert_eq!(u[0], Some(true));
    assert_eq!(u[1], None);
    assert_eq!(u[2], Some(false));
    assert_eq!(u[3], Some(true));
    assert_eq!(u[5], Some(true));
    assert_eq!(u[7], Some(false));
    assert_eq!(u[9], Some(false));
    assert_eq!(u[11], Some(false));
}

#[test]
fn liveness_is_conservative_at_calls_and_branches() {
    let u = upper(&[
        mov32(1, 1),             // 0: helper argument -> needed
        mov32(6, 1),             // 1: r6 flows through the helper call to the callee call below
        call_helper(1),          // 2
        jmp(Cond::Eq, 0, 0, 1),  // 3
        alu64r(AluOp::Or, 7, 6), // 4: one path reads r6 as 64 -> needed
        mov32(2, 3),             // 5: argument of a bpf-to-bpf call -> needed
        call_local(2),           // 6
        mov32(0, 0),             // 7: r0 at exit -> needed
        exit(),                  // 8
        mov32(0, 1),             // 9: callee r0 at exit -> needed
        exit(),                  // 10
    ]);
    assert_eq!(u[0], Some(true));
    assert_eq!(u[1], Some(true));
    assert_eq!(u[5], Some(true));
    assert_eq!(u[7], Some(true));
    assert_eq!(u[9], Some(true));
}

#[test]
fn liveness_of_swaps_loads_and_atomics() {
    let u = upper(&[
        Op::Swap { kind: bpfpatch_insn::SwapKind::Be, bits: 16, dst: r(1) }, // 0 def32, read by be64
        Op::Swap { kind: bpfpatch_insn::SwapKind::Le, bits: 64, dst: r(1) }, // 1 64-bit read
        ldx(Size::H, 2, 10, -8),                                             // 2 def32 read by le32 only
        Op::Swap { kind: bpfpatch_insn::SwapKind::Le, bits: 32, dst: r(2) }, // 3 def32, dead
        Op::Atomic { size: Size::W, op: bpfpatch_insn::AtomicOp::Add { fetch: true }, dst: r(10), src: r(3), off: -8 }, // 4
        mov64r(0, 3), // 5 reads the fetched value
        exit(),
    ]);
    assert_eq!(u[0], Some(true));
    assert_eq!(u[1], None);
    assert_eq!(u[2], Some(false));
    assert_eq!(u[3], Some(false));
    assert_eq!(u[4], Some(true));
}

// ---------------------------------------------------------------------------------------------
// Pointer kinds

fn kinds(ops: &[Op]) -> (Cfg, PtrKinds) {
    let c = cfg(ops);
    let k = PtrKinds::analyze(&c);
    (c, k)
}

#[test]
fn ptrkind_follows_moves_spills_and_fills() {
    use Size::*;
    let (_, k) = kinds(&[
        ldx(W, 0, 1, 0),           // 0 ctx
        mov64r(6, 1),              // 1
        stx(DW, 10, -16, 6),       // 2 stack (spill of ctx)
        mov64(1, 0),               // 3 r1 no longer ctx
        ldx(DW, 7, 10, -16),       // 4 stack (fill)
        ldx(H, 2, 7, 4),           // 5 ctx through the filled register
        stx(W, 6, 8, 2),           // 6 ctx through the moved register
        mov64r(3, 10),             // 7
        alu64(AluOp::Add, 3, -24), // 8 fp-24
        st(DW, 3, 0, 1),           // 9 stack at fp-24
        ldx(W, 4, 0, 0),           // 10 r0 is a scalar loaded from ctx: other
        exit(),
    ]);
    assert_eq!(k.base(I(0)), Some(Base::Ctx));
    assert_eq!(k.base(I(2)), Some(Base::Stack));
    assert_eq!(k.base(I(4)), Some(Base::Stack));
    assert_eq!(k.base(I(5)), Some(Base::Ctx));
    assert_eq!(k.base(I(6)), Some(Base::Ctx));
    assert_eq!(k.base(I(9)), Some(Base::Stack));
    assert_eq!(k.stack_offset(I(9)), Some(-24));
    assert_eq!(k.base(I(10)), Some(Base::Other));
    assert_eq!(k.stack_depth(SubprogId::MAIN), Some(24));
    assert!(!k.ctx_escaped());
}

#[test]
fn ptrkind_merges_ctx_and_non_ctx_into_unknown() {
    let (_, k) = kinds(&[
        jmp(Cond::Eq, 2, 0, 1), // 0
        mov64r(1, 10),          // 1: r1 = fp on one path
        ldx(Size::W, 0, 1, -8), // 2: ctx or stack -> unknown
        mov64r(3, 1),
        alu64(AluOp::Add, 3, 4), // 4: arithmetic on a maybe-ctx
        ldx(Size::W, 0, 3, 0),   // 5: unknown
        exit(),
    ]);
    assert_eq!(k.base(I(2)), Some(Base::Unknown));
    assert_eq!(k.base(I(5)), Some(Base::Unknown));
    // ctx + constant is a modified context pointer: unknown too.
    let (_, k) = kinds(&[alu64(AluOp::Add, 1, 8), ldx(Size::W, 0, 1, 0), exit()]);
    assert_eq!(k.base(I(1)), Some(Base::Unknown));
}

#[test]
fn ptrkind_partial_overwrite_and_helpers_clobber_spills() {
    use Size::*;
    let (_, k) = kinds(&[
        stx(DW, 10, -8, 1),  // 0 spill ctx at fp-8
        st(B, 10, -5, 0),    // 1 byte store into the spilled pointer
        ldx(DW, 2, 10, -8),  // 2 fill: maybe still the context (same bytes)
        ldx(W, 0, 2, 0),     // 3 unknown
        stx(DW, 10, -16, 1), // 4 spill ctx at fp-16
        mov64r(1, 10),
        alu64(AluOp::Add, 1, -32), // 6 r1 = fp-32: the helper may write fp-32..fp-1
        call_helper(7),            // 7
        ldx(DW, 3, 10, -16),       // 8 fill: maybe scalar written by the helper
        ldx(W, 0, 3, 0),           // 9 unknown
        exit(),
    ]);
    assert_eq!(k.base(I(3)), Some(Base::Unknown));
    assert_eq!(k.base(I(9)), Some(Base::Unknown));
}

#[test]
fn ptrkind_interprocedural_args_and_return() {
    let (c, k) = kinds(&[
        call_local(2),         // 0: r1 = ctx passed
        ldx(Size::W, 2, 0, 0), // 1: r0 returned by the callee = ctx
        exit(),                // 2
        ldx(Size::W, 3, 1, 4), // 3: callee: r1 is the context
        mov64r(0, 1),          // 4
        exit(),                // 5
    ]);
    assert_eq!(c.subprogs().len(), 2);
    assert_eq!(k.base(I(3)), Some(Base::Ctx));
    assert_eq!(k.base(I(1)), Some(Base::Ctx));
}

#[test]
fn ptrkind_stack_pointer_into_callee_escapes() {
    use Size::*;
    let (_, k) = kinds(&[
        stx(DW, 10, -8, 1), // 0 spill ctx
        mov64r(1, 10),
        alu64(AluOp::Add, 1, -8), // 2 r1 = fp-8
        call_local(3),            // 3 callee may read/write the spill through r1
        ldx(DW, 2, 10, -8),       // 4 fill: maybe changed by the callee
        ldx(W, 0, 2, 0),          // 5 unknown (not a guess)
        exit(),                   // 6
        ldx(DW, 2, 1, 0),         // 7 callee: loads the caller's spilled ctx
        ldx(W, 0, 2, 0),          // 8 may be the context: unknown
        exit(),
    ]);
    assert!(k.ctx_escaped());
    assert_eq!(k.base(I(7)), Some(Base::Other));
    assert_eq!(k.base(I(8)), Some(Base::Unknown));
    assert_eq!(k.base(I(5)), Some(Base::Unknown));
}

#[test]
fn ptrkind_unknown_stack_offset_makes_depth_unknown() {
    let (_, k) = kinds(&[
        mov64r(2, 10),
        alu64r(AluOp::Add, 2, 3), // fp + unknown
        st(Size::DW, 2, 0, 0),
        exit(),
    ]);
    assert_eq!(k.base(I(2)), Some(Base::Stack));
    assert_eq!(k.stack_depth(SubprogId::MAIN), None);
}

// ---------------------------------------------------------------------------------------------
// Soundness against execution on random programs, on the project's VM (which shares no code with
// the analyses: its own ALU, conditions and memory), observed instruction by instruction.

/// One observed step: the instruction index and the registers before it ran.
type Step = (usize, [u64; 16]);

/// Whether `a cond b` would come out differently with signed and unsigned order at `width`
/// (coverage only: the outcome itself is the VM's).
fn sign_matters(width: Width, a: u64, b: u64) -> bool {
    match width {
        Width::W64 => (a < b) != ((a as i64) < (b as i64)),
        Width::W32 => ((a as u32) < (b as u32)) != ((a as u32 as i32) < (b as u32 as i32)),
    }
}

#[test]
fn analyses_are_sound_on_random_programs() {
    let cases = rand_prog::cases(2000);
    let mut ran = 0;
    let mut decided = 0usize;
    let mut not_needed = 0usize;
    let (mut ctx_exact, mut ctx_unknown) = (0usize, 0usize);
    // Decided conditional jumps executed with operands whose signed and unsigned order differ,
    // by (class, condition, source form).
    let mut covered: HashSet<(bool, Cond, bool)> = HashSet::new();
    let mut trace: Vec<Step> = Vec::new();
    for seed in 0..cases {
        let nfuncs = 1 + (seed % 3) as usize;
        let insns = rand_prog::program(seed, nfuncs, 24);
        let c = match Cfg::new(&insns) {
            Ok(c) => c,
            Err(e) => panic!("seed {seed}: generator produced an invalid program: {e}"),
        };
        let reach = Reach::analyze(&c);
        let live = Liveness::analyze(&c);
        let kinds = PtrKinds::analyze(&c);
        let prog = c.prog();
        let vm_prog = vm::load(&insns).unwrap_or_else(|e| panic!("seed {seed}: the VM rejects the program: {e}"));
        assert_eq!(vm_prog.len(), prog.len(), "seed {seed}: instruction numbering differs");
        // 1. Plain run, observing every executed instruction with its registers.
        trace.clear();
        let Ok(base) = vm::run_prog(&vm_prog, Hi32Mode::ZeroExtend, &mut |i, regs| trace.push((i, *regs))) else {
            continue;
        };
        ran += 1;
        for (k, &(i, regs)) in trace.iter().enumerate() {
            let at = I(u32::try_from(i).unwrap());
            assert!(reach.reached(at), "seed {seed}: executed {at:?} marked unreachable");
            match *prog.op(at) {
                Op::Jump { width, cond, dst, src, .. } => {
                    let next = trace.get(k + 1).map(|s| s.0).expect("a jump is never the last instruction");
                    let target = prog.target(at).expect("jump target").0;
                    let fall = prog.next(at).expect("fall-through");
                    if target == fall {
                        continue; // both edges lead to the same instruction: no outcome to see
                    }
                    let taken = next == target.idx();
                    assert!(taken || next == fall.idx(), "seed {seed}: {at:?} went to {next}");
                    let fate =
                        reach.fate(at).unwrap_or_else(|| panic!("seed {seed}: executed branch {at:?} has no fate"));
                    match fate {
                        Fate::Taken => assert!(taken, "seed {seed}: {at:?} ({width:?} {cond:?}) said always taken"),
                        Fate::NotTaken => assert!(!taken, "seed {seed}: {at:?} ({width:?} {cond:?}) said never taken"),
                        Fate::Unknown => {}
                    }
                    let (a, b) = (
                        regs[dst.idx()],
                        match src {
                            Operand::Reg(s) => regs[s.idx()],
                            Operand::Imm(v) => i64::from(v) as u64,
                        },
                    );
                    if fate != Fate::Unknown && src != Operand::Reg(dst) && sign_matters(width, a, b) {
                        covered.insert((width == Width::W32, cond, matches!(src, Operand::Reg(_))));
                    }
                }
                op @ (Op::Load { .. } | Op::Store { .. } | Op::Atomic { .. }) => {
                    let (base_reg, off) = match op {
                        Op::Load { src, off, .. } => (src, off),
                        Op::Store { dst, off, .. } | Op::Atomic { dst, off, .. } => (dst, off),
                        _ => unreachable!(),
                    };
                    let base = regs[base_reg.idx()];
                    let addr = base.wrapping_add(i64::from(off) as u64);
                    let frame_top = regs[10];
                    let b = kinds.base(at).unwrap_or_else(|| panic!("seed {seed}: no base for {at:?}"));
                    let in_frame = base <= frame_top && base + FRAME >= frame_top;
                    if base == CTX_ADDR {
                        if b == Base::Ctx { ctx_exact += 1 } else { ctx_unknown += 1 }
                    }
                    match b {
                        Base::Ctx => assert_eq!(base, CTX_ADDR, "seed {seed}: {at:?} said ctx"),
                        Base::Stack => assert!(in_frame, "seed {seed}: {at:?} said stack"),
                        Base::Other => assert!(base != CTX_ADDR && !in_frame, "seed {seed}: {at:?} said other"),
                        Base::MaybeStack => assert!(base != CTX_ADDR, "seed {seed}: {at:?} said not ctx"),
                        Base::Unknown => {}
                    }
                    if addr < frame_top && addr + FRAME >= frame_top && kinds.stack_offset(at).is_some() {
                        let sp = c.subprog_of(at);
                        let depth = kinds.stack_depth(sp).expect("depth");
                        assert!(frame_top - addr <= u64::from(depth), "seed {seed}: {at:?} below depth {depth}");
                    }
                }
                _ => {}
            }
        }
        decided +=
            (0..prog.len() as u32).filter(|&i| matches!(reach.fate(I(i)), Some(Fate::Taken | Fate::NotTaken))).count();
        // 2. Liveness: zero-extend (explicitly) every 32-bit definition except those whose upper
        // half liveness says nobody reads, and run on a machine that leaves random upper halves:
        // the results must not change.
        let zexted = rewrite_each(&insns, |i, op| {
            let r = op.def_reg().filter(|_| op.is_def32() && live.upper_read(i) != Some(false))?;
            let mut p = PatchBuf::new();
            if prog.target(i).is_some() {
                p.escape(*op);
            } else {
                p.push_op(op);
            }
            p.push_op(&Op::Zext { dst: r });
            Some(p)
        });
        let zexted = vm::load(&zexted).unwrap_or_else(|e| panic!("seed {seed}: zero-extended program: {e}"));
        for round in 0..3u64 {
            let hi32 = Hi32Mode::Randomize(seed ^ (round << 40) ^ 0xabcdef);
            let out = vm::run_prog(&zexted, hi32, &mut |_, _| {})
                .unwrap_or_else(|e| panic!("seed {seed}: randomized run failed: {e}"));
            assert_eq!(out.r0, base.r0, "seed {seed} round {round}: r0 differs");
            assert_eq!(out.ctx, base.ctx, "seed {seed} round {round}: memory differs");
        }
        not_needed += (0..prog.len() as u32).filter(|&i| live.upper_read(I(i)) == Some(false)).count();
    }
    eprintln!(
        "{ran} of {cases} random programs ran; {decided} branches decided; {not_needed} defs without zext; \
         ctx accesses classified ctx {ctx_exact}, unknown {ctx_unknown}; {} of 44 jump kinds decided with \
         signed and unsigned order differing",
        covered.len()
    );
    assert!(ran * 3 >= cases as usize, "too few programs ran: {ran}");
    assert!(decided > 0 && not_needed > 0);
    // Every condition, in both classes and both source forms, was decided on operands where
    // signedness matters, and the VM's outcome checked against it.
    for jmp32 in [false, true] {
        for cond in Cond::ALL {
            for reg in [false, true] {
                assert!(covered.contains(&(jmp32, cond, reg)), "never decided: jmp32={jmp32} {cond:?} reg={reg}");
            }
        }
    }
    // Precision floor: most executed context accesses are recognised as such.
    assert!(ctx_exact > 4 * ctx_unknown, "ptrkind too imprecise: {ctx_exact} vs {ctx_unknown}");
}
