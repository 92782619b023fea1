//! Dedupe restored from a checkpoint continues as the uninterrupted one (see
//! `snapshot_check`), with retired windows' records as settled rows.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Dedupe;
use crate::pipeline::Time;
use crate::pipeline::snapshot_check::{Records, Step, Trip, check, key};

/// Records `(key, (ts, record))` around a rising watermark, some retracted (also once
/// their window has retired: dedupe ignores them then).
fn steps(seed: u64, count: usize) -> Vec<Step<u8, (Time, u16)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut records = Records::new();
    let mut w: Time = 10_000;
    (0..count)
        .map(|_| {
            let updates = (0..rng.random_range(0..6))
                .map(|_| {
                    records.next(
                        &mut rng,
                        0.2,
                        |_, _| true,
                        |rng| {
                            let ts = w - 2_000 + rng.random_range(0..5_000);
                            (key(rng), (ts, rng.random_range(0..8u16)), w)
                        },
                    )
                })
                .collect();
            let watermarks = rng.random_bool(0.4).then(|| {
                w += rng.random_range(0..800);
                vec![w]
            });
            Step { updates, watermarks }
        })
        .collect()
}

#[test]
fn restored_dedupe_continues_as_the_uninterrupted_one() {
    for (size, lateness) in [(1_000, 500), (2_000, 0)] {
        let mut trip = Trip::default();
        for seed in 0..20 {
            trip += check(|| Dedupe::<u8, u16>::new(size, lateness), &steps(seed, 300), 1, seed);
        }
        assert!(trip.settled > 0 && trip.shown > trip.settled && trip.after > 0, "{trip:?}");
    }
}
