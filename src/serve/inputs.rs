//! `/api/v1/jobs/{job}/inputs/{input}`: feeding records, and advancing watermarks.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;

use super::AppState;
use super::error::{ApiError, Missing};
use super::schema::{AdvanceRequest, Advanced, Sorted};
use crate::ingest::IngestReport;
use crate::ingest::format::{json_array_records, ndjson_records};
use crate::job::managed::{JobState, ManagedJob};
use crate::source::http::log::LogError;
use crate::source::http::{HttpError, HttpSource};
use crate::source::{FeedError, SourceSpec};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/jobs/{job}/inputs/{input}", post(ingest))
        .route("/api/v1/jobs/{job}/inputs/{input}/advance", post(advance))
}

/// The job and the index of one of its inputs fed over HTTP.
fn http_input(app: &AppState, job: &str, input: &str) -> Result<(Arc<ManagedJob>, usize), ApiError> {
    let managed = app.jobs.get(job).ok_or_else(|| ApiError::not_found(Missing::Job, job))?;
    let index = managed.job.input_index(input).ok_or_else(|| ApiError::not_found(Missing::Input, input))?;
    if managed.sources[index] != SourceSpec::Http {
        let message = format!("input `{input}` is not fed over HTTP (see the job's sources)");
        return Err(ApiError::new(StatusCode::CONFLICT, "input_not_http", message));
    }
    match not_running(&managed) {
        Some(refused) => Err(refused),
        None => Ok((managed, index)),
    }
}

/// Why a job that is not running takes no input: it failed or is suspended (409), or
/// it waits to restart (503: a retry after its restart will be taken).
pub(super) fn not_running(job: &ManagedJob) -> Option<ApiError> {
    let name = &job.spec.name;
    match job.state() {
        (JobState::Running, _) => None,
        (JobState::Failed, error) => {
            let message = format!("job `{name}` has failed: {}", error.unwrap_or_default());
            Some(ApiError::new(StatusCode::CONFLICT, "job_failed", message))
        }
        (JobState::Suspended, _) => {
            let message = format!("job `{name}` is suspended; resume it first (POST /api/v1/jobs/{name}/resume)");
            Some(ApiError::new(StatusCode::CONFLICT, "job_suspended", message))
        }
        (JobState::Restarting, error) => {
            let message =
                format!("job `{name}` is restarting after a failure ({}); retry shortly", error.unwrap_or_default());
            Some(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "job_restarting", message))
        }
    }
}

/// Runs `request` on the HTTP source of input `index` of `job`.
fn with_http<T>(
    job: &ManagedJob,
    index: usize,
    request: impl FnOnce(&HttpSource) -> Result<T, HttpError>,
) -> Result<T, ApiError> {
    let gone = || ApiError::not_found(Missing::Job, &job.spec.name);
    let source = job.source(index).ok_or_else(gone)?;
    let http = source.as_http().ok_or_else(gone)?;
    request(http).map_err(|error| match error {
        HttpError::Feed(FeedError::Gone) => gone(),
        // The run this request reached stopped meanwhile: it failed, or was deleted.
        HttpError::Log(LogError::Closed { .. }) | HttpError::Feed(FeedError::Job(_)) if not_running(job).is_some() => {
            not_running(job).unwrap_or_else(gone)
        }
        HttpError::Log(LogError::Closed { .. }) => gone(),
        HttpError::Log(error) => {
            tracing::error!(job = %job.spec.name, %error, "an HTTP input cannot log a request");
            let message = "the input cannot make the request durable (its log cannot be written: the server's disk \
                           may be full or read-only); nothing of it was applied, and the job's status says why";
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
        error => ApiError::unavailable(error),
    })
}

/// Feeds records, in order: a JSON array, or NDJSON with `Content-Type:
/// application/x-ndjson`. One bad record is reported by its index and dead-lettered;
/// it never rejects the others.
async fn ingest(
    State(app): State<AppState>,
    Path((job, input)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Sorted<IngestReport>, ApiError> {
    let (managed, index) = http_input(&app, &job, &input)?;
    let body = body?;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson") || v.starts_with("application/jsonl"));
    let report = tokio::task::spawn_blocking(move || {
        let records: Vec<&[u8]> = if ndjson {
            ndjson_records(&body).collect()
        } else {
            json_array_records(&body).map_err(|e| {
                let message = format!(
                    "body must be a JSON array of records, or NDJSON with Content-Type application/x-ndjson: {e}"
                );
                ApiError::bad_request("invalid_json", message)
            })?
        };
        with_http(&managed, index, |http| http.post(&records))
    })
    .await
    .map_err(ApiError::unavailable)??;
    Ok(Sorted(report))
}

/// Moves an input's watermark to at least the given one, and answers once every
/// output reflects all input below it.
async fn advance(
    State(app): State<AppState>,
    Path((job, input)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Sorted<Advanced>, ApiError> {
    let (managed, index) = http_input(&app, &job, &input)?;
    let AdvanceRequest { watermark } = AdvanceRequest::parse(&body?)?;
    let advancing = managed.clone();
    let watermark = tokio::task::spawn_blocking(move || with_http(&advancing, index, |http| http.advance(watermark)))
        .await
        .map_err(ApiError::unavailable)??;
    let frontier = wait_complete(&managed, app.limits.wait).await?;
    Ok(Sorted(Advanced { watermark, frontier }))
}

/// Waits until every output of `job` reflects all input so far; returns the least
/// output frontier.
async fn wait_complete(job: &ManagedJob, timeout: Duration) -> Result<Option<u64>, ApiError> {
    let job = &job.job;
    for (i, output) in job.outputs().iter().enumerate() {
        let target = job.complete_at(i);
        if target > 0 && !output.rows.wait_past(target - 1, timeout).await {
            let message = format!("output `{}` did not reach frontier {target} within {timeout:?}", output.name);
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_complete", message));
        }
    }
    Ok(job.outputs().iter().filter_map(|o| o.rows.frontier()).min())
}
