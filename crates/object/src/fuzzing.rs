//! Fuzzing oracle of the object layer, shared by `fuzz/` (libFuzzer) and the smoke test.
//!
//! [`elf`] takes arbitrary bytes (mutated objects) and **panics when a property is violated**.
//! Not part of the stable API: compiled only with the `fuzzing` feature.
// An oracle's job is to panic on a broken property.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use crate::{BpfObject, EngineError, ProgramInfo, RewriteOptions, Rewriter, check};
use bpfpatch_insn::fuzzing::Rng;
use bpfpatch_insn::{Insn, Slot, opcode as c};
use bpfpatch_patch::{OffsetMap, PatchBuf, PatchList, PrepatchMode};
use core::convert::Infallible;

/// `goto +0`: the no-op the rewrite inserts.
const NOP: Insn = Insn::new(c::JMP | c::JA, 0, 0, 0, 0);

/// The object pipeline on `data`: parse, check, write, re-parse, check; then rewrite through the
/// engine (identity, and a no-op `goto +0` inserted before every `k`-th instruction), write,
/// re-parse, check. Properties:
/// - nothing panics; whatever parses, writes (or returns a typed error);
/// - an unchanged object writes back byte-identical, and re-parses to the same programs, section
///   contents and [`check`] findings;
/// - after each rewrite the object writes (when the input passed [`check`]: always) and the
///   written object re-parses; if the input passed [`check`], so does the
///   output, and the output's control flow is the input's: every original instruction is still
///   there (same opcode, registers and, unless relocated, immediate), every jump lands on the
///   run of inserted no-ops that falls through to its original target, and every relocation
///   follows its instruction with the same type and symbol.
///
/// # Panics
/// When a property is violated.
pub fn elf(data: &[u8]) {
    let Ok(obj) = BpfObject::parse(data) else { return };
    let findings = check(&obj);
    for p in 0..obj.programs().len() {
        let _ = obj.engine_view(p);
        let _ = obj.subprograms(p);
        let _ = obj.relocated_slots(p);
        for li in obj.line_info(p) {
            let _ = obj.line_text(li);
        }
    }
    // The type table reads or is a typed error; every chain of typedefs and modifiers ends.
    if let Some(Ok(types)) = obj.btf_types() {
        for id in 0..u32::try_from(types.len()).unwrap_or(u32::MAX) {
            let t = types.get(id).expect("every id below len() is a type");
            let _ = (t.members(), t.enum_values(), t.array(), types.skip_mods_and_typedefs(id));
        }
    }
    if let Ok(out) = obj.write() {
        // `parse` refuses overlapping sections, so the layout is the input's.
        assert!(out == data, "an unchanged object does not write back byte-identical");
        let again = BpfObject::parse(&out).unwrap_or_else(|e| panic!("identity output does not re-parse: {e}"));
        assert_eq!(check(&again), findings, "identity output checks differently");
        assert_eq!(again.programs(), obj.programs(), "identity output has other programs");
        for i in 0..obj.section_headers().len() {
            assert_eq!(again.original_section_data(i), obj.original_section_data(i), "section {i} changed");
        }
    }
    let clean = findings.is_empty();
    // The stride of the no-op insertion comes from the input, so it varies with it.
    let k = 1 + data.iter().fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(usize::from(b))) % 4;
    for stride in [0, k] {
        rewrite(&obj, stride, clean);
    }
}

/// Rewrites every program of `obj`, inserting a no-op before every `stride`-th instruction
/// start (none when `stride` is 0), and checks the result (see [`elf`]).
fn rewrite(obj: &BpfObject, stride: usize, clean: bool) {
    let mut o = obj.clone();
    let mut rw = Rewriter::new(RewriteOptions::default());
    let mut maps: Vec<Option<OffsetMap>> = Vec::with_capacity(o.programs().len());
    let mut nops = |list: &mut PatchList, info: &ProgramInfo<'_>| -> Result<(), Infallible> {
        if stride == 0 {
            return Ok(());
        }
        let starts = starts(&info.program.insns);
        let buf = PatchBuf::from_insns(&[NOP]);
        for s in starts.iter().step_by(stride) {
            if let Ok(node) = list.node_of(Slot(*s)) {
                // Refusals (e.g. a malformed program) surface at linearization.
                let _ = list.prepatch(node, &buf, PrepatchMode::LandOnInserted);
            }
        }
        Ok(())
    };
    for p in 0..o.programs().len() {
        match rw.rewrite_program(&mut o, p, &mut nops) {
            Ok(r) => maps.push(Some(r.patched.map)),
            Err(e @ (EngineError::TargetDisagreement { .. } | EngineError::RelocatedRewritten { .. })) if clean => {
                panic!("program {p} (stride {stride}): internal inconsistency on a clean object: {e}")
            }
            Err(_) => maps.push(None),
        }
    }
    let out = match o.write() {
        Ok(out) => out,
        Err(e) => {
            // `check` reports whatever would stop the write (e.g. an unattached `.rel.BTF.ext`).
            assert!(!clean, "stride {stride}: a rewritten clean object does not write: {e}");
            return;
        }
    };
    let again =
        BpfObject::parse(&out).unwrap_or_else(|e| panic!("rewritten output (stride {stride}) does not re-parse: {e}"));
    if !clean {
        return;
    }
    let after = check(&again);
    assert!(after.is_empty(), "stride {stride}: a clean object checks with findings after the rewrite: {after:?}");
    for (p, map) in maps.iter().enumerate() {
        let Some(map) = map else { continue };
        same_control_flow(obj, &again, p, map, stride);
    }
}

/// Instruction starts of `insns` (ld_imm64 takes two slots).
fn starts(insns: &[Insn]) -> Vec<usize> {
    let mut v = Vec::with_capacity(insns.len());
    let mut i = 0;
    while i < insns.len() {
        v.push(i);
        i += if insns[i].is_ld_imm64() { 2 } else { 1 };
    }
    v
}

/// Program `p` of `after` is program `p` of `before` with no-ops inserted (see [`elf`]).
fn same_control_flow(before: &BpfObject, after: &BpfObject, p: usize, map: &OffsetMap, stride: usize) {
    let (old, new) = (&before.programs()[p], &after.programs()[p]);
    let (o, n) = (old.insns(), new.insns());
    let ctx = || format!("program {} ({}), stride {stride}", p, old.name());
    let relocated: Vec<usize> = old.relocs().iter().map(|r| r.slot).collect();
    let mut is_orig = vec![false; n.len()];
    let old_starts = starts(o);
    let mut to_new = vec![usize::MAX; o.len() + 1];
    for &s in &old_starts {
        let j = map.insn(Slot(s)).unwrap_or_else(|| panic!("{}: old slot {s} lost", ctx())).0;
        assert!(j < n.len(), "{}: old slot {s} maps past the end", ctx());
        is_orig[j] = true;
        to_new[s] = j;
        if o[s].is_ld_imm64() {
            assert!(j + 1 < n.len(), "{}: ld_imm64 at {s} lost its second slot", ctx());
            is_orig[j + 1] = true;
        }
    }
    to_new[o.len()] = n.len();
    for (j, insn) in n.iter().enumerate() {
        assert!(is_orig[j] || *insn == NOP, "{}: slot {j} is neither original nor the inserted no-op: {insn:?}", ctx());
    }
    // Where execution continues from new slot `t`: past the inserted no-ops.
    let through = |mut t: usize| {
        while t < n.len() && !is_orig[t] {
            t += 1;
        }
        t
    };
    for &s in &old_starts {
        let (a, b) = (o[s], n[to_new[s]]);
        let reloc = relocated.contains(&s);
        assert!(
            a.code == b.code && a.dst() == b.dst() && a.src() == b.src(),
            "{}: old slot {s} {a:?} became {b:?}",
            ctx()
        );
        if a.is_ld_imm64() {
            assert_eq!(o[s + 1], n[to_new[s] + 1], "{}: second slot of the ld_imm64 at {s}", ctx());
        }
        match a.target_field() {
            // Relocated calls and addresses: the relocation check below and `check` cover them.
            Some(_) if reloc => {}
            Some(_) => {
                let t = usize::try_from(a.abs_target(s).unwrap_or(-1)).unwrap_or(usize::MAX);
                assert!(t < o.len() && to_new[t] != usize::MAX, "{}: old target of {s} not an instruction", ctx());
                let t2 = usize::try_from(b.abs_target(to_new[s]).unwrap_or(-1)).unwrap_or(usize::MAX);
                assert!(t2 <= to_new[t], "{}: slot {s}'s target {t} now {t2}, after {}", ctx(), to_new[t]);
                assert_eq!(through(t2), to_new[t], "{}: slot {s}'s target {t} now {t2}, reaching elsewhere", ctx());
            }
            // A relocated instruction's immediate is the relocation's addend, which the object
            // layer re-derives from the new layout (`check` validates where it lands).
            None if reloc => assert_eq!(a.off, b.off, "{}: old slot {s} offset", ctx()),
            None => assert_eq!((a.off, a.imm), (b.off, b.imm), "{}: old slot {s} fields", ctx()),
        }
    }
    let mut want: Vec<(usize, u32, u32)> = old.relocs().iter().map(|r| (to_new[r.slot], r.r_type, r.symbol)).collect();
    let mut got: Vec<(usize, u32, u32)> = new.relocs().iter().map(|r| (r.slot, r.r_type, r.symbol)).collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "{}: relocations did not follow their instructions", ctx());
}

/// The bounded smoke run of an object oracle inside `cargo test`: `oracle` on `committed`, the
/// committed inputs of fuzz target `target` (the test kit's `committed_inputs`; the test
/// objects of this crate when there are none), then on `n` mutations of them (byte and bit
/// flips, words with boundary values, truncations, copied chunks) from the one generator
/// ([`Rng`]) seeded with `seed`. A failing mutation is written to `<temp dir>/<target>-smoke-failure` (for
/// `fuzz/regressions/<target>/`) before the panic goes on. Returns how many committed inputs
/// ran.
///
/// # Panics
/// When the oracle does.
pub fn smoke_objects(target: &str, committed: Vec<Vec<u8>>, oracle: fn(&[u8]), n: usize, seed: u64) -> usize {
    let mut seeds = committed;
    for data in &seeds {
        oracle(data);
    }
    let committed = seeds.len();
    if seeds.is_empty() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        for name in ["prog-el.o", "prog-eb.o", "calls-el.o", "calls-eb.o"] {
            seeds.push(std::fs::read(format!("{data}/{name}")).unwrap_or_default());
        }
    }
    let mut rng = Rng::seeded(seed);
    let mut next = move || usize::try_from(rng.next() >> 1).unwrap_or(usize::MAX);
    const WORDS: [u64; 8] = [0, 1, 7, 8, 0x7fff_ffff, 0xffff_ffff, u64::MAX, 0x8000_0000_0000_0000];
    for _ in 0..n {
        let mut d = seeds[next() % seeds.len()].clone();
        if d.is_empty() {
            continue;
        }
        for _ in 0..1 + next() % 3 {
            let at = next() % d.len();
            match next() % 5 {
                0 => d[at] = u8::try_from(next() % 256).unwrap_or(0),
                1 => d[at] ^= 1 << (next() % 8),
                2 => {
                    let w = WORDS[next() % WORDS.len()].to_le_bytes();
                    let k = [1usize, 2, 4, 8][next() % 4];
                    let end = (at + k).min(d.len());
                    d[at..end].copy_from_slice(&w[..end - at]);
                }
                3 => d.truncate(at),
                _ => {
                    let from = next() % d.len();
                    let end = (from + 8).min(d.len());
                    let chunk = d[from..end].to_vec();
                    let e2 = (at + chunk.len()).min(d.len());
                    d[at..e2].copy_from_slice(&chunk[..e2 - at]);
                }
            }
            if d.is_empty() {
                break;
            }
        }
        if let Err(e) = std::panic::catch_unwind(|| oracle(&d)) {
            let path = std::env::temp_dir().join(format!("{target}-smoke-failure"));
            let _ = std::fs::write(&path, &d);
            eprintln!("failing input written to {}", path.display());
            std::panic::resume_unwind(e);
        }
    }
    committed
}
