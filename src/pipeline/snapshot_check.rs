//! The round trip every [`Snapshot`] logic is tested with: driven as its keyed operator
//! drives it (updates at a time, maybe new watermarks, then a flush), a logic saved at a
//! random step (a base) and at a later one (a delta over it), then restored into a fresh
//! logic, shows what the uninterrupted logic shows there, then changes as it does at
//! every later time, settles the same rows at the same times, and ends with the same
//! state.
//!
//! The last two checks are what make timers matter: a retirement is silent, so a
//! restored logic that forgot a timer changes its output no differently, only what it
//! keeps and when it settles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::keyed::Snapshot;
use super::{Diff, Time};

/// One step of a keyed operator: updates `(key, value, stamp, diff)` at one time, maybe
/// new watermarks (one per clock), then a flush at that time.
pub(crate) struct Step<K, V> {
    pub(crate) updates: Vec<(K, V, Time, Diff)>,
    pub(crate) watermarks: Option<Vec<Time>>,
}

/// What a round trip went through, for a test to check that its configuration
/// exercises what it is meant to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Trip {
    /// Rows the restored logic showed, settled ones included.
    pub(crate) shown: usize,
    /// Settled rows the checkpoint held.
    pub(crate) settled: usize,
    /// Output changes after the checkpoint.
    pub(crate) after: usize,
}

impl std::ops::AddAssign for Trip {
    fn add_assign(&mut self, other: Trip) {
        self.shown += other.shown;
        self.settled += other.settled;
        self.after += other.after;
    }
}

/// What a checkpoint holds of a logic: each key's state (bincode, as checkpoints hold
/// it) and the settled rows.
struct Chain<K, O> {
    keys: BTreeMap<K, Vec<u8>>,
    settled: Vec<O>,
}

impl<K: Ord + Clone, O> Chain<K, O> {
    fn new() -> Self {
        Chain { keys: BTreeMap::new(), settled: Vec::new() }
    }

    /// Saves `logic` over what the chain holds (every key if `all`, else the changes:
    /// the last word on a key wins, `None` removes it), and the rows settled meanwhile.
    fn save<L: Snapshot<Key = K, Out = O>>(&mut self, logic: &mut L, all: bool) {
        logic.save(all, &mut |key, state| match state {
            Some(state) => {
                self.keys.insert(key.clone(), bincode::serialize(state).expect("state serializes"));
            }
            None => {
                self.keys.remove(key);
            }
        });
        self.settled.extend(logic.take_settled());
    }
}

/// Runs `steps` from time `from` on; `watermarks` follows the last ones given. With
/// `settled`, the rows settled at each step are taken into it, with the step's time.
fn run<L: Snapshot>(
    logic: &mut L,
    steps: &[Step<L::Key, L::Value>],
    from: Time,
    watermarks: &mut Option<Vec<Time>>,
    mut settled: Option<&mut Vec<(L::Out, Time, Diff)>>,
) -> Vec<(L::Out, Time, Diff)> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let time = from + i as Time;
        for (key, value, stamp, diff) in &step.updates {
            logic.update(key.clone(), value.clone(), *stamp, *diff);
        }
        if let Some(w) = &step.watermarks {
            logic.watermark(w);
            *watermarks = Some(w.clone());
        }
        logic.flush(time, &mut out);
        if let Some(settled) = settled.as_mut() {
            settled.extend(logic.take_settled().into_iter().map(|row| (row, time, 1)));
        }
    }
    out
}

/// The collection `changes` add up to.
fn content<'a, O: Ord + Clone + 'a>(changes: impl IntoIterator<Item = (&'a O, Diff)>) -> BTreeMap<O, Diff> {
    let mut rows = BTreeMap::new();
    for (row, diff) in changes {
        *rows.entry(row.clone()).or_insert(0) += diff;
    }
    rows.retain(|_, d| *d != 0);
    rows
}

/// Changes as a sorted list of `(time, row, diff)`: their order within a time is the
/// slots', which a restore need not keep.
fn by_time<O: Ord + Clone>(changes: &[(O, Time, Diff)]) -> Vec<(Time, O, Diff)> {
    let mut sorted: Vec<_> = changes.iter().map(|(row, t, d)| (*t, row.clone(), *d)).collect();
    sorted.sort();
    sorted
}

/// Checks the round trip of the logics `new` makes over `steps`, with a base and a delta
/// at steps chosen by `seed`. `clocks` is the number of watermarks the logic reads (its
/// restore is given zeros if none moved before the checkpoint).
pub(crate) fn check<L>(new: impl Fn() -> L, steps: &[Step<L::Key, L::Value>], clocks: usize, seed: u64) -> Trip
where
    L: Snapshot,
    L::Out: Debug,
{
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0FFEE);
    let n = steps.len();
    let base_at = rng.random_range(n / 10..n / 2);
    // A short delta leaves most keys unchanged since the base: what changed silently
    // (a retirement) must be in it all the same.
    let delta_at =
        if rng.random_bool(0.5) { base_at + rng.random_range(1..8) } else { rng.random_range(base_at..n * 3 / 4) };

    // The uninterrupted logic tracks settled rows too, to compare when they settle.
    let mut steady = new();
    steady.track_settled();
    let (mut w, mut settled_after) = (None, Vec::new());
    let before = run(&mut steady, &steps[..delta_at], 0, &mut w, Some(&mut Vec::new()));
    let after = run(&mut steady, &steps[delta_at..], delta_at as Time, &mut w, Some(&mut settled_after));

    let mut saving = new();
    saving.track_settled();
    let mut chain = Chain::new();
    let mut w = None;
    run(&mut saving, &steps[..base_at], 0, &mut w, None);
    chain.save(&mut saving, true);
    run(&mut saving, &steps[base_at..delta_at], base_at as Time, &mut w, None);
    chain.save(&mut saving, false);
    let mut now = Chain::new();
    now.save(&mut saving, true);
    assert_eq!(chain.keys, now.keys, "seed {seed}: base + delta = the state now");

    // Restored as the keyed operator restores: tracking, the watermarks, then each key.
    let mut restored = new();
    restored.track_settled();
    restored.watermark(&w.clone().unwrap_or_else(|| vec![0; clocks]));
    let mut shown = chain.settled.clone();
    for (key, state) in &chain.keys {
        let state = bincode::deserialize(state).expect("state deserializes");
        restored.restore(key.clone(), state, &mut shown);
    }
    // Changes are cut at the checkpoint's frontier by their time, not by when they were
    // made: a logic may make one ahead of its time (a retraction it schedules), which a
    // restored logic makes again ([`Snapshot::take_restored`]).
    let frontier = delta_at as Time;
    let (made, mut resumed): (Vec<_>, Vec<_>) =
        restored.take_restored(frontier).into_iter().partition(|(_, t, _)| *t < frontier);
    let (steady_before, mut steady_after): (Vec<_>, Vec<_>) = before.into_iter().partition(|(_, t, _)| *t < frontier);
    steady_after.extend(after);
    assert_eq!(
        content(shown.iter().map(|row| (row, 1)).chain(made.iter().map(|(row, _, d)| (row, *d)))),
        content(steady_before.iter().map(|(row, _, d)| (row, *d))),
        "seed {seed}: the restored logic shows the content at the checkpoint"
    );
    let mut settled_resumed = Vec::new();
    resumed.extend(run(&mut restored, &steps[delta_at..], frontier, &mut w, Some(&mut settled_resumed)));
    assert_eq!(by_time(&resumed), by_time(&steady_after), "seed {seed}: the changes after the checkpoint");
    assert_eq!(by_time(&settled_resumed), by_time(&settled_after), "seed {seed}: the rows settled after it");

    let (mut ended, mut expected) = (Chain::new(), Chain::new());
    ended.save(&mut restored, true);
    expected.save(&mut steady, true);
    let differ: BTreeSet<&L::Key> =
        ended.keys.keys().chain(expected.keys.keys()).filter(|k| ended.keys.get(*k) != expected.keys.get(*k)).collect();
    assert!(differ.is_empty(), "seed {seed}: the state at the end differs at keys {differ:?}");
    Trip { shown: shown.len() + made.len(), settled: chain.settled.len(), after: steady_after.len() }
}

/// The updates of a stream: new records, and retractions of live ones with the stamp
/// they came with (a stream retracts exactly what it emitted).
pub(crate) struct Records<K, V> {
    live: Vec<(K, V, Time)>,
}

impl<K: Clone, V: Clone> Records<K, V> {
    pub(crate) fn new() -> Self {
        Records { live: Vec::new() }
    }

    /// With probability `retract`, a retraction of a live record that `may_retract`
    /// allows (if there is one); else the record `fresh` makes.
    pub(crate) fn next(
        &mut self,
        rng: &mut ChaCha8Rng,
        retract: f64,
        may_retract: impl Fn(&K, &V) -> bool,
        fresh: impl FnOnce(&mut ChaCha8Rng) -> (K, V, Time),
    ) -> (K, V, Time, Diff) {
        if rng.random_bool(retract) {
            let allowed: Vec<usize> =
                (0..self.live.len()).filter(|&i| may_retract(&self.live[i].0, &self.live[i].1)).collect();
            if !allowed.is_empty() {
                let (k, v, stamp) = self.live.swap_remove(allowed[rng.random_range(0..allowed.len())]);
                return (k, v, stamp, -1);
            }
        }
        let (k, v, stamp) = fresh(rng);
        self.live.push((k.clone(), v.clone(), stamp));
        (k, v, stamp, 1)
    }
}

/// A key: a few busy ones, some less so, and many rare (whose timers come due with no
/// update in between, and which a short delta leaves unchanged).
pub(crate) fn key(rng: &mut ChaCha8Rng) -> u8 {
    let range = [0..3, 3..10, 10..40][rng.random_range(0..3)].clone();
    rng.random_range(range)
}
