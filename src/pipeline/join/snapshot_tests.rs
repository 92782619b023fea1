//! Joins restored from a checkpoint continue as the uninterrupted ones (see
//! `snapshot_check`), with the pairs of retired state as settled rows.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{AsOfJoin, IntervalJoin, Side, WindowJoin, event_time};
use crate::pipeline::keyed::Snapshot;
use crate::pipeline::snapshot_check::{Records, Step, Trip, check, key};
use crate::pipeline::{Emit, Time, WindowKind, Windowing};

/// Both sides' records around their own rising watermarks `[left, right]`, each stamped
/// with its side's, at event times on a 100 ms grid (so that equal ones are common).
/// Some records are retracted, while `live` says their state is: a retraction after its
/// record retired leaves a negative multiplicity, which no shown row can express.
fn steps(seed: u64, count: usize, live: &impl Fn(&Side<u16, u16>, [Time; 2]) -> bool) -> Vec<Step<u8, Side<u16, u16>>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut records = Records::new();
    let mut w: [Time; 2] = [10_000, 10_000];
    (0..count)
        .map(|_| {
            let updates = (0..rng.random_range(0..6))
                .map(|_| {
                    records.next(
                        &mut rng,
                        0.15,
                        |_, side| live(side, w),
                        |rng| {
                            let side = rng.random_range(0..2);
                            let ts = (w[side] - 2_000 + rng.random_range(0..5_000)) / 100 * 100;
                            let key = key(rng);
                            let v = rng.random_range(0..6u16);
                            let value = if side == 0 { Side::Left(ts, v) } else { Side::Right(ts, v) };
                            (key, value, w[side])
                        },
                    )
                })
                .collect();
            let watermarks = rng.random_bool(0.4).then(|| {
                for w in &mut w {
                    if rng.random_bool(0.7) {
                        *w += rng.random_range(0..800);
                    }
                }
                w.to_vec()
            });
            Step { updates, watermarks }
        })
        .collect()
}

/// Checks `new`'s logics over 20 seeds; their checkpoints hold settled rows.
fn check_seeds<L>(new: impl Fn() -> L, live: impl Fn(&Side<u16, u16>, [Time; 2]) -> bool)
where
    L: Snapshot<Key = u8, Value = Side<u16, u16>>,
    L::Out: std::fmt::Debug,
{
    let mut trip = Trip::default();
    for seed in 0..20 {
        trip += check(&new, &steps(seed, 300, &live), 2, seed);
    }
    assert!(trip.settled > 0 && trip.shown > trip.settled && trip.after > 0, "{trip:?}");
}

#[test]
fn restored_window_joins_continue_as_the_uninterrupted_ones() {
    for kind in [WindowKind::Tumbling { size: 2_000 }, WindowKind::Sliding { size: 3_000, slide: 1_000 }] {
        let windowing = Windowing { kind, allowed_lateness: 1_000, retention: None, emit: Emit::Eager };
        // A record's windows retire together, once both watermarks pass the last one's end.
        let live = |side: &Side<u16, u16>, w: [Time; 2]| {
            let last = kind.windows(event_time(side)).map(|win| windowing.final_at(&win)).min();
            last.is_some_and(|at| w[0].min(w[1]) < at)
        };
        check_seeds(|| WindowJoin::<u8, u16, u16>::new(windowing), live);
    }
}

#[test]
fn restored_interval_joins_continue_as_the_uninterrupted_ones() {
    for (lower, upper, lateness) in [(-500, 1_500, 300), (0, 0, 1_000), (-1_500, -500, 1_000)] {
        // A record retires once the other side's watermark passes the last event time
        // it pairs with, by more than the lateness.
        let live = |side: &Side<u16, u16>, w: [Time; 2]| match side {
            Side::Left(ts, _) => w[1] <= (*ts as i64 + upper).max(0) as Time + lateness,
            Side::Right(ts, _) => w[0] <= (*ts as i64 - lower).max(0) as Time + lateness,
        };
        check_seeds(|| IntervalJoin::<u8, u16, u16>::new(lower, upper, lateness), live);
    }
}

#[test]
fn restored_as_of_joins_continue_as_the_uninterrupted_ones() {
    for lateness in [0, 500, 3_000] {
        // A stream record retires once the table's watermark passes it by more than the
        // lateness; a table version may go once both do.
        let live = move |side: &Side<u16, u16>, w: [Time; 2]| match side {
            Side::Left(ts, _) => w[1] <= ts + lateness,
            Side::Right(ts, _) => w[0].min(w[1]) <= ts + lateness,
        };
        check_seeds(|| AsOfJoin::<u8, u16, u16>::new(lateness), live);
    }
}
