//! The verification layer: per-instruction aux data and the side tables the kernel keeps in sync
//! with the instructions, all remapped in the same linear pass through the [`OffsetMap`].
//!
//! No table has a hand-written adjuster: each entry names an original slot and is mapped with
//! one of the map's four questions (walrus / iced-x86 style):
//!
//! | table | question | deleted position |
//! |---|---|---|
//! | aux | identity ([`OffsetMap::insn`]) moves to the last slot of its patch; new slots from the hook | dropped with the slot |
//! | subprogram starts | [`OffsetMap::start`] (a prologue inserted by a skipping prepatch belongs to the subprogram) | first survivor; a subprogram whose start meets the next one's is gone |
//! | func_info | its subprogram's new start | removed with its subprogram |
//! | line_info | [`OffsetMap::start`] (the entry at a patch point covers the whole patch) | first survivor; on collision the last entry wins; past the end dropped |
//! | subprogram `linfo_idx` | recomputed: first line entry at or after the start | |
//! | poke descriptors | [`OffsetMap::start`] | kept at the first survivor and reported ([`Dropped::StalePoke`]) |
//! | insn arrays | [`OffsetMap::live_start`] | [`INSN_DELETED`] |
//! | CO-RE / ELF relocations | [`OffsetMap::insn`] (they follow the instruction) | removed and reported |
//!
//! The collision rule on line info reproduces the kernel's `bpf_adj_linfo_after_remove`: when a
//! deleted run held line entries and the first survivor has none, it inherits the last removed
//! one; when it has its own, the removed ones disappear.

// Node ids, handles, labels and positions are below MAX_NODES = 2^30 (checked whenever nodes
// or labels are allocated), so the usize <-> u32 conversions in this module cannot truncate.
#![allow(clippy::cast_possible_truncation)]

use crate::error::{Error, Result};
use crate::handle::Origin;
use crate::handle::pos;
use crate::linearize::{LinearizeOptions, LinearizeStats, OffsetMap, PatchCtx};
use crate::list::{F_TAIL, F_TOUCHED, PatchList};
use bpfpatch_insn::{Insn, Slot};

/// Marker of a deleted instruction in an insn-array entry (`INSN_DELETED`, `(u32)-1`).
pub const INSN_DELETED: u32 = u32::MAX;

/// A subprogram: `struct bpf_subprog_info`'s start and first line-info index.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Subprog {
    /// First slot.
    pub start: u32,
    /// Index of the line-info entry at `start` (0 without line info).
    pub linfo_idx: u32,
}

/// A BTF `bpf_func_info` record: one per subprogram.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct FuncInfo {
    /// The subprogram's first slot.
    pub insn_off: u32,
    /// BTF type id of the function.
    pub type_id: u32,
}

/// A BTF `bpf_line_info` record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct LineInfo {
    /// First slot the line covers (it covers up to the next entry).
    pub insn_off: u32,
    /// String offset of the file name.
    pub file_name_off: u32,
    /// String offset of the source line.
    pub line_off: u32,
    /// Line number and column (`line << 10 | col`).
    pub line_col: u32,
}

/// A tail-call poke descriptor (`struct bpf_jit_poke_descriptor`), reduced to what patching touches.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PokeDesc {
    /// Slot of the tail call.
    pub insn_idx: u32,
    /// The prog-array map (an opaque handle here).
    pub map: u32,
    /// The constant key.
    pub key: u32,
}

/// One entry of an instruction-array map (`struct bpf_insn_array_value`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct InsnArrayEntry {
    /// The slot in the program as loaded (never changes).
    pub orig_off: u32,
    /// The slot in the current program, or [`INSN_DELETED`].
    pub xlated_off: u32,
}

/// A relocation record attached to an instruction by byte offset, with any payload.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Reloc<T> {
    /// Byte offset of the instruction from the program start (slot * 8).
    pub insn_off: u64,
    /// What the relocation says.
    pub data: T,
}

/// Payload of a CO-RE relocation (`struct bpf_core_relo` without the offset).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct CoreRelocData {
    /// BTF type id of the root type.
    pub type_id: u32,
    /// String offset of the access string.
    pub access_str_off: u32,
    /// `enum bpf_core_relo_kind`.
    pub kind: u32,
}

/// Payload of an ELF relocation against an instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ElfRelocData {
    /// Symbol index.
    pub sym: u32,
    /// Relocation type (`R_BPF_*`).
    pub kind: u32,
}

/// A CO-RE relocation record.
pub type CoreReloc = Reloc<CoreRelocData>;
/// An ELF relocation record.
pub type ElfReloc = Reloc<ElfRelocData>;

/// Every side table of a program.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct SideTables {
    /// Subprograms in start order (without the kernel's fake 'exit' entry; it is the length).
    pub subprogs: Vec<Subprog>,
    /// One per subprogram, or empty.
    pub func_info: Vec<FuncInfo>,
    /// Strictly increasing by `insn_off`.
    pub line_info: Vec<LineInfo>,
    /// Tail-call poke descriptors (their index is referenced by the tail call's `imm`).
    pub pokes: Vec<PokeDesc>,
    /// Instruction-array maps.
    pub insn_arrays: Vec<Vec<InsnArrayEntry>>,
    /// CO-RE relocations.
    pub core_relocs: Vec<CoreReloc>,
    /// ELF relocations.
    pub elf_relocs: Vec<ElfReloc>,
}

/// A program with per-slot aux data and its side tables.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Program<A> {
    /// The slots.
    pub insns: Vec<Insn>,
    /// One aux entry per slot (ld_imm64 has two).
    pub aux: Vec<A>,
    /// The side tables.
    pub tables: SideTables,
}

/// How aux data is made for slots that have no original instruction, and refreshed for patched ones.
///
/// Each hook runs exactly once per output slot it concerns, always with the slot's final
/// instruction (jump and call offsets resolved). Calls come in output order, except that
/// slots whose target the walk left to the fixup pass (forward jumps and calls, among others)
/// are completed there, after the others.
pub trait AuxHook<A> {
    /// Aux data of a new slot holding `insn`; `parent` is the aux of the original instruction
    /// whose patch created it (the kernel copies its `seen`), `None` for appended code.
    fn new_slot(&mut self, insn: &Insn, parent: Option<&A>) -> A;

    /// Called once for the aux of every original instruction involved in a patch or prepatch,
    /// with the instruction it ends up on (the kernel recomputes `zext_dst` here). Default: nothing.
    fn patched(&mut self, aux: &mut A, insn: &Insn) {
        let _ = (aux, insn);
    }
}

impl<A, F: FnMut(&Insn, Option<&A>) -> A> AuxHook<A> for F {
    fn new_slot(&mut self, insn: &Insn, parent: Option<&A>) -> A {
        self(insn, parent)
    }
}

impl Program<()> {
    /// A program without aux data, for callers that only need instructions and side tables
    /// (a `Vec<()>` allocates nothing); linearize it with [`NoAux`].
    ///
    /// ```
    /// use bpfpatch_insn::{Insn, Slot, opcode as c};
    /// use bpfpatch_patch::*;
    /// let exit = Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0);
    /// let prog = Program::without_aux(vec![Insn::new(c::JMP | c::JA, 0, 0, 0, 0), exit], SideTables::default());
    /// let mut l = PatchList::for_program(&prog)?;
    /// l.patch(l.node_of(Slot(1))?, &PatchBuf::from_insns(&[Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 7), exit]))?;
    /// let out = l.linearize_program(&prog, &mut NoAux, LinearizeOptions::default())?;
    /// assert_eq!(out.program.insns.len(), 3);
    /// # Ok::<(), Error>(())
    /// ```
    #[must_use]
    pub fn without_aux(insns: Vec<Insn>, tables: SideTables) -> Program<()> {
        let n = insns.len();
        Program { insns, aux: vec![(); n], tables }
    }
}

/// The aux hook of [`Program::without_aux`]: no aux data.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAux;

impl AuxHook<()> for NoAux {
    fn new_slot(&mut self, _: &Insn, _: Option<&()>) {}
}

/// A record that could not follow its instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Dropped {
    /// A CO-RE relocation whose instruction was deleted (removed from the output).
    CoreReloc {
        /// Index in the input table.
        index: usize,
        /// Its byte offset in the input.
        insn_off: u64,
    },
    /// An ELF relocation whose instruction was deleted (removed from the output).
    ElfReloc {
        /// Index in the input table.
        index: usize,
        /// Its byte offset in the input.
        insn_off: u64,
    },
    /// A poke descriptor whose position was deleted: kept (its index is referenced by the
    /// tail call) and moved to the first survivor.
    StalePoke {
        /// Index in the table.
        index: usize,
        /// Its slot in the input.
        insn_idx: u32,
    },
}

/// The result of [`PatchList::linearize_program`].
#[doc(alias = "verifier_linearize_list_insn")]
#[derive(Clone, Debug)]
pub struct PatchedProgram<A> {
    /// The new program.
    pub program: Program<A>,
    /// The old-to-new map.
    pub map: OffsetMap,
    /// For each subprogram of the list (original, then appended): its new index, `None` if removed.
    pub subprog_map: Vec<Option<u32>>,
    /// Records that could not follow their instruction.
    pub dropped: Vec<Dropped>,
    /// Linearization statistics.
    pub stats: LinearizeStats,
}

impl<A> Default for PatchedProgram<A> {
    /// An empty result, to be filled by [`PatchList::linearize_program_into`].
    fn default() -> PatchedProgram<A> {
        PatchedProgram {
            program: Program { insns: Vec::new(), aux: Vec::new(), tables: SideTables::default() },
            map: OffsetMap::default(),
            subprog_map: Vec::new(),
            dropped: Vec::new(),
            stats: LinearizeStats::default(),
        }
    }
}

/// What the table checks need to know of the original program besides the tables: its
/// length, which slots are ld_imm64 second slots, and the engine's subprogram starts (the
/// list's and [`crate::InOrder`]'s, built from the same program by the same rule).
pub(crate) struct Shape<'a, T: Fn(usize) -> bool> {
    /// Slots of the original program.
    pub(crate) n: usize,
    /// Whether original slot `s` (`< n`) is the second slot of an ld_imm64 (a closure the
    /// checks inline: they call it once per table entry).
    pub(crate) tail: T,
    /// Subprogram starts (original ones first).
    pub(crate) subprogs: &'a [u32],
    /// Number of original subprograms.
    pub(crate) orig_subprogs: usize,
}

impl<T: Fn(usize) -> bool> Shape<'_, T> {
    #[inline]
    fn slot_ok(&self, s: u64) -> bool {
        s < self.n as u64 && !(self.tail)(s as usize)
    }
}

fn check_program<A>(list: &PatchList<'_>, prog: &Program<A>) -> Result<()> {
    let tail = |s: usize| list.flags[s] & F_TAIL != 0;
    let shape = Shape { n: list.orig_len(), tail, subprogs: &list.subprogs, orig_subprogs: list.orig_subprog_count() };
    check_shape(&shape, prog)
}

/// Checks `prog`'s length, aux and every side table against the engine's view of it
/// (`shape`): the errors [`PatchList::linearize_program`] reports before linearizing.
pub(crate) fn check_shape<A, T: Fn(usize) -> bool>(shape: &Shape<'_, T>, prog: &Program<A>) -> Result<()> {
    let n = shape.n;
    if prog.insns.len() != n {
        return Err(Error::ProgramMismatch { expected: n, got: prog.insns.len() });
    }
    if prog.aux.len() != n {
        return Err(Error::AuxLength { expected: n, got: prog.aux.len() });
    }
    let t = &prog.tables;
    if !t.subprogs.is_empty() {
        let k = shape.orig_subprogs;
        for i in 0..k.max(t.subprogs.len()) {
            if t.subprogs.get(i).map(|s| s.start) != shape.subprogs.get(i).copied().filter(|_| i < k) {
                return Err(Error::SubprogMismatch { index: i });
            }
        }
    }
    if !t.func_info.is_empty() && t.func_info.len() != shape.orig_subprogs {
        return Err(Error::FuncInfoCount { got: t.func_info.len(), subprogs: shape.orig_subprogs });
    }
    for (i, l) in t.line_info.iter().enumerate() {
        if !shape.slot_ok(u64::from(l.insn_off)) {
            return Err(Error::BadTableSlot { table: "line_info", index: i, slot: l.insn_off.into() });
        }
        if i > 0 && l.insn_off <= t.line_info[i - 1].insn_off {
            return Err(Error::LineInfoOrder { index: i, insn_off: l.insn_off });
        }
    }
    for (i, p) in t.pokes.iter().enumerate() {
        if !shape.slot_ok(u64::from(p.insn_idx)) {
            return Err(Error::BadTableSlot { table: "pokes", index: i, slot: p.insn_idx.into() });
        }
    }
    for a in &t.insn_arrays {
        for (i, e) in a.iter().enumerate() {
            if e.xlated_off != INSN_DELETED && !shape.slot_ok(u64::from(e.xlated_off)) {
                return Err(Error::BadTableSlot { table: "insn_array", index: i, slot: e.xlated_off.into() });
            }
        }
    }
    check_relocs(n, "core_relocs", &t.core_relocs)?;
    check_relocs(n, "elf_relocs", &t.elf_relocs)?;
    Ok(())
}

fn check_relocs<T>(n: usize, table: &'static str, r: &[Reloc<T>]) -> Result<()> {
    for (index, e) in r.iter().enumerate() {
        if e.insn_off % 8 != 0 {
            return Err(Error::RelocMisaligned { table, index, offset: e.insn_off });
        }
        if e.insn_off / 8 >= n as u64 {
            return Err(Error::BadTableSlot { table, index, slot: e.insn_off / 8 });
        }
    }
    Ok(())
}

impl OffsetMap {
    /// Remaps line info (input strictly increasing, valid slots): each entry moves to
    /// [`OffsetMap::start`]; on a collision (deleted runs) the last entry wins; entries that
    /// land past the end are dropped. Output is strictly increasing.
    pub fn remap_line_info(&self, input: &[LineInfo], out: &mut Vec<LineInfo>) {
        out.clear();
        out.reserve(input.len());
        self.line_info_survivors(input, |i, s| out.push(LineInfo { insn_off: s.0 as u32, ..input[i] }));
    }

    /// The rule of [`OffsetMap::remap_line_info`] (its one statement) for callers whose records
    /// carry more than a [`LineInfo`]: calls `keep(input index, new slot)` for every entry that
    /// survives, in order.
    pub fn line_info_survivors(&self, input: &[LineInfo], mut keep: impl FnMut(usize, Slot)) {
        // `OffsetMap::start` with its checks hoisted out of the loop.
        let words: &[u32] = if self.cstart.is_empty() { &self.pos } else { &self.cstart };
        let (n, new_len) = (self.orig_len(), self.new_len);
        let mut pending: Option<(usize, u32)> = None;
        for (i, l) in input.iter().enumerate() {
            // An offset past the program maps to the end or to nothing (`start`): no record
            // either way. (The words beyond it are the sentinel and new nodes, not slots.)
            let o = l.insn_off as usize;
            let Some(&w) = words.get(o).filter(|_| o < n) else { continue };
            let s = pos::slot(w);
            if s >= new_len {
                continue;
            }
            // On a collision the last entry wins.
            if let Some((j, t)) = pending.replace((i, s))
                && t != s
            {
                keep(j, Slot(t as usize));
            }
        }
        if let Some((j, t)) = pending {
            keep(j, Slot(t as usize));
        }
    }

    /// Remaps an insn array in place: live positions move to [`OffsetMap::start`], deleted ones
    /// become [`INSN_DELETED`] (and stay so).
    pub fn remap_insn_array(&self, entries: &mut [InsnArrayEntry]) {
        for e in entries {
            if e.xlated_off != INSN_DELETED {
                e.xlated_off = self.live_start(Slot(e.xlated_off as usize)).map_or(INSN_DELETED, |s| s.0 as u32);
            }
        }
    }

    /// Remaps relocations: each follows its instruction ([`OffsetMap::insn`]); records of deleted
    /// instructions are left out and their input indices appended to `dropped`.
    ///
    /// # Errors
    /// [`Error::RelocMisaligned`] or [`Error::BadTableSlot`] (checked before any output).
    pub fn remap_relocs<T: Clone>(
        &self,
        table: &'static str,
        input: &[Reloc<T>],
        out: &mut Vec<Reloc<T>>,
        dropped: &mut Vec<usize>,
    ) -> Result<()> {
        for (index, e) in input.iter().enumerate() {
            if e.insn_off % 8 != 0 {
                return Err(Error::RelocMisaligned { table, index, offset: e.insn_off });
            }
            if e.insn_off / 8 >= self.orig_len() as u64 {
                return Err(Error::BadTableSlot { table, index, slot: e.insn_off / 8 });
            }
        }
        out.clear();
        for (index, e) in input.iter().enumerate() {
            match self.insn(Slot((e.insn_off / 8) as usize)) {
                Some(s) => out.push(Reloc { insn_off: s.0 as u64 * 8, data: e.data.clone() }),
                None => dropped.push(index),
            }
        }
        Ok(())
    }
}

impl<'p> PatchList<'p> {
    /// Builds the list of a program, with its subprogram table (or the kernel's computed one
    /// when the table is empty).
    ///
    /// # Errors
    /// As [`PatchList::with_subprogs`].
    pub fn for_program<A>(prog: &'p Program<A>) -> Result<PatchList<'p>> {
        if prog.tables.subprogs.is_empty() {
            PatchList::new(&prog.insns)
        } else {
            let starts: Vec<u32> = prog.tables.subprogs.iter().map(|s| s.start).collect();
            PatchList::with_subprogs(&prog.insns, &starts)
        }
    }

    /// Aux after a walk that recorded `ctx.src` (the relaxing engine): identity slots copy the
    /// original's aux, others come from the hook.
    fn aux_from_src<A: Clone, H: AuxHook<A>>(&self, ctx: &PatchCtx, prog: &Program<A>, hook: &mut H, aux: &mut Vec<A>) {
        let insns = &ctx.out.insns;
        let map = &ctx.out.map;
        aux.clear();
        aux.reserve(map.new_len());
        for (j, sn) in ctx.src().iter().enumerate() {
            let first = map.pos.get(sn.x as usize).is_some_and(|&w| pos::slot(w) as usize == j);
            let o = sn.origin;
            let insn = &insns[j];
            let origin = Origin::of(o);
            if let (true, Origin::Orig(s)) = (first, origin) {
                let mut a = prog.aux[s as usize].clone();
                if sn.f & F_TOUCHED != 0 {
                    hook.patched(&mut a, insn);
                }
                aux.push(a);
            } else {
                let parent = origin.slot().and_then(|s| prog.aux.get(s as usize));
                aux.push(hook.new_slot(insn, parent));
            }
        }
    }

    /// Rebuilds this list for `prog` as [`PatchList::for_program`] does, keeping every
    /// allocation (the warm path: one list reused across programs).
    ///
    /// # Errors
    /// As [`PatchList::for_program`]; on error the list is empty.
    pub fn reset_for_program<A>(&mut self, prog: &'p Program<A>) -> Result<()> {
        if prog.tables.subprogs.is_empty() {
            return self.reset(&prog.insns, None);
        }
        let mut starts = core::mem::take(&mut self.scratch);
        starts.clear();
        starts.extend(prog.tables.subprogs.iter().map(|s| s.start));
        let r = self.reset(&prog.insns, Some(&starts));
        self.scratch = starts;
        r
    }

    /// Linearizes the instructions and every side table of `prog` (the program the list was
    /// built from) in one pass. Output subprograms are the list's (original, then appended),
    /// minus the ones whose instructions were all deleted.
    ///
    /// # Errors
    /// Mismatched or invalid input tables, or any [`PatchList::linearize`] error.
    #[doc(alias = "verifier_linearize_list_insn")]
    pub fn linearize_program<A: Clone, H: AuxHook<A>>(
        &self,
        prog: &Program<A>,
        hook: &mut H,
        opts: LinearizeOptions,
    ) -> Result<PatchedProgram<A>> {
        let mut ctx = PatchCtx::new();
        self.linearize_program_with(&mut ctx, prog, hook, opts)
    }

    /// [`PatchList::linearize_program`] reusing `ctx`'s scratch (the output is freshly allocated;
    /// [`PatchList::linearize_program_into`] reuses an output too).
    ///
    /// # Errors
    /// As [`PatchList::linearize_program`].
    pub fn linearize_program_with<A: Clone, H: AuxHook<A>>(
        &self,
        ctx: &mut PatchCtx,
        prog: &Program<A>,
        hook: &mut H,
        opts: LinearizeOptions,
    ) -> Result<PatchedProgram<A>> {
        let mut out = PatchedProgram::default();
        self.linearize_program_into(ctx, prog, hook, opts, &mut out)?;
        Ok(out)
    }

    /// [`PatchList::linearize_program`] writing into `out`, whose buffers (instructions, aux,
    /// every table, the map) are cleared and reused: with a reused `ctx` and `out`, a warm run
    /// allocates nothing (regalloc2's `run_with_ctx` model). On error `out` holds no valid
    /// program.
    ///
    /// # Errors
    /// As [`PatchList::linearize_program`].
    pub fn linearize_program_into<A: Clone, H: AuxHook<A>>(
        &self,
        ctx: &mut PatchCtx,
        prog: &Program<A>,
        hook: &mut H,
        opts: LinearizeOptions,
        out: &mut PatchedProgram<A>,
    ) -> Result<()> {
        check_program(self, prog)?;
        // The engine writes into `ctx.out`: lend it `out`'s buffers for the run (O(1) swaps).
        core::mem::swap(&mut ctx.out.insns, &mut out.program.insns);
        core::mem::swap(&mut ctx.out.map, &mut out.map);
        let r = if opts.relax || prog.aux.is_empty() {
            self.run(ctx, opts, true).map(|()| self.aux_from_src(ctx, prog, hook, &mut out.program.aux))
        } else {
            self.run_aux(ctx, &prog.aux, hook, &mut out.program.aux)
        };
        core::mem::swap(&mut ctx.out.insns, &mut out.program.insns);
        core::mem::swap(&mut ctx.out.map, &mut out.map);
        r?;
        out.stats = ctx.out.stats;
        remap_tables(&prog.tables, &mut ctx.tables, out)
    }
}

/// Scratch of [`remap_tables`], kept across runs: which subprograms survive, the kept ones,
/// indices of dropped relocations.
#[derive(Clone, Debug, Default)]
pub(crate) struct TableScratch {
    keep: Vec<bool>,
    kept: Vec<(usize, u32)>,
    idx: Vec<usize>,
}

/// Remaps every side table of `t` (the input program's, checked by [`check_shape`]) through
/// `out.map` (final) into `out`: subprograms, `subprog_map`, func_info, line info, pokes, insn
/// arrays, relocations and `dropped`. The one table pass of both engines (the list's
/// [`PatchList::linearize_program_into`] and [`crate::InOrder::finish`]).
pub(crate) fn remap_tables<A>(t: &SideTables, scratch: &mut TableScratch, out: &mut PatchedProgram<A>) -> Result<()> {
    let map = &out.map;

    let tables = &mut out.program.tables;
    let dropped = &mut out.dropped;
    dropped.clear();

    // Subprograms: a subprogram is gone when its start meets the start of the next surviving
    // one (or the end): all its slots were deleted. Scanned backwards because the start of a
    // wholly deleted subprogram may resolve past code appended after it was deleted.
    let starts = &map.subprog_starts;
    let keep = &mut scratch.keep;
    keep.clear();
    keep.resize(starts.len(), false);
    let mut next = map.new_len;
    for k in (0..starts.len()).rev() {
        let s = pos::slot(starts[k]);
        if s < next {
            keep[k] = true;
            next = s;
        }
    }
    let subprog_map = &mut out.subprog_map;
    subprog_map.clear();
    let kept = &mut scratch.kept;
    kept.clear();
    for (k, &w) in starts.iter().enumerate() {
        if keep[k] {
            subprog_map.push(Some(kept.len() as u32));
            kept.push((k, pos::slot(w)));
        } else {
            subprog_map.push(None);
        }
    }
    map.remap_line_info(&t.line_info, &mut tables.line_info);
    tables.subprogs.clear();
    tables.func_info.clear();
    for &(k, s) in kept.iter() {
        let linfo_idx = tables.line_info.partition_point(|l| l.insn_off < s) as u32;
        tables.subprogs.push(Subprog { start: s, linfo_idx });
        if let Some(fi) = t.func_info.get(k) {
            tables.func_info.push(FuncInfo { insn_off: s, ..*fi });
        }
    }
    tables.pokes.clear();
    for (index, p) in t.pokes.iter().enumerate() {
        let old = Slot(p.insn_idx as usize);
        let s = map.start(old).map_or(0, |s| s.0 as u32);
        if map.live_start(old).is_none() {
            dropped.push(Dropped::StalePoke { index, insn_idx: p.insn_idx });
        }
        tables.pokes.push(PokeDesc { insn_idx: s, ..*p });
    }
    tables.insn_arrays.truncate(t.insn_arrays.len());
    for (k, a) in t.insn_arrays.iter().enumerate() {
        match tables.insn_arrays.get_mut(k) {
            Some(o) => o.clone_from(a),
            None => tables.insn_arrays.push(a.clone()),
        }
        if let Some(o) = tables.insn_arrays.get_mut(k) {
            map.remap_insn_array(o);
        }
    }
    let idx = &mut scratch.idx;
    idx.clear();
    map.remap_relocs("core_relocs", &t.core_relocs, &mut tables.core_relocs, idx)?;
    dropped.extend(idx.drain(..).map(|index| Dropped::CoreReloc { index, insn_off: t.core_relocs[index].insn_off }));
    map.remap_relocs("elf_relocs", &t.elf_relocs, &mut tables.elf_relocs, idx)?;
    dropped.extend(idx.drain(..).map(|index| Dropped::ElfReloc { index, insn_off: t.elf_relocs[index].insn_off }));
    Ok(())
}
