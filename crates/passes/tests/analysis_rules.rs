//! The analyses' documented rules, one hand-built program each, with the expected facts derived
//! from the rule (in the comments), not read off the analyses' output. The soundness of the
//! analyses against the VM is `analysis.rs`; these hold what soundness alone cannot: precision
//! (a fact the rule gives must not be lost) and the corners random programs do not reach.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use bpfpatch_insn::{AluOp, Cond, Endian, Op, Operand, Size, Slot, SwapKind, Width};
use bpfpatch_passes::internals::analysis::cfg::{BlockId, Cfg, SubprogId};
use bpfpatch_passes::internals::analysis::liveness::Liveness;
use bpfpatch_passes::internals::analysis::reach::{Fate, Model, Reach};
use bpfpatch_passes::internals::program::InsnIdx;
use common::*;

fn cfg(ops: &[Op]) -> Cfg {
    Cfg::new(&enc(ops)).expect("cfg")
}

const I: fn(u32) -> InsnIdx = InsnIdx;

// ---------------------------------------------------------------------------------------------
// CFG

/// `Subprog::blocks` is the half-open range of exactly the blocks whose instructions lie in the
/// subprogram's `start..end`.
#[test]
fn cfg_subprogram_block_ranges_cover_exactly_their_blocks() {
    let c = cfg(&[
        jmp(Cond::Eq, 1, 0, 1), // 0  main b0
        call_local(2),          // 1  main b1 -> 4
        mov64(0, 0),            // 2  main
        exit(),                 // 3  main
        jmp(Cond::Eq, 1, 0, 1), // 4  sub b
        mov64(0, 1),            // 5  sub b
        exit(),                 // 6  sub b
    ]);
    assert_eq!(c.subprogs().len(), 2);
    for (k, sp) in c.subprogs().iter().enumerate() {
        let mine: Vec<u32> = c
            .blocks()
            .iter()
            .enumerate()
            .filter(|(_, b)| b.start.0 >= sp.start.0 && b.start.0 < sp.end.0)
            .map(|(bi, _)| bi as u32)
            .collect();
        assert!(!mine.is_empty());
        assert_eq!(sp.blocks, (BlockId(mine[0]), BlockId(mine[mine.len() - 1] + 1)), "subprogram {k}: blocks {mine:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Liveness (rules of the module documentation of `analysis::liveness`)

fn upper(ops: &[Op]) -> Vec<Option<bool>> {
    let c = cfg(ops);
    let l = Liveness::analyze(&c);
    (0..c.prog().len() as u32).map(|i| l.upper_read(I(i))).collect()
}

/// A 64-bit definition kills: the upper half of the earlier 32-bit definition of the same
/// register is never read, although the register is read as 64 bits afterwards.
#[test]
fn liveness_a_64_bit_redefinition_kills_the_upper_half() {
    let u = upper(&[
        mov32(5, 5),  // 0: overwritten by 1 before the read at 2 -> not needed
        mov64(5, 1),  // 1
        mov64r(0, 5), // 2: 64-bit read of r5 (the value of 1)
        exit(),       // 3
    ]);
    assert_eq!(u[0], Some(false));
}

/// `LD_ABS`/`LD_IND` kill only r0: r1..r5 may keep their values on an interpreter that does
/// not clobber them, so a 32-bit definition of r2 before one, read as 64 bits after, needs its
/// upper half.
#[test]
fn liveness_packet_loads_kill_only_r0() {
    let u = upper(&[
        mov32(2, 7),                                         // 0: read at 2 -> needed
        Op::LdPacket { size: Size::W, index: None, imm: 0 }, // 1
        mov64r(0, 2),                                        // 2
        exit(),                                              // 3
    ]);
    assert_eq!(u[0], Some(true));
}

/// A block falling off the end of its subprogram reads every register: the 32-bit definition
/// of r3 right before the fall-off needs its upper half, as does r0's.
#[test]
fn liveness_falling_off_a_subprogram_reads_every_register() {
    let u = upper(&[
        call_local(2), // 0 -> 3
        mov32(3, 7),   // 1: falls off (into 3) -> needed
        mov32(0, 1),   // 2: needed
        exit(),        // 3: subprogram 1
    ]);
    assert_eq!(u[1], Some(true));
    assert_eq!(u[2], Some(true));
}

/// A callee's `exit` reads r0 and those of r1..r5 live after a call to it, not r6..r9
/// (callee-saved: the caller gets its own back), even when the caller reads r6 as 64 bits.
#[test]
fn liveness_callee_exit_does_not_read_callee_saved_registers() {
    let u = upper(&[
        call_local(2), // 0 -> 3
        mov64r(0, 6),  // 1: the caller's r6, read as 64 bits
        exit(),        // 2
        mov32(6, 1),   // 3: callee: r6 is restored at return -> not needed
        mov32(2, 1),   // 4: r2 is not read after the call -> not needed
        mov32(0, 0),   // 5: r0 at exit -> needed
        exit(),        // 6
    ]);
    assert_eq!(u[3], Some(false));
    assert_eq!(u[4], Some(false));
    assert_eq!(u[5], Some(true));
}

// ---------------------------------------------------------------------------------------------
// Reachability

fn fates(c: &Cfg, model: Model) -> Reach {
    Reach::analyze_model(c, &[], model)
}

/// The verifier model tracks a shift only by less than the operation's width
/// (`adjust_scalar_min_max_vals`: a shift by the width or more is `mark_reg_unknown`).
#[test]
fn reach_verifier_model_tracks_shifts_below_the_width_only() {
    let c = cfg(&[
        mov64(1, 1),                                     // 0
        mov64(2, 40),                                    // 1
        alu64r(AluOp::Lsh, 1, 2),                        // 2: 1 << 40, tracked (40 < 64)
        jmp(Cond::Eq, 1, 0, 0),                          // 3: 1 << 40 != 0: not taken
        mov64(3, 1),                                     // 4
        mov64(4, 64),                                    // 5
        alu64r(AluOp::Lsh, 3, 4),                        // 6: by 64: unknown
        jmp(Cond::Eq, 3, 0, 0),                          // 7: undecided
        mov32(5, 1),                                     // 8
        alu32r(AluOp::Lsh, 5, 2),                        // 9: 32-bit by 40: unknown
        jmp32(Cond::Eq, 5, 0, 0),                        // 10: undecided
        mov32(6, 1),                                     // 11
        alu(Width::W32, AluOp::Rsh, 6, Operand::Imm(0)), // 12: by 0: tracked, 1
        jmp32(Cond::Eq, 6, 1, 0),                        // 13: taken
        exit(),                                          // 14
    ]);
    let r = fates(&c, Model::Verifier { host: Endian::Little });
    assert_eq!(r.fate(I(3)), Some(Fate::NotTaken));
    assert_eq!(r.fate(I(7)), Some(Fate::Unknown));
    assert_eq!(r.fate(I(10)), Some(Fate::Unknown));
    assert_eq!(r.fate(I(13)), Some(Fate::Taken));
    // The exact model computes them all (a shift by the width or more masks the amount).
    let r = fates(&c, Model::Exact);
    assert_eq!(r.fate(I(7)), Some(Fate::NotTaken)); // 1 << (64 & 63) = 1
}

/// `bswap` swaps bytes whatever the host's byte order; `le`/`be` follow the host.
#[test]
fn reach_verifier_model_bswap_ignores_the_host_order() {
    let c = cfg(&[
        mov64(1, 0x0102),                                        // 0
        Op::Swap { kind: SwapKind::Bswap, bits: 16, dst: r(1) }, // 1: 0x0201 on any host
        jmp(Cond::Eq, 1, 0x0201, 0),                             // 2: taken
        mov64(2, 0x0102),                                        // 3
        Op::Swap { kind: SwapKind::Be, bits: 16, dst: r(2) },    // 4: big-endian host: unchanged
        jmp(Cond::Eq, 2, 0x0102, 0),                             // 5: taken
        exit(),                                                  // 6
    ]);
    let r = fates(&c, Model::Verifier { host: Endian::Big });
    assert_eq!(r.fate(I(2)), Some(Fate::Taken));
    assert_eq!(r.fate(I(5)), Some(Fate::Taken));
}

/// `x ^= x` and `x -= x` are 0 whatever `x` is.
#[test]
fn reach_xor_and_sub_of_a_register_with_itself_is_zero() {
    let c = cfg(&[
        alu64r(AluOp::Xor, 1, 1), // 0: r1 (an input) ^ r1 = 0
        jmp(Cond::Eq, 1, 0, 0),   // 1: taken
        alu32r(AluOp::Sub, 2, 2), // 2
        jmp(Cond::Ne, 2, 0, 0),   // 3: not taken
        exit(),                   // 4
    ]);
    let r = Reach::analyze(&c);
    assert_eq!(r.fate(I(1)), Some(Fate::Taken));
    assert_eq!(r.fate(I(3)), Some(Fate::NotTaken));
}

/// A subprogram whose address a reached `ld_imm64` takes (a callback) is reached.
#[test]
fn reach_reaches_a_callback_through_its_address() {
    let c = cfg(&[
        func_ref(2, 3), // 0 (slots 0-1) -> slot 4
        mov64(0, 0),    // 1
        exit(),         // 2
        mov64(0, 1),    // 3: callback
        exit(),         // 4
    ]);
    assert_eq!(c.callee(I(0)), Some(SubprogId(1)));
    let r = Reach::analyze(&c);
    assert!(r.subprog_reached(SubprogId::MAIN));
    assert!(r.subprog_reached(SubprogId(1)));
    assert!(r.reached(I(3)));
}

/// On the taken edge of `r1 == r2` with only r1 known, r2 is known to equal it.
#[test]
fn reach_learns_the_unknown_register_operand_on_the_equal_edge() {
    let c = cfg(&[
        mov64(1, 5),             // 0
        jmpr(Cond::Eq, 1, 2, 2), // 1: r2 is an input; taken -> 4 with r2 == 5
        mov64(0, 0),             // 2
        exit(),                  // 3
        jmp(Cond::Eq, 2, 5, 1),  // 4: always taken
        mov64(0, 1),             // 5: dead
        exit(),                  // 6
    ]);
    let r = Reach::analyze(&c);
    assert_eq!(r.fate(I(4)), Some(Fate::Taken));
    assert!(!r.reached(I(5)));
}

/// Declared entries (`Cfg::with_entries`) are reached from outside, like the main program.
#[test]
fn reach_reaches_declared_entries_nobody_calls() {
    let insns = enc(&[
        mov64(0, 0), // 0 main
        exit(),      // 1
        mov64(0, 1), // 2: a declared entry, never called
        exit(),      // 3
    ]);
    let c = Cfg::with_entries(&insns, &[Slot(2)]).unwrap();
    assert_eq!(c.subprogs().len(), 2);
    let r = Reach::analyze(&c);
    assert!(r.subprog_reached(SubprogId::MAIN));
    assert!(r.subprog_reached(SubprogId(1)));
    assert!(r.reached(I(2)));
}
