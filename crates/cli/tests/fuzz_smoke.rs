//! Bounded smoke run of the rewrite-path fuzzing oracle (`fuzz/` runs it under libFuzzer as
//! `object_pipeline`): every committed seed and reproducer under `fuzz/corpus/object_pipeline/`
//! and `fuzz/regressions/object_pipeline/`, then mutations of them. `BPFPATCH_SMOKE_CASES`
//! raises the count.

use bpfpatch_cli::fuzzing::{object_pipeline, object_pipeline_stats};
use bpfpatch_insn::fuzzing::smoke_cases;
use bpfpatch_object::fuzzing::smoke_objects;

#[test]
fn object_pipeline_oracle_smoke() {
    let n = smoke_cases(50_000);
    let seeds = bpfpatch_testkit::committed_inputs("object_pipeline");
    let committed = smoke_objects("object_pipeline", seeds, object_pipeline, n, 0x0bad_cafe_f00d_d00d);
    assert!(committed > 0, "the seed corpus fuzz/corpus/object_pipeline is missing");
    let [rewritten, written, checked] = object_pipeline_stats();
    eprintln!(
        "object_pipeline: {committed} committed objects and {n} mutations passed; {rewritten} rewritten, \
         {written} written and re-read, {checked} clean outputs checked"
    );
    assert!(checked * 10 >= n, "too few inputs were rewritten and checked ({checked} of {n})");
}
