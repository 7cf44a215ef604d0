//! The in-order engine (`bpfpatch_patch::InOrder`) against the list engine
//! (`bpfpatch_patch::PatchList`) and, on the patch-only subset, the kernel reference
//! (`bpfpatch_patch::reference`).
//!
//! Each case takes a program with aux data and every side table from the naive oracle's
//! generator ([`crate::naive::program_with_tables`]), sometimes broken on purpose (an invalid
//! target, a truncated ld_imm64, a bad table entry, a short aux vector), and a random script of
//! in-order requests: patches with every target spelling the in-order engine supports
//! (buffer-local by offset, `Local`, `PastEnd`, `OrigTarget`, `Orig`, `Subprog`) on every
//! reference kind (jumps of every form, calls, `PSEUDO_FUNC`), buffers with ld_imm64 pairs,
//! patches of ld_imm64 pairs, deletions of single instructions and ranges, and requests each
//! engine must refuse (out of order, second slots, past the end, bad buffers and targets, the
//! `Node` and `Label` targets the in-order engine does not support). Every request goes to the
//! in-order engine first; one it refuses as out of order or unsupported goes nowhere else
//! (checked to be exactly those), every other goes to the list, and the two results (the nodes
//! of a patch, or the error) must be equal. At the end the two linearized programs (the whole
//! `PatchedProgram`: instructions, aux, every table, `dropped`, the map, statistics), or their
//! errors, must be equal, with the map's answers for every original slot and node. When the
//! script was patch-only with targets the kernel expresses (buffer-local, `PastEnd`,
//! `OrigTarget`; no buffer ending in an ld_imm64: the kernel moves the aux to its second
//! slot), the same patches are replayed on the kernel model, whose instructions, aux and
//! tables must be the in-order engine's. The in-order engine runs on a context and output
//! dirtied by another program first (the warm path).

// An oracle's job is to panic on a broken property; generator arithmetic is on small values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::too_many_lines
)]

use crate::naive::{heads_of, plain_insn, program_with_tables, ref_insn};
use bpfpatch_insn::{Insn, Slot, opcode as c};
use bpfpatch_patch::AuxHook;
use bpfpatch_patch::fuzzing::Rng;
use bpfpatch_patch::reference::{KernelAux, KernelAuxHook, KernelProg};
use bpfpatch_patch::{
    Error, InOrder, InOrderCtx, LineInfo, LinearizeOptions, NodeId, PatchBuf, PatchList, PatchedProgram, Program,
    SideTables, Subprog, SubprogId, Target,
};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Counters of [`differential`] since the process started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Cases run.
    pub cases: usize,
    /// Cases whose program both engines refused (broken on purpose).
    pub bad_programs: usize,
    /// Requests sent to the in-order engine.
    pub tried: usize,
    /// Requests both engines accepted.
    pub accepted: usize,
    /// Requests both engines refused with the same error.
    pub refused: usize,
    /// Requests the in-order engine refused as out of order or unsupported.
    pub unsupported: usize,
    /// Cases both engines linearized (the rest refused with the same error).
    pub linearized: usize,
    /// Cases also compared with the kernel reference.
    pub kernel: usize,
    /// Accepted patches per target spelling: offset, `Local`, `PastEnd`, `OrigTarget`, `Orig`,
    /// `Subprog`.
    pub spellings: [usize; 6],
    /// Accepted deletions.
    pub deletions: usize,
    /// Accepted patches of an ld_imm64 pair.
    pub ld_pairs: usize,
    /// Accepted patches the in-order engine wrote by its fast path (`InOrder::plain_patches`);
    /// the rest of the accepted patches took its general path.
    pub fast: usize,
    /// The fast path's patches by buffer length: 1, 2, 3, 4 (each unrolled apart) and longer.
    pub fast_len: [usize; 5],
}

const N: usize = 22;
static C: [AtomicUsize; N] = [const { AtomicUsize::new(0) }; N];
const CASES: usize = 0;
const BAD: usize = 1;
const TRIED: usize = 2;
const ACCEPTED: usize = 3;
const REFUSED: usize = 4;
const UNSUPPORTED: usize = 5;
const LINEARIZED: usize = 6;
const KERNEL: usize = 7;
const SPELL: usize = 8; // 8..14
const DELETIONS: usize = 14;
const LD_PAIRS: usize = 15;
const FAST: usize = 16;
const FAST_LEN: usize = 17; // 17..22

fn bump(i: usize) {
    C[i].fetch_add(1, Relaxed);
}

/// The counters of [`differential`].
#[must_use]
pub fn stats() -> Stats {
    let g = |i: usize| C[i].load(Relaxed);
    Stats {
        cases: g(CASES),
        bad_programs: g(BAD),
        tried: g(TRIED),
        accepted: g(ACCEPTED),
        refused: g(REFUSED),
        unsupported: g(UNSUPPORTED),
        linearized: g(LINEARIZED),
        kernel: g(KERNEL),
        spellings: core::array::from_fn(|k| g(SPELL + k)),
        deletions: g(DELETIONS),
        ld_pairs: g(LD_PAIRS),
        fast: g(FAST),
        fast_len: core::array::from_fn(|k| g(FAST_LEN + k)),
    }
}

/// In-order engine vs list (and kernel) on a program and script made from `data`.
///
/// # Panics
/// On any disagreement: a finding.
pub fn differential(data: &[u8]) {
    run(Rng::from_bytes(data));
}

/// [`differential`] on a seeded stream.
///
/// # Panics
/// On any disagreement.
pub fn differential_seed(seed: u64) {
    run(Rng::seeded(seed));
}

/// A request of the script.
#[derive(Clone, Debug)]
enum Req {
    /// The slot, the buffer, and each buffer slot's explicit target as generated.
    Patch(Slot, PatchBuf, Vec<Option<Target>>),
    Delete(Slot, Slot),
}

/// Breaks a valid program on purpose (rarely): each engine must refuse it the same way,
/// when built or when linearized. Or (as rarely) makes it empty, which both must accept.
fn maybe_break(rng: &mut Rng<'_>, p: &mut Program<KernelAux>) {
    if !rng.chance(8) {
        return;
    }
    let n = p.insns.len();
    match rng.below(9) {
        0 => {
            // A jump to one past the end (the first slot outside), far past it, or before the
            // start: at slot n of n + 1, `off` targets n + 1 + off.
            let off = *rng.pick(&[0, 3, -(n as i16) - 2]);
            p.insns.push(Insn::new(c::JMP | c::JA, 0, 0, off, 0));
            p.aux.push(KernelAux::default());
        }
        7 => {
            // A jump into an ld_imm64 second slot (there is none: into the end).
            let tails: Vec<usize> =
                heads_of(&p.insns).into_iter().filter(|&h| p.insns[h].is_ld_imm64()).map(|h| h + 1).collect();
            let t = if tails.is_empty() { n + 1 } else { *rng.pick(&tails) };
            p.insns.push(Insn::new(c::JMP | c::JA, 0, 0, (t as i16) - (n as i16) - 1, 0));
            p.aux.push(KernelAux::default());
        }
        8 => {
            // The empty program (valid).
            p.insns.clear();
            p.aux.clear();
            p.tables = SideTables::default();
        }
        1 => {
            // A truncated ld_imm64.
            p.insns.push(Insn::new(c::LD_IMM64, 1, 0, 0, 0));
            p.aux.push(KernelAux::default());
        }
        2 => {
            p.aux.pop();
        }
        3 => {
            let s = rng.below(n + 2) as u32;
            p.tables.line_info.push(LineInfo { insn_off: s, ..LineInfo::default() });
        }
        4 => {
            p.tables.func_info.pop();
        }
        5 => {
            if let Some(s) = p.tables.subprogs.last_mut() {
                s.start = rng.below(n + 1) as u32;
            }
        }
        _ => {
            if let Some(r) = p.tables.core_relocs.first_mut() {
                r.insn_off = if rng.chance(50) { 3 } else { (n as u64 + 1) * 8 };
            }
        }
    }
}

/// Sometimes gives ld_imm64 second slots the opcode of a first slot: a second slot is data,
/// and only the pairing from the program's start decides which slots are second slots.
fn maybe_odd_tails(rng: &mut Rng<'_>, p: &mut Program<KernelAux>) {
    if !rng.chance(10) {
        return;
    }
    for h in heads_of(&p.insns) {
        if p.insns[h].is_ld_imm64() && h + 1 < p.insns.len() && rng.chance(50) {
            p.insns[h + 1].code = c::LD_IMM64;
        }
    }
}

/// What the kernel can express of a buffer target (see the module documentation).
fn kernel_spelling(t: Option<Target>) -> bool {
    matches!(t, None | Some(Target::Local(_) | Target::PastEnd | Target::OrigTarget))
}

struct Case<'a> {
    rng: Rng<'a>,
    prog: Program<KernelAux>,
    heads: Vec<usize>,
    tails: Vec<usize>,
    /// Whether the accepted script is in the kernel subset so far.
    kernel_ok: bool,
    /// Accepted requests, in order.
    script: Vec<Req>,
    log: Vec<String>,
}

impl Case<'_> {
    fn fail(&self, what: &str) -> ! {
        panic!("in-order differential: {what}\nprogram {:?}\n{}", self.prog, self.log.join("\n"))
    }

    /// A buffer of 1-4 instructions (or a pass's, [`Case::pass_buf`]) for a patch of `slot`; returns it, whether it uses only
    /// kernel spellings, and the spellings of its targets.
    fn gen_buf(&mut self, list: &mut PatchList) -> (PatchBuf, Vec<Option<Target>>, bool, Vec<usize>) {
        if self.rng.chance(6) {
            return self.pass_buf();
        }
        let rng = &mut self.rng;
        let mut groups: Vec<Vec<Insn>> = Vec::new();
        for _ in 0..rng.range(1, 4) {
            let mut g = if rng.chance(55) {
                let rk = rng.below(6) as u8;
                ref_insn(rng, rk)
            } else {
                plain_insn(rng)
            };
            if g.len() == 2 && rng.chance(15) {
                // An ld_imm64 second slot is data: one that looks like a first slot is still
                // the second (only the pairing from the buffer's start decides).
                g[1].code = c::LD_IMM64;
            }
            groups.push(g);
        }
        let mut starts = Vec::new();
        let mut len = 0;
        for g in &groups {
            starts.push(len);
            len += g.len();
        }
        let n = self.prog.insns.len();
        let nsub = self.prog.tables.subprogs.len().max(1);
        let mut buf = PatchBuf::new();
        let mut spec: Vec<Option<Target>> = Vec::new();
        let mut kernel = !groups.last().is_some_and(|g| g[0].is_ld_imm64());
        let mut spellings = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            let j = starts[gi];
            let mut first = g[0];
            let t = if first.target_field().is_some() {
                let local = |rng: &mut Rng<'_>| -> usize {
                    let mut c: Vec<usize> = starts.clone();
                    c.push(len);
                    if rng.chance(3) {
                        c.push(len + 1); // out of range
                        c.push(j + 1); // maybe a second slot
                    }
                    *rng.pick(&c)
                };
                let sp = match rng.below(100) {
                    0..=19 => 0,
                    20..=29 => 1,
                    30..=44 => 2,
                    45..=69 => 3,
                    70..=84 => 4,
                    85..=94 => 5,
                    95..=97 => 6,
                    _ => 7,
                };
                let t = match sp {
                    0 => {
                        let k = local(rng);
                        assert!(first.set_rel_target(k as i64 - j as i64 - 1));
                        None
                    }
                    1 => Some(Target::Local(local(rng) as u32)),
                    2 => Some(Target::PastEnd),
                    3 => Some(Target::OrigTarget),
                    4 => {
                        let s = if rng.chance(5) { n + rng.below(2) } else { rng.below(n.max(1)) };
                        Some(Target::Orig(Slot(s)))
                    }
                    5 => {
                        let s = if rng.chance(5) { nsub + 3 } else { rng.below(nsub) };
                        Some(Target::Subprog(SubprogId(s as u32)))
                    }
                    6 => Some(Target::Node(NodeId::of_slot(Slot(rng.below(n.max(1)))))),
                    _ => Some(Target::Label(list.new_label().expect("a label"))),
                };
                if sp < 6 {
                    spellings.push(sp);
                }
                kernel &= kernel_spelling(t);
                t
            } else {
                if rng.chance(2) {
                    // An explicit target on an instruction without a field.
                    buf.jump_to(first, Target::PastEnd);
                    spec.push(Some(Target::PastEnd));
                    for &s in &g[1..] {
                        buf.push(s);
                        spec.push(None);
                    }
                    continue;
                }
                None
            };
            match t {
                Some(t) => buf.jump_to(first, t),
                None => buf.push(first),
            };
            spec.push(t);
            for &s in &g[1..] {
                buf.push(s);
                spec.push(None);
            }
        }
        if self.rng.chance(2) {
            buf.clear(); // empty
            spec.clear();
        } else if self.rng.chance(2) && buf.len() >= 2 {
            // A truncated ld_imm64 at the end.
            buf.push(Insn::new(c::LD_IMM64, 1, 0, 0, 0));
            spec.push(None);
        }
        (buf, spec, kernel, spellings)
    }

    /// A buffer of a pass's shape (blinding, instrumentation): 1 to 6 slots (the fast path
    /// unrolls 1 to 4 apart) or 63-130 around its 64-slot bound, of ALU instructions and jumps
    /// to `OrigTarget`, sometimes with one slot that takes it off that path (a jump with a
    /// buffer-local target, an explicit target on an ALU instruction, an ld_imm64 pair).
    fn pass_buf(&mut self) -> (PatchBuf, Vec<Option<Target>>, bool, Vec<usize>) {
        let rng = &mut self.rng;
        let len = *rng.pick(&[1, 2, 3, 4, 5, 6, 63, 64, 65, 66, 100, 127, 128, 129, 130]);
        let odd = if rng.chance(30) { Some(rng.below(len)) } else { None };
        let mov = |k: i32| Insn::new(c::ALU64 | c::MOV | c::K, 1, 0, 0, k);
        let mut buf = PatchBuf::new();
        let mut spec = Vec::new();
        let mut spellings = Vec::new();
        let mut kernel = true;
        while buf.len() < len {
            let k = buf.len();
            kernel = true;
            if odd == Some(k) {
                match rng.below(3) {
                    0 => {
                        let rk = rng.below(4) as u8;
                        let t = Target::Local(rng.below(len + 1) as u32);
                        buf.jump_to(ref_insn(rng, rk)[0], t);
                        spec.push(Some(t));
                        spellings.push(1);
                    }
                    1 => {
                        buf.jump_to(mov(k as i32), Target::PastEnd);
                        spec.push(Some(Target::PastEnd));
                    }
                    _ => {
                        buf.push(Insn::new(c::LD_IMM64, 2, 0, 0, k as i32)).push(Insn::new(0, 0, 0, 0, 1));
                        spec.extend([None, None]);
                        // The kernel moves the aux of a buffer ending in an ld_imm64 to its second slot.
                        kernel = false;
                    }
                }
            } else if rng.chance(50) {
                let rk = rng.below(4) as u8;
                buf.jump_to(ref_insn(rng, rk)[0], Target::OrigTarget);
                spec.push(Some(Target::OrigTarget));
                spellings.push(3);
            } else {
                buf.push(mov(k as i32));
                spec.push(None);
            }
        }
        (buf, spec, kernel, spellings)
    }

    /// One request to both engines (the in-order one first); returns whether it was accepted.
    fn request<H: bpfpatch_patch::AuxHook<KernelAux>>(
        &mut self,
        io: &mut InOrder<'_, KernelAux, H>,
        list: &mut PatchList,
        req: Req,
        kernel: bool,
        spellings: &[usize],
    ) -> bool {
        bump(TRIED);
        let next = io.next_slot();
        let what = format!("{req:?} (next {next:?})");
        self.log.push(what.clone());
        match &req {
            Req::Patch(slot, buf, spec) => {
                let fast = io.plain_patches();
                let got = io.patch(*slot, buf);
                if io.plain_patches() != fast {
                    bump(FAST);
                    bump(FAST_LEN + buf.len().clamp(1, 5) - 1);
                }
                if let Err(e) = &got
                    && let Some(why) = self.unsupported(e, next, Some(spec))
                {
                    if !why {
                        self.fail(&format!("{what}: in-order refused with {e:?} for no reason"));
                    }
                    bump(UNSUPPORTED);
                    return false;
                }
                let want = list.node_of(*slot).and_then(|x| list.patch(x, buf));
                if !self.settle(&what, got, want) {
                    return false;
                }
                for &sp in spellings {
                    bump(SPELL + sp);
                }
                if self.prog.insns.get(slot.0).is_some_and(Insn::is_ld_imm64) {
                    bump(LD_PAIRS);
                }
                self.kernel_ok &= kernel;
                self.script.push(req);
                true
            }
            Req::Delete(first, last) => {
                // A single instruction both ways (and independently for the list, below).
                let got = if first == last && self.rng.chance(50) {
                    io.delete(*first)
                } else {
                    io.delete_range(*first, *last)
                };
                if let Err(e) = &got
                    && let Some(why) = self.unsupported(e, next, None)
                {
                    if !why {
                        self.fail(&format!("{what}: in-order refused with {e:?} for no reason"));
                    }
                    bump(UNSUPPORTED);
                    return false;
                }
                let want = list.node_of(*first).and_then(|f| {
                    let l = list.node_of(*last)?;
                    if first == last && self.rng.chance(50) { list.delete(f) } else { list.delete_range(f, l) }
                });
                if !self.settle(&what, got, want) {
                    return false;
                }
                bump(DELETIONS);
                self.kernel_ok = false;
                self.script.push(req);
                true
            }
        }
    }

    /// Compares the two engines' results of one request (equal values, or equal errors);
    /// returns whether both accepted it.
    fn settle<T: PartialEq + core::fmt::Debug>(
        &self,
        what: &str,
        got: Result<T, Error>,
        want: Result<T, Error>,
    ) -> bool {
        match (got, want) {
            (Ok(a), Ok(b)) => {
                if a != b {
                    self.fail(&format!("{what}: in-order {a:?}, list {b:?}"));
                }
                bump(ACCEPTED);
                true
            }
            (Err(a), Err(b)) => {
                if a != b {
                    self.fail(&format!("{what}: in-order refused with {a:?}, list with {b:?}"));
                }
                bump(REFUSED);
                false
            }
            (a, b) => self.fail(&format!("{what}: in-order {a:?}, list {b:?}")),
        }
    }

    /// `Some(justified)` when `e` is one of the in-order engine's own refusals.
    fn unsupported(&self, e: &Error, next: Slot, spec: Option<&[Option<Target>]>) -> Option<bool> {
        match e {
            Error::OutOfOrder { slot, next: n } => Some(*n == next && slot.0 < next.0),
            Error::InOrderUnsupported { index, what, .. } => {
                let t = spec.and_then(|s| s.get(*index).copied().flatten());
                Some(match t {
                    Some(Target::Node(_)) => *what == "Target::Node",
                    Some(Target::Label(_)) => *what == "Target::Label",
                    _ => false,
                })
            }
            _ => None,
        }
    }

    /// A request in ascending order from head index `*hi`, or a bad one.
    fn step<H: bpfpatch_patch::AuxHook<KernelAux>>(
        &mut self,
        io: &mut InOrder<'_, KernelAux, H>,
        list: &mut PatchList,
        hi: &mut usize,
    ) {
        let n = self.prog.insns.len();
        *hi = (*hi + self.rng.below(3)).min(self.heads.len());
        let r = self.rng.below(100);
        if r < 80 && *hi >= self.heads.len() {
            *hi = self.heads.len();
            return;
        }
        match r {
            0..=64 => {
                let slot = Slot(self.heads[*hi]);
                let (buf, spec, kernel, sp) = self.gen_buf(list);
                if self.request(io, list, Req::Patch(slot, buf, spec), kernel, &sp) {
                    *hi += 1;
                }
            }
            65..=79 => {
                let m = self.rng.range(1, 3).min(self.heads.len() - *hi);
                let (f, l) = (Slot(self.heads[*hi]), Slot(self.heads[*hi + m - 1]));
                if self.request(io, list, Req::Delete(f, l), false, &[]) {
                    *hi += m;
                }
            }
            _ => {
                // A request at a slot the engines must refuse or handle oddly.
                let slot = match self.rng.below(4) {
                    0 if *hi > 0 => Slot(self.heads[self.rng.below(*hi)]), // out of order
                    1 if !self.tails.is_empty() => Slot(*self.rng.pick(&self.tails)),
                    2 => Slot(n + self.rng.below(2)),
                    _ => Slot(self.heads.get(*hi).copied().unwrap_or(n)),
                };
                let req = if self.rng.chance(60) {
                    let (buf, spec, _, _) = self.gen_buf(list);
                    Req::Patch(slot, buf, spec)
                } else {
                    let other = Slot(self.heads.get(self.rng.below(self.heads.len().max(1))).copied().unwrap_or(0));
                    Req::Delete(slot, other)
                };
                let sp: Vec<usize> = Vec::new();
                if self.request(io, list, req.clone(), false, &sp) {
                    // Accepted: advance past it.
                    let end = match req {
                        Req::Patch(s, ..) | Req::Delete(_, s) => s.0,
                    };
                    *hi = self.heads.iter().position(|&h| h > end).unwrap_or(self.heads.len());
                }
            }
        }
    }
}

/// One aux hook call: `patched` or not, the instruction's fields, whether a parent was given.
type Call = (bool, u8, u8, u8, i16, i32, bool);

/// [`KernelAuxHook`], recording every call: the two engines' calls must be the same (in any
/// order), which holds the hook contract (once per output slot it concerns, with the slot's
/// final instruction) for the in-order engine as it holds for the list.
#[derive(Default)]
struct Recorder {
    calls: Vec<Call>,
}

impl Recorder {
    fn record(&mut self, patched: bool, insn: &Insn, parent: bool) {
        self.calls.push((patched, insn.code, insn.dst(), insn.src(), insn.off, insn.imm, parent));
    }
}

impl AuxHook<KernelAux> for Recorder {
    fn new_slot(&mut self, insn: &Insn, parent: Option<&KernelAux>) -> KernelAux {
        self.record(false, insn, parent.is_some());
        KernelAuxHook.new_slot(insn, parent)
    }

    fn patched(&mut self, aux: &mut KernelAux, insn: &Insn) {
        self.record(true, insn, true);
        KernelAuxHook.patched(aux, insn);
    }
}

fn run(mut rng: Rng<'_>) {
    bump(CASES);
    // The warm path: a context and an output dirtied by another program first.
    let mut ctx = InOrderCtx::new();
    let mut out: PatchedProgram<KernelAux> = PatchedProgram::default();
    let mut hook = Recorder::default();
    {
        let decoy = program_with_tables(&mut rng);
        if let Ok(mut io) = InOrder::new(&mut ctx, &decoy, &mut hook, &mut out) {
            for &h in &heads_of(&decoy.insns) {
                if rng.chance(50) {
                    let _ =
                        io.patch(Slot(h), &PatchBuf::from_insns(&[Insn::new(c::ALU64 | c::MOV | c::K, 1, 0, 0, 1)]));
                }
            }
            let _ = io.finish();
        }
    }
    hook.calls.clear();
    let mut prog = program_with_tables(&mut rng);
    maybe_odd_tails(&mut rng, &mut prog);
    maybe_break(&mut rng, &mut prog);
    let heads = if prog.insns.last().is_some_and(Insn::is_ld_imm64) {
        heads_of(&prog.insns[..prog.insns.len() - 1])
    } else {
        heads_of(&prog.insns)
    };
    let tails: Vec<usize> =
        heads.iter().filter(|&&h| prog.insns[h].is_ld_imm64() && h + 1 < prog.insns.len()).map(|&h| h + 1).collect();
    let mut case = Case { rng, prog: prog.clone(), heads, tails, kernel_ok: true, script: Vec::new(), log: Vec::new() };
    let want = PatchList::for_program(&prog);
    let got = InOrder::new(&mut ctx, &prog, &mut hook, &mut out);
    let (mut io, mut list) = match (got, want) {
        (Ok(io), Ok(list)) => (io, list),
        (Err(a), Err(b)) => {
            if a != b {
                case.fail(&format!("program refused: in-order {a:?}, list {b:?}"));
            }
            bump(BAD);
            return;
        }
        (a, b) => case.fail(&format!("program: in-order {:?}, list {:?}", a.err(), b.err())),
    };
    let mut hi = 0;
    for _ in 0..case.rng.range(1, 14) {
        case.step(&mut io, &mut list, &mut hi);
    }
    let got = io.finish();
    let mut list_hook = Recorder::default();
    let want = list.linearize_program(&prog, &mut list_hook, LinearizeOptions::default());
    let want = match (got, want) {
        (Ok(()), Ok(w)) => w,
        (Err(a), Err(b)) => {
            if a != b {
                case.fail(&format!("finish: in-order {a:?}, list {b:?}"));
            }
            return;
        }
        (a, b) => case.fail(&format!("finish: in-order {a:?}, list {:?}", b.map(|_| ()))),
    };
    bump(LINEARIZED);
    compare(&case, &out, &want, &list);
    let (mut a, mut b) = (hook.calls, list_hook.calls);
    a.sort_unstable();
    b.sort_unstable();
    if a != b {
        case.fail(&format!("aux hook calls differ:\n in-order {a:?}\n list     {b:?}"));
    }
    if case.kernel_ok {
        kernel_compare(&case, &out);
        bump(KERNEL);
    }
}

/// The whole output, and the map's answers for every original slot and node.
fn compare(case: &Case<'_>, got: &PatchedProgram<KernelAux>, want: &PatchedProgram<KernelAux>, list: &PatchList) {
    let (g, w) = (&got.program, &want.program);
    if g.insns != w.insns {
        case.fail(&format!("instructions differ:\n in-order {:?}\n list     {:?}", g.insns, w.insns));
    }
    if g.aux != w.aux {
        case.fail(&format!("aux differs:\n in-order {:?}\n list     {:?}", g.aux, w.aux));
    }
    if g.tables != w.tables {
        case.fail(&format!("tables differ:\n in-order {:?}\n list     {:?}", g.tables, w.tables));
    }
    if got.dropped != want.dropped || got.subprog_map != want.subprog_map || got.stats != want.stats {
        case.fail(&format!(
            "dropped/subprog_map/stats differ:\n in-order {:?} {:?} {:?}\n list     {:?} {:?} {:?}",
            got.dropped, got.subprog_map, got.stats, want.dropped, want.subprog_map, want.stats
        ));
    }
    let (gm, wm) = (&got.map, &want.map);
    for s in 0..=case.prog.insns.len() + 1 {
        let s = Slot(s);
        let a = (gm.jump_target(s), gm.start(s), gm.live_start(s), gm.insn(s), gm.is_deleted(s));
        let b = (wm.jump_target(s), wm.start(s), wm.live_start(s), wm.insn(s), wm.is_deleted(s));
        if a != b {
            case.fail(&format!("map answers for slot {s:?}: in-order {a:?}, list {b:?}"));
        }
    }
    for x in 0..=list.node_count() {
        let x = NodeId::of_slot(Slot(x));
        if gm.node_pos(x) != wm.node_pos(x) {
            case.fail(&format!("node {x}: in-order {:?}, list {:?}", gm.node_pos(x), wm.node_pos(x)));
        }
    }
    for k in 0..=list.subprog_count() {
        let k = SubprogId(k as u32);
        if gm.subprog_start(k) != wm.subprog_start(k) {
            case.fail(&format!("subprogram {k}: in-order {:?}, list {:?}", gm.subprog_start(k), wm.subprog_start(k)));
        }
    }
    if (gm.orig_len(), gm.new_len()) != (wm.orig_len(), wm.new_len()) || format!("{gm:?}") != format!("{wm:?}") {
        case.fail(&format!("maps differ:\n in-order {gm:?}\n list     {wm:?}"));
    }
}

/// The kernel's absolute target of slot `at`'s reference, as its adjusters see it.
fn ktarget(insn: &Insn, at: usize) -> Option<i64> {
    insn.target_field().map(|_| insn.abs_target(at).unwrap_or(0))
}

/// Replays the (patch-only, kernel-expressible) script on the kernel model: literal buffers in
/// the current image's coordinates, the old second slot of a patched ld_imm64 removed.
fn kernel_compare(case: &Case<'_>, got: &PatchedProgram<KernelAux>) {
    let p = &case.prog;
    let mut subprog_info = p.tables.subprogs.clone();
    let computed = subprog_info.is_empty();
    subprog_info.push(Subprog { start: p.insns.len() as u32, linfo_idx: 0 });
    let mut kp = KernelProg::<KernelAux> {
        insns: p.insns.clone(),
        aux: p.aux.clone(),
        subprog_info,
        func_info: p.tables.func_info.clone(),
        linfo: p.tables.line_info.clone(),
        pokes: p.tables.pokes.clone(),
        insn_arrays: p.tables.insn_arrays.clone(),
        hidden_subprog_cnt: 0,
    };
    let mut delta: i64 = 0;
    for req in &case.script {
        let Req::Patch(slot, buf, spec) = req else { unreachable!("patch-only") };
        let pos = (slot.0 as i64 + delta) as usize;
        let len = buf.len();
        let old = kp.insns[pos];
        let w = if old.is_ld_imm64() { 2 } else { 1 };
        let orig = ktarget(&old, pos);
        let mut kbuf: Vec<Insn> = buf.insns().collect();
        for (j, insn) in kbuf.iter_mut().enumerate() {
            if insn.target_field().is_none() {
                continue;
            }
            // No explicit target: the instruction's own offset, buffer-local.
            let own = || Target::Local((j as i64 + insn.rel_target().unwrap_or(0) + 1) as u32);
            let t = spec[j].unwrap_or_else(own);
            let abs = match t {
                Target::Local(k) => pos + k as usize,
                Target::PastEnd => pos + len,
                Target::OrigTarget => {
                    let t = orig.expect("accepted: the patched instruction has a target") as usize;
                    if t > pos { t + len - 1 } else { t }
                }
                _ => unreachable!("kernel subset"),
            };
            assert!(insn.set_rel_target(abs as i64 - (pos + j) as i64 - 1));
        }
        kp.bpf_patch_insn_data(pos as u32, &kbuf).unwrap_or_else(|e| case.fail(&format!("kernel patch: {e}")));
        if w == 2 {
            kp.verifier_remove_insns((pos + len) as u32, 1)
                .unwrap_or_else(|e| case.fail(&format!("kernel remove: {e}")));
            // The kernel never removes code once pokes exist; shift them as an insert would.
            for d in &mut kp.pokes {
                if d.insn_idx as usize > pos + len {
                    d.insn_idx -= 1;
                }
            }
        }
        delta += len as i64 - w;
    }
    kp.adjust_btf_func();
    let g = &got.program;
    if g.insns != kp.insns {
        case.fail(&format!("kernel: instructions differ:\n in-order {:?}\n kernel   {:?}", g.insns, kp.insns));
    }
    if g.aux != kp.aux {
        case.fail(&format!("kernel: aux differs:\n in-order {:?}\n kernel   {:?}", g.aux, kp.aux));
    }
    let cnt = kp.subprog_cnt();
    let ks: Vec<u32> = kp.subprog_info[..cnt].iter().map(|s| s.start).collect();
    let gs: Vec<u32> = g.tables.subprogs.iter().map(|s| s.start).collect();
    if !computed && gs != ks {
        case.fail(&format!("kernel: subprogram starts differ: {gs:?} vs {ks:?}"));
    }
    if g.tables.func_info != kp.func_info && !computed {
        case.fail(&format!("kernel: func_info differs: {:?} vs {:?}", g.tables.func_info, kp.func_info));
    }
    if g.tables.line_info != kp.linfo {
        case.fail(&format!("kernel: line info differs: {:?} vs {:?}", g.tables.line_info, kp.linfo));
    }
    if g.tables.pokes != kp.pokes || g.tables.insn_arrays != kp.insn_arrays {
        case.fail("kernel: pokes or insn arrays differ");
    }
}
