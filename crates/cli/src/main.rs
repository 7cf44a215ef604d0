//! The `bpfpatch` command: disassemble, run, check conformance, rewrite and benchmark eBPF
//! programs. Every subcommand exits with [`EXIT_CODES`]: 0 on success, 1 with a one-line
//! `error: ...` on bad input or a failed check, 2 on a usage error (clap's, including the checks
//! of flag values such as `--passes`), 74 quietly when its standard output is closed under it
//! ([`out::BROKEN_PIPE`]); a panic (exit 101) from any input is a bug.

// Standard output goes through `out::print`: `print!` panics on a closed pipe.
#![deny(clippy::print_stdout)]

#[macro_use]
mod out;
mod cmd;
mod explain;
mod input;
mod listing;
mod passes_args;

use bpfpatch_insn::Slot;
use bpfpatch_object::EngineError;
use bpfpatch_patch::Error as PatchError;
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::process::ExitCode;

/// The exit codes of every subcommand, as `--help` states them.
const EXIT_CODES: &str = "Exit codes: 0 success; 1 bad input or a failed check (one `error:` line); 2 usage \
                          error; 74 standard output closed (as llvm-objdump-19)";

/// Linear-time patching of eBPF programs.
#[derive(Debug, Parser)]
#[command(name = "bpfpatch", version, about, long_about = None, propagate_version = true, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark patching: the RFC's table for the kernel's algorithm, the RFC's list, bpfpatch
    /// and the copy floor, warm and cold, with JSON and a log-log plot.
    #[cfg(feature = "bench")]
    Bench(cmd::bench::Args),
    /// Validate objects (or bare images): jumps, line and func info, relocations.
    Check(cmd::check::Args),
    /// Disassemble a program: `<slot>: <text>` per instruction, in llvm-objdump's syntax; an ELF
    /// object as llvm-objdump's listing with labels, relocations and BTF source lines.
    Disasm(cmd::disasm::Args),
    /// Rewrite every program of an object (or a bare image) with a pass pipeline.
    Rewrite(cmd::rewrite::Args),
    /// Run one program (a conformance `.data` file, a raw image, or a self-contained program
    /// section of an ELF object) and print r0.
    Run(cmd::run::Args),
    /// Run conformance vectors (`.data` files, or directories of them) and count passes.
    Conformance(cmd::conformance::Args),
    /// Load every program of ELF objects into the running kernel (no attach) and print the
    /// verifier's verdict, processed instructions, xlated length and time, as veristat does.
    Load(cmd::load::Args),
}

/// The one line of an error: its chain of causes joined as `outer: inner` (anyhow's `{:#}`),
/// with the engine's jump errors in plain words instead of its debug text.
fn render(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        if let Some(EngineError::Patch { section, error }) = cause.downcast_ref::<EngineError>()
            && let Some(text) = plain_patch_error(error)
        {
            parts.push(format!("{section}: {text}"));
            break;
        }
        if let Some(text) = cause.downcast_ref::<PatchError>().and_then(plain_patch_error) {
            parts.push(text);
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(": ")
}

/// The engine's errors about a jump's target, in words: the jump's slot in the rewritten
/// program and, for an original instruction, in the original.
fn plain_patch_error(e: &PatchError) -> Option<String> {
    let jump = |at: &Slot, orig: &Option<Slot>| match orig {
        Some(o) => format!("the jump at slot {at} of the rewritten program (slot {o} of the original)"),
        None => format!("the jump at slot {at} of the rewritten program (inserted by a pass)"),
    };
    match e {
        PatchError::JumpOutOfRange { at, orig, delta }
            if i16::try_from(*delta).is_err() && i32::try_from(*delta).is_ok() =>
        {
            Some(format!(
                "{} needs an offset of {delta} slots, beyond its 16-bit field (-32768..32767); \
                 it becomes a `gotol` only in a cpu-v4 program without --no-relax",
                jump(at, orig)
            ))
        }
        PatchError::JumpOutOfRange { at, orig, delta } => {
            Some(format!("{} needs an offset of {delta} slots, beyond its offset field", jump(at, orig)))
        }
        PatchError::TargetPastEnd { at, orig } => {
            Some(format!("{} targets past the end of the program", jump(at, orig)))
        }
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        #[cfg(feature = "bench")]
        Command::Bench(a) => cmd::bench::main(&a),
        Command::Check(a) => cmd::check::main(&a),
        Command::Disasm(a) => cmd::disasm::main(&a),
        Command::Rewrite(a) => cmd::rewrite::main(&a),
        Command::Run(a) => cmd::run::main(&a),
        Command::Conformance(a) => cmd::conformance::main(&a),
        Command::Load(a) => cmd::load::main(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) if out::is_stdout_closed(&e) => ExitCode::from(out::BROKEN_PIPE),
        // A pass of the other output kind is a usage error: the flags do not go together.
        Err(e)
            if e.chain().any(|c| matches!(c.downcast_ref(), Some(bpfpatch_passes::PassError::NeedsXlated { .. }))) =>
        {
            let _ = writeln!(std::io::stderr(), "error: {}", render(&e));
            ExitCode::from(2)
        }
        Err(e) => {
            // One line: the chain of causes joined, as `error: outer: inner`. A closed stderr
            // leaves nothing to tell.
            let _ = writeln!(std::io::stderr(), "error: {}", render(&e));
            ExitCode::FAILURE
        }
    }
}
