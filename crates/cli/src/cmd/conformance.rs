//! `bpfpatch conformance`: run test vectors and count passes.

use crate::passes_args::{PassArgs, hook, vm_config};
use anyhow::Result;
use bpfpatch_vm::{ConformanceOptions, conformance_report, run_conformance};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `bpfpatch conformance`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `.data` files, or directories whose `.data` files are run. Files in a folder named
    /// `negative` must fail (not assemble, be rejected, fault, or return another r0).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print a JSON report (every file with its verdict) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub passes: PassArgs,
}

/// Runs every file; prints one line per failure and `N passed, M failed`; exit 1 if any failed.
///
/// When the pipeline has `zext`, the rewritten programs run on a machine that leaves random
/// upper halves after 32-bit definitions ([`vm_config`]): a missing zero-extension fails.
pub fn main(args: &Args) -> Result<ExitCode> {
    let pipeline = args.passes.pipeline()?;
    let pass_opts = args.passes.options()?;
    let transform = pipeline.as_ref().map(|p| hook(p, &pass_opts));
    // With `zext` in the pipeline, rewritten programs run with random upper halves.
    let mut opts = ConformanceOptions::default().with_vm(vm_config(pipeline.as_ref(), &pass_opts));
    if let Some(t) = &transform {
        opts = opts.with_transform(t);
    }
    let summary = if args.json {
        let mut files = Vec::new();
        let summary = run_conformance(&args.paths, &opts, |o| {
            files.push(serde_json::json!({
                "file": o.path,
                "passed": o.passed(),
                "negative": o.negative,
                "observed": match &o.observed { Ok(r0) => format!("{r0:#x}"), Err(e) => e.to_string() },
                "status": o.to_string(),
            }));
        });
        let report = serde_json::json!({ "passed": summary.passed, "failed": summary.failed, "files": files });
        println!("{}", serde_json::to_string_pretty(&report)?);
        summary
    } else {
        conformance_report(&args.paths, &opts, &mut std::io::stdout().lock())?
    };
    Ok(if summary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
