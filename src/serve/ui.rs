//! The page at `/`: jobs, their outputs, and an output as a live table. Everything is
//! embedded in the binary (no CDN): one HTML file with its script and styles. On a
//! server with tokens the page asks for one (or takes it from `/#token=...`), keeps it
//! for the tab, and sends it with every call (in the query of subscriptions).

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

const INDEX: &str = include_str!("ui/index.html");

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/", get(index))
}

/// The page runs only its own inline script and style, talks only to this server, and
/// may not be framed (its controls must not be clickjacked).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        INDEX,
    )
}
