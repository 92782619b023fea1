//! The page at `/`: jobs, their outputs, and an output as a live table. Everything is
//! embedded in the binary (no CDN): one HTML file with its script and styles.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

const INDEX: &str = include_str!("ui/index.html");

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/", get(index))
}

async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], INDEX)
}
