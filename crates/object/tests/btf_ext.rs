//! `.BTF.ext` records read from the committed test objects, checked against the C sources
//! they were built from (tests/data/*.c): the oracle is the source file, not our reader.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bpfpatch_object::{BpfObject, BtfExt, BtfExtError};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// Every line_info record's line number names the source line whose text `.BTF` holds for it,
/// and its column (1-based; 0 for a function's first record) points at a token of that line.
#[test]
fn line_info_line_and_column_match_the_source() {
    for src in ["prog", "calls", "dwarf"] {
        let source = std::fs::read_to_string(format!("{DATA}/{src}.c")).unwrap();
        let lines: Vec<&str> = source.lines().collect();
        for order in ["el", "eb"] {
            let what = format!("{src}-{order}.o");
            let obj = BpfObject::parse(&std::fs::read(format!("{DATA}/{what}")).unwrap()).unwrap();
            let (mut records, mut columns) = (0, 0);
            for p in 0..obj.programs().len() {
                for li in obj.line_info(p) {
                    let (file, text) = obj.line_text(li).unwrap();
                    assert!(file.ends_with(&format!("/{src}.c")), "{what}: file {file}");
                    let line = li.line() as usize;
                    assert!((1..=lines.len()).contains(&line), "{what}: line {line} of {}", lines.len());
                    assert_eq!(lines[line - 1], text, "{what}: line {line}");
                    let col = li.column() as usize;
                    if col != 0 {
                        let c = text.as_bytes().get(col - 1).copied();
                        assert!(c.is_some_and(|c| !c.is_ascii_whitespace()), "{what}: column {col} of {text:?}");
                        columns += 1;
                    }
                    records += 1;
                }
            }
            assert!(records >= 10 && columns * 2 >= records, "{what}: {records} records, {columns} with a column");
        }
    }
}

/// A hand-made `.BTF.ext`: two func_info records of 12 bytes, 4 more than this version knows
/// (a later field's, which must survive); line_info empty or, with `line_header_only`, just its
/// record size (16) and no block; core_relo empty.
fn hand_made(line_header_only: bool) -> Vec<u8> {
    fn u32le(b: &mut Vec<u8>, v: u32) {
        b.extend(v.to_le_bytes());
    }
    let mut b = Vec::new();
    b.extend(0xeb9f_u16.to_le_bytes());
    b.extend([1, 0]); // version, flags
    let line_len = if line_header_only { 4 } else { 0 };
    // hdr_len; func_info at 0, 36 bytes; line_info at 36; core_relo after it, empty
    for v in [32, 0, 36, 36, line_len, 36 + line_len, 0] {
        u32le(&mut b, v);
    }
    u32le(&mut b, 12); // func_info record size
    u32le(&mut b, 1); // sec_name_off
    u32le(&mut b, 2); // two records
    for (insn_off, type_id, later) in [(0, 3, *b"XYZW"), (16, 4, *b"abcd")] {
        u32le(&mut b, insn_off);
        u32le(&mut b, type_id);
        b.extend(later);
    }
    if line_header_only {
        u32le(&mut b, 16);
    }
    assert_eq!(b.len(), 32 + 36 + line_len as usize);
    b
}

/// The counts are the records written by hand, and encoding the parsed section gives back its
/// bytes (the oracle is the input): the longer records keep their bytes, and a header-only
/// area stays one (clang writes neither, so the committed objects cannot tell).
#[test]
fn records_longer_than_known_keep_their_bytes_and_counts() {
    for header_only in [false, true] {
        let b = hand_made(header_only);
        let ext = BtfExt::parse(&b, None).unwrap();
        assert_eq!((ext.func_info().len(), ext.func_info().is_empty()), (2, false));
        assert_eq!((ext.line_info().len(), ext.line_info().is_empty()), (0, true));
        assert_eq!((ext.core_relo().len(), ext.core_relo().is_empty()), (0, true));
        let recs = &ext.func_info().blocks[0].records;
        assert_eq!((recs[1].insn_off, recs[1].type_id), (16, 4));
        assert_eq!(ext.encode().unwrap(), (b, vec![]), "header-only line_info: {header_only}");
    }
}

/// An area shorter than its 4-byte record size is truncated, even when the section has the
/// bytes after it (the record size must lie inside the area).
#[test]
fn an_area_shorter_than_its_record_size_is_truncated() {
    let mut b = hand_made(false);
    b[12..16].copy_from_slice(&2u32.to_le_bytes()); // func_info_len
    let err = BtfExt::parse(&b, None).unwrap_err();
    assert_eq!(err, BtfExtError::Truncated { what: "record size", offset: 32, need: 4, len: 68 });
}

/// A `.BTF.ext` of one func_info area holding `area` (record size first), followed in the
/// section by 16 bytes no area claims: a reader that looks past an area's end finds bytes
/// there instead of the section's end.
fn one_area(area: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(0xeb9f_u16.to_le_bytes());
    b.extend([1, 0]);
    let len = u32::try_from(4 * area.len()).unwrap();
    for v in [32, 0, len, len, 0, len, 0].into_iter().chain(area.iter().copied()) {
        b.extend(v.to_le_bytes());
    }
    b.extend([0x11; 16]);
    b
}

/// Blocks that do not fit their area are refused with the block, its offset, its record
/// count and the area's end, as the parser documents, and not read from the bytes after it.
#[test]
fn blocks_must_fit_their_area() {
    use bpfpatch_object::InfoKind::FuncInfo;
    let overrun =
        |block, offset, num, end| BtfExtError::BlockOverrun { kind: FuncInfo, block, offset, num, rec_size: 8, end };
    // One good block, then 4 stray bytes: too short for a block header.
    let b = one_area(&[8, 1, 1, 0, 3, 0]);
    assert_eq!(BtfExt::parse(&b, None).unwrap_err(), overrun(1, 52, 0, 56));
    // A block header claiming one record, and nothing after it in the area.
    let b = one_area(&[8, 1, 1]);
    assert_eq!(BtfExt::parse(&b, None).unwrap_err(), overrun(0, 36, 1, 44));
    // A block claiming three records, with room for two.
    let b = one_area(&[8, 1, 3, 0, 3, 8, 3]);
    assert_eq!(BtfExt::parse(&b, None).unwrap_err(), overrun(0, 36, 3, 60));
    // The same block with its three records parses.
    let b = one_area(&[8, 1, 3, 0, 3, 8, 3, 16, 3]);
    assert_eq!(BtfExt::parse(&b, None).unwrap().func_info().len(), 3);
}

/// Header lengths at their bounds: the 24-byte header of a `.BTF.ext` without CO-RE
/// relocations, and a section that is only its header (no areas), both parse and encode back;
/// a section of 8 bytes holds the fixed fields but not the header they announce.
#[test]
fn header_lengths_at_their_bounds() {
    let mut b = Vec::new();
    b.extend(0xeb9f_u16.to_le_bytes());
    b.extend([1, 0]);
    for v in [24u32, 0, 0, 0, 0] {
        b.extend(v.to_le_bytes());
    }
    let ext = BtfExt::parse(&b, None).unwrap();
    assert_eq!((ext.header(), ext.func_info().len()), ((1, 0, 24), 0));
    assert_eq!(ext.encode().unwrap(), (b.clone(), vec![]));
    assert_eq!(BtfExt::parse(&b[..8], None).unwrap_err(), BtfExtError::BadHeaderLen { hdr_len: 24, len: 8 });
}

/// The section keeps its file's byte order (`bpfeb` objects are big-endian), and it is dirty
/// once a rewrite replaced its records (not after parsing; after a rewrite that moves them).
#[test]
fn byte_order_and_dirty_state() {
    use bpfpatch_insn::{Endian, Insn, opcode};
    use bpfpatch_object::TableMap;
    for (order, endian) in [("el", Endian::Little), ("eb", Endian::Big)] {
        let what = format!("prog-{order}.o");
        let mut obj = BpfObject::parse(&std::fs::read(format!("{DATA}/{what}")).unwrap()).unwrap();
        assert_eq!(obj.btf_ext().unwrap().endian(), endian, "{what}");
        assert!(!obj.btf_ext().unwrap().is_dirty(), "{what}: freshly parsed");
        let xdp = obj.program_by_name("xdp").unwrap().0;
        let insns = obj.programs()[xdp].insns().to_vec();
        let n = insns.len();
        // A `ja +0` before slot 0: every record of xdp moves one slot on.
        let mut new = vec![Insn::new(opcode::JMP | opcode::JA, 0, 0, 0, 0)];
        new.extend_from_slice(&insns);
        let map = TableMap {
            start: (0..n).map(|s| s + 1).collect(),
            insn: (0..n).map(|s| Some(s + 1)).collect(),
            new_len: n + 1,
        };
        obj.replace_program(xdp, new, &map).unwrap();
        assert!(obj.btf_ext().unwrap().is_dirty(), "{what}: records moved");
    }
}
