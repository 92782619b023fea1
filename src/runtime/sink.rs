//! The operator that hands an output's changes to its [`OutputSink`].

use std::sync::Arc;

use differential_dataflow::consolidation::consolidate_updates;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::output::{Change, OutputSink, row_key};
use crate::pipeline::{Collection, Diff, Row, Time};

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
            let key_fields = target.key_fields();
            let changes: Vec<Change> = ready
                .drain(..)
                .map(|(row, time, diff)| {
                    let row: Arc<str> = serde_json::to_string(&row).expect("rows serialize to JSON").into();
                    let key = (!key_fields.is_empty()).then(|| row_key(&row, key_fields));
                    Change { row, key, time, diff }
                })
                .collect();
            target.changes(worker, changes);
        }
        target.frontier(worker, now);
        reported = now;
    });
}
