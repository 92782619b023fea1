//! Snapshots of an input's router and of the dead letters, for checkpoints.
//!
//! A [`RouterState`] holds what an [`InputRouter`] has learnt from its records and
//! calls, and none of its configuration, which a restored job rebuilds from its spec
//! (the input's name, codec and options, the workers, the idle timeout). Restored into
//! a router built with the same configuration, it judges, stamps and places every later
//! record as the router it was taken from would have, and the watermark, frontier and
//! lanes move on the same way. [`DeadLettersState`] does the same for [`DeadLetters`].
//!
//! # Format
//!
//! Both states are parts of a job's checkpoint, a versioned on-disk format: their serde
//! field names are stable, and a field is renamed or dropped only with a new version of
//! the checkpoint. Unknown fields are refused rather than skipped: a field this build
//! does not know is state it could not restore.
//!
//! # Instants
//!
//! An `Instant` means nothing to another process, so the router's instants (its last
//! arrival, each lane's last record) are kept as their age in whole milliseconds at the
//! snapshot's `now`, and restored as that age at the restore's `now`: an input that had
//! been quiet for 3 s is quiet for 3 s when restored, however long the job was down.
//! Ages are rounded down, the resolution at which the router reads the wall clock; with
//! an idle timeout in whole milliseconds, a lane idle at the snapshot is idle at restore.
//!
//! # Workers
//!
//! Only placement depends on the number of workers: a state taken with 1 worker can be
//! restored with 2, and records are judged and stamped as before, though they may land
//! on other workers.

// Nothing outside the tests takes snapshots until jobs write checkpoints.
#![cfg_attr(not(test), allow(dead_code, reason = "for the checkpoints of durable jobs"))]

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{DeadLetters, InputClock, InputRouter, Lane};
use crate::pipeline::DeadLetter;
use crate::pipeline::Time;

/// What an [`InputRouter`] holds beyond its configuration (see the module docs).
///
/// The fields are named as on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouterState {
    /// The input's watermark `W`: records are judged and stamped against it, and it
    /// never moves back.
    watermark: Time,
    /// The frontier `F` the input's dataflow was last advanced to: records are placed
    /// at `max(ts, F)`, and the next advance is past it.
    frontier: Time,
    /// The watermark sent with the last advance: a watermark that differs from it makes
    /// the next flush move the frontier, so operators learn of it.
    announced: Time,
    /// Whether a record was placed above its event time since the last advance: the
    /// next flush then steps the frontier past it.
    bumped: bool,
    /// The largest valid event time seen: where the wall-clock fallback of a quiet
    /// input counts from.
    max_ts: Option<Time>,
    /// Milliseconds from the last record with a valid event time to the snapshot: how
    /// long the input has been quiet, for the wall-clock fallback.
    quiet_ms: Option<u64>,
    /// The lanes, by partition. Their number matters too: a lane without records
    /// holds the watermark back until the idle timeout.
    lanes: Vec<SavedLane>,
    /// The worker that gets the next record of an input without lanes (they go round
    /// the workers). Taken modulo the workers at restore.
    next_worker: usize,
    /// The length of the shaped field fixed by the input's first valid record, if
    /// any: a record of another shape is invalid.
    shape: Option<usize>,
}

/// One lane of a [`RouterState`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedLane {
    /// Its watermark `W_p`, from its own records: its records are judged against
    /// `max(W_p, W)`, and the input's watermark follows the least active lane.
    watermark: Time,
    /// Milliseconds from its last record with a valid event time (or from its being
    /// added) to the snapshot: it is idle once that reaches the idle timeout.
    quiet_ms: u64,
}

/// What [`DeadLetters`] holds beyond its configuration (the retention).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadLettersState {
    /// The dead-letter input's frontier: the time the next dead letters are placed at.
    frontier: Time,
    /// The letters still in the output, with the times they were placed at (kept only
    /// by jobs that checkpoint).
    #[serde(default)]
    pub(crate) live: Vec<(DeadLetter, Time)>,
}

impl InputRouter {
    /// Its state at `now`, its instants kept as ages at `now`.
    pub(crate) fn snapshot(&self, now: Instant) -> RouterState {
        // In full, so that a new field must be sorted into state or configuration here.
        let InputRouter {
            name: _,
            codec: _,
            options: _,
            clock,
            max_ts,
            last_arrival,
            idle_timeout: _,
            lanes,
            workers: _,
            next,
            shape,
        } = self;
        let InputClock { max_out_of_orderness: _, watermark, frontier, announced, bumped } = *clock;
        RouterState {
            watermark,
            frontier,
            announced,
            bumped,
            max_ts: *max_ts,
            quiet_ms: last_arrival.map(|at| age_ms(at, now)),
            lanes: lanes
                .iter()
                .map(|l| SavedLane { watermark: l.watermark, quiet_ms: age_ms(l.active_at, now) })
                .collect(),
            next_worker: *next,
            shape: *shape,
        }
    }

    /// Puts this router, fresh from [`InputRouter::new`] with the configuration of the
    /// router `state` was taken from (the number of workers may differ), where that
    /// router was; the ages in `state` count back from `now`.
    pub(crate) fn restore(&mut self, state: RouterState, now: Instant) {
        let RouterState { watermark, frontier, announced, bumped, max_ts, quiet_ms, lanes, next_worker, shape } = state;
        let max_out_of_orderness = self.clock.max_out_of_orderness;
        self.clock = InputClock { max_out_of_orderness, watermark, frontier, announced, bumped };
        self.max_ts = max_ts;
        self.last_arrival = quiet_ms.map(|ms| back(now, ms));
        self.lanes =
            lanes.into_iter().map(|l| Lane { watermark: l.watermark, active_at: back(now, l.quiet_ms) }).collect();
        self.next = next_worker % self.workers.max(1);
        self.shape = shape;
    }
}

impl DeadLetters {
    /// Its state.
    pub(crate) fn snapshot(&self) -> DeadLettersState {
        let DeadLetters { frontier, retention: _, live } = self;
        DeadLettersState { frontier: *frontier, live: live.iter().flatten().cloned().collect() }
    }

    /// The dead-letter input's frontier a state was taken at.
    pub(crate) fn frontier_of(state: &DeadLettersState) -> Time {
        state.frontier
    }

    /// Puts dead letters fresh from [`DeadLetters::new`] where `state` was taken.
    pub(crate) fn restore(&mut self, state: DeadLettersState) {
        let DeadLettersState { frontier, live: _ } = state;
        self.frontier = frontier;
    }
}

/// The whole milliseconds from `at` to `now` (0 if `at` is later).
fn age_ms(at: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX)
}

/// The instant `ms` milliseconds before `now`, or the earliest `Instant` can express
/// if that is earlier (some platforms count from boot, which a checkpoint can predate):
/// an input quiet since before then is taken as quiet since then.
fn back(now: Instant, ms: u64) -> Instant {
    let before = |ms| now.checked_sub(Duration::from_millis(ms));
    before(ms).unwrap_or_else(|| now - Duration::from_millis(largest(|ms| before(ms).is_some())))
}

/// The largest `ms` for which `fits` holds, given that if it holds for one it holds for
/// all below: found bit by bit, from the top.
fn largest(fits: impl Fn(u64) -> bool) -> u64 {
    (0..u64::BITS).rev().map(|bit| 1 << bit).fold(0, |ms, bit| if fits(ms | bit) { ms | bit } else { ms })
}

#[cfg(test)]
mod tests;
