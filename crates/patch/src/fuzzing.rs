//! Fuzzing oracles of the engine, shared by `fuzz/` (libFuzzer) and the bounded smoke tests.
//!
//! Every entry point takes arbitrary bytes and **panics when the property is violated** (that is
//! how libFuzzer and the tests see a finding); for any input on which the engine is correct it
//! returns normally. The bytes drive a [`Rng`]: each decision consumes one to eight bytes and,
//! once they run out, a SplitMix64 stream seeded from the input continues, so short inputs still
//! make full-size cases and every mutation of a byte changes one decision.
//!
//! - [`differential`]: a valid program with every side table and a random script of patches,
//!   prepatches (both modes), range deletions, in-place rewrites and an append, applied to the
//!   list engine and to the kernel reference model ([`crate::reference`]); instructions, aux data,
//!   subprograms, func_info, line info, pokes, insn arrays and relocations must agree, and the
//!   old-to-new map must be monotone. The engine's aux comes from its hook
//!   ([`crate::reference::KernelAuxHook`]), the model's from its own rule
//!   ([`crate::reference::InsnAuxData`]): the two share no code. The generator documents the cases it avoids (kernel
//!   artifacts) next to its code.
//! - [`identity`]: the same programs with an empty script, or with every instruction patched by
//!   itself: the output equals the input, tables and map included.
//! - [`requests`]: arbitrary (mostly malformed) programs and requests: never a panic, and every
//!   program that linearizes has all its targets inside it and off ld_imm64 second slots.
//!
//! Not part of the stable API: compiled only with the `fuzzing` feature.
// An oracle's job is to panic on a broken property; generator arithmetic is on small values.
#![allow(
    clippy::should_implement_trait,
    clippy::needless_range_loop,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    missing_docs
)]

use crate::reference::{KernelAux, KernelAuxHook, KernelProg};
use crate::*;
use bpfpatch_insn::{Insn, Slot, opcode as c};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Applied operations by kind: patch, land, skip, delete, append; slots compared; hard-wires.
static STATS: [AtomicUsize; 7] = [const { AtomicUsize::new(0) }; 7];

/// Counters of [`differential`] since the process started: patches, landing prepatches,
/// skipping prepatches, deletions, appends, slots compared, hard-wires.
pub fn differential_stats() -> [usize; 7] {
    core::array::from_fn(|i| STATS[i].load(Relaxed))
}

/// The workspace's one generator randomness (see [`bpfpatch_insn::fuzzing::Rng`]).
pub use bpfpatch_insn::fuzzing::Rng;

fn mov64(dst: u8, imm: i32) -> Insn {
    Insn::new(c::ALU64 | c::MOV | c::K, dst, 0, 0, imm)
}
fn mov32(dst: u8, imm: i32) -> Insn {
    Insn::new(c::ALU | c::MOV | c::K, dst, 0, 0, imm)
}
fn add64(dst: u8, imm: i32) -> Insn {
    Insn::new(c::ALU64 | c::ADD | c::K, dst, 0, 0, imm)
}
fn ja(off: i16) -> Insn {
    Insn::new(c::JMP | c::JA, 0, 0, off, 0)
}
fn gotol(imm: i32) -> Insn {
    Insn::new(c::JMP32 | c::JA, 0, 0, 0, imm)
}
fn jeq(dst: u8, imm: i32, off: i16) -> Insn {
    Insn::new(c::JMP | c::JEQ | c::K, dst, 0, off, imm)
}
fn may_goto(off: i16) -> Insn {
    Insn::new(c::JMP | c::JCOND, 0, 0, off, 0)
}
fn call_local(imm: i32) -> Insn {
    Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_CALL, 0, imm)
}
fn call_helper(id: i32) -> Insn {
    Insn::new(c::JMP | c::CALL, 0, 0, 0, id)
}
/// A conditional jump with field 0: any of the eleven conditions, `K` or `X`, `JMP` or `JMP32`.
fn any_cond(rng: &mut Rng<'_>, dst: u8) -> Insn {
    const CONDS: [u8; 11] =
        [c::JEQ, c::JGT, c::JGE, c::JSET, c::JNE, c::JSGT, c::JSGE, c::JLT, c::JLE, c::JSLT, c::JSLE];
    let class = if rng.chance(50) { c::JMP } else { c::JMP32 };
    let cond = *rng.pick(&CONDS);
    if rng.chance(50) {
        Insn::new(class | cond | c::K, dst, 0, 0, rng.below(9) as i32 - 4)
    } else {
        Insn::new(class | cond | c::X, dst, rng.below(10) as u8, 0, 0)
    }
}
fn exit() -> Insn {
    Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0)
}
fn ld_imm64(dst: u8, v: i64) -> [Insn; 2] {
    [Insn::new(c::LD_IMM64, dst, 0, 0, v as i32), Insn::new(0, 0, 0, 0, (v >> 32) as i32)]
}
fn ld_func(dst: u8, rel: i32) -> [Insn; 2] {
    [Insn::new(c::LD_IMM64, dst, c::PSEUDO_FUNC, 0, rel), Insn::new(0, 0, 0, 0, 0)]
}

// ---- differential: the engine against the kernel reference model ---------------------------
//
// Translation of the abstract operations into kernel terms (all jumps of a kernel patch buffer
// are literal, in new-image coordinates, computed by the harness from the kernel's own image):
// - `patch(x, B)`: `bpf_patch_insn_data(p, B)`; for an ld_imm64 also `verifier_remove_insns` of
//   its old second slot.
// - `prepatch(x, B, LandOnInserted)`: `bpf_patch_insn_data(p, B ++ [x'])` where `x'` is the
//   instruction with its target re-expressed from its new slot.
// - `prepatch(x, B, SkipForJumps)`: the same, then `adjust_jmp_off(p, len(B))`.
// - `delete_range`: `verifier_remove_insns(p, cnt)`.
// - `append(B)`: `add_hidden_subprog([last, B...])` (at most once, as in the kernel).
//
// Exclusions (cases where the kernel's result is an artifact or undefined), each avoided by
// the generator or excluded from the comparison:
// 1. deletions whose hole (p, p+cnt) strictly contains a target of a surviving jump/call (the
//    kernel maps it to "new index T", not to the first survivor); deletions that leave a
//    target at the hole start with no survivor after it;
// 2. deletions that strictly contain the start of a subprogram that is not entirely inside
//    the hole (the kernel shifts that start before the hole), or an appended subprogram's start;
// 3. poke descriptors after any deletion (the kernel never adjusts them on removal);
// 4. in a skipping prepatch, buffer references to the instruction itself other than
//    "past end" (the kernel leaves them on the prologue start: adjust_jmp_off skips the patchlet);
// 5. `OrigTarget` only with the same kind (jump/call) as the patched instruction;
//    calls and `PSEUDO_FUNC` in buffers target subprogram starts only;
// 6. patch buffers ending in an ld_imm64 (the kernel moves the aux to its second slot, the
//    engine to its first);
// 7. after an append, aux of the last instruction before it and of everything derived from
//    either (the kernel's `add_hidden_subprog` moves that instruction's aux to the end of the
//    hidden subprogram); the appended subprogram's `linfo_idx` (the kernel leaves the fake
//    exit's value there).

/// The kernel's notion of a PC-relative field (bpf_adj_branches): absolute target of slot `at`.
fn ktarget(insn: &Insn, at: usize) -> Option<(i64, bool)> {
    let class = insn.code & c::CLASS_MASK;
    let op = insn.code & c::OP_MASK;
    let (rel, call) = if insn.code == c::LD_IMM64 && insn.src() == c::PSEUDO_FUNC {
        (i64::from(insn.imm), true)
    } else if (class == c::JMP || class == c::JMP32) && op != c::EXIT {
        if op == c::CALL {
            if insn.src() != c::PSEUDO_CALL {
                return None;
            }
            (i64::from(insn.imm), true)
        } else if insn.code == c::JMP32 | c::JA {
            (i64::from(insn.imm), false)
        } else {
            (i64::from(insn.off), false)
        }
    } else {
        return None;
    };
    Some((at as i64 + rel + 1, call))
}

fn set_krel(insn: &mut Insn, rel: i64) -> bool {
    let class = insn.code & c::CLASS_MASK;
    let op = insn.code & c::OP_MASK;
    let imm_field = insn.code == c::LD_IMM64 || insn.code == c::JMP32 | c::JA || (class == c::JMP && op == c::CALL);
    if imm_field {
        match i32::try_from(rel) {
            Ok(v) => insn.imm = v,
            Err(_) => return false,
        }
    } else {
        match i16::try_from(rel) {
            Ok(v) => insn.off = v,
            Err(_) => return false,
        }
    }
    true
}

fn tails_of(insns: &[Insn]) -> Vec<bool> {
    let mut t = vec![false; insns.len()];
    let mut i = 0;
    while i < insns.len() {
        if insns[i].is_ld_imm64() && i + 1 < insns.len() {
            t[i + 1] = true;
            i += 2;
        } else {
            i += 1;
        }
    }
    t
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Patch,
    Land,
    Skip,
    Append,
}

struct Case<'a, 'p> {
    rng: Rng<'a>,
    list: PatchList<'p>,
    kp: KernelProg<KernelAux>,
    /// The generated program (the list reads it in place).
    prog0: &'p Program<KernelAux>,
    tainted: Vec<bool>,
    appended: bool,
    deleted_any: bool,
    /// Per list subprogram: still present in the kernel's table.
    alive: Vec<bool>,
    appended_ids: Vec<usize>,
    log: Vec<String>,
}

fn gen_program(rng: &mut Rng<'_>) -> Program<KernelAux> {
    let nsub = rng.range(1, 4);
    let mut insns: Vec<Insn> = Vec::new();
    let mut starts = Vec::new();
    let mut heads: Vec<Vec<usize>> = Vec::new();
    // (slot, kind) to fix: 0 = jump in subprog, 1 = call/func to a subprog start
    let mut fix: Vec<(usize, usize, u8)> = Vec::new();
    for s in 0..nsub {
        starts.push(insns.len());
        heads.push(Vec::new());
        let n = rng.range(2, 12);
        for _ in 0..n - 1 {
            let at = insns.len();
            heads[s].push(at);
            let dst = rng.below(10) as u8;
            match rng.below(100) {
                0..=24 => insns.push(mov64(dst, rng.below(100) as i32)),
                25..=32 => insns.push(mov32(dst, 7)),
                33..=44 => {
                    let j = match rng.below(4) {
                        0 => jeq(dst, 3, 0),
                        1 | 2 => any_cond(rng, dst),
                        _ => may_goto(0),
                    };
                    insns.push(j);
                    fix.push((at, s, 0));
                }
                45..=51 => {
                    insns.push(ja(0));
                    fix.push((at, s, 0));
                }
                52..=55 => {
                    insns.push(gotol(0));
                    fix.push((at, s, 0));
                }
                56..=63 => {
                    insns.push(call_local(0));
                    fix.push((at, s, 1));
                }
                64..=69 => insns.push(call_helper(rng.below(200) as i32)),
                70..=79 => insns.extend(ld_imm64(dst, rng.next() as i64)),
                80..=86 => {
                    insns.extend(ld_func(dst, 0));
                    fix.push((at, s, 1));
                }
                _ => insns.push(add64(dst, 1)),
            }
        }
        heads[s].push(insns.len());
        insns.push(exit());
    }
    for (at, s, kind) in fix {
        let t = if kind == 0 { *rng.pick(&heads[s]) } else { *rng.pick(&starts) };
        let rel = t as i64 - at as i64 - 1;
        assert!(set_krel(&mut insns[at], rel));
    }
    let all_heads: Vec<usize> = heads.iter().flatten().copied().collect();
    let mut line_info = Vec::new();
    for &h in &all_heads {
        if starts.contains(&h) || rng.chance(30) {
            line_info.push(LineInfo {
                insn_off: h as u32,
                file_name_off: rng.below(3) as u32,
                line_off: rng.below(1000) as u32,
                line_col: (h as u32) << 10 | rng.below(80) as u32,
            });
        }
    }
    let subprogs: Vec<Subprog> = starts
        .iter()
        .map(|&s| Subprog {
            start: s as u32,
            linfo_idx: line_info.iter().position(|l| l.insn_off == s as u32).unwrap() as u32,
        })
        .collect();
    let func_info = starts.iter().map(|&s| FuncInfo { insn_off: s as u32, type_id: rng.range(1, 99) as u32 }).collect();
    let pokes = (0..rng.below(3))
        .map(|k| PokeDesc { insn_idx: *rng.pick(&all_heads) as u32, map: k as u32, key: rng.below(9) as u32 })
        .collect();
    let insn_arrays = (0..rng.below(3))
        .map(|_| {
            (0..rng.range(1, 3))
                .map(|_| {
                    let h = *rng.pick(&all_heads) as u32;
                    InsnArrayEntry { orig_off: h, xlated_off: h }
                })
                .collect()
        })
        .collect();
    let core_relocs = (0..rng.below(3))
        .map(|_| Reloc { insn_off: *rng.pick(&all_heads) as u64 * 8, data: CoreRelocData::default() })
        .collect();
    let elf_relocs = all_heads
        .iter()
        .filter(|&&h| insns[h].is_ld_imm64())
        .map(|&h| Reloc { insn_off: h as u64 * 8, data: ElfRelocData { sym: h as u32, kind: 1 } })
        .collect();
    let aux = (0..insns.len())
        .map(|i| KernelAux {
            seen: rng.chance(80),
            zext_dst: rng.chance(30),
            orig_idx: i as u32 + 1,
            other: rng.next() as u32,
        })
        .collect();
    Program {
        insns,
        aux,
        tables: SideTables { subprogs, func_info, line_info, pokes, insn_arrays, core_relocs, elf_relocs },
    }
}

fn kernel_of(p: &Program<KernelAux>) -> KernelProg<KernelAux> {
    let mut subprog_info = p.tables.subprogs.clone();
    subprog_info.push(Subprog { start: p.insns.len() as u32, linfo_idx: 0 });
    KernelProg {
        insns: p.insns.clone(),
        aux: p.aux.clone(),
        subprog_info,
        func_info: p.tables.func_info.clone(),
        linfo: p.tables.line_info.clone(),
        pokes: p.tables.pokes.clone(),
        insn_arrays: p.tables.insn_arrays.clone(),
        hidden_subprog_cnt: 0,
    }
}

impl<'a, 'p> Case<'a, 'p> {
    /// The case of `prog0`, generated by [`gen_program`] from `rng`, which goes on with the script.
    fn new(rng: Rng<'a>, prog0: &'p Program<KernelAux>) -> Case<'a, 'p> {
        let list = PatchList::for_program(prog0).expect("valid program");
        let kp = kernel_of(prog0);
        let alive = vec![true; prog0.tables.subprogs.len()];
        Case {
            rng,
            tainted: vec![false; list.node_count()],
            list,
            kp,
            prog0,
            appended: false,
            deleted_any: false,
            alive,
            appended_ids: Vec::new(),
            log: Vec::new(),
        }
    }

    /// (kernel slot, node) of every live slot, in order; checks the images agree on opcodes.
    fn shadow(&self) -> Vec<NodeId> {
        let s: Vec<(NodeId, Insn)> = self.list.slots().collect();
        assert_eq!(s.len(), self.kp.insns.len(), "slot count diverged\n{}", self.log.join("\n"));
        for (i, (_, insn)) in s.iter().enumerate() {
            let k = self.kp.insns[i];
            assert!(
                insn.code == k.code && insn.dst() == k.dst() && insn.src() == k.src(),
                "opcode diverged at slot {i}: {insn:?} vs {k:?}\n{}",
                self.log.join("\n")
            );
        }
        s.into_iter().map(|(n, _)| n).collect()
    }

    fn heads(&self, shadow: &[NodeId]) -> Vec<(usize, NodeId)> {
        let tails = tails_of(&self.kp.insns);
        shadow.iter().enumerate().filter(|(i, _)| !tails[*i]).map(|(i, &n)| (i, n)).collect()
    }

    /// Kernel starts of the live list subprograms: (list id, kernel index, start).
    fn subprogs(&self) -> Vec<(usize, usize, usize)> {
        let mut k = 0;
        let mut out = Vec::new();
        for (id, &a) in self.alive.iter().enumerate() {
            if a {
                out.push((id, k, self.kp.subprog_info[k].start as usize));
                k += 1;
            }
        }
        out
    }

    fn grow_taint(&mut self, before: usize, from_tainted: bool) {
        let n = self.list.node_count();
        self.tainted.resize(n, false);
        if from_tainted {
            for t in &mut self.tainted[before..n] {
                *t = true;
            }
        }
    }

    /// Generates a buffer for `mode` at kernel slot `p` (patch point / buffer base).
    /// Returns (engine buffer, kernel buffer) or None when the generator cannot comply.
    #[allow(clippy::too_many_arguments)]
    fn gen_buf(
        &mut self,
        mode: Mode,
        p: usize,
        x: Option<NodeId>,
        old_slots: usize,
        orig: Option<(i64, bool)>,
        heads: &[(usize, NodeId)],
    ) -> Option<(PatchBuf, Vec<Insn>)> {
        let rng = &mut self.rng;
        let m = rng.range(1, 4);
        // kinds: 0 alu, 1 jump, 2 call, 3 ld_imm64, 4 ld_func, 5 exit
        let mut kinds = Vec::new();
        for _ in 0..m {
            kinds.push(match rng.below(100) {
                0..=39 => 0,
                40..=71 => 1,
                72..=79 => 2,
                80..=87 => 3,
                88..=93 => 4,
                _ => 5,
            });
        }
        if mode == Mode::Patch && matches!(kinds.last(), Some(3 | 4)) {
            kinds.push(0); // exclusion 6
        }
        let mut slot_of = Vec::new();
        let mut len = 0;
        for &k in &kinds {
            slot_of.push(len);
            len += if k == 3 || k == 4 { 2 } else { 1 };
        }
        let img_len = self.kp.insns.len();
        let base = if mode == Mode::Append { img_len } else { p };
        // Old kernel index -> index in the image right after the kernel patch.
        let to_new = |q: usize| -> usize {
            match mode {
                Mode::Patch => {
                    if q > p {
                        q + len - 1
                    } else {
                        q
                    }
                }
                Mode::Land | Mode::Skip => {
                    if q > p {
                        q + len
                    } else {
                        q
                    }
                }
                Mode::Append => q,
            }
        };
        let past_end_ok = match mode {
            Mode::Patch => p + old_slots < img_len,
            Mode::Land | Mode::Skip => true,
            Mode::Append => false,
        };
        let live_subs: Vec<(usize, usize, usize)> = {
            let mut k = 0;
            let mut out = Vec::new();
            for (id, &a) in self.alive.iter().enumerate() {
                if a {
                    out.push((id, k, self.kp.subprog_info[k].start as usize));
                    k += 1;
                }
            }
            out
        };
        let mut buf = PatchBuf::new();
        let mut kbuf = Vec::new();
        for (idx, &k) in kinds.iter().enumerate() {
            let j = slot_of[idx];
            let abs = base + j;
            let dst = rng.below(10) as u8;
            match k {
                0 => {
                    let i = if rng.chance(50) { mov32(dst, 1) } else { add64(dst, 2) };
                    buf.push(i);
                    kbuf.push(i);
                }
                5 => {
                    buf.push(exit());
                    kbuf.push(exit());
                }
                3 => {
                    let v = ld_imm64(dst, rng.next() as i64);
                    buf.push(v[0]).push(v[1]);
                    kbuf.extend(v);
                }
                1 => {
                    let mut insn = match rng.below(5) {
                        0 | 1 => any_cond(rng, dst),
                        2 => ja(0),
                        3 => gotol(0),
                        _ => may_goto(0),
                    };
                    // choose a target
                    let choice = rng.below(100);
                    let (target, t_abs): (Option<Target>, usize) = if choice < 40 {
                        let mut cands: Vec<usize> = slot_of.clone();
                        if past_end_ok {
                            cands.push(len);
                        }
                        let kk = *rng.pick(&cands);
                        let t = if kk == len && rng.chance(50) {
                            Some(Target::PastEnd)
                        } else if rng.chance(50) {
                            None
                        } else {
                            Some(Target::Local(kk as u32))
                        };
                        (t, base + kk)
                    } else if choice < 60 && mode != Mode::Append && orig.is_some_and(|(_, call)| !call) {
                        let (t_old, _) = orig.unwrap_or((0, false));
                        let t_old = t_old as usize;
                        if mode == Mode::Skip && t_old == p {
                            return None; // exclusion 4
                        }
                        (Some(Target::OrigTarget), to_new(t_old))
                    } else {
                        let (q, n) = *rng.pick(heads);
                        if mode == Mode::Skip && Some(n) == x {
                            return None; // exclusion 4
                        }
                        let t = match rng.below(3) {
                            0 if n.index() < self.list.orig_len() => Target::Orig(Slot(n.index())),
                            1 => Target::Label(self.list.label_at(n).ok()?),
                            _ => Target::Node(n),
                        };
                        (Some(t), to_new(q))
                    };
                    if !set_krel(&mut insn, t_abs as i64 - abs as i64 - 1) {
                        return None;
                    }
                    match target {
                        None => buf.push(insn),
                        Some(t) => buf.jump_to(insn, t),
                    };
                    kbuf.push(insn);
                }
                _ => {
                    // 2: call, 4: ld_func. A call made by a request lands on the instruction
                    // its target names at request time and moves as the kernel moves calls
                    // (never by `adjust_jmp_off`): every spelling has a kernel equivalent.
                    let choice = rng.below(100);
                    let (target, t_abs): (Option<Target>, usize) = if choice < 30 {
                        let (id, _, s) = *rng.pick(&live_subs);
                        (Some(Target::Subprog(SubprogId(id as u32))), to_new(s))
                    } else if choice < 55 {
                        let mut cands: Vec<usize> = slot_of.clone();
                        if past_end_ok {
                            cands.push(len);
                        }
                        let kk = *rng.pick(&cands);
                        let t = match rng.below(3) {
                            0 if kk == len => Some(Target::PastEnd),
                            1 => None,
                            _ => Some(Target::Local(kk as u32)),
                        };
                        (t, base + kk)
                    } else if choice < 70 && mode != Mode::Append && orig.is_some_and(|(_, call)| call) {
                        let (t_old, _) = orig.unwrap_or((0, true));
                        (Some(Target::OrigTarget), to_new(t_old as usize))
                    } else {
                        let (q, n) = *rng.pick(heads);
                        let t = match rng.below(3) {
                            0 if n.index() < self.list.orig_len() => Target::Orig(Slot(n.index())),
                            1 => Target::Label(self.list.label_at(n).ok()?),
                            _ => Target::Node(n),
                        };
                        (Some(t), to_new(q))
                    };
                    let mut v = if k == 2 { vec![call_local(0)] } else { ld_func(dst, 0).to_vec() };
                    if !set_krel(&mut v[0], t_abs as i64 - abs as i64 - 1) {
                        return None;
                    }
                    match target {
                        None => buf.push(v[0]),
                        Some(t) => buf.jump_to(v[0], t),
                    };
                    for &tail in &v[1..] {
                        buf.push(tail);
                    }
                    kbuf.extend(v);
                }
            }
        }
        let _ = len;
        Some((buf, kbuf))
    }

    fn op_patch(&mut self, mode: Mode) -> bool {
        let shadow = self.shadow();
        let heads = self.heads(&shadow);
        if heads.is_empty() {
            return false;
        }
        let (p, x) = *self.rng.pick(&heads);
        let insn = self.kp.insns[p];
        let old_slots = if insn.is_ld_imm64() { 2 } else { 1 };
        let orig = ktarget(&insn, p);
        let Some((buf, mut kbuf)) = self.gen_buf(mode, p, Some(x), old_slots, orig, &heads) else { return false };
        let len = buf.len();
        let before = self.list.node_count();
        let was_tainted = self.tainted[x.index()];
        self.log.push(format!("{mode:?} at kernel slot {p} (node {x}) with {kbuf:?}"));
        match mode {
            Mode::Patch => {
                self.list.patch(x, &buf).unwrap_or_else(|e| panic!("patch failed: {e}\n{}", self.log.join("\n")));
                self.kp.bpf_patch_insn_data(p as u32, &kbuf).expect("kernel patch");
                if old_slots == 2 {
                    self.kp.verifier_remove_insns((p + len) as u32, 1).expect("kernel remove");
                    // The kernel never removes code once pokes exist; shift them as an insert would.
                    for d in &mut self.kp.pokes {
                        if d.insn_idx as usize > p + len {
                            d.insn_idx -= 1;
                        }
                    }
                }
            }
            Mode::Land | Mode::Skip => {
                let pm = if mode == Mode::Land { PrepatchMode::LandOnInserted } else { PrepatchMode::SkipForJumps };
                self.list
                    .prepatch(x, &buf, pm)
                    .unwrap_or_else(|e| panic!("prepatch failed: {e}\n{}", self.log.join("\n")));
                let mut moved = insn;
                if let Some((t_old, _)) = orig {
                    let t_old = t_old as usize;
                    let t_new = if t_old > p { t_old + len } else { t_old };
                    assert!(set_krel(&mut moved, t_new as i64 - (p + len) as i64 - 1));
                }
                kbuf.push(moved);
                self.kp.bpf_patch_insn_data(p as u32, &kbuf).expect("kernel patch");
                if mode == Mode::Skip {
                    self.kp.adjust_jmp_off(p as u32, len as u32).expect("kernel adjust_jmp_off");
                }
            }
            Mode::Append => unreachable!(),
        }
        self.grow_taint(before, was_tainted);
        true
    }

    fn op_delete(&mut self) -> bool {
        let shadow = self.shadow();
        let heads = self.heads(&shadow);
        if heads.is_empty() {
            return false;
        }
        let hi = self.rng.below(heads.len());
        let m = self.rng.range(1, 3).min(heads.len() - hi);
        let (p, first) = heads[hi];
        let (lp, last) = heads[hi + m - 1];
        let img = self.kp.insns.clone();
        let end = lp + if img[lp].is_ld_imm64() { 2 } else { 1 };
        let cnt = end - p;
        // Exclusion 1: targets strictly inside the hole, or at its start with no survivor.
        let tails = tails_of(&img);
        for (i, insn) in img.iter().enumerate() {
            if (p..end).contains(&i) || tails[i] {
                continue;
            }
            if let Some((t, _)) = ktarget(insn, i) {
                let t = t as usize;
                if t > p && t < end || t == p && end == img.len() {
                    return false;
                }
            }
        }
        // Exclusion 2: subprogram starts strictly inside, unless the whole subprogram is.
        let subs = self.subprogs();
        for (w, &(id, _, s)) in subs.iter().enumerate() {
            let next = subs.get(w + 1).map_or(img.len(), |x| x.2);
            if s > p && s < end && next > end {
                return false;
            }
            if self.appended_ids.contains(&id) && (p..end).contains(&s) {
                return false;
            }
        }
        self.log.push(format!("delete kernel slots {p}..{end} (nodes {first}..{last})"));
        self.list.delete_range(first, last).unwrap_or_else(|e| panic!("delete failed: {e}\n{}", self.log.join("\n")));
        self.kp.verifier_remove_insns(p as u32, cnt as u32).expect("kernel remove");
        for (w, &(id, _, s)) in subs.iter().enumerate() {
            let next = subs.get(w + 1).map_or(img.len(), |x| x.2);
            if s >= p && next <= end {
                self.alive[id] = false;
            }
        }
        let live = self.alive.iter().filter(|a| **a).count();
        assert_eq!(live, self.kp.subprog_cnt(), "subprogram removal diverged\n{}", self.log.join("\n"));
        self.deleted_any = true;
        true
    }

    /// `opt_hard_wire_dead_code_branches`: a conditional jump becomes `goto` with the same
    /// offset, in place (no aux change) — `set_insn` keeping the target.
    fn op_hard_wire(&mut self) -> bool {
        let shadow = self.shadow();
        let heads = self.heads(&shadow);
        let conds: Vec<(usize, NodeId)> = heads.into_iter().filter(|&(p, _)| self.kp.insns[p].is_cond_jump()).collect();
        if conds.is_empty() {
            return false;
        }
        let (p, x) = *self.rng.pick(&conds);
        let ja_insn = ja(self.kp.insns[p].off);
        self.log.push(format!("hard-wire kernel slot {p} (node {x})"));
        self.list.set_insn(x, ja_insn).unwrap_or_else(|e| panic!("set_insn failed: {e}\n{}", self.log.join("\n")));
        self.kp.insns[p] = ja_insn;
        true
    }

    fn op_append(&mut self) -> bool {
        if self.appended || self.kp.insns.is_empty() {
            return false;
        }
        let shadow = self.shadow();
        let heads = self.heads(&shadow);
        let Some((buf, kbuf)) = self.gen_buf(Mode::Append, 0, None, 0, None, &heads) else { return false };
        let before = self.list.node_count();
        let last_node = *shadow.last().expect("non-empty");
        self.log.push(format!("append {kbuf:?}"));
        let a = self.list.append(&buf).unwrap_or_else(|e| panic!("append failed: {e}\n{}", self.log.join("\n")));
        let mut kpatch = vec![*self.kp.insns.last().expect("non-empty")];
        kpatch.extend(kbuf);
        self.kp.add_hidden_subprog(&kpatch).expect("kernel append");
        assert_eq!(a.subprog.index(), self.alive.len());
        self.alive.push(true);
        self.appended_ids.push(a.subprog.index());
        self.appended = true;
        self.grow_taint(before, true);
        self.tainted[last_node.index()] = true;
        true
    }

    fn run(&mut self) {
        let nops = self.rng.range(1, 12);
        let mut done = 0;
        let mut attempts = 0;
        while done < nops && attempts < 60 {
            attempts += 1;
            let k = self.rng.below(100);
            let (ok, kind) = match k {
                0..=34 => (self.op_patch(Mode::Patch), 0),
                35..=49 => (self.op_patch(Mode::Land), 1),
                50..=61 => (self.op_patch(Mode::Skip), 2),
                62..=89 => (self.op_delete(), 3),
                90..=94 => (self.op_hard_wire(), 6),
                _ => (self.op_append(), 4),
            };
            if ok {
                done += 1;
                STATS[kind].fetch_add(1, Relaxed);
            }
            // The list's invariants I1-I7 hold after every request.
            if let Err(e) = self.list.validate() {
                panic!("{e}\n{}", self.log.join("\n"));
            }
        }
        self.compare();
    }

    fn compare(&mut self) {
        let shadow = self.shadow();
        let ctx = self.log.join("\n");
        let out = self
            .list
            .linearize_program(self.prog0, &mut KernelAuxHook, LinearizeOptions::default())
            .unwrap_or_else(|e| panic!("linearize failed: {e}\n{ctx}"));
        let kp = &mut self.kp;
        kp.adjust_btf_func();
        let got = &out.program;
        check_map_monotone(&out.map, &ctx);
        assert_eq!(got.insns, kp.insns, "instructions differ\n{ctx}");
        STATS[5].fetch_add(got.insns.len(), Relaxed);
        for (j, n) in shadow.iter().enumerate() {
            if !self.tainted[n.index()] {
                assert_eq!(got.aux[j], kp.aux[j], "aux differs at slot {j}\n{ctx}");
            }
        }
        let cnt = kp.subprog_cnt();
        let ks: Vec<u32> = kp.subprog_info[..cnt].iter().map(|s| s.start).collect();
        let gs: Vec<u32> = got.tables.subprogs.iter().map(|s| s.start).collect();
        assert_eq!(gs, ks, "subprogram starts differ\n{ctx}");
        let non_hidden = cnt - kp.hidden_subprog_cnt as usize;
        for k in 0..non_hidden {
            assert_eq!(got.tables.subprogs[k].linfo_idx, kp.subprog_info[k].linfo_idx, "linfo_idx of {k}\n{ctx}");
        }
        assert_eq!(got.tables.func_info, kp.func_info, "func_info differs\n{ctx}");
        assert_eq!(got.tables.line_info, kp.linfo, "line_info differs\n{ctx}");
        if !self.deleted_any {
            assert_eq!(got.tables.pokes, kp.pokes, "pokes differ\n{ctx}");
        }
        assert_eq!(got.tables.insn_arrays, kp.insn_arrays, "insn arrays differ\n{ctx}");
        // Relocations follow the instruction: where the kernel moved its aux (orig_idx = slot + 1).
        let core_in: Vec<u64> = self.prog0.tables.core_relocs.iter().map(|r| r.insn_off).collect();
        let core_out: Vec<u64> = got.tables.core_relocs.iter().map(|r| r.insn_off).collect();
        let elf_in: Vec<u64> = self.prog0.tables.elf_relocs.iter().map(|r| r.insn_off).collect();
        let elf_out: Vec<u64> = got.tables.elf_relocs.iter().map(|r| r.insn_off).collect();
        for (input, output, is_core) in [(&core_in, &core_out, true), (&elf_in, &elf_out, false)] {
            // Output entries are the non-dropped inputs, in input order.
            let mut o = output.iter();
            let mine: Vec<Option<u64>> = (0..input.len())
                .map(|index| {
                    let dropped = out.dropped.iter().any(|d| match *d {
                        Dropped::CoreReloc { index: i, .. } => is_core && i == index,
                        Dropped::ElfReloc { index: i, .. } => !is_core && i == index,
                        Dropped::StalePoke { .. } => false,
                    });
                    if dropped { None } else { o.next().copied() }
                })
                .collect();
            assert!(o.next().is_none(), "more relocations than inputs\n{ctx}");
            for (index, off) in input.iter().enumerate() {
                let s = (off / 8) as u32;
                if self.list.node_of_orig(Slot(s as usize)).is_some_and(|n| self.tainted[n.index()]) {
                    continue;
                }
                let kslot = kp.aux.iter().position(|a| a.orig_idx == s + 1);
                if kslot.is_some_and(|k| self.tainted[shadow[k].index()]) {
                    continue;
                }
                assert_eq!(mine[index], kslot.map(|k| k as u64 * 8), "reloc {index} of slot {s}\n{ctx}");
            }
        }
    }
}

/// The old-to-new map is monotone: for original slots in order, jump landings and call/start
/// landings never go backwards, a position's call landing is at or before its jump landing, and
/// the surviving instructions keep their order (strictly) at or after their jump landing.
fn check_map_monotone(map: &OffsetMap, ctx: &str) {
    let n = map.orig_len();
    let new_len = map.new_len();
    let (mut last_jump, mut last_start, mut last_insn) = (0usize, 0usize, None::<usize>);
    for s in 0..=n {
        let j = map.jump_target(Slot(s)).unwrap_or_else(|| panic!("no jump landing for slot {s}\n{ctx}")).0;
        let st = map.start(Slot(s)).unwrap_or_else(|| panic!("no start landing for slot {s}\n{ctx}")).0;
        assert!(j <= new_len && st <= new_len, "slot {s} lands past the end ({j}, {st} > {new_len})\n{ctx}");
        assert!(j >= last_jump, "jump landings go backwards at slot {s}: {j} < {last_jump}\n{ctx}");
        assert!(st >= last_start, "start landings go backwards at slot {s}: {st} < {last_start}\n{ctx}");
        assert!(st <= j, "slot {s}: call landing {st} after jump landing {j}\n{ctx}");
        (last_jump, last_start) = (j, st);
        if s == n {
            assert_eq!(j, new_len, "one past the end must map to one past the end\n{ctx}");
            continue;
        }
        if let Some(i) = map.insn(Slot(s)).map(|x| x.0) {
            assert!(i < new_len && i >= j, "slot {s}: instruction at {i}, jump landing {j}, {new_len} slots\n{ctx}");
            assert!(last_insn.is_none_or(|l| i > l), "instructions out of order at slot {s}\n{ctx}");
            last_insn = Some(i);
        }
    }
}

/// Engine vs kernel reference on a program and script made from `data` (see the module docs).
///
/// # Panics
/// On any disagreement or any engine error on a valid request: a finding.
pub fn differential(data: &[u8]) {
    let mut rng = Rng::from_bytes(data);
    let prog0 = gen_program(&mut rng);
    Case::new(rng, &prog0).run();
}

/// [`differential`] on a SplitMix64 stream (the seeded regression test).
pub fn differential_seed(seed: u64) {
    let mut rng = Rng::seeded(seed);
    let prog0 = gen_program(&mut rng);
    Case::new(rng, &prog0).run();
}

/// Identity scripts on a program made from `data`: no request at all, or every instruction
/// patched with itself (targets expressed as [`Target::OrigTarget`]) — the output program,
/// aux data, side tables and map equal the input's.
///
/// # Panics
/// When the output differs from the input.
pub fn identity(data: &[u8]) {
    let mut rng = Rng::from_bytes(data);
    let kprog = gen_program(&mut rng);
    // Aux: the index of the instruction's first slot (both ld_imm64 slots share it, so the
    // second slot made by a self-patch gets the same value from its parent).
    let tails = tails_of(&kprog.insns);
    let mut aux = Vec::with_capacity(tails.len());
    for (i, &t) in tails.iter().enumerate() {
        aux.push(if t { i as u32 - 1 } else { i as u32 });
    }
    let prog = Program { insns: kprog.insns, aux, tables: kprog.tables };
    let mut list = PatchList::for_program(&prog).expect("valid program");
    let self_patch = rng.below(4);
    let mut patched = 0;
    if self_patch > 0 {
        let mut buf = PatchBuf::new();
        for s in 0..prog.insns.len() {
            if tails[s] || (self_patch == 1 && rng.chance(50)) {
                continue;
            }
            let insn = prog.insns[s];
            buf.clear();
            if insn.target_field().is_some() {
                buf.jump_to(insn, Target::OrigTarget);
            } else {
                buf.push(insn);
            }
            if insn.is_ld_imm64() {
                buf.push(prog.insns[s + 1]);
            }
            let node = list.node_of(Slot(s)).expect("instruction start");
            if self_patch == 3 {
                list.set_insn(node, insn).unwrap_or_else(|e| panic!("set_insn of slot {s} with itself: {e}"));
            } else {
                list.patch(node, &buf).unwrap_or_else(|e| panic!("patch of slot {s} with itself: {e}"));
            }
            patched += 1;
        }
    }
    let ctx = format!("{patched} self-patches (mode {self_patch}) of {:?}", prog.insns);
    let mut hook = |_: &Insn, parent: Option<&u32>| parent.copied().unwrap_or(u32::MAX);
    for relax in [false, true] {
        let out = list
            .linearize_program(&prog, &mut hook, LinearizeOptions { relax })
            .unwrap_or_else(|e| panic!("identity linearize: {e}\n{ctx}"));
        assert_eq!(out.program, prog, "identity script changed the program\n{ctx}");
        assert!(out.dropped.is_empty(), "identity script dropped {:?}\n{ctx}", out.dropped);
        check_map_monotone(&out.map, &ctx);
        // ld_imm64 second slots are no position (nothing may target them): not compared.
        for s in (0..=prog.insns.len()).filter(|&s| !tails.get(s).copied().unwrap_or(false)) {
            assert_eq!(out.map.jump_target(Slot(s)), Some(Slot(s)), "jump landing of {s}\n{ctx}");
            assert_eq!(out.map.start(Slot(s)), Some(Slot(s)), "start of {s}\n{ctx}");
            if s < prog.insns.len() {
                assert_eq!(out.map.insn(Slot(s)), Some(Slot(s)), "identity of {s}\n{ctx}");
            }
        }
    }
}

// ---- requests: malformed programs and requests never panic ----------------------------------

fn raw_insn(rng: &mut Rng<'_>) -> Insn {
    const CODES: [u8; 12] = [
        c::ALU64 | c::MOV | c::K,
        c::ALU | c::ADD | c::K,
        c::JMP | c::JA,
        c::JMP32 | c::JA,
        c::JMP | c::JEQ | c::K,
        c::JMP32 | c::JSET | c::X,
        c::JMP | c::JCOND,
        c::JMP | c::CALL,
        c::JMP | c::EXIT,
        c::LD_IMM64,
        0,
        0xff,
    ];
    if rng.chance(5) {
        return Insn::from_word(rng.next());
    }
    let code = *rng.pick(&CODES);
    let (d, s) = (rng.below(16) as u8, rng.below(6) as u8);
    let off = rng.below(16) as i16 - 8;
    let imm = rng.below(16) as i32 - 8;
    Insn::new(code, d, s, off, imm)
}

fn raw_target(rng: &mut Rng<'_>, labels: &[Label]) -> Option<Target> {
    match rng.below(9) {
        0 => None,
        1 => Some(Target::Local(rng.below(12) as u32)),
        2 => Some(Target::PastEnd),
        3 => Some(Target::OrigTarget),
        4 => Some(Target::Orig(Slot(rng.below(40)))),
        5 => Some(Target::Node(NodeId::of_slot(Slot(rng.below(80))))),
        6 => Some(Target::Subprog(SubprogId(rng.below(4) as u32))),
        7 if !labels.is_empty() => Some(Target::Label(*rng.pick(labels))),
        _ => Some(Target::Orig(Slot(usize::MAX - rng.below(3)))),
    }
}

fn raw_buf(rng: &mut Rng<'_>, labels: &[Label]) -> PatchBuf {
    let mut b = PatchBuf::new();
    for _ in 0..rng.below(6) {
        let i = raw_insn(rng);
        match raw_target(rng, labels) {
            None => b.push(i),
            Some(t) => b.jump_to(i, t),
        };
    }
    b
}

/// A valid program: movs, ld_imm64 and jumps/gotol/calls with in-range targets.
fn valid_program(rng: &mut Rng<'_>, n: usize) -> Vec<Insn> {
    let mut p: Vec<Insn> = Vec::new();
    while p.len() < n {
        if rng.chance(15) {
            p.extend(ld_imm64(1, rng.next() as i64));
        } else {
            p.push(mov64(0, rng.below(9) as i32));
        }
    }
    p.push(exit());
    let heads: Vec<usize> = (0..p.len()).filter(|&i| i == 0 || !p[i - 1].is_ld_imm64()).collect();
    for &i in &heads {
        if !p[i].is_ld_imm64() && rng.chance(40) {
            let t = *rng.pick(&heads) as i64;
            let rel = t - i as i64 - 1;
            p[i] = match rng.below(4) {
                0 => jeq(1, 0, rel as i16),
                1 => gotol(rel as i32),
                2 => may_goto(rel as i16),
                _ => call_local(rel as i32),
            };
        }
    }
    p
}

/// Every emitted target is inside the program and not on an ld_imm64 second slot.
fn assert_well_formed(insns: &[Insn], ctx: &dyn Fn() -> String) {
    let tail = tails_of(insns);
    for i in (0..insns.len()).filter(|&i| !tail[i]) {
        if let Some(t) = insns[i].abs_target(i) {
            assert!(
                t >= 0 && (t as usize) < insns.len() && !tail[t as usize],
                "slot {i} targets {t} in a program of {} slots\n{}",
                insns.len(),
                ctx()
            );
        }
    }
}

/// Arbitrary programs (valid or not) and arbitrary requests (mostly invalid): every request
/// returns `Ok` or a typed error, never panics; whatever linearizes is well-formed (targets
/// inside the program, off ld_imm64 second slots; without relaxation exactly the live slots),
/// its map lands inside it and is monotone.
///
/// # Panics
/// When the engine panics or emits a malformed program.
pub fn requests(data: &[u8]) {
    let mut rng = Rng::from_bytes(data);
    let prog: Vec<Insn> = if rng.chance(50) {
        (0..rng.below(30)).map(|_| raw_insn(&mut rng)).collect()
    } else {
        let n = rng.range(1, 40);
        valid_program(&mut rng, n)
    };
    let Ok(mut l) = PatchList::new(&prog) else { return };
    let nd = |rng: &mut Rng<'_>| NodeId::of_slot(Slot(rng.below(80)));
    let mut labels: Vec<Label> = Vec::new();
    let mut log: Vec<String> = Vec::new();
    for _ in 0..rng.below(25) {
        let r = match rng.below(8) {
            0 => {
                let (n, b) = (nd(&mut rng), raw_buf(&mut rng, &labels));
                log.push(format!("patch {n} {b:?}"));
                l.patch(n, &b).map(drop)
            }
            1 => {
                let (n, b) = (nd(&mut rng), raw_buf(&mut rng, &labels));
                let m = if rng.chance(50) { PrepatchMode::LandOnInserted } else { PrepatchMode::SkipForJumps };
                log.push(format!("prepatch {n} {b:?} {m:?}"));
                l.prepatch(n, &b, m).map(drop)
            }
            2 => {
                let (a, b) = (nd(&mut rng), nd(&mut rng));
                log.push(format!("delete {a}..{b}"));
                l.delete_range(a, b)
            }
            3 => {
                let b = raw_buf(&mut rng, &labels);
                log.push(format!("append {b:?}"));
                l.append(&b).map(drop)
            }
            4 => {
                let (n, i) = (nd(&mut rng), raw_insn(&mut rng));
                log.push(format!("set_insn {n} {i:?}"));
                l.set_insn(n, i)
            }
            5 => {
                let n = nd(&mut rng);
                let t = raw_target(&mut rng, &labels).unwrap_or(Target::PastEnd);
                log.push(format!("retarget {n} {t:?}"));
                l.retarget(n, t)
            }
            6 => l.new_label().map(|lab| labels.push(lab)),
            _ if !labels.is_empty() => {
                let (lab, n) = (*rng.pick(&labels), nd(&mut rng));
                log.push(format!("bind {lab:?} {n}"));
                l.bind_label(lab, n)
            }
            _ => Ok(()),
        };
        let _ = r;
        // Accepted or refused, the list's invariants hold.
        if let Err(e) = l.validate() {
            panic!("{e}\nprogram {prog:?}\n{}", log.join("\n"));
        }
        let mut c = l.cursor();
        while c.advance().is_some() {}
    }
    let ctx = || format!("program {prog:?}\n{}", log.join("\n"));
    for relax in [false, true] {
        if let Ok(out) = l.linearize(LinearizeOptions { relax }) {
            assert_well_formed(&out.insns, &ctx);
            if !relax {
                assert_eq!(out.insns.len(), l.live_len(), "{}", ctx());
            }
            check_map_monotone(&out.map, &ctx());
        }
    }
    let p = Program { insns: prog.clone(), aux: vec![(); prog.len()], tables: SideTables::default() };
    if let Ok(out) = l.linearize_program(&p, &mut |_: &Insn, _: Option<&()>| (), LinearizeOptions::default()) {
        assert_well_formed(&out.program.insns, &ctx);
    }
}
