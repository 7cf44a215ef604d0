//! bpfpatch's test kit: oracles and generators shared by the workspace's tests and `fuzz/`,
//! written against the public APIs only (an oracle that shares code with what it checks
//! proves nothing).
//!
//! - [`naive`]: a deliberately naive patcher (absolute indices, every reference rewritten on
//!   every request) and the request generator that drives it against the list engine.
// An oracle's job is to panic on a broken property; generator arithmetic is on small values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    missing_docs
)]

pub mod naive;
