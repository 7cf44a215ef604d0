//! Fuzzing oracle of `bpfpatch rewrite`'s path, shared by `fuzz/` (libFuzzer) and the smoke
//! test: the pass pipeline run on every program of an object (or a bare image) through the
//! object rewriter, then written and read back.
//!
//! [`object_pipeline`] takes arbitrary bytes (mutated objects) and **panics when a property is
//! violated**. Not part of the stable API: compiled only with the `fuzzing` feature.
// An oracle's job is to panic on a broken property.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use crate::pipeline::Passes;
use bpfpatch_insn::{DecodeOptions, Endian, slots_from_bytes};
use bpfpatch_object::{BpfObject, ProgramInfo, RewriteOptions, Rewriter, check, check_insns, check_with};
use bpfpatch_patch::PatchList;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static STATS: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

/// [`object_pipeline`]'s counters since the process started: inputs rewritten (objects and
/// images), rewritten objects written and re-parsed, and outputs of clean inputs checked.
pub fn object_pipeline_stats() -> [usize; 3] {
    core::array::from_fn(|i| STATS[i].load(Relaxed))
}

/// The pipelines the oracle picks from (`--passes` lists); each may be combined with `--blind`.
const PIPELINES: [&str; 8] =
    ["all", "dce", "ctx", "lower-v4", "fixups", "zext", "rnd-hi32", "dce,ctx,lower-v4,fixups,zext,rnd-hi32"];

/// `bpfpatch rewrite --passes P [--blind]` on `data` (`ctx` with `--ctx-layout
/// doc/ctx-layout.json`), with `P` and `--blind` chosen by a hash of `data`: an ELF object when it parses, else a bare little-endian image. Properties:
/// - nothing panics: the rewrite succeeds or returns a typed error;
/// - a rewritten object writes, and the written object re-parses with the same sections (names,
///   in order) and the same number of programs;
/// - when the input passed [`check`] (an image: [`check_insns`]), the output passes
///   [`check_with`] (`check_insns`) accepting the kernel-internal forms the passes emit (AX,
///   zero-extension): every jump, call, line and func record and relocation is on an
///   instruction of its program.
///
/// # Panics
/// When a property is violated.
pub fn object_pipeline(data: &[u8]) {
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let list = PIPELINES[usize::try_from(h % PIPELINES.len() as u64).unwrap_or(0)];
    let blind = h & 0x100 != 0;
    // The ctx pass converts with the toy layout of doc/ctx-layout.json (most accesses of real
    // programs then fall outside it: a typed error; the others must rewrite cleanly).
    let layout = list.contains("ctx").then(|| {
        crate::ctx_layout::parse(include_str!("../../../doc/ctx-layout.json")).expect("doc/ctx-layout.json parses")
    });
    let mut passes = Passes::new(list, blind).expect("built-in pass list").with_ctx_layout(layout);
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    match BpfObject::parse(data) {
        Ok(mut obj) => {
            passes.for_object(&obj);
            let mut run = |l: &mut PatchList, info: &ProgramInfo<'_>| passes.run(l, info);
            // Every CO-RE record has a description (what `disasm` prints), whatever it holds.
            if let (Some(btf), Some(Ok(types))) = (obj.btf(), obj.btf_types()) {
                for p in 0..obj.programs().len() {
                    for c in obj.core_relos(p) {
                        assert!(!crate::core_text::describe(btf, &types, c).is_empty());
                    }
                }
            }
            let clean = check(&obj).is_empty();
            let names = section_names(&obj);
            let programs = obj.programs().len();
            if rw.rewrite_object(&mut obj, &mut run).is_err() {
                return;
            }
            STATS[0].fetch_add(1, Relaxed);
            let out = match obj.write() {
                Ok(out) => out,
                Err(e) => {
                    assert!(!clean, "{list} blind={blind}: a rewritten clean object does not write: {e}");
                    return;
                }
            };
            let again = BpfObject::parse(&out)
                .unwrap_or_else(|e| panic!("{list} blind={blind}: the rewritten object does not re-parse: {e}"));
            assert_eq!(section_names(&again), names, "{list} blind={blind}: sections changed");
            assert_eq!(again.programs().len(), programs, "{list} blind={blind}: programs changed");
            STATS[1].fetch_add(1, Relaxed);
            if clean {
                STATS[2].fetch_add(1, Relaxed);
                let findings = check_with(&again, DecodeOptions::INTERNAL);
                assert!(findings.is_empty(), "{list} blind={blind}: a clean object rewrites into {findings:?}");
            }
        }
        Err(_) => {
            let Ok(insns) = slots_from_bytes(data, Endian::Little) else { return };
            let clean = check_insns(&insns, DecodeOptions::default()).is_empty();
            let mut run = |l: &mut PatchList, info: &ProgramInfo<'_>| passes.run(l, info);
            let Ok((new, _)) = rw.rewrite_image(&insns, Endian::Little, &mut run) else { return };
            STATS[0].fetch_add(1, Relaxed);
            if clean {
                STATS[2].fetch_add(1, Relaxed);
                let findings = check_insns(&new, DecodeOptions::INTERNAL);
                assert!(findings.is_empty(), "{list} blind={blind}: a clean image rewrites into {findings:?}");
            }
        }
    }
}

fn section_names(obj: &BpfObject) -> Vec<String> {
    (0..obj.section_headers().len()).map(|i| obj.section_name(i).unwrap_or_default().to_string()).collect()
}
