//! The source line `llvm-objdump-19 -d -l -S` shows beside each instruction of an object: the
//! oracle of the DWARF remapping tests (a rewrite must leave every surviving instruction beside
//! the source line it had in the input).
//!
//! llvm-objdump prints, before an instruction whose line differs from the previous
//! instruction's, a `; FILE:LINE` marker (`-l`) and the source text of that line (`-S`, when the
//! source file is found). The line shown beside an instruction is therefore the last marker
//! printed before it in its section, with the text printed after that marker (a marker repeated
//! after a function-name line `; NAME():` is the same line); an instruction before any marker of
//! its section shows none.
//!
//! Parsed from llvm-objdump's text only (nothing of bpfpatch is used).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// What llvm-objdump shows beside one instruction: the `FILE:LINE` marker in force (without a
/// discriminator) and the source text printed after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Shown {
    /// `FILE:LINE`, if a marker was printed in the section before the instruction.
    pub line: Option<String>,
    /// The source text lines printed after that marker (empty without the source file).
    pub text: Vec<String>,
}

/// Per executable section: the instruction slots in listing order and what is shown beside each.
pub type Listing = BTreeMap<String, Vec<(usize, Shown)>>;

/// Runs `llvm-objdump-19 -d -l -S` (plus `extra` arguments) on `path` and parses its listing.
///
/// # Errors
/// When llvm-objdump cannot be run or fails (its stderr in the message).
pub fn listing(path: &Path, extra: &[&str]) -> Result<Listing, String> {
    let out = Command::new("llvm-objdump-19")
        .args(["-d", "-l", "-S", "--no-show-raw-insn"])
        .args(extra)
        .arg(path)
        .output()
        .map_err(|e| format!("llvm-objdump-19: {e}"))?;
    if !out.status.success() {
        return Err(format!("llvm-objdump-19 {}: {}", path.display(), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(parse(&String::from_utf8_lossy(&out.stdout)))
}

/// Whether a `; ...` comment line is an `-l` marker: `FILE:LINE` with an optional
/// ` (discriminator N)`; returns `FILE:LINE`.
fn marker(c: &str) -> Option<String> {
    let c = match c.find(" (discriminator ") {
        Some(i) if c.ends_with(')') => &c[..i],
        _ => c,
    };
    let (file, line) = c.rsplit_once(':')?;
    (!file.is_empty() && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())).then(|| c.to_string())
}

/// Parses a `-d -l -S` listing (see [`listing`]).
#[must_use]
pub fn parse(text: &str) -> Listing {
    let mut out = Listing::new();
    let mut section: Option<String> = None;
    let mut shown = Shown::default();
    for l in text.lines() {
        if let Some(name) = l.strip_prefix("Disassembly of section ").and_then(|s| s.strip_suffix(':')) {
            section = Some(name.to_string());
            out.entry(name.to_string()).or_default();
            shown = Shown::default();
            continue;
        }
        let Some(sec) = section.as_ref() else { continue };
        if let Some(c) = l.strip_prefix("; ") {
            if let Some(m) = marker(c) {
                // llvm-objdump repeats the marker after a function-name line (`; NAME():`)
                // without the text: the line shown is the same.
                if shown.line.as_ref() != Some(&m) {
                    shown = Shown { line: Some(m), text: Vec::new() };
                }
            } else if !c.ends_with("():") {
                // Source text (function-name lines `; NAME():` are not a line).
                shown.text.push(c.to_string());
            }
            continue;
        }
        // An instruction: `<spaces>SLOT:<tab>...`.
        let t = l.trim_start();
        if let Some((n, rest)) = t.split_once(':')
            && rest.starts_with('\t')
            && let Ok(slot) = n.parse::<usize>()
        {
            out.entry(sec.clone()).or_default().push((slot, shown.clone()));
        }
    }
    out
}

/// What comparing two listings found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Surviving original instructions compared.
    pub checked: usize,
    /// Of those, how many show a source line in the input.
    pub with_line: usize,
    /// Each mismatch, described.
    pub mismatches: Vec<String>,
}

/// Compares what `before` shows beside every original instruction with what `after` shows
/// beside the same instruction after a rewrite: `maps[section][old]` is the new slot of the
/// instruction at old slot `old` (`None` when it was deleted), e.g. the engine's
/// `OffsetMap::insn`. Sections of `maps` absent from `before` (empty ones) are skipped.
#[must_use]
pub fn compare(before: &Listing, after: &Listing, maps: &BTreeMap<String, Vec<Option<usize>>>) -> Comparison {
    let mut c = Comparison::default();
    for (sec, map) in maps {
        let Some(old) = before.get(sec) else { continue };
        let new: BTreeMap<usize, &Shown> =
            after.get(sec).map(|v| v.iter().map(|(s, x)| (*s, x)).collect()).unwrap_or_default();
        for (slot, shown) in old {
            let Some(Some(n)) = map.get(*slot) else { continue };
            c.checked += 1;
            c.with_line += usize::from(shown.line.is_some());
            match new.get(n) {
                Some(x) if *x == shown => {}
                Some(x) => c
                    .mismatches
                    .push(format!("{sec}: old slot {slot} shows {:?}, new slot {n} shows {:?}", shown.line, x.line)),
                None => c.mismatches.push(format!("{sec}: new slot {n} (old {slot}) is not in the listing")),
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_text_and_sections() {
        let text = "\nx.o:\tfile format elf64-bpf\n\nDisassembly of section xdp:\n\n0000000000000000 <f>:\n; f():\n\
                    ; /src/a.c:3\n; int x = 1;\n       0:\tr1 = 0x1\n       1:\tr0 = r1\n; /src/a.c:4 (discriminator 2)\n\
                    ; return x:2;\n       2:\tr0 = 0x0 ll\n; g():\n; /src/a.c:4\n       4:\texit\n\nDisassembly of section tc:\n\n\
                    0000000000000000 <g>:\n       0:\texit\n";
        let l = parse(text);
        let xdp = &l["xdp"];
        assert_eq!(xdp.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2, 4]);
        assert_eq!(xdp[0].1.line.as_deref(), Some("/src/a.c:3"));
        assert_eq!(xdp[0].1.text, ["int x = 1;"]);
        assert_eq!(xdp[1].1, xdp[0].1);
        assert_eq!(xdp[2].1.line.as_deref(), Some("/src/a.c:4"));
        assert_eq!(xdp[3].1.text, ["return x:2;"]);
        assert_eq!(l["tc"], [(0, Shown::default())]);
    }

    #[test]
    fn compare_follows_the_map() {
        let a = parse("Disassembly of section s:\n; a.c:1\n       0:\tx\n; a.c:2\n       1:\ty\n       2:\tz\n");
        let b = parse("Disassembly of section s:\n; a.c:1\n       0:\tn\n       1:\tx\n; a.c:2\n       2:\tz\n");
        let maps = BTreeMap::from([("s".to_string(), vec![Some(1), None, Some(2)])]);
        let c = compare(&a, &b, &maps);
        assert_eq!((c.checked, c.with_line), (2, 2));
        assert!(c.mismatches.is_empty(), "{:?}", c.mismatches);
        // Slot 0 mapped onto a slot showing another line is a mismatch.
        let maps = BTreeMap::from([("s".to_string(), vec![Some(2), None, Some(2)])]);
        assert_eq!(compare(&a, &b, &maps).mismatches.len(), 1);
    }
}
