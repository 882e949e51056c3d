//! Criterion benchmark of cache-mode replay's hot loop: `lru` and `clock`
//! (`vmlab::cache`) over 1M references drawn zipf(α = 1.0) over 100k
//! pages, in memory, at 10k frames (10% of the pages). Throughput is
//! references per second; the O(1) policies should run well above
//! 10 M references/s.
//!
//! `cargo bench -p vmlab --bench cache_policies -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use rand_distr::Zipf;
use vmlab::cache::{self, Options};

const REFS: usize = 1_000_000;
const PAGES: u64 = 100_000;
const FRAMES: u64 = 10_000;

fn zipf_trace() -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(1);
    let z = Zipf::new(PAGES, 1.0).expect("zipf parameters");
    // Ranks 1..=PAGES, scattered over u64 ids so that the map sees
    // arbitrary keys, not a dense range.
    (0..REFS)
        .map(|_| (rng.sample(z) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect()
}

fn bench(c: &mut Criterion) {
    let trace = zipf_trace();
    let mut g = c.benchmark_group("cache");
    g.throughput(Throughput::Elements(REFS as u64));
    g.sample_size(10);
    for name in ["lru", "clock"] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut p = cache::build(name, FRAMES, &Options::default()).expect("policy");
                black_box(p.serve(&trace))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
