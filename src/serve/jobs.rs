//! `/api/v1/dataflows` and `/api/v1/jobs`: listing dataflows, creating, listing,
//! describing and deleting jobs.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use super::AppState;
use super::error::{ApiError, Missing};
use super::schema::{DataflowListing, InputStatus, JobStatus, OutputStatus, PartitionEntry, Sorted};
use crate::job::managed::{CheckpointInfo, ManagedJob};
use crate::job::manager::SavepointInfo;
use crate::job::params::JobParams;
use crate::job::spec::{self, Origin};
use crate::pipeline::Registry;
use crate::source::SourceStatus;

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/dataflows", get(dataflows))
        .route("/api/v1/jobs", get(list).post(create))
        .route("/api/v1/jobs/{job}", get(describe).delete(delete))
        .route("/api/v1/jobs/{job}/checkpoint", post(checkpoint))
        .route("/api/v1/jobs/{job}/suspend", post(suspend))
        .route("/api/v1/jobs/{job}/resume", post(resume))
        .route("/api/v1/jobs/{job}/history", get(history))
        .route("/api/v1/jobs/{job}/savepoints", get(savepoints).post(savepoint))
        .route("/api/v1/jobs/{job}/savepoints/{id}", axum::routing::delete(delete_savepoint))
}

async fn dataflows(State(app): State<AppState>) -> Sorted<Vec<DataflowListing>> {
    Sorted(listings(app.jobs.registry()))
}

/// Every dataflow of `registry` as `GET /api/v1/dataflows` (and `tidemark dataflows`)
/// lists them: name, description, inputs (their fields and schema), outputs (their
/// keys) and every parameter a job of it takes.
pub fn listings(registry: &Registry) -> Vec<DataflowListing> {
    registry.iter().map(|dataflow| DataflowListing::of(dataflow, JobParams::defaults(dataflow))).collect()
}

async fn list(State(app): State<AppState>) -> Sorted<Vec<JobStatus>> {
    Sorted(app.jobs.list().iter().map(|job| status(job)).collect())
}

async fn describe(State(app): State<AppState>, Path(name): Path<String>) -> Result<Sorted<JobStatus>, ApiError> {
    let job = app.jobs.get(&name).ok_or_else(|| ApiError::not_found(Missing::Job, &name))?;
    Ok(Sorted(status(&job)))
}

async fn create(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let spec = spec::parse(&body?)?;
    let jobs = app.clone();
    let job = tokio::task::spawn_blocking(move || jobs.jobs.create(spec, Origin::Api))
        .await
        .map_err(ApiError::unavailable)??;
    Ok((StatusCode::CREATED, Sorted(status(&job))))
}

/// Takes a checkpoint of the job now.
async fn checkpoint(State(app): State<AppState>, Path(name): Path<String>) -> Result<Sorted<CheckpointInfo>, ApiError> {
    let job = app.jobs.get(&name).ok_or_else(|| ApiError::not_found(Missing::Job, &name))?;
    if let Some(refused) = super::inputs::not_running(&job) {
        return Err(refused);
    }
    let taken = tokio::task::spawn_blocking(move || job.checkpoint()).await.map_err(ApiError::unavailable)?;
    taken.map(Sorted).map_err(super::error::checkpoint_failed)
}

/// Checkpoints the job, then stops its sources: it takes no input until resumed.
async fn suspend(State(app): State<AppState>, Path(name): Path<String>) -> Result<Sorted<JobStatus>, ApiError> {
    let jobs = app.clone();
    let job = tokio::task::spawn_blocking(move || jobs.jobs.suspend(&name)).await.map_err(ApiError::unavailable)??;
    Ok(Sorted(status(&job)))
}

/// Starts a suspended (or failed) job again from its last checkpoint.
async fn resume(State(app): State<AppState>, Path(name): Path<String>) -> Result<Sorted<JobStatus>, ApiError> {
    let jobs = app.clone();
    let job = tokio::task::spawn_blocking(move || jobs.jobs.resume(&name)).await.map_err(ApiError::unavailable)??;
    Ok(Sorted(status(&job)))
}

/// Takes a savepoint of the job: a checkpoint kept until deleted.
async fn savepoint(State(app): State<AppState>, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let jobs = app.clone();
    let taken =
        tokio::task::spawn_blocking(move || jobs.jobs.savepoint(&name)).await.map_err(ApiError::unavailable)??;
    Ok((StatusCode::CREATED, Sorted(taken)))
}

/// The job's savepoints, oldest first.
async fn savepoints(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Sorted<Vec<SavepointInfo>>, ApiError> {
    Ok(Sorted(app.jobs.savepoints(&name)?))
}

async fn delete_savepoint(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    // An id that is not a number names no savepoint either.
    let id = id.parse().unwrap_or(u64::MAX);
    app.jobs.delete_savepoint(&name, id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// What happened to the job, oldest first.
async fn history(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Vec<serde_json::Value>>, ApiError> {
    let job = app.jobs.get(&name).ok_or_else(|| ApiError::not_found(Missing::Job, &name))?;
    Ok(axum::Json(job.history.events()))
}

async fn delete(State(app): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    let jobs = app.clone();
    let target = name.clone();
    let deleted =
        tokio::task::spawn_blocking(move || jobs.jobs.delete(&target)).await.map_err(ApiError::unavailable)?;
    if deleted { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found(Missing::Job, &name)) }
}

/// A job as the API shows it: its spec, state, effective parameters, and per input
/// and output where it stands.
pub(super) fn status(managed: &ManagedJob) -> JobStatus {
    let job = &managed.job;
    let (state, error) = managed.state();
    let inputs = job
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let stats = job.input_stats(i);
            let (partitions, records_read, error) = match managed.source_status(i) {
                SourceStatus::Kafka(kafka) => {
                    let (error, read) = (kafka.error.clone(), kafka.records_read);
                    (Some(PartitionEntry::of(kafka, &job.lanes(i))), Some(read), error)
                }
                SourceStatus::Failing(trouble) => (None, None, Some(trouble)),
                SourceStatus::Plain => (None, None, None),
            };
            let entry = InputStatus {
                source: managed.sources[i].clone(),
                watermark: job.watermark(i),
                frontier: job.input_frontier(i),
                accepted: stats.accepted,
                late: stats.late,
                too_late: stats.too_late,
                rejected: stats.rejected,
                partitions,
                records_read,
                error,
            };
            (input.name.clone(), entry)
        })
        .collect();
    let outputs = job
        .outputs()
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let entry = OutputStatus {
                frontier: o.rows.frontier(),
                rows: o.rows.len(),
                key: o.key.clone(),
                since: o.rows.since(),
                sink: managed.sink(i),
            };
            (o.name.clone(), entry)
        })
        .collect();
    JobStatus {
        name: managed.spec.name.clone(),
        dataflow: managed.spec.dataflow.clone(),
        state,
        error,
        restarts: managed.restarts(),
        checkpoint: managed.last_checkpoint().0,
        checkpoint_error: managed.last_checkpoint().1,
        params: job.params().json.clone(),
        watermark: job.job_watermark(),
        inputs,
        outputs,
    }
}
