//! [`Stream`]: an event-time stream whose records remember when they arrived.

use std::rc::Rc;

use differential_dataflow::{Hashable, VecCollection};

use super::aggregate::Aggregate;
use super::clock::Clock;
use super::keyed::keyed;
use super::state::JobState;
use super::window::{
    WindowKind,
    fixed::FixedWindows,
    members::{Members, PassThrough},
    session::Sessions,
};
use super::{BuildError, Collection, Data, Diff, Time, TimeMode, Window, Windowing};

/// An event-time stream of records of type `D`.
///
/// Each record carries its *stamp*, the watermark of its input when it arrived, which
/// windowed operators use to judge lateness exactly, whatever the batching. Streams
/// come from [`Job::input`](super::Job::input) and from stream operators (joins,
/// dedupe); [`Stream::window_aggregate`] turns one into a [`Collection`] of results.
pub struct Stream<'s, D: Data> {
    pub(crate) inner: VecCollection<'s, Time, (D, Time), Diff>,
    pub(crate) clock: Clock,
    pub(crate) mode: TimeMode,
}

impl<D: Data> Clone for Stream<'_, D> {
    fn clone(&self) -> Self {
        Stream { inner: self.inner.clone(), clock: self.clock.clone(), mode: self.mode }
    }
}

impl<'s, D: Data> Stream<'s, D> {
    /// Applies `f` to every record.
    pub fn map<D2: Data>(self, f: impl Fn(D) -> D2 + 'static) -> Stream<'s, D2> {
        let inner = self.inner.map(move |(d, stamp)| (f(d), stamp));
        Stream { inner, clock: self.clock, mode: self.mode }
    }

    /// Keeps the records for which `f` holds.
    pub fn filter(self, f: impl Fn(&D) -> bool + 'static) -> Stream<'s, D> {
        let inner = self.inner.filter(move |(d, _)| f(d));
        Stream { inner, clock: self.clock, mode: self.mode }
    }

    /// Replaces every record by the records `f` returns for it.
    pub fn flat_map<I>(self, f: impl Fn(D) -> I + 'static) -> Stream<'s, I::Item>
    where
        I: IntoIterator + 'static,
        I::Item: Data,
    {
        let inner = self.inner.flat_map(move |(d, stamp)| f(d).into_iter().map(move |x| (x, stamp)));
        Stream { inner, clock: self.clock, mode: self.mode }
    }

    /// Both streams' records; the watermark is the lower of the two.
    pub fn concat(self, other: Stream<'s, D>) -> Stream<'s, D> {
        let clock = self.clock.merge(&other.clock);
        Stream { inner: self.inner.concat(other.inner), clock, mode: self.mode }
    }

    /// The records as a plain differential collection: the escape hatch to raw
    /// differential dataflow. Records are never retracted by time: apply
    /// [`Stream::expire`] instead to bound what downstream operators keep.
    ///
    /// In a job that takes checkpoints the records pass through a keyed operator that
    /// counts each distinct record (its state, which checkpoints hold), so that a
    /// restored job gets the collection back: memory for every distinct record, once
    /// more than what downstream operators keep.
    pub fn collection(self) -> Collection<'s, D> {
        if !JobState::checkpointed() {
            return self.inner.map(|(d, _)| d);
        }
        let Stream { inner, clock, mode } = self;
        keyed(inner, |d: &D| d.hashed(), |d: D| (d, ()), &[clock], mode, "collection", PassThrough::default())
    }

    /// The records with their stamps (the watermark at arrival); held by checkpoints as
    /// [`Stream::collection`] is.
    pub fn stamped(self) -> Collection<'s, (D, Time)> {
        if !JobState::checkpointed() {
            return self.inner;
        }
        let Stream { inner, clock, mode } = self;
        let inner = inner.map(|(d, stamp)| ((d, stamp), stamp));
        let hash = |d: &(D, Time)| d.hashed();
        keyed(inner, hash, |d: (D, Time)| (d, ()), &[clock], mode, "stamped", PassThrough::default())
    }

    /// The records as a collection in which each is retracted again at time `until(record)`
    /// (or at once, if that time has passed when it arrives). In a job that takes
    /// checkpoints, the records not yet retracted are its state, which they hold.
    pub fn expire(self, until: impl Fn(&D) -> Time + 'static) -> Collection<'s, D> {
        if JobState::checkpointed() {
            return self.expire_checkpointed(until);
        }
        self.inner.map(|(d, _)| d).join_function(move |d: D| {
            let at = until(&d);
            [(d.clone(), 0, 1), (d, at, -1)]
        })
    }

    /// Aggregates the stream per key and window.
    ///
    /// Each record is keyed by `key`, placed in windows by its event time `ts`, and
    /// folds `value` into its windows' aggregate `agg`. The result holds one row
    /// `(key, window, aggregate)` per non-empty window, emitted, corrected, frozen and
    /// evicted as `windowing` says (see [`super::window`]).
    ///
    /// ```
    /// # use tidemark::pipeline::prelude::*;
    /// # fn build<'s>(views: Stream<'s, (String, u64)>, windowing: &Windowing) -> Collection<'s, (String, Window, u64)> {
    /// // views per page per window
    /// views.window_aggregate("views", windowing, |(page, _)| page.clone(), |(_, ts)| *ts, |_| (), Count)
    /// # }
    /// ```
    pub fn window_aggregate<K: Data, A: Aggregate>(
        self,
        name: &str,
        windowing: &Windowing,
        key: impl Fn(&D) -> K + 'static,
        ts: impl Fn(&D) -> Time + 'static,
        value: impl Fn(&D) -> A::In + 'static,
        agg: A,
    ) -> Collection<'s, (K, Window, A::Out)> {
        let Stream { inner, clock, mode } = self;
        let key = Rc::new(key);
        let hash_key = key.clone();
        let key_hash = move |d: &D| hash_key(d).hashed();
        let split = move |d: D| (key(&d), (ts(&d), value(&d)));
        match windowing.kind {
            WindowKind::Session { .. } => {
                keyed(inner, key_hash, split, &[clock], mode, name, Sessions::new(*windowing, agg))
            }
            _ => keyed(inner, key_hash, split, &[clock], mode, name, FixedWindows::new(*windowing, agg)),
        }
    }

    /// Each record in each of its windows: `(window, record)`, for computations over
    /// a window's whole content (clustering, training a model per window).
    ///
    /// A record enters the windows its arrival allows (`end + allowed_lateness` above
    /// the watermark when it arrived) and leaves each window when that window is
    /// evicted (`retention` after it is final; never without retention). `emit` does
    /// not apply: members are inputs, not results. Tumbling and sliding windows only
    /// (sessions depend on the data).
    ///
    /// Members change once per frontier step, at its last time, not at each record's
    /// own time: what is computed from a window (a clustering, a model) is computed
    /// once per step rather than once per distinct event time in it.
    ///
    /// # Errors
    /// With session windows (a record's windows depend on the others').
    pub fn windowed(
        self,
        name: &str,
        windowing: &Windowing,
        ts: impl Fn(&D) -> Time + 'static,
    ) -> Result<Collection<'s, (Window, D)>, BuildError> {
        if matches!(windowing.kind, WindowKind::Session { .. }) {
            return Err(BuildError::operator(name, "`windowed` does not take session windows"));
        }
        let Stream { inner, clock, .. } = self;
        let members = Members::new(*windowing);
        let split = move |d: D| (d.clone(), ts(&d));
        Ok(keyed(inner, |d: &D| d.hashed(), split, &[clock], TimeMode::Compact, name, members))
    }

    /// The records as a collection that changes once per frontier step, at its last
    /// time: for loops over everything seen so far, which then run once per step
    /// rather than once per distinct event time.
    pub fn batched(self, name: &str) -> Collection<'s, D> {
        let Stream { inner, clock, .. } = self;
        keyed(inner, |d: &D| d.hashed(), |d: D| (d, ()), &[clock], TimeMode::Compact, name, PassThrough::default())
    }
}
