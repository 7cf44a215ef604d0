//! `bpfpatch load`: load every program of ELF objects into the running kernel, one at a time and
//! without attaching them, and print what the verifier said (veristat's view): verdict or first
//! error line, processed instructions, xlated length, verification time; with `--passes`, the
//! same for the rewritten object side by side, and for skb/xdp programs the test-run return
//! value on a fixed 64-byte Ethernet/IPv4/UDP packet before and after.
//!
//! libbpf (through libbpf-rs) creates the maps each object declares and applies its
//! relocations; everything is closed after each program. Exit status: 1 with one line where
//! bpf() is not permitted, when a rewrite broke a program (it loaded before and not after, or
//! its return value changed), or when an object could not be opened (libbpf refused it) or
//! rewritten (counted and named, `unopened` in `--json`); 0 otherwise, programs the verifier
//! rejects included.

use crate::input;
use crate::passes_args::PassList;
use anyhow::{Context, Result, bail};
use bpfpatch_cli::pipeline;
use bpfpatch_kernel::object::{ObjectProgram, load_object, udp_packet};
use bpfpatch_kernel::{KernelError, available};
use bpfpatch_object::{BpfObject, ProgramInfo, RewriteOptions, Rewriter};
use bpfpatch_patch::PatchList;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `bpfpatch load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// ELF objects whose programs are loaded.
    #[arg(required = true, value_name = "OBJ")]
    pub objects: Vec<PathBuf>,
    #[command(flatten)]
    pub passes: PassList,
    /// Test aid (kernel fidelity of `zext`): the rewrite is the kernel's `zext` pass alone,
    /// with each zero-extension it inserts written as the uapi `w = w` (mov32 of a register to
    /// itself) instead of the kernel-internal form, so that the kernel can load the result and
    /// judge where `zext` zero-extends. Not what the kernel does (its JIT zero-extends without
    /// an instruction); only for this check.
    #[arg(long, conflicts_with_all = ["passes", "blind"])]
    pub zext_as_mov32: bool,
    /// Print JSON (one record per program) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One side (before or after the rewrite) of a program's row.
struct Side {
    verdict: String,
    insns: String,
    xlated: String,
    time_us: String,
    retval: String,
    error: Option<String>,
    json: serde_json::Value,
}

fn side(p: Option<&ObjectProgram>) -> Side {
    let dash = || "-".to_string();
    let Some(p) = p else {
        return Side {
            verdict: "missing".into(),
            insns: dash(),
            xlated: dash(),
            time_us: dash(),
            retval: dash(),
            error: Some("not in the rewritten object".into()),
            json: serde_json::json!({ "verdict": "missing" }),
        };
    };
    match &p.outcome {
        Ok(l) => {
            let s = l.stats;
            let opt = |v: Option<u128>| v.map_or_else(dash, |n| n.to_string());
            let retval = match &l.retval {
                None => dash(),
                Some(Ok(r)) => r.to_string(),
                Some(Err(e)) => format!("error: {e}"),
            };
            Side {
                verdict: "success".into(),
                insns: opt(s.processed_insns.or(s.verified_insns).map(u128::from)),
                xlated: s.xlated_len.to_string(),
                time_us: opt(s.verification_time.map(|d| d.as_micros())),
                retval: retval.clone(),
                error: None,
                json: serde_json::json!({
                    "verdict": "success",
                    "processed_insns": s.processed_insns,
                    "verified_insns": s.verified_insns,
                    "xlated_len": s.xlated_len,
                    "jited_len": s.jited_len,
                    "verification_time_us": s.verification_time.map(|d| d.as_micros()),
                    "load_time_us": s.load_time.as_micros(),
                    "retval": match &l.retval { Some(Ok(r)) => serde_json::json!(r), Some(Err(e)) => serde_json::json!(e.to_string()), None => serde_json::Value::Null },
                }),
            }
        }
        Err(e) => {
            let (verdict, why) = match e {
                KernelError::Rejected { error_line, .. } => ("failure", error_line.clone()),
                e => ("error", e.to_string()),
            };
            Side {
                verdict: verdict.into(),
                insns: dash(),
                xlated: dash(),
                time_us: dash(),
                retval: dash(),
                error: Some(why.clone()),
                json: serde_json::json!({ "verdict": verdict, "error": why }),
            }
        }
    }
}

fn rewritten(bytes: &[u8], path: &std::path::Path, args: &Args, list: &str) -> Result<Vec<u8>> {
    let pa = &args.passes;
    // What is loaded must be loadable: the kernel's own passes are refused (exit 2, checked by
    // `main`), except `zext` written as uapi moves (--zext-as-mov32).
    let mut passes = if args.zext_as_mov32 {
        pipeline::Passes::for_output("zext", false, bpfpatch_passes::OutputKind::Xlated)?.with_zext_as_mov32(true)
    } else {
        pipeline::Passes::for_output(list, pa.blind, bpfpatch_passes::OutputKind::Loadable)?
    };
    let mut obj = input::object(bytes, path)?;
    passes.for_object(&obj);
    let mut run = |l: &mut PatchList, info: &ProgramInfo<'_>| passes.run(l, info);
    let mut rw = Rewriter::new(RewriteOptions { relax: true });
    rw.rewrite_object(&mut obj, &mut run).with_context(|| path.display().to_string())?;
    obj.write().with_context(|| path.display().to_string())
}

/// Loads every program of every object and prints the table (or JSON).
pub fn main(args: &Args) -> Result<ExitCode> {
    let given = args.passes.passes.as_deref().filter(|l| *l != "none");
    if let Some(l) = given {
        // Checked first, before anything is loaded: a pass of the xlated kind is a usage error.
        bpfpatch_passes::Pipeline::for_output(l, args.passes.blind, bpfpatch_passes::OutputKind::Loadable)?;
    }
    // With --zext-as-mov32 the rewrite is zext alone (clap refuses --passes beside it).
    let list = given.or(args.zext_as_mov32.then_some("zext"));
    // Also before anything is loaded: an object marked xlated is the kernel's internal form.
    for path in &args.objects {
        if input::read(path).is_ok_and(|b| BpfObject::parse(&b).is_ok_and(|o| o.is_xlated())) {
            bail!(
                "{}: an xlated object (the kernel's internal form, written by `rewrite --xlated`) is not loadable",
                path.display()
            );
        }
    }
    if let Err(reason) = available() {
        bail!("load: {reason}");
    }
    let packet = udp_packet();
    let mut rows_json = Vec::new();
    let mut text = String::new();
    let mut broken = 0usize;
    let mut unopened = 0usize;
    if !args.json {
        let head = format!(
            "{:<24} {:<24} {:<12} {:>8} {:>8} {:>7} {:>9} {:>7}",
            "file", "program", "type", "verdict", "insns", "xlated", "verif_us", "retval"
        );
        text.push_str(&head);
        if list.is_some() {
            text.push_str(&format!(
                " | {:>8} {:>8} {:>7} {:>9} {:>7}",
                "verdict", "insns", "xlated", "verif_us", "retval"
            ));
        }
        text.push('\n');
    }
    for path in &args.objects {
        let bytes = input::read(path)?;
        let file = path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned());
        let loaded = load_object(&bytes, &file, &packet).and_then(|before| {
            let after = match list {
                Some(l) => {
                    let new = rewritten(&bytes, path, args, l).map_err(|e| KernelError::Object {
                        stage: "rewrite",
                        what: file.clone(),
                        message: format!("{e:#}"),
                    })?;
                    Some(load_object(&new, &format!("{file} (rewritten)"), &packet)?)
                }
                None => None,
            };
            Ok((before, after))
        });
        let (before, after) = match loaded {
            Ok(x) => x,
            Err(e) if e.is_not_permitted() => bail!("load: {e}"),
            Err(e) => {
                unopened += 1;
                if args.json {
                    rows_json.push(serde_json::json!({ "file": path, "error": e.to_string() }));
                } else {
                    text.push_str(&format!("{file:<24} {:<24} {:<12} {:>8}\n  {file}: {e}\n", "-", "-", "error"));
                }
                continue;
            }
        };
        if before.is_empty() {
            if args.json {
                rows_json.push(serde_json::json!({ "file": path, "programs": 0 }));
            } else {
                text.push_str(&format!("{file:<24} {:<24} {:<12} {:>8}\n", "(no programs)", "-", "-"));
            }
        }
        for p in &before {
            let b = side(Some(p));
            let a = after.as_ref().map(|progs| side(progs.iter().find(|q| q.name == p.name)));
            if let (Some(a), Ok(_)) = (&a, &p.outcome)
                && (a.verdict != "success" || a.retval != b.retval)
            {
                broken += 1;
            }
            if args.json {
                let mut row = serde_json::json!({
                    "file": path,
                    "program": p.name,
                    "section": p.section,
                    "type": p.prog_type.to_string(),
                    "before": b.json,
                });
                if let Some(a) = &a {
                    row["after"] = a.json.clone();
                }
                rows_json.push(row);
                continue;
            }
            text.push_str(&format!(
                "{:<24} {:<24} {:<12} {:>8} {:>8} {:>7} {:>9} {:>7}",
                file,
                p.name,
                p.prog_type.to_string(),
                b.verdict,
                b.insns,
                b.xlated,
                b.time_us,
                b.retval
            ));
            if let Some(a) = &a {
                text.push_str(&format!(
                    " | {:>8} {:>8} {:>7} {:>9} {:>7}",
                    a.verdict, a.insns, a.xlated, a.time_us, a.retval
                ));
            }
            text.push('\n');
            if let Some(e) = &b.error {
                text.push_str(&format!("  {file}:{}: {e}\n", p.name));
            }
            if let Some(e) = a.as_ref().and_then(|a| a.error.as_ref()) {
                text.push_str(&format!("  {file}:{} after --passes: {e}\n", p.name));
            }
        }
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "programs": rows_json, "broken_by_rewrite": broken, "unopened": unopened })
            )?
        )?;
    } else {
        crate::out::print(&text)?;
        if list.is_some() {
            outln!("{broken} program(s) broken by the rewrite")?;
        }
    }
    if unopened > 0 && !args.json {
        outln!("{unopened} object(s) could not be opened or rewritten")?;
    }
    Ok(if broken == 0 && unopened == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
