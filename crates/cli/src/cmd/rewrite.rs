//! `bpfpatch rewrite`: rewrite every program of an object (or a bare image) with a pass
//! pipeline through the patching engine, and report per section what changed.

use crate::explain::Explained;
use crate::input::{self, Kind};
use crate::passes_args;
use anyhow::{Context, Result, bail};
use bpfpatch_cli::pipeline::{self, ProgramStats};
use bpfpatch_insn::Insn;
use bpfpatch_insn::slots_to_bytes;
use bpfpatch_object::{BpfObject, ProgramInfo, ProgramReport, RewriteOptions, Rewriter, Rewritten, reloc_type};
use bpfpatch_passes::{OutputKind, PassStats};
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
    /// How `fixups` expands `may_goto`: as the target kernel's JIT does.
    #[arg(long, value_enum, value_name = "FORM", default_value_t = passes_args::MayGoto::Timed)]
    pub may_goto: passes_args::MayGoto,
    /// Read IN as a bare instruction image and write OUT as one.
    #[arg(long)]
    pub raw: bool,
    /// With `--raw`: the image is big-endian.
    #[arg(long, requires = "raw")]
    pub big_endian: bool,
    /// Fail when a jump no longer fits its offset field instead of relaxing it (cpu v4 `gotol`).
    #[arg(long)]
    pub no_relax: bool,
    /// Also print, per program, every instruction's old slot -> new slot, what happened to it
    /// (kept, `~` replaced, `+` inserted, `-` deleted) and the pass that asked for it.
    #[arg(long)]
    pub explain: bool,
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
    /// What each pass did here, in run order.
    passes: Vec<PassRow>,
}

/// What one pass did (to one program, or summed over the object).
#[derive(Debug, Default, Clone, Serialize)]
struct PassRow {
    pass: &'static str,
    patched: usize,
    prepatched: usize,
    deleted: usize,
    rewritten: usize,
    skipped: usize,
}

impl PassRow {
    fn add(&mut self, s: &PassStats) {
        self.patched += s.patched;
        self.prepatched += s.prepatched;
        self.deleted += s.deleted;
        self.rewritten += s.rewritten;
        self.skipped += s.skipped;
    }
}

/// Per pass, summed over `stats`, in run order.
fn pass_rows<'a>(stats: impl Iterator<Item = &'a ProgramStats>) -> Vec<PassRow> {
    let mut rows: Vec<PassRow> = Vec::new();
    for (pass, st) in stats.flat_map(|p| &p.stats) {
        let i = match rows.iter().position(|r| r.pass == pass.name()) {
            Some(i) => i,
            None => {
                rows.push(PassRow { pass: pass.name(), ..PassRow::default() });
                rows.len() - 1
            }
        };
        rows[i].add(st);
    }
    rows
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
            passes: pass_rows(stats.iter().filter(|s| s.index == r.index)),
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

/// With `--explain`: a program's instructions before, and the engine's result.
type Before = (Vec<Insn>, Rewritten);

/// Rewrites the input and writes the output; prints the report.
pub fn main(args: &Args) -> Result<ExitCode> {
    let t0 = Instant::now();
    let kind = if args.xlated { OutputKind::Xlated } else { OutputKind::Loadable };
    let layout = args.ctx_layout.as_deref().map(bpfpatch_cli::ctx_layout::read).transpose()?;
    let mut passes = pipeline::Passes::for_output(&args.passes, args.blind, kind)?
        .with_ctx_layout(layout)
        .with_may_goto(args.may_goto.into());
    if args.explain {
        passes = passes.explaining();
    }
    let names = passes.names();
    let path = &args.input;
    let bytes = input::read(path)?;
    let mut rw = Rewriter::new(RewriteOptions { relax: !args.no_relax });
    let at = || path.display().to_string();
    // Per program: its report, and with --explain its original and rewritten instructions.
    let mut done: Vec<(ProgramReport, Option<Before>)> = Vec::new();
    let out = match input::detect(args.raw, args.big_endian, &bytes) {
        Kind::Elf => {
            // The object keeps the file's bytes (no copy); with --explain the rewritten
            // instructions are also kept beside the object's, else they move into it.
            let mut obj = BpfObject::parse_vec(bytes).with_context(at)?;
            // What calls into `.text` pass, read before any program changes.
            passes.for_object(&obj);
            let mut run = |list: &mut PatchList, info: &ProgramInfo<'_>| passes.run(list, info);
            for prog in 0..obj.programs().len() {
                if args.explain {
                    let orig = obj.programs()[prog].insns().to_vec();
                    let r = rw.rewrite_program(&mut obj, prog, &mut run).with_context(at)?;
                    done.push((r.report.clone(), Some((orig, r))));
                } else {
                    done.push((rw.rewrite_program_report(&mut obj, prog, &mut run).with_context(at)?, None));
                }
            }
            if args.xlated {
                obj.mark_xlated();
            }
            obj.write().with_context(at)?
        }
        Kind::Raw(endian) => {
            let mut run = |list: &mut PatchList, info: &ProgramInfo<'_>| passes.run(list, info);
            let insns = input::program_slots(Kind::Raw(endian), &bytes, path)?;
            let r = rw.rewrite_image_patched(&insns, endian, &mut run).with_context(at)?;
            let out = slots_to_bytes(&r.patched.program.insns, endian);
            done.push((r.report.clone(), args.explain.then_some((insns, r))));
            // Xlated output, or a marked input, stays marked: its first slot says so.
            let marked = args.xlated || input::raw_xlated(Kind::Raw(endian), &bytes);
            if marked { bpfpatch_object::xlated::add_raw_marker(&out) } else { out }
        }
        Kind::DataFile => bail!("{}: rewrite reads an ELF object or, with --raw, a bare image", path.display()),
    };
    let explained: Vec<Explained> = done
        .iter()
        .filter_map(|(report, x)| {
            let (orig, r) = x.as_ref()?;
            let stats = passes.stats().iter().find(|s| s.index == report.index)?;
            let changes = stats.provenance.as_ref()?.changes(orig, &r.patched);
            Some(Explained::new(&report.name, orig, &r.patched.program.insns, &changes))
        })
        .collect();
    let reports: Vec<ProgramReport> = done.into_iter().map(|d| d.0).collect();
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
        // DWARF sections that could not be remapped and were dropped (never left stale).
        let dwarf_dropped: Vec<serde_json::Value> = reports
            .iter()
            .flat_map(|r| {
                r.object
                    .dwarf_dropped
                    .iter()
                    .map(|d| serde_json::json!({ "program": r.name, "section": d.section, "reason": d.reason }))
            })
            .collect();
        let v = serde_json::json!({
            "input": path,
            "output": args.output,
            "passes": names,
            "sections": rows,
            "total": total,
            "pass_totals": pass_rows(passes.stats().iter()),
            "relocs_dropped": dropped,
            "explain": explained,
            "dwarf_dropped": dwarf_dropped,
            "time_ms": elapsed.as_secs_f64() * 1e3,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        // The section column as wide as the longest name.
        let w = rows.iter().map(|r| r.section.len()).max().unwrap_or(0).max("section".len());
        let mut s = format!(
            "{:<w$} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>14}\n",
            "section", "before", "after", "patched", "inserted", "deleted", "relaxed", "relocs_dropped"
        );
        for r in rows.iter().chain(std::iter::once(&total)) {
            s.push_str(&format!(
                "{:<w$} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>14}\n",
                r.section, r.slots_before, r.slots_after, r.patched, r.inserted, r.deleted, r.relaxed, r.relocs_dropped
            ));
        }
        let per_pass = pass_rows(passes.stats().iter());
        if !per_pass.is_empty() {
            let w = per_pass.iter().map(|r| r.pass.len()).max().unwrap_or(0).max("pass".len());
            s.push_str(&format!(
                "\n{:<w$} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                "pass", "patched", "prepatched", "deleted", "rewritten", "skipped"
            ));
            for r in &per_pass {
                s.push_str(&format!(
                    "{:<w$} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                    r.pass, r.patched, r.prepatched, r.deleted, r.rewritten, r.skipped
                ));
            }
        }
        for e in &explained {
            s.push('\n');
            s.push_str(&e.render());
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
        for r in &reports {
            for d in &r.object.dwarf_dropped {
                s.push_str(&format!(
                    "{}: DWARF section {} dropped (its addresses could not be remapped: {})\n",
                    r.name, d.section, d.reason
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
