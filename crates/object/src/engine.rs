//! The bridge between an object's program sections and the patching engine
//! ([`bpfpatch_patch`]): a section becomes a [`Program`] in the *kernel view*, passes patch its
//! [`PatchList`], and the linearized result goes back through
//! [`BpfObject::replace_program`].
//!
//! # The kernel view
//! In a clang object the `imm` of a relocated instruction is not what the kernel sees: a call
//! relocated with `R_BPF_64_32` holds a position relative to its *symbol* (`S / 8 + imm + 1`,
//! as libbpf computes it), not to the instruction, and a relocated ld_imm64 is a plain constant
//! (`src_reg` 0) that libbpf turns into a map, variable or function reference at load time. The
//! engine treats `imm` of calls and `PSEUDO_FUNC` as PC-relative and blinding treats plain
//! ld_imm64 as user constants, so [`EngineView`] presents each relocated instruction the way the
//! kernel would see it ([`RelocRole`]):
//! - a call whose symbol is in this section and whose target is an instruction start: a
//!   bpf-to-bpf call with the PC-relative `imm` of that target (the engine moves it);
//! - an ld_imm64 naming code of this section: a `PSEUDO_FUNC` with the PC-relative target;
//! - a call resolved elsewhere (another section, an extern kfunc, an unresolvable target): a
//!   kfunc call (`src_reg` 2, same `imm`/`off`), which has the call ABI but no target;
//! - an ld_imm64 of data: `PSEUDO_MAP_FD` (symbols of `.maps`/`maps`), `PSEUDO_MAP_VALUE`
//!   (other defined data), `PSEUDO_BTF_ID` (undefined symbols and code of other sections).
//!
//! Passes must leave relocated instructions alone ([`SlotAux::reloc`] marks them). After
//! linearization every surviving relocated instruction is compared with its view (ignoring the
//! PC-relative `imm` the engine recomputed) — a difference is [`EngineError::RelocatedRewritten`]
//! — and its original encoding is restored; [`BpfObject::replace_program`] then re-derives the
//! addends of calls and function addresses into the section from the new positions.
//!
//! # Maps
//! [`OffsetMapSlots`] adapts the engine's [`OffsetMap`] to [`SlotMap`]: `start` is
//! [`OffsetMap::start`] (where calls, subprogram starts and line info land: the first survivor
//! of a deleted position, the prologue of a skipping prepatch), `insn` is [`OffsetMap::insn`]
//! (where the instruction's identity went). The engine's own remapping of the side tables uses
//! the same two questions, so both layers agree; before committing, the engine's target of
//! every relocated local call or function address is checked against `start` of its old
//! target ([`EngineError::TargetDisagreement`]).
//!
//! # Side tables of the view
//! Subprograms are the function symbols' starts (plus slot 0); func_info is included when it
//! has exactly one record per such subprogram, line_info when it is strictly increasing on
//! instruction starts, CO-RE and ELF relocations always (as byte offsets). Records the view
//! leaves out are still moved by [`BpfObject::replace_program`], which owns the object's
//! tables; the view's tables are for passes and for cross-checking.

use crate::check::starts;
use crate::elf::{STB_GLOBAL, STB_WEAK, STT_NOTYPE};
use crate::error::SectionRef;
use crate::reloc_type::{R_BPF_64_32, R_BPF_64_64};
use crate::rewrite::{EngineRecords, RewriteReport, SlotMap};
use crate::{BpfObject, ObjectError, Subprogram};
use bpfpatch_insn::opcode::{
    CALL, JMP, PSEUDO_BTF_ID, PSEUDO_CALL, PSEUDO_FUNC, PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE,
};
use bpfpatch_insn::{Endian, Insn, Slot};
use bpfpatch_patch::{
    self as patch, AuxHook, CoreReloc, CoreRelocData, Dropped, ElfReloc, ElfRelocData, LinearizeOptions, OffsetMap,
    PatchCtx, PatchList, PatchedProgram, Program, SideTables, Subprog,
};
use core::fmt;
use std::time::{Duration, Instant};

/// How a relocated instruction is presented to the engine (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelocRole {
    /// A call into this section: a bpf-to-bpf call to old slot `target`.
    LocalCall {
        /// The old slot it calls.
        target: usize,
    },
    /// An ld_imm64 taking the address of old slot `target` of this section: `PSEUDO_FUNC`.
    LocalFuncAddr {
        /// The old slot it names.
        target: usize,
    },
    /// A call resolved outside this section: a kfunc call with no target.
    ExternCall,
    /// An ld_imm64 of code in another section or of an undefined symbol: `PSEUDO_BTF_ID`.
    ExternAddr,
    /// An ld_imm64 of data: `PSEUDO_MAP_FD` or `PSEUDO_MAP_VALUE`.
    Data,
    /// A relocation on another kind of instruction (or on an ld_imm64's second slot, marked on
    /// its first): presented unchanged.
    Other,
}

/// Per-slot aux data of the view: where the slot comes from and whether a relocation owns it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SlotAux {
    /// The original slot this slot carries (`None` for slots created by patches).
    pub orig: Option<u32>,
    /// For a new slot: the original instruction whose patch created it, if any.
    pub parent: Option<u32>,
    /// The role of the relocation on this slot (on the first slot of an ld_imm64), if any.
    /// Passes must not rewrite, blind or delete-and-recreate such an instruction.
    pub reloc: Option<RelocRole>,
}

/// One program section in the kernel view, with what is needed to map the result back.
#[derive(Clone, Debug)]
pub struct EngineView {
    prog: usize,
    section: SectionRef,
    name: String,
    endian: Endian,
    program: Program<SlotAux>,
    roles: Vec<(usize, RelocRole)>,
    subprograms: Vec<Subprogram>,
    entries: Vec<usize>,
    /// Whether the side tables carry every record of the object's (func_info, line_info,
    /// CO-RE, relocations): then the write-back takes the engine's remapped tables as they are.
    /// A malformed table the engine cannot take (line_info out of order, func_info that does
    /// not match the subprograms, misaligned CO-RE offsets) is remapped by the object's own
    /// adjuster instead ([`BpfObject::replace_program`]).
    complete: bool,
    /// The object's line_info records of the program (what a record carries beyond the
    /// engine's [`bpfpatch_patch::LineInfo`] rides along by index).
    line_records: Vec<crate::LineInfo>,
    /// Per entry of `roles`: the instruction's object encoding and its kernel view's. The
    /// write-back restores the first; the view's instructions hold the second.
    encodings: Vec<(Insn, Insn)>,
}

impl EngineView {
    /// Puts the object's instructions of the program into the view, in the kernel view's
    /// encodings at relocated slots.
    fn install(&mut self, mut insns: Vec<Insn>) {
        for (&(s, _), &(_, kernel)) in self.roles.iter().zip(&self.encodings) {
            if let Some(x) = insns.get_mut(s) {
                *x = kernel;
            }
        }
        self.program.insns = insns;
    }

    /// The program's length in slots: one aux record each, which stays in the view when its
    /// instructions go back to the object ([`BpfObject::give_back`]).
    fn len(&self) -> usize {
        self.program.aux.len()
    }

    /// The program for the engine: kernel-view instructions, aux, side tables.
    #[must_use]
    pub fn program(&self) -> &Program<SlotAux> {
        &self.program
    }

    /// The relocated instruction starts and their roles, by slot.
    #[must_use]
    pub fn roles(&self) -> &[(usize, RelocRole)] {
        &self.roles
    }

    /// What passes get to see.
    #[must_use]
    pub fn info(&self) -> ProgramInfo<'_> {
        ProgramInfo {
            index: self.prog,
            name: &self.name,
            section: self.section.index,
            endian: self.endian,
            program: &self.program,
            subprograms: &self.subprograms,
            entries: &self.entries,
        }
    }
}

/// What a pass closure is told about the program it patches.
#[derive(Clone, Copy, Debug)]
pub struct ProgramInfo<'a> {
    /// Index of the program in [`BpfObject::programs`] (0 for a raw image).
    pub index: usize,
    /// The section name (`<raw>` for a raw image).
    pub name: &'a str,
    /// Index of the section (0 for a raw image).
    pub section: usize,
    /// Byte order of the program.
    pub endian: Endian,
    /// The program the list was built from: kernel-view instructions, aux ([`SlotAux::reloc`]
    /// marks relocated instructions), side tables.
    pub program: &'a Program<SlotAux>,
    /// The function symbols of the section, by start. Every one is a possible entry point:
    /// programs of a section with several, and `.text` functions called from other sections.
    pub subprograms: &'a [Subprogram],
    /// [`BpfObject::entry_points`] of the section (empty for a raw image).
    entries: &'a [usize],
}

impl ProgramInfo<'_> {
    /// Whether a relocation owns old slot `slot` (passes must leave that instruction alone).
    #[must_use]
    pub fn is_relocated(&self, slot: usize) -> bool {
        self.program.aux.get(slot).is_some_and(|a| a.reloc.is_some())
    }

    /// Old slots whose fields a loader fills in, ascending: relocated instructions
    /// ([`ProgramInfo::is_relocated`]) and the instructions of CO-RE relocation records (field
    /// offsets, type ids, existence flags: their immediates and offsets are placeholders).
    /// Passes must leave them alone and must not rely on what they compute
    /// (`bpfpatch_passes::Options::protected`).
    #[must_use]
    pub fn patched_at_load(&self) -> Vec<usize> {
        let n = self.program.insns.len();
        let core = self.program.tables.core_relocs.iter().filter(|c| c.insn_off % 8 == 0).map(|c| c.insn_off / 8);
        let mut v: Vec<usize> = (0..n)
            .filter(|&s| self.is_relocated(s))
            .chain(core.filter_map(|s| usize::try_from(s).ok()).filter(|&s| s < n))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Old slots where control can enter the section from outside, ascending: slot 0 of a
    /// non-empty program and, in an object, [`BpfObject::entry_points`] (function symbols,
    /// global code symbols, targets of calls and function addresses from other sections).
    #[must_use]
    pub fn entries(&self) -> Vec<usize> {
        let mut v: Vec<usize> = core::iter::once(0).chain(self.entries.iter().copied()).collect();
        v.retain(|&s| s < self.program.insns.len());
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// [`OffsetMap`] as a [`SlotMap`] (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct OffsetMapSlots<'a>(pub &'a OffsetMap);

impl SlotMap for OffsetMapSlots<'_> {
    fn new_len(&self) -> usize {
        self.0.new_len()
    }
    fn start(&self, old: usize) -> usize {
        self.0.start(Slot(old)).map_or(self.0.new_len(), |s| s.0)
    }
    fn insn(&self, old: usize) -> Option<usize> {
        self.0.insn(Slot(old)).map(|s| s.0)
    }
}

/// Why a program could not be rewritten through the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The object layer refused (parse-level problems, or the rewrite's map or image).
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The view is not of the object it is applied to (the program is gone or has another
    /// length): a view is applied to the object it was taken from, unchanged since.
    #[error("{section}: the engine view does not match the object's program")]
    StaleView {
        /// The view's section.
        section: SectionRef,
    },
    /// The engine refused the program or a request.
    #[error("{section}: {error}")]
    Patch {
        /// The section.
        section: SectionRef,
        /// The engine's error.
        error: patch::Error,
    },
    /// The pass closure failed.
    #[error("{section}: {error}")]
    Pass {
        /// The section.
        section: SectionRef,
        /// The closure's error.
        error: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A pass changed an instruction whose fields belong to a relocation (ELF or CO-RE).
    #[error("{section}: a pass rewrote the relocated instruction at old slot {old} (now slot {new})")]
    RelocatedRewritten {
        /// The section.
        section: SectionRef,
        /// Its old slot.
        old: usize,
        /// The slot carrying it now.
        new: usize,
    },
    /// The engine's target of a relocated local call or function address is not where the
    /// object layer would put it (an internal inconsistency; nothing was changed).
    #[error(
        "{section}: relocated instruction at old slot {old}: engine targets slot {engine}, object map says {object}"
    )]
    TargetDisagreement {
        /// The section.
        section: SectionRef,
        /// Old slot of the instruction.
        old: usize,
        /// The engine's new target.
        engine: i64,
        /// `start` of the old target.
        object: usize,
    },
    /// Passes appended subprograms, which an object cannot hold without new symbols.
    #[error("{section}: {count} appended subprogram(s) cannot be written to an object")]
    AppendedSubprogram {
        /// The section.
        section: SectionRef,
        /// How many.
        count: usize,
    },
}

/// A call from one program's section into another's ([`BpfObject::calls_into`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CrossCall {
    /// Index of the calling program in [`BpfObject::programs`].
    pub from: usize,
    /// Slot of the `call` in the caller.
    pub slot: usize,
    /// Slot of the callee in the called program.
    pub target: usize,
}

/// Options of a rewrite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewriteOptions {
    /// Relax jumps whose offset overflows (`gotol`, cpu v4) instead of failing, in programs that
    /// are cpu v4 after the passes (hold a v4 instruction, [`bpfpatch_insn::Insn::is_cpu_v4`]);
    /// a v3 program's overflowing jump stays an error naming it, since a v3 kernel rejects
    /// `gotol`.
    pub relax: bool,
}

/// What rewriting one program did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgramReport {
    /// Index of the program ([`BpfObject::programs`]).
    pub index: usize,
    /// Section name.
    pub name: String,
    /// Slots before (an ld_imm64 counts two).
    pub slots_before: usize,
    /// Slots after.
    pub slots_after: usize,
    /// Original instructions involved in a patch or prepatch.
    pub patched: usize,
    /// Slots created by patches.
    pub inserted: usize,
    /// Original slots deleted.
    pub deleted: usize,
    /// Jumps relaxed (`goto` to `gotol`, conditional jumps expanded).
    pub relaxed: usize,
    /// What the object layer reported (relocations and records dropped with deleted code).
    pub object: RewriteReport,
    /// Time spent (view, passes, linearization, write-back).
    pub time: Duration,
}

/// Aux hook: marks new slots and counts what the linearization reports.
#[derive(Debug, Default)]
struct Hook {
    inserted: usize,
    patched: usize,
}

impl AuxHook<SlotAux> for Hook {
    fn new_slot(&mut self, _insn: &Insn, parent: Option<&SlotAux>) -> SlotAux {
        self.inserted += 1;
        SlotAux { orig: None, parent: parent.and_then(|p| p.orig.or(p.parent)), reloc: None }
    }
    fn patched(&mut self, _aux: &mut SlotAux, _insn: &Insn) {
        self.patched += 1;
    }
}

/// The PC-relative `imm` from slot `at` to slot `target`, if it fits.
fn rel_imm(at: usize, target: usize) -> Option<i32> {
    let rel = i64::try_from(target).ok()? - i64::try_from(at).ok()? - 1;
    i32::try_from(rel).ok()
}

fn slot_u32(s: usize) -> u32 {
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// Whether section `name` holds map definitions (libbpf: `.maps`, legacy `maps`, `maps/...`).
fn is_maps_section(name: &str) -> bool {
    name == ".maps" || name == "maps" || name.starts_with("maps/")
}

impl BpfObject {
    /// The kernel view of program `prog` (see the module documentation).
    ///
    /// # Errors
    /// [`ObjectError::NoProgram`] for a bad index.
    pub fn engine_view(&self, prog: usize) -> Result<EngineView, ObjectError> {
        let mut view = self.view_of(prog)?;
        // A view that leaves the object whole owns a copy of the instructions.
        let insns = self.programs.get(prog).map(|p| p.insns.clone()).unwrap_or_default();
        view.install(insns);
        Ok(view)
    }

    /// [`BpfObject::engine_view`] taking the program's instructions out of the object instead
    /// of copying them (the rewrite path: `Rewriter`): the object's program is empty until
    /// [`BpfObject::give_back`], which every caller runs before anything else reads the
    /// object, on success and on error alike.
    pub(crate) fn take_engine_view(&mut self, prog: usize) -> Result<EngineView, ObjectError> {
        let mut view = self.view_of(prog)?;
        let insns = self.programs.get_mut(prog).map(|p| core::mem::take(&mut p.insns)).unwrap_or_default();
        view.install(insns);
        Ok(view)
    }

    /// Moves the instructions of a view made by [`BpfObject::take_engine_view`] back into the
    /// object, in the object's encodings: the object is as before the view was taken. The
    /// view keeps everything but its instructions.
    pub(crate) fn give_back(&mut self, view: &mut EngineView) {
        let mut insns = core::mem::take(&mut view.program.insns);
        for (&(s, _), &(object, _)) in view.roles.iter().zip(&view.encodings) {
            if let Some(x) = insns.get_mut(s) {
                *x = object;
            }
        }
        if let Some(p) = self.programs.get_mut(view.prog) {
            p.insns = insns;
        }
    }

    /// The kernel view of program `prog` without its instructions (`install` puts them in).
    fn view_of(&self, prog: usize) -> Result<EngineView, ObjectError> {
        let p = self.programs.get(prog).ok_or(ObjectError::NoProgram { index: prog })?;
        let orig = &p.insns;
        let n = orig.len();
        let is_start = starts(orig);
        // Per relocated slot: its role, object encoding and kernel view encoding.
        let mut relocated: Vec<(usize, RelocRole, Insn, Insn)> = Vec::new();
        let mut aux: Vec<SlotAux> =
            (0..n).map(|s| SlotAux { orig: Some(slot_u32(s)), parent: None, reloc: None }).collect();
        let in_range = |t: i64| usize::try_from(t).ok().filter(|&t| t < n && is_start[t]);
        for r in &p.relocs {
            let s = r.slot;
            if s >= n || aux[s].reloc.is_some() {
                continue;
            }
            if !is_start[s] {
                // On the second slot of an ld_imm64: the whole instruction is the relocation's.
                if let Some(first) = s.checked_sub(1).filter(|&f| aux[f].reloc.is_none()) {
                    aux[first].reloc = Some(RelocRole::Other);
                    relocated.push((first, RelocRole::Other, orig[first], orig[first]));
                }
                continue;
            }
            let insn = orig[s];
            let sym = self.elf.symbols.get(r.symbol as usize);
            let sym_sec = sym.and_then(crate::Symbol::section);
            let same = sym_sec == Some(p.section);
            let value = sym.and_then(|y| i64::try_from(y.value).ok());
            let is_ld = insn.is_ld_imm64() && s + 1 < n;
            let role = if insn.code == JMP | CALL && insn.src() == PSEUDO_CALL && r.r_type == R_BPF_64_32 {
                let target = value
                    .filter(|v| same && v % 8 == 0)
                    .and_then(|v| in_range(v / 8 + i64::from(insn.imm) + 1))
                    .filter(|&t| rel_imm(s, t).is_some());
                match target {
                    Some(target) => RelocRole::LocalCall { target },
                    None => RelocRole::ExternCall,
                }
            } else if is_ld && (r.r_type == R_BPF_64_64 || r.r_type == R_BPF_64_32) {
                let target = value
                    .map(|v| v + i64::from(insn.imm))
                    .filter(|t| same && t % 8 == 0)
                    .and_then(|t| in_range(t / 8))
                    .filter(|&t| rel_imm(s, t).is_some());
                let code = sym_sec.is_some_and(|sec| self.programs.iter().any(|q| q.section == sec));
                match target {
                    Some(target) => RelocRole::LocalFuncAddr { target },
                    None if code || sym_sec.is_none() => RelocRole::ExternAddr,
                    None => RelocRole::Data,
                }
            } else {
                RelocRole::Other
            };
            let mut kernel = insn;
            let v = &mut kernel;
            match role {
                RelocRole::LocalCall { target } => v.imm = rel_imm(s, target).unwrap_or_default(),
                RelocRole::LocalFuncAddr { target } => {
                    v.set_src(PSEUDO_FUNC);
                    v.imm = rel_imm(s, target).unwrap_or_default();
                }
                RelocRole::ExternCall => v.set_src(PSEUDO_KFUNC_CALL),
                RelocRole::ExternAddr => v.set_src(PSEUDO_BTF_ID),
                RelocRole::Data => {
                    let maps = sym_sec.and_then(|i| self.elf.names.get(i)).is_some_and(|nm| is_maps_section(nm));
                    v.set_src(if maps { PSEUDO_MAP_FD } else { PSEUDO_MAP_VALUE });
                }
                RelocRole::Other => {}
            }
            aux[s].reloc = Some(role);
            relocated.push((s, role, insn, kernel));
        }
        relocated.sort_unstable_by_key(|r| r.0);
        let roles = relocated.iter().map(|&(s, role, _, _)| (s, role)).collect();
        let encodings = relocated.iter().map(|&(_, _, object, kernel)| (object, kernel)).collect();

        // Side tables.
        let subprograms = self.subprograms(prog);
        let mut tables = SideTables::default();
        if n > 0 {
            let mut st: Vec<u32> = core::iter::once(0)
                .chain(subprograms.iter().map(|s| s.start).filter(|&s| s < n && is_start[s]).map(slot_u32))
                .collect();
            st.sort_unstable();
            st.dedup();
            tables.subprogs = st.iter().map(|&start| Subprog { start, linfo_idx: 0 }).collect();
        }
        let fi = self.func_info(prog);
        if fi.len() == tables.subprogs.len()
            && fi.iter().zip(&tables.subprogs).all(|(f, s)| f.insn_off % 8 == 0 && f.insn_off / 8 == s.start)
        {
            tables.func_info =
                fi.iter().map(|f| patch::FuncInfo { insn_off: f.insn_off / 8, type_id: f.type_id }).collect();
        }
        let li = self.line_info(prog);
        let li_ok = li.iter().enumerate().all(|(k, l)| {
            let s = (l.insn_off / 8) as usize;
            l.insn_off % 8 == 0 && s < n && is_start[s] && (k == 0 || l.insn_off > li[k - 1].insn_off)
        });
        if li_ok {
            tables.line_info = li
                .iter()
                .map(|l| patch::LineInfo {
                    insn_off: l.insn_off / 8,
                    file_name_off: l.file_name_off,
                    line_off: l.line_off,
                    line_col: l.line_col,
                })
                .collect();
        }
        let core_all = self.core_relos(prog).iter().all(|c| c.insn_off % 8 == 0 && ((c.insn_off / 8) as usize) < n);
        let complete = (fi.is_empty() || !tables.func_info.is_empty()) && (li.is_empty() || li_ok) && core_all;
        tables.core_relocs = self
            .core_relos(prog)
            .iter()
            .filter(|c| c.insn_off % 8 == 0 && ((c.insn_off / 8) as usize) < n)
            .map(|c| CoreReloc {
                insn_off: u64::from(c.insn_off),
                data: CoreRelocData { type_id: c.type_id, access_str_off: c.access_str_off, kind: c.kind },
            })
            .collect();
        tables.elf_relocs = p
            .relocs
            .iter()
            .map(|r| ElfReloc { insn_off: r.slot as u64 * 8, data: ElfRelocData { sym: r.symbol, kind: r.r_type } })
            .collect();
        Ok(EngineView {
            prog,
            section: self.elf.section_ref(p.section),
            name: p.name.clone(),
            endian: p.endian,
            program: Program { insns: Vec::new(), aux, tables },
            roles,
            subprograms,
            entries: self.entry_points(prog),
            complete,
            line_records: li.to_vec(),
            encodings,
        })
    }

    /// The old slots of program `prog` where control can enter it from outside its own code,
    /// ascending, each an instruction start:
    /// - slot 0 (of a non-empty program);
    /// - every function symbol's start ([`BpfObject::subprograms`]: the programs of a section
    ///   with several, functions other sections or objects call);
    /// - every global or weak code symbol's start whatever its type: clang before 10 emits
    ///   functions as `STT_NOTYPE` (local `STT_NOTYPE` symbols are labels, not entries);
    /// - the target of every call or function address relocated (REL) from another section
    ///   into this one (`S / 8 + imm + 1` for a call, `(S + imm) / 8` for an ld_imm64), whatever
    ///   the symbol: a section symbol or an untyped one names code no function symbol may mark.
    ///
    /// Passes must keep these reachable with unknown inputs ([`ProgramInfo::entries`]).
    #[must_use]
    pub fn entry_points(&self, prog: usize) -> Vec<usize> {
        let Some(p) = self.programs.get(prog) else { return Vec::new() };
        let n = p.insns.len();
        let is_start = starts(&p.insns);
        let at = |byte: i64| {
            usize::try_from(byte).ok().filter(|b| b % 8 == 0).map(|b| b / 8).filter(|&s| s < n && is_start[s])
        };
        let mut v: Vec<usize> = Vec::new();
        if n > 0 {
            v.push(0);
        }
        for s in &self.elf.symbols {
            let global = s.binding() == STB_GLOBAL || s.binding() == STB_WEAK;
            if s.section() == Some(p.section) && (s.is_func() || (global && s.kind() == STT_NOTYPE)) {
                v.extend(i64::try_from(s.value).ok().and_then(at));
            }
        }
        v.extend(self.references_into(prog).into_iter().map(|(_, c)| c.target));
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The calls into program `prog` from other sections (a program calling a `.text`
    /// function), in program and slot order: relocated (REL) `call`s whose target is an
    /// instruction start of `prog`. The callee's analyses take what r0..r9 hold at these calls
    /// as its entry's registers (`bpfpatch_passes::Options::entry_calls`).
    #[must_use]
    pub fn calls_into(&self, prog: usize) -> Vec<CrossCall> {
        self.references_into(prog)
            .into_iter()
            .filter(|(k, _)| *k == crate::rewrite::AddendKind::Call)
            .map(|r| r.1)
            .collect()
    }

    /// Calls and function addresses relocated from other sections into program `prog`, with
    /// their addend kinds.
    fn references_into(&self, prog: usize) -> Vec<(crate::rewrite::AddendKind, CrossCall)> {
        let Some(p) = self.programs.get(prog) else { return Vec::new() };
        let n = p.insns.len();
        let is_start = starts(&p.insns);
        let at = |byte: i64| {
            usize::try_from(byte).ok().filter(|b| b % 8 == 0).map(|b| b / 8).filter(|&s| s < n && is_start[s])
        };
        let mut v = Vec::new();
        for (qi, q) in self.programs.iter().enumerate().filter(|(_, q)| q.section != p.section && !q.rela) {
            for r in &q.relocs {
                let Some(sym) = self.elf.symbols.get(r.symbol as usize) else { continue };
                let (Some(insn), true) = (q.insns.get(r.slot), sym.section() == Some(p.section)) else { continue };
                let Some(kind) = crate::rewrite::addend_kind(r, insn) else { continue };
                if let Some(target) = crate::rewrite::addend_target(kind, sym.value, insn.imm).and_then(at) {
                    v.push((kind, CrossCall { from: qi, slot: r.slot, target }));
                }
            }
        }
        v
    }

    /// Writes a linearized program back: checks that relocated and CO-RE-relocated
    /// instructions were left alone and that the engine's targets agree with the map, restores their original encoding and
    /// calls [`BpfObject::replace_program`]. On success `patched.program.insns` holds the
    /// instructions as now in the object.
    ///
    /// # Errors
    /// [`EngineError::RelocatedRewritten`], [`EngineError::TargetDisagreement`],
    /// [`EngineError::AppendedSubprogram`], or the object's refusal; the object is then unchanged.
    pub fn apply_patched(
        &mut self,
        view: &EngineView,
        patched: &mut PatchedProgram<SlotAux>,
    ) -> Result<RewriteReport, EngineError> {
        self.apply_patched_via(view, patched, true)
    }

    /// [`BpfObject::apply_patched`] with the records moved by the object's own adjuster
    /// ([`BpfObject::replace_program`] through the engine's map) instead of taken from the
    /// engine's remapped tables: the oracle the tests hold the one remap path to.
    ///
    /// # Errors
    /// As [`BpfObject::apply_patched`].
    pub fn apply_patched_by_adjuster(
        &mut self,
        view: &EngineView,
        patched: &mut PatchedProgram<SlotAux>,
    ) -> Result<RewriteReport, EngineError> {
        self.apply_patched_via(view, patched, false)
    }

    /// The write-back of a view that left the object whole ([`BpfObject::engine_view`]), for
    /// the public entry points (which hand the new instructions back): the view must still be
    /// of the object's program, then [`check_relocated`] and [`BpfObject::write_back`].
    fn apply_patched_via(
        &mut self,
        view: &EngineView,
        patched: &mut PatchedProgram<SlotAux>,
        engine_tables: bool,
    ) -> Result<RewriteReport, EngineError> {
        if self.programs.get(view.prog).is_none_or(|p| p.insns.len() != view.len()) {
            return Err(EngineError::StaleView { section: view.section.clone() });
        }
        check_relocated(view, patched)?;
        self.write_back(view, patched, engine_tables, true)
    }

    /// The object's part of the write-back, once [`check_relocated`] passed (the object holds
    /// its program's instructions): the new instructions move into the object (no copy), with
    /// the engine's remapped records (`engine_tables`, when the view is complete) or the
    /// object's own adjuster; with `keep`, `patched.program.insns` then gets a copy of them as
    /// they are in the object (the contract of [`BpfObject::apply_patched`]), else it is left
    /// empty.
    fn write_back(
        &mut self,
        view: &EngineView,
        patched: &mut PatchedProgram<SlotAux>,
        engine_tables: bool,
        keep: bool,
    ) -> Result<RewriteReport, EngineError> {
        let records = (engine_tables && view.complete)
            .then(|| engine_records(view, &patched.program.tables, &patched.map, &patched.dropped));
        let out = &mut patched.program.insns;
        let report = self.replace_program_with(view.prog, out, &OffsetMapSlots(&patched.map), records.as_ref())?;
        if keep && let Some(p) = self.programs.get(view.prog) {
            out.clone_from(&p.insns);
        }
        Ok(report)
    }
}

/// The engine's side of the write-back, before the object is touched: no appended
/// subprogram; relocated and CO-RE-relocated instructions left alone (compared with the
/// view's instructions, which it must still hold) and the engine's targets of local calls and
/// function addresses equal to the map's; then the relocated instructions of
/// `patched.program.insns` get their object encodings back.
fn check_relocated(view: &EngineView, patched: &mut PatchedProgram<SlotAux>) -> Result<(), EngineError> {
    let section = view.section.clone();
    let orig_subs = view.program.tables.subprogs.len();
    let appended = patched.subprog_map.iter().skip(orig_subs).filter(|m| m.is_some()).count();
    if appended > 0 {
        return Err(EngineError::AppendedSubprogram { section, count: appended });
    }
    let map = &patched.map;
    let out = &mut patched.program.insns;
    let kernel = &view.program.insns;
    for (&(old, role), &(object, _)) in view.roles.iter().zip(&view.encodings) {
        let Some(new) = map.insn(Slot(old)).map(|s| s.0) else { continue };
        let want = kernel[old];
        let rewritten = || EngineError::RelocatedRewritten { section: section.clone(), old, new };
        let got = *out.get(new).ok_or_else(rewritten)?;
        let local = match role {
            RelocRole::LocalCall { target } | RelocRole::LocalFuncAddr { target } => Some(target),
            _ => None,
        };
        let mut cmp = got;
        if local.is_some() && got.target_field().is_some() {
            cmp.imm = want.imm;
        }
        if cmp != want {
            return Err(rewritten());
        }
        if want.is_ld_imm64() && out.get(new + 1) != kernel.get(old + 1) {
            return Err(rewritten());
        }
        if let (Some(target), Some(t)) = (local, got.abs_target(new)) {
            let object = OffsetMapSlots(map).start(target);
            if i64::try_from(object).ok() != Some(t) {
                return Err(EngineError::TargetDisagreement { section, old, engine: t, object });
            }
        }
        // The second slot of an ld_imm64 is the same in both encodings.
        out[new] = object;
    }
    // CO-RE-relocated instructions: the loader patches them in place, so they must be intact.
    for c in &view.program.tables.core_relocs {
        let Some(old) = usize::try_from(c.insn_off / 8).ok().filter(|_| c.insn_off % 8 == 0) else { continue };
        if view.roles.binary_search_by_key(&old, |r| r.0).is_ok() {
            continue;
        }
        let Some(new) = map.insn(Slot(old)).map(|s| s.0) else { continue };
        let want = kernel.get(old);
        let wide = want.is_some_and(Insn::is_ld_imm64);
        let intact = out.get(new) == want && (!wide || out.get(new + 1) == kernel.get(old + 1));
        if !intact {
            return Err(EngineError::RelocatedRewritten { section, old, new });
        }
    }
    Ok(())
}

/// Where the engine put the records of `view`'s program ([`EngineRecords`]): its remapped
/// relocations and CO-RE records (in input order, those it dropped named by index), func_info,
/// and line_info by the engine's own rule ([`OffsetMap::line_info_survivors`]).
fn engine_records(view: &EngineView, t: &SideTables, map: &OffsetMap, dropped: &[Dropped]) -> EngineRecords {
    let (mut elf_gone, mut core_gone) = (Vec::new(), Vec::new());
    for d in dropped {
        match d {
            Dropped::ElfReloc { index, .. } => elf_gone.push(*index),
            Dropped::CoreReloc { index, .. } => core_gone.push(*index),
            _ => {}
        }
    }
    elf_gone.sort_unstable();
    core_gone.sort_unstable();
    let place = |n: usize, gone: &[usize], kept: &mut dyn Iterator<Item = u64>| -> Vec<Option<usize>> {
        (0..n)
            .map(|i| {
                if gone.binary_search(&i).is_ok() {
                    None
                } else {
                    kept.next().and_then(|off| usize::try_from(off / 8).ok())
                }
            })
            .collect()
    };
    let input = &view.program.tables;
    let relocs = place(input.elf_relocs.len(), &elf_gone, &mut t.elf_relocs.iter().map(|r| r.insn_off));
    let core = place(input.core_relocs.len(), &core_gone, &mut t.core_relocs.iter().map(|r| r.insn_off));
    let func_info = t.func_info.iter().map(|f| f.insn_off as usize).collect();
    let mut line_info = Vec::with_capacity(input.line_info.len());
    let records = &view.line_records;
    map.line_info_survivors(&input.line_info, |i, s| {
        if let Some(r) = records.get(i) {
            line_info.push((s.0, r.clone()));
        }
    });
    EngineRecords { relocs, func_info, line_info, core }
}

/// Rewrites programs through the engine with a pass closure; reuses its scratch across programs.
#[derive(Debug, Default)]
pub struct Rewriter {
    opts: RewriteOptions,
    ctx: PatchCtx,
    adjuster: bool,
}

/// What [`Rewriter::rewrite_program`] returns: the report and the engine's result (whose
/// instructions are those now in the object; `aux[i].orig` is the old slot of new slot `i`).
#[derive(Clone, Debug)]
pub struct Rewritten {
    /// The counts.
    pub report: ProgramReport,
    /// The linearized program with its map and remapped side tables.
    pub patched: PatchedProgram<SlotAux>,
}

impl Rewriter {
    /// A rewriter with `opts`.
    #[must_use]
    pub fn new(opts: RewriteOptions) -> Rewriter {
        Rewriter { opts, ctx: PatchCtx::new(), adjuster: false }
    }

    /// This rewriter, writing back through the object's own adjuster
    /// ([`BpfObject::apply_patched_by_adjuster`]): the oracle of the one remap path, for tests.
    #[must_use]
    pub fn by_adjuster(mut self) -> Rewriter {
        self.adjuster = true;
        self
    }

    /// Rewrites program `prog` of `obj`: builds its view and patch list, runs `passes` on the
    /// list, linearizes and writes the result back ([`BpfObject::apply_patched`]).
    ///
    /// # Errors
    /// Any [`EngineError`]; the object is then unchanged.
    pub fn rewrite_program<E, F>(
        &mut self,
        obj: &mut BpfObject,
        prog: usize,
        passes: &mut F,
    ) -> Result<Rewritten, EngineError>
    where
        F: FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        self.rewrite_program_keeping(obj, prog, passes, true)
    }

    /// [`Rewriter::rewrite_program`] returning only the report: the new instructions move
    /// into the object and are not copied back into a [`Rewritten`] (the rewrite path of
    /// [`Rewriter::rewrite_object`] and `bpfpatch rewrite`).
    ///
    /// # Errors
    /// As [`Rewriter::rewrite_program`].
    pub fn rewrite_program_report<E, F>(
        &mut self,
        obj: &mut BpfObject,
        prog: usize,
        passes: &mut F,
    ) -> Result<ProgramReport, EngineError>
    where
        F: FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        self.rewrite_program_keeping(obj, prog, passes, false).map(|r| r.report)
    }

    fn rewrite_program_keeping<E, F>(
        &mut self,
        obj: &mut BpfObject,
        prog: usize,
        passes: &mut F,
        keep: bool,
    ) -> Result<Rewritten, EngineError>
    where
        F: FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let t0 = Instant::now();
        // The view takes the object's instructions (no copy) and gives them back before the
        // object is read again, whatever happened.
        let mut view = obj.take_engine_view(prog)?;
        let done = self.run(&view.section, &view.info(), passes).and_then(|(mut patched, hook)| {
            check_relocated(&view, &mut patched)?;
            Ok((patched, hook))
        });
        obj.give_back(&mut view);
        let (mut patched, hook) = done?;
        let object = obj.write_back(&view, &mut patched, !self.adjuster, keep)?;
        let info = view.info();
        let report = report((info.index, info.name, view.len()), &patched, &hook, object, t0.elapsed());
        Ok(Rewritten { report, patched })
    }

    /// Rewrites every program of `obj` in section order.
    ///
    /// # Errors
    /// The first program's [`EngineError`]; programs before it stay rewritten.
    pub fn rewrite_object<E, F>(
        &mut self,
        obj: &mut BpfObject,
        passes: &mut F,
    ) -> Result<Vec<ProgramReport>, EngineError>
    where
        F: FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let mut out = Vec::with_capacity(obj.programs().len());
        for prog in 0..obj.programs().len() {
            out.push(self.rewrite_program_report(obj, prog, passes)?);
        }
        Ok(out)
    }

    /// Rewrites a bare instruction image (no object): subprograms are computed as the kernel
    /// does, nothing is relocated. Returns the new slots and the report (`index` 0, `name`
    /// `<raw>`).
    ///
    /// # Errors
    /// [`EngineError::Patch`] or [`EngineError::Pass`] (section `<raw>`).
    pub fn rewrite_image<E, F>(
        &mut self,
        insns: &[Insn],
        endian: Endian,
        passes: &mut F,
    ) -> Result<(Vec<Insn>, ProgramReport), EngineError>
    where
        F: FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        self.rewrite_image_patched(insns, endian, passes).map(|r| (r.patched.program.insns, r.report))
    }

    /// [`Rewriter::rewrite_image`], returning the engine's whole result (its map, and per new
    /// slot the original slot it carries or whose patch created it).
    ///
    /// # Errors
    /// As [`Rewriter::rewrite_image`].
    pub fn rewrite_image_patched<E, F>(
        &mut self,
        insns: &[Insn],
        endian: Endian,
        passes: &mut F,
    ) -> Result<Rewritten, EngineError>
    where
        F: FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let t0 = Instant::now();
        let section = SectionRef { index: 0, name: "<raw>".into() };
        let aux = (0..insns.len()).map(|s| SlotAux { orig: Some(slot_u32(s)), ..SlotAux::default() }).collect();
        let program = Program { insns: insns.to_vec(), aux, tables: SideTables::default() };
        let info = ProgramInfo {
            index: 0,
            name: "<raw>",
            section: 0,
            endian,
            program: &program,
            subprograms: &[],
            entries: &[],
        };
        let (patched, hook) = self.run(&section, &info, passes)?;
        let report = report((0, info.name, insns.len()), &patched, &hook, RewriteReport::default(), t0.elapsed());
        Ok(Rewritten { report, patched })
    }

    fn run<E, F>(
        &mut self,
        section: &SectionRef,
        info: &ProgramInfo<'_>,
        passes: &mut F,
    ) -> Result<(PatchedProgram<SlotAux>, Hook), EngineError>
    where
        F: FnMut(&mut PatchList, &ProgramInfo<'_>) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let perr = |error| EngineError::Patch { section: section.clone(), error };
        let mut list = PatchList::for_program(info.program).map_err(perr)?;
        passes(&mut list, info).map_err(|e| EngineError::Pass { section: section.clone(), error: e.into() })?;
        // `gotol` only in a program that is cpu v4 anyway (one O(n) look, only when asked).
        let relax = self.opts.relax && list.slots().any(|(_, insn)| insn.is_cpu_v4());
        let mut hook = Hook::default();
        let patched = list
            .linearize_program_with(&mut self.ctx, info.program, &mut hook, LinearizeOptions { relax })
            .map_err(perr)?;
        Ok((patched, hook))
    }
}

/// The report of program `index` named `name` of `n` slots.
fn report(
    (index, name, n): (usize, &str, usize),
    patched: &PatchedProgram<SlotAux>,
    hook: &Hook,
    object: RewriteReport,
    time: Duration,
) -> ProgramReport {
    ProgramReport {
        index,
        name: name.to_string(),
        slots_before: n,
        slots_after: patched.map.new_len(),
        patched: hook.patched,
        inserted: hook.inserted,
        deleted: (0..n).filter(|&s| patched.map.insn(Slot(s)).is_none()).count(),
        relaxed: patched.stats.relaxed_goto + patched.stats.relaxed_cond,
        object,
        time,
    }
}

impl fmt::Display for RelocRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelocRole::LocalCall { target } => write!(f, "local call to slot {target}"),
            RelocRole::LocalFuncAddr { target } => write!(f, "address of slot {target}"),
            RelocRole::ExternCall => f.write_str("external call"),
            RelocRole::ExternAddr => f.write_str("external address"),
            RelocRole::Data => f.write_str("data address"),
            RelocRole::Other => f.write_str("other"),
        }
    }
}
