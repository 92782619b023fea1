//! Expire restored from a checkpoint continues as the uninterrupted one (see
//! `snapshot_check`): the records not yet retracted come back, shown before the
//! checkpoint's frontier and retracted again when they were due.

use std::rc::Rc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Expire;
use crate::pipeline::Time;
use crate::pipeline::snapshot_check::{Records, Step, Trip, check};

/// Records `(id, until)` arriving at step `i` (the check's time), due from a few steps
/// before (retracted at once) to far after; some retracted again.
fn steps(seed: u64, count: usize) -> Vec<Step<(u8, Time), ()>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut records = Records::new();
    (0..count as Time)
        .map(|i| {
            let updates = (0..rng.random_range(0..5))
                .map(|_| {
                    let (record, (), stamp, diff) = records.next(
                        &mut rng,
                        0.1,
                        |_, _| true,
                        |rng| ((rng.random_range(0..20u8), i.saturating_sub(3) + rng.random_range(0..60)), (), i),
                    );
                    (record, (), stamp, diff)
                })
                .collect();
            Step { updates, watermarks: None }
        })
        .collect()
}

/// A record `(id, until)` names its own retraction time.
type Until = Rc<dyn Fn(&(u8, Time)) -> Time>;

#[test]
fn restored_expire_continues_as_the_uninterrupted_one() {
    let mut trip = Trip::default();
    for seed in 0..30 {
        let until: Until = Rc::new(|record: &(u8, Time)| record.1);
        trip += check(|| Expire::new(until.clone()), &steps(seed, 200), 1, seed);
    }
    assert!(trip.shown > 0 && trip.after > 0, "{trip:?}");
}
