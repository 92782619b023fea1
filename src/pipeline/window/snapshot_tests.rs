//! A window logic (fixed or session) saved at a random step (a base, then a delta),
//! restored into a fresh one, shows what the uninterrupted logic shows and then changes
//! exactly as it does.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::fixed::FixedWindows;
use super::session::Sessions;
use crate::pipeline::aggregate::Stats;
use crate::pipeline::keyed::Snapshot;
use crate::pipeline::window::{Emit, Window, WindowKind, Windowing};
use crate::pipeline::{Diff, Num, StatsOut, Time};

type Row = (u8, Window, StatsOut);

/// The window logics under test, as the tests drive them.
trait Logic: Snapshot<Key = u8, Value = (Time, Num), Out = Row> {}
impl<L: Snapshot<Key = u8, Value = (Time, Num), Out = Row>> Logic for L {}

/// One step of the operator: updates, maybe a new watermark, then a flush.
struct Step {
    updates: Vec<(u8, Time, Num)>,
    watermark: Option<Time>,
}

fn steps(seed: u64, count: usize) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut watermark: Time = 10_000;
    (0..count)
        .map(|_| {
            let updates = (0..rng.random_range(0..6))
                .map(|_| {
                    let ts = watermark - 4_000 + rng.random_range(0..9_000);
                    (rng.random_range(0..6u8), ts, Num::new(f64::from(rng.random_range(-50..50i32))).unwrap())
                })
                .collect();
            let moved = rng.random_bool(0.4).then(|| {
                watermark += rng.random_range(0..1_500);
                watermark
            });
            Step { updates, watermark: moved }
        })
        .collect()
}

/// Runs `steps` from time `from` on, stamping updates with the current watermark.
fn run(logic: &mut impl Logic, steps: &[Step], from: Time, watermark: &mut Time) -> Vec<(Row, Time, Diff)> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        for (key, ts, value) in &step.updates {
            logic.update(*key, (*ts, *value), *watermark, 1);
        }
        if let Some(w) = step.watermark {
            *watermark = w;
            logic.watermark(&[w]);
        }
        logic.flush(from + i as Time, &mut out);
    }
    out
}

fn content(changes: &[(Row, Time, Diff)]) -> BTreeMap<String, Diff> {
    let mut rows = BTreeMap::new();
    for (row, _, diff) in changes {
        *rows.entry(format!("{row:?}")).or_insert(0) += diff;
    }
    rows.retain(|_, d| *d != 0);
    rows
}

/// Changes as a sorted list of `(time, row, diff)`.
fn by_time(changes: &[(Row, Time, Diff)]) -> Vec<(Time, String, Diff)> {
    let mut sorted: Vec<_> = changes.iter().map(|(row, t, d)| (*t, format!("{row:?}"), *d)).collect();
    sorted.sort();
    sorted
}

/// What a checkpoint holds of a logic: the keys' state (bincode, as checkpoints hold
/// it) and the settled rows.
#[derive(Clone, Debug, Default)]
struct Saved {
    keys: BTreeMap<u8, Vec<u8>>,
    settled: Vec<Row>,
}

/// Saves `logic` into `saved`: every key if `all`, else the changes; and the rows
/// settled meanwhile.
fn save<L: Logic>(logic: &mut L, all: bool, saved: &mut Saved) {
    logic.save(all, &mut |key, state| match state {
        Some(state) => {
            saved.keys.insert(*key, bincode::serialize(state).unwrap());
        }
        None => {
            saved.keys.remove(key);
        }
    });
    saved.settled.extend(logic.take_settled());
}

fn check<L: Logic>(new: impl Fn() -> L, seed: u64) {
    let steps = steps(seed, 300);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0FFEE);
    let base_at = rng.random_range(20..150);
    let delta_at = rng.random_range(base_at..200);

    let mut steady = new();
    let mut w = 0;
    let before = run(&mut steady, &steps[..delta_at], 0, &mut w);
    let after = run(&mut steady, &steps[delta_at..], delta_at as Time, &mut w);

    // A base at `base_at`, then a delta (the keys changed since, `None` for the gone
    // ones) at `delta_at`, read back as a chain is: the last word on a key wins.
    let mut saving = new();
    saving.track_settled();
    let mut chained = Saved::default();
    let mut w = 0;
    run(&mut saving, &steps[..base_at], 0, &mut w);
    save(&mut saving, true, &mut chained);
    run(&mut saving, &steps[base_at..delta_at], base_at as Time, &mut w);
    let mut delta = BTreeMap::new();
    saving.save(false, &mut |key, state| {
        delta.insert(*key, state.map(|s| bincode::serialize(s).unwrap()));
    });
    assert!(delta.len() <= 6);
    for (key, state) in delta {
        match state {
            Some(state) => chained.keys.insert(key, state),
            None => chained.keys.remove(&key),
        };
    }
    chained.settled.extend(saving.take_settled());
    let mut everything = Saved::default();
    save(&mut saving, true, &mut everything);
    assert_eq!(chained.keys, everything.keys, "seed {seed}: base + delta = the state now");

    let mut restored = new();
    restored.watermark(&[w]);
    let mut shown = chained.settled.clone();
    for (key, state) in &chained.keys {
        restored.restore(*key, bincode::deserialize::<L::Saved>(state).unwrap(), &mut shown);
    }
    let shown: Vec<(Row, Time, Diff)> = shown.into_iter().map(|row| (row, 0, 1)).collect();
    assert_eq!(
        content(&shown),
        content(&before),
        "seed {seed}: the restored logic shows the content at the checkpoint"
    );
    assert!(!shown.is_empty(), "seed {seed}: something was shown");
    let resumed = run(&mut restored, &steps[delta_at..], delta_at as Time, &mut w);
    // The same changes at the same times (their order within a time is the slots').
    assert_eq!(by_time(&resumed), by_time(&after), "seed {seed}: after the checkpoint");
    assert!(!after.is_empty());
}

#[test]
fn restored_sliding_windows_continue_as_the_uninterrupted_ones() {
    let windowing = Windowing {
        kind: WindowKind::Sliding { size: 3_000, slide: 1_000 },
        allowed_lateness: 2_000,
        retention: Some(4_000),
        emit: Emit::Eager,
    };
    for seed in 0..20 {
        check(|| FixedWindows::new(windowing, Stats), seed);
    }
}

#[test]
fn restored_tumbling_windows_continue_as_the_uninterrupted_ones() {
    let windowing = Windowing {
        kind: WindowKind::Tumbling { size: 2_000 },
        allowed_lateness: 1_000,
        retention: None,
        emit: Emit::OnClose,
    };
    for seed in 0..20 {
        check(|| FixedWindows::new(windowing, Stats), seed);
    }
}

#[test]
fn restored_sessions_continue_as_the_uninterrupted_ones() {
    for (retention, emit) in [(Some(3_000), Emit::Eager), (None, Emit::OnClose)] {
        let windowing =
            Windowing { kind: WindowKind::Session { gap: 1_500 }, allowed_lateness: 1_000, retention, emit };
        for seed in 0..20 {
            check(|| Sessions::new(windowing, Stats), seed);
        }
    }
}
