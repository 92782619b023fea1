//! `stateful` groups restored from a checkpoint continue as the uninterrupted ones (see
//! `snapshot_check`), with the rows of retired groups as settled rows.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{GroupLogic, Groups};
use crate::pipeline::snapshot_check::{Records, Step, Trip, check, key};
use crate::pipeline::{Diff, Time};

/// Per group, one row `(key, ts, value, count)` per event it holds. With a lateness, it
/// retires that long after the latest event it holds (a retraction can bring that
/// back) and notes the watermark; a group that `goes` is then empty, its rows settled.
#[derive(Serialize, Deserialize)]
struct Tally {
    key: u8,
    lateness: Option<Time>,
    goes: bool,
    values: BTreeMap<(Time, u16), Diff>,
    shown: BTreeMap<(Time, u16), Diff>,
    /// The watermarks it retired at.
    retirements: Vec<Time>,
}

impl GroupLogic for Tally {
    type Value = (Time, u16);
    type Out = (u8, Time, u16, Diff);

    fn update(&mut self, value: (Time, u16), diff: Diff) {
        let n = self.values.entry(value).or_insert(0);
        *n += diff;
        if *n == 0 {
            self.values.remove(&value);
        }
    }

    fn settle(&mut self, out: &mut Vec<((u8, Time, u16, Diff), Diff)>) {
        let wanted: BTreeMap<(Time, u16), Diff> =
            self.values.iter().filter(|(_, n)| **n > 0).map(|(v, n)| (*v, *n)).collect();
        for (&(ts, v), n) in &self.shown {
            if wanted.get(&(ts, v)) != Some(n) {
                out.push(((self.key, ts, v, *n), -1));
            }
        }
        for (&(ts, v), n) in &wanted {
            if self.shown.get(&(ts, v)) != Some(n) {
                out.push(((self.key, ts, v, *n), 1));
            }
        }
        self.shown = wanted;
    }

    fn is_empty(&self) -> bool {
        (self.goes && !self.retirements.is_empty()) || (self.values.is_empty() && self.shown.is_empty())
    }

    fn retire_at(&self) -> Option<Time> {
        let latest = self.values.keys().map(|(ts, _)| *ts).max()?;
        self.lateness.map(|lateness| latest + lateness + 1)
    }

    fn retire(&mut self, watermark: Time) {
        self.retirements.push(watermark);
    }
}

/// Values `(key, (ts, value))` around a rising watermark (if `clocks` is 1), some
/// retracted.
fn steps(seed: u64, count: usize, clocks: usize) -> Vec<Step<u8, (Time, u16)>> {
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
                            let ts = w - 1_000 + rng.random_range(0..3_000);
                            let key = key(rng);
                            (key, (ts, rng.random_range(0..5u16)), w)
                        },
                    )
                })
                .collect();
            let watermarks = (clocks == 1 && rng.random_bool(0.4)).then(|| {
                w += rng.random_range(0..800);
                vec![w]
            });
            Step { updates, watermarks }
        })
        .collect()
}

fn groups(lateness: Option<Time>, goes: bool) -> Groups<u8, Tally, impl Fn(&u8) -> Tally> {
    Groups::new(move |&key: &u8| Tally {
        key,
        lateness,
        goes,
        values: BTreeMap::new(),
        shown: BTreeMap::new(),
        retirements: Vec::new(),
    })
}

#[test]
fn restored_retiring_groups_continue_as_the_uninterrupted_ones() {
    for lateness in [0, 1_500] {
        let mut trip = Trip::default();
        for seed in 0..20 {
            trip += check(|| groups(Some(lateness), true), &steps(seed, 300, 1), 1, seed);
        }
        assert!(trip.settled > 0 && trip.shown > trip.settled && trip.after > 0, "{trip:?}");
    }
}

/// Groups that stay after retiring are retired again when a later event moves their
/// point, and only then: a timer left from a point since moved does nothing.
#[test]
fn restored_groups_that_stay_after_retiring_continue_as_the_uninterrupted_ones() {
    let mut trip = Trip::default();
    for seed in 0..20 {
        trip += check(|| groups(Some(500), false), &steps(seed, 300, 1), 1, seed);
    }
    assert!(trip.shown > 0 && trip.after > 0, "{trip:?}");
}

#[test]
fn restored_groups_of_a_collection_continue_as_the_uninterrupted_ones() {
    let mut trip = Trip::default();
    for seed in 0..20 {
        trip += check(|| groups(None, true), &steps(seed, 300, 0), 0, seed);
    }
    assert!(trip.settled == 0 && trip.shown > 0 && trip.after > 0, "{trip:?}");
}
