//! The conformance suite's `.data` test-vector format.
//!
//! A file is a sequence of sections, each opened by a header line `-- NAME`. Lines starting with
//! `#` are comments in every section this module interprets (and before the first section);
//! sections it does not interpret (`-- c`, `-- no register offset`, ...) are kept verbatim in
//! [`DataFile::other`]. Trailing `\r` is stripped from every line.
//!
//! | section | content |
//! |---------|---------|
//! | `-- asm` | `%rN` assembly, kept as text ([`crate::assemble_conformance`] assembles it) |
//! | `-- raw` | one slot per line: 8 hex bytes in memory order, or `0x` + up to 16 hex digits (the slot's little-endian bytes as a `u64`; several words per line allowed) |
//! | `-- mem` | hex bytes (`11`, `0x11`), whitespace separated, any number of lines |
//! | `-- result` | the expected r0: `0x` hex, or decimal without the prefix (as upstream) |
//! | `-- error` | the program must be rejected; the optional message is the rest of the section |
//!
//! Each known section may appear once. Non-comment text before the first header is an error.
//! Errors carry the 1-based line of the file.

use crate::conformance::assemble_conformance;
use crate::error::AsmError;
use bpfpatch_insn::Insn;

/// A parsed `.data` file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataFile {
    /// The `-- asm` section, verbatim (comments included).
    pub asm: Option<Section<String>>,
    /// The `-- raw` section's slots.
    pub raw: Option<Section<Vec<Insn>>>,
    /// The `-- mem` bytes (empty when the section is absent).
    pub mem: Vec<u8>,
    /// The `-- result` value.
    pub result: Option<u64>,
    /// The `-- error` section: `Some` when present, with its message text (possibly empty).
    pub error: Option<String>,
    /// Sections this module does not interpret: `(name, body)`, body verbatim with surrounding
    /// blank space trimmed, in file order.
    pub other: Vec<(String, String)>,
}

/// A section's value and where its content starts.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Section<T> {
    /// 1-based line of the first content line (the line after the header); line `k` of the
    /// content (1-based) is line `line + k - 1` of the file.
    pub line: usize,
    /// The parsed content.
    pub value: T,
}

/// Why a `.data` file is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DataFileError {
    /// A line of a section does not have the section's format.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based file line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A known section appears twice.
    #[error("line {line}: duplicate section `-- {name}` (first at line {first})")]
    DuplicateSection {
        /// 1-based line of the second header.
        line: usize,
        /// The section name.
        name: String,
        /// 1-based line of the first header.
        first: usize,
    },
    /// The `-- asm` section does not assemble; `line` in the error is a file line.
    #[error("-- asm: {0}")]
    Asm(AsmError),
    /// [`DataFile::program`] on a file with neither `-- asm` nor `-- raw`.
    #[error("no program: the file has neither an `-- asm` nor a `-- raw` section")]
    NoProgram,
}

impl DataFile {
    /// The program: `-- asm` assembled if present (error lines are file lines), else `-- raw`.
    ///
    /// # Errors
    /// [`DataFileError::Asm`] when the assembly is invalid, [`DataFileError::NoProgram`] when the
    /// file has no program section.
    pub fn program(&self) -> Result<Vec<Insn>, DataFileError> {
        if let Some(asm) = &self.asm {
            return assemble_conformance(&asm.value).map_err(|mut e| {
                e.line = e.line.saturating_add(asm.line).saturating_sub(1);
                DataFileError::Asm(e)
            });
        }
        match &self.raw {
            Some(raw) => Ok(raw.value.clone()),
            None => Err(DataFileError::NoProgram),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Asm,
    Raw,
    Mem,
    Result,
    Error,
    Other,
}

struct Open<'a> {
    kind: Kind,
    name: &'a str,
    header: usize,
    lines: Vec<&'a str>,
}

/// Parses a `.data` file.
///
/// # Errors
/// The first malformed line, with its 1-based line number.
pub fn parse_data_file(text: &str) -> Result<DataFile, DataFileError> {
    let mut df = DataFile::default();
    let mut seen: Vec<(Kind, usize)> = Vec::new();
    let mut open: Option<Open<'_>> = None;
    for (idx, raw_line) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if let Some(rest) = line.trim_start().strip_prefix("--") {
            if let Some(o) = open.take() {
                finish(&mut df, o)?;
            }
            let name = rest.trim();
            let kind = match name {
                "asm" => Kind::Asm,
                "raw" => Kind::Raw,
                "mem" => Kind::Mem,
                "result" => Kind::Result,
                "error" => Kind::Error,
                _ => Kind::Other,
            };
            if kind != Kind::Other {
                if let Some(&(_, first)) = seen.iter().find(|(k, _)| *k == kind) {
                    return Err(DataFileError::DuplicateSection { line: line_no, name: name.to_owned(), first });
                }
                seen.push((kind, line_no));
            }
            open = Some(Open { kind, name, header: line_no, lines: Vec::new() });
            continue;
        }
        match &mut open {
            Some(o) => o.lines.push(line),
            None => {
                let t = line.trim();
                if !t.is_empty() && !t.starts_with('#') {
                    return Err(DataFileError::Syntax {
                        line: line_no,
                        message: format!("text before the first section header: {t:?}"),
                    });
                }
            }
        }
    }
    if let Some(o) = open.take() {
        finish(&mut df, o)?;
    }
    Ok(df)
}

/// Content lines that matter: not blank, not `#` comments; with their file line numbers.
fn meaningful<'a>(o: &'a Open<'a>) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    o.lines.iter().enumerate().filter_map(move |(i, l)| {
        let t = l.trim();
        (!t.is_empty() && !t.starts_with('#')).then_some((o.header + 1 + i, t))
    })
}

fn syntax(line: usize, message: String) -> DataFileError {
    DataFileError::Syntax { line, message }
}

fn finish(df: &mut DataFile, o: Open<'_>) -> Result<(), DataFileError> {
    let first = o.header + 1;
    match o.kind {
        Kind::Asm => df.asm = Some(Section { line: first, value: o.lines.join("\n") }),
        Kind::Raw => df.raw = Some(Section { line: first, value: parse_raw(&o)? }),
        Kind::Mem => df.mem = parse_mem(&o)?,
        Kind::Result => {
            let mut lines = meaningful(&o);
            let Some((line, t)) = lines.next() else {
                return Err(syntax(o.header, "empty `-- result` section".into()));
            };
            if let Some((extra, _)) = lines.next() {
                return Err(syntax(extra, "`-- result` holds more than one value".into()));
            }
            df.result = Some(parse_result(t).ok_or_else(|| syntax(line, format!("invalid result value {t:?}")))?);
        }
        Kind::Error => {
            let msg: Vec<&str> = meaningful(&o).map(|(_, t)| t).collect();
            df.error = Some(msg.join("\n"));
        }
        Kind::Other => df.other.push((o.name.to_owned(), o.lines.join("\n").trim().to_owned())),
    }
    Ok(())
}

fn parse_result(t: &str) -> Option<u64> {
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => u64::from_str_radix(h, 16).ok(),
        Some(_) => None,
        None if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.parse().ok(),
        None => None,
    }
}

/// A hex byte token: 1-2 hex digits, optionally `0x`-prefixed.
fn hex_byte(tok: &str) -> Option<u8> {
    let h = tok.strip_prefix("0x").or_else(|| tok.strip_prefix("0X")).unwrap_or(tok);
    if h.is_empty() || h.len() > 2 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(h, 16).ok()
}

fn parse_mem(o: &Open<'_>) -> Result<Vec<u8>, DataFileError> {
    let mut out = Vec::new();
    for (line, t) in meaningful(o) {
        for tok in t.split_whitespace() {
            out.push(hex_byte(tok).ok_or_else(|| syntax(line, format!("`-- mem`: invalid hex byte {tok:?}")))?);
        }
    }
    Ok(out)
}

fn parse_raw(o: &Open<'_>) -> Result<Vec<Insn>, DataFileError> {
    let mut out = Vec::new();
    for (line, t) in meaningful(o) {
        let code = t.split('#').next().unwrap_or("").trim();
        let toks: Vec<&str> = code.split_whitespace().collect();
        let is_word = |s: &str| s.len() > 2 && (s.starts_with("0x") || s.starts_with("0X"));
        if toks.first().is_some_and(|s| is_word(s)) {
            for tok in toks {
                let digits = tok.get(2..).filter(|_| is_word(tok)).unwrap_or("");
                let ok = !digits.is_empty() && digits.len() <= 16 && digits.bytes().all(|b| b.is_ascii_hexdigit());
                let w = if ok { u64::from_str_radix(digits, 16).ok() } else { None };
                let w = w.ok_or_else(|| syntax(line, format!("`-- raw`: invalid 0x word {tok:?}")))?;
                out.push(Insn::from_word(w));
            }
        } else {
            if toks.len() != 8 {
                return Err(syntax(
                    line,
                    format!("`-- raw`: expected 8 hex bytes or 0x words, found {} tokens", toks.len()),
                ));
            }
            let mut b = [0u8; 8];
            for (slot, tok) in b.iter_mut().zip(&toks) {
                *slot = hex_byte(tok).ok_or_else(|| syntax(line, format!("`-- raw`: invalid hex byte {tok:?}")))?;
            }
            out.push(Insn::from_bytes(b, bpfpatch_insn::Endian::Little));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Copyright\n# c2\n-- asm\n\nmov %r0, 1 # one\nexit\n-- raw\n# slots\n\
        b7 00 00 00 01 00 00 00\n0x0000000000000095\n-- mem\n00 01 0x02\nff\n\n-- result\n0x1\n\
        -- no register offset\ncall instruction\n-- c\n#include <x.h>\nint f;\n";

    #[test]
    fn parses_every_section() {
        let df = parse_data_file(SAMPLE).unwrap();
        let asm = df.asm.as_ref().unwrap();
        assert_eq!(asm.line, 4);
        assert_eq!(asm.value, "\nmov %r0, 1 # one\nexit");
        let raw = df.raw.as_ref().unwrap();
        assert_eq!(raw.line, 8);
        assert_eq!(raw.value, vec![Insn::from_word(0x1_0000_00b7), Insn::from_word(0x95)]);
        assert_eq!(df.mem, vec![0, 1, 2, 0xff]);
        assert_eq!(df.result, Some(1));
        assert_eq!(df.error, None);
        assert_eq!(
            df.other,
            vec![
                ("no register offset".into(), "call instruction".into()),
                ("c".into(), "#include <x.h>\nint f;".into())
            ]
        );
        assert_eq!(df.program().unwrap(), raw.value);
    }

    #[test]
    fn program_errors_use_file_lines() {
        let df = parse_data_file("# x\n-- asm\nmov %r0, 1\n\nor %r0, %r50\n-- result\n0x0\n").unwrap();
        match df.program() {
            Err(DataFileError::Asm(e)) => {
                assert_eq!(e.line, 5);
                assert!(e.to_string().contains("Invalid register"));
            }
            other => panic!("{other:?}"),
        }
        let df = parse_data_file("-- result\n0x0\n").unwrap();
        assert_eq!(df.program(), Err(DataFileError::NoProgram));
    }

    #[test]
    fn error_section_and_result_forms() {
        let df = parse_data_file("-- raw\n95 00 00 00 00 00 00 00\n-- error\n").unwrap();
        assert_eq!(df.error.as_deref(), Some(""));
        let df = parse_data_file("-- asm\nexit\n-- error\nInvalid number\n of operands").unwrap();
        assert_eq!(df.error.as_deref(), Some("Invalid number\nof operands"));
        let df = parse_data_file("-- result\r\n42\r\n").unwrap();
        assert_eq!(df.result, Some(42));
        let df = parse_data_file("-- result\n0xFFFFFFFFFFFFFFFF\n").unwrap();
        assert_eq!(df.result, Some(u64::MAX));
    }

    #[test]
    fn malformed_lines_are_located() {
        let cases: &[(&str, usize)] = &[
            ("stray text\n-- asm\nexit\n", 1),
            ("-- raw\n95 00 00 00 00 00 00\n", 2),
            ("-- raw\n95 00 00 00 00 00 00 zz\n", 2),
            ("-- raw\n0x1 0x\n", 2),
            ("-- raw\n0x00000000000000950\n", 2),
            ("-- mem\n00\n100\n", 3),
            ("-- result\n0xg\n", 2),
            ("-- result\n1\n2\n", 3),
            ("-- result\n-1\n", 2),
            ("-- result\n", 1),
            ("-- asm\nexit\n-- asm\nexit\n", 3),
        ];
        for (text, line) in cases {
            match parse_data_file(text) {
                Err(DataFileError::Syntax { line: l, .. } | DataFileError::DuplicateSection { line: l, .. }) => {
                    assert_eq!(l, *line, "{text:?}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
