//! Text forms of eBPF.
//!
//! - [`disasm`]: the llvm-objdump-style disassembler ([`disasm_insn`], [`disasm_program`],
//!   [`disasm_listing`]), printing llvm's text verbatim or, with [`Fidelity::Lossless`], a text
//!   that reads back unchanged; and [`llvm`]: the assembler reading that syntax back
//!   ([`assemble_llvm`]).
//! - [`conformance`]: the `%rN` assembler of the conformance vectors ([`assemble_conformance`]) and
//!   [`datafile`]: their `.data` format ([`parse_data_file`], [`DataFile::program`]).
//!
//! Both assemblers build typed [`bpfpatch_insn::Op`]s and encode them with `Op::encode`, so what
//! they produce always decodes; errors are [`AsmError`]s carrying the 1-based source line.
//!
//! ```
//! use bpfpatch_asm::{assemble_conformance, assemble_llvm, disasm_insn};
//! use bpfpatch_insn::{decode_program, DecodeOptions};
//!
//! let slots = assemble_conformance("mov %r0, 1\nldxw %r0, [%r1+4]\nexit").unwrap();
//! let ops = decode_program(&slots, DecodeOptions::default()).unwrap();
//! let text: Vec<String> = ops.iter().map(|(_, op)| disasm_insn(op)).collect();
//! assert_eq!(text, ["r0 = 0x1", "r0 = *(u32 *)(r1 + 0x4)", "exit"]);
//! assert_eq!(assemble_llvm(&text.join("\n")).unwrap(), slots);
//!
//! // llvm prints a bpf-to-bpf call like a helper call; the lossless text keeps the difference.
//! use bpfpatch_asm::{disasm_insn_with, Dialect, Fidelity};
//! use bpfpatch_insn::{CallKind, Op};
//! let call = Op::Call(CallKind::Local(2));
//! assert_eq!(disasm_insn(&call), "call 0x2");
//! let lossless = disasm_insn_with(&call, Dialect::Default, Fidelity::Lossless);
//! assert_eq!(lossless, "call local +0x2");
//! assert_eq!(assemble_llvm(&lossless).unwrap().as_slice(), call.encode().as_slice());
//! ```
//!
//! # The llvm syntax
//!
//! [`disasm_insn`] prints exactly the text `llvm-objdump-19 -d` prints after the address (and
//! raw-byte) columns, without the `<symbol+offset>` suffix llvm adds after jump targets, for
//! every instruction llvm does not print as `<unknown>`; llvm's quirks are kept, including where
//! its text loses information ([`Fidelity::Llvm`], the default). [`Dialect::McpuV4`] reproduces
//! `llvm-objdump-19 -d --mcpu=v4` instead. [`Fidelity::Lossless`] departs from llvm's text only
//! where llvm's loses information, so that disassembly reads back unchanged (listed below). `tests/llvm_golden.rs` checks every
//! form against llvm-mc-19 / llvm-objdump-19, in both byte orders, both dialects and both
//! fidelities.
//!
//! | form | text |
//! |------|------|
//! | ALU | `r1 += 0x5`, `w1 -= w2`, `r1 s>>= -0x7`, `w0 s/= w1`, `r0 s%= 0x3`, `r1 = -r1`, `r1 = (s8)r2`, `w1 = (s16)w2` |
//! | byte swap | `r1 = le16 r1`, `r1 = be32 r1`, `r1 = bswap64 r1` |
//! | ld_imm64 | `r0 = 0x1122334455667788 ll`; other `src_reg` kinds `ld_pseudo<TAB>r1, 0x1, 0x5` |
//! | legacy packet | `r0 = *(u32 *)skb[0x4]`, `r0 = *(u8 *)skb[r2]` |
//! | load / store | `r0 = *(u32 *)(r1 + 0x4)`, `r0 = *(s8 *)(r1 - 0x4)`, `*(u64 *)(r10 - 0x8) = r1`, `*(u32 *)(r1 + 0x0) = -0x1` |
//! | atomics | `lock *(u64 *)(r1 + 0x0) += r2` (also `\|=`, `&=`, `^=`), `r2 = atomic_fetch_add((u64 *)(r1 + 0x0), r2)`, `r2 = xchg_64(r1 + 0x0, r2)`, `r0 = cmpxchg_64(r1 + 0x0, r0, r2)`; 32-bit: `w2 = atomic_fetch_or((u32 *)(r1 + 0x0), w2)`, `w2 = xchg32_32(...)`, `w0 = cmpxchg32_32(r1 + 0x0, w0, w2)` |
//! | jumps | `goto +0x1`, `gotol -0x2`, `if r1 > 0x5 goto +0x3`, `if w1 s< w2 goto -0x1` (`==`, `!=`, `&`, `>`, `>=`, `<`, `<=`, `s>`, `s>=`, `s<`, `s<=`), `may_goto +0x2` |
//! | calls | `call 0x5` (helper, bpf-to-bpf and kfunc calls alike), `callx r1`, `exit` |
//!
//! ## llvm quirks kept
//! - Every immediate prints as signed hex (`-0x7`, `0x0`), even where the field means an unsigned
//!   value (`if r1 > -0x5`, `call -0x1`, `*(u64 *)(r1 + 0x0) = -0x1`); ld_imm64 as signed 64-bit.
//! - Jump distances are relative slot counts with an explicit sign (`+0x0`); memory offsets are
//!   written `(r1 + 0x0)` / `(r1 - 0x8000)`.
//! - Byte swaps print `r` registers although `le`/`be` are in the 32-bit ALU class.
//! - Default dialect: sub-64-bit unsigned loads, register stores and the 32-bit `lock +=` print
//!   `r` registers (`r0 = *(u32 *)(r1 + 0x4)`); sign-extending loads always print `r`.
//! - `ld_pseudo` separates its mnemonic with a tab and prints the immediate unsigned
//!   (`ld_pseudo\tr0, 0x1, 0xffffffff`).
//! - The kernel's auxiliary register AX prints as `r11`/`w11`, as llvm does.
//! - Information llvm's text drops (kept by [`Fidelity::Llvm`], restored by
//!   [`Fidelity::Lossless`]): every call prints as `call <imm>` whatever its `src_reg` (a
//!   bpf-to-bpf call, a kfunc and its module index `off`); `ld_pseudo` prints only the low word
//!   of its immediate; LD_IND prints only its register (`skb[r3]`, not the immediate); and in the
//!   default dialect a 32-bit fetch-add prints as `lock *(u32 *)(r1 + 0x0) += r2` (llvm ignores
//!   the fetch bit without alu32).
//!
//! ## Where llvm prints `<unknown>`
//! For these valid instructions both fidelities print the RFC 9669 meaning in llvm's style:
//! - 32-bit atomics other than `lock +=` and fetch-add in the default dialect: the
//!   `--mcpu=v4` text (`lock *(u32 *)(r1 + 0x0) |= w2`, `w2 = xchg32_32(r1 + 0x0, w2)`).
//! - Kernel-internal `BPF_JMP | BPF_TAIL_CALL` and `BPF_ST | BPF_NOSPEC`: `tail_call`, `nospec`.
//!
//! ## Lossless text: where it differs from llvm's
//! Only where llvm-objdump-19's text loses information (the golden test checks, per form, that
//! the lossless text equals llvm's everywhere else):
//! - bpf-to-bpf call (`src_reg` 1): `call local +0x5` (llvm: `call 0x5`, same as a helper call).
//! - kfunc call (`src_reg` 2): `call kfunc 0x4d`, or `call kfunc 0x4d, 0x2` with a module index
//!   in `off` (llvm: `call 0x4d`).
//! - ld_imm64 with a pseudo `src_reg` and a non-zero high word (map value offsets):
//!   `ld_pseudo\tr2, 0x2, 0x4000000003`, the full 64-bit immediate (llvm prints the low word only,
//!   and llvm-mc drops the high word).
//! - LD_IND with a non-zero immediate: `r0 = *(u16 *)skb[r3 - 0x4]` (llvm: `skb[r3]`).
//! - 32-bit fetch-add in the default dialect: the `--mcpu=v4` text
//!   `w2 = atomic_fetch_add((u32 *)(r1 + 0x0), w2)` (llvm: `lock *(u32 *)(r1 + 0x0) += r2`).
//!
//! llvm-mc-19 itself reads `gotol` distances only in 16-bit range; [`assemble_llvm`] accepts the
//! full 32-bit range (the text is llvm's).
//!
//! ## Reading it back
//! [`assemble_llvm`] accepts everything [`disasm_insn_with`] prints in either dialect and either
//! fidelity, plus llvm-objdump's own output: an optional `<slot>:` prefix, `#`/`;` comments, a
//! trailing `<symbol+offset>`, free whitespace, decimal numbers. See [`llvm`] for the number
//! rules. Lossless text reads back to the same slots for every decodable instruction (including
//! the internal forms). llvm's text reads back as llvm-mc-19 reads it: `call 0x5` is a helper
//! call, `skb[r3]` has no immediate, `ld_pseudo` gets a zero high word; its forms that lose
//! information therefore give a different instruction, but one whose text is the same again.
#![deny(missing_docs)]

pub mod conformance;
pub mod datafile;
pub mod disasm;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod llvm;
pub(crate) mod num;

pub use conformance::assemble_conformance;
pub use datafile::{DataFile, DataFileError, Section, parse_data_file};
pub use disasm::{
    Dialect, Disasm, DisasmOptions, Fidelity, disasm_insn, disasm_insn_with, disasm_listing, disasm_program,
};
pub use error::{AsmError, AsmErrorKind};
pub use llvm::{assemble_llvm, parse_llvm_line};
