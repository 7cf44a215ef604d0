//! `bpfpatch disasm`: one line per instruction, `<slot>: <text>`, in llvm-objdump's syntax.

use crate::input::{self, ProgramArgs};
use anyhow::{Context, Result};
use bpfpatch_asm::{Dialect, DisasmOptions, Fidelity, disasm_program};
use bpfpatch_insn::DecodeOptions;
use std::process::ExitCode;

/// Arguments of `bpfpatch disasm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Print what `llvm-objdump --mcpu=v4` prints (`w` registers for sub-64-bit memory access).
    #[arg(long)]
    pub mcpu_v4: bool,
    /// Print text that `bpfpatch`'s llvm-syntax assembler reads back unchanged, where llvm's
    /// own text loses information (`call local`, `call kfunc`, full `ld_pseudo` values).
    #[arg(long)]
    pub lossless: bool,
    /// Accept kernel-internal forms (AX as r11, tail_call, nospec), as in rewritten programs.
    #[arg(long)]
    pub internal: bool,
    /// Print a JSON array of {slot, text} instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Disassembles the program.
pub fn main(args: &Args) -> Result<ExitCode> {
    let path = &args.program.file;
    let bytes = input::read(path)?;
    let slots = input::program_slots(args.program.kind(&bytes), &bytes, path)?;
    let opts = DisasmOptions {
        decode: if args.internal { DecodeOptions::INTERNAL } else { DecodeOptions::default() },
        dialect: if args.mcpu_v4 { Dialect::McpuV4 } else { Dialect::Default },
        fidelity: if args.lossless { Fidelity::Lossless } else { Fidelity::Llvm },
    };
    let lines = disasm_program(&slots, opts).with_context(|| path.display().to_string())?;
    let mut out = String::new();
    if args.json {
        let rows: Vec<_> = lines.iter().map(|(s, t)| serde_json::json!({ "slot": s.0, "text": t })).collect();
        out = serde_json::to_string_pretty(&rows)?;
        out.push('\n');
    } else {
        for (slot, text) in &lines {
            out.push_str(&format!("{slot}: {text}\n"));
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
