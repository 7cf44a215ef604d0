//! Decode/encode round trips over every opcode, both byte orders, and the RFC 9669 opcode table
//! as an independent oracle of which opcodes exist.

use bpfpatch_insn::{
    AluOp, DecodeError, DecodeOptions, Endian, Insn, Op, Reason, Slot, decode, decode_program, opcode as c,
};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Every opcode byte RFC 9669 (appendix A) defines, plus the Linux-internal ones when `internal`.
/// Written out by hand from the RFC table, independently of the decoder.
fn rfc_opcodes(internal: bool) -> BTreeSet<u8> {
    let mut s = BTreeSet::new();
    // ALU64 and ALU, K and X, for add..arsh (0x00..0xc0) except NEG|X.
    for class in [0x07u8, 0x04] {
        for op in (0x00u8..=0xc0).step_by(0x10) {
            s.insert(class | op);
            if op != 0x80 {
                s.insert(class | op | 0x08);
            }
        }
    }
    s.extend([0xd4, 0xdc, 0xd7]); // le, be, bswap
    // JMP: ja, conditions K/X, call, exit, may_goto; JMP32: gotol, conditions K/X.
    s.insert(0x05);
    s.extend([0x85, 0x95, 0xe5]);
    s.insert(0x8d); // callx (conformance vectors)
    s.insert(0x06);
    for class in [0x05u8, 0x06] {
        for op in [0x10u8, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0] {
            s.insert(class | op);
            s.insert(class | op | 0x08);
        }
    }
    // LD: lddw, legacy abs/ind W/H/B.
    s.extend([0x18, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50]);
    // LDX MEM (4 sizes), MEMSX (3 sizes); ST MEM; STX MEM; atomics W/DW.
    s.extend([0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91]);
    s.extend([0x62, 0x6a, 0x72, 0x7a]);
    s.extend([0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb]);
    if internal {
        s.insert(0xf5); // tail call
        s.insert(0xc2); // nospec
    }
    s
}

/// Field values that exercise every decoding rule (valid and reserved).
const REGS: [u8; 6] = [0, 1, 10, 11, 12, 15];
const OFFS: [i16; 8] = [0, 1, -1, 8, 16, 32, 7, i16::MIN];
const IMMS: [i32; 14] = [0, 1, -1, 16, 32, 64, 0x40, 0x41, 0x50, 0xa1, 0xe1, 0xf1, 0x7fff_ffff, i32::MIN];

fn all_candidates(code: u8) -> impl Iterator<Item = Insn> {
    REGS.into_iter().flat_map(move |d| {
        REGS.into_iter().flat_map(move |s| {
            OFFS.into_iter().flat_map(move |o| IMMS.into_iter().map(move |i| Insn::new(code, d, s, o, i)))
        })
    })
}

#[test]
fn decoder_accepts_exactly_the_rfc_opcodes() {
    for internal in [false, true] {
        let opts = DecodeOptions { internal };
        let expected = rfc_opcodes(internal);
        let tail = Insn::new(0, 0, 0, 0, 7);
        let mut accepted = BTreeSet::new();
        for code in 0..=255u8 {
            if all_candidates(code).any(|i| decode(&[i, tail], opts).is_ok()) {
                accepted.insert(code);
            }
        }
        let missing: Vec<_> = expected.difference(&accepted).map(|c| format!("{c:#04x}")).collect();
        let extra: Vec<_> = accepted.difference(&expected).map(|c| format!("{c:#04x}")).collect();
        assert!(missing.is_empty() && extra.is_empty(), "internal={internal} missing {missing:?} extra {extra:?}");
    }
}

#[test]
fn every_accepted_encoding_round_trips_in_both_byte_orders() {
    let tail = Insn::new(0, 0, 0, 0, -5);
    let mut n = 0usize;
    for code in 0..=255u8 {
        for insn in all_candidates(code) {
            for endian in [Endian::Little, Endian::Big] {
                let bytes = insn.to_bytes(endian);
                assert_eq!(Insn::from_bytes(bytes, endian), insn);
            }
            let Ok((op, len)) = decode(&[insn, tail], DecodeOptions::INTERNAL) else { continue };
            n += 1;
            let enc = op.encode();
            assert_eq!(enc.len(), len);
            assert_eq!(enc[0], insn, "{op:?}");
            if len == 2 {
                assert_eq!(enc[1], tail);
            }
            assert_eq!(op.slots(), len);
        }
    }
    // Sanity: the candidate space contains many valid encodings.
    assert!(n > 10_000, "only {n} valid encodings found");
}

#[test]
fn big_endian_swaps_register_nibbles() {
    // mov64 r1, r2 : LE regs byte = src<<4|dst = 0x21; BE = dst<<4|src = 0x12.
    let i = Insn::new(c::ALU64 | c::MOV | c::X, 1, 2, 0x0102, 0x0304_0506);
    assert_eq!(i.to_bytes(Endian::Little), [0xbf, 0x21, 0x02, 0x01, 0x06, 0x05, 0x04, 0x03]);
    assert_eq!(i.to_bytes(Endian::Big), [0xbf, 0x12, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06]);
}

#[test]
fn conformance_word_form_is_little_endian_u64() {
    // From lddw.data: 0x5566778800000018 = lddw r0 first slot.
    let i = Insn::from_word(0x5566_7788_0000_0018);
    assert_eq!((i.code, i.dst(), i.src(), i.off, i.imm), (0x18, 0, 0, 0, 0x5566_7788));
    assert_eq!(i.to_word(), 0x5566_7788_0000_0018);
}

#[test]
fn reserved_fields_are_rejected_with_their_name() {
    use bpfpatch_insn::Field;
    let cases: &[(Insn, Reason)] = &[
        (Insn::new(0x07, 0, 1, 0, 1), Reason::Reserved(Field::Src)), // add64 imm with src
        (Insn::new(0x0f, 0, 0, 0, 1), Reason::Reserved(Field::Imm)), // add64 reg with imm
        (Insn::new(0x0f, 0, 0, 1, 0), Reason::Reserved(Field::Off)), // add64 reg with off
        (Insn::new(0x85, 1, 0, 0, 0), Reason::Reserved(Field::Dst)), // call with dst
        (Insn::new(0x85, 0, 0, 1, 0), Reason::Reserved(Field::Off)), // helper call with off
        (Insn::new(0x95, 0, 0, 0, 1), Reason::Reserved(Field::Imm)), // exit with imm
        (Insn::new(0x05, 0, 0, 0, 1), Reason::Reserved(Field::Imm)), // ja with imm
        (Insn::new(0x06, 0, 0, 1, 0), Reason::Reserved(Field::Off)), // gotol with off
        (Insn::new(0x79, 0, 10, -8, 1), Reason::Reserved(Field::Imm)), // ldxdw with imm
        (Insn::new(0x7a, 10, 1, -8, 0), Reason::Reserved(Field::Src)), // stdw with src
        (Insn::new(0xd4, 0, 0, 1, 16), Reason::Reserved(Field::Off)), // le16 with off
        (Insn::new(0x84, 0, 0, 0, 1), Reason::Reserved(Field::Imm)), // neg with imm
    ];
    for (insn, want) in cases {
        let got = decode(&[*insn], DecodeOptions::default()).map(|_| ()).unwrap_err();
        assert_eq!(got, *want, "{insn:?}");
    }
}

#[test]
fn value_errors_name_the_field() {
    use bpfpatch_insn::Field;
    let bad = |i: Insn| decode(&[i], DecodeOptions::default()).map(|_| ()).unwrap_err();
    assert_eq!(bad(Insn::new(0x3f, 0, 1, 2, 0)), Reason::BadValue { field: Field::Off, value: 2 }); // div off 2
    assert_eq!(bad(Insn::new(0xbc, 0, 1, 32, 0)), Reason::BadValue { field: Field::Off, value: 32 }); // movsx32 in ALU32
    assert_eq!(bad(Insn::new(0xd4, 0, 0, 0, 8)), Reason::BadValue { field: Field::Imm, value: 8 }); // le8
    assert_eq!(bad(Insn::new(0xc3, 1, 2, 0, 0x10)), Reason::BadValue { field: Field::Imm, value: 0x10 }); // atomic sub
    assert_eq!(bad(Insn::new(0x85, 0, 3, 0, 0)), Reason::BadValue { field: Field::Src, value: 3 }); // call src 3
    assert_eq!(bad(Insn::new(0x18, 0, 7, 0, 0)), Reason::BadValue { field: Field::Src, value: 7 }); // lddw src 7
    assert_eq!(bad(Insn::new(0x0f, 0, 12, 0, 0)), Reason::BadRegister { field: Field::Src, reg: 12 });
    assert_eq!(bad(Insn::new(0x0f, 11, 0, 0, 0)), Reason::InternalOnly); // AX without the option
    assert_eq!(bad(Insn::new(0xf5, 0, 0, 0, 0)), Reason::InternalOnly); // tail call
    assert_eq!(bad(Insn::new(0xc2, 0, 0, 0, 0)), Reason::InternalOnly); // nospec
}

#[test]
fn kernel_zext_is_internal_only() {
    use bpfpatch_insn::{Field, Reg, RegSet};
    // BPF_ZEXT_REG(r3): mov32 r3, r3 with imm 1.
    let z = Insn::new(c::ALU | c::MOV | c::X, 3, 3, 0, 1);
    assert_eq!(decode(&[z], DecodeOptions::default()).unwrap_err(), Reason::Reserved(Field::Imm));
    let (op, _) = decode(&[z], DecodeOptions::INTERNAL).unwrap();
    assert_eq!(op, Op::Zext { dst: Reg::R3 });
    assert_eq!(op.encode()[0], z);
    assert_eq!(
        (op.uses(), op.defs(), op.def_reg(), op.is_def32()),
        (RegSet::of(Reg::R3), RegSet::of(Reg::R3), Some(Reg::R3), true)
    );
    // With different registers it is no zext, and stays invalid.
    assert!(decode(&[Insn::new(c::ALU | c::MOV | c::X, 3, 4, 0, 1)], DecodeOptions::INTERNAL).is_err());
}

#[test]
fn ld_imm64_needs_a_clean_second_slot() {
    use bpfpatch_insn::Field;
    let first = Insn::new(c::LD_IMM64, 1, 0, 0, 5);
    assert_eq!(decode(&[first], DecodeOptions::default()).unwrap_err(), Reason::TruncatedLdImm64);
    for (tail, f) in [
        (Insn::new(0x07, 0, 0, 0, 0), Field::Code),
        (Insn::new(0, 1, 0, 0, 0), Field::Dst),
        (Insn::new(0, 0, 1, 0, 0), Field::Src),
        (Insn::new(0, 0, 0, 1, 0), Field::Off),
    ] {
        assert_eq!(decode(&[first, tail], DecodeOptions::default()).unwrap_err(), Reason::BadLdImm64Tail(f));
    }
    let (op, n) = decode(&[first, Insn::new(0, 0, 0, 0, -1)], DecodeOptions::default()).unwrap();
    assert_eq!(n, 2);
    assert!(matches!(op, Op::LdImm64 { lo: 5, hi: -1, .. }));
}

#[test]
fn decode_program_names_the_failing_slot() {
    let prog = [
        Insn::new(c::LD_IMM64, 0, 0, 0, 1),
        Insn::new(0, 0, 0, 0, 0),
        Insn::new(0x07, 0, 0, 0, 1),
        Insn::new(0xff, 0, 0, 0, 0),
    ];
    let err = decode_program(&prog, DecodeOptions::default()).unwrap_err();
    assert_eq!(err, DecodeError::Invalid { slot: Slot(3), code: 0xff, reason: Reason::UnknownOpcode });
    assert_eq!(err.to_string(), "slot 3: unknown opcode (opcode 0xff)");
    let ok = decode_program(&prog[..3], DecodeOptions::default()).unwrap();
    assert_eq!(ok.iter().map(|(s, _)| s.0).collect::<Vec<_>>(), vec![0, 2]);
}

#[test]
fn typed_view_of_v4_forms() {
    use bpfpatch_insn::{Operand, Reg, Width};
    let d = |i: Insn| decode(&[i], DecodeOptions::default()).unwrap().0;
    assert_eq!(
        d(Insn::new(0x3f, 1, 2, 1, 0)),
        Op::Alu { width: Width::W64, op: AluOp::SDiv, dst: Reg::R1, src: Operand::Reg(Reg::R2) }
    );
    assert_eq!(
        d(Insn::new(0xbc, 1, 2, 8, 0)),
        Op::Alu { width: Width::W32, op: AluOp::MovSx(8), dst: Reg::R1, src: Operand::Reg(Reg::R2) }
    );
    assert_eq!(d(Insn::new(0x06, 0, 0, 0, -70_000)), Op::Ja { delta: -70_000, long: true });
    assert_eq!(d(Insn::new(0xe5, 0, 0, 3, 0)), Op::MayGoto { off: 3 });
}

#[test]
fn slot_images_reject_trailing_bytes() {
    assert_eq!(
        bpfpatch_insn::slots_from_bytes(&[0u8; 9], Endian::Little).unwrap_err(),
        DecodeError::TrailingBytes { len: 9 }
    );
    let insns = vec![Insn::new(0xb7, 0, 0, 0, 1), Insn::new(0x95, 0, 0, 0, 0)];
    for e in [Endian::Little, Endian::Big] {
        let bytes = bpfpatch_insn::slots_to_bytes(&insns, e);
        assert_eq!(bpfpatch_insn::slots_from_bytes(&bytes, e).unwrap(), insns);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("BPFPATCH_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)))]

    /// Any two words: decoding never panics, and what decodes re-encodes to the same slots.
    #[test]
    fn random_words_never_panic_and_round_trip(w0: u64, w1: u64, internal: bool) {
        let slots = [Insn::from_word(w0), Insn::from_word(w1)];
        if let Ok((op, n)) = decode(&slots, DecodeOptions { internal }) {
            prop_assert_eq!(&*op.encode(), &slots[..n]);
        }
        let bytes: Vec<u8> = w0.to_le_bytes().into_iter().chain(w1.to_be_bytes()).collect();
        for e in [Endian::Little, Endian::Big] {
            let s = bpfpatch_insn::slots_from_bytes(&bytes, e).unwrap();
            let _ = decode_program(&s, DecodeOptions { internal });
            prop_assert_eq!(bpfpatch_insn::slots_to_bytes(&s, e), bytes.clone());
        }
    }

    /// Target helpers agree with the typed view on which instructions carry PC-relative targets.
    #[test]
    fn target_field_matches_typed_view(w0: u64) {
        let i = Insn::from_word(w0);
        let tail = Insn::new(0, 0, 0, 0, 0);
        if let Ok((op, _)) = decode(&[i, tail], DecodeOptions::INTERNAL) {
            let has_target = matches!(
                op,
                Op::Ja { .. } | Op::Jump { .. } | Op::MayGoto { .. }
                    | Op::Call(bpfpatch_insn::CallKind::Local(_))
                    | Op::LdImm64 { kind: bpfpatch_insn::LdImm64Kind::Func, .. }
            );
            prop_assert_eq!(i.target_field().is_some(), has_target, "{:?}", op);
        }
    }
}
