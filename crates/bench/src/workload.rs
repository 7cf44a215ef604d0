//! Benchmark workloads: programs with side tables and the list of slots to blind.
//!
//! - [`seed`]: the RFC's table shape. `P` patch sites, each a blindable instruction (ALU with an
//!   immediate, a conditional jump with an immediate, or an ld_imm64 — whose two slots are two
//!   patches, as in the kernel); a conditional jump every ~16 instructions, forward and backward
//!   with spans up to a few thousand; a subprogram every ~4096 instructions, each called from the
//!   main program by a pseudo call; line info every 4 instructions (and at every subprogram
//!   start); one aux record per slot.
//! - [`rand_ld_dw`]: the kernel's 1M-instruction scale test (`bpf_fill_rand_ld_dw`): ld_imm64 +
//!   xor pairs; under blinding every ld_imm64 slot is a patch.
//!
//! Generation is deterministic (a fixed xorshift seed), so every implementation sees the same input.

use bpfpatch_insn::{Insn, opcode as c};
use bpfpatch_patch::{LineInfo, Program, SideTables, Subprog};

/// Per-slot aux data carried through patching: the kernel's `bpf_insn_aux_data` reduced to the
/// fields patching touches.
pub use bpfpatch_patch::reference::KernelAux as Aux;

/// A program to patch: instructions, side tables, and the slots to patch.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    /// Workload name (`seed`, `rand-ld-dw`).
    pub name: &'static str,
    /// The program: instructions, one aux record per slot, subprograms (ascending starts, the
    /// first at 0) and line info (strictly ascending).
    pub prog: Program<Aux>,
    /// The slots to patch, ascending (both slots of a blinded ld_imm64).
    pub sites: Vec<u32>,
    /// The blinding patch of each site (same index), generated once with a fixed seed so that
    /// every implementation applies the same patches and none pays for generating them.
    pub site_patches: Vec<crate::blind::SitePatch>,
}

impl Workload {
    /// Number of patches.
    #[must_use]
    pub fn patches(&self) -> usize {
        self.sites.len()
    }

    /// The input slots.
    #[must_use]
    pub fn insns(&self) -> &[Insn] {
        &self.prog.insns
    }
}

/// A small deterministic generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed (0 is replaced by a fixed constant).
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let [a, b, c, d, ..] = self.next_u64().to_le_bytes();
        u32::from_le_bytes([a, b, c, d])
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u32) -> u32 {
        self.next_u32() % n.max(1)
    }

    /// A register r1..r8.
    pub fn reg(&mut self) -> u8 {
        1 + self.next_u64().to_le_bytes()[0] % 8
    }

    /// The next 32 random bits as an `i32`.
    pub fn next_i32(&mut self) -> i32 {
        i32::from_ne_bytes(self.next_u32().to_ne_bytes())
    }
}

/// The seed of the blinding random source.
pub const BLIND_SEED: u64 = 0xb11d;

const SUBPROG_LEN: usize = 4096;
const JUMP_EVERY: u32 = 16;
const MAX_SPAN: u32 = 3000;

fn slot_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn delta_i16(from: usize, to: usize) -> i16 {
    let d = i64::try_from(to).unwrap_or(0) - i64::try_from(from).unwrap_or(0) - 1;
    i16::try_from(d).unwrap_or(0)
}

/// The `seed` workload with `patches` patch sites (approximately: an ld_imm64 adds two).
#[must_use]
pub fn seed(patches: usize) -> Workload {
    seed_with(patches, true)
}

/// [`seed`], optionally without ld_imm64 sites.
#[must_use]
pub fn seed_with(patches: usize, ld_imm64: bool) -> Workload {
    let mut rng = Rng::new(0x5eed);
    let mut insns: Vec<Insn> = Vec::with_capacity(patches + patches / 1000 + 16);
    let mut sites: Vec<u32> = Vec::with_capacity(patches + 2);
    let mut subprogs = vec![0u32];
    // Conditional jumps are placed first with placeholder offsets, resolved per subprogram once
    // its instruction starts are known.
    let mut pending_jumps: Vec<usize> = Vec::new();
    let n_subprogs = patches / SUBPROG_LEN + 1;
    // Main program: a pseudo call to every other subprogram first (fixed up below).
    let mut call_slots = Vec::with_capacity(n_subprogs);
    for _ in 1..n_subprogs {
        call_slots.push(insns.len());
        insns.push(Insn::new(c::JMP | c::CALL, 0, c::PSEUDO_CALL, 0, 0));
    }
    let mut starts: Vec<usize> = Vec::new(); // instruction starts of the current subprogram
    let mut sub_begin = 0usize;
    let mut in_sub = 0usize;
    while sites.len() < patches {
        let pos = insns.len();
        starts.push(pos);
        let r = rng.below(16);
        if ld_imm64 && r == 0 && sites.len() + 2 <= patches {
            // ld_imm64: two patches.
            let v = rng.next_u64();
            let [l0, l1, l2, l3, h0, h1, h2, h3] = v.to_le_bytes();
            insns.push(Insn::new(c::LD_IMM64, rng.reg(), 0, 0, i32::from_le_bytes([l0, l1, l2, l3])));
            insns.push(Insn::new(0, 0, 0, 0, i32::from_le_bytes([h0, h1, h2, h3])));
            sites.extend([slot_u32(pos), slot_u32(pos + 1)]);
            in_sub += 2;
        } else if starts.len().is_multiple_of(JUMP_EVERY as usize) {
            pending_jumps.push(pos);
            insns.push(Insn::new(c::JMP | c::JGT | c::K, rng.reg(), 0, 0, rng.next_i32()));
            sites.push(slot_u32(pos));
            in_sub += 1;
        } else {
            const OPS: [u8; 6] = [c::ADD, c::SUB, c::XOR, c::OR, c::AND, c::MOV];
            let op = OPS[rng.below(6) as usize];
            let class = if rng.below(2) == 0 { c::ALU64 } else { c::ALU };
            insns.push(Insn::new(class | op | c::K, rng.reg(), 0, 0, rng.next_i32() | 1));
            sites.push(slot_u32(pos));
            in_sub += 1;
        }
        let last = sites.len() >= patches;
        if in_sub >= SUBPROG_LEN || last {
            // Close the subprogram: resolve its jumps, end with exit.
            let exit_at = insns.len();
            insns.push(Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 0));
            insns.push(Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0));
            starts.push(exit_at);
            for &j in &pending_jumps {
                // Forward or backward to an instruction start of this subprogram within MAX_SPAN.
                let ji = starts.partition_point(|&s| s < j);
                let span = 1 + rng.below(MAX_SPAN) as usize;
                let ti = if rng.below(2) == 0 { (ji + span).min(starts.len() - 1) } else { ji.saturating_sub(span) };
                insns[j].off = delta_i16(j, starts[ti]);
            }
            pending_jumps.clear();
            starts.clear();
            in_sub = 0;
            if !last {
                sub_begin = insns.len();
                subprogs.push(slot_u32(sub_begin));
            }
        }
    }
    let _ = sub_begin;
    // Main program's calls, one per subprogram.
    for (k, &at) in call_slots.iter().enumerate() {
        if let Some(&target) = subprogs.get(k + 1) {
            insns[at].imm = i32::try_from(i64::from(target) - i64::try_from(at).unwrap_or(0) - 1).unwrap_or(0);
        }
    }
    finish("seed", insns, subprogs, sites)
}

/// The kernel's `bpf_fill_rand_ld_dw` program of `len` slots (the scale test uses
/// `1_000_000 - 6`); every ld_imm64 slot is a patch site.
#[must_use]
pub fn rand_ld_dw(len: usize) -> Workload {
    let mut rng = Rng::new(0x1d_d0);
    let mut insns = Vec::with_capacity(len);
    let mut sites = Vec::with_capacity(len * 2 / 3 + 1);
    insns.push(Insn::new(c::ALU64 | c::MOV | c::K, 0, 0, 0, 0));
    while insns.len() + 3 + 4 <= len {
        let v = rng.next_u64();
        let [l0, l1, l2, l3, h0, h1, h2, h3] = v.to_le_bytes();
        sites.extend([slot_u32(insns.len()), slot_u32(insns.len() + 1)]);
        insns.push(Insn::new(c::LD_IMM64, 1, 0, 0, i32::from_le_bytes([l0, l1, l2, l3])));
        insns.push(Insn::new(0, 0, 0, 0, i32::from_le_bytes([h0, h1, h2, h3])));
        insns.push(Insn::new(c::ALU64 | c::XOR | c::X, 0, 1, 0, 0));
    }
    insns.push(Insn::new(c::ALU64 | c::MOV | c::X, 1, 0, 0, 0));
    insns.push(Insn::new(c::ALU64 | c::RSH | c::K, 1, 0, 0, 32));
    insns.push(Insn::new(c::ALU64 | c::XOR | c::X, 0, 1, 0, 0));
    insns.push(Insn::new(c::JMP | c::EXIT, 0, 0, 0, 0));
    finish("rand-ld-dw", insns, vec![0], sites)
}

fn finish(name: &'static str, insns: Vec<Insn>, starts: Vec<u32>, sites: Vec<u32>) -> Workload {
    let aux = (0..insns.len()).map(|i| Aux { orig_idx: slot_u32(i), seen: true, zext_dst: false, other: 7 }).collect();
    // Line info every 4 slots and at every subprogram start, never on an ld_imm64's second slot.
    let mut line_info = Vec::with_capacity(insns.len() / 4 + starts.len());
    let mut subprogs = Vec::with_capacity(starts.len());
    let mut sp = starts.iter().peekable();
    let mut prev_ld = false;
    for (i, insn) in insns.iter().enumerate() {
        let at_sub = sp.next_if(|&&s| s as usize == i).is_some();
        if at_sub {
            subprogs.push(Subprog { start: slot_u32(i), linfo_idx: slot_u32(line_info.len()) });
        }
        if !prev_ld && (at_sub || i % 4 == 0) {
            line_info.push(LineInfo {
                insn_off: slot_u32(i),
                file_name_off: 1,
                line_off: 1,
                line_col: slot_u32(i / 4 + 1) << 10,
            });
        }
        prev_ld = insn.is_ld_imm64() && !prev_ld;
    }
    let tables = SideTables { subprogs, line_info, ..SideTables::default() };
    let mut rng = Rng::new(BLIND_SEED);
    let (sites, site_patches): (Vec<u32>, Vec<_>) = sites
        .into_iter()
        .filter_map(|s| crate::blind::blind_site(&insns, s as usize, &mut rng).map(|p| (s, p)))
        .unzip();
    Workload { name, prog: Program { insns, aux, tables }, sites, site_patches }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfpatch_insn::{DecodeOptions, decode_program};

    fn valid(w: &Workload) {
        let p = &w.prog;
        let ops = decode_program(&p.insns, DecodeOptions::default()).unwrap();
        let starts: std::collections::HashSet<usize> = ops.iter().map(|(s, _)| s.0).collect();
        for (s, _) in &ops {
            if let Some(t) = p.insns[s.0].abs_target(s.0) {
                let t = usize::try_from(t).unwrap();
                assert!(starts.contains(&t), "slot {s}: target {t} is not an instruction start");
            }
        }
        let lines = &p.tables.line_info;
        assert!(lines.windows(2).all(|p| p[0].insn_off < p[1].insn_off));
        assert!(lines.iter().all(|l| starts.contains(&(l.insn_off as usize))));
        for s in &p.tables.subprogs {
            assert_eq!(lines[s.linfo_idx as usize].insn_off, s.start, "subprog {s:?} has no line");
        }
        assert!(w.sites.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(p.aux.len(), p.insns.len());
    }

    #[test]
    fn seed_is_a_valid_program_with_the_requested_sites() {
        for p in [1, 100, 15_000] {
            let w = seed(p);
            valid(&w);
            assert!(w.patches() == p, "{} != {p}", w.patches());
            assert_eq!(w.prog.tables.subprogs.len(), p / SUBPROG_LEN + 1);
        }
        // Jumps go both ways.
        let w = seed(15_000);
        let (fwd, back): (Vec<_>, Vec<_>) =
            w.prog.insns.iter().filter(|i| i.code == c::JMP | c::JGT | c::K).map(|i| i.off).partition(|&o| o >= 0);
        assert!(fwd.len() > 100 && back.len() > 100);
    }

    #[test]
    fn rand_ld_dw_matches_the_kernel_shape() {
        let w = rand_ld_dw(1_000_000 - 6);
        valid(&w);
        assert_eq!(w.prog.insns.len(), 1_000_000 - 6 - 2); // whole triples only
        assert_eq!(w.patches() % 2, 0);
        assert!(w.patches() > 660_000);
    }
}
