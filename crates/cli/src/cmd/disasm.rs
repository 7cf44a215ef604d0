//! `bpfpatch disasm`: one line per instruction, `<slot>: <text>`, in llvm-objdump's syntax; for
//! an ELF object the llvm-objdump-style listing of [`crate::listing`]. A slot that does not
//! decode is `<unknown>`, and the listing carries on, as llvm-objdump's does.

use crate::input::{self, Kind, ProgramArgs};
use crate::listing;
use anyhow::{Context, Result};
use bpfpatch_asm::{Dialect, DisasmOptions, Fidelity};
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
    /// Accept kernel-internal forms (AX as r11, tail_call, nospec), as in rewritten programs
    /// (implied for an input marked xlated by `rewrite --xlated`).
    #[arg(long)]
    pub internal: bool,
    /// Print JSON instead of text: an array of {slot, text}; for an object, its sections with
    /// labels, relocations, CO-RE records and source lines per instruction.
    #[arg(long)]
    pub json: bool,
    /// ELF objects: list only this executable section.
    #[arg(long, value_name = "S", conflicts_with = "raw")]
    pub section: Option<String>,
    /// ELF objects: leave out the BTF source lines.
    #[arg(long)]
    pub no_lines: bool,
    /// Read FILE as a kernel xlated image (`bpf_prog_info.xlated_prog_insns`, as `bpftool prog
    /// dump xlated ... file F` writes it): host byte order, kernel-internal forms accepted,
    /// bpf-to-bpf calls in the dump's encoding (offset in `off`, subprogram index in `imm`),
    /// helper calls and map loads annotated with what their kernel-specific field holds.
    #[arg(long, conflicts_with_all = ["raw", "section"])]
    pub xlated: bool,
}

/// Disassembles the program.
pub fn main(args: &Args) -> Result<ExitCode> {
    let path = &args.program.file;
    let bytes = input::read(path)?;
    let opts = DisasmOptions {
        decode: if args.internal { DecodeOptions::INTERNAL } else { DecodeOptions::default() },
        dialect: if args.mcpu_v4 { Dialect::McpuV4 } else { Dialect::Default },
        fidelity: if args.lossless { Fidelity::Lossless } else { Fidelity::Llvm },
    };
    if args.xlated {
        return xlated(args, &bytes, DisasmOptions { decode: DecodeOptions::INTERNAL, ..opts });
    }
    let kind = args.program.kind(&bytes);
    if kind == Kind::Elf {
        let obj = input::object(&bytes, path)?;
        let opts = if obj.is_xlated() { DisasmOptions { decode: DecodeOptions::INTERNAL, ..opts } } else { opts };
        if let Some(w) = listing::types_warning(&obj) {
            eprintln!("bpfpatch: warning: {}: {w}", path.display());
        }
        let sections =
            listing::listing(&obj, args.section.as_deref(), opts).with_context(|| path.display().to_string())?;
        let out = if args.json {
            let v = serde_json::json!({ "file": path, "sections": sections });
            serde_json::to_string_pretty(&v)? + "\n"
        } else {
            listing::render(&path.display().to_string(), &obj, &sections, !args.no_lines)
        };
        crate::out::print(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.section.is_some() {
        anyhow::bail!("{}: --section applies to ELF objects only", path.display());
    }
    let slots = input::program_slots(kind, &bytes, path)?;
    let opts =
        if input::raw_xlated(kind, &bytes) { DisasmOptions { decode: DecodeOptions::INTERNAL, ..opts } } else { opts };
    let lines = listing::program_lines(&slots, opts);
    let mut out = String::new();
    if args.json {
        let rows: Vec<_> = lines.iter().map(|(s, t)| serde_json::json!({ "slot": s, "text": t })).collect();
        out = serde_json::to_string_pretty(&rows)?;
        out.push('\n');
    } else {
        for (slot, text) in &lines {
            out.push_str(&format!("{slot}: {text}\n"));
        }
    }
    crate::out::print(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `disasm --xlated`: a kernel dump, its calls put back into the user encoding, annotated.
fn xlated(args: &Args, bytes: &[u8], opts: DisasmOptions) -> Result<ExitCode> {
    let path = &args.program.file;
    let endian = if cfg!(target_endian = "big") { bpfpatch_insn::Endian::Big } else { bpfpatch_insn::Endian::Little };
    let image = bpfpatch_insn::slots_from_bytes(bytes, endian).with_context(|| path.display().to_string())?;
    let slots = bpfpatch_kernel::xlated::decodable(&image);
    let lines = listing::program_lines(&slots, opts);
    let note = |slot: usize| bpfpatch_kernel::xlated::note(&image, slot);
    let mut out = String::new();
    if args.json {
        let rows: Vec<_> =
            lines.iter().map(|(s, t)| serde_json::json!({ "slot": s, "text": t, "note": note(*s) })).collect();
        out = serde_json::to_string_pretty(&rows)?;
        out.push('\n');
    } else {
        for (slot, text) in &lines {
            match note(*slot) {
                Some(n) => out.push_str(&format!("{slot}: {text} ; {n}\n")),
                None => out.push_str(&format!("{slot}: {text}\n")),
            }
        }
    }
    crate::out::print(&out)?;
    Ok(ExitCode::SUCCESS)
}
