//! Protected slots: instructions a relocation fills in later are never rewritten by a pass.
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
