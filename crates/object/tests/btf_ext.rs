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
