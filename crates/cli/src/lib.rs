//! The library half of the `bpfpatch` command: what the command composes from the other crates
//! and what is tested or fuzzed on its own.
//!
//! - [`pipeline`]: the pass pipeline of `bpfpatch rewrite`, run on each program of an object
//!   through the object rewriter (the one place where `bpfpatch-passes` and `bpfpatch-object`
//!   meet);
//! - [`core_text`]: the text llvm-objdump prints for a CO-RE relocation, which `disasm` prints;
//! - [`ctx_layout`]: the JSON file of `--ctx-layout`, the context layout of the `ctx` pass;
//! - `fuzzing` (feature `fuzzing`): the oracle of that path on arbitrary objects.
//!
//! # Example
//! `bpfpatch rewrite --passes all --blind` as a library call:
//!
//! ```
//! use bpfpatch_cli::pipeline::Passes;
//! use bpfpatch_insn::DecodeOptions;
//! use bpfpatch_object::{BpfObject, RewriteOptions, Rewriter, check_with};
//!
//! let bytes = include_bytes!("../../object/tests/data/prog-el.o");
//! let mut obj = BpfObject::parse(bytes)?;
//! let mut passes = Passes::new("all", true)?;
//! passes.for_object(&obj); // what calls into `.text` pass, read before anything changes
//! let mut rw = Rewriter::new(RewriteOptions { relax: true });
//! let reports = rw.rewrite_object(&mut obj, &mut |list, info| passes.run(list, info))?;
//! assert!(reports.iter().any(|r| r.inserted > 0)); // blinding rewrote constants
//! let out = BpfObject::parse(&obj.write()?)?;
//! assert!(check_with(&out, DecodeOptions::INTERNAL).is_empty()); // AX is kernel-internal
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod core_text;
pub mod ctx_layout;
pub mod pipeline;
pub mod provenance;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
