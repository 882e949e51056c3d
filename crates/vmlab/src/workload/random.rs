//! Uniform random: every word of the footprint equally likely. The worst case
//! for a TLB smaller than the footprint.

use rand::rngs::SmallRng;
use rand::Rng;

/// Uniformly random word indices below `words`.
#[derive(Clone, Debug)]
pub struct Random {
    words: u64,
}

impl Random {
    pub fn new(words: u64) -> Random {
        Random { words: words.max(1) }
    }

    /// The next word index.
    #[inline]
    pub fn next_word(&mut self, rng: &mut SmallRng) -> u64 {
        rng.gen_range(0..self.words)
    }
}
