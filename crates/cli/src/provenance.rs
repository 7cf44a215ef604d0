//! Which pass made each change: the data of `bpfpatch rewrite --explain`.
//!
//! The engine already knows, for every slot of a rewritten program, which original slot it
//! carries ([`SlotAux::orig`]) or which original instruction's patch created it
//! ([`SlotAux::parent`]), and the offset map knows where every original slot went. What it does
//! not know is *which pass* asked for each change, since a pipeline records all its passes on
//! one patch list and linearizes once. A [`Recorder`] closes that gap: called after each pass
//! ([`bpfpatch_passes::Pipeline::apply_observed`]), it notes the list nodes the pass created or
//! changed and the original slots whose instruction it deleted. [`Recorder::changes`] then
//! joins that with the linearized program into one row per instruction, in new-program order,
//! deleted instructions placed where jumps to them now land.
//!
//! Cost: one walk of the live list per pass, only when asked (`--explain`); the rewrite itself
//! does not change.
//!
//! # Example
//! ```
//! use bpfpatch_cli::pipeline::Passes;
//! use bpfpatch_cli::provenance::Change;
//! use bpfpatch_object::{RewriteOptions, Rewriter};
//! use bpfpatch_insn::{Endian, Insn};
//!
//! // r0 = 1; r0 /= r1 (a register division: `fixups` guards it); exit
//! let prog = [Insn::new(0xb7, 0, 0, 0, 1), Insn::new(0x3f, 0, 1, 0, 0), Insn::new(0x95, 0, 0, 0, 0)];
//! let mut passes = Passes::new("fixups", false)?.explaining();
//! let mut rw = Rewriter::new(RewriteOptions::default());
//! let out = rw.rewrite_image_patched(&prog, Endian::Little, &mut |l, i| passes.run(l, i))?;
//! let rec = passes.stats()[0].provenance.as_ref().unwrap();
//! let rows = rec.changes(&prog, &out.patched);
//! assert!(rows.iter().any(|r| r.change == Change::Inserted && r.pass.map(|p| p.name()) == Some("fixups")));
//! assert!(rows.iter().any(|r| r.change == Change::Kept && r.old == Some(1))); // the division survives
//! # Ok::<(), anyhow::Error>(())
//! ```

use bpfpatch_insn::{Insn, Slot, TargetField};
use bpfpatch_object::{RelocRole, SlotAux};
use bpfpatch_passes::Pass;
use bpfpatch_patch::{NodeId, PatchList, PatchedProgram};

/// What happened to one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// An original instruction, unchanged.
    Kept,
    /// An original instruction replaced by another one (its relocations and records moved
    /// with it).
    Replaced,
    /// A new instruction.
    Inserted,
    /// An original instruction removed.
    Deleted,
}

/// One row of the explanation: an instruction of the new program, or a deleted one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotChange {
    /// The original slot: the instruction kept, replaced or deleted, or for an inserted one the
    /// original instruction whose patch created it (`None` for code of no patch: appended code,
    /// jump relaxation).
    pub old: Option<usize>,
    /// The new slot (`None` for a deleted instruction).
    pub new: Option<usize>,
    /// What happened.
    pub change: Change,
    /// The pass that asked for it; `None` for kept instructions and for what the linearization
    /// itself made (a relaxed jump's extra slots).
    pub pass: Option<Pass>,
}

/// Notes, pass by pass, what each pass did to a patch list (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorder {
    /// The passes in the order they ran.
    passes: Vec<Pass>,
    /// Per node: the instruction and identity it held when last seen live.
    seen: Vec<Option<(Insn, Option<Slot>)>>,
    /// Per node: the last pass (index into `passes`) that created or changed it.
    touched: Vec<Option<u16>>,
    /// Per node: live after the last pass.
    live: Vec<bool>,
    /// Per original slot: the pass after which its instruction was gone.
    deleted: Vec<Option<u16>>,
}

impl Recorder {
    /// Starts recording on `list`, a patch list not patched yet.
    #[must_use]
    pub fn new(list: &PatchList) -> Recorder {
        let mut r = Recorder { deleted: vec![None; list.orig_len()], ..Recorder::default() };
        r.observe(list, None);
        r
    }

    /// Notes what `pass`, which just ran, did to `list`.
    pub fn after(&mut self, pass: Pass, list: &PatchList) {
        let idx = u16::try_from(self.passes.len()).unwrap_or(u16::MAX);
        self.passes.push(pass);
        self.observe(list, Some(idx));
    }

    fn observe(&mut self, list: &PatchList, pass: Option<u16>) {
        let n = list.node_count();
        self.seen.resize(n, None);
        self.touched.resize(n, None);
        self.live.clear();
        self.live.resize(n, false);
        for (node, insn) in list.slots() {
            let x = node.index();
            let now = Some((insn, list.origin(node)));
            if let (Some(seen), Some(touched)) = (self.seen.get_mut(x), self.touched.get_mut(x)) {
                if *seen != now {
                    *seen = now;
                    *touched = pass.or(*touched);
                }
                self.live[x] = true;
            }
        }
        if let Some(p) = pass {
            for (o, d) in self.deleted.iter_mut().enumerate() {
                if d.is_none() && list.node_of_orig(Slot(o)).is_none() {
                    *d = Some(p);
                }
            }
        }
    }

    /// The passes recorded, in run order.
    #[must_use]
    pub fn passes(&self) -> &[Pass] {
        &self.passes
    }

    fn pass(&self, p: Option<u16>) -> Option<Pass> {
        p.and_then(|p| self.passes.get(usize::from(p)).copied())
    }

    /// One row per instruction of `out` (the linearized list this recorder watched, whose
    /// original program was `orig`) and per deleted original instruction, in new-program order.
    /// ld_imm64 second slots have no row of their own.
    #[must_use]
    pub fn changes(&self, orig: &[Insn], out: &PatchedProgram<SlotAux>) -> Vec<SlotChange> {
        let new = &out.program.insns;
        let aux = &out.program.aux;
        let map = &out.map;
        // The node at each new slot (relaxation's extra slots have none).
        let mut node_at: Vec<Option<usize>> = vec![None; new.len()];
        for (x, _) in self.live.iter().enumerate().filter(|(_, l)| **l) {
            if let Some(s) = map.node_pos(NodeId::of_slot(Slot(x))).and_then(|s| node_at.get_mut(s.0)) {
                *s = Some(x);
            }
        }
        let mut rows: Vec<SlotChange> = Vec::with_capacity(new.len());
        let mut j = 0;
        while j < new.len() {
            let pass = node_at[j].and_then(|x| self.pass(self.touched.get(x).copied().flatten()));
            let a = aux.get(j).cloned().unwrap_or_default();
            // A local call's or function address's encoded target is an offset into the section:
            // it follows the code it names, like a jump's.
            let moves = matches!(a.reloc, Some(RelocRole::LocalCall { .. } | RelocRole::LocalFuncAddr { .. }));
            let row = match a.orig.map(|o| o as usize) {
                Some(o) if same(orig, o, new, j) || moves && same_but_imm(orig, o, new, j) => {
                    SlotChange { old: Some(o), new: Some(j), change: Change::Kept, pass: None }
                }
                Some(o) => SlotChange { old: Some(o), new: Some(j), change: Change::Replaced, pass },
                None => SlotChange { old: a.parent.map(|p| p as usize), new: Some(j), change: Change::Inserted, pass },
            };
            rows.push(row);
            j += if new[j].is_ld_imm64() { 2 } else { 1 };
        }
        // A patch that keeps its instruction and adds code after it (zext, a guard before a
        // division) gives the original's identity to its last slot: show the unchanged copy as
        // the kept instruction and the other as inserted, which is what a reader sees.
        let mut k = 0;
        while k < rows.len() {
            if let SlotChange { old: Some(o), new: Some(_), change: Change::Replaced, pass } = rows[k] {
                let mut i = k;
                while i > 0 && rows[i - 1].change == Change::Inserted && rows[i - 1].old == Some(o) {
                    i -= 1;
                    if rows[i].new.is_some_and(|s| same(orig, o, new, s)) {
                        rows[i].change = Change::Kept;
                        rows[i].pass = None;
                        rows[k].change = Change::Inserted;
                        rows[k].pass = pass;
                        break;
                    }
                }
            }
            k += 1;
        }
        // Deleted instructions, where jumps to them land now.
        let mut gone: Vec<(usize, usize)> = heads(orig)
            .filter(|&o| map.insn(Slot(o)).is_none())
            .filter_map(|o| map.jump_target(Slot(o)).map(|t| (t.0, o)))
            .collect();
        gone.sort_unstable();
        let mut merged = Vec::with_capacity(rows.len() + gone.len());
        let mut g = gone.into_iter().peekable();
        for r in rows {
            while let Some(&(t, o)) = g.peek() {
                if r.new.is_some_and(|n| t > n) {
                    break;
                }
                merged.push(self.deleted_row(o));
                g.next();
            }
            merged.push(r);
        }
        merged.extend(g.map(|(_, o)| self.deleted_row(o)));
        merged
    }

    fn deleted_row(&self, o: usize) -> SlotChange {
        SlotChange {
            old: Some(o),
            new: None,
            change: Change::Deleted,
            pass: self.pass(self.deleted.get(o).copied().flatten()),
        }
    }
}

/// The first slots of the instructions of `insns` (an ld_imm64 takes two slots).
fn heads(insns: &[Insn]) -> impl Iterator<Item = usize> + '_ {
    let mut i = 0;
    core::iter::from_fn(move || {
        let o = i;
        i += if insns.get(o)?.is_ld_imm64() { 2 } else { 1 };
        Some(o)
    })
}

/// Whether new slot `j` holds original slot `o`'s instruction, both slots of an ld_imm64, its
/// PC-relative field aside (a jump or call that only moved, or whose target moved, is kept).
fn same(orig: &[Insn], o: usize, new: &[Insn], j: usize) -> bool {
    let n = if orig.get(o).is_some_and(Insn::is_ld_imm64) { 2 } else { 1 };
    let (Some(a), Some(b)) = (orig.get(o..o + n), new.get(j..j + n)) else { return false };
    a.iter().map(without_target).eq(b.iter().map(without_target))
}

/// [`same`], the first slot's immediate aside.
fn same_but_imm(orig: &[Insn], o: usize, new: &[Insn], j: usize) -> bool {
    let (Some(a), Some(b)) = (orig.get(o), new.get(j)) else { return false };
    let n = if a.is_ld_imm64() { 2 } else { 1 };
    let no_imm = |i: &Insn| {
        let mut i = *i;
        i.imm = 0;
        i
    };
    no_imm(a) == no_imm(b) && orig.get(o + 1..o + n) == new.get(j + 1..j + n)
}

/// `insn` with its PC-relative field (jump offset, call or `PSEUDO_FUNC` immediate) zeroed.
fn without_target(insn: &Insn) -> Insn {
    let mut i = *insn;
    match i.target_field() {
        Some((TargetField::Off, _)) => i.off = 0,
        Some((TargetField::Imm, _)) => i.imm = 0,
        None => {}
    }
    i
}
