//! API errors: `{"error": {"code": "<stable_snake_case>", "message": "..."}}` with a
//! fitting status. Anything a client sent gets a 4xx; a 5xx means the server itself
//! failed (and the details are logged, not returned).

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::job::JobError;
use crate::job::checkpoint::CheckpointFailed;
use crate::job::managed::SuspendError;
use crate::job::manager::{CreateError, LifecycleError, SavepointError};
use crate::job::spec::SpecError;
use crate::runtime::{RuntimeError, Unanswerable};

/// What a 404 did not find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A job (`unknown_job`).
    Job,
    /// An input of a job (`unknown_input`).
    Input,
    /// An output of a job (`unknown_output`).
    Output,
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorDetail {
    /// A stable code clients can match on.
    pub code: &'static str,
    /// A message for people.
    pub message: String,
}

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code clients can match on.
    pub code: &'static str,
    /// A message for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: an unknown job, input, output or dataflow.
    pub fn not_found(what: Missing, name: &str) -> ApiError {
        let (code, what) = match what {
            Missing::Job => ("unknown_job", "job"),
            Missing::Input => ("unknown_input", "input"),
            Missing::Output => ("unknown_output", "output"),
        };
        ApiError::new(StatusCode::NOT_FOUND, code, format!("no {what} named `{name}`"))
    }

    /// 503: the server cannot answer now; the cause is logged.
    pub fn unavailable(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "request failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server cannot answer right now")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> ApiError {
        let status = if e.malformed { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
        ApiError::new(status, e.code, e.to_string())
    }
}

impl From<SavepointError> for ApiError {
    fn from(e: SavepointError) -> ApiError {
        match e {
            SavepointError::NoJob(job) => ApiError::not_found(Missing::Job, &job),
            SavepointError::NoSavepoint { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_savepoint", e.to_string())
            }
            SavepointError::NotRunning(_) => ApiError::new(StatusCode::CONFLICT, "job_not_running", e.to_string()),
            SavepointError::Checkpoint(failed) => checkpoint_failed(failed),
            SavepointError::Io(e) => ApiError::unavailable(e),
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> ApiError {
        match e {
            LifecycleError::NotFound(job) => ApiError::not_found(Missing::Job, &job),
            LifecycleError::Suspend(SuspendError::NotRunning(_)) => {
                ApiError::new(StatusCode::CONFLICT, "job_not_running", e.to_string())
            }
            LifecycleError::Suspend(SuspendError::Checkpoint(failed)) => checkpoint_failed(failed),
            LifecycleError::Resume(e) => e.into(),
            LifecycleError::Persist(e) => ApiError::unavailable(e),
        }
    }
}

/// A checkpoint that was not taken: 409 if the job cannot be checkpointed, else 503.
pub(super) fn checkpoint_failed(failed: CheckpointFailed) -> ApiError {
    match failed {
        CheckpointFailed::Unsupported(_) | CheckpointFailed::Disabled => {
            ApiError::new(StatusCode::CONFLICT, "not_checkpointable", failed.to_string())
        }
        failed => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "checkpoint_failed", failed.to_string()),
    }
}

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> ApiError {
        match e {
            CreateError::Spec(e) => e.into(),
            CreateError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "job_exists", e.to_string()),
            CreateError::TooMany(_) => ApiError::new(StatusCode::CONFLICT, "too_many_jobs", e.to_string()),
            CreateError::Job(JobError::Runtime(RuntimeError::Build(e))) => {
                let message = format!("the dataflow cannot be built with these parameters: {e}");
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "build_failed", message)
            }
            CreateError::Job(JobError::Runtime(RuntimeError::Panicked(why))) => {
                let message = format!("the dataflow panicked while it was built (nothing was created): {why}");
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "build_failed", message)
            }
            CreateError::Job(JobError::StateDoesNotFit(_)) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "state_does_not_fit", e.to_string())
            }
            CreateError::Job(e) => ApiError::unavailable(e),
            CreateError::Persist(e) => ApiError::unavailable(e),
            CreateError::Checkpoint(e) => ApiError::unavailable(e),
            CreateError::Kafka { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "kafka_unavailable", e.to_string())
            }
        }
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> ApiError {
        ApiError::unavailable(e)
    }
}

impl From<Unanswerable> for ApiError {
    fn from(e: Unanswerable) -> ApiError {
        match e {
            Unanswerable::Gone { .. } => ApiError::new(StatusCode::GONE, "history_gone", e.to_string()),
            Unanswerable::NotServed => ApiError::unavailable(e),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> ApiError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.body_text())
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        }
    }
}

/// A handler that panicked: a 500 in the API's shape (the panic is logged by the hook).
pub(super) fn panicked(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed to answer; the cause is logged")
        .into_response()
}

/// Gives every error answer the API's JSON shape, including those axum writes itself
/// before a handler runs (a path segment that is not UTF-8, a method a route does not
/// take, ...): their text becomes the message.
pub(super) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        s if s.is_client_error() => "bad_request",
        _ => "unavailable",
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message =
        if text.trim().is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text.into() };
    let mut response = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter().filter(|(n, _)| *n == header::ALLOW) {
        response.headers_mut().insert(name, value.clone());
    }
    response
}
