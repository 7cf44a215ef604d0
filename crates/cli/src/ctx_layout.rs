//! `--ctx-layout FILE`: the context layout the `ctx` pass converts accesses with, read from a
//! JSON file.
//!
//! The kernel converts a program's loads and stores of its context (`struct __sk_buff`, ...)
//! to the runtime structure (`struct sk_buff`), whose layout depends on the kernel build; the
//! file states it for one program type:
//!
//! ```json
//! {
//!   "name": "toy_skb",
//!   "fields": [
//!     { "name": "len",  "off": 0, "size": 4, "runtime_off": 8, "runtime_size": 4 },
//!     { "name": "mark", "off": 4, "size": 4, "runtime_off": 0, "runtime_size": 4, "writable": true }
//!   ],
//!   "prologue": ["*(u32 *)(r1 + 0xc) = 0x1"]
//! }
//! ```
//!
//! Each field is `size` bytes at `off` of the program's view, reached at `runtime_off`
//! (`runtime_size` bytes, 1, 2, 4 or 8) of the runtime context; `writable` (default false)
//! allows stores. `prologue` (optional) is llvm-syntax code inserted before the program's first
//! instruction (jumps to instruction 0 skip it). Every access must lie inside one field, with
//! the kernel's rules for narrow reads (see `bpfpatch_passes::CtxLayout`).

use anyhow::{Context, Result, anyhow, bail};
use bpfpatch_insn::Size;
use bpfpatch_passes::{Converter, CtxField, CtxLayout};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutFile {
    name: String,
    fields: Vec<FieldFile>,
    #[serde(default)]
    prologue: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    name: String,
    off: u16,
    size: u8,
    runtime_off: i16,
    runtime_size: u8,
    #[serde(default)]
    writable: bool,
}

/// Parses a layout from the JSON text of a layout file.
///
/// # Errors
/// Malformed JSON, an unknown key, a field whose sizes are not 1, 2, 4 or 8, overlapping or
/// misaligned fields, or a prologue line that does not assemble (each names the field or line).
pub fn parse(text: &str) -> Result<CtxLayout> {
    let file: LayoutFile = serde_json::from_str(text).context("context layout")?;
    let mut fields = Vec::with_capacity(file.fields.len());
    for f in file.fields {
        let size = match f.runtime_size {
            1 => Size::B,
            2 => Size::H,
            4 => Size::W,
            8 => Size::DW,
            n => bail!("context layout: field {}: runtime_size {n} is not 1, 2, 4 or 8", f.name),
        };
        fields.push(CtxField {
            name: f.name,
            off: f.off,
            size: f.size,
            writable: f.writable,
            conv: Converter::Direct { off: f.runtime_off, size },
        });
    }
    let layout = CtxLayout::new(file.name, fields).map_err(|e| anyhow!("context layout: {e}"))?;
    let prologue =
        bpfpatch_asm::assemble_llvm(&file.prologue.join("\n")).map_err(|e| anyhow!("context layout: prologue {e}"))?;
    Ok(if prologue.is_empty() { layout } else { layout.with_prologue(prologue) })
}

/// Reads and parses a layout file.
///
/// # Errors
/// An unreadable file, or what [`parse`] refuses; the message names the file.
pub fn read(path: &Path) -> Result<CtxLayout> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_prologue() {
        let l = parse(
            r#"{"name":"t","fields":[{"name":"len","off":0,"size":4,"runtime_off":8,"runtime_size":2}],
               "prologue":["r0 = 0x0"]}"#,
        )
        .unwrap();
        assert_eq!(l.name(), "t");
        assert_eq!(l.fields().len(), 1);
        assert!(matches!(l.fields()[0].conv, Converter::Direct { off: 8, size: Size::H }));
        assert!(!l.fields()[0].writable);
        assert_eq!(l.prologue().len(), 1);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let f = |extra: &str| format!(r#"{{"name":"t","fields":[{{"name":"a","off":0,"size":4,{extra}}}]}}"#);
        assert!(err(&f(r#""runtime_off":0,"runtime_size":3"#)).contains("field a: runtime_size 3"));
        assert!(err(&f(r#""runtime_off":0,"runtime_size":4,"bogus":1"#)).contains("unknown field `bogus`"));
        assert!(err(&f(r#""runtime_off":0"#)).contains("missing field `runtime_size`"));
        let overlap = r#"{"name":"t","fields":[{"name":"a","off":0,"size":8,"runtime_off":0,"runtime_size":8},
                                             {"name":"b","off":4,"size":4,"runtime_off":8,"runtime_size":4}]}"#;
        assert!(err(overlap).contains("fields a and b overlap"));
        let bad = r#"{"name":"t","fields":[],"prologue":["r0 = "]}"#;
        assert!(err(bad).contains("prologue"), "{}", err(bad));
    }
}
