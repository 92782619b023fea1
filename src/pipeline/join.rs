//! Stream joins: windowed, interval, and as-of (a stream enriched from a table).
//!
//! Joins produce streams: a pair appears when its second record arrives, carrying the
//! later of the two stamps, and a retraction on either side retracts its pairs. State
//! is *retired* — forgotten, not retracted — once the other side's watermark proves
//! that no record that could still match will be applied. Pairs already produced stay
//! in the stream; windowed aggregates downstream decide when results go.
//!
//! Lateness: a record takes part in a windowed join if its window is still open to it
//! (`end + allowed_lateness > stamp`), and in interval and as-of joins if
//! `ts + allowed_lateness >= stamp` (as [`Lateness::After`](super::Lateness::After)).

use std::collections::BTreeMap;

use differential_dataflow::Hashable;
use serde::{Deserialize, Serialize};

use super::keyed::{KeySlots, KeyedLogic, Timers, keyed};
use super::{BuildError, Data, Diff, Stream, Time, Window, Windowing};

/// An update from the left or the right input of a join, with its event time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum Side<A, B> {
    Left(Time, A),
    Right(Time, B),
}

/// A multiset of records with stamps, consolidated on `(record, stamp)`.
fn adjust<T: PartialEq>(records: &mut Vec<(T, Time, Diff)>, record: T, stamp: Time, diff: Diff) {
    match records.iter().position(|(r, s, _)| *r == record && *s == stamp) {
        Some(i) => {
            records[i].2 += diff;
            if records[i].2 == 0 {
                records.swap_remove(i);
            }
        }
        None => records.push((record, stamp, diff)),
    }
}

impl<'s, D: Data> Stream<'s, D> {
    /// Pairs the records of `self` and `other` with equal keys in the same window.
    ///
    /// Both sides are windowed by `windowing` (tumbling or sliding; its emission and
    /// retention do not apply to streams) on their event times `ts` and `other_ts`.
    pub fn window_join<E: Data, K: Data>(
        self,
        other: Stream<'s, E>,
        name: &str,
        windowing: &Windowing,
        key: impl Fn(&D) -> K + 'static,
        ts: impl Fn(&D) -> Time + 'static,
        other_key: impl Fn(&E) -> K + 'static,
        other_ts: impl Fn(&E) -> Time + 'static,
    ) -> Stream<'s, (K, Window, D, E)> {
        let logic =
            WindowJoin { windowing: *windowing, keys: KeySlots::default(), timers: Timers::default(), out: Vec::new() };
        join(self, other, name, key, ts, other_key, other_ts, logic)
    }

    /// Pairs the records of `self` and `other` with equal keys whose event times satisfy
    /// `lower <= other_ts - ts <= upper`.
    ///
    /// # Errors
    /// When `lower > upper`.
    pub fn interval_join<E: Data, K: Data>(
        self,
        other: Stream<'s, E>,
        name: &str,
        (lower, upper): (i64, i64),
        allowed_lateness: Time,
        key: impl Fn(&D) -> K + 'static,
        ts: impl Fn(&D) -> Time + 'static,
        other_key: impl Fn(&E) -> K + 'static,
        other_ts: impl Fn(&E) -> Time + 'static,
    ) -> Result<Stream<'s, (K, D, E)>, BuildError> {
        if lower > upper {
            return Err(BuildError::operator(name, format!("interval bounds out of order: {lower} > {upper}")));
        }
        let logic = IntervalJoin {
            lower,
            upper,
            lateness: allowed_lateness,
            keys: KeySlots::default(),
            left_timers: Timers::default(),
            right_timers: Timers::default(),
            out: Vec::new(),
        };
        Ok(join(self, other, name, key, ts, other_key, other_ts, logic))
    }

    /// Enriches each record with the version of `table` in effect at its event time:
    /// the table record with the same key and the latest event time not after it
    /// (ties: the greatest record), or `None`. A late table record corrects the
    /// records it now governs.
    pub fn as_of_join<E: Data, K: Data>(
        self,
        table: Stream<'s, E>,
        name: &str,
        allowed_lateness: Time,
        key: impl Fn(&D) -> K + 'static,
        ts: impl Fn(&D) -> Time + 'static,
        table_key: impl Fn(&E) -> K + 'static,
        table_ts: impl Fn(&E) -> Time + 'static,
    ) -> Stream<'s, (D, Option<E>)> {
        let logic = AsOfJoin {
            lateness: allowed_lateness,
            keys: KeySlots::default(),
            stream_timers: Timers::default(),
            table_timers: Timers::default(),
            out: Vec::new(),
        };
        join(self, table, name, key, ts, table_key, table_ts, logic)
    }
}

/// Runs a two-input keyed logic and wraps its stamped output as a stream.
fn join<'s, D: Data, E: Data, K: Data, O: Data, L>(
    left: Stream<'s, D>,
    right: Stream<'s, E>,
    name: &str,
    key: impl Fn(&D) -> K + 'static,
    ts: impl Fn(&D) -> Time + 'static,
    other_key: impl Fn(&E) -> K + 'static,
    other_ts: impl Fn(&E) -> Time + 'static,
    logic: L,
) -> Stream<'s, O>
where
    L: KeyedLogic<Key = K, Value = Side<D, E>, Out = (O, Time)>,
{
    let clocks = [left.clock.clone(), right.clock.clone()];
    let mode = left.mode;
    let l = left.inner.map(move |(d, s)| ((key(&d), Side::Left(ts(&d), d)), s));
    let r = right.inner.map(move |(e, s)| ((other_key(&e), Side::Right(other_ts(&e), e)), s));
    let inner = keyed(l.concat(r), |(k, _): &(K, Side<D, E>)| k.hashed(), |kv| kv, &clocks, mode, name, logic);
    Stream { inner, clock: clocks[0].merge(&clocks[1]), mode }
}

type Pairs<O> = Vec<((O, Time), Diff)>;

fn drain_into<O>(pending: &mut Pairs<O>, time: Time, out: &mut Vec<((O, Time), Time, Diff)>) {
    out.extend(pending.drain(..).map(|(o, d)| (o, time, d)));
}

struct WindowJoin<K, D, E> {
    windowing: Windowing,
    keys: KeySlots<K, Vec<JoinWindow<D, E>>>,
    timers: Timers<u32>,
    out: Pairs<(K, Window, D, E)>,
}

struct JoinWindow<D, E> {
    window: Window,
    left: Vec<(D, Time, Diff)>,
    right: Vec<(E, Time, Diff)>,
}

impl<K: Data, D: Data, E: Data> KeyedLogic for WindowJoin<K, D, E> {
    type Key = K;
    type Value = Side<D, E>;
    type Out = ((K, Window, D, E), Time);

    fn update(&mut self, key: K, value: Side<D, E>, stamp: Time, diff: Diff) {
        let ts = match &value {
            Side::Left(ts, _) | Side::Right(ts, _) => *ts,
        };
        let windowing = self.windowing;
        let id = self.keys.slot(key);
        let Some((key, open)) = self.keys.get(id) else { return };
        for window in windowing.kind.windows(ts).filter(|w| windowing.applicable(w, stamp)) {
            let win = match open.iter().position(|x| x.window == window) {
                Some(i) => &mut open[i],
                None => {
                    self.timers.schedule(windowing.final_at(&window), id);
                    open.push(JoinWindow { window, left: Vec::new(), right: Vec::new() });
                    open.last_mut().expect("just pushed")
                }
            };
            match &value {
                Side::Left(_, d) => {
                    for (e, s, n) in &win.right {
                        self.out.push((((key.clone(), window, d.clone(), e.clone()), stamp.max(*s)), diff * n));
                    }
                    adjust(&mut win.left, d.clone(), stamp, diff);
                }
                Side::Right(_, e) => {
                    for (d, s, n) in &win.left {
                        self.out.push((((key.clone(), window, d.clone(), e.clone()), stamp.max(*s)), diff * n));
                    }
                    adjust(&mut win.right, e.clone(), stamp, diff);
                }
            }
        }
        if open.is_empty() {
            self.keys.release(id);
        }
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        // Retire a window once neither side can add to it.
        let w = watermarks[0].min(watermarks[1]);
        for id in self.timers.take_due(w) {
            let Some((_, open)) = self.keys.get(id) else { continue };
            open.retain(|win| w < self.windowing.final_at(&win.window));
            if open.is_empty() {
                self.keys.release(id);
            }
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        drain_into(&mut self.out, time, out);
    }
}

struct IntervalJoin<K, D, E> {
    lower: i64,
    upper: i64,
    lateness: Time,
    keys: KeySlots<K, Intervals<D, E>>,
    /// Left records, due for retirement by the right watermark.
    left_timers: Timers<u32>,
    /// Right records, due for retirement by the left watermark.
    right_timers: Timers<u32>,
    out: Pairs<(K, D, E)>,
}

struct Intervals<D, E> {
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

impl<K: Data, D: Data, E: Data> IntervalJoin<K, D, E> {
    /// When the right watermark retires a left record at `ts`: once every right record
    /// still to come is later than `ts + upper` (they have `ts_r + lateness >= W`).
    fn left_done(&self, ts: Time) -> Time {
        shift(ts, self.upper).unwrap_or(0) + self.lateness + 1
    }
    /// When the left watermark retires a right record at `ts`.
    fn right_done(&self, ts: Time) -> Time {
        shift(ts, -self.lower).unwrap_or(0) + self.lateness + 1
    }
}

impl<K: Data, D: Data, E: Data> KeyedLogic for IntervalJoin<K, D, E> {
    type Key = K;
    type Value = Side<D, E>;
    type Out = ((K, D, E), Time);

    fn update(&mut self, key: K, value: Side<D, E>, stamp: Time, diff: Diff) {
        let ts = match &value {
            Side::Left(ts, _) | Side::Right(ts, _) => *ts,
        };
        if ts + self.lateness < stamp {
            return;
        }
        let (left_done, right_done) = (self.left_done(ts), self.right_done(ts));
        let (lower, upper) = (self.lower, self.upper);
        let id = self.keys.slot(key);
        let Some((key, state)) = self.keys.get(id) else { return };
        match value {
            Side::Left(_, d) => {
                if let Some(hi) = shift(ts, upper) {
                    for (e, s, n) in state.right.range(shift(ts, lower).unwrap_or(0)..=hi).flat_map(|(_, v)| v) {
                        self.out.push((((key.clone(), d.clone(), e.clone()), stamp.max(*s)), diff * n));
                    }
                }
                adjust(state.left.entry(ts).or_default(), d, stamp, diff);
                self.left_timers.schedule(left_done, id);
            }
            Side::Right(_, e) => {
                if let Some(hi) = shift(ts, -lower) {
                    for (d, s, n) in state.left.range(shift(ts, -upper).unwrap_or(0)..=hi).flat_map(|(_, v)| v) {
                        self.out.push((((key.clone(), d.clone(), e.clone()), stamp.max(*s)), diff * n));
                    }
                }
                adjust(state.right.entry(ts).or_default(), e, stamp, diff);
                self.right_timers.schedule(right_done, id);
            }
        }
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        let (wl, wr) = (watermarks[0], watermarks[1]);
        let due: Vec<u32> = self.left_timers.take_due(wr).into_iter().chain(self.right_timers.take_due(wl)).collect();
        for id in due {
            let (upper, lower, lateness) = (self.upper, self.lower, self.lateness);
            let Some((_, state)) = self.keys.get(id) else { continue };
            state.left.retain(|&ts, v| !v.is_empty() && shift(ts, upper).unwrap_or(0) + lateness >= wr);
            state.right.retain(|&ts, v| !v.is_empty() && shift(ts, -lower).unwrap_or(0) + lateness >= wl);
            if state.left.is_empty() && state.right.is_empty() {
                self.keys.release(id);
            }
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        drain_into(&mut self.out, time, out);
    }
}

struct AsOfJoin<K, D, E> {
    lateness: Time,
    keys: KeySlots<K, AsOf<D, E>>,
    /// Stream records, due for retirement by the table watermark.
    stream_timers: Timers<u32>,
    /// Superseded table versions, due for retirement by both watermarks.
    table_timers: Timers<u32>,
    out: Pairs<(D, Option<E>)>,
}

struct AsOf<D, E> {
    /// Table records by event time.
    table: BTreeMap<Time, Vec<(E, Time, Diff)>>,
    /// Stream records by event time.
    stream: BTreeMap<Time, Vec<Held<D, E>>>,
}

impl<D, E> Default for AsOf<D, E> {
    fn default() -> Self {
        AsOf { table: BTreeMap::new(), stream: BTreeMap::new() }
    }
}

/// A stream record and the pair it has in the output.
struct Held<D, E> {
    record: D,
    stamp: Time,
    count: Diff,
    shown: (Option<E>, Time),
}

impl<D: Data, E: Data> AsOf<D, E> {
    /// The table version at `ts`, with its stamp.
    fn version(&self, ts: Time) -> Option<(E, Time)> {
        self.table.range(..=ts).rev().find_map(|(_, records)| {
            records.iter().filter(|(_, _, n)| *n > 0).max_by(|a, b| a.0.cmp(&b.0)).map(|(e, s, _)| (e.clone(), *s))
        })
    }
}

impl<K: Data, D: Data, E: Data> KeyedLogic for AsOfJoin<K, D, E> {
    type Key = K;
    type Value = Side<D, E>;
    type Out = ((D, Option<E>), Time);

    fn update(&mut self, key: K, value: Side<D, E>, stamp: Time, diff: Diff) {
        let ts = match &value {
            Side::Left(ts, _) | Side::Right(ts, _) => *ts,
        };
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
                }
                self.stream_timers.schedule(ts + self.lateness + 1, id);
            }
            Side::Right(_, e) => {
                adjust(state.table.entry(ts).or_default(), e, stamp, diff);
                // Re-match the stream records this version may govern.
                let next = state.table.range(ts + 1..).next().map_or(Time::MAX, |(t, _)| *t);
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
                self.table_timers.schedule(ts + self.lateness, id);
            }
        }
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        let (ws, wt) = (watermarks[0], watermarks[1]);
        let lateness = self.lateness;
        for id in self.stream_timers.take_due(wt) {
            let Some((_, state)) = self.keys.get(id) else { continue };
            // No table record at or before these stream records can still arrive.
            state.stream.retain(|&ts, held| !held.is_empty() && ts + lateness >= wt);
            if state.stream.is_empty() && state.table.is_empty() {
                self.keys.release(id);
            }
        }
        let settled = ws.min(wt);
        for id in self.table_timers.take_due(settled) {
            let Some((_, state)) = self.keys.get(id) else { continue };
            // A version whose successor precedes every future stream record and every
            // stream record still held is no longer needed.
            let horizon =
                state.stream.keys().next().map_or(Time::MAX, |&t| t + 1).min(settled.saturating_sub(lateness) + 1);
            let keep = state.table.range(..horizon).rev().find(|(_, r)| r.iter().any(|x| x.2 > 0)).map(|(t, _)| *t);
            if let Some(keep) = keep {
                state.table.retain(|&ts, records| ts >= keep && !records.is_empty());
            }
        }
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(Self::Out, Time, Diff)>) {
        drain_into(&mut self.out, time, out);
    }
}
