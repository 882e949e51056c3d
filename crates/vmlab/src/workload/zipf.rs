//! Zipf-skewed: pages are ranked by popularity and page of rank k is chosen
//! with probability proportional to 1/k^s; the word within a page is uniform.
//! Ranks are scattered over the footprint (a bijection), so hot pages are not
//! all neighbours.

use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::Distribution;

/// The default skew exponent.
pub const DEFAULT_EXPONENT: f64 = 1.0;

/// Zipf-distributed word indices over `pages` pages of `words_per_page` words.
#[derive(Clone, Debug)]
pub struct Zipf {
    dist: Option<rand_distr::Zipf<f64>>,
    pages: u64,
    words_per_page: u64,
    /// Multiplier coprime with `pages`: rank r goes to page r * stride % pages.
    stride: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Zipf {
    pub fn new(pages: u64, words_per_page: u64, exponent: f64) -> Zipf {
        let pages = pages.max(1);
        let mut stride = 0x9e37_79b9 % pages;
        while pages > 1 && gcd(stride, pages) != 1 {
            stride += 1;
        }
        Zipf {
            dist: rand_distr::Zipf::new(pages, exponent).ok(),
            pages,
            words_per_page: words_per_page.max(1),
            stride: stride.max(1),
        }
    }

    /// The next word index.
    #[inline]
    pub fn next_word(&mut self, rng: &mut SmallRng) -> u64 {
        let rank = match &self.dist {
            // Samples are whole numbers in [1, pages].
            Some(d) => (d.sample(rng) as u64).clamp(1, self.pages) - 1,
            None => rng.gen_range(0..self.pages),
        };
        let page = (rank as u128 * self.stride as u128 % self.pages as u128) as u64;
        page * self.words_per_page + rng.gen_range(0..self.words_per_page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn skewed_and_in_range() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut z = Zipf::new(1000, 512, DEFAULT_EXPONENT);
        let mut hits = vec![0u32; 1000];
        for _ in 0..100_000 {
            let w = z.next_word(&mut rng);
            assert!(w < 1000 * 512);
            hits[(w / 512) as usize] += 1;
        }
        hits.sort_unstable_by(|a, b| b.cmp(a));
        let top10: u32 = hits[..10].iter().sum();
        assert!(top10 > 30_000, "top 10 pages got {top10} of 100000");
    }
}
