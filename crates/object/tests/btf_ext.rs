//! `.BTF.ext` records read from the committed test objects, checked against the C sources
//! they were built from (tests/data/*.c): the oracle is the source file, not our reader.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bpfpatch_object::BpfObject;

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

/// A hand-made `.BTF.ext` whose func_info records are longer than the 8 bytes this version
/// knows (12: 4 bytes of a later field each, which must survive): the counts are the records
/// written here, and encoding the parsed section gives back its bytes (the oracle is the input).
#[test]
fn records_longer_than_known_keep_their_bytes_and_counts() {
    let mut b = Vec::new();
    let u32le = |b: &mut Vec<u8>, v: u32| b.extend(v.to_le_bytes());
    b.extend(0xeb9f_u16.to_le_bytes());
    b.extend([1, 0]); // version, flags
    for v in [32, 0, 36, 36, 0, 36, 0] {
        // hdr_len; func_info at 0, 36 bytes; line_info and core_relo empty, after it
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
    assert_eq!(b.len(), 32 + 36);
    let ext = bpfpatch_object::BtfExt::parse(&b, None).unwrap();
    assert_eq!((ext.func_info().len(), ext.func_info().is_empty()), (2, false));
    assert_eq!((ext.line_info().len(), ext.line_info().is_empty()), (0, true));
    assert_eq!((ext.core_relo().len(), ext.core_relo().is_empty()), (0, true));
    let recs = &ext.func_info().blocks[0].records;
    assert_eq!((recs[1].insn_off, recs[1].type_id), (16, 4));
    assert_eq!(ext.encode().unwrap(), (b, vec![]));
}
