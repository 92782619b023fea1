//! Checkpoints, as the keyed operators see them: the job declares where their state
//! goes and what to restore ([`StateStore`], implemented by the job, as outputs go to
//! an [`OutputSink`](super::OutputSink)), and every keyed operator of the job being
//! built takes part (`JobState`).
//!
//! A checkpoint is asked for at a frontier `F` (the job has stopped feeding its inputs
//! and advanced them to `F`). Each keyed operator, on each worker, once its input
//! frontier has reached `F` (every update below `F` applied and flushed), hands the
//! store one [`SavedPart`]: the keys whose state changed since its previous part, its
//! settled rows, and the watermarks it has seen. Entries are bytes: a key's entry is
//! `KEY` + bincode of the key, its value bincode of the logic's saved state (none: the
//! key is gone); a settled row's entry is `SETTLED` + the checkpoint, worker and a
//! counter (unique, never overwritten), its value bincode of the row.
//!
//! A restored job builds every keyed operator with its logic seeded from the entries of
//! its name ([`StateStore::restore_entries`]): each worker keeps the keys the exchange
//! sends it (`hash % workers`), worker 0 the settled rows, and the operator emits what
//! it shows at the time before the restored frontier.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;

use super::Time;

/// An entry's key names a key of the operator.
pub(crate) const KEY: u8 = 0;
/// An entry's key names a settled row.
pub(crate) const SETTLED: u8 = 1;
/// The entry holding the operator's watermarks.
pub(crate) const WATERMARKS: u8 = 2;
/// The entry holding the layout of the operator's state ([`KeyedLogic::layout`]).
///
/// [`KeyedLogic::layout`]: super::keyed::KeyedLogic
pub(crate) const LAYOUT: u8 = 3;

/// Entries as a checkpoint gives them back: `(key, state)`, removed keys left out.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One keyed operator's part of a checkpoint, on one worker.
#[derive(Debug)]
pub struct SavedPart {
    /// The operator, as `<n>:<name>` (`n`: its place in the build order).
    pub operator: String,
    /// The worker.
    pub worker: usize,
    /// Its entries, framed as part files hold them ([`frame_entry`]), one after the
    /// other: one buffer rather than an allocation per key.
    pub frames: Vec<u8>,
}

/// Appends one entry to `frames` as a part file holds it: `len: u32 LE |
/// crc32(payload): u32 LE | payload`, the payload `key_len: u32 LE | key | 1 | state`,
/// or `key_len | key | 0` for a key that is gone.
pub fn frame_entry(frames: &mut Vec<u8>, key: &[u8], state: Option<&[u8]>) {
    let start = frames.len();
    frames.extend_from_slice(&[0; 8]);
    frames.extend_from_slice(&(key.len() as u32).to_le_bytes());
    frames.extend_from_slice(key);
    match state {
        Some(state) => {
            frames.push(1);
            frames.extend_from_slice(state);
        }
        None => frames.push(0),
    }
    let payload = &frames[start + 8..];
    let (len, crc) = ((payload.len() as u32).to_le_bytes(), crc32fast::hash(payload).to_le_bytes());
    frames[start..start + 4].copy_from_slice(&len);
    frames[start + 4..start + 8].copy_from_slice(&crc);
}

/// Where a job's keyed operators save checkpoints, and what they restore from.
///
/// # Constraints
/// - Shared by every worker: methods are called from worker threads.
pub trait StateStore: Send + Sync {
    /// The checkpoint to take once an operator's input frontier reaches `F`, as
    /// `(id, F)`, while one is asked for.
    fn requested(&self) -> Option<(u64, Time)>;
    /// Takes one operator's part of checkpoint `id`.
    fn save(&self, id: u64, part: SavedPart);
    /// The frontier a restored job starts from, if it is restored.
    fn restored_frontier(&self) -> Option<Time>;
    /// The entries of `operator` in the checkpoint restored from (every worker's).
    fn restore_entries(&self, operator: &str) -> Entries;
    /// Operator `operator` was built on a worker and takes part in checkpoints.
    fn register(&self, operator: &str);
    /// The job cannot be checkpointed: `why`.
    fn unsupported(&self, why: String);
    /// Whether the job cannot be checkpointed (then operators keep nothing for it).
    fn disabled(&self) -> bool;
}

/// What every keyed operator of the job being built on this worker shares: the store,
/// the worker's place, and the operators' count (for their names).
pub(crate) struct JobState {
    store: Arc<dyn StateStore>,
    worker: usize,
    workers: usize,
    operators: Cell<usize>,
}

thread_local! {
    /// The job being built on this thread, while its pipeline's `build` runs.
    static BUILDING: RefCell<Option<Rc<JobState>>> = const { RefCell::new(None) };
}

impl JobState {
    /// Runs `build` with every keyed operator it makes taking part in checkpoints of
    /// `store`.
    pub(crate) fn building<T>(
        store: Arc<dyn StateStore>,
        worker: usize,
        workers: usize,
        build: impl FnOnce() -> T,
    ) -> T {
        let state = Rc::new(JobState { store, worker, workers, operators: Cell::new(0) });
        let previous = BUILDING.with(|b| b.replace(Some(state)));
        let built = build();
        BUILDING.with(|b| *b.borrow_mut() = previous);
        built
    }

    /// The job being built on this thread, with the name of the operator `name` it is
    /// about to make (`<n>:<name>`), if a job is being built with a store.
    pub(crate) fn current(name: &str) -> Option<(Rc<JobState>, String)> {
        let state = BUILDING.with(|b| b.borrow().clone())?;
        let n = state.operators.get();
        state.operators.set(n + 1);
        Some((state, format!("{n}:{name}")))
    }

    /// Whether the job being built on this thread takes checkpoints.
    pub(crate) fn checkpointed() -> bool {
        BUILDING.with(|b| b.borrow().is_some())
    }

    /// Notes, if a job is being built on this thread, that `what` keeps state outside
    /// the keyed operators (a raw collection of an input, direct timely access): the job
    /// cannot be checkpointed.
    pub(crate) fn outside(what: &str) {
        if let Some(state) = BUILDING.with(|b| b.borrow().clone()) {
            state.store.unsupported(format!("{what} keeps state that checkpoints do not hold yet"));
        }
    }

    /// Notes that operator `operator` keeps state no checkpoint holds.
    pub(crate) fn unsupported(&self, operator: &str) {
        self.store.unsupported(format!("operator `{operator}` keeps state that checkpoints do not hold yet"));
    }

    pub(crate) fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    pub(crate) fn worker(&self) -> usize {
        self.worker
    }

    pub(crate) fn workers(&self) -> usize {
        self.workers
    }
}

/// `tag` + bincode of `value`.
pub(crate) fn entry_key(tag: u8, value: &impl Serialize) -> Vec<u8> {
    let mut key = vec![tag];
    bincode::serialize_into(&mut key, value).expect("keys serialize");
    key
}
