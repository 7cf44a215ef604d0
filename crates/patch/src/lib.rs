//! Linear-time list-based patching of eBPF programs (design note: see below).
#![deny(missing_docs)]

mod buf;
mod error;
mod ids;
mod linearize;
mod list;
mod tables;

pub mod reference;

pub use buf::{PatchBuf, Target};
pub use error::{Error, Result};
pub use ids::{Label, NodeId, SubprogId};
pub use linearize::{LinearizeOptions, LinearizeStats, Linearized, OffsetMap, PatchCtx};
pub use list::{Appended, Cursor, MAX_NODES, PatchList, Patched, PrepatchMode};
pub use tables::{
    AuxHook, CoreReloc, CoreRelocData, Dropped, ElfReloc, ElfRelocData, FuncInfo, INSN_DELETED, InsnArrayEntry,
    LineInfo, PatchedProgram, PokeDesc, Program, Reloc, SideTables, Subprog,
};
