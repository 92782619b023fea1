//! Checkpoints of a running job (ARCHITECTURE.md, "Durability"): the job's side of
//! the keyed operators' [`StateStore`], aligning a checkpoint, and what a job restores
//! from.
//!
//! [`RunningJob::checkpoint`] holds every input's router (no record, advance or clock
//! move gets through meanwhile), asks for a checkpoint at a new frontier `F` past every
//! record placed (records ahead of the watermark are placed at their event time) and
//! advances every input to it, waits for every keyed operator on every worker to hand
//! its part and for every output to reach `F` (each output's history changes are a part
//! too, see `history`), then writes the parts and a manifest holding `F`, the routers'
//! and dead letters' state, the sources' positions and where each sink stood
//! ([`crate::checkpoint::Store`]).
//! An operator hands its changes once: parts of a checkpoint that failed are kept and
//! written first by the next one, whose id is never the failed one's. A job started
//! [from](RunningJob::start_from) a checkpoint gets its routers and outputs' histories
//! back, its keyed operators seeded (re-partitioned over its workers), and its inputs
//! advanced to `F`; it is served once its outputs are rebuilt up to `F`, and its sinks
//! read their destinations back from where they stood.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod history;

use super::RunningJob;
use crate::checkpoint::{CheckpointError, Manifest, Store};
use crate::ingest::router::snapshot::{DeadLettersState, RouterState};
use crate::ingest::router::{DeadLetters, InputRouter};
use crate::pipeline::state::{Entries, SavedPart, StateStore};
use crate::pipeline::{DEAD_LETTER, Time};
use crate::runtime::Batch;
use crate::runtime::{Engine, RuntimeError};
use crate::sink::SinkPosition;
use crate::source::Position;

/// How long a checkpoint waits for the operators' parts.
const PART_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a checkpoint was not taken.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFailed {
    /// The job's pipeline keeps state checkpoints do not hold.
    #[error("this job cannot be checkpointed: {0}")]
    Unsupported(String),
    /// The job was started without checkpoints.
    #[error("this job takes no checkpoints")]
    Disabled,
    /// The operators did not hand their parts in time (or the runtime failed).
    #[error("the operators did not hand in their state within {0:?}")]
    Timeout(Duration),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The job could not be advanced.
    #[error(transparent)]
    Job(#[from] super::JobError),
    /// The checkpoint could not be written.
    #[error(transparent)]
    Store(#[from] CheckpointError),
    /// An input's log could not be held still for it.
    #[error("input `{input}`: {why}")]
    Input {
        /// The input.
        input: String,
        /// Why.
        why: String,
    },
}

/// Why a job takes no checkpoints at all (its inputs, or the server's setup).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoCheckpoints(pub String);

/// The job's own part of a manifest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobPart {
    /// Each input's router, by input name.
    routers: BTreeMap<String, RouterState>,
    /// The dead letters' placement.
    dead_letters: DeadLettersState,
    /// Each source's position, by input name, where the checkpoint held it (see
    /// [`kept_position`]).
    positions: BTreeMap<String, serde_json::Value>,
    /// Where each sink stood, by output name (absent: no sink knew).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    sinks: BTreeMap<String, SinkPosition>,
}

/// Where a checkpoint found the job's sources (held still) and sinks.
#[derive(Clone, Debug, Default)]
pub struct Positions {
    /// Each source's position, by input name.
    pub sources: BTreeMap<String, Position>,
    /// Where each sink stood, by output name: the output's history from there on,
    /// which the checkpoint holds, stands for what the sink wrote before it.
    pub sinks: BTreeMap<String, SinkPosition>,
}

/// What a job is restored from: a checkpoint's frontier, routers and operators' state.
pub struct Restored {
    frontier: Time,
    routers: BTreeMap<String, RouterState>,
    dead_letters: DeadLettersState,
    /// Each source's position, by input name: it starts again from there.
    pub positions: BTreeMap<String, Position>,
    /// Where each sink stood, by output name: it reads its destination back from there.
    pub sinks: BTreeMap<String, SinkPosition>,
    /// The keyed operators' entries, by operator.
    entries: BTreeMap<String, Entries>,
    /// Each output's retained history (`since`, batches), by output name.
    histories: BTreeMap<String, (Time, Vec<Batch>)>,
}

impl Restored {
    /// The current checkpoint of `store`, read whole, if there is one.
    pub fn read(store: &Store) -> Result<Option<Restored>, CheckpointError> {
        let Some(manifest) = store.current() else { return Ok(None) };
        let job: JobPart = serde_json::from_value(manifest.job.clone())
            .map_err(|e| CheckpointError::Damaged { path: "manifest".into(), why: format!("the job's part: {e}") })?;
        let mut entries = BTreeMap::new();
        let mut histories = BTreeMap::new();
        for operator in manifest.parts.keys() {
            let read: Entries = store.read(operator)?.into_iter().collect();
            match operator.strip_prefix(history::CHAIN) {
                Some(output) => {
                    if let Some(history) = history::read(output, &read)? {
                        histories.insert(output.to_string(), history);
                    }
                }
                None => {
                    entries.insert(operator.clone(), read);
                }
            }
        }
        let JobPart { routers, dead_letters, positions, sinks } = job;
        let positions = positions
            .into_iter()
            .map(|(input, kept)| {
                let position = restored_position(&kept).ok_or_else(|| CheckpointError::Damaged {
                    path: "manifest".into(),
                    why: format!("input `{input}`: not a position: {kept}"),
                })?;
                Ok((input, position))
            })
            .collect::<Result<_, CheckpointError>>()?;
        Ok(Some(Restored { frontier: manifest.frontier, routers, dead_letters, positions, sinks, entries, histories }))
    }

    /// The frontier it was taken at.
    pub fn frontier(&self) -> Time {
        self.frontier
    }
}

/// The job's side of its keyed operators' checkpoints.
#[derive(Default)]
pub(super) struct JobStore {
    request: Mutex<Option<(u64, Time)>>,
    /// The last checkpoint asked for.
    asked: AtomicU64,
    /// Every part handed and not yet written, oldest first, with its checkpoint's id.
    /// A part is the operator's changes since its previous one, which it no longer
    /// holds: a checkpoint that fails (or times out) after parts were handed keeps
    /// them, and the next one writes them first, in its chains.
    parts: Mutex<Vec<(u64, SavedPart)>>,
    /// Operators registered, on every worker: the parts a checkpoint waits for.
    operators: AtomicUsize,
    /// Their names.
    names: Mutex<std::collections::BTreeSet<String>>,
    unsupported: Mutex<Option<String>>,
    disabled: AtomicBool,
    restored: Option<(Time, BTreeMap<String, Entries>)>,
}

impl JobStore {
    /// A store restoring `restored`'s operators, if given.
    pub(super) fn new(restored: Option<&mut Restored>) -> JobStore {
        let restored = restored.map(|r| (r.frontier, std::mem::take(&mut r.entries)));
        JobStore { restored, ..JobStore::default() }
    }
}

impl JobStore {
    /// Why the restored checkpoint does not fit the operators the dataflow built (once
    /// it is installed): it holds one the dataflow does not build, or the dataflow
    /// builds one it does not hold (every operator hands a part to every checkpoint).
    pub(super) fn misfit(&self) -> Option<String> {
        let (_, entries) = self.restored.as_ref()?;
        let built = self.names.lock().expect("names lock");
        let held: std::collections::BTreeSet<&String> = entries.keys().collect();
        let built: std::collections::BTreeSet<&String> = built.iter().collect();
        if held == built {
            return None;
        }
        let (held, built) =
            (held.into_iter().cloned().collect::<Vec<_>>(), built.into_iter().cloned().collect::<Vec<_>>());
        Some(format!("it holds the state of operators {held:?}, and this job builds {built:?}"))
    }
}

impl StateStore for JobStore {
    fn requested(&self) -> Option<(u64, Time)> {
        *self.request.lock().expect("request lock")
    }

    fn save(&self, id: u64, part: SavedPart) {
        if id <= self.asked.load(Ordering::SeqCst) {
            self.parts.lock().expect("parts lock").push((id, part));
        }
    }

    fn restored_frontier(&self) -> Option<Time> {
        self.restored.as_ref().map(|(frontier, _)| *frontier)
    }

    fn restore_entries(&self, operator: &str) -> Entries {
        self.restored.as_ref().and_then(|(_, entries)| entries.get(operator).cloned()).unwrap_or_default()
    }

    fn register(&self, operator: &str) {
        self.operators.fetch_add(1, Ordering::SeqCst);
        self.names.lock().expect("names lock").insert(operator.to_string());
    }

    fn unsupported(&self, why: String) {
        self.unsupported.lock().expect("unsupported lock").get_or_insert(why);
        self.disabled.store(true, Ordering::SeqCst);
    }

    fn disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }
}

impl<E: Engine> RunningJob<E> {
    /// Why the job cannot be checkpointed, if it cannot.
    pub fn not_checkpointable(&self) -> Option<String> {
        match &self.state {
            None => Some(CheckpointFailed::Disabled.to_string()),
            Some(state) => state.unsupported.lock().expect("unsupported lock").clone(),
        }
    }

    /// Takes a checkpoint into `store` (see the module docs), with the sources' and
    /// sinks' `positions` taken while no input moves: `positions` is called once every
    /// input is held (a sink's position is then below the checkpoint's frontier).
    pub fn checkpoint(
        &self,
        store: &mut Store,
        at: u64,
        positions: impl FnOnce() -> Positions,
    ) -> Result<Manifest, CheckpointFailed> {
        let state = self.state.as_ref().ok_or(CheckpointFailed::Disabled)?;
        if let Some(why) = state.unsupported.lock().expect("unsupported lock").clone() {
            return Err(CheckpointFailed::Unsupported(why));
        }
        let mut routers: Vec<MutexGuard<'_, InputRouter>> =
            self.inputs.iter().map(|i| i.router.lock().expect("router lock")).collect();
        // Past every record placed: one ahead of the frontier (at its event time) is
        // still pending in its operator, which saves only what it has applied.
        let frontier = routers.iter().map(|r| r.clock.frontier().max(r.max_ts.unwrap_or(0))).max().unwrap_or(0) + 1;
        let checkpoint = store.begin();
        let id = checkpoint.id();
        state.asked.store(id, Ordering::SeqCst);
        *state.request.lock().expect("request lock") = Some((id, frontier));
        let advanced = routers.iter_mut().enumerate().try_for_each(|(i, router)| self.flush(i, router, frontier));
        let expected = state.operators.load(Ordering::SeqCst);
        let handed = advanced.map_err(CheckpointFailed::from).and_then(|()| {
            let done =
                || state.parts.lock().expect("parts lock").iter().filter(|(of, _)| *of == id).count() >= expected;
            if self.runtime.settle(&done, PART_TIMEOUT) { Ok(()) } else { Err(CheckpointFailed::Timeout(PART_TIMEOUT)) }
        });
        *state.request.lock().expect("request lock") = None;
        handed?;
        // The outputs at `F` (nothing past it can come while the routers are held): their
        // history up to there. Dead letters move on their own clock: theirs is taken as
        // far as it is (the letters still live come back with the dead letters' state).
        let at_frontier = || {
            let mut outputs = self.outputs.iter().filter(|o| o.name != DEAD_LETTER);
            outputs.all(|o| o.rows.frontier().is_none_or(|f| f >= frontier))
        };
        if !self.runtime.settle(&at_frontier, PART_TIMEOUT) {
            return Err(CheckpointFailed::Timeout(PART_TIMEOUT));
        }
        for output in &self.outputs {
            if let Some(delta) = output.rows.history_delta() {
                state.parts.lock().expect("parts lock").push((id, history::part(&output.name, &delta)));
            }
        }
        let now = Instant::now();
        let Positions { sources, sinks } = positions();
        let job = JobPart {
            routers: self.inputs.iter().zip(&routers).map(|(i, r)| (i.name.clone(), r.snapshot(now))).collect(),
            dead_letters: self.dead.lock().expect("dead letters lock").snapshot(),
            positions: sources.iter().map(|(input, at)| (input.clone(), kept_position(at))).collect(),
            sinks,
        };
        drop(routers);
        // Parts of a failed checkpoint first (the chains are read in order), kept until
        // a commit holds them.
        let mut parts = state.parts.lock().expect("parts lock");
        parts.sort_by_key(|(of, _)| *of);
        let mut checkpoint = checkpoint;
        for (_, part) in parts.iter() {
            let (file, mut writer) = checkpoint.part(&part.operator)?;
            writer.put_frames(&part.frames)?;
            let bytes = writer.finish()?;
            checkpoint.add(&part.operator, file, bytes, false);
        }
        let job = serde_json::to_value(&job).expect("the job's part serializes");
        let manifest = checkpoint.commit(store, frontier, at, job)?;
        parts.clear();
        Ok(manifest)
    }

    /// Gives the routers and dead letters their restored state, and advances every
    /// input to the restored frontier (after install: the operators are seeded).
    pub(super) fn resume_from(&self, restored: &Restored) -> Result<(), RuntimeError> {
        // The outputs' history first: what the dataflow makes below `F` rebuilds them.
        for output in &self.outputs {
            let (since, batches) =
                restored.histories.get(&output.name).cloned().unwrap_or((restored.frontier, Vec::new()));
            output.rows.restore_history(since, batches, restored.frontier);
        }
        // Inputs advance in order: a restored router's frontier is the checkpoint's.
        let now = Instant::now();
        for (i, input) in self.inputs.iter().enumerate() {
            let mut router = input.router.lock().expect("router lock");
            if let Some(state) = restored.routers.get(&input.name) {
                router.restore(state.clone(), now);
            }
            self.runtime.advance(
                self.id,
                i,
                router.clock.frontier().max(restored.frontier),
                router.clock.watermark(),
            )?;
            self.inputs[i].frontier.store(router.clock.frontier().max(restored.frontier), Ordering::SeqCst);
            self.inputs[i].watermark.store(router.clock.watermark(), Ordering::SeqCst);
        }
        // The dead letters still in the output come back at the times they were placed.
        let mut dead = self.dead.lock().expect("dead letters lock");
        dead.restore(restored.dead_letters.clone());
        let letters = dead.replace(restored.dead_letters.live.clone());
        let index = self.inputs.len();
        if !letters.is_empty() {
            self.runtime.push(self.id, index, 0, Box::new(letters))?;
        }
        let dead_frontier = DeadLetters::frontier_of(&restored.dead_letters);
        if dead_frontier > 0 {
            self.runtime.advance(self.id, index, dead_frontier, dead_frontier)?;
            self.dead_frontier.store(dead_frontier, Ordering::SeqCst);
        }
        drop(dead);
        let least = self.inputs.iter().map(|i| i.watermark.load(Ordering::SeqCst)).min().unwrap_or(0);
        self.watermark.store(least, Ordering::SeqCst);
        Ok(())
    }
}

/// A checkpoint's job part as a new job starts from it (a savepoint): the new job's
/// HTTP logs start empty, so its HTTP inputs start at their beginning, and its sinks
/// (writing elsewhere, or where the old job still writes) read their topics whole.
/// Kafka inputs keep the offsets.
pub fn for_a_new_job(mut job: serde_json::Value) -> serde_json::Value {
    if let Some(positions) = job.get_mut("positions").and_then(serde_json::Value::as_object_mut) {
        for position in positions.values_mut().filter(|p| p.is_u64()) {
            *position = serde_json::json!(0);
        }
    }
    if let Some(part) = job.as_object_mut() {
        part.remove("sinks");
    }
    job
}

/// The Kafka offsets a checkpoint's job part keeps for input `input`, if any.
pub fn kafka_position(job: &serde_json::Value, input: &str) -> Option<crate::kafka::Offsets> {
    match restored_position(job.get("positions")?.get(input)?)? {
        Position::Kafka { offsets } => Some(offsets),
        _ => None,
    }
}

/// A held source's position as a manifest keeps it: an HTTP log's length as a bare
/// number (as format 1 always did), a Kafka input's offsets as `{"kafka": {PARTITION:
/// OFFSET}}`.
fn kept_position(position: &Position) -> serde_json::Value {
    match position {
        Position::Logged { after } => serde_json::json!(after),
        Position::Kafka { offsets } => serde_json::json!({ "kafka": offsets }),
        other => serde_json::to_value(other).expect("a position serializes"),
    }
}

/// The position a manifest kept (see [`kept_position`]), if it is one.
fn restored_position(kept: &serde_json::Value) -> Option<Position> {
    if let Some(after) = kept.as_u64() {
        return Some(Position::Logged { after });
    }
    let offsets = serde_json::from_value(kept.get("kafka")?.clone()).ok()?;
    Some(Position::Kafka { offsets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_positions_read_back() {
        let offsets = [(0, 17), (2, 5)].into_iter().collect();
        for position in [Position::Logged { after: 812 }, Position::Kafka { offsets }] {
            let kept = kept_position(&position);
            assert_eq!(restored_position(&serde_json::from_str(&kept.to_string()).unwrap()), Some(position));
        }
        assert_eq!(restored_position(&serde_json::json!({"kafka": {"x": 1}})), None);
        assert_eq!(restored_position(&serde_json::json!("12")), None);
    }

    /// Sinks' positions are kept as `{"kafka": {"progress", "offsets"}}`; a job part
    /// written before sinks were kept (no `sinks`) still reads, and one without sinks
    /// is written as before.
    #[test]
    fn sink_positions_in_the_job_part() {
        let before = serde_json::json!({
            "routers": {}, "dead_letters": {"frontier": 7, "live": []}, "positions": {"events": 812}
        });
        let mut part: JobPart = serde_json::from_value(before.clone()).unwrap();
        assert!(part.sinks.is_empty());
        assert_eq!(serde_json::to_value(&part).unwrap(), before);
        let offsets = [(0, 17), (2, 5)].into_iter().collect();
        part.sinks.insert("windows".into(), SinkPosition::Kafka(crate::kafka::SinkPosition { progress: 90, offsets }));
        let kept = serde_json::to_value(&part).unwrap();
        assert_eq!(
            kept["sinks"],
            serde_json::json!({"windows": {"kafka": {"progress": 90, "offsets": {"0": 17, "2": 5}}}})
        );
        let read: JobPart = serde_json::from_value(kept).unwrap();
        assert_eq!(read.sinks, part.sinks);
        let unknown = serde_json::json!({"windows": {"kafka": {"progress": 90, "offsets": {}, "x": 1}}});
        assert!(serde_json::from_value::<BTreeMap<String, SinkPosition>>(unknown).is_err());
    }
}
