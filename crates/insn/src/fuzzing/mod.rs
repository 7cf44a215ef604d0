//! Fuzzing oracle of the instruction set, shared by `fuzz/` (libFuzzer) and the smoke test.
//!
//! [`roundtrip`] takes arbitrary bytes and **panics when a property is violated**. Not part of
//! the stable API: compiled only with the `fuzzing` feature.
// An oracle's job is to panic on a broken property.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod rng;
pub use rng::Rng;

use crate::{DecodeError, DecodeOptions, Endian, Insn, Op, decode, decode_program, slots_from_bytes, slots_to_bytes};

/// The instruction-set round trips on `data` read as an image in both byte orders:
/// - bytes → slots → bytes is the identity; a length that is not a multiple of 8 is
///   [`DecodeError::TrailingBytes`] with that length;
/// - every slot that decodes (user or kernel-internal forms) re-encodes to exactly its slots,
///   with [`Op::slots`] slots; what decodes as user input decodes to the same op as internal;
///   the register, target and classification queries answer without panicking, and a target
///   exists exactly when the slot has a PC-relative field;
/// - [`decode_program`] either succeeds, and re-encoding its ops gives back the whole image,
///   or fails at a slot `s` where decoding from `s` fails with the same reason, after a prefix
///   that decodes.
///
/// # Panics
/// When a property is violated.
pub fn roundtrip(data: &[u8]) {
    let whole = data.len() / 8 * 8;
    for endian in [Endian::Little, Endian::Big] {
        match slots_from_bytes(data, endian) {
            Ok(slots) => {
                assert_eq!(whole, data.len());
                assert_eq!(slots_to_bytes(&slots, endian), data, "{endian:?} bytes do not round-trip");
            }
            Err(DecodeError::TrailingBytes { len }) => assert!(len == data.len() && whole != len),
            Err(e) => panic!("slots_from_bytes: unexpected {e:?}"),
        }
        let slots = slots_from_bytes(&data[..whole], endian).expect("whole slots");
        for (i, slot) in slots.iter().enumerate() {
            assert_eq!(Insn::from_bytes(slot.to_bytes(endian), endian), *slot);
            assert_eq!(Insn::from_word(slot.to_word()), *slot);
            let _ = (slot.abs_target(i), slot.rel_target(), slot.is_cond_jump(), slot.is_terminator());
            let user = decode(&slots[i..], DecodeOptions::default());
            let internal = decode(&slots[i..], DecodeOptions::INTERNAL);
            if let Ok(u) = user {
                assert_eq!(internal, Ok(u), "slot {i}: user form decodes differently as internal");
            }
            if let Ok((op, n)) = internal {
                check_op(&op, &slots[i..i + n], i);
            }
        }
        for opts in [DecodeOptions::default(), DecodeOptions::INTERNAL] {
            match decode_program(&slots, opts) {
                Ok(ops) => {
                    let mut out: Vec<Insn> = Vec::with_capacity(slots.len());
                    for (s, op) in &ops {
                        assert_eq!(s.0, out.len(), "decode_program slot numbering");
                        out.extend_from_slice(&op.encode());
                    }
                    assert_eq!(out, slots, "decode_program does not re-encode to its input");
                }
                Err(DecodeError::Invalid { slot, code, reason }) => {
                    let s = slot.0;
                    assert!(s < slots.len() && slots[s].code == code, "error names slot {s} code {code:#x}");
                    assert_eq!(decode(&slots[s..], opts).err(), Some(reason), "slot {s}: reason differs");
                    assert!(decode_program(&slots[..s], opts).is_ok(), "prefix before slot {s} must decode");
                }
                Err(e) => panic!("decode_program: unexpected {e:?}"),
            }
        }
    }
}

fn check_op(op: &Op, slots: &[Insn], at: usize) {
    let enc = op.encode();
    assert_eq!(enc.as_slice(), slots, "slot {at}: {op:?} does not re-encode to its slots");
    assert_eq!(op.slots(), slots.len(), "slot {at}: {op:?} length");
    let _ = (op.uses(), op.defs(), op.def_reg(), op.is_def32(), op.local_call());
    // The raw view and the typed view agree on whether there is a PC-relative field.
    let has_target = matches!(op, Op::Ja { .. } | Op::Jump { .. } | Op::MayGoto { .. })
        || matches!(op, Op::Call(crate::CallKind::Local(_)))
        || matches!(op, Op::LdImm64 { kind: crate::LdImm64Kind::Func, .. });
    assert_eq!(slots[0].target_field().is_some(), has_target, "slot {at}: {op:?} target field");
}

/// How many generated cases a smoke test runs: `BPFPATCH_SMOKE_CASES` when set, else `default`.
#[must_use]
pub fn smoke_cases(default: usize) -> usize {
    std::env::var("BPFPATCH_SMOKE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
