//! Window members and pass-through restored from a checkpoint continue as the
//! uninterrupted ones (see `snapshot_check`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Members, PassThrough};
use crate::pipeline::snapshot_check::{Records, Step, Trip, check};
use crate::pipeline::{Emit, Time, WindowKind, Windowing};

/// Records `(ts, value)` around a rising watermark (their event time is their first
/// field, as `windowed` takes it from the record), some twice, some retracted.
fn steps(seed: u64, count: usize) -> Vec<Step<(Time, u16), Time>> {
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
                            let ts = (w - 2_000 + rng.random_range(0..5_000)) / 100 * 100;
                            ((ts, rng.random_range(0..3u16)), ts, w)
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
fn restored_members_continue_as_the_uninterrupted_ones() {
    let sliding = WindowKind::Sliding { size: 3_000, slide: 1_000 };
    let tumbling = WindowKind::Tumbling { size: 2_000 };
    for (kind, allowed_lateness, retention) in [(sliding, 1_000, Some(2_000)), (tumbling, 500, None)] {
        let windowing = Windowing { kind, allowed_lateness, retention, emit: Emit::Eager };
        let mut trip = Trip::default();
        for seed in 0..20 {
            trip += check(|| Members::new(windowing), &steps(seed, 300), 1, seed);
        }
        assert!(trip.shown > 0 && trip.after > 0, "{trip:?}");
    }
}

#[test]
fn restored_pass_through_shows_what_it_passed() {
    let mut trip = Trip::default();
    for seed in 0..20 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut records = Records::new();
        let steps: Vec<Step<u16, ()>> = (0..300)
            .map(|_| {
                let updates = (0..rng.random_range(0..6))
                    .map(|_| records.next(&mut rng, 0.3, |_, _| true, |rng| (rng.random_range(0..50u16), (), 0)))
                    .collect();
                Step { updates, watermarks: None }
            })
            .collect();
        trip += check(PassThrough::default, &steps, 0, seed);
    }
    assert!(trip.shown > 0 && trip.after > 0, "{trip:?}");
}
