//! The jobs of a server: created from specs, persisted, restored, driven, deleted.
//!
//! Each job's spec is written to `DATA_DIR/jobs/<name>.json` (atomically: a temporary
//! file, then a rename) when it is created and removed when it is deleted; at start
//! the server restores every spec it finds. A job's data is not persisted: a job fed
//! over HTTP starts empty again after a restart.
//!
//! A job with generator or file sources, or with an idle timeout, has a driver task:
//! every 100 ms it feeds the generator's records and lets idle inputs follow the wall
//! clock ([`RunningJob::tick`]). File sources are read once, when the job starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::task::JoinHandle;

use super::spec::{self, JobSpec, Source, SpecError};
use super::{JobError, JobOptions, RunningJob};
use crate::ingest::format::{Chunk, NdjsonChunks};
use crate::ingest::generator::Generator;
use crate::pipeline::{Registry, Time, TimeMode};
use crate::runtime::{Keep, Runtime};

/// How often drivers feed generators and advance idle inputs.
const DRIVER_PERIOD: Duration = Duration::from_millis(100);

/// Settings shared by every job of a server.
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// How many recent changes each output keeps for `as_of` and resuming subscribers.
    pub history: usize,
    /// How long dead letters stay (event time after arrival); `None` forever.
    pub dead_letter_retention: Option<Time>,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings { history: 100_000, dead_letter_retention: Some(3_600_000) }
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepting input and keeping its outputs up to date.
    Running,
    /// A source or the runtime failed; its outputs keep their last content.
    Failed,
}

/// A job of the server.
pub struct ManagedJob {
    /// The spec it was created from.
    pub spec: JobSpec,
    /// A source per declared input.
    pub sources: Vec<Source>,
    /// The running dataflow.
    pub job: RunningJob,
    status: Mutex<(JobState, Option<String>)>,
    driver: Mutex<Option<JoinHandle<()>>>,
}

impl ManagedJob {
    /// Its state, and the error that made it fail.
    pub fn state(&self) -> (JobState, Option<String>) {
        self.status.lock().expect("status lock").clone()
    }

    fn fail(&self, error: impl std::fmt::Display) {
        tracing::error!(job = %self.spec.name, %error, "job failed");
        *self.status.lock().expect("status lock") = (JobState::Failed, Some(error.to_string()));
    }

    fn stop(&self) {
        if let Some(driver) = self.driver.lock().expect("driver lock").take() {
            driver.abort();
        }
        self.job.stop();
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
    /// The runtime could not install it.
    #[error(transparent)]
    Job(#[from] JobError),
    /// Its spec could not be persisted.
    #[error("cannot persist the job: {0}")]
    Persist(std::io::Error),
}

/// The jobs of a server.
pub struct JobManager {
    runtime: Arc<Runtime>,
    registry: Registry,
    data_dir: Option<PathBuf>,
    settings: JobSettings,
    jobs: RwLock<BTreeMap<String, Arc<ManagedJob>>>,
    /// Creations and deletions one at a time, so that names stay unique.
    changing: Mutex<()>,
    next_id: AtomicU64,
}

impl JobManager {
    /// Jobs on `runtime`, persisted in `data_dir/jobs` (not at all with `None`).
    pub fn new(
        runtime: Arc<Runtime>,
        registry: Registry,
        data_dir: Option<PathBuf>,
        settings: JobSettings,
    ) -> std::io::Result<JobManager> {
        if let Some(dir) = &data_dir {
            std::fs::create_dir_all(dir.join("jobs"))?;
        }
        Ok(JobManager {
            runtime,
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

    /// Validates `spec`, starts the job, persists its spec and starts its sources.
    /// Blocks while the workers install the dataflow; must run inside a tokio runtime.
    pub fn create(&self, spec: JobSpec) -> Result<Arc<ManagedJob>, CreateError> {
        let valid = spec::validate(spec, &self.registry)?;
        let _changing = self.changing.lock().expect("changing lock");
        let name = valid.spec.name.clone();
        if self.contains(&name) {
            return Err(CreateError::Exists(name));
        }
        let options = JobOptions {
            mode: TimeMode::Exact,
            keep: Keep::Served { history: self.settings.history },
            dead_letter_retention: self.settings.dead_letter_retention,
        };
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let job = RunningJob::start(self.runtime.clone(), id, &name, &valid.dataflow, valid.params, &options)?;
        let managed = Arc::new(ManagedJob {
            spec: valid.spec,
            sources: valid.sources,
            job,
            status: Mutex::new((JobState::Running, None)),
            driver: Mutex::new(None),
        });
        if let Some(dir) = &self.data_dir {
            persist(dir, &managed.spec).map_err(|e| {
                managed.stop();
                CreateError::Persist(e)
            })?;
        }
        start_sources(&managed);
        self.jobs.write().expect("jobs lock").insert(name.clone(), managed.clone());
        tracing::info!(job = %name, dataflow = %managed.spec.dataflow, "job started");
        Ok(managed)
    }

    /// Stops and removes the job `name` and its persisted spec; false if there is none.
    pub fn delete(&self, name: &str) -> bool {
        let _changing = self.changing.lock().expect("changing lock");
        let Some(job) = self.jobs.write().expect("jobs lock").remove(name) else { return false };
        job.stop();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_file(spec_path(dir, name));
        }
        tracing::info!(job = %name, "job deleted");
        true
    }

    /// Starts every job whose spec was persisted; returns the names that failed and why.
    pub fn restore(&self) -> Vec<(String, String)> {
        let Some(dir) = &self.data_dir else { return Vec::new() };
        let mut failures = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir.join("jobs")) else { return failures };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let result = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| spec::parse(&bytes).map_err(|e| e.to_string()))
                .and_then(|spec| self.create(spec).map(|_| ()).map_err(|e| e.to_string()));
            if let Err(error) = result {
                tracing::error!(job = %name, %error, "cannot restore job");
                failures.push((name, error));
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

fn spec_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("jobs").join(format!("{name}.json"))
}

/// Writes `spec` atomically: to a temporary file, then renamed into place.
fn persist(dir: &Path, spec: &JobSpec) -> std::io::Result<()> {
    let path = spec_path(dir, &spec.name);
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(spec).map_err(std::io::Error::other)?)?;
    std::fs::rename(&temporary, &path)
}

/// Reads file sources and starts the driver of generators and idle inputs.
fn start_sources(job: &Arc<ManagedJob>) {
    for (input, source) in job.sources.iter().enumerate() {
        if let Source::File { path } = source {
            let (job, path) = (job.clone(), path.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(error) = read_file(&job.job, input, &path) {
                    job.fail(format_args!("input `{}`: {error}", job.job.inputs()[input].name));
                }
            });
        }
    }
    let generated: Vec<_> = job
        .sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Source::Generator(spec) => Some((i, spec.clone())),
            _ => None,
        })
        .collect();
    let generator = (!generated.is_empty()).then(|| Generator::new(generated));
    if generator.is_none() && job.job.params().idle_timeout.is_none() {
        return;
    }
    let handle = tokio::spawn(drive(job.clone(), generator));
    *job.driver.lock().expect("driver lock") = Some(handle);
}

/// Replays an NDJSON file into an input.
fn read_file(job: &RunningJob, input: usize, path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut chunks = NdjsonChunks::new(std::io::BufReader::new(file));
    let mut chunk = Chunk::default();
    loop {
        chunks.next_into(&mut chunk, 4096).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if chunk.is_empty() {
            return Ok(());
        }
        job.ingest(input, chunk.records()).map_err(|e| e.to_string())?;
    }
}

/// Feeds the generator and advances idle inputs, every [`DRIVER_PERIOD`].
async fn drive(job: Arc<ManagedJob>, mut generator: Option<Generator>) {
    let mut ticks = tokio::time::interval(DRIVER_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let step = {
            let job = job.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(generator) = generator.as_mut() {
                    for (input, records) in generator.tick(now_ms()) {
                        job.job.ingest(input, records.iter().map(|r| r.as_bytes()))?;
                    }
                }
                job.job.tick(Instant::now())?;
                Ok::<_, JobError>(generator)
            })
        };
        match step.await {
            Ok(Ok(next)) => generator = next,
            Ok(Err(error)) => return job.fail(error),
            Err(error) if error.is_cancelled() => return,
            Err(error) => return job.fail(error),
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
