//! A faithful model of today's kernel patcher (Linux 6.1/6.12 `kernel/bpf/core.c` and
//! `verifier.c`, plus the upstream insn-array adjusters): one patch at a time, a full copy of
//! the image and a full branch scan per patch. It is quadratic on purpose: it is the oracle the
//! list engine is tested against.
//!
//! Function names and argument conventions follow the kernel; each function cites the rule it
//! implements (section numbers refer to the project's kernel-patching notes). Deviations, all
//! about undefined behaviour in C:
//! - the probe pass of `bpf_adj_branches` reads one slot past the old image when the patched
//!   instruction is the last one; here the walk stops at the end of the image instead;
//! - `adjust_subprog_starts_after_remove` computes a negative `memmove` length for `func_info`
//!   when a subprogram without func_info (hidden) is removed; here the removal is clamped.

// The model mirrors the kernel's C arithmetic (u32 slot indices, s32 deltas, implicit
// conversions in comparisons); the `as` casts below are those conversions, spelled out.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use crate::tables::{AuxHook, FuncInfo, INSN_DELETED, InsnArrayEntry, LineInfo, PokeDesc, Subprog};
use bpfpatch_insn::{Insn, opcode as c};

/// Errors the kernel functions return.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum KernelError {
    /// `-ERANGE`: an offset would overflow its field.
    #[error("-ERANGE: insn {off} cannot be patched due to 16-bit range")]
    Range {
        /// The patch position.
        off: u32,
    },
    /// `-EFAULT`: internal error (e.g. a second hidden subprogram).
    #[error("-EFAULT")]
    Fault,
    /// A request outside the image (the kernel would corrupt memory; callers never do this).
    #[error("request outside the program")]
    OutOfRange,
}

/// `bpf_pseudo_func()`: first slot of an ld_imm64 with `src_reg == BPF_PSEUDO_FUNC`.
#[must_use]
pub fn bpf_pseudo_func(insn: &Insn) -> bool {
    insn.code == c::LD_IMM64 && insn.src() == c::PSEUDO_FUNC
}

/// `bpf_adj_delta_to_imm` (core.c): adjust a call / `PSEUDO_FUNC` imm (S32 range).
fn bpf_adj_delta_to_imm(insn: &mut Insn, pos: u32, end_old: i32, end_new: i32, curr: i32, probe: bool) -> bool {
    let delta = i64::from(end_new - end_old);
    let mut imm = i64::from(insn.imm);
    let curr64 = i64::from(curr);
    // `curr < pos` is a u32 comparison in C; curr is never negative here.
    if (curr as u32) < pos && curr64 + imm + 1 >= i64::from(end_old) {
        imm += delta;
    } else if curr >= end_new && curr64 + imm + 1 < i64::from(end_new) {
        imm -= delta;
    }
    let Ok(v) = i32::try_from(imm) else { return false };
    if !probe {
        insn.imm = v;
    }
    true
}

/// `bpf_adj_delta_to_off` (core.c): adjust a jump's `off` (S16), or `imm` (S32) for `gotol`.
fn bpf_adj_delta_to_off(insn: &mut Insn, pos: u32, end_old: i32, end_new: i32, curr: i32, probe: bool) -> bool {
    let delta = i64::from(end_new - end_old);
    let gotol = insn.code == c::JMP32 | c::JA;
    let mut off = if gotol { i64::from(insn.imm) } else { i64::from(insn.off) };
    let curr64 = i64::from(curr);
    if (curr as u32) < pos && curr64 + off + 1 >= i64::from(end_old) {
        off += delta;
    } else if curr >= end_new && curr64 + off + 1 < i64::from(end_new) {
        off -= delta;
    }
    if gotol {
        let Ok(v) = i32::try_from(off) else { return false };
        if !probe {
            insn.imm = v;
        }
    } else {
        let Ok(v) = i16::try_from(off) else { return false };
        if !probe {
            insn.off = v;
        }
    }
    true
}

/// `bpf_adj_branches(prog, pos, end_old, end_new, probe_pass)` (core.c, §3.2).
///
/// `insns` is the image: the old one in the probe pass (then the patchlet is skipped: `i`
/// jumps from `pos` to `end_new` while the slot pointer jumps to `end_old`), the new one otherwise.
///
/// # Errors
/// [`KernelError::Range`] when an adjusted field overflows.
pub fn bpf_adj_branches(
    insns: &mut [Insn],
    pos: u32,
    end_old: i32,
    end_new: i32,
    probe: bool,
) -> Result<(), KernelError> {
    let len = insns.len() as i64;
    let insn_cnt = if probe { len + i64::from(end_new - end_old) } else { len };
    let mut i: i64 = 0;
    let mut p: i64 = 0;
    while i < insn_cnt {
        if probe && i == i64::from(pos) {
            i = i64::from(end_new);
            p = i64::from(end_old);
        }
        let Some(insn) = usize::try_from(p).ok().and_then(|p| insns.get_mut(p)) else { break };
        let curr = i32::try_from(i).map_err(|_| KernelError::OutOfRange)?;
        if bpf_pseudo_func(insn) {
            if !bpf_adj_delta_to_imm(insn, pos, end_old, end_new, curr, probe) {
                return Err(KernelError::Range { off: pos });
            }
            i += 1;
            p += 1;
            continue;
        }
        let code = insn.code;
        let class = code & c::CLASS_MASK;
        let op = code & c::OP_MASK;
        let skip = (class != c::JMP && class != c::JMP32) || op == c::EXIT;
        if !skip {
            let ok = if op == c::CALL {
                if insn.src() != c::PSEUDO_CALL {
                    true
                } else {
                    bpf_adj_delta_to_imm(insn, pos, end_old, end_new, curr, probe)
                }
            } else {
                bpf_adj_delta_to_off(insn, pos, end_old, end_new, curr, probe)
            };
            if !ok {
                return Err(KernelError::Range { off: pos });
            }
        }
        i += 1;
        p += 1;
    }
    Ok(())
}

/// `bpf_adj_linfo(prog, off, delta)` (core.c, §3.3): entries strictly after `off` move by `delta`.
pub fn bpf_adj_linfo(linfo: &mut [LineInfo], off: u32, delta: u32) {
    if linfo.is_empty() || delta == 0 {
        return;
    }
    let i = linfo.iter().position(|l| off < l.insn_off).unwrap_or(linfo.len());
    for l in &mut linfo[i..] {
        l.insn_off = l.insn_off.wrapping_add(delta);
    }
}

/// `bpf_patch_insn_single(prog, off, patch, len)` (core.c, §3.1): replace slot `off` by `patch`.
///
/// # Errors
/// [`KernelError::Range`] from the probe pass (only run when the new length exceeds 32767);
/// the image is then unchanged. [`KernelError::OutOfRange`] for an empty patch or bad `off`.
pub fn bpf_patch_insn_single(
    insns: &mut Vec<Insn>,
    linfo: &mut [LineInfo],
    off: u32,
    patch: &[Insn],
) -> Result<(), KernelError> {
    let offu = off as usize;
    if patch.is_empty() || offu >= insns.len() {
        return Err(KernelError::OutOfRange);
    }
    let len = u32::try_from(patch.len()).map_err(|_| KernelError::OutOfRange)?;
    let insn_delta = len - 1;
    if insn_delta == 0 {
        insns[offu] = patch[0];
        return Ok(());
    }
    let insn_adj_cnt = insns.len() + insn_delta as usize;
    let end_old = i32::try_from(off + 1).map_err(|_| KernelError::OutOfRange)?;
    let end_new = i32::try_from(off + len).map_err(|_| KernelError::OutOfRange)?;
    if insn_adj_cnt > i16::MAX as usize {
        bpf_adj_branches(insns, off, end_old, end_new, true)?;
    }
    // memmove of the tail + memcpy of the patch.
    insns.splice(offu..=offu, patch.iter().copied());
    // BUG_ON in the kernel: cannot fail after a successful probe (or below 32768 slots).
    bpf_adj_branches(insns, off, end_old, end_new, false)?;
    bpf_adj_linfo(linfo, off, insn_delta);
    Ok(())
}

/// `bpf_remove_insns(prog, off, cnt)` (core.c, §3.2 "Remove").
///
/// # Errors
/// [`KernelError::Range`] (a `WARN_ON_ONCE` in the kernel; cannot happen when shrinking).
pub fn bpf_remove_insns(insns: &mut Vec<Insn>, off: u32, cnt: u32) -> Result<(), KernelError> {
    let (o, n) = (off as usize, cnt as usize);
    if o + n > insns.len() {
        return Err(KernelError::OutOfRange);
    }
    insns.drain(o..o + n);
    let end_old = i32::try_from(off + cnt).map_err(|_| KernelError::OutOfRange)?;
    let end_new = i32::try_from(off).map_err(|_| KernelError::OutOfRange)?;
    bpf_adj_branches(insns, off, end_old, end_new, false)
}

/// `adjust_jmp_off(prog, tgt_idx, delta)` (verifier.c, §5.4): every jump (not call/exit) outside
/// `[tgt_idx, tgt_idx + delta)` that targets `tgt_idx` is moved by `delta`.
///
/// # Errors
/// [`KernelError::Range`] on overflow.
pub fn adjust_jmp_off(insns: &mut [Insn], tgt_idx: u32, delta: u32) -> Result<(), KernelError> {
    for (i, insn) in insns.iter_mut().enumerate() {
        let i = i as i64;
        let tgt = i64::from(tgt_idx);
        if tgt <= i && i < tgt + i64::from(delta) {
            continue;
        }
        let code = insn.code;
        let class = code & c::CLASS_MASK;
        let op = code & c::OP_MASK;
        if (class != c::JMP && class != c::JMP32) || op == c::CALL || op == c::EXIT {
            continue;
        }
        if code == c::JMP32 | c::JA {
            if i + 1 + i64::from(insn.imm) != tgt {
                continue;
            }
            insn.imm = i32::try_from(i64::from(insn.imm) + i64::from(delta))
                .map_err(|_| KernelError::Range { off: tgt_idx })?;
        } else {
            if i + 1 + i64::from(insn.off) != tgt {
                continue;
            }
            insn.off = i16::try_from(i64::from(insn.off) + i64::from(delta))
                .map_err(|_| KernelError::Range { off: tgt_idx })?;
        }
    }
    Ok(())
}

/// `is_reg64(env, insn, regno, NULL, DST_OP)` for the destination operand (verifier.c).
#[must_use]
#[inline]
pub fn is_reg64_dst(insn: &Insn) -> bool {
    let code = insn.code;
    let class = code & c::CLASS_MASK;
    let op = code & c::OP_MASK;
    if class == c::JMP {
        if op == c::EXIT {
            return true;
        }
        if op == c::CALL {
            return false;
        }
    }
    if class == c::ALU64 && op == c::END && (insn.imm == 16 || insn.imm == 32) {
        return false;
    }
    if class == c::ALU64 || class == c::JMP || (class == c::ALU && op == c::END && insn.imm == 64) {
        return true;
    }
    if class == c::ALU || class == c::JMP32 {
        return false;
    }
    if class == c::LDX {
        return code & c::SIZE_MASK == c::DW || code & c::MODE_MASK == c::MEMSX;
    }
    if class == c::STX {
        return code & c::SIZE_MASK == c::DW;
    }
    if class == c::LD {
        return code & c::MODE_MASK == c::IMM;
    }
    true
}

/// `insn_def_regno(insn)` (verifier.c): the register an instruction defines, or `None`.
#[must_use]
#[inline]
pub fn insn_def_regno(insn: &Insn) -> Option<u8> {
    const PROBE_ATOMIC: u8 = 0xe0;
    match insn.code & c::CLASS_MASK {
        c::JMP | c::JMP32 | c::ST => None,
        c::STX => {
            let mode = insn.code & c::MODE_MASK;
            if (mode == c::ATOMIC || mode == PROBE_ATOMIC) && insn.imm & c::FETCH != 0 {
                Some(if insn.imm == c::CMPXCHG { 0 } else { insn.src() })
            } else {
                None
            }
        }
        _ => Some(insn.dst()),
    }
}

/// `insn_has_def32(env, insn)` (verifier.c): the instruction defines a 32-bit sub-register,
/// written as the kernel's `insn_def_regno(insn) != -1 && !is_reg64(.., DST_OP)`. The model's
/// own rule; the engine-side [`KernelAuxHook`] answers from a table (`def32_fast`) instead.
#[must_use]
#[inline]
pub fn insn_has_def32(insn: &Insn) -> bool {
    insn_def_regno(insn).is_some() && !is_reg64_dst(insn)
}

/// [`insn_has_def32`] in one load for most opcodes (the engine-side hook runs it per new
/// slot): byte swaps and STX atomics, whose answer depends on `imm`, decide on `imm` here
/// (`le`/`be` define 32 bits unless 64-bit; `bswap16/32` define 32 bits; an atomic defines a
/// register only with `BPF_FETCH`, 32 bits unless a double word). Shares no code with
/// [`insn_has_def32`], its oracle in the unit test below and through the differential.
#[inline]
fn def32_fast(insn: &Insn) -> bool {
    let v = DEF32[insn.code as usize];
    // Branch-free for the table's answers (a pass's slots mix 32- and 64-bit ALU at random: a
    // branch on the answer mispredicted about every other slot, `cachegrind --branch-sim=yes`).
    if v < 2 {
        v != 0
    } else {
        match insn.code & c::CLASS_MASK {
            c::ALU => insn.imm != 64,
            c::ALU64 => insn.imm == 16 || insn.imm == 32,
            _ => insn.imm & c::FETCH != 0 && insn.code & c::SIZE_MASK != c::DW,
        }
    }
}

/// [`def32_fast`] by opcode: 0 no, 1 yes, 2 depends on `imm` (`END`, STX atomics).
static DEF32: [u8; 256] = def32_table();

const fn def32_table() -> [u8; 256] {
    const PROBE_ATOMIC: u8 = 0xe0;
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let code = i as u8;
        let class = code & c::CLASS_MASK;
        let op = code & c::OP_MASK;
        let mode = code & c::MODE_MASK;
        let by_imm = ((class == c::ALU || class == c::ALU64) && op == c::END)
            || (class == c::STX && (mode == c::ATOMIC || mode == PROBE_ATOMIC));
        // JMP, JMP32, ST, STX: no def (insn_def_regno); ALU64: a 64-bit def.
        t[i] = if by_imm {
            2
        } else if class == c::ALU {
            1
        } else if class == c::LDX {
            (code & c::SIZE_MASK != c::DW && mode != c::MEMSX) as u8
        } else if class == c::LD {
            (mode != c::IMM) as u8
        } else {
            0
        };
        i += 1;
    }
    t
}

/// The subset of `struct bpf_insn_aux_data` that patching touches.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct KernelAux {
    /// `seen`: reached by verification (copied to inserted slots).
    pub seen: bool,
    /// `zext_dst`: the def needs zero extension (recomputed on patch).
    pub zext_dst: bool,
    /// `orig_idx`: original slot (0 for inserted slots, as the kernel's zero-fill).
    pub orig_idx: u32,
    /// Stand-in for every other field (ptr_type, map state...): zero for inserted slots.
    pub other: u32,
}

/// The fields of `struct bpf_insn_aux_data` that the kernel's patcher writes
/// (`adjust_insn_aux_data`, §5.2); `Default` is the zero fill of a fresh slot (`vzalloc`).
/// The model computes them by this rule of its own, not through an [`AuxHook`], so the
/// differential compares the engine's hook-driven aux with an independent derivation.
pub trait InsnAuxData: Clone + Default {
    /// `aux->seen`.
    fn seen(&self) -> bool;
    /// Sets `aux->seen`.
    fn set_seen(&mut self, seen: bool);
    /// Sets `aux->zext_dst`.
    fn set_zext_dst(&mut self, zext_dst: bool);
}

impl InsnAuxData for KernelAux {
    fn seen(&self) -> bool {
        self.seen
    }

    fn set_seen(&mut self, seen: bool) {
        self.seen = seen;
    }

    fn set_zext_dst(&mut self, zext_dst: bool) {
        self.zext_dst = zext_dst;
    }
}

/// The kernel's aux rule as an [`AuxHook`], for the list engine: inserted slots are zero except
/// `seen` (from the patched instruction) and `zext_dst = insn_has_def32`; patched instructions
/// get `zext_dst` recomputed. The reference model does not use it (see [`InsnAuxData`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelAuxHook;

impl AuxHook<KernelAux> for KernelAuxHook {
    #[inline]
    fn new_slot(&mut self, insn: &Insn, parent: Option<&KernelAux>) -> KernelAux {
        KernelAux { seen: parent.is_some_and(|p| p.seen), zext_dst: def32_fast(insn), orig_idx: 0, other: 0 }
    }

    #[inline]
    fn patched(&mut self, aux: &mut KernelAux, insn: &Insn) {
        aux.zext_dst = def32_fast(insn);
    }
}

/// A program with the verifier's side tables, patched the kernel's way.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct KernelProg<A> {
    /// `prog->insnsi`.
    pub insns: Vec<Insn>,
    /// `env->insn_aux_data`.
    pub aux: Vec<A>,
    /// `env->subprog_info[0..=subprog_cnt]`: the last entry is the fake 'exit' (`start == len`).
    pub subprog_info: Vec<Subprog>,
    /// `prog->aux->func_info`.
    pub func_info: Vec<FuncInfo>,
    /// `prog->aux->linfo`.
    pub linfo: Vec<LineInfo>,
    /// `prog->aux->poke_tab`.
    pub pokes: Vec<PokeDesc>,
    /// Instruction-array maps.
    pub insn_arrays: Vec<Vec<InsnArrayEntry>>,
    /// `env->hidden_subprog_cnt`.
    pub hidden_subprog_cnt: u32,
}

impl<A: InsnAuxData> KernelProg<A> {
    /// `env->subprog_cnt`.
    #[must_use]
    pub fn subprog_cnt(&self) -> usize {
        self.subprog_info.len().saturating_sub(1)
    }

    /// `adjust_insn_aux_data(env, new_data, new_prog, off, cnt)` (verifier.c, §5.2): the
    /// patched instruction's aux moves to the last slot of the patch with `zext_dst`
    /// recomputed from the instruction there (also when `cnt == 1`); the `cnt - 1` slots
    /// before it are zero-filled, then get the old `seen` and their own `zext_dst`.
    fn adjust_insn_aux_data(&mut self, off: usize, cnt: usize) {
        let old_seen = self.aux[off].seen();
        self.aux[off].set_zext_dst(insn_has_def32(&self.insns[off + cnt - 1]));
        if cnt == 1 {
            return;
        }
        let mut fresh = vec![A::default(); cnt - 1];
        for (k, new) in fresh.iter_mut().enumerate() {
            new.set_seen(old_seen);
            new.set_zext_dst(insn_has_def32(&self.insns[off + k]));
        }
        self.aux.splice(off..off, fresh);
    }

    /// `adjust_subprog_starts(env, off, len)` (verifier.c, §5.3), fake exit included.
    fn adjust_subprog_starts(&mut self, off: u32, len: u32) {
        if len == 1 {
            return;
        }
        for s in &mut self.subprog_info {
            if s.start <= off {
                continue;
            }
            s.start += len - 1;
        }
    }

    /// `bpf_insn_array_adjust(map, off, len)` (upstream, §5.3).
    fn adjust_insn_arrays(&mut self, off: u32, len: u32) {
        if len == 1 {
            return;
        }
        for a in &mut self.insn_arrays {
            for e in a.iter_mut() {
                if e.xlated_off == INSN_DELETED || e.xlated_off <= off {
                    continue;
                }
                e.xlated_off += len - 1;
            }
        }
    }

    /// `adjust_poke_descs(prog, off, len)` (verifier.c, §5.3).
    fn adjust_poke_descs(&mut self, off: u32, len: u32) {
        for d in &mut self.pokes {
            if d.insn_idx <= off {
                continue;
            }
            d.insn_idx += len - 1;
        }
    }

    /// `bpf_patch_insn_data(env, off, patch, len)` (verifier.c, §5.1).
    ///
    /// # Errors
    /// As [`bpf_patch_insn_single`]; nothing changes on error.
    pub fn bpf_patch_insn_data(&mut self, off: u32, patch: &[Insn]) -> Result<(), KernelError> {
        bpf_patch_insn_single(&mut self.insns, &mut self.linfo, off, patch)?;
        let len = patch.len() as u32;
        self.adjust_insn_aux_data(off as usize, patch.len());
        self.adjust_subprog_starts(off, len);
        self.adjust_insn_arrays(off, len);
        self.adjust_poke_descs(off, len);
        Ok(())
    }

    /// `adjust_jmp_off` on this program.
    ///
    /// # Errors
    /// As [`adjust_jmp_off`].
    pub fn adjust_jmp_off(&mut self, tgt_idx: u32, delta: u32) -> Result<(), KernelError> {
        adjust_jmp_off(&mut self.insns, tgt_idx, delta)
    }

    /// `adjust_subprog_starts_after_remove(env, off, cnt)` (verifier.c, §5.5).
    fn adjust_subprog_starts_after_remove(&mut self, off: u32, cnt: u32) {
        let cnt_sub = self.subprog_cnt();
        let info = &mut self.subprog_info;
        let mut i = 0;
        while i < cnt_sub && info[i].start < off {
            i += 1;
        }
        let mut j = i;
        while j < cnt_sub && info[j].start < off + cnt {
            j += 1;
        }
        if info[j].start != off + cnt {
            // `j--` in C; j >= i >= 0 here only when j > 0 (the kernel relies on it).
            j = j.saturating_sub(1);
        }
        if j > i {
            info.drain(i..j);
            if !self.func_info.is_empty() {
                let hi = j.min(self.func_info.len());
                if i < hi {
                    self.func_info.drain(i..hi);
                }
            }
        } else if info[i].start == off {
            i += 1;
        }
        for s in &mut self.subprog_info[i..] {
            s.start = s.start.wrapping_sub(cnt);
        }
    }

    /// `bpf_adj_linfo_after_remove(env, off, cnt)` (verifier.c, §5.5).
    fn bpf_adj_linfo_after_remove(&mut self, off: u32, cnt: u32) {
        let nr_linfo = self.linfo.len();
        if nr_linfo == 0 {
            return;
        }
        let linfo = &mut self.linfo;
        let mut i = 0;
        while i < nr_linfo && linfo[i].insn_off < off {
            i += 1;
        }
        let l_off = i;
        let mut l_cnt = 0;
        while i < nr_linfo && linfo[i].insn_off < off + cnt {
            l_cnt += 1;
            i += 1;
        }
        if self.insns.len() != off as usize && l_cnt > 0 && (i == nr_linfo || linfo[i].insn_off != off + cnt) {
            l_cnt -= 1;
            i -= 1;
            linfo[i].insn_off = off + cnt;
        }
        if l_cnt > 0 {
            linfo.drain(l_off..i);
        }
        for l in &mut linfo[l_off..] {
            l.insn_off -= cnt;
        }
        let (l_off, l_cnt) = (l_off as u32, l_cnt as u32);
        for s in &mut self.subprog_info {
            if s.linfo_idx > l_off {
                if s.linfo_idx >= l_off + l_cnt {
                    s.linfo_idx -= l_cnt;
                } else {
                    s.linfo_idx = l_off;
                }
            }
        }
    }

    /// `bpf_insn_array_adjust_after_remove(map, off, cnt)` (upstream, §8).
    fn adjust_insn_arrays_after_remove(&mut self, off: u32, cnt: u32) {
        for a in &mut self.insn_arrays {
            for e in a.iter_mut() {
                if e.xlated_off == INSN_DELETED || e.xlated_off < off {
                    continue;
                }
                if e.xlated_off < off + cnt {
                    e.xlated_off = INSN_DELETED;
                } else {
                    e.xlated_off -= cnt;
                }
            }
        }
    }

    /// `verifier_remove_insns(env, off, cnt)` (verifier.c, §5.5). Poke descriptors are not
    /// adjusted (the kernel removes code before creating them).
    ///
    /// # Errors
    /// [`KernelError::OutOfRange`] for a range outside the image.
    pub fn verifier_remove_insns(&mut self, off: u32, cnt: u32) -> Result<(), KernelError> {
        if off as usize + cnt as usize > self.insns.len() {
            return Err(KernelError::OutOfRange);
        }
        bpf_remove_insns(&mut self.insns, off, cnt)?;
        self.adjust_subprog_starts_after_remove(off, cnt);
        self.bpf_adj_linfo_after_remove(off, cnt);
        self.adjust_insn_arrays_after_remove(off, cnt);
        self.aux.drain(off as usize..(off + cnt) as usize);
        Ok(())
    }

    /// `add_hidden_subprog(env, patch, len)` (verifier.c, §6): `patch[0]` must be a copy of the
    /// last instruction; the rest becomes a new subprogram before the fake exit.
    ///
    /// # Errors
    /// [`KernelError::Fault`] for a second hidden subprogram; patch errors.
    pub fn add_hidden_subprog(&mut self, patch: &[Insn]) -> Result<(), KernelError> {
        if self.hidden_subprog_cnt > 0 {
            return Err(KernelError::Fault);
        }
        let last = u32::try_from(self.insns.len())
            .map_err(|_| KernelError::OutOfRange)?
            .checked_sub(1)
            .ok_or(KernelError::OutOfRange)?;
        self.bpf_patch_insn_data(last, patch)?;
        let cnt = self.subprog_cnt();
        let len = self.insns.len() as u32;
        let exit = self.subprog_info[cnt];
        self.subprog_info[cnt].start = len - patch.len() as u32 + 1;
        self.subprog_info.push(exit);
        self.hidden_subprog_cnt += 1;
        Ok(())
    }

    /// `adjust_btf_func(env)` (verifier.c): `func_info[i].insn_off = subprog_info[i].start`
    /// for every non-hidden subprogram.
    pub fn adjust_btf_func(&mut self) {
        let n = self.subprog_cnt().saturating_sub(self.hidden_subprog_cnt as usize);
        for i in 0..n.min(self.func_info.len()) {
            self.func_info[i].insn_off = self.subprog_info[i].start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine hook's table answers exactly as the verifier's logic, for every opcode and
    /// the immediates that matter (byte-swap widths, atomic operations with and without fetch).
    #[test]
    fn def32_table_matches_the_verifier_logic() {
        let imms = [0, 1, 16, 32, 64, c::FETCH, c::XCHG, c::CMPXCHG, 0xe0, 0x40, -1];
        for code in 0..=255u8 {
            for &imm in &imms {
                for regs in [0x00, 0x21, 0x9a] {
                    let insn = Insn::new(code, regs & 0xf, regs >> 4, 0, imm);
                    assert_eq!(def32_fast(&insn), insn_has_def32(&insn), "code {code:#04x} imm {imm:#x}");
                }
            }
        }
    }
}
