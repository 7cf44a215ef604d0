//! Read and write clang-built BPF ELF objects (text, relocations, BTF, BTF.ext)
#![deny(missing_docs)]
