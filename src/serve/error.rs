//! API errors: `{"error": {"code": "<stable_snake_case>", "message": "..."}}` with a
//! fitting status. Anything a client sent gets a 4xx; a 5xx means the server itself
//! failed (and the details are logged, not returned).

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::job::JobError;
use crate::job::manager::CreateError;
use crate::job::spec::SpecError;
use crate::runtime::Unanswerable;

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
    pub fn not_found(what: &str, name: &str) -> ApiError {
        let code = match what {
            "job" => "unknown_job",
            "input" => "unknown_input",
            "output" => "unknown_output",
            _ => "not_found",
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
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> ApiError {
        let status = if e.malformed { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
        ApiError::new(status, e.code, e.to_string())
    }
}

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> ApiError {
        match e {
            CreateError::Spec(e) => e.into(),
            CreateError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "job_exists", e.to_string()),
            CreateError::Job(e) => ApiError::unavailable(e),
            CreateError::Persist(e) => ApiError::unavailable(e),
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
