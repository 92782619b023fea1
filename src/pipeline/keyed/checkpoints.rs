//! A keyed operator's part in its job's checkpoints (see [`super::super::state`]): its
//! logic's state as entries of bytes, saved at the requested frontier and restored at
//! build.

use std::rc::Rc;

use differential_dataflow::Hashable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::super::Time;
use super::super::clock::ClockReader;
use super::super::state::{JobState, KEY, LAYOUT, SETTLED, SavedPart, WATERMARKS, entry_key, frame_entry};
use super::{Diff, KeyedLogic, Snapshot};

/// The keyed operator's side of checkpoints, over any [`Snapshot`] logic: its state as
/// entries of bytes (see [`super::super::state`]), and back.
pub(crate) trait SnapshotBytes<K, O> {
    /// Appends the entries of the keys changed since the last call (`KEY` entries),
    /// framed, to `frames`.
    fn save_bytes(&mut self, frames: &mut Vec<u8>);
    /// Restores one key from its entry; appends the rows it shows.
    fn restore_bytes(&mut self, key: &[u8], state: &[u8], shown: &mut Vec<O>) -> Result<(), bincode::Error>;
    /// See [`Snapshot::track_settled`].
    fn track(&mut self);
    /// See [`Snapshot::take_settled`].
    fn settled(&mut self) -> Vec<O>;
    /// See [`Snapshot::take_restored`].
    fn restored(&mut self, frontier: Time) -> Vec<(O, Time, Diff)>;
    /// The worker this key's entry belongs to (the exchange's rule).
    fn owner(&self, key: &[u8], workers: usize) -> Result<usize, bincode::Error>;
}

impl<L: Snapshot> SnapshotBytes<L::Key, L::Out> for L
where
    L::Key: Serialize + DeserializeOwned,
{
    fn save_bytes(&mut self, frames: &mut Vec<u8>) {
        // One buffer for every key and state: no allocation per entry.
        let (mut key_bytes, mut state_bytes) = (Vec::new(), Vec::new());
        self.save(false, &mut |key, state| {
            key_bytes.clear();
            key_bytes.push(KEY);
            bincode::serialize_into(&mut key_bytes, key).expect("keys serialize");
            state_bytes.clear();
            if let Some(state) = state {
                bincode::serialize_into(&mut state_bytes, state).expect("state serializes");
            }
            frame_entry(frames, &key_bytes, state.map(|_| state_bytes.as_slice()));
        });
    }

    fn restore_bytes(&mut self, key: &[u8], state: &[u8], shown: &mut Vec<L::Out>) -> Result<(), bincode::Error> {
        let key: L::Key = bincode::deserialize(&key[1..])?;
        let state: L::Saved = bincode::deserialize(state)?;
        self.restore(key, state, shown);
        Ok(())
    }

    fn track(&mut self) {
        self.track_settled();
    }

    fn settled(&mut self) -> Vec<L::Out> {
        self.take_settled()
    }

    fn restored(&mut self, frontier: Time) -> Vec<(L::Out, Time, Diff)> {
        self.take_restored(frontier)
    }

    fn owner(&self, key: &[u8], workers: usize) -> Result<usize, bincode::Error> {
        let key: L::Key = bincode::deserialize(&key[1..])?;
        Ok((key.hashed() % workers as u64) as usize)
    }
}

/// A keyed operator's part in its job's checkpoints.
pub(super) struct Checkpoints {
    pub(super) job: Rc<JobState>,
    operator: String,
    /// The last checkpoint it took part in.
    taken: Option<u64>,
}

impl Checkpoints {
    /// Joins the checkpoints of the job being built, if it has a store and `logic` can
    /// be saved (else the job cannot be checkpointed).
    pub(super) fn join<L: KeyedLogic>(name: &str, logic: &mut L) -> Option<Checkpoints> {
        let (job, operator) = JobState::current(name)?;
        let Some(snapshot) = logic.as_snapshot() else {
            job.unsupported(&operator);
            return None;
        };
        snapshot.track();
        job.store().register(&operator);
        Some(Checkpoints { job, operator, taken: None })
    }

    /// Seeds `logic` from the checkpoint the job is restored from, if any; the rows it
    /// shows, at the time before the restored frontier.
    pub(super) fn restore<L: KeyedLogic>(&mut self, logic: &mut L) -> Vec<(L::Out, Time, Diff)> {
        let Some(frontier) = self.job.store().restored_frontier() else { return Vec::new() };
        let entries = self.job.store().restore_entries(&self.operator);
        let broken = |what: &str, error: bincode::Error| -> ! {
            panic!(
                "checkpoint: operator `{}`: {what} cannot be read ({error}); the checkpoint is damaged",
                self.operator
            )
        };
        if let Some((_, saved)) = entries.iter().find(|(key, _)| key.first() == Some(&LAYOUT)) {
            let (saved, layout) = (String::from_utf8_lossy(saved), logic.layout());
            if saved != layout {
                panic!(
                    "checkpoint: operator `{}` holds state of {saved}, and this job's is of {layout}: \
                     the state does not fit (inputs must be read again to recompute it)",
                    self.operator
                );
            }
        }
        if let Some((_, watermarks)) = entries.iter().find(|(key, _)| key.first() == Some(&WATERMARKS)) {
            let watermarks: Vec<Time> =
                bincode::deserialize(watermarks).unwrap_or_else(|e| broken("its watermarks", e));
            logic.watermark(&watermarks);
        }
        let (worker, workers) = (self.job.worker(), self.job.workers());
        let snapshot = logic.as_snapshot().expect("joined with a snapshot");
        let mut shown = Vec::new();
        for (key, value) in &entries {
            match key.first() {
                Some(&KEY) if snapshot.owner(key, workers).unwrap_or_else(|e| broken("a key", e)) == worker => {
                    snapshot.restore_bytes(key, value, &mut shown).unwrap_or_else(|e| broken("a key's state", e));
                }
                Some(&SETTLED) if worker == 0 => {
                    shown.push(bincode::deserialize(value).unwrap_or_else(|e| broken("a settled row", e)));
                }
                _ => {}
            }
        }
        let at = frontier.saturating_sub(1);
        let mut restored: Vec<(L::Out, Time, Diff)> = shown.into_iter().map(|row| (row, at, 1)).collect();
        restored.extend(snapshot.restored(frontier));
        restored
    }

    /// Hands the store this operator's part of the checkpoint asked for, once the input
    /// frontier `now` has reached its frontier.
    pub(super) fn take<L: KeyedLogic>(&mut self, now: Time, logic: &mut L, readers: &[ClockReader]) {
        if self.job.store().disabled() {
            // No checkpoint will take the settled rows: keep none.
            logic.as_snapshot().expect("joined with a snapshot").settled();
            return;
        }
        let Some((id, at)) = self.job.store().requested() else { return };
        if now < at || self.taken == Some(id) {
            return;
        }
        self.taken = Some(id);
        let worker = self.job.worker();
        let snapshot = logic.as_snapshot().expect("joined with a snapshot");
        let mut frames = Vec::new();
        snapshot.save_bytes(&mut frames);
        for (i, row) in snapshot.settled().iter().enumerate() {
            let row = bincode::serialize(row).expect("rows serialize");
            frame_entry(&mut frames, &entry_key(SETTLED, &(id, worker, i)), Some(&row));
        }
        let watermarks: Vec<Time> = readers.iter().map(ClockReader::watermark).collect();
        frame_entry(&mut frames, &[WATERMARKS], Some(&bincode::serialize(&watermarks).expect("times serialize")));
        frame_entry(&mut frames, &[LAYOUT], Some(logic.layout().as_bytes()));
        self.job.store().save(id, SavedPart { operator: self.operator.clone(), worker, frames });
    }
}
