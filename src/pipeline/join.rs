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

use differential_dataflow::Hashable;
use serde::{Deserialize, Serialize};

use super::keyed::{KeyedLogic, keyed};
use super::{BuildError, Data, Diff, Stream, Time, Window, Windowing};

mod as_of;
mod interval;
#[cfg(test)]
mod snapshot_tests;
mod windowed;

use as_of::AsOfJoin;
use interval::IntervalJoin;
use windowed::WindowJoin;

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
        join(self, other, name, key, ts, other_key, other_ts, WindowJoin::new(*windowing))
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
        let logic = IntervalJoin::new(lower, upper, allowed_lateness);
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
        join(self, table, name, key, ts, table_key, table_ts, AsOfJoin::new(allowed_lateness))
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

/// Pairs produced since the last flush, with their stamps.
type Pairs<O> = Vec<((O, Time), Diff)>;

fn drain_into<O>(pending: &mut Pairs<O>, time: Time, out: &mut Vec<((O, Time), Time, Diff)>) {
    out.extend(pending.drain(..).map(|(o, d)| (o, time, d)));
}

/// Appends `row` `n` times (a row a logic shows, with its multiplicity). Streams retract
/// exactly what they emitted, so a held record's multiplicity is positive.
fn repeat<O: Clone>(row: O, n: Diff, into: &mut Vec<O>) {
    into.extend(std::iter::repeat_n(row, n.max(0) as usize));
}

/// The time of a side's update.
fn event_time<D, E>(side: &Side<D, E>) -> Time {
    match side {
        Side::Left(ts, _) | Side::Right(ts, _) => *ts,
    }
}
