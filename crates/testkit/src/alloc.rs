//! A counting allocator, for the tests that count what a path allocates (the copy budget of
//! the rewrite path, a warm path that allocates nothing). A test binary installs it with
//! `#[global_allocator] static A: Counting = Counting;` and measures a closure with [`count`];
//! only allocations made on the measuring thread while it runs are counted.

// A `GlobalAlloc` is an unsafe trait; every method forwards to `System` with the caller's
// arguments.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// What [`count`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocations {
    /// Allocations (and reallocations) made.
    pub count: usize,
    /// The largest size asked for, in bytes.
    pub largest: usize,
    /// Those of exactly the size [`count`] was given.
    pub of_size: usize,
    /// The bytes asked for, all allocations together (a reallocation counts its new size).
    pub bytes: usize,
}

thread_local! {
    /// While [`count`] runs: the size it watches and what was seen.
    static WATCH: Cell<Option<(usize, Allocations)>> = const { Cell::new(None) };
}

fn see(size: usize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = WATCH.try_with(|w| {
        if let Some((watched, mut a)) = w.get() {
            a.count += 1;
            a.largest = a.largest.max(size);
            a.of_size += usize::from(size == watched);
            a.bytes += size;
            w.set(Some((watched, a)));
        }
    });
}

/// The system allocator, counting on the thread that runs [`count`].
#[derive(Debug)]
pub struct Counting;

// SAFETY: every call forwards to `System` with the caller's arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        see(layout.size());
        // SAFETY: as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        see(layout.size());
        // SAFETY: as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        see(new_size);
        // SAFETY: as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the allocations it made on this thread, counting
/// those of exactly `size` bytes apart (0: none). Without [`Counting`] installed as the
/// global allocator it sees nothing.
pub fn count<T>(size: usize, f: impl FnOnce() -> T) -> (T, Allocations) {
    WATCH.with(|w| w.set(Some((size, Allocations::default()))));
    let r = f();
    let (_, a) = WATCH.with(Cell::take).unwrap_or_default();
    (r, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static A: Counting = Counting;

    #[test]
    fn counts_what_the_closure_allocates_and_nothing_else() {
        let before: Vec<u64> = Vec::with_capacity(3);
        let (v, a) = count(32, || {
            let v: Vec<u64> = Vec::with_capacity(4);
            let w: Vec<u8> = Vec::with_capacity(100);
            drop(w);
            v
        });
        assert_eq!(a, Allocations { count: 2, largest: 100, of_size: 1, bytes: 132 });
        assert_eq!(v.capacity() + before.capacity(), 7);
        let (_, after) = count(0, || ());
        assert_eq!(after, Allocations::default());
    }
}
