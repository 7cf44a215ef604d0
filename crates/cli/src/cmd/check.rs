//! `bpfpatch check`: structural validation of objects (or bare images) — jumps in range and not
//! into an ld_imm64, line info sorted and on instruction starts, func_info on subprogram
//! starts, relocations on the right instruction kinds (see `bpfpatch_object::check`).

use crate::input::{self, Kind};
use anyhow::{Result, bail};
use bpfpatch_insn::DecodeOptions;
use bpfpatch_object::{Finding, SectionRef, check_insns, check_with};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `bpfpatch check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// ELF objects to validate (with `--raw`: bare images; conformance `.data` files are read too).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Read each FILE as a bare instruction image (8-byte slots, no header).
    #[arg(long)]
    pub raw: bool,
    /// With `--raw`: the images are big-endian.
    #[arg(long, requires = "raw")]
    pub big_endian: bool,
    /// Accept kernel-internal forms (AX, tail_call, nospec, zero-extension), as rewriting passes
    /// emit them (implied for an input marked xlated by `rewrite --xlated`).
    #[arg(long)]
    pub internal: bool,
    /// Print a JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One finding in the report.
#[derive(Debug, Serialize)]
struct FindingRow {
    section: String,
    message: String,
}

/// The result for one file.
#[derive(Debug, Serialize)]
struct FileReport {
    file: PathBuf,
    ok: bool,
    /// Why the file could not be read or parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    programs: usize,
    slots: usize,
    findings: Vec<FindingRow>,
}

/// Kernel-internal forms are accepted with `--internal` or in an input marked xlated.
fn decode_opts(args: &Args, xlated: bool) -> DecodeOptions {
    if args.internal || xlated { DecodeOptions::INTERNAL } else { DecodeOptions::default() }
}

fn check_file(path: &Path, args: &Args) -> Result<(usize, usize, Vec<Finding>)> {
    let bytes = input::read(path)?;
    match input::detect(args.raw, args.big_endian, &bytes) {
        Kind::Elf => {
            let obj = input::object(&bytes, path)?;
            let slots = obj.programs().iter().map(|p| p.insns().len()).sum();
            Ok((obj.programs().len(), slots, check_with(&obj, decode_opts(args, obj.is_xlated()))))
        }
        kind => {
            let insns = input::program_slots(kind, &bytes, path)?;
            let opts = decode_opts(args, input::raw_xlated(kind, &bytes));
            let section = SectionRef { index: 0, name: "<image>".into() };
            let findings =
                check_insns(&insns, opts).into_iter().map(|kind| Finding { section: section.clone(), kind }).collect();
            Ok((1, insns.len(), findings))
        }
    }
}

/// Checks every file; exits 1 (with a one-line error) when any fails.
pub fn main(args: &Args) -> Result<ExitCode> {
    let bar = (args.files.len() > 1).then(|| {
        let b = ProgressBar::new(args.files.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
            b.set_style(style);
        }
        b
    });
    let mut reports = Vec::with_capacity(args.files.len());
    for f in &args.files {
        if let Some(b) = &bar {
            b.set_message(f.display().to_string());
        }
        let r = check_file(f, args);
        if args.files.len() == 1
            && let Err(e) = r
        {
            return Err(e);
        }
        reports.push(match r {
            Ok((programs, slots, findings)) => FileReport {
                file: f.clone(),
                ok: findings.is_empty(),
                error: None,
                programs,
                slots,
                findings: findings
                    .iter()
                    .map(|x| FindingRow { section: x.section.name.clone(), message: x.to_string() })
                    .collect(),
            },
            Err(e) => FileReport {
                file: f.clone(),
                ok: false,
                error: Some(format!("{e:#}")),
                programs: 0,
                slots: 0,
                findings: Vec::new(),
            },
        });
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let failed = reports.iter().filter(|r| !r.ok).count();
    let passed = reports.len() - failed;
    if args.json {
        let v = serde_json::json!({ "files": reports, "passed": passed, "failed": failed });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let mut out = String::new();
        for r in &reports {
            let name = r.file.display();
            match (&r.error, r.ok) {
                (Some(e), _) => out.push_str(&format!("{name}: error: {e}\n")),
                (None, true) => out.push_str(&format!("{name}: ok ({} programs, {} slots)\n", r.programs, r.slots)),
                (None, false) => {
                    out.push_str(&format!("{name}: {} findings\n", r.findings.len()));
                    for x in &r.findings {
                        out.push_str(&format!("  {}\n", x.message));
                    }
                }
            }
        }
        out.push_str(&format!("{passed} passed, {failed} failed\n"));
        crate::out::print(&out)?;
    }
    if failed > 0 {
        bail!("{failed} of {} files failed the check", reports.len());
    }
    Ok(ExitCode::SUCCESS)
}
