//! Sequential sweep: word after word through the whole footprint, wrapping
//! around, from a random start. The friendliest pattern for a TLB: one miss
//! per 512 accesses.

use rand::rngs::SmallRng;
use rand::Rng;

/// A sequential sweep over `words` 8-byte words.
#[derive(Clone, Debug)]
pub struct Seq {
    words: u64,
    next: u64,
}

impl Seq {
    pub fn new(words: u64, rng: &mut SmallRng) -> Seq {
        let words = words.max(1);
        Seq {
            words,
            next: rng.gen_range(0..words),
        }
    }

    /// The next word index.
    #[inline]
    pub fn next_word(&mut self) -> u64 {
        let w = self.next;
        self.next += 1;
        if self.next == self.words {
            self.next = 0;
        }
        w
    }
}
