//! Analyses over a linear program that produce the facts passes need.
//!
//! Each analysis runs on the original program, before any pass patches it, and reports facts
//! per instruction ([`crate::program::InsnIdx`]); the pipeline converts them to per-slot facts.
//! All are worklist fixed points over [`cfg::Cfg`] blocks: no recursion, memory linear in the
//! program.

pub mod cfg;
pub mod eval;
pub mod liveness;
pub mod ptrkind;
pub mod reach;
mod worklist;
