//! `GET /api/v1/jobs/{job}/outputs/{output}`: an output's content.
//!
//! Query parameters: `as_of=T` (content as of time T, waiting up to `timeout_ms` for it
//! to be complete; 410 if older than the retained history), `limit=N`, and any other
//! name is an equality filter on that top-level field of the rows (filters on a prefix
//! of the output's key fields are answered from its index).

use std::time::Duration;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::{ApiError, Missing};
use std::sync::Arc;

use crate::job::managed::ManagedJob;
use crate::pipeline::Diff;
use crate::runtime::{Query, RowText};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/api/v1/jobs/{job}/outputs/{output}", get(read))
}

/// The parameters of a read: reserved names, and filters.
pub(super) struct ReadParams {
    pub(super) query: Query,
    pub(super) timeout: Option<Duration>,
}

/// Splits query parameters into the reserved ones (`reserved` plus `as_of`, `limit`,
/// `timeout_ms`) and field filters.
pub(super) fn read_params(params: Vec<(String, String)>, reserved: &[&str]) -> Result<ReadParams, ApiError> {
    let number = |name: &str, value: &str| {
        value.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("`{name}` must be a non-negative integer, got `{value}`"),
            )
        })
    };
    let mut read = ReadParams { query: Query::default(), timeout: None };
    for (name, value) in params {
        match name.as_str() {
            "as_of" => read.query.as_of = Some(number(&name, &value)?),
            "limit" => read.query.limit = Some(number(&name, &value)? as usize),
            "timeout_ms" => read.timeout = Some(Duration::from_millis(number(&name, &value)?)),
            n if reserved.contains(&n) => {}
            _ => read.query.filters.push((name, value)),
        }
    }
    Ok(read)
}

/// The job `job` and the index of its output `output`.
pub(super) fn output(app: &AppState, job: &str, output: &str) -> Result<(Arc<ManagedJob>, usize), ApiError> {
    let managed = app.jobs.get(job).ok_or_else(|| ApiError::not_found(Missing::Job, job))?;
    let index = managed.job.outputs().iter().position(|o| o.name == output);
    let index = index.ok_or_else(|| ApiError::not_found(Missing::Output, output))?;
    Ok((managed, index))
}

async fn read(
    State(app): State<AppState>,
    Path((job, name)): Path<(String, String)>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (managed, index) = output(&app, &job, &name)?;
    let port = &managed.job.outputs()[index];
    let read = read_params(params, &[])?;
    if let Some(t) = read.query.as_of {
        let timeout = read.timeout.unwrap_or(app.limits.as_of_timeout);
        if !port.rows.wait_past(t, timeout).await {
            let message = format!("time {t} is not complete yet (frontier {:?}); try later", port.rows.frontier());
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_complete", message));
        }
        // An output also passes every time when its job stops: make sure it did not.
        if !app.jobs.get(&job).is_some_and(|current| Arc::ptr_eq(&current, &managed)) {
            return Err(ApiError::not_found(Missing::Job, &job));
        }
    }
    let (frontier, rows) = port.rows.query(&read.query)?;
    let body = render(frontier, port.rows.watermark(), &rows);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `{"frontier": F, "watermark": W, "rows": [...]}`, each row as often as its multiplicity.
fn render(frontier: Option<u64>, watermark: u64, rows: &[(RowText, Diff)]) -> String {
    let frontier = frontier.map_or_else(|| "null".to_string(), |f| f.to_string());
    let size: usize = rows.iter().map(|(r, n)| (r.len() + 1) * (*n).max(0) as usize).sum();
    let mut body = String::with_capacity(size + 64);
    body.push_str(&format!(r#"{{"frontier":{frontier},"watermark":{watermark},"rows":["#));
    let mut first = true;
    for (row, n) in rows {
        for _ in 0..(*n).max(0) {
            if !first {
                body.push(',');
            }
            first = false;
            body.push_str(row);
        }
    }
    body.push_str("]}");
    body
}
