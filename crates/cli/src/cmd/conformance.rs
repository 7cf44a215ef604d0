//! `bpfpatch conformance`: run test vectors and count passes.

use crate::passes_args::{PassArgs, hook, vm_config};
use anyhow::{Result, bail};
use bpfpatch_vm::conformance::collect_files;
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
    /// Load as Linux does: also reject what the Linux verifier rejects in every program
    /// (constant shifts by the width or more or by a negative amount, `callx`), so the verdicts
    /// are the running kernel's (`--kernel`) without loading anything.
    #[arg(long, conflicts_with = "kernel")]
    pub linux: bool,
    /// Judge the vectors by the running kernel (verifier, JIT, BPF_PROG_TEST_RUN) instead of
    /// the interpreter, as bpf_conformance's libbpf plugin does; prints the rejected vectors
    /// with the verifier's first error line.
    #[arg(long)]
    pub kernel: bool,
    /// With --kernel: compare the kernel's xlated image of each accepted vector without memory
    /// with our own `--passes kernel` (kernel-dce,fixups,cmpxchg-zext) rewrite, and list the differing ones.
    #[arg(long, requires = "kernel")]
    pub xlated_compare: bool,
    /// With --kernel: write the kernel's xlated image of each accepted vector (as loaded, with
    /// its prolog) to DIR/NAME.xlated, for `bpfpatch disasm --xlated`.
    #[arg(long, requires = "kernel", value_name = "DIR")]
    pub dump_xlated: Option<PathBuf>,
}

/// Runs every file; prints one line per failure and `N passed, M failed`; exit 1 if any failed.
///
/// When the pipeline has `zext`, the rewritten programs run on a machine that leaves random
/// upper halves after 32-bit definitions ([`vm_config`]): a missing zero-extension fails.
pub fn main(args: &Args) -> Result<ExitCode> {
    for p in &args.paths {
        if !p.exists() {
            bail!("cannot read {}: no such file or directory", p.display());
        }
        if collect_files(std::slice::from_ref(p)).is_empty() {
            bail!("no conformance vectors (.data files) found under {}", p.display());
        }
    }
    if args.kernel {
        let opts = super::kernel_conformance::KernelOptions {
            xlated_compare: args.xlated_compare,
            dump_xlated: args.dump_xlated.clone(),
            json: args.json,
        };
        return super::kernel_conformance::main(&args.paths, &args.passes, &opts);
    }
    let pipeline = args.passes.pipeline()?;
    let pass_opts = args.passes.options()?;
    let transform = pipeline.as_ref().map(|p| hook(p, &pass_opts));
    // With `zext` in the pipeline, rewritten programs run with random upper halves.
    let mut opts =
        ConformanceOptions::default().with_linux(args.linux).with_vm(vm_config(pipeline.as_ref(), &pass_opts));
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
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        summary
    } else {
        conformance_report(&args.paths, &opts, &mut std::io::stdout().lock()).map_err(crate::out::stdout_error)?
    };
    Ok(if summary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
