//! The workspace's one deterministic source of decisions for generators: fuzz targets (the input
//! bytes drive it) and seeded property tests (SplitMix64 from a seed) use the same type, so a
//! generator written once serves both. Test code reaches it as `bpfpatch_testkit::Rng`.

/// A deterministic source of decisions: the input bytes first, then SplitMix64.
#[derive(Clone, Debug)]
pub struct Rng<'a> {
    data: &'a [u8],
    state: u64,
}

impl Rng<'static> {
    /// A pure SplitMix64 stream (no input bytes).
    #[must_use]
    pub fn seeded(seed: u64) -> Rng<'static> {
        Rng { data: &[], state: seed }
    }
}

impl<'a> Rng<'a> {
    /// Decisions taken from `data`, then from a stream seeded with a hash of `data`.
    #[must_use]
    pub fn from_bytes(data: &'a [u8]) -> Rng<'a> {
        Rng::from_bytes_seeded(data, 0)
    }

    /// Decisions taken from `data`, then from a stream seeded with a hash of `data` and `seed`
    /// (one input, several streams).
    #[must_use]
    pub fn from_bytes_seeded(data: &'a [u8], seed: u64) -> Rng<'a> {
        // FNV-1a: the continuation differs for every input.
        let state =
            data.iter().fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Rng { data, state }
    }

    fn mix(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => self.mix().to_le_bytes()[0],
        }
    }

    /// 64 random bits (an endless stream, not an iterator: the name every generator uses).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        if self.data.is_empty() {
            return self.mix();
        }
        (0..8).fold(0u64, |v, _| (v << 8) | u64::from(self.byte()))
    }

    /// Uniform-ish in `0..n` (0 for `n == 0`).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let v = if self.data.is_empty() {
            self.mix()
        } else if n <= 0x100 {
            u64::from(self.byte())
        } else if n <= 0x1_0000 {
            u64::from(u16::from_le_bytes([self.byte(), self.byte()]))
        } else {
            self.next()
        };
        v % n
    }

    /// Uniform-ish in `0..n` (0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // usize is at most 64 bits on every target we build for: both casts are lossless.
        usize::try_from(self.below_u64(n as u64)).unwrap_or(0)
    }

    /// Uniform-ish in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability about `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below_u64(100) < pct
    }

    /// One element of a non-empty slice.
    ///
    /// # Panics
    /// On an empty slice.
    pub fn pick<'v, T>(&mut self, v: &'v [T]) -> &'v T {
        &v[self.below(v.len())]
    }

    /// One element of a non-empty slice, by value.
    ///
    /// # Panics
    /// On an empty slice.
    pub fn choose<T: Copy>(&mut self, v: &[T]) -> T {
        *self.pick(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_first_then_a_stream() {
        let mut r = Rng::from_bytes(&[7, 1, 2]);
        assert_eq!(r.byte(), 7);
        assert_eq!(r.below(0x100), 1);
        assert_eq!(r.below(10), 2);
        let (mut a, mut b) = (Rng::seeded(1), Rng::seeded(1));
        assert_eq!((0..4).map(|_| a.next()).collect::<Vec<_>>(), (0..4).map(|_| b.next()).collect::<Vec<_>>());
        assert_ne!(Rng::seeded(1).next(), Rng::seeded(2).next());
        let mut s = Rng::seeded(9);
        assert!((0..1000).all(|_| s.below(7) < 7 && (3..=5).contains(&s.range(3, 5))));
        assert_eq!(s.below(0), 0);
    }
}
