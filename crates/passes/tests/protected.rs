//! Protected slots: instructions a loader fills in later are never rewritten by a pass, and the
//! analyses do not rely on what they compute.
#![allow(clippy::unwrap_used)]

use bpfpatch_insn::{Insn, Slot, opcode as c};
use bpfpatch_passes::{Options, Pass, Pipeline};

#[test]
fn blinding_skips_protected_instructions_and_the_map_follows_them() {
    // 0: r1 = 0 ll (an object's map reference, relocated later); 2: r0 = 7; 3: r0 += r1; 4: exit
    let prog = [
        Insn::new(c::LD_IMM64, 1, 0, 0, 0),
        Insn::new(0, 0, 0, 0, 0),
        Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 7),
        Insn::new(c::ALU64 | c::ADD | c::X, 0, 1, 0, 0),
        Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0),
    ];
    let blind = Pipeline::parse("").unwrap().with(Pass::Blind);
    // Unprotected: the ld_imm64 is blinded into 7 instructions, the mov into 3.
    let open = blind.run(&prog, &Options::default()).unwrap();
    assert_eq!(open.insns.len(), 7 + 3 + 2);
    // Protected: the ld_imm64 stays as it is, and the map says where it went.
    let opts = Options { protected: vec![Slot(0)], ..Options::default() };
    let kept = blind.run(&prog, &opts).unwrap();
    assert_eq!(kept.insns.len(), 2 + 3 + 2);
    let at = kept.map.insn(Slot(0)).unwrap().0;
    assert_eq!(&kept.insns[at..at + 2], &prog[..2]);
}

/// What a protected instruction computes is a placeholder (a CO-RE type id or field-exists
/// flag that the loader fills in): dead-code removal must not decide a branch on it.
#[test]
fn dce_does_not_fold_branches_on_protected_constants() {
    let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    let progs: [Vec<Insn>; 2] = [
        // 0: r1 = 2 ll (CO-RE type id); 2: if r1 == 0 goto 5; 3: r0 = 1; 4: exit; 5: r0 = 0; 6: exit
        vec![
            Insn::new(c::LD_IMM64, 1, 0, 0, 2),
            Insn::new(0, 0, 0, 0, 0),
            Insn::new(c::JMP | c::JEQ | c::K, 1, 0, 2, 0),
            Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 1),
            exit,
            Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 0),
            exit,
        ],
        // 0: w1 = 1 (CO-RE field exists); 1: if w1 != 0 goto 4; 2: r0 = 0; 3: exit; 4: r0 = 1; 5: exit
        vec![
            Insn::new(c::ALU | c::MOV | c::K, 1, 0, 0, 1),
            Insn::new(c::JMP32 | c::JNE | c::K, 1, 0, 2, 0),
            Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 0),
            exit,
            Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 1),
            exit,
        ],
    ];
    let dce = Pipeline::parse("dce").unwrap();
    for prog in progs {
        let folded = dce.run(&prog, &Options::default()).unwrap();
        assert!(folded.insns.len() < prog.len(), "unprotected: the branch is decided and dead code removed");
        let kept = dce.run(&prog, &Options { protected: vec![Slot(0)], ..Options::default() }).unwrap();
        assert_eq!(kept.insns, prog, "protected: nothing is decidable");
    }
}

/// A stack offset built from a protected immediate or offset is unknown: `fixups` cannot place
/// the `may_goto` count below the frame (it would be placed by a placeholder) and says so.
#[test]
fn stack_depth_from_protected_offsets_is_unknown() {
    let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    let tail = [Insn::new(c::JMP | c::JCOND, 0, 0, 0, 0), Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 0), exit];
    // 0: r1 = r10; 1: r1 += -16; 2: *(u64 *)(r1 + 0) = r2; then may_goto
    let mut through_alu = vec![
        Insn::new(c::ALU64 | c::MOV | c::X, 1, 10, 0, 0),
        Insn::new(c::ALU64 | c::ADD | c::K, 1, 0, 0, -16),
        Insn::new(c::STX | c::MEM | c::DW, 1, 2, 0, 0),
    ];
    through_alu.extend(tail);
    // 0: *(u64 *)(r10 - 16) = r2; then may_goto
    let mut direct = vec![Insn::new(c::STX | c::MEM | c::DW, 10, 2, -16, 0)];
    direct.extend(tail);
    let fixups = Pipeline::parse("fixups").unwrap();
    for (prog, slot) in [(through_alu, 1), (direct, 0)] {
        let ok = fixups.run(&prog, &Options::default()).unwrap();
        // The timed form's pair at fp - 16 - 16, its count stored before the first instruction.
        assert_eq!(
            ok.insns[0],
            Insn::new(c::ST | c::MEM | c::DW, 10, 0, -32, bpfpatch_passes::internals::fixups::BPF_MAX_TIMED_LOOPS)
        );
        let e = fixups.run(&prog, &Options { protected: vec![Slot(slot)], ..Options::default() });
        assert!(matches!(e, Err(bpfpatch_passes::PassError::StackDepthUnknown { .. })), "slot {slot}: {e:?}");
    }
}
