//! The llvm-objdump-style listing of an ELF object (`bpfpatch disasm FILE.o`).
//!
//! Layout follows `llvm-objdump-19 -dr --no-show-raw-insn` exactly (the corpus test compares
//! every object): a `FILE:\tfile format elf64-bpf` header, `Disassembly of section S:` per
//! non-empty executable section, `<name>:` labels at every symbol of the section but section and
//! file symbols (functions and clang's `LBB` labels), `<slot>:\t<text>` lines with
//! ` <sym+0xoff>` after jump targets (the nearest label at or before the target), and
//! relocations on their own line (`\t\t<offset>:  R_BPF_64_64\tsymbol`). Additions: the BTF
//! source line of each line_info record as a `; <text>` comment before its instruction (llvm's
//! `-S` takes lines from DWARF instead; `--no-lines` leaves them out). CO-RE records print as
//! llvm-objdump's `-r` prints them, before the instruction's relocations:
//! `\t\t<offset>:  CO-RE <byte_off> [3] struct task_struct::tgid (0:2)`
//! ([`core_text`] has the format), one per instruction (the first record
//! at its first byte), none when `.BTF`'s types do not read. Undecodable slots print
//! `<unknown>` as llvm does.

use bpfpatch_asm::{DisasmOptions, disasm_insn_with};
use bpfpatch_cli::core_text;
use bpfpatch_insn::{Insn, TargetKind, decode};
use bpfpatch_object::{BpfObject, CoreRelo, reloc_type};
use serde::Serialize;
use std::fmt::Write as _;

/// `STT_FILE`.
const STT_FILE: u8 = 4;

/// A relocation line.
#[derive(Debug, Clone, Serialize)]
pub struct RelocRow {
    /// Byte offset in the section.
    pub offset: u64,
    /// `R_BPF_*` name.
    #[serde(rename = "type")]
    pub r_type: &'static str,
    /// The symbol's name (a section symbol's section name).
    pub symbol: String,
    /// The explicit addend (RELA; 0 for REL).
    pub addend: i64,
}

/// A BTF source line.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRow {
    /// File name.
    pub file: String,
    /// Line number.
    pub line: u32,
    /// Column.
    pub col: u32,
    /// The source text.
    pub text: String,
}

/// One instruction of the listing with everything printed around it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// First slot.
    pub slot: usize,
    /// Symbols (functions and local labels) starting here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// BTF line_info records starting here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<SourceRow>,
    /// The instruction text (llvm's syntax; `<unknown>` when it does not decode).
    pub text: String,
    /// The jump target, symbolized (`bump+0x90`), for jumps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Relocations on this instruction.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relocs: Vec<RelocRow>,
    /// The CO-RE record on this instruction, as llvm-objdump describes it after `CO-RE `
    /// ([`core_text::describe`]); at most one, as llvm-objdump prints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub core: Vec<String>,
}

/// One executable section.
#[derive(Debug, Clone, Serialize)]
pub struct SectionListing {
    /// Section name.
    pub name: String,
    /// Section index.
    pub index: usize,
    /// Instructions.
    pub insns: Vec<Row>,
}

/// The text of the instruction at slot `i` of `insns`, the slots it takes, and whether it
/// decoded: a slot that does not decode is `<unknown>` and one slot, and the listing carries on
/// after it, as llvm-objdump does. Every listing (objects, images, `.data` programs) is made of
/// these.
pub fn insn_text(insns: &[Insn], i: usize, opts: DisasmOptions) -> (String, usize, bool) {
    match insns.get(i..).map(|rest| decode(rest, opts.decode)) {
        Some(Ok((op, n))) => (disasm_insn_with(&op, opts.dialect, opts.fidelity), n, true),
        _ => ("<unknown>".to_string(), 1, false),
    }
}

/// The listing of a bare program (an image or a `.data` program): `(slot, text)` per
/// instruction, `<unknown>` for a slot that does not decode ([`insn_text`]).
pub fn program_lines(insns: &[Insn], opts: DisasmOptions) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < insns.len() {
        let (text, n, _) = insn_text(insns, i, opts);
        out.push((i, text));
        i += n;
    }
    out
}

/// Builds the listing of the object's executable sections (or only `section`).
///
/// # Errors
/// `section` names no executable section.
pub fn listing(obj: &BpfObject, section: Option<&str>, opts: DisasmOptions) -> anyhow::Result<Vec<SectionListing>> {
    if let Some(s) = section
        && obj.program_by_name(s).is_none()
    {
        let names: Vec<&str> = obj.programs().iter().map(|p| p.name()).collect();
        anyhow::bail!("no executable section `{s}` (sections: {})", names.join(", "));
    }
    // A type table that does not read leaves the CO-RE records out, as llvm-objdump does
    // (`disasm` warns of it: [`types_warning`]).
    let types = obj.btf_types().and_then(Result::ok);
    let mut out = Vec::new();
    for (pi, p) in obj.programs().iter().enumerate() {
        if section.is_some_and(|s| s != p.name()) {
            continue;
        }
        let insns = p.insns();
        if insns.is_empty() {
            continue;
        }
        // Labels: every named symbol of the section but section and file symbols, as llvm.
        let mut labels: Vec<(usize, String)> = obj
            .symbols()
            .iter()
            .filter(|s| s.section() == Some(p.section()) && !s.is_section() && s.kind() != STT_FILE)
            .filter(|s| !s.name.is_empty())
            .map(|s| (usize::try_from(s.value / 8).unwrap_or(usize::MAX), s.name.clone()))
            .collect();
        labels.sort_by_key(|l| l.0);
        let symbolize = |t: usize| {
            let i = labels.partition_point(|l| l.0 <= t);
            match i.checked_sub(1).and_then(|i| labels.get(i)) {
                Some((s, name)) if *s == t => name.clone(),
                Some((s, name)) => format!("{name}+{:#x}", (t - s) * 8),
                None if t == 0 => p.name().to_string(),
                None => format!("{}+{:#x}", p.name(), t * 8),
            }
        };
        let lines = obj.line_info(pi);
        // As llvm-objdump: CO-RE lines need `.BTF` and its types; one per instruction, the
        // first record (in file order) whose offset is the instruction's first byte.
        let mut core: Vec<&CoreRelo> = match (obj.btf(), &types) {
            (Some(_), Some(_)) => obj.core_relos(pi).iter().collect(),
            _ => Vec::new(),
        };
        core.sort_by_key(|c| c.insn_off);
        let mut rows = Vec::new();
        let mut i = 0;
        while i < insns.len() {
            let (text, n, decoded) = insn_text(insns, i, opts);
            let kind = if decoded { insns[i].target_field() } else { None };
            let target = match kind {
                Some((_, TargetKind::Jump)) => insns[i]
                    .abs_target(i)
                    .and_then(|t| usize::try_from(t).ok())
                    .filter(|&t| t <= insns.len())
                    .map(symbolize),
                _ => None,
            };
            let in_insn = |off: u32| (off / 8) as usize >= i && ((off / 8) as usize) < i + n;
            let source = lines
                .iter()
                .filter(|l| in_insn(l.insn_off))
                .map(|l| {
                    let (file, text) = obj.line_text(l).unwrap_or_default();
                    SourceRow { file, line: l.line_col >> 10, col: l.line_col & 0x3ff, text }
                })
                .collect();
            let relocs = p
                .relocs()
                .iter()
                .filter(|r| r.slot >= i && r.slot < i + n)
                .map(|r| RelocRow {
                    offset: r.slot as u64 * 8,
                    r_type: reloc_type::name(r.r_type),
                    symbol: obj.symbols().get(r.symbol as usize).map(|s| s.name.clone()).unwrap_or_default(),
                    addend: r.addend,
                })
                .collect();
            let at = core.partition_point(|c| u64::from(c.insn_off) < i as u64 * 8);
            let core = match (core.get(at), obj.btf(), &types) {
                (Some(c), Some(btf), Some(types)) if u64::from(c.insn_off) == i as u64 * 8 => {
                    vec![core_text::describe(btf, types, c)]
                }
                _ => Vec::new(),
            };
            let here: Vec<String> = labels.iter().filter(|l| l.0 == i).map(|l| l.1.clone()).collect();
            rows.push(Row { slot: i, labels: here, source, text, target, relocs, core });
            i += n;
        }
        out.push(SectionListing { name: p.name().to_string(), index: p.section(), insns: rows });
    }
    Ok(out)
}

/// What `disasm` says on standard error when the object's `.BTF` types do not read, which
/// leaves the CO-RE lines out (llvm-objdump reports the error and goes on without them too).
#[must_use]
pub fn types_warning(obj: &BpfObject) -> Option<String> {
    match obj.btf_types() {
        Some(Err(e)) => Some(format!("{e}; CO-RE relocations are not listed")),
        _ => None,
    }
}

/// The text of a listing; `lines`: print BTF source lines.
pub fn render(file: &str, obj: &BpfObject, sections: &[SectionListing], lines: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n{file}:\tfile format elf{}-bpf", if obj.is_64() { 64 } else { 32 });
    for sec in sections {
        let _ = writeln!(s, "\nDisassembly of section {}:", sec.name);
        for r in &sec.insns {
            for l in &r.labels {
                let _ = writeln!(s, "\n{:016x} <{l}>:", r.slot * 8);
            }
            if lines {
                for src in &r.source {
                    let _ = writeln!(s, "; {}", src.text);
                }
            }
            let _ = write!(s, "{:>8}:\t{}", r.slot, r.text);
            if let Some(t) = &r.target {
                let _ = write!(s, " <{t}>");
            }
            s.push('\n');
            for c in &r.core {
                let _ = writeln!(s, "\t\t{:016x}:  CO-RE {c}", r.slot * 8);
            }
            for rel in &r.relocs {
                let addend = match rel.addend {
                    0 => String::new(),
                    a if a < 0 => format!("-{:#x}", a.unsigned_abs()),
                    a => format!("+{a:#x}"),
                };
                let _ = writeln!(s, "\t\t{:016x}:  {}\t{}{addend}", rel.offset, rel.r_type, rel.symbol);
            }
        }
    }
    s
}
