//! Text forms of eBPF: llvm-objdump-style disassembler and assembler, conformance-vector assembler and .data files
#![deny(missing_docs)]
