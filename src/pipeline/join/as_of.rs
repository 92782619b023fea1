//! The as-of join's logic: per key, the table's versions and the stream records with
//! the pair each shows. A stream record retires once no table record at or before it
//! can still come (its pair stays in the stream); a table version once no stream record
//! still held or to come can find it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::super::keyed::{KeySlots, KeyedLogic, Saving, Snapshot, SnapshotBytes, Timers};
use super::super::{Data, Diff, Time};
use super::{Pairs, Side, adjust, drain_into, event_time, repeat};

/// A stream record with its table version, and its stamp.
type Pair<D, E> = ((D, Option<E>), Time);

/// The [`KeyedLogic`] of [`Stream::as_of_join`](super::super::Stream::as_of_join).
pub(super) struct AsOfJoin<K, D, E> {
    lateness: Time,
    keys: KeySlots<K, AsOf<D, E>>,
    /// Stream records, due for retirement by the table watermark.
    stream_timers: Timers<u32>,
    /// Superseded table versions, due for retirement by both watermarks.
    table_timers: Timers<u32>,
    out: Pairs<(D, Option<E>)>,
    /// Pairs of retired stream records, for checkpoints (if tracked).
    settled: Option<Vec<Pair<D, E>>>,
}

/// One key's table and stream records (no event time without a record: a key without
/// any goes, its table timers with it).
#[derive(Serialize, Deserialize)]
#[serde(bound = "D: Data, E: Data")]
pub(super) struct AsOf<D, E> {
    /// Table records by event time.
    table: BTreeMap<Time, Vec<(E, Time, Diff)>>,
    /// Stream records by event time.
    stream: BTreeMap<Time, Vec<Held<D, E>>>,
    /// The deadlines of the key's table timers still to fire. Which versions a
    /// retirement keeps depends on when it runs, so the timers are state: a restored
    /// key gets them back, and a timer of a slot's previous key does nothing.
    table_due: BTreeSet<Time>,
}

impl<D, E> Default for AsOf<D, E> {
    fn default() -> Self {
        AsOf { table: BTreeMap::new(), stream: BTreeMap::new(), table_due: BTreeSet::new() }
    }
}

/// A stream record and the pair it has in the output.
#[derive(Serialize, Deserialize)]
#[serde(bound = "D: Data, E: Data")]
struct Held<D, E> {
    record: D,
    stamp: Time,
    count: Diff,
    shown: (Option<E>, Time),
}

impl<D: Data, E: Data> Held<D, E> {
    /// Appends the pair the record shows, as often as it is held.
    fn pair(&self, into: &mut Vec<Pair<D, E>>) {
        repeat(((self.record.clone(), self.shown.0.clone()), self.shown.1), self.count, into);
    }
}

impl<D: Data, E: Data> AsOf<D, E> {
    /// The table version at `ts`, with its stamp.
    fn version(&self, ts: Time) -> Option<(E, Time)> {
        self.table.range(..=ts).rev().find_map(|(_, records)| {
            records.iter().filter(|(_, _, n)| *n > 0).max_by(|a, b| a.0.cmp(&b.0)).map(|(e, s, _)| (e.clone(), *s))
        })
    }
}

impl<K: Data, D: Data, E: Data> AsOfJoin<K, D, E> {
    pub(super) fn new(lateness: Time) -> Self {
        AsOfJoin {
            lateness,
            keys: KeySlots::default(),
            stream_timers: Timers::default(),
            table_timers: Timers::default(),
            out: Vec::new(),
            settled: None,
        }
    }
}

impl<K: Data, D: Data, E: Data> KeyedLogic for AsOfJoin<K, D, E> {
    type Key = K;
    type Value = Side<D, E>;
    type Out = Pair<D, E>;

    fn update(&mut self, key: K, value: Side<D, E>, stamp: Time, diff: Diff) {
        let ts = event_time(&value);
        if ts + self.lateness < stamp {
            return;
        }
        let id = self.keys.slot(key);
        let Some((_, state)) = self.keys.get(id) else { return };
        match value {
            Side::Left(_, d) => {
                let version = state.version(ts);
                let held = state.stream.entry(ts).or_default();
                let i = held.iter().position(|h| h.record == d && h.stamp == stamp).unwrap_or_else(|| {
                    let out_stamp = version.as_ref().map_or(stamp, |(_, s)| stamp.max(*s));
                    held.push(Held { record: d, stamp, count: 0, shown: (version.map(|(e, _)| e), out_stamp) });
                    held.len() - 1
                });
                held[i].count += diff;
                let h = &held[i];
                self.out.push((((h.record.clone(), h.shown.0.clone()), h.shown.1), diff));
                if h.count == 0 {
                    held.swap_remove(i);
                    if held.is_empty() {
                        state.stream.remove(&ts);
                    }
                }
                self.stream_timers.schedule(ts + self.lateness + 1, id);
            }
            Side::Right(_, e) => {
                let records = state.table.entry(ts).or_default();
                adjust(records, e, stamp, diff);
                if records.is_empty() {
                    state.table.remove(&ts);
                }
                // Re-match the stream records this version may govern: up to the next
                // version in effect.
                let next = state
                    .table
                    .range(ts + 1..)
                    .find(|(_, records)| records.iter().any(|r| r.2 > 0))
                    .map_or(Time::MAX, |(t, _)| *t);
                let mut changes = Vec::new();
                for (&t, held) in state.stream.range(ts..next) {
                    let version = state.version(t);
                    for (i, h) in held.iter().enumerate() {
                        let out_stamp = version.as_ref().map_or(h.stamp, |(_, s)| h.stamp.max(*s));
                        let wanted = (version.as_ref().map(|(e, _)| e.clone()), out_stamp);
                        if wanted != h.shown {
                            changes.push((t, i, wanted));
                        }
                    }
                }
                for (t, i, wanted) in changes {
                    let h = &mut state.stream.get_mut(&t).expect("listed above")[i];
                    self.out.push((((h.record.clone(), h.shown.0.clone()), h.shown.1), -h.count));
                    self.out.push((((h.record.clone(), wanted.0.clone()), wanted.1), h.count));
                    h.shown = wanted;
                }
                if state.table_due.insert(ts + self.lateness) {
                    self.table_timers.schedule(ts + self.lateness, id);
                }
            }
        }
        if state.table.is_empty() && state.stream.is_empty() {
            self.keys.release(id);
        } else {
            self.keys.mark(id);
        }
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        let (ws, wt) = (watermarks[0], watermarks[1]);
        let lateness = self.lateness;
        for id in self.stream_timers.take_due(wt) {
            let Some((_, state)) = self.keys.get(id) else { continue };
            // No table record at or before these stream records can still arrive.
            let settled = &mut self.settled;
            state.stream.retain(|&ts, held| {
                let keep = ts + lateness >= wt;
                if !keep && let Some(settled) = settled.as_mut() {
                    held.iter().for_each(|h| h.pair(settled));
                }
                keep
            });
            let empty = state.stream.is_empty() && state.table.is_empty();
            self.keys.shrunk(id, empty);
        }
        let settled = ws.min(wt);
        for id in self.table_timers.take_due(settled) {
            let Some((_, state)) = self.keys.get(id) else { continue };
            let later = state.table_due.split_off(&(settled + 1));
            if std::mem::replace(&mut state.table_due, later).is_empty() {
                continue;
            }
            // A version whose successor precedes every future stream record and every
            // stream record still held is no longer needed.
            let horizon =
                state.stream.keys().next().map_or(Time::MAX, |&t| t + 1).min(settled.saturating_sub(lateness) + 1);
            let keep = state.table.range(..horizon).rev().find(|(_, r)| r.iter().any(|x| x.2 > 0)).map(|(t, _)| *t);
            if let Some(keep) = keep {
                state.table.retain(|&ts, _| ts >= keep);
            }
            self.keys.mark(id);
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        // Marks only tell checkpoints which keys changed.
        self.keys.take_dirty();
        drain_into(&mut self.out, time, out);
    }

    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<K, Self::Out>> {
        Some(self)
    }
}

impl<K: Data, D: Data, E: Data> Snapshot for AsOfJoin<K, D, E> {
    type Saved = AsOf<D, E>;

    fn save(&mut self, all: bool, out: Saving<'_, K, AsOf<D, E>>) {
        self.keys.save_changed(all, out, |state| Some(state));
    }

    /// A stream record goes exactly when the first table watermark past its deadline
    /// comes (whichever of its key's timers fires then), so each event time held gets
    /// its timer back; the table's timers are in the state.
    fn restore(&mut self, key: K, saved: AsOf<D, E>, shown: &mut Vec<Pair<D, E>>) {
        saved.stream.values().flatten().for_each(|h| h.pair(shown));
        let lateness = self.lateness;
        let stream_due: Vec<Time> = saved.stream.keys().map(|&ts| ts + lateness + 1).collect();
        let table_due: Vec<Time> = saved.table_due.iter().copied().collect();
        let id = self.keys.restore(key, saved);
        for at in stream_due {
            self.stream_timers.schedule(at, id);
        }
        for at in table_due {
            self.table_timers.schedule(at, id);
        }
    }

    fn track_settled(&mut self) {
        self.keys.track();
        self.settled.get_or_insert_with(Vec::new);
    }

    fn take_settled(&mut self) -> Vec<Pair<D, E>> {
        self.settled.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_before_a_retracted_one_governs_the_records_after_it() {
        let mut join = AsOfJoin::<u8, u16, u16>::new(1_000);
        join.update(0, Side::Right(10, 1), 0, 1);
        join.update(0, Side::Right(20, 2), 0, 1);
        join.update(0, Side::Left(25, 7), 0, 1);
        join.update(0, Side::Right(20, 2), 0, -1);
        // Version 3 now governs the record at 25: the retracted version 2 must not hide it.
        join.update(0, Side::Right(15, 3), 0, 1);
        let mut out = Vec::new();
        join.flush(0, &mut out);
        let mut content = BTreeMap::new();
        for (row, _, diff) in out {
            *content.entry(row).or_insert(0) += diff;
        }
        content.retain(|_, d| *d != 0);
        assert_eq!(content, BTreeMap::from([(((7, Some(3)), 0), 1)]));
    }
}
