//! `bpfpatch rewrite`: rewrite every program of an object (or a bare image) with a pass
//! pipeline through the patching engine, and report per section what changed.

use crate::input::{self, Kind};
use crate::passes_args;
use anyhow::{Context, Result, bail};
use bpfpatch_cli::pipeline::{self, ProgramStats};
use bpfpatch_insn::slots_to_bytes;
use bpfpatch_object::{ProgramInfo, ProgramReport, RewriteOptions, Rewriter, reloc_type};
use bpfpatch_passes::OutputKind;
use bpfpatch_patch::PatchList;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `bpfpatch rewrite`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The input: an ELF object, or with `--raw` a bare image.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Where to write the result (an object, or with `--raw` an image in the same byte order).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// The passes (a comma-separated list; see --help).
    #[arg(
        long,
        value_name = "LIST",
        value_parser = passes_args::parse_list,
        long_help = passes_args::help("The passes", "rewrite nothing (the output's sections are the input's)")
    )]
    pub passes: String,
    /// Add constant blinding to the pipeline (an xlated pass: needs --xlated).
    #[arg(long)]
    pub blind: bool,
    /// Write the kernel's post-verifier (xlated) form, as `bpftool prog dump xlated` shows it:
    /// allows the kernel's passes (kernel-dce, ctx, fixups, zext, rnd-hi32, blind) and their internal
    /// encodings; `all` then means dce,fixups,zext,rnd-hi32. The output says it is xlated (an
    /// object gets a `.bpfpatch.xlated` note section, a `--raw` image a leading marker slot that
    /// no loader accepts), so that `disasm` and `check` accept its internal forms and `load`
    /// refuses it. Without it the output is loadable
    /// (uapi encodings only, what a loader hands to the kernel): passes dce and lower-v4, `all`
    /// meaning dce (plus lower-v4 for cpu-v4 programs).
    #[arg(long)]
    pub xlated: bool,
    /// The context layout of the `ctx` pass: a JSON file of fields (program-view offset and
    /// size, runtime offset and size, writable) and an optional prologue.
    #[arg(long, value_name = "FILE")]
    pub ctx_layout: Option<PathBuf>,
    /// Read IN as a bare instruction image and write OUT as one.
    #[arg(long)]
    pub raw: bool,
    /// With `--raw`: the image is big-endian.
    #[arg(long, requires = "raw")]
    pub big_endian: bool,
    /// Fail when a jump no longer fits its offset field instead of relaxing it (cpu v4 `gotol`).
    #[arg(long)]
    pub no_relax: bool,
    /// Print a JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One section's line of the report.
#[derive(Debug, Default, Serialize)]
struct SectionRow {
    section: String,
    slots_before: usize,
    slots_after: usize,
    patched: usize,
    inserted: usize,
    deleted: usize,
    relaxed: usize,
    relocs_dropped: usize,
    core_relos_dropped: usize,
    line_info_dropped: usize,
    /// Instructions a pass left as they were by policy (`LD_ABS`/`LD_IND` with bpf-to-bpf calls).
    skipped: usize,
    time_us: u128,
}

/// A relocation that went away with its instruction.
#[derive(Debug, Serialize)]
struct DroppedRow {
    section: String,
    slot: usize,
    #[serde(rename = "type")]
    r_type: &'static str,
    symbol: String,
}

impl SectionRow {
    fn of(r: &ProgramReport, stats: &[ProgramStats]) -> SectionRow {
        SectionRow {
            section: r.name.clone(),
            slots_before: r.slots_before,
            slots_after: r.slots_after,
            patched: r.patched,
            inserted: r.inserted,
            deleted: r.deleted,
            relaxed: r.relaxed,
            relocs_dropped: r.object.relocs_dropped.len(),
            core_relos_dropped: r.object.core_relos_dropped,
            line_info_dropped: r.object.line_info_dropped,
            skipped: stats.iter().filter(|s| s.index == r.index).map(ProgramStats::skipped).sum(),
            time_us: r.time.as_micros(),
        }
    }

    fn add(&mut self, o: &SectionRow) {
        self.slots_before += o.slots_before;
        self.slots_after += o.slots_after;
        self.patched += o.patched;
        self.inserted += o.inserted;
        self.deleted += o.deleted;
        self.relaxed += o.relaxed;
        self.relocs_dropped += o.relocs_dropped;
        self.core_relos_dropped += o.core_relos_dropped;
        self.line_info_dropped += o.line_info_dropped;
        self.skipped += o.skipped;
        self.time_us += o.time_us;
    }
}

/// Rewrites the input and writes the output; prints the report.
pub fn main(args: &Args) -> Result<ExitCode> {
    let t0 = Instant::now();
    let kind = if args.xlated { OutputKind::Xlated } else { OutputKind::Loadable };
    let layout = args.ctx_layout.as_deref().map(bpfpatch_cli::ctx_layout::read).transpose()?;
    let mut passes = pipeline::Passes::for_output(&args.passes, args.blind, kind)?.with_ctx_layout(layout);
    let names = passes.names();
    let mut run = |list: &mut PatchList, info: &ProgramInfo<'_>| passes.run(list, info);
    let path = &args.input;
    let bytes = input::read(path)?;
    let mut rw = Rewriter::new(RewriteOptions { relax: !args.no_relax });
    let (out, reports) = match input::detect(args.raw, args.big_endian, &bytes) {
        Kind::Elf => {
            let mut obj = input::object(&bytes, path)?;
            let reports = rw.rewrite_object(&mut obj, &mut run).with_context(|| path.display().to_string())?;
            if args.xlated {
                obj.mark_xlated();
            }
            (obj.write().with_context(|| path.display().to_string())?, reports)
        }
        Kind::Raw(endian) => {
            let insns = input::program_slots(Kind::Raw(endian), &bytes, path)?;
            let (new, report) =
                rw.rewrite_image(&insns, endian, &mut run).with_context(|| path.display().to_string())?;
            let image = slots_to_bytes(&new, endian);
            // Xlated output, or a marked input, stays marked: its first slot says so.
            let marked = args.xlated || input::raw_xlated(Kind::Raw(endian), &bytes);
            (if marked { bpfpatch_object::xlated::add_raw_marker(&image) } else { image }, vec![report])
        }
        Kind::DataFile => bail!("{}: rewrite reads an ELF object or, with --raw, a bare image", path.display()),
    };
    crate::out::write(&args.output, &out)?;
    let elapsed = t0.elapsed();
    let rows: Vec<SectionRow> = reports.iter().map(|r| SectionRow::of(r, passes.stats())).collect();
    let mut total = SectionRow { section: "total".into(), ..SectionRow::default() };
    rows.iter().for_each(|r| total.add(r));
    if args.json {
        let dropped: Vec<DroppedRow> = reports
            .iter()
            .flat_map(|r| {
                r.object.relocs_dropped.iter().map(|d| DroppedRow {
                    section: r.name.clone(),
                    slot: d.slot,
                    r_type: reloc_type::name(d.r_type),
                    symbol: d.symbol.clone(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "input": path,
            "output": args.output,
            "passes": names,
            "sections": rows,
            "total": total,
            "relocs_dropped": dropped,
            "time_ms": elapsed.as_secs_f64() * 1e3,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let mut s = format!(
            "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
            "section", "before", "after", "patched", "inserted", "deleted", "relaxed", "relocs-"
        );
        for r in rows.iter().chain(std::iter::once(&total)) {
            s.push_str(&format!(
                "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
                r.section, r.slots_before, r.slots_after, r.patched, r.inserted, r.deleted, r.relaxed, r.relocs_dropped
            ));
        }
        for r in rows.iter().filter(|r| r.skipped > 0) {
            s.push_str(&format!(
                "{}: {} LD_ABS/LD_IND left as they are (a program with bpf-to-bpf calls: not lowered)\n",
                r.section, r.skipped
            ));
        }
        for r in &reports {
            for d in &r.object.relocs_dropped {
                s.push_str(&format!(
                    "{}: relocation {} {} at slot {} dropped with its instruction\n",
                    r.name,
                    reloc_type::name(d.r_type),
                    d.symbol,
                    d.slot
                ));
            }
        }
        let list = if names.is_empty() { "none".to_string() } else { names.join(",") };
        s.push_str(&format!(
            "{} -> {}: {} program(s), passes {list}, {:.3} ms\n",
            path.display(),
            args.output.display(),
            reports.len(),
            elapsed.as_secs_f64() * 1e3
        ));
        crate::out::print(&s)?;
    }
    Ok(ExitCode::SUCCESS)
}
