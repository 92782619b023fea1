//! `/api/v1/dataflows` and `/api/v1/jobs`: listing dataflows, creating, listing,
//! describing and deleting jobs.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use crate::ingest::LaneState;
use crate::job::managed::ManagedJob;
use crate::job::params::JobParams;
use crate::job::spec::{self, Origin};
use crate::pipeline::{DEAD_LETTER, Dataflow, Registry};
use crate::source::SourceStatus;
use crate::source::kafka::KafkaStatus;

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/dataflows", get(dataflows))
        .route("/api/v1/jobs", get(list).post(create))
        .route("/api/v1/jobs/{job}", get(describe).delete(delete))
}

async fn dataflows(State(app): State<AppState>) -> Json<Value> {
    Json(listings(app.jobs.registry()))
}

/// Every dataflow of `registry` as `GET /api/v1/dataflows` (and `tidemark dataflows`)
/// lists them.
pub fn listings(registry: &Registry) -> Value {
    Value::Array(registry.iter().map(listing).collect())
}

/// A dataflow as `GET /api/v1/dataflows` lists it: name, description, inputs (their
/// fields and schema), outputs (their keys) and every parameter a job of it takes.
fn listing(dataflow: &Dataflow) -> Value {
    let d = dataflow.description();
    let inputs: Vec<Value> = d
        .inputs
        .iter()
        .map(|i| {
            let fields: Vec<&str> = i.fields.iter().map(|(n, _)| *n).collect();
            let schema: Map<String, Value> = i.fields.iter().map(|(n, t)| (n.to_string(), Value::from(*t))).collect();
            json!({"name": i.name, "fields": fields, "schema": schema})
        })
        .collect();
    let outputs: Vec<Value> = d
        .outputs
        .iter()
        .map(|o| json!({"name": o.name, "key": o.key}))
        .chain([json!({"name": DEAD_LETTER, "key": []})])
        .collect();
    json!({
        "name": d.name,
        "description": d.about,
        "inputs": inputs,
        "outputs": outputs,
        "params": JobParams::defaults(dataflow),
    })
}

async fn list(State(app): State<AppState>) -> Json<Value> {
    Json(Value::Array(app.jobs.list().iter().map(status).collect()))
}

async fn describe(State(app): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let job = app.jobs.get(&name).ok_or_else(|| ApiError::not_found("job", &name))?;
    Ok(Json(status(&job)))
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
    Ok((StatusCode::CREATED, Json(status(&job))))
}

async fn delete(State(app): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    let jobs = app.clone();
    let target = name.clone();
    let deleted =
        tokio::task::spawn_blocking(move || jobs.jobs.delete(&target)).await.map_err(ApiError::unavailable)?;
    if deleted { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found("job", &name)) }
}

/// Each partition of a Kafka input: offsets from the source, watermark from the router.
fn kafka_partitions(kafka: &KafkaStatus, lanes: &[LaneState]) -> Value {
    let partitions = kafka.partitions.iter().map(|p| {
        let mut entry = serde_json::to_value(p).unwrap_or_default();
        if let Some(lane) = usize::try_from(p.partition).ok().and_then(|i| lanes.get(i)) {
            entry["watermark"] = lane.watermark.into();
            entry["idle"] = lane.idle.into();
        }
        entry
    });
    Value::Array(partitions.collect())
}

/// A job as the API shows it: its spec, state, effective parameters, and per input
/// and output where it stands.
pub(super) fn status(managed: &Arc<ManagedJob>) -> Value {
    let job = &managed.job;
    let (state, error) = managed.state();
    let inputs: Map<String, Value> = job
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let stats = job.input_stats(i);
            let mut entry = json!({
                "source": managed.sources[i],
                "watermark": job.watermark(i),
                "frontier": job.input_frontier(i),
                "accepted": stats.accepted,
                "late": stats.late,
                "too_late": stats.too_late,
                "rejected": stats.rejected,
            });
            if let SourceStatus::Kafka(kafka) = managed.source_status(i) {
                entry["partitions"] = kafka_partitions(&kafka, &job.lanes(i));
                if let Some(error) = kafka.error {
                    entry["error"] = error.into();
                }
            }
            (input.name.clone(), entry)
        })
        .collect();
    let outputs: Map<String, Value> = job
        .outputs()
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut entry =
                json!({"frontier": o.rows.frontier(), "rows": o.rows.len(), "key": o.key, "since": o.rows.since()});
            if let Some(sink) = managed.sink(i) {
                entry["sink"] = json!(sink);
            }
            (o.name.clone(), entry)
        })
        .collect();
    let mut status = json!({
        "name": managed.spec.name,
        "dataflow": managed.spec.dataflow,
        "state": state,
        "params": job.params().json,
        "watermark": job.job_watermark(),
        "inputs": inputs,
        "outputs": outputs,
    });
    if let Some(error) = error {
        status["error"] = error.into();
    }
    status
}
