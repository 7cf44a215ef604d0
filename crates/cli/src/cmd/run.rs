//! `bpfpatch run`: run one program and print r0.

use crate::input::{self, Kind, ProgramArgs};
use crate::passes_args::{PassArgs, hook};
use anyhow::{Context, Result, anyhow, bail};
use bpfpatch_vm::{ConformanceOptions, Input, LoadOptions, Program, Vm, run_data_file};
use std::process::ExitCode;

/// Arguments of `bpfpatch run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A conformance `.data` file (`-- asm` or `-- raw`, with its `-- mem`), or with `--raw` a
    /// bare image (run with no memory area: r1 = r2 = 0).
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Print a JSON object instead of the bare value.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub passes: PassArgs,
}

/// Runs the program; prints r0 as `0x...`.
pub fn main(args: &Args) -> Result<ExitCode> {
    let path = &args.program.file;
    let pipeline = args.passes.pipeline()?;
    let transform = pipeline.as_ref().map(hook);
    let mut opts = ConformanceOptions::default();
    if let Some(t) = &transform {
        opts = opts.with_transform(t);
    }
    let bytes = input::read(path)?;
    let r0 = match args.program.kind(&bytes) {
        Kind::DataFile => run_data_file(path, &opts).with_context(|| path.display().to_string())?,
        Kind::Elf => bail!(
            "{}: running programs of ELF objects is not supported (they need maps and helpers); \
             use `bpfpatch check` or `bpfpatch rewrite`",
            path.display()
        ),
        kind @ Kind::Raw(_) => {
            let slots = input::program_slots(kind, &bytes, path)?;
            let name = || path.display().to_string();
            let mut prog = Program::load(&slots, &LoadOptions::default()).with_context(name)?;
            if let Some(t) = &transform {
                let rewritten = t(&slots).map_err(|e| anyhow!(e)).with_context(name)?;
                prog = Program::load(&rewritten, &LoadOptions::INTERNAL).with_context(name)?;
            }
            Vm::conformance().run(&prog, Input::default()).with_context(name)?.r0
        }
    };
    if args.json {
        println!("{}", serde_json::json!({ "file": path, "r0": format!("{r0:#x}") }));
    } else {
        println!("{r0:#x}");
    }
    Ok(ExitCode::SUCCESS)
}
