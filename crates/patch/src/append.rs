//! Small appends: `Vec::extend_from_slice` without the `memmove` call for the 1 to 4 elements
//! a pass writes most (a blinding buffer, the untouched slots between two patched ones); the
//! call's dispatch cost more than the copy (`benches/linearize.rs`, `inorder/warm`;
//! `bpfpatch bench`, the `bpfpatch` row).

/// `v.extend_from_slice(s)`, with the copy inlined for 1 to 4 elements: in each arm the
/// slice's length is a constant, so the copy is a few moves after one capacity check (the
/// element pushes this replaced checked capacity and stored the length per element: 15M
/// more instructions per `bpfpatch bench` run at 1M patches).
#[inline(always)]
pub(crate) fn extend_small<T: Clone>(v: &mut Vec<T>, s: &[T]) {
    match s {
        [] => {}
        [a] => v.push(a.clone()),
        [_, _] => v.extend_from_slice(s),
        [_, _, _] => v.extend_from_slice(s),
        [_, _, _, _] => v.extend_from_slice(s),
        _ => v.extend_from_slice(s),
    }
}

#[cfg(test)]
mod tests {
    use super::extend_small;

    /// Every length, the small ones and past them, appends exactly the slice.
    #[test]
    fn extend_small_appends_exactly_the_slice() {
        let src: Vec<u32> = (0..9).collect();
        for len in 0..=src.len() {
            let mut v = vec![100, 101];
            extend_small(&mut v, &src[..len]);
            assert_eq!(v[..2], [100, 101]);
            assert_eq!(v[2..], src[..len], "length {len}");
        }
    }
}
