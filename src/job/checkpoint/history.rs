//! An output's retained history in a checkpoint, so that `as_of` and subscribers
//! resuming with `since` reach back across a restore as they would have without one.
//!
//! Each served output is a chain of its own, `output:<name>`: an entry per batch of
//! changes, keyed by `t` and its time (big-endian, so the chain reads back in time
//! order), and `since`, the oldest time the history covers. A checkpoint writes the
//! batches added since the previous one and removes those the output forgot
//! ([`HistoryDelta`]); the rows themselves are not written, the restored dataflow
//! rebuilds them.

use std::sync::Arc;

use crate::checkpoint::CheckpointError;
use crate::pipeline::state::{Entries, SavedPart, frame_entry};
use crate::pipeline::{Diff, Time};
use crate::runtime::{Batch, HistoryDelta};

const SINCE: &[u8] = b"since";
/// What the name of an output's chain begins with.
pub(super) const CHAIN: &str = "output:";

/// The chain that holds output `name`'s history.
pub(super) fn chain(name: &str) -> String {
    format!("{CHAIN}{name}")
}

fn key(time: Time) -> Vec<u8> {
    let mut key = b"t".to_vec();
    key.extend_from_slice(&time.to_be_bytes());
    key
}

/// Output `name`'s history changes as a part of its chain.
pub(super) fn part(name: &str, delta: &HistoryDelta) -> SavedPart {
    let mut frames = Vec::new();
    for time in &delta.forgotten {
        frame_entry(&mut frames, &key(*time), None);
    }
    for batch in &delta.added {
        let changes: Vec<(&str, Diff)> = batch.changes.iter().map(|(row, diff)| (&**row, *diff)).collect();
        frame_entry(&mut frames, &key(batch.time), Some(&bincode::serialize(&changes).expect("changes serialize")));
    }
    frame_entry(&mut frames, SINCE, Some(&delta.since.to_be_bytes()));
    SavedPart { operator: chain(name), worker: 0, frames }
}

/// The history a chain's `entries` hold: `since` and the batches, oldest first (`None`
/// for an output the checkpoint has no history of).
pub(super) fn read(name: &str, entries: &Entries) -> Result<Option<(Time, Vec<Batch>)>, CheckpointError> {
    let damaged = |why: String| CheckpointError::Damaged { path: chain(name).into(), why };
    let mut since = None;
    let mut batches = Vec::new();
    for (key, value) in entries {
        if key == SINCE {
            let bytes = value.as_slice().try_into().map_err(|_| damaged("`since` is not a time".into()))?;
            since = Some(Time::from_be_bytes(bytes));
            continue;
        }
        let time = key
            .strip_prefix(b"t")
            .and_then(|t| t.try_into().ok())
            .map(Time::from_be_bytes)
            .ok_or_else(|| damaged(format!("not a history entry: {key:?}")))?;
        let changes: Vec<(String, Diff)> =
            bincode::deserialize(value).map_err(|e| damaged(format!("the changes at {time}: {e}")))?;
        let changes: Vec<(Arc<str>, Diff)> = changes.into_iter().map(|(row, diff)| (row.into(), diff)).collect();
        batches.push(Batch { time, changes: changes.into() });
    }
    Ok(since.map(|since| (since, batches)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Store;

    fn batch(time: Time, rows: &[(&str, Diff)]) -> Batch {
        Batch { time, changes: rows.iter().map(|(r, d)| (Arc::from(*r), *d)).collect::<Vec<_>>().into() }
    }

    /// Two checkpoints' parts applied in order, as a chain is read: the second's
    /// batches added, the forgotten one removed, `since` the latest.
    #[test]
    fn history_parts_read_back_as_a_chain() {
        let first = HistoryDelta {
            since: 0,
            added: vec![batch(3, &[("a", 1)]), batch(7, &[("a", -1), ("b", 2)])],
            forgotten: vec![],
        };
        let second = HistoryDelta { since: 4, added: vec![batch(300, &[("c", 1)])], forgotten: vec![3] };
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        for (frontier, delta) in [(10, first), (400, second)] {
            let mut checkpoint = store.begin();
            let (file, mut writer) = checkpoint.part(&chain("w")).unwrap();
            writer.put_frames(&part("w", &delta).frames).unwrap();
            let bytes = writer.finish().unwrap();
            checkpoint.add(&chain("w"), file, bytes, false);
            checkpoint.commit(&mut store, frontier, 0, serde_json::Value::Null).unwrap();
        }
        let entries: Entries = store.read(&chain("w")).unwrap().into_iter().collect();
        let (since, batches) = read("w", &entries).unwrap().unwrap();
        assert_eq!(since, 4);
        let got: Vec<(Time, Vec<(String, Diff)>)> =
            batches.iter().map(|b| (b.time, b.changes.iter().map(|(r, d)| (r.to_string(), *d)).collect())).collect();
        assert_eq!(got, vec![(7, vec![("a".into(), -1), ("b".into(), 2)]), (300, vec![("c".into(), 1)])]);
        assert!(read("w", &Vec::new()).unwrap().is_none());
        assert!(read("w", &vec![(b"x".to_vec(), vec![])]).is_err());
    }
}
