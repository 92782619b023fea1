//! The jobs of a server: created from specs, persisted, restored, driven, deleted.
//!
//! Each job's spec is written to `DATA_DIR/jobs/<name>.json` (atomically: a temporary
//! file, then a rename) when it is created and removed when it is deleted; at start
//! the server restores every spec it finds. What a job was fed comes back with it: its
//! HTTP inputs apply their write-ahead logs, `DATA_DIR/log/<name>/<input>.log`
//! ([`crate::source::http::log`]; a new job starts with none, a deleted one's go), and
//! its Kafka inputs read their topics again from the offsets fixed when it was created,
//! kept in `DATA_DIR/state/<name>.json`; so it rebuilds the results of an uninterrupted
//! run. A job with a checkpoint in `DATA_DIR/checkpoints/<name>` comes back from it
//! instead ([`Restored`]) and its sources start from the positions it kept: the logs
//! after their checkpointed length, the topics from its offsets.
//!
//! Every job runs on a timely runtime of its own ([`Runtime`], `workers` threads), so a
//! pipeline that panics takes down its own job and no other. The server calls
//! [`JobManager::supervise`] periodically: a job whose runtime failed waits
//! ([`managed::JobState::Restarting`], with backoff) and is then started again as at a restart
//! of the server (from its data directory), on a new runtime, in place of the failed
//! run; after [`managed::MAX_FAILURES`] failures in a row it stays [`managed::JobState::Failed`].
//!
//! A job's life once started — its sources, sinks, failure and stop — is
//! [`ManagedJob`]'s ([`super::managed`]); this module creates, persists, restores,
//! restarts and deletes jobs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

mod files;

mod lifecycle;
mod savepoints;

pub use lifecycle::LifecycleError;
pub use savepoints::{SavepointError, SavepointInfo};

use files::{
    State, checkpoint_dir, history_path, keep_offsets, log_dir, read_state, spec_path, state_path, write_atomically,
};

use super::checkpoint::{NoCheckpoints, Restored};
use super::file_root::FileRoot;
use super::history::History;
use super::managed::{self, CheckpointInfo, JobState, ManagedJob};
use super::spec::{self, JobSpec, Origin, Policy, SpecError, ValidSpec};
use super::{JobError, JobOptions, RunningJob};
use crate::checkpoint::Store;
use crate::kafka;
use crate::pipeline::{Registry, Time, TimeMode};
use crate::runtime::{Keep, Runtime};
use crate::source::{Position, SourceSpec};
/// How long creating a job waits for Kafka brokers to tell its starting offsets.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings shared by every job of a server.
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// How many recent changes each output keeps for `as_of` and resuming subscribers.
    pub history: usize,
    /// How long dead letters stay (event time after arrival); `None` forever.
    pub dead_letter_retention: Option<Time>,
    /// The directory file sources read below (`--file-root`); without one, only the
    /// server's configuration may name files.
    pub file_root: Option<FileRoot>,
    /// How many jobs the API may create (`--max-jobs`); jobs of the configuration and
    /// restored ones count, but are never refused.
    pub max_jobs: usize,
}

/// The default of [`JobSettings::max_jobs`].
pub const MAX_JOBS: usize = 256;

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings { history: 100_000, dead_letter_retention: Some(3_600_000), file_root: None, max_jobs: MAX_JOBS }
    }
}

/// Why a job could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A job of that name exists.
    #[error("a job named `{0}` exists")]
    Exists(String),
    /// The server runs as many jobs as it may.
    #[error("the server runs {0} jobs, as many as it may (--max-jobs); delete one first")]
    TooMany(usize),
    /// The runtime could not install it.
    #[error(transparent)]
    Job(#[from] JobError),
    /// Its spec could not be persisted.
    #[error("cannot persist the job: {0}")]
    Persist(std::io::Error),
    /// Its checkpoint cannot be read (damaged, or of a newer format).
    #[error(transparent)]
    Checkpoint(crate::checkpoint::CheckpointError),
    /// The Kafka brokers of an input could not tell where its topic starts.
    #[error("inputs.{input}: {source}")]
    Kafka {
        /// The input.
        input: String,
        /// What went wrong.
        source: Box<kafka::ClientError>,
    },
}

/// A persisted job that could not be started again.
#[derive(Debug, thiserror::Error)]
#[error("job `{job}`: {why}")]
pub struct RestoreError {
    /// The job.
    pub job: String,
    /// Why.
    pub why: NotRestored,
}

/// Why a persisted job was not started again.
#[derive(Debug, thiserror::Error)]
pub enum NotRestored {
    /// Its spec cannot be read.
    #[error("cannot read its spec: {0}")]
    Read(std::io::Error),
    /// Its spec is no longer valid (say, the dataflow changed, or a file root did).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// It would not start.
    #[error(transparent)]
    Start(#[from] CreateError),
}

/// The jobs of a server.
pub struct JobManager {
    /// Workers per job.
    workers: usize,
    registry: Registry,
    data_dir: Option<PathBuf>,
    settings: JobSettings,
    jobs: RwLock<BTreeMap<String, Arc<ManagedJob>>>,
    /// Creations and deletions one at a time, so that names stay unique.
    changing: Mutex<()>,
    next_id: AtomicU64,
}

impl JobManager {
    /// Jobs on `workers` worker threads each, persisted in `data_dir/jobs` (not at
    /// all with `None`).
    pub fn new(
        workers: usize,
        registry: Registry,
        data_dir: Option<PathBuf>,
        settings: JobSettings,
    ) -> std::io::Result<JobManager> {
        if let Some(dir) = &data_dir {
            std::fs::create_dir_all(dir.join("jobs"))?;
        }
        Ok(JobManager {
            workers: workers.max(1),
            registry,
            data_dir,
            settings,
            jobs: RwLock::new(BTreeMap::new()),
            changing: Mutex::new(()),
            next_id: AtomicU64::new(1),
        })
    }

    /// The compiled-in dataflows.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The job `name`.
    pub fn get(&self, name: &str) -> Option<Arc<ManagedJob>> {
        self.jobs.read().expect("jobs lock").get(name).cloned()
    }

    /// Every job, by name.
    pub fn list(&self) -> Vec<Arc<ManagedJob>> {
        self.jobs.read().expect("jobs lock").values().cloned().collect()
    }

    /// Whether a job named `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.jobs.read().expect("jobs lock").contains_key(name)
    }

    /// What a spec from `origin` may name.
    fn policy(&self, origin: Origin) -> Policy<'_> {
        Policy { origin, file_root: self.settings.file_root.as_ref() }
    }

    /// Validates `spec` (written by `origin`), fixes the starting offsets of its Kafka
    /// inputs, starts the job, persists it and starts its sources and sinks. Blocks
    /// while the brokers answer and the workers install the dataflow; must run inside a
    /// tokio runtime.
    pub fn create(&self, spec: JobSpec, origin: Origin) -> Result<Arc<ManagedJob>, CreateError> {
        let valid = spec::validate(spec, &self.registry, &self.policy(origin))?;
        if self.contains(&valid.spec.name) {
            return Err(CreateError::Exists(valid.spec.name));
        }
        self.check_room(origin)?;
        let mut offsets = BTreeMap::new();
        for (i, source) in valid.sources.iter().enumerate() {
            if let SourceSpec::Kafka(kafka) = source {
                let input = valid.dataflow.description().inputs[i].name.clone();
                let resolved = crate::source::kafka::resolve(kafka, KAFKA_TIMEOUT)
                    .map_err(|source| CreateError::Kafka { input: input.clone(), source: Box::new(source) })?;
                offsets.insert(input, resolved);
            }
        }
        self.start(valid, State { offsets, suspended: false }, Some(origin))
    }

    /// Refuses a job from the API when the server runs as many as it may.
    fn check_room(&self, origin: Origin) -> Result<(), CreateError> {
        let running = self.jobs.read().expect("jobs lock").len();
        if origin == Origin::Api && running >= self.settings.max_jobs {
            return Err(CreateError::TooMany(running));
        }
        Ok(())
    }

    /// Starts a validated job from `state`; a new one (`created` by an origin) is
    /// checked against the job limit and persisted first, a restored one is not.
    fn start(&self, valid: ValidSpec, state: State, created: Option<Origin>) -> Result<Arc<ManagedJob>, CreateError> {
        let _changing = self.changing.lock().expect("changing lock");
        let name = valid.spec.name.clone();
        if self.contains(&name) {
            return Err(CreateError::Exists(name));
        }
        if let Some(origin) = created {
            self.check_room(origin)?;
        }
        let history = self.data_dir.as_ref().map(|dir| history_path(dir, &name));
        if let (Some(path), Some(_)) = (&history, created) {
            // A new job starts with an empty history, whatever a job of its name left.
            let _ = std::fs::remove_file(path);
        }
        if let (Some(from), Some(dir), Some(_)) = (&valid.spec.from_savepoint, &self.data_dir, created) {
            self.start_from_savepoint(&valid, from, &checkpoint_dir(dir, &name))?;
        }
        let history = Arc::new(History::open(history));
        if created.is_some() {
            let from = &valid.spec.from_savepoint;
            history.record("created", serde_json::json!({"dataflow": valid.spec.dataflow, "from_savepoint": from}));
        }
        let managed = self.launch(valid, state, created.is_some(), None, Instant::now(), history)?;
        self.jobs.write().expect("jobs lock").insert(name.clone(), managed.clone());
        if managed.state().0 == JobState::Running {
            tracing::info!(job = %name, dataflow = %managed.spec.dataflow, "job started");
        }
        Ok(managed)
    }

    /// Starts a job (persisted first if `persist`) at `now`, continuing `supervision` if
    /// given; a job that is not new and fails while it is built is returned waiting to
    /// restart (see [`RunningJob::unbuilt`]);
    /// the caller holds `changing` and puts the job in the map.
    fn launch(
        &self,
        valid: ValidSpec,
        state: State,
        persist: bool,
        supervision: Option<managed::Supervision>,
        now: Instant,
        history: Arc<History>,
    ) -> Result<Arc<ManagedJob>, CreateError> {
        let name = valid.spec.name.clone();
        let options = JobOptions {
            mode: TimeMode::Exact,
            keep: Keep::Served { history: self.settings.history },
            dead_letter_retention: self.settings.dead_letter_retention,
            // Served jobs take checkpoints once the manager writes them (issue 15).
            checkpoints: false,
        };
        // A checkpoint that cannot be read leaves the job failed, with the reason in its
        // status (its data directory is kept as it is, for inspection).
        // A new job starts afresh, unless from a savepoint (already in its store).
        let fresh = persist && valid.spec.from_savepoint.is_none();
        let (store, restored, unreadable) = match self.checkpoints(&name, &valid.sources, fresh) {
            Ok((store, restored)) => (store, restored, None),
            Err(CreateError::Checkpoint(error)) if !persist => {
                let why = format!("cannot restore its checkpoint: {error}");
                (Err(NoCheckpoints(why.clone())), None, Some(why))
            }
            Err(error) => return Err(error),
        };
        let options = JobOptions { checkpoints: store.is_ok(), ..options };
        let last = restored.as_ref().zip(store.as_ref().ok().and_then(Store::current)).map(|(_, m)| CheckpointInfo {
            id: m.id,
            frontier: m.frontier,
            bytes: m.bytes,
            duration_ms: 0,
            at: m.at,
        });
        let (mut held, mut restored_sinks) = (BTreeMap::new(), BTreeMap::new());
        if let Some(restored) = &restored {
            held = restored.positions.clone();
            restored_sinks = restored.sinks.clone();
            tracing::info!(job = %name, frontier = restored.frontier(), "restoring from its checkpoint");
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let runtime = Arc::new(Runtime::start(self.workers).map_err(JobError::from)?);
        let params = valid.params.clone();
        let started =
            RunningJob::start_from(runtime.clone(), id, &name, &valid.dataflow, valid.params, &options, restored);
        // A job of the server's (restored or restarting) whose pipeline fails while it is
        // built stays listed, waiting to be tried again: it can be seen and deleted. A
        // job being created is refused.
        let (job, unbuilt) = match started {
            Ok(job) => (job, None),
            Err(error @ (JobError::Runtime(_) | JobError::StateDoesNotFit(_))) if !persist => {
                (RunningJob::unbuilt(runtime, id, &name, &valid.dataflow, params, &options), Some(error))
            }
            Err(error) => return Err(error.into()),
        };
        let managed = Arc::new(ManagedJob::new(valid.spec, valid.sources, valid.sinks, job, history));
        managed.checkpoint_to(store, last);
        if let Some(supervision) = supervision {
            managed.supervise_as(supervision);
        }
        match unbuilt {
            // Trying again cannot help: the job's spec and its checkpoint disagree.
            Some(error @ JobError::StateDoesNotFit(_)) => {
                managed.give_up(error);
                return Ok(managed);
            }
            Some(error) => {
                managed.crashed(format_args!("the pipeline failed to start: {error}"), now);
                return Ok(managed);
            }
            None => {}
        }
        if let (Some(dir), true) = (&self.data_dir, persist) {
            let written = write_atomically(&state_path(dir, &name), &state)
                .and_then(|()| write_atomically(&spec_path(dir, &name), &managed.spec));
            written.map_err(|e| {
                managed.stop();
                CreateError::Persist(e)
            })?;
        }
        if let Some(why) = unreadable {
            managed.give_up(why);
            return Ok(managed);
        }
        if state.suspended {
            managed.stay_suspended();
            return Ok(managed);
        }
        let logs = self.data_dir.as_ref().map(|dir| log_dir(dir, &name));
        if let (Some(logs), true) = (&logs, persist) {
            // A new job starts with empty logs, whatever a job of its name left.
            let _ = std::fs::remove_dir_all(logs);
        }
        let mut offsets = state.offsets;
        let data_dir = self.data_dir.clone();
        managed.start(
            |input| match (held.remove(input), offsets.remove(input)) {
                // Partitions the checkpoint did not know yet start where the job did.
                (Some(Position::Kafka { offsets: reached }), Some(mut offsets)) => {
                    offsets.extend(reached);
                    Some(Position::Kafka { offsets })
                }
                (Some(position), _) => Some(position),
                (None, offsets) => offsets.map(|offsets| Position::Kafka { offsets }),
            },
            |input| keep_offsets(data_dir.clone(), &name, input),
            logs.as_deref(),
            restored_sinks,
        );
        let from = managed.last_checkpoint().0.map(|c| c.id);
        managed.history.record("started", serde_json::json!({"checkpoint": from}));
        Ok(managed)
    }

    /// The checkpoint store of job `name` and the checkpoint to restore from, if any;
    /// or why it takes none. A new job (`fresh`) starts without one, whatever a job of
    /// its name left.
    fn checkpoints(
        &self,
        name: &str,
        sources: &[SourceSpec],
        fresh: bool,
    ) -> Result<(Result<Store, NoCheckpoints>, Option<Restored>), CreateError> {
        let Some(data_dir) = &self.data_dir else {
            return Ok((Err(NoCheckpoints("the server runs without a data directory".into())), None));
        };
        if sources.iter().any(|s| !matches!(s, SourceSpec::Http | SourceSpec::Kafka(_))) {
            let why = "checkpoints hold the positions of HTTP and Kafka inputs only, not of files or the generator";
            return Ok((Err(NoCheckpoints(why.to_string())), None));
        }
        let dir = checkpoint_dir(data_dir, name);
        if fresh {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let store = Store::open(&dir).map_err(CreateError::Checkpoint)?;
        let restored = Restored::read(&store).map_err(CreateError::Checkpoint)?;
        Ok((Ok(store), restored))
    }

    /// One round of supervision at `now`: jobs whose pipeline failed are taken down
    /// to wait, and those whose wait is over start again. Blocks while they do.
    pub fn supervise(&self, now: Instant) {
        for job in self.list() {
            if job.watch(now) {
                self.restart(&job, now);
            }
        }
    }

    /// Starts `failed` (a restarting run) again, from the data directory as at a
    /// restart of the server, in its place; a start that fails counts as a failure.
    fn restart(&self, failed: &Arc<ManagedJob>, now: Instant) {
        let _changing = self.changing.lock().expect("changing lock");
        let name = failed.spec.name.clone();
        // Deleted, or restarted already, meanwhile.
        if !self.get(&name).is_some_and(|current| Arc::ptr_eq(&current, failed)) {
            return;
        }
        let mut supervision = failed.supervision();
        supervision.restarts += 1;
        supervision.due = None;
        match self.relaunch(failed, supervision, now) {
            Ok(managed) => {
                if managed.state().0 == JobState::Running {
                    tracing::info!(job = %name, restarts = supervision.restarts, "job restarted");
                }
                self.jobs.write().expect("jobs lock").insert(name, managed);
            }
            Err(error) => failed.give_up(format_args!("cannot restart: {error}")),
        }
    }

    /// Stops `current` and starts its job again in its place from the data directory,
    /// as at a restart of the server, continuing `supervision` and its history; the
    /// caller holds `changing` and puts the job in the map.
    fn relaunch(
        &self,
        current: &ManagedJob,
        supervision: managed::Supervision,
        now: Instant,
    ) -> Result<Arc<ManagedJob>, CreateError> {
        current.stop();
        let name = &current.spec.name;
        let state = self.data_dir.as_ref().map(|dir| read_state(&state_path(dir, name))).unwrap_or_default();
        let valid = spec::validate(current.spec.clone(), &self.registry, &self.policy(Origin::Operator))?;
        self.launch(valid, state, false, Some(supervision), now, current.history.clone())
    }

    /// Starts every job whose spec was persisted; returns those that failed and why.
    pub fn restore(&self) -> Vec<RestoreError> {
        let Some(dir) = &self.data_dir else { return Vec::new() };
        let mut failures = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir.join("jobs")) else { return failures };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let state = read_state(&state_path(dir, &name));
            let result = std::fs::read(&path)
                .map_err(NotRestored::Read)
                .and_then(|bytes| Ok(spec::parse(&bytes)?))
                .and_then(|spec| Ok(spec::validate(spec, &self.registry, &self.policy(Origin::Operator))?))
                .and_then(|valid| Ok(self.start(valid, state, None).map(|_| ())?));
            if let Err(why) = result {
                tracing::error!(job = %name, error = %why, "cannot restore job");
                failures.push(RestoreError { job: name, why });
            }
        }
        failures
    }

    /// Stops every job (their specs stay persisted).
    pub fn shutdown(&self) {
        for job in std::mem::take(&mut *self.jobs.write().expect("jobs lock")).into_values() {
            job.stop();
        }
    }
}
