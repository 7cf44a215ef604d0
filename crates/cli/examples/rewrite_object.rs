//! The command's pipeline from your own Rust code: rewrite every program of a clang-built BPF
//! object with a pass list, write the result, and say per program which pass changed what.
//!
//! ```sh
//! cargo run --release -p bpfpatch-cli --example rewrite_object -- IN.o OUT.o [PASSES]
//! cargo run --release -p bpfpatch-cli --example rewrite_object -- \
//!     crates/object/tests/data/prog-el.o /tmp/out.o all
//! ```
//!
//! `PASSES` is a loadable pass list as `bpfpatch rewrite` takes it (default `all`: dce, plus
//! lower-v4 for cpu-v4 programs); the output is what a loader hands to the kernel.

use anyhow::{Context, Result, bail};
use bpfpatch_cli::pipeline::Passes;
use bpfpatch_cli::provenance::Change;
use bpfpatch_object::{BpfObject, RewriteOptions, Rewriter};
use bpfpatch_passes::OutputKind;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, output, list) = match args.as_slice() {
        [i, o] => (i, o, "all"),
        [i, o, p] => (i, o, p.as_str()),
        _ => bail!("usage: rewrite_object IN.o OUT.o [PASSES]"),
    };
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {input}"))?;
    let mut obj = BpfObject::parse(&bytes).with_context(|| input.clone())?;
    let mut passes = Passes::for_output(list, false, OutputKind::Loadable)?.explaining();
    // What calls between sections pass, read before any program changes.
    passes.for_object(&obj);
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    let mut lines = Vec::new();
    for prog in 0..obj.programs().len() {
        let before = obj.programs()[prog].insns().to_vec();
        let r = rw.rewrite_program(&mut obj, prog, &mut |list, info| passes.run(list, info))?;
        let Some(rec) = passes.stats().iter().find(|s| s.index == prog).and_then(|s| s.provenance.as_ref()) else {
            continue;
        };
        let rows = rec.changes(&before, &r.patched);
        let count = |c: Change| rows.iter().filter(|x| x.change == c).count();
        lines.push(format!(
            "{}: {} -> {} slots; {} kept, {} replaced, {} inserted, {} deleted",
            r.report.name,
            r.report.slots_before,
            r.report.slots_after,
            count(Change::Kept),
            count(Change::Replaced),
            count(Change::Inserted),
            count(Change::Deleted),
        ));
    }
    std::fs::write(output, obj.write()?).with_context(|| format!("cannot write {output}"))?;
    // A closed stdout is not worth a panic here: the output file is written.
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            break;
        }
    }
    Ok(())
}
