//! The generator's random draws beyond `rand`'s own: seed mixing, normal deviates,
//! weighted picks, shuffles and the running sums weighted picks draw from.
//!
//! All draw from a [`ChaCha8Rng`], the generator's one kind of random stream, which is
//! always seeded: the same seeds give the same records.

use std::f64::consts::TAU;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64's finalizer: spreads seeds over all bits.
pub(super) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A standard normal draw (Box–Muller).
pub(super) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

/// An index drawn with the weights whose running sums are `cdf`.
pub(super) fn pick(cdf: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let r = rng.random::<f64>() * cdf[cdf.len() - 1];
    cdf.partition_point(|&c| c <= r).min(cdf.len() - 1)
}

/// Puts `items` in a random order (Fisher–Yates).
pub(super) fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in 0..items.len() {
        let j = rng.random_range(i..items.len());
        items.swap(i, j);
    }
}

/// Running sums of `weights`.
pub(super) fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    weights
        .scan(0.0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect()
}
