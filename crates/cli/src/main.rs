//! The `bpfpatch` command: disassemble, run, check conformance, rewrite and benchmark eBPF
//! programs. Every subcommand exits 0 on success and 1 with a one-line `error: ...` on bad
//! input; a panic (exit 101) from any input is a bug.

mod cmd;
mod input;
mod listing;
mod passes_args;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Linear-time patching of eBPF programs.
#[derive(Debug, Parser)]
#[command(name = "bpfpatch", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark patching: the RFC's table for the kernel's algorithm, the RFC's list, bpfpatch
    /// and the copy floor, warm and cold, with JSON and a log-log plot.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
        Err(e) => {
            // One line: the chain of causes joined, as `error: outer: inner`.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
