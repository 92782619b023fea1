//! The interval join's logic: per key, both sides' records by event time. A record
//! retires once the other side's watermark proves that nothing still to come falls in
//! its range; its pairs stay in the stream.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::super::keyed::{KeySlots, KeyedLogic, Saving, Snapshot, SnapshotBytes, Timers};
use super::super::{Data, Diff, Time};
use super::{Pairs, Side, adjust, drain_into, event_time, repeat};

/// A pair of an interval join, with its stamp.
type Pair<K, D, E> = ((K, D, E), Time);

/// The [`KeyedLogic`] of [`Stream::interval_join`](super::super::Stream::interval_join).
pub(super) struct IntervalJoin<K, D, E> {
    bounds: Bounds,
    keys: KeySlots<K, Intervals<D, E>>,
    /// Left records, due for retirement by the right watermark.
    left_timers: Timers<u32>,
    /// Right records, due for retirement by the left watermark.
    right_timers: Timers<u32>,
    out: Pairs<(K, D, E)>,
    /// Pairs of retired records, for checkpoints (if tracked).
    settled: Option<Vec<Pair<K, D, E>>>,
}

/// The join's condition `lower <= right ts - left ts <= upper`, and the allowed lateness.
#[derive(Clone, Copy)]
struct Bounds {
    lower: i64,
    upper: i64,
    lateness: Time,
}

/// One key's records of each side, by event time, with their stamps (no event time
/// without a record, so that what goes when depends on the records alone).
#[derive(Serialize, Deserialize)]
#[serde(bound = "D: Data, E: Data")]
pub(super) struct Intervals<D, E> {
    left: BTreeMap<Time, Vec<(D, Time, Diff)>>,
    right: BTreeMap<Time, Vec<(E, Time, Diff)>>,
}

impl<D, E> Default for Intervals<D, E> {
    fn default() -> Self {
        Intervals { left: BTreeMap::new(), right: BTreeMap::new() }
    }
}

/// `ts + by`, clamped to the range of times.
fn shift(ts: Time, by: i64) -> Option<Time> {
    u64::try_from(ts as i64 + by).ok()
}

impl Bounds {
    /// The event times of the right records a left record at `ts` pairs with.
    fn rights_of(self, ts: Time) -> Option<RangeInclusive<Time>> {
        shift(ts, self.upper).map(|hi| shift(ts, self.lower).unwrap_or(0)..=hi)
    }
    /// The event times of the left records a right record at `ts` pairs with.
    fn lefts_of(self, ts: Time) -> Option<RangeInclusive<Time>> {
        shift(ts, -self.lower).map(|hi| shift(ts, -self.upper).unwrap_or(0)..=hi)
    }
    /// When the right watermark retires a left record at `ts`: once every right record
    /// still to come is later than `ts + upper` (they have `ts_r + lateness >= W`).
    fn left_done(self, ts: Time) -> Time {
        shift(ts, self.upper).unwrap_or(0) + self.lateness + 1
    }
    /// When the left watermark retires a right record at `ts`.
    fn right_done(self, ts: Time) -> Time {
        shift(ts, -self.lower).unwrap_or(0) + self.lateness + 1
    }
}

impl<D: Data, E: Data> Intervals<D, E> {
    /// Appends the pairs of the left records at `ts` with the right ones held.
    fn left_pairs<K: Data>(&self, b: Bounds, key: &K, ts: Time, into: &mut Vec<Pair<K, D, E>>) {
        let (Some(range), Some(lefts)) = (b.rights_of(ts), self.left.get(&ts)) else { return };
        for (e, t, m) in self.right.range(range).flat_map(|(_, v)| v) {
            for (d, s, n) in lefts {
                repeat(((key.clone(), d.clone(), e.clone()), *s.max(t)), n * m, into);
            }
        }
    }

    /// Appends the pairs of the right records at `ts` with the left ones held.
    fn right_pairs<K: Data>(&self, b: Bounds, key: &K, ts: Time, into: &mut Vec<Pair<K, D, E>>) {
        let (Some(range), Some(rights)) = (b.lefts_of(ts), self.right.get(&ts)) else { return };
        for (d, s, n) in self.left.range(range).flat_map(|(_, v)| v) {
            for (e, t, m) in rights {
                repeat(((key.clone(), d.clone(), e.clone()), *s.max(t)), n * m, into);
            }
        }
    }

    /// Drops the records that neither watermark lets anything still to come pair with.
    /// Their pairs (counted once: with the right records still held, then the right
    /// records' with the left ones left) go to `settled`.
    fn retire<K: Data>(
        &mut self,
        b: Bounds,
        key: &K,
        (wl, wr): (Time, Time),
        settled: Option<&mut Vec<Pair<K, D, E>>>,
    ) {
        let left_retired = |ts: Time| b.left_done(ts) <= wr;
        let right_retired = |ts: Time| b.right_done(ts) <= wl;
        if let Some(settled) = settled {
            let retired: Vec<Time> = self.left.keys().copied().filter(|&ts| left_retired(ts)).collect();
            for ts in retired {
                self.left_pairs(b, key, ts, settled);
                self.left.remove(&ts);
            }
            let retired: Vec<Time> = self.right.keys().copied().filter(|&ts| right_retired(ts)).collect();
            for ts in retired {
                self.right_pairs(b, key, ts, settled);
            }
        }
        self.left.retain(|&ts, _| !left_retired(ts));
        self.right.retain(|&ts, _| !right_retired(ts));
    }
}

impl<K: Data, D: Data, E: Data> IntervalJoin<K, D, E> {
    pub(super) fn new(lower: i64, upper: i64, lateness: Time) -> Self {
        IntervalJoin {
            bounds: Bounds { lower, upper, lateness },
            keys: KeySlots::default(),
            left_timers: Timers::default(),
            right_timers: Timers::default(),
            out: Vec::new(),
            settled: None,
        }
    }
}

impl<K: Data, D: Data, E: Data> KeyedLogic for IntervalJoin<K, D, E> {
    type Key = K;
    type Value = Side<D, E>;
    type Out = Pair<K, D, E>;

    fn update(&mut self, key: K, value: Side<D, E>, stamp: Time, diff: Diff) {
        let ts = event_time(&value);
        let b = self.bounds;
        if ts + b.lateness < stamp {
            return;
        }
        let id = self.keys.slot(key);
        let Some((key, state)) = self.keys.get(id) else { return };
        match value {
            Side::Left(_, d) => {
                if let Some(range) = b.rights_of(ts) {
                    for (e, s, n) in state.right.range(range).flat_map(|(_, v)| v) {
                        self.out.push((((key.clone(), d.clone(), e.clone()), stamp.max(*s)), diff * n));
                    }
                }
                let records = state.left.entry(ts).or_default();
                adjust(records, d, stamp, diff);
                if records.is_empty() {
                    state.left.remove(&ts);
                }
                self.left_timers.schedule(b.left_done(ts), id);
            }
            Side::Right(_, e) => {
                if let Some(range) = b.lefts_of(ts) {
                    for (d, s, n) in state.left.range(range).flat_map(|(_, v)| v) {
                        self.out.push((((key.clone(), d.clone(), e.clone()), stamp.max(*s)), diff * n));
                    }
                }
                let records = state.right.entry(ts).or_default();
                adjust(records, e, stamp, diff);
                if records.is_empty() {
                    state.right.remove(&ts);
                }
                self.right_timers.schedule(b.right_done(ts), id);
            }
        }
        if state.left.is_empty() && state.right.is_empty() {
            self.keys.release(id);
        } else {
            self.keys.mark(id);
        }
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        let (wl, wr) = (watermarks[0], watermarks[1]);
        let due: Vec<u32> = self.left_timers.take_due(wr).into_iter().chain(self.right_timers.take_due(wl)).collect();
        for id in due {
            let Some((key, state)) = self.keys.get(id) else { continue };
            state.retire(self.bounds, key, (wl, wr), self.settled.as_mut());
            let empty = state.left.is_empty() && state.right.is_empty();
            self.keys.shrunk(id, empty);
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        // Marks only tell checkpoints which keys changed.
        self.keys.take_dirty();
        drain_into(&mut self.out, time, out);
    }

    fn layout(&self) -> String {
        format!("between {} and {}", self.bounds.lower, self.bounds.upper)
    }

    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<K, Self::Out>> {
        Some(self)
    }
}

impl<K: Data, D: Data, E: Data> Snapshot for IntervalJoin<K, D, E> {
    type Saved = Intervals<D, E>;

    fn save(&mut self, all: bool, out: Saving<'_, K, Intervals<D, E>>) {
        self.keys.save_changed(all, out, |state| Some(state));
    }

    /// Every record's update set its timer, and a record goes exactly when the first
    /// watermark at or past its deadline comes (whichever of its key's timers fires
    /// then): each event time held gets its timer back.
    fn restore(&mut self, key: K, saved: Intervals<D, E>, shown: &mut Vec<Pair<K, D, E>>) {
        let b = self.bounds;
        for &ts in saved.left.keys() {
            saved.left_pairs(b, &key, ts, shown);
        }
        let left_due: Vec<Time> = saved.left.keys().map(|&ts| b.left_done(ts)).collect();
        let right_due: Vec<Time> = saved.right.keys().map(|&ts| b.right_done(ts)).collect();
        let id = self.keys.restore(key, saved);
        for at in left_due {
            self.left_timers.schedule(at, id);
        }
        for at in right_due {
            self.right_timers.schedule(at, id);
        }
    }

    fn track_settled(&mut self) {
        self.keys.track();
        self.settled.get_or_insert_with(Vec::new);
    }

    fn take_settled(&mut self) -> Vec<Pair<K, D, E>> {
        self.settled.as_mut().map(std::mem::take).unwrap_or_default()
    }
}
