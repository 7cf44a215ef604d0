//! `bpfpatch rewrite --explain`: per program, old slot -> new slot of every instruction, what
//! happened to it and which pass asked for it, in llvm-objdump syntax
//! ([`bpfpatch_cli::provenance`] computes the rows; this module prints them).
//!
//! ```text
//! xdp_prog (section xdp): 14 -> 16 slots, 1 replaced, 3 inserted, 1 deleted
//!    old      new  pass
//!      0 ->     0             r6 = r1
//!      4 ->     4  ~ lower-v4 r0 = -r0
//!    (4) ->     5  + lower-v4 r0 s/= r1
//!      7 ->     -  - dce      r0 = 1
//! ```
//! `~` replaced, `+` inserted (the old column names, in parentheses, the original instruction
//! whose patch made it), `-` deleted (listed where jumps to it now land).

use crate::listing::insn_text;
use bpfpatch_asm::DisasmOptions;
use bpfpatch_cli::provenance::{Change, SlotChange};
use bpfpatch_insn::{DecodeOptions, Insn};
use serde::Serialize;
use std::fmt::Write as _;

/// One program's explanation.
#[derive(Debug, Serialize)]
pub struct Explained {
    /// Section name.
    pub section: String,
    /// Slots before and after.
    pub slots_before: usize,
    /// Slots after.
    pub slots_after: usize,
    /// One row per instruction.
    pub rows: Vec<Row>,
}

/// One instruction's row.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Original slot (for an inserted instruction: the instruction whose patch made it).
    pub old: Option<usize>,
    /// New slot (`None`: deleted).
    pub new: Option<usize>,
    /// What happened.
    pub change: Change,
    /// The pass that asked for it (`relax` for the linearization's own jump relaxation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<&'static str>,
    /// The instruction (the old one for a deleted instruction).
    pub insn: String,
}

impl Explained {
    /// The rows of `changes` with their instruction text from `orig` and `new`.
    pub fn new(section: &str, orig: &[Insn], new: &[Insn], changes: &[SlotChange]) -> Explained {
        let opts = DisasmOptions { decode: DecodeOptions::INTERNAL, ..DisasmOptions::default() };
        let rows = changes
            .iter()
            .map(|c| {
                let (insns, at) = match c.new {
                    Some(n) => (new, n),
                    None => (orig, c.old.unwrap_or(usize::MAX)),
                };
                let pass = match (c.change, c.pass) {
                    (Change::Kept, _) => None,
                    (_, Some(p)) => Some(p.name()),
                    (_, None) => Some("relax"),
                };
                Row { old: c.old, new: c.new, change: c.change, pass, insn: insn_text(insns, at, opts).0 }
            })
            .collect();
        Explained { section: section.to_string(), slots_before: orig.len(), slots_after: new.len(), rows }
    }

    fn count(&self, change: Change) -> usize {
        self.rows.iter().filter(|r| r.change == change).count()
    }

    /// The text form (see the module documentation).
    pub fn render(&self) -> String {
        let mut s = format!(
            "{}: {} -> {} slots, {} replaced, {} inserted, {} deleted\n",
            self.section,
            self.slots_before,
            self.slots_after,
            self.count(Change::Replaced),
            self.count(Change::Inserted),
            self.count(Change::Deleted)
        );
        let width = self.rows.iter().filter_map(|r| r.pass).map(str::len).max().unwrap_or(0).max(4);
        let _ = writeln!(s, "{:>6}    {:>6}  {:<width$}", "old", "new", "  pass");
        for r in &self.rows {
            let old = match (r.change, r.old) {
                (_, None) => "-".to_string(),
                (Change::Inserted, Some(o)) => format!("({o})"),
                (_, Some(o)) => o.to_string(),
            };
            let new = r.new.map_or_else(|| "-".to_string(), |n| n.to_string());
            let mark = match r.change {
                Change::Kept => ' ',
                Change::Replaced => '~',
                Change::Inserted => '+',
                Change::Deleted => '-',
            };
            let _ = writeln!(s, "{old:>6} -> {new:>6}  {mark} {:<width$} {}", r.pass.unwrap_or(""), r.insn);
        }
        s
    }
}
