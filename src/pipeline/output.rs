//! A job's outputs leave the dataflow through an [`OutputSink`]: the runtime's
//! materialized outputs implement it; the operator here feeds it.

use std::sync::Arc;

use differential_dataflow::consolidation::consolidate_updates;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::{Collection, Diff, Row, Time};

/// One change of an output: a row as JSON text, when, and by how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The row, a JSON object.
    pub row: Arc<str>,
    /// When it changed.
    pub time: Time,
    /// By how much its multiplicity changed.
    pub diff: Diff,
}

/// Receives an output's changes from the workers.
///
/// # Constraints
/// - Per worker, `changes` only carries times below the frontier reported next, and
///   frontiers only move forward (`None`: the worker's output closed).
/// - Calls come from worker threads and must not block for long.
pub trait OutputSink: Send + Sync + 'static {
    /// Consolidated changes of one worker, at times its frontier has passed, in time
    /// order.
    fn changes(&self, worker: usize, changes: Vec<Change>);
    /// One worker's frontier moved.
    fn frontier(&self, worker: usize, frontier: Option<Time>);
}

/// Sends `rows`' changes to `target` as this worker's frontier passes their times:
/// consolidated, serialized to JSON, in time order, followed by the new frontier.
pub(crate) fn sink<R: Row>(rows: Collection<'_, R>, name: &str, target: Arc<dyn OutputSink>, worker: usize) {
    let mut pending: Vec<(R, Time, Diff)> = Vec::new();
    // Reused between steps: growing fresh vectors every step page-faults.
    let mut ready: Vec<(R, Time, Diff)> = Vec::new();
    let mut reported = Some(0);
    rows.inner.sink(Pipeline, &format!("Sink({name})"), move |(input, frontier)| {
        input.for_each(|_cap, data| pending.append(data));
        let now = frontier.frontier().first().copied();
        if now == reported {
            return;
        }
        ready.extend(pending.extract_if(.., |(_, t, _)| now.is_none_or(|f| *t < f)));
        consolidate_updates(&mut ready);
        if !ready.is_empty() {
            ready.sort_by_key(|(_, t, _)| *t);
            let changes: Vec<Change> = ready
                .drain(..)
                .map(|(row, time, diff)| {
                    let row: Arc<str> = serde_json::to_string(&row).expect("rows serialize to JSON").into();
                    Change { row, time, diff }
                })
                .collect();
            target.changes(worker, changes);
        }
        target.frontier(worker, now);
        reported = now;
    });
}
