//! Helper functions: the [`Helper`] trait, and the conformance harness's helper 5.
//!
//! A helper receives r1-r5 and the run's [`Memory`] (to follow pointer arguments) and either
//! returns a value for r0 or ends the whole program ([`HelperReturn::Exit`]). Helpers are
//! registered on a [`crate::Vm`] by id; static `call N` and `callx reg` both look them up.

use crate::memory::Memory;

/// The id of the conformance harness's "unwind" helper.
pub const UNWIND_HELPER_ID: i32 = 5;

/// What a helper call does to the program.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HelperReturn {
    /// Continue after the call with this value in r0.
    Value(u64),
    /// End the whole program now (from any call depth) with this value as its result.
    Exit(u64),
}

/// A helper's failure; becomes [`crate::RunError::Helper`] with the slot and id.
#[derive(Clone, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[error("{0}")]
pub struct HelperError(pub String);

impl From<crate::error::Fault> for HelperError {
    fn from(f: crate::error::Fault) -> Self {
        HelperError(f.to_string())
    }
}

/// A helper function callable from programs.
pub trait Helper {
    /// Runs the helper with arguments r1-r5.
    ///
    /// # Errors
    /// A [`HelperError`] stops the program with [`crate::RunError::Helper`].
    fn call(&mut self, args: [u64; 5], mem: &mut Memory<'_>) -> Result<HelperReturn, HelperError>;
}

impl<F> Helper for F
where
    F: FnMut([u64; 5], &mut Memory<'_>) -> Result<HelperReturn, HelperError>,
{
    fn call(&mut self, args: [u64; 5], mem: &mut Memory<'_>) -> Result<HelperReturn, HelperError> {
        self(args, mem)
    }
}

/// The conformance harness's helper 5 ("unwind"): returns its argument r1; when that is 0 the
/// whole program ends at once with r0 = 0.
#[derive(Clone, Copy, Default, Debug)]
pub struct Unwind;

impl Helper for Unwind {
    fn call(&mut self, args: [u64; 5], _mem: &mut Memory<'_>) -> Result<HelperReturn, HelperError> {
        Ok(if args[0] == 0 { HelperReturn::Exit(0) } else { HelperReturn::Value(args[0]) })
    }
}
