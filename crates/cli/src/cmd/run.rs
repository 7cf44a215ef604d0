//! `bpfpatch run`: run one program and print r0.

use crate::passes_args::{PassArgs, hook};
use anyhow::{Context, Result};
use bpfpatch_vm::{ConformanceOptions, run_data_file};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `bpfpatch run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A conformance `.data` file (`-- asm` or `-- raw`, with its `-- mem`).
    pub file: PathBuf,
    /// Print a JSON object instead of the bare value.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub passes: PassArgs,
}

/// Runs the program; prints r0 as `0x...`.
pub fn main(args: &Args) -> Result<ExitCode> {
    let pipeline = args.passes.pipeline()?;
    let transform = pipeline.as_ref().map(hook);
    let mut opts = ConformanceOptions::default();
    if let Some(t) = &transform {
        opts = opts.with_transform(t);
    }
    let r0 = run_data_file(&args.file, &opts).with_context(|| args.file.display().to_string())?;
    if args.json {
        println!("{}", serde_json::json!({ "file": args.file, "r0": format!("{r0:#x}") }));
    } else {
        println!("{r0:#x}");
    }
    Ok(ExitCode::SUCCESS)
}
