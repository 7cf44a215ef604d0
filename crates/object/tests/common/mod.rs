//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// The first index where two byte strings differ (or the shorter length).
pub fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len())))
}
