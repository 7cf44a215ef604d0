//! The pointer-kind analysis's rules (module documentation of `analysis::ptrkind`, and
//! doc/DESIGN.md's kernel fidelity of `zext`), one hand-built program each, with the expected
//! base of each access derived from the rule in the comments. `analysis.rs` checks soundness
//! against the VM on random programs; these hold precision (a fact the rule gives must not be
//! lost) and the corners random programs never reach: calls between sections with the caller's
//! frame (`PARENT` pointers), callbacks, opaque instructions, atomics, stale callee frames.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bpfpatch_insn::{AluOp, AtomicOp, CallKind, Cond, Op, Size};
use bpfpatch_passes::internals::analysis::cfg::{Cfg, SubprogId};
use bpfpatch_passes::internals::analysis::ptrkind::{Base, CallSite, CtxArg, Entries, NARGS, PtrKinds};
use bpfpatch_passes::internals::program::InsnIdx;
use common::*;

const I: fn(u32) -> InsnIdx = InsnIdx;

fn cfg(ops: &[Op]) -> Cfg {
    Cfg::new(&enc(ops)).expect("cfg")
}

fn kinds(ops: &[Op]) -> PtrKinds {
    PtrKinds::analyze(&cfg(ops))
}

/// The analysis of a section whose first function is entered by the calls `sites` from other
/// sections.
fn entered(ops: &[Op], sites: &[CallSite]) -> PtrKinds {
    let calls: Vec<(InsnIdx, CallSite)> = sites.iter().map(|s| (I(0), *s)).collect();
    PtrKinds::analyze_calls(&cfg(ops), &[], &Entries { programs: &[], calls: &calls })
}

/// A call leaving the section (a kfunc; an object's call into another section looks the same).
fn kfunc() -> Op {
    Op::Call(CallKind::Kfunc { btf_id: 1, module: 0 })
}

fn atomic(op: AtomicOp, dst: u8, off: i16, src: u8) -> Op {
    Op::Atomic { size: Size::DW, op, dst: r(dst), src: r(src), off }
}

/// Asserts the base (and whether the access is a context access wherever the kernel accepts
/// the program) of the access at `i`.
#[track_caller]
fn at(k: &PtrKinds, i: u32, base: Base, ctx_if_accepted: bool) {
    assert_eq!(k.base(I(i)), Some(base), "base of {i}");
    assert_eq!(k.ctx_if_accepted(I(i)), ctx_if_accepted, "ctx_if_accepted of {i}");
}

// ---------------------------------------------------------------------------------------------
// Classification of bases and arithmetic

/// `Base::of`: a scalar base is other memory; the context with a scalar or with other values is
/// unknown (a context access wherever the kernel accepts it only with scalars, which it refuses
/// to dereference); the frame or other memory is `MaybeStack`.
#[test]
fn ptrkind_classifies_mixed_bases() {
    let k = kinds(&[
        mov64(2, 5),              // 0: scalar
        ldx(Size::W, 0, 2, 0),    // 1: other
        ldx(Size::DW, 3, 1, 0),   // 2: an 8-byte load from the context: OTHER (a packet pointer, say)
        mov64r(4, 1),             // 3: r4 = ctx
        jmp(Cond::Eq, 6, 0, 3),   // 4 -> 8 with the context
        mov64r(4, 3),             // 5: r4 = OTHER
        jmp(Cond::Eq, 7, 0, 1),   // 6 -> 8 with OTHER
        mov64(4, 9),              // 7: r4 = SCALAR
        ldx(Size::W, 0, 4, 0),    // 8: ctx | other | scalar: unknown, not ctx where accepted
        mov64r(5, 10),            // 9
        alu64(AluOp::Add, 5, -8), // 10: fp-8
        jmp(Cond::Eq, 6, 0, 1),   // 11 -> 13
        mov64r(5, 3),             // 12: r5 = OTHER
        ldx(Size::W, 0, 5, 0),    // 13: the frame or other memory
        exit(),                   // 14
    ]);
    at(&k, 1, Base::Other, false);
    at(&k, 8, Base::Unknown, false);
    at(&k, 13, Base::MaybeStack, false);
    assert!(Base::Ctx.may_be_ctx() && Base::Unknown.may_be_ctx());
    assert!(!Base::Other.may_be_ctx() && !Base::Stack.may_be_ctx() && !Base::MaybeStack.may_be_ctx());
}

/// 64-bit arithmetic: scalars in give a scalar out; anything else (`OTHER`) may be a pointer
/// moved by an offset, so stays `OTHER`; the context after arithmetic is the context or other.
/// Joined with the context, the first is a context access where the kernel accepts it, the
/// second not.
#[test]
fn ptrkind_arithmetic_keeps_scalars_scalar_and_pointers_other() {
    let k = kinds(&[
        ldx(Size::DW, 2, 1, 0),   // 0: OTHER
        alu64(AluOp::Add, 2, 8),  // 1: OTHER + 8: OTHER
        mov64(8, 3),              // 2
        mov64(9, 4),              // 3
        alu64r(AluOp::Add, 8, 9), // 4: scalar + scalar: SCALAR
        mov64r(4, 1),             // 5
        mov64r(5, 1),             // 6
        jmp(Cond::Eq, 6, 0, 2),   // 7 -> 10
        mov64r(4, 2),             // 8
        mov64r(5, 8),             // 9
        ldx(Size::W, 0, 4, 0),    // 10: ctx | other
        ldx(Size::W, 0, 5, 0),    // 11: ctx | scalar
        mov64r(7, 1),             // 12
        alu64r(AluOp::Add, 7, 1), // 13: ctx + ctx: the context after arithmetic
        ldx(Size::W, 0, 7, 0),    // 14
        exit(),                   // 15
    ]);
    at(&k, 10, Base::Unknown, false);
    at(&k, 11, Base::Unknown, true);
    at(&k, 14, Base::Unknown, false);
}

// ---------------------------------------------------------------------------------------------
// The frame's slots

/// An 8-byte aligned store through an exact stack base is a strong update of its own slot only.
/// A helper given `fp-16` may write scalars into fp-16..fp-1 (the slots at fp-16 and fp-8),
/// not below. Its argument raises the frame's depth to 16 at least.
#[test]
fn ptrkind_helper_writes_scalars_at_and_above_the_passed_offset() {
    let k = kinds(&[
        stx(Size::DW, 10, -8, 1),  // 0
        stx(Size::DW, 10, -16, 1), // 1
        stx(Size::DW, 10, -24, 1), // 2
        stx(Size::DW, 10, -40, 1), // 3
        mov64r(1, 10),             // 4
        alu64(AluOp::Add, 1, -16), // 5
        call_helper(1),            // 6
        ldx(Size::DW, 2, 10, -8),  // 7
        ldx(Size::W, 0, 2, 0),     // 8: ctx or a scalar
        ldx(Size::DW, 3, 10, -16), // 9
        ldx(Size::W, 0, 3, 0),     // 10: ctx or a scalar
        ldx(Size::DW, 4, 10, -24), // 11
        ldx(Size::W, 0, 4, 0),     // 12: ctx: below the helper's reach
        ldx(Size::DW, 5, 10, -40), // 13
        ldx(Size::W, 0, 5, 0),     // 14: ctx
        exit(),                    // 15
    ]);
    at(&k, 8, Base::Unknown, true);
    at(&k, 10, Base::Unknown, true);
    at(&k, 12, Base::Ctx, true);
    at(&k, 14, Base::Ctx, true);
    assert_eq!(k.stack_depth(SubprogId::MAIN), Some(40));
}

/// A stack pointer passed to a call extends the depth to its offset; one with an unknown
/// offset makes the depth unknown.
#[test]
fn ptrkind_stack_pointers_passed_to_calls_set_the_depth() {
    let k = kinds(&[mov64r(1, 10), alu64(AluOp::Add, 1, -64), call_helper(1), exit()]);
    assert_eq!(k.stack_depth(SubprogId::MAIN), Some(64));
    let k = kinds(&[mov64r(1, 10), alu64r(AluOp::Add, 1, 2), call_helper(1), exit()]);
    assert_eq!(k.stack_depth(SubprogId::MAIN), None);
}

/// A misaligned 8-byte store is not a spill: it joins `OTHER` into both slots it overlaps.
#[test]
fn ptrkind_misaligned_wide_store_is_a_weak_update() {
    let k = kinds(&[
        stx(Size::DW, 10, -8, 1), // 0: ctx at fp-8
        st(Size::DW, 10, -12, 0), // 1: bytes fp-12..fp-5: half of the slot at fp-8
        ldx(Size::DW, 2, 10, -8), // 2
        ldx(Size::W, 0, 2, 0),    // 3: ctx or other
        exit(),
    ]);
    at(&k, 3, Base::Unknown, false);
}

/// A narrow store joins a scalar into exactly the slots it touches: 4 bytes at fp-12 touch the
/// slot at fp-16 only.
#[test]
fn ptrkind_narrow_store_touches_only_its_slots() {
    let k = kinds(&[
        stx(Size::DW, 10, -8, 1),  // 0
        stx(Size::DW, 10, -16, 1), // 1
        st(Size::W, 10, -12, 0),   // 2: fp-12..fp-9
        ldx(Size::DW, 2, 10, -8),  // 3
        ldx(Size::W, 0, 2, 0),     // 4: ctx
        ldx(Size::DW, 3, 10, -16), // 5
        ldx(Size::W, 0, 3, 0),     // 6: ctx or a scalar
        exit(),
    ]);
    at(&k, 4, Base::Ctx, true);
    at(&k, 6, Base::Unknown, true);
}

/// After a helper call r0 is a new scalar and r1..r5 may keep their values or be clobbered.
#[test]
fn ptrkind_helper_calls_clobber_r0_to_r5() {
    let k = kinds(&[
        mov64r(0, 1),          // 0: r0 = ctx
        call_helper(1),        // 1
        ldx(Size::W, 2, 0, 0), // 2: the helper's result
        ldx(Size::W, 2, 1, 0), // 3: ctx or a scalar the helper left
        exit(),
    ]);
    at(&k, 2, Base::Other, false);
    assert_eq!(k.base(I(3)), Some(Base::Unknown));
}

/// The context stored through a non-stack base escapes: 8-byte loads from untracked memory may
/// then yield it.
#[test]
fn ptrkind_context_stored_to_untracked_memory_escapes() {
    let k = kinds(&[
        mov64r(6, 1),           // 0
        call_helper(1),         // 1: r0 = a map value, say
        stx(Size::DW, 0, 0, 6), // 2: the context into it
        ldx(Size::DW, 2, 0, 8), // 3: untracked: may be the context
        ldx(Size::W, 0, 2, 0),  // 4
        exit(),
    ]);
    assert!(k.ctx_escaped());
    at(&k, 4, Base::Unknown, false);
}

/// Atomics with fetch return the old value: in `src`, or r0 for `cmpxchg`.
#[test]
fn ptrkind_atomic_fetch_returns_the_old_slot() {
    let k = kinds(&[
        stx(Size::DW, 10, -8, 1),                         // 0
        mov64(2, 1),                                      // 1
        atomic(AtomicOp::Add { fetch: true }, 10, -8, 2), // 2: r2 = old = ctx
        ldx(Size::W, 3, 2, 0),                            // 3: ctx
        stx(Size::DW, 10, -16, 1),                        // 4
        mov64(0, 0),                                      // 5
        mov64(4, 0),                                      // 6
        atomic(AtomicOp::Cmpxchg, 10, -16, 4),            // 7: r0 = old = ctx
        ldx(Size::W, 3, 0, 0),                            // 8: ctx
        ldx(Size::W, 3, 4, 0),                            // 9: r4 unchanged: a scalar
        exit(),
    ]);
    at(&k, 3, Base::Ctx, true);
    at(&k, 8, Base::Ctx, true);
    at(&k, 9, Base::Other, false);
}

/// An opaque instruction's offset is unknown: its stack access is inexact (a load joins every
/// slot, the depth is unknown), but the base register keeps its exact offset afterwards.
#[test]
fn ptrkind_opaque_accesses_are_inexact_but_keep_the_base() {
    let ops = [
        stx(Size::DW, 10, -8, 1),  // 0: ctx at fp-8
        st(Size::DW, 10, -16, 0),  // 1: a scalar at fp-16
        ldx(Size::DW, 2, 10, -16), // 2: opaque: any slot
        ldx(Size::W, 0, 2, 0),     // 3: ctx or a scalar or other
        st(Size::DW, 10, -24, 0),  // 4: opaque
        ldx(Size::DW, 3, 10, -8),  // 5: r10 is fp+0 again
        exit(),
    ];
    let c = cfg(&ops);
    let mut opaque = vec![false; ops.len()];
    opaque[2] = true;
    opaque[4] = true;
    let k = PtrKinds::analyze_calls(&c, &opaque, &Entries::default());
    assert_eq!(k.base(I(2)), Some(Base::Stack));
    assert_eq!(k.stack_offset(I(2)), None);
    assert_eq!(k.base(I(3)), Some(Base::Unknown));
    assert_eq!(k.stack_offset(I(4)), None);
    assert_eq!(k.stack_offset(I(5)), Some(0));
    assert_eq!(k.stack_depth(SubprogId::MAIN), None);
}

// ---------------------------------------------------------------------------------------------
// bpf-to-bpf calls

/// A stack pointer passed to a local call escapes the stack, but not the context unless a slot
/// of the frame holds it.
#[test]
fn ptrkind_stack_argument_escapes_the_context_only_if_a_slot_holds_it() {
    let k = kinds(&[
        mov64r(1, 10),            // 0
        alu64(AluOp::Add, 1, -8), // 1
        call_local(1),            // 2 -> 4
        exit(),                   // 3
        exit(),                   // 4
    ]);
    assert!(!k.ctx_escaped());
}

/// A caller's stack pointer is `OTHER` in the callee (it does not alias the callee's slots),
/// joined over the call sites: the context at one, a stack pointer at the other.
#[test]
fn ptrkind_callee_arguments_join_call_sites_with_stack_pointers_as_other() {
    // An exact stack pointer at the second site.
    let k = kinds(&[
        call_local(4),            // 0 -> 5: r1 = ctx
        mov64r(1, 10),            // 1
        alu64(AluOp::Add, 1, -8), // 2
        call_local(1),            // 3 -> 5
        exit(),                   // 4
        ldx(Size::W, 0, 1, 0),    // 5: ctx or other
        exit(),                   // 6
    ]);
    at(&k, 5, Base::Unknown, false);
    // The frame or other memory at the second site.
    let k = kinds(&[
        mov64r(6, 1),             // 0
        call_local(6),            // 1 -> 8: r1 = ctx
        ldx(Size::DW, 1, 6, 0),   // 2: OTHER
        jmp(Cond::Eq, 7, 0, 2),   // 3 -> 6
        mov64r(1, 10),            // 4
        alu64(AluOp::Add, 1, -8), // 5
        call_local(1),            // 6 -> 8: r1 = fp-8 or OTHER
        exit(),                   // 7
        ldx(Size::W, 0, 1, 0),    // 8: ctx or other
        exit(),                   // 9
    ]);
    at(&k, 8, Base::Unknown, false);
}

/// The callee's own stack pointers dangle after it returns: `OTHER` in the caller.
#[test]
fn ptrkind_returned_callee_stack_pointers_are_other() {
    let k = kinds(&[
        call_local(2),            // 0 -> 3
        ldx(Size::W, 2, 0, 0),    // 1: a dead frame: other memory
        exit(),                   // 2
        mov64r(0, 10),            // 3
        alu64(AluOp::Add, 0, -8), // 4
        exit(),                   // 5
    ]);
    at(&k, 1, Base::Other, false);
    // Returned on some paths, beside the context and other memory: ctx or other.
    let k = kinds(&[
        call_local(2),            // 0 -> 3
        ldx(Size::W, 2, 0, 0),    // 1
        exit(),                   // 2
        ldx(Size::DW, 0, 1, 0),   // 3: OTHER
        jmp(Cond::Eq, 2, 0, 4),   // 4 -> 9
        mov64r(0, 1),             // 5: ctx
        jmp(Cond::Eq, 3, 0, 2),   // 6 -> 9
        mov64r(0, 10),            // 7
        alu64(AluOp::Add, 0, -8), // 8
        exit(),                   // 9
    ]);
    at(&k, 1, Base::Unknown, false);
}

/// A callee's never-written slots may hold what an earlier frame at the same addresses spilled
/// (8-byte stores only): the main program's frame starts as other memory.
#[test]
fn ptrkind_callee_frames_start_with_stale_spills() {
    let k = kinds(&[
        stx(Size::DW, 10, -8, 1),  // 0: the context spilled
        ldx(Size::DW, 3, 10, -16), // 1: main's never-written slot
        ldx(Size::W, 0, 3, 0),     // 2: other
        call_local(1),             // 3 -> 5
        exit(),                    // 4
        ldx(Size::DW, 2, 10, -8),  // 5: the callee's never-written slot: stale
        ldx(Size::W, 0, 2, 0),     // 6: ctx or other
        exit(),                    // 7
    ]);
    at(&k, 2, Base::Other, false);
    at(&k, 6, Base::Unknown, false);
    // A stale stack pointer.
    let k = kinds(&[
        mov64r(2, 10),             // 0
        alu64(AluOp::Add, 2, -16), // 1
        stx(Size::DW, 10, -8, 2),  // 2
        call_local(1),             // 3 -> 5
        exit(),                    // 4
        ldx(Size::DW, 2, 10, -8),  // 5
        ldx(Size::W, 0, 2, 0),     // 6: a frame or other memory
        exit(),                    // 7
    ]);
    at(&k, 6, Base::MaybeStack, false);
    // Four bytes of the context are a scalar, not a stale pointer.
    let k = kinds(&[
        stx(Size::W, 10, -8, 1),  // 0
        call_local(1),            // 1 -> 3
        exit(),                   // 2
        ldx(Size::DW, 2, 10, -8), // 3
        ldx(Size::W, 0, 2, 0),    // 4: other
        exit(),                   // 5
    ]);
    at(&k, 4, Base::Other, false);
}

// ---------------------------------------------------------------------------------------------
// Callbacks

/// Callbacks get, in r1..r5, only what the program passed helpers in r2..r5: the context if
/// some helper got it there.
#[test]
fn ptrkind_callback_arguments_are_what_helpers_got_in_r2_to_r5() {
    let k = kinds(&[
        mov64r(2, 1),          // 0: the context in r2
        call_helper(1),        // 1
        func_ref(3, 3),        // 2 -> 5
        mov64(0, 0),           // 3
        exit(),                // 4
        ldx(Size::W, 0, 1, 0), // 5: callback: ctx or other
        exit(),                // 6
    ]);
    at(&k, 5, Base::Unknown, false);
    let k = kinds(&[
        call_helper(1),        // 0: the context in r1 only
        func_ref(3, 3),        // 1 -> 4
        mov64(0, 0),           // 2
        exit(),                // 3
        ldx(Size::W, 0, 1, 0), // 4: callback: other
        exit(),                // 5
    ]);
    at(&k, 4, Base::Other, false);
}

/// With callbacks, a helper given a stack pointer may write any pointer there (a callback
/// may store one): the slots get `OTHER`, and the context too once it escaped.
#[test]
fn ptrkind_helpers_with_callbacks_may_write_pointers_into_the_frame() {
    let k = kinds(&[
        stx(Size::DW, 10, -8, 1), // 0
        mov64r(1, 10),            // 1
        alu64(AluOp::Add, 1, -8), // 2
        call_helper(1),           // 3
        ldx(Size::DW, 2, 10, -8), // 4
        ldx(Size::W, 0, 2, 0),    // 5: ctx, a scalar or another pointer
        func_ref(3, 3),           // 6 -> 9
        mov64(0, 0),              // 7
        exit(),                   // 8
        exit(),                   // 9: callback
    ]);
    at(&k, 5, Base::Unknown, false);
    let k = kinds(&[
        mov64r(6, 1),             // 0
        call_helper(1),           // 1
        stx(Size::DW, 0, 0, 6),   // 2: the context escapes
        st(Size::DW, 10, -8, 0),  // 3: a scalar at fp-8
        mov64r(1, 10),            // 4
        alu64(AluOp::Add, 1, -8), // 5
        call_helper(1),           // 6
        ldx(Size::DW, 2, 10, -8), // 7
        ldx(Size::W, 0, 2, 0),    // 8: may be the escaped context now
        func_ref(3, 3),           // 9 -> 12
        mov64(0, 0),              // 10
        exit(),                   // 11
        exit(),                   // 12: callback
    ]);
    at(&k, 8, Base::Unknown, false);
}

// ---------------------------------------------------------------------------------------------
// Calls between sections

/// The join of what call sites pass: the context only if every site passes it.
#[test]
fn ptrkind_ctx_arg_join() {
    use CtxArg::*;
    for (a, b, j) in [
        (Ctx, Ctx, Ctx),
        (NotCtx, NotCtx, NotCtx),
        (Ctx, NotCtx, MaybeCtx),
        (NotCtx, Ctx, MaybeCtx),
        (MaybeCtx, MaybeCtx, MaybeCtx),
        (Ctx, MaybeCtx, MaybeCtx),
        (NotCtx, MaybeCtx, MaybeCtx),
    ] {
        assert_eq!(a.join(b), j, "{a:?} join {b:?}");
    }
}

/// Section A calls into another section with its frame: a scalar at fp-8, the context at
/// fp-16, r1 = fp-8, r2 = the context, r0 and r3..r5 scalars.
fn caller_a() -> CallSite {
    let k = kinds(&[
        st(Size::DW, 10, -8, 7),   // 0
        stx(Size::DW, 10, -16, 1), // 1
        mov64r(2, 1),              // 2
        mov64r(1, 10),             // 3
        alu64(AluOp::Add, 1, -8),  // 4
        mov64(0, 0),               // 5
        mov64(3, 0),               // 6
        mov64(4, 0),               // 7
        mov64(5, 0),               // 8
        kfunc(),                   // 9
        exit(),                    // 10
    ]);
    k.call_site(I(9)).expect("a call leaving the section")
}

/// What a call leaving the section passes: per register whether it holds the context, and the
/// frame when pointers into it are only where the analysis sees them.
#[test]
fn ptrkind_call_site_records_registers_and_the_frame() {
    let s = caller_a();
    assert_eq!(s.regs[1], CtxArg::NotCtx);
    assert_eq!(s.regs[2], CtxArg::Ctx);
    assert_eq!(s.regs[3], CtxArg::NotCtx);
    assert!(!s.ctx_in_memory);
    let f = s.frame.expect("the frame is tracked");
    assert!(f.points_into_frame(1));
    assert!(!f.points_into_frame(2) && !f.points_into_frame(0));
    assert!(f.slot_may_be_ctx(1));
    assert!(!f.slot_may_be_ctx(0));
    // A caller whose context escaped to untracked memory: the callee may read it from there.
    let k = kinds(&[
        mov64r(6, 1),           // 0
        call_helper(1),         // 1
        stx(Size::DW, 0, 0, 6), // 2
        mov64(1, 0),            // 3
        kfunc(),                // 4
        exit(),                 // 5
    ]);
    let s = k.call_site(I(4)).unwrap();
    assert!(s.ctx_in_memory);
    assert!(s.frame.is_none());
}

/// In the callee, r1 points into the caller's frame (`PARENT`): 8-byte loads through it read
/// the frame's slots as the caller left them.
#[test]
fn ptrkind_callee_reads_the_callers_frame_through_pointers() {
    let k = entered(
        &[
            ldx(Size::DW, 4, 1, -8), // 0: parent fp-16: the context
            ldx(Size::W, 0, 4, 0),   // 1: ctx
            ldx(Size::DW, 5, 1, 0),  // 2: parent fp-8: a scalar
            ldx(Size::W, 0, 5, 0),   // 3: other
            ldx(Size::W, 0, 2, 0),   // 4: r2 is the context
            ldx(Size::W, 0, 1, 0),   // 5: the caller's frame is other memory here
            mov64(1, 0),             // 6: no pointer into the caller's frame is passed on
            kfunc(),                 // 7
            exit(),                  // 8
        ],
        &[caller_a()],
    );
    at(&k, 0, Base::Other, false);
    at(&k, 1, Base::Ctx, true);
    at(&k, 3, Base::Other, false);
    at(&k, 4, Base::Ctx, true);
    at(&k, 5, Base::Other, false);
    assert!(!k.ctx_escaped());
    // The caller's frame holds the context, but the call passes no pointer to it.
    let s = k.call_site(I(7)).unwrap();
    assert!(!s.ctx_in_memory);
    assert_eq!(s.regs[2], CtxArg::Ctx);
}

/// A caller's maybe-context register stays maybe-context in the callee; a stack pointer with an
/// unknown offset becomes an inexact parent pointer, and an 8-byte load through it may yield
/// anything (a stale pointer of another activation), the context included.
#[test]
fn ptrkind_inexact_caller_pointers_reach_anything_in_the_callee() {
    let a = kinds(&[
        mov64r(3, 1),             // 0
        jmp(Cond::Eq, 5, 0, 1),   // 1 -> 3
        mov64(3, 0),              // 2: r3 = ctx or a scalar
        mov64r(4, 10),            // 3
        alu64r(AluOp::Add, 4, 5), // 4: fp + unknown
        mov64r(1, 10),            // 5
        alu64(AluOp::Add, 1, -8), // 6
        kfunc(),                  // 7
        exit(),                   // 8
    ]);
    let site = a.call_site(I(7)).unwrap();
    assert_eq!(site.regs[3], CtxArg::MaybeCtx);
    assert!(site.frame.is_some());
    let k = entered(
        &[
            ldx(Size::W, 0, 3, 0),  // 0: ctx or a scalar
            ldx(Size::DW, 6, 4, 0), // 1: the caller's frame at an unknown offset
            ldx(Size::W, 0, 6, 0),  // 2: anything
            ldx(Size::DW, 7, 6, 0), // 3: through anything
            ldx(Size::W, 0, 7, 0),  // 4: anything again
            exit(),                 // 5
        ],
        &[site],
    );
    at(&k, 0, Base::Unknown, true);
    at(&k, 1, Base::Other, false);
    at(&k, 2, Base::Unknown, false);
    at(&k, 4, Base::Unknown, false);
}

/// Registers a call site passes without a frame: `MaybeCtx` may be the context, `Ctx` is it;
/// memory the caller says holds the context makes untracked 8-byte loads maybe the context.
#[test]
fn ptrkind_call_site_registers_and_memory_start_the_callee() {
    let mut regs = [CtxArg::NotCtx; NARGS];
    regs[3] = CtxArg::MaybeCtx;
    regs[4] = CtxArg::Ctx;
    let site = CallSite { regs, ctx_in_memory: true, frame: None };
    let k = entered(
        &[
            ldx(Size::W, 0, 3, 0),  // 0
            ldx(Size::W, 0, 4, 0),  // 1
            ldx(Size::DW, 2, 1, 0), // 2: untracked memory
            ldx(Size::W, 0, 2, 0),  // 3
            exit(),
        ],
        &[site],
    );
    assert!(k.ctx_escaped());
    at(&k, 0, Base::Unknown, false);
    at(&k, 1, Base::Ctx, true);
    at(&k, 3, Base::Unknown, false);
}

/// A callee section that passes a pointer into its caller's frame on to a third section:
/// there it is other memory (`PARENT` of the middle section is no frame of the third), joined
/// with the context another site passes in the same register.
#[test]
fn ptrkind_parent_pointers_passed_on_are_other_memory() {
    let b = entered(
        &[
            mov64r(2, 1),             // 0: r2 = the caller's fp-8
            mov64r(1, 10),            // 1
            alu64(AluOp::Add, 1, -8), // 2
            kfunc(),                  // 3
            exit(),                   // 4
        ],
        &[caller_a()],
    );
    let from_b = b.call_site(I(3)).unwrap();
    assert!(from_b.frame.is_some());
    let k = entered(&[ldx(Size::W, 0, 2, 0), exit()], &[from_b, caller_a()]);
    at(&k, 0, Base::Unknown, false);
}

/// A parent pointer stored where slots do not track it escapes: the caller's frame may change
/// behind the analysis's back and untracked loads may yield anything.
#[test]
fn ptrkind_escaped_parent_pointers_make_untracked_loads_unknown() {
    let k = entered(
        &[
            stx(Size::DW, 0, 0, 1), // 0: r0 is other memory
            ldx(Size::DW, 3, 0, 8), // 1: untracked
            ldx(Size::W, 0, 3, 0),  // 2
            exit(),
        ],
        &[caller_a()],
    );
    assert!(k.ctx_escaped());
    at(&k, 2, Base::Unknown, false);
}

/// A loop in a section with a parent frame: the register facts of the back edge reach the
/// loop body although the parent frame did not change.
#[test]
fn ptrkind_loops_reach_their_fixed_point_with_a_parent_frame() {
    let k = entered(
        &[
            mov64r(3, 2),           // 0: ctx
            mov64r(4, 3),           // 1: loop head
            jmp(Cond::Eq, 5, 0, 3), // 2 -> 6
            ldx(Size::W, 0, 4, 0),  // 3: ctx, or the scalar of the back edge
            mov64(3, 7),            // 4
            ja(-5),                 // 5 -> 1
            exit(),                 // 6
        ],
        &[caller_a()],
    );
    at(&k, 3, Base::Unknown, true);
}

/// A local callee given a pointer into the parent frame may write it: the caller sees the
/// parent slot it wrote after the call.
#[test]
fn ptrkind_local_callee_writes_the_parent_frame() {
    let k = entered(
        &[
            call_local(3),          // 0 -> 4: r1 = parent fp-8
            ldx(Size::DW, 3, 1, 0), // 1: a scalar or the context the callee wrote
            ldx(Size::W, 0, 3, 0),  // 2
            exit(),                 // 3
            stx(Size::DW, 1, 0, 2), // 4: the context into the parent fp-8
            exit(),                 // 5
        ],
        &[caller_a()],
    );
    at(&k, 2, Base::Unknown, true);
    // The write is on a path the callee's exit sees second (after a back jump): its effect on
    // the parent frame alone must still reach the caller.
    let k = entered(
        &[
            call_local(3),          // 0 -> 4
            ldx(Size::DW, 3, 1, 0), // 1
            ldx(Size::W, 0, 3, 0),  // 2
            exit(),                 // 3
            mov64(0, 0),            // 4
            jmp(Cond::Eq, 5, 0, 1), // 5 -> 7
            exit(),                 // 6
            stx(Size::DW, 1, 0, 2), // 7
            ja(-3),                 // 8 -> 6
        ],
        &[caller_a()],
    );
    at(&k, 2, Base::Unknown, true);
}

/// With callbacks, a helper given a pointer into the caller's frame may write any pointer there,
/// the context included (a callback may store one): the slot's value is then unknown; without
/// callbacks the helper writes scalars.
#[test]
fn ptrkind_helpers_with_callbacks_may_write_pointers_into_the_callers_frame() {
    let body = [
        mov64r(6, 1),           // 0: parent fp-8 (a scalar there)
        call_helper(1),         // 1
        ldx(Size::DW, 4, 6, 0), // 2: the slot after the helper
        ldx(Size::W, 0, 4, 0),  // 3
    ];
    let mut with = body.to_vec();
    with.extend([func_ref(3, 3), mov64(0, 0), exit(), exit()]); // 4 -> 7: a callback
    at(&entered(&with, &[caller_a()]), 3, Base::Unknown, false);
    let mut without = body.to_vec();
    without.extend([mov64(0, 0), exit()]);
    at(&entered(&without, &[caller_a()]), 3, Base::Other, false);
}

/// A local call whose callee can reach the parent frame only through a pointer that escaped to
/// untracked memory (none in r0..r9, none spilled) may still change it: `sub` escapes the
/// pointer and calls `deep`, which stores the context through what it loads back; the main
/// program, after `sub`, may read the context from that slot.
#[test]
fn ptrkind_an_escaped_parent_pointer_lets_a_callee_write_the_parent_frame() {
    let k = entered(
        &[
            mov64r(6, 1),           // 0: parent fp-8
            mov64r(7, 2),           // 1: the context
            call_local(4),          // 2 -> 7: sub, given r1 = parent fp-8
            ldx(Size::DW, 4, 6, 0), // 3: the slot after the call
            ldx(Size::W, 0, 4, 0),  // 4
            exit(),                 // 5
            exit(),                 // 6 (unused)
            mov64r(8, 7),           // 7: sub: r8 = the context
            mov64r(9, 1),           // 8
            call_helper(1),         // 9: r0 = other memory
            stx(Size::DW, 0, 0, 9), // 10: the parent pointer escapes
            mov64(9, 0),            // 11: no parent pointer left in r0..r9
            mov64(6, 0),            // 12
            mov64r(1, 8),           // 13
            call_local(2),          // 14 -> 17: deep
            mov64(0, 0),            // 15
            exit(),                 // 16
            call_helper(1),         // 17: deep: r0 = other memory
            ldx(Size::DW, 3, 0, 0), // 18: maybe the escaped parent pointer
            stx(Size::DW, 3, 0, 1), // 19: the context through it
            mov64(0, 0),            // 20
            exit(),                 // 21
        ],
        &[caller_a()],
    );
    at(&k, 4, Base::Unknown, false);
}

/// A local call that can reach no pointer into the parent frame (a stack pointer whose frame
/// holds none, no parent pointer in r0..r9) does not change the parent frame, even if its
/// callee writes it when called from elsewhere.
#[test]
fn ptrkind_local_call_without_parent_pointers_keeps_the_parent_frame() {
    let k = entered(
        &[
            stx(Size::DW, 1, 0, 2),   // 0: the context into the parent fp-8
            mov64r(6, 1),             // 1
            call_local(11),           // 2 -> 14: with a parent pointer
            st(Size::DW, 6, 0, 0),    // 3: a scalar over it
            call_local(4),            // 4 -> 9
            ldx(Size::DW, 3, 6, 0),   // 5: the scalar
            ldx(Size::W, 0, 3, 0),    // 6
            exit(),                   // 7
            exit(),                   // 8 (unused)
            mov64(6, 0),              // 9: X: no parent pointer left in r0..r9
            mov64r(1, 10),            // 10
            alu64(AluOp::Add, 1, -8), // 11
            call_local(1),            // 12 -> 14
            exit(),                   // 13
            mov64(0, 0),              // 14: sub
            exit(),                   // 15
        ],
        &[caller_a()],
    );
    at(&k, 6, Base::Other, false);
}

/// A parent pointer spilled to the frame is a stale value a later callee's frame may hold.
#[test]
fn ptrkind_spilled_parent_pointers_are_stale_in_callee_frames() {
    let k = entered(
        &[
            stx(Size::DW, 10, -8, 1), // 0: the parent pointer spilled
            call_local(2),            // 1 -> 4
            mov64(0, 0),              // 2
            exit(),                   // 3
            ldx(Size::DW, 2, 10, -8), // 4: stale: maybe a parent pointer
            ldx(Size::DW, 3, 2, 0),   // 5: through it: anything
            ldx(Size::W, 0, 3, 0),    // 6
            exit(),                   // 7
        ],
        &[caller_a()],
    );
    at(&k, 6, Base::Unknown, false);
}

/// A local call with no pointer into the parent frame in r0..r9 and no stack argument still
/// reaches the parent frame once a parent pointer was spilled: the callee may find it in a
/// stale slot of its frame and write through it.
#[test]
fn ptrkind_spilled_parent_pointers_let_local_callees_write_the_parent_frame() {
    let k = entered(
        &[
            stx(Size::DW, 10, -8, 1), // 0: the parent pointer spilled at fp-8
            mov64(1, 0),              // 1: no parent pointer in r0..r9
            call_local(5),            // 2 -> 8
            ldx(Size::DW, 6, 10, -8), // 3: the parent pointer again (its own slot)
            ldx(Size::DW, 3, 6, 0),   // 4: the caller's fp-8: a scalar or what the callee wrote
            ldx(Size::W, 0, 3, 0),    // 5: ctx or a scalar
            mov64(0, 0),              // 6
            exit(),                   // 7
            ldx(Size::DW, 1, 10, -8), // 8: callee: a stale slot, maybe a parent pointer
            stx(Size::DW, 1, 0, 2),   // 9: the context through it
            exit(),                   // 10
        ],
        &[caller_a()],
    );
    at(&k, 5, Base::Unknown, true);
}

/// A frame that escaped (a stack pointer went to a local call) is not handed to the callee
/// section; a slot of it holding the context then makes the call's memory maybe-context, even
/// though the context itself never escaped.
#[test]
fn ptrkind_escaped_frame_holding_the_context_is_context_memory() {
    let k = kinds(&[
        mov64r(6, 1),              // 0
        mov64r(1, 10),             // 1
        alu64(AluOp::Add, 1, -8),  // 2
        call_local(5),             // 3 -> 9: the stack escapes (no slot holds the context yet)
        stx(Size::DW, 10, -16, 6), // 4: now one does
        mov64r(1, 10),             // 5
        alu64(AluOp::Add, 1, -8),  // 6
        kfunc(),                   // 7
        exit(),                    // 8
        exit(),                    // 9
    ]);
    assert!(!k.ctx_escaped());
    let s = k.call_site(I(7)).unwrap();
    assert!(s.frame.is_none());
    assert!(s.ctx_in_memory);
}

/// The value a callee returns in r0 loses its `STACK` flag (a dead frame) but keeps the others:
/// a stale slot that may be the context, a stack pointer or other memory comes back as the
/// context or other memory.
#[test]
fn ptrkind_returned_stale_values_keep_their_non_stack_kinds() {
    let k = kinds(&[
        stx(Size::DW, 10, -8, 1),  // 0: a context spill
        mov64r(2, 10),             // 1
        alu64(AluOp::Add, 2, -16), // 2
        stx(Size::DW, 10, -16, 2), // 3: a stack pointer spill
        mov64(2, 0),               // 4: no stack argument
        call_local(2),             // 5 -> 8
        ldx(Size::W, 3, 0, 0),     // 6: ctx or other
        exit(),                    // 7
        ldx(Size::DW, 0, 10, -8),  // 8: callee: stale: ctx, a stack pointer or other
        exit(),                    // 9
    ]);
    at(&k, 6, Base::Unknown, false);
}

/// A stack pointer kept in the parent frame belongs to the activation that wrote it: read by a
/// local callee it points into its caller's frame, read by the caller after the call it may be
/// the callee's dead frame. Neither is the reader's current frame for sure (as for stack
/// pointers passed in registers, which are `OTHER` in the callee and after the return).
#[test]
fn ptrkind_stack_pointers_in_the_parent_frame_do_not_cross_local_calls() {
    let k = entered(
        &[
            mov64r(6, 1),             // 0: the parent frame's fp-8
            mov64r(2, 10),            // 1
            alu64(AluOp::Add, 2, -8), // 2: this function's fp-8
            stx(Size::DW, 6, 0, 2),   // 3: into the parent frame's fp-8
            mov64(2, 0),              // 4: no stack argument
            call_local(4),            // 5 -> 10
            ldx(Size::DW, 3, 6, 0),   // 6: this function's fp-8, or the callee's dead one
            st(Size::DW, 3, 0, 1),    // 7: the frame or other memory
            mov64(0, 0),              // 8
            exit(),                   // 9
            ldx(Size::DW, 4, 1, 0),   // 10: callee: its caller's fp-8
            st(Size::DW, 4, 0, 1),    // 11: other memory
            mov64r(2, 10),            // 12
            alu64(AluOp::Add, 2, -8), // 13
            stx(Size::DW, 1, 0, 2),   // 14: the callee's fp-8 into the parent frame
            exit(),                   // 15
        ],
        &[caller_a()],
    );
    assert_eq!(k.base(I(11)), Some(Base::Other));
    assert_eq!(k.stack_offset(I(11)), None);
    assert_eq!(k.base(I(7)), Some(Base::MaybeStack));
    assert_eq!(k.stack_offset(I(7)), None);
}

/// A stack pointer the caller left in the parent frame may come back through the callee, in
/// another parent slot or in a register, although the callee saw it as other memory.
#[test]
fn ptrkind_callers_stack_pointers_may_come_back_through_the_parent_frame() {
    let k = entered(
        &[
            mov64r(6, 1),             // 0
            mov64r(2, 10),            // 1
            alu64(AluOp::Add, 2, -8), // 2
            stx(Size::DW, 6, 0, 2),   // 3: this function's fp-8 into the parent frame's fp-8
            mov64(2, 0),              // 4: no stack argument
            call_local(5),            // 5 -> 11
            ldx(Size::DW, 3, 6, -8),  // 6: the parent's fp-16: the context, or the copy
            st(Size::DW, 3, 0, 1),    // 7: ctx, this frame or other memory
            st(Size::DW, 0, 0, 1),    // 8: r0: this frame (the copy) or other memory
            mov64(0, 0),              // 9
            exit(),                   // 10
            ldx(Size::DW, 0, 1, 0),   // 11: callee: its caller's fp-8 ...
            stx(Size::DW, 1, -8, 0),  // 12: ... copied to the parent's fp-16, and returned
            exit(),                   // 13
        ],
        &[caller_a()],
    );
    assert_eq!(k.base(I(7)), Some(Base::Unknown));
    assert_eq!(k.base(I(8)), Some(Base::MaybeStack));
    assert_eq!(k.stack_depth(SubprogId::MAIN), None);
}

/// A local call with a stack argument (`pkt_skip_ipv4_options(pkt, ipv4)` with `ipv4` on the
/// caller's stack, in `cls_redirect`) may get the caller's stack pointer back only where the
/// callee hands back other memory (it saw the pointer as `OTHER`): the context in the parent
/// frame that the callee leaves alone stays the context (`buf->skb` read after the call, and by
/// a later callee given `buf`), and a scalar returned in r0 stays a scalar.
#[test]
fn ptrkind_stack_arguments_leave_the_parent_frames_context_alone() {
    let k = entered(
        &[
            mov64r(6, 1),             // 0: the parent frame's fp-8 (`buf`)
            mov64r(2, 10),            // 1
            alu64(AluOp::Add, 2, -8), // 2: a stack argument
            call_local(7),            // 3 -> 11
            st(Size::DW, 0, 0, 1),    // 4: r0: the callee's scalar
            ldx(Size::DW, 3, 6, -8),  // 5: the parent's fp-16: still the context
            ldx(Size::W, 4, 3, 0x4c), // 6: a context load
            mov64r(1, 6),             // 7
            call_local(5),            // 8 -> 14
            mov64(0, 0),              // 9
            exit(),                   // 10
            st(Size::DW, 2, 0, 7),    // 11: callee: a scalar through the stack argument
            mov64(0, 0),              // 12
            exit(),                   // 13
            ldx(Size::DW, 3, 1, -8),  // 14: callee: the parent's fp-16 through `buf`
            ldx(Size::W, 0, 3, 0x4c), // 15: a context load
            exit(),                   // 16
        ],
        &[caller_a()],
    );
    at(&k, 6, Base::Ctx, true);
    at(&k, 15, Base::Ctx, true);
    at(&k, 4, Base::Other, false);
}

/// A stack pointer passed to a local callee may come back through the parent frame or in r0,
/// where the callee hands back other memory: there it is the caller's frame again.
#[test]
fn ptrkind_stack_arguments_may_come_back_through_the_parent_frame() {
    let k = entered(
        &[
            mov64r(6, 1),             // 0: the parent frame's fp-8
            mov64r(2, 10),            // 1
            alu64(AluOp::Add, 2, -8), // 2: a stack argument
            call_local(5),            // 3 -> 9
            ldx(Size::DW, 3, 6, 0),   // 4: the parent's fp-8: a scalar, or this frame's fp-8
            st(Size::DW, 3, 0, 1),    // 5: this frame or other memory
            st(Size::DW, 0, 0, 1),    // 6: r0: this frame or other memory
            mov64(0, 0),              // 7
            exit(),                   // 8
            stx(Size::DW, 1, 0, 2),   // 9: callee: the stack argument into the parent's fp-8
            mov64r(0, 2),             // 10: and returned
            exit(),                   // 11
        ],
        &[caller_a()],
    );
    at(&k, 5, Base::MaybeStack, false);
    at(&k, 6, Base::MaybeStack, false);
    assert_eq!(k.stack_depth(SubprogId::MAIN), None);
}

/// A stack pointer stored to untracked memory (the stack escaped) may reach a local callee that
/// was passed none: the callee reads it as other memory and may hand it back in r0, where it is
/// the caller's frame again.
#[test]
fn ptrkind_escaped_stack_pointers_may_come_back_from_local_calls() {
    let k = kinds(&[
        mov64r(2, 10),            // 0
        alu64(AluOp::Add, 2, -8), // 1
        stx(Size::DW, 3, 0, 2),   // 2: this frame's fp-8 into other memory: the stack escapes
        mov64(2, 0),              // 3: no stack argument
        call_local(3),            // 4 -> 8
        st(Size::DW, 0, 0, 1),    // 5: r0: this frame or other memory
        mov64(0, 0),              // 6
        exit(),                   // 7
        ldx(Size::DW, 0, 3, 0),   // 8: callee: from other memory
        exit(),                   // 9
    ]);
    at(&k, 5, Base::MaybeStack, false);
}

/// A local callee that can reach the caller's frame (its stack escaped) may write any slot of
/// it with any value it has, the caller's stack pointers included (which it sees as other
/// memory).
#[test]
fn ptrkind_local_callees_may_write_the_callers_stack_pointers_into_its_frame() {
    let k = kinds(&[
        mov64r(1, 10),             // 0
        alu64(AluOp::Add, 1, -8),  // 1
        mov64r(2, 10),             // 2
        alu64(AluOp::Add, 2, -16), // 3
        st(Size::DW, 10, -8, 0),   // 4: a scalar at fp-8
        call_local(4),             // 5 -> 10
        ldx(Size::DW, 3, 10, -8),  // 6: fp-8: the scalar, or fp-16 the callee wrote
        st(Size::DW, 3, 0, 1),     // 7: this frame or other memory
        mov64(0, 0),               // 8
        exit(),                    // 9
        stx(Size::DW, 1, 0, 2),    // 10: callee: its caller's fp-16 into its caller's fp-8
        exit(),                    // 11
    ]);
    at(&k, 7, Base::MaybeStack, false);
}
