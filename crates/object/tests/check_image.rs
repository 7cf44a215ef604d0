//! `check_insns`: structural validation of bare instruction images, one test per finding.

#![allow(clippy::unwrap_used)]

use bpfpatch_insn::{DecodeOptions, Insn, opcode as c};
use bpfpatch_object::{FindingKind, check_insns};

fn mov(imm: i32) -> Insn {
    Insn::new(c::ALU64 | c::MOV, 0, 0, 0, imm)
}
fn ja(off: i16) -> Insn {
    Insn::new(c::JMP | c::JA, 0, 0, off, 0)
}
fn call(imm: i32) -> Insn {
    Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_CALL, 0, imm)
}
const EXIT: Insn = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);

#[test]
fn a_valid_image_with_a_subprogram_passes() {
    // call +2 (subprogram at 3); goto +0; exit; r0 = 1; exit
    assert_eq!(check_insns(&[call(2), ja(0), EXIT, mov(1), EXIT], DecodeOptions::default()), vec![]);
    assert_eq!(check_insns(&[], DecodeOptions::default()), vec![]);
}

#[test]
fn each_finding_on_its_slot() {
    let d = DecodeOptions::default();
    assert_eq!(check_insns(&[ja(5), EXIT], d), vec![FindingKind::TargetOutOfRange { slot: 0, target: 6 }]);
    let ld = Insn::new(c::LD_IMM64, 0, 0, 0, 1);
    assert_eq!(
        check_insns(&[ja(1), ld, Insn::default(), EXIT], d),
        vec![FindingKind::TargetInsideLdImm64 { slot: 0, target: 2 }]
    );
    // The subprogram called at 3 is left by the jump at 1.
    assert_eq!(
        check_insns(&[call(2), ja(2), EXIT, mov(0), EXIT], d),
        vec![FindingKind::JumpOutOfSubprogram { slot: 1, target: 4 }]
    );
    let bad = Insn::new(0xff, 0, 0, 0, 0);
    assert!(matches!(check_insns(&[bad, EXIT], d)[..], [FindingKind::Decode { slot: 0, .. }]));
}

#[test]
fn internal_forms_need_the_internal_options() {
    let tail_call = Insn::new(c::JMP | c::TAIL_CALL, 0, 0, 0, 0);
    assert!(matches!(
        check_insns(&[tail_call, EXIT], DecodeOptions::default())[..],
        [FindingKind::Decode { slot: 0, .. }]
    ));
    assert_eq!(check_insns(&[tail_call, EXIT], DecodeOptions::INTERNAL), vec![]);
}

/// Objects too: an internal `tail_call` written into a program section is a finding for `check`
/// and accepted by `check_with(INTERNAL)`.
#[test]
fn objects_with_internal_forms() {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/prog-el.o")).unwrap();
    let obj = bpfpatch_object::BpfObject::parse(&bytes).unwrap();
    let (_, xdp) = obj.program_by_name("xdp").unwrap();
    let at = usize::try_from(obj.section_headers()[xdp.section()].offset).unwrap();
    let mut b = bytes.clone();
    b[at..at + 8].copy_from_slice(&[c::JMP | c::TAIL_CALL, 0, 0, 0, 0, 0, 0, 0]);
    let obj = bpfpatch_object::BpfObject::parse(&b).unwrap();
    let f = bpfpatch_object::check(&obj);
    assert!(matches!(f[..], [bpfpatch_object::Finding { kind: FindingKind::Decode { slot: 0, .. }, .. }]), "{f:?}");
    assert_eq!(bpfpatch_object::check_with(&obj, DecodeOptions::INTERNAL), vec![]);
}

/// The kernel's `check_subprogs`: every subprogram (and the program) ends with an exit or an
/// unconditional jump; a kfunc call (such as `bpf_throw`) is accepted there (fuzz finding: a
/// passes rewrite turned a fall-through into a jump across the boundary, which then failed
/// `check`).
#[test]
fn subprograms_must_not_fall_through() {
    let d = DecodeOptions::default();
    // main falls into the subprogram at 2.
    assert_eq!(check_insns(&[call(1), mov(0), mov(1), EXIT], d), vec![FindingKind::FallsThrough { slot: 1 }]);
    // the subprogram at 2 runs off the end.
    assert_eq!(check_insns(&[call(1), EXIT, mov(1)], d), vec![FindingKind::FallsThrough { slot: 2 }]);
    // an ld_imm64 last: named by its first slot.
    let ld = Insn::new(c::LD_IMM64, 0, 0, 0, 1);
    assert_eq!(check_insns(&[mov(0), ld, Insn::default()], d), vec![FindingKind::FallsThrough { slot: 1 }]);
    // goto, gotol and a kfunc call end a subprogram.
    let gotol = Insn::new(c::JMP32 | c::JA, 0, 0, 0, -2);
    let kfunc = Insn::new(c::JMP | c::CALL, 0, 2, 0, 7);
    assert_eq!(check_insns(&[call(1), ja(-2), mov(1), gotol], d), vec![]);
    assert_eq!(check_insns(&[mov(0), kfunc], d), vec![]);
}
