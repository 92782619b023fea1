//! Random requests at the router, with every defence on (tokens, `Host` check, CORS,
//! rate limit, body limits): random methods, paths, query strings, headers and bodies
//! (invalid UTF-8, 10,000-deep nesting, huge numbers, NaN, empty). Never a 5xx, never
//! a panic, and every error in the API's JSON shape.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use tidemark::job::spec::Origin;
use tidemark::serve::{App, Guard, Limits, Security};
use tower::ServiceExt;

use crate::service::InProcess;

use super::{ADMIN, READ, WRITE, tokens_file, window_job};

/// Path segments: the API's own, names of what exists, and junk.
const SEGMENTS: &[&str] = &[
    "api",
    "v1",
    "jobs",
    "j",
    "dataflows",
    "inputs",
    "events",
    "advance",
    "outputs",
    "windows",
    "dead_letter",
    "subscribe",
    "healthz",
    "metrics",
    "",
    "..",
    ".",
    "%FF",
    "%00",
    "%2e%2e",
    "%2F",
    "j%20k",
    "ünï",
    "a;b",
    "window_agg",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];
const QUERY_NAMES: &[&str] =
    &["access_token", "since", "as_of", "limit", "snapshot", "timeout_ms", "key", "start", "%ZZ", "a&b", ""];
const QUERY_VALUES: &[&str] =
    &["0", "1", "-1", "18446744073709551615", "1e999", "NaN", "true", "%FF", "", "a+b", "%00", READ, "nope"];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"];

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    let deep = |open: &str, close: &str| format!("{}{}", open.repeat(10_000), close.repeat(10_000)).into_bytes();
    prop_oneof![
        Just(Vec::new()),
        Just(deep("[", "]")),
        Just(deep("{\"a\":", "}")),
        Just(format!("[{}]", String::from_utf8(deep("[", "]")).expect("utf-8")).into_bytes()),
        Just(b"\xff\xfe\xfd".to_vec()),
        Just(b"[NaN]".to_vec()),
        Just(b"{\"watermark\": NaN}".to_vec()),
        Just(b"[{\"key\":\"a\",\"ts\":1e999,\"value\":1}]".to_vec()),
        Just(b"[{\"key\":\"a\",\"ts\":1,\"value\":123456789012345678901234567890e300}]".to_vec()),
        Just(b"{\"watermark\": 18446744073709551615}".to_vec()),
        Just(b"{\"watermark\": 5}".to_vec()),
        Just(b"[{\"key\":\"a\",\"ts\":5,\"value\":1}]\n".to_vec()),
        Just(b"{\"key\":\"a\",\"ts\":5,\"value\":-0}\n\xff\n{}\n".to_vec()),
        Just(window_job("p").to_string().into_bytes()),
        Just(b"{\"name\":\"f\",\"dataflow\":\"window_agg\",\"params\":{\"window\":{\"tumbling\":{\"size\":1}}},\"inputs\":{\"events\":{\"source\":\"file\",\"path\":\"/etc/passwd\"}}}".to_vec()),
        prop::collection::vec(any::<u8>(), 0..200),
        "[\\[\\]{}\":,0-9a-z \\\\.eE+-]{0,200}".prop_map(String::into_bytes),
    ]
}

/// Headers: mostly what lets a request through (so that the handlers see it), often not.
fn headers() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let some = |value: String| Some(value);
    let authorization = prop_oneof![
        4 => Just(some(format!("Bearer {ADMIN}"))),
        1 => Just(some(format!("Bearer {WRITE}"))),
        1 => Just(some(format!("bearer {READ}"))),
        1 => prop_oneof![Just(None), Just(some("Bearer nope".into())), Just(some(format!("Basic {ADMIN}"))),
            "[ -~]{0,40}".prop_map(Some)],
    ];
    let content_type = prop_oneof![
        3 => Just(some("application/json".into())),
        2 => Just(some("application/x-ndjson".into())),
        1 => prop_oneof![Just(None), Just(some("text/plain".into())), Just(some("application/json; charset=\u{1}".into())),
            "[ -~]{0,30}".prop_map(Some)],
    ];
    let host = prop_oneof![
        4 => Just(None),
        2 => Just(some("localhost:8080".into())),
        1 => prop_oneof![Just(some("evil.example.com".into())), "[ -~]{0,30}".prop_map(Some)],
    ];
    let any_text = "[ -~]{0,40}";
    let extra = prop_oneof![
        any_text.prop_map(|v| ("origin", v)),
        any_text.prop_map(|v| ("last-event-id", v)),
        Just(("upgrade", "websocket".to_string())),
        Just(("connection", "upgrade".to_string())),
        Just(("sec-websocket-version", "13".to_string())),
        Just(("access-control-request-method", "POST".to_string())),
        any_text.prop_map(|v| ("content-length", v)),
        any_text.prop_map(|v| ("authorization", v)),
    ];
    (authorization, content_type, host, prop::collection::vec(extra, 0..3)).prop_map(|(a, c, h, mut extra)| {
        let named = [("authorization", a), ("content-type", c), ("host", h)];
        extra.extend(named.into_iter().filter_map(|(name, value)| value.map(|v| (name, v))));
        extra
    })
}

/// The API's routes, with names that exist more often than not.
const ROUTES: &[&str] = &[
    "/healthz",
    "/metrics",
    "/",
    "/api/v1/dataflows",
    "/api/v1/jobs",
    "/api/v1/jobs/{J}",
    "/api/v1/jobs/{J}/inputs/{I}",
    "/api/v1/jobs/{J}/inputs/{I}/advance",
    "/api/v1/jobs/{J}/outputs/{O}",
    "/api/v1/jobs/{J}/outputs/{O}/subscribe",
];

fn paths() -> impl Strategy<Value = String> {
    let name = |real: &'static str| prop_oneof![5 => Just(real), 1 => prop::sample::select(SEGMENTS)];
    let output = prop_oneof![3 => Just("windows"), 1 => Just("dead_letter"), 1 => prop::sample::select(SEGMENTS)];
    let route = (prop::sample::select(ROUTES), name("j"), name("events"), output)
        .prop_map(|(route, job, input, output)| route.replace("{J}", job).replace("{I}", input).replace("{O}", output));
    let random = prop::collection::vec(prop::sample::select(SEGMENTS), 0..8).prop_map(|s| format!("/{}", s.join("/")));
    prop_oneof![4 => route, 1 => random]
}

fn uris() -> impl Strategy<Value = String> {
    let path = paths();
    let name = prop_oneof![
        3 => prop::sample::select(&["since", "as_of", "limit", "snapshot", "access_token", "key"][..]),
        1 => prop::sample::select(QUERY_NAMES),
    ];
    let pair = (name, prop::sample::select(QUERY_VALUES)).prop_map(|(name, value)| format!("{name}={value}"));
    let query = prop::collection::vec(pair, 0..4);
    (path, query).prop_map(|(path, query)| if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) })
}

/// A server's `App` with every defence on, and a job `j` fed over HTTP; the tokens
/// file lives in `dir`. Must run within a tokio runtime.
fn app(dir: &std::path::Path) -> InProcess {
    let limits = Limits {
        max_body: 1 << 20,
        as_of_timeout: Duration::from_millis(20),
        wait: Duration::from_secs(10),
        rate_limit: NonZeroU32::new(1_000_000),
        ..Limits::default()
    };
    let security = Security {
        tokens_file: Some(tokens_file(dir)),
        cors_origins: vec!["https://app.example.com".into()],
        ..Security::default()
    };
    let guard = Guard::new(&security, "127.0.0.1:8080".parse().expect("addr"), &limits).expect("guard");
    let server = InProcess::start(limits, guard, crate::dataflows::registry());
    let spec = serde_json::from_value(window_job("j")).expect("spec");
    server.app.jobs.create(spec, Origin::Operator).expect("job j");
    server
}

/// Sends one request through the router; an error if it was answered 5xx (beyond the
/// documented 503 of an `as_of` in the future) or with an error not in the API's shape.
async fn check(
    app: &Arc<App>,
    (method, uri, headers, body): (String, String, Vec<(&'static str, String)>, Vec<u8>),
) -> Result<u16, String> {
    let mut request = Request::builder().method(method.as_str()).uri(uri.as_str());
    for (name, value) in &headers {
        request = request.header(*name, value.as_str());
    }
    // Some of these are not even valid HTTP: hyper would refuse them before the router.
    let Ok(request) = request.body(Body::from(body.clone())) else { return Ok(0) };
    let response = tidemark::serve::router(app.clone()).oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let shown = || format!("{method} {uri} {headers:?} {:?}", String::from_utf8_lossy(&body[..body.len().min(80)]));
    if status < 400 {
        return Ok(status); // a stream may never end: its body is not read
    }
    let collected = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect()).await;
    let bytes = collected.map_err(|_| format!("{}: an error body that never ends", shown()))?;
    let bytes = bytes.map_err(|e| format!("{}: {e}", shown()))?.to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let code = answer["error"]["code"].as_str();
    // A HEAD answer has no body to show its code: a future `as_of` is the 503 it may be.
    let not_complete = code == Some("not_complete") || (method == "HEAD" && uri.contains("as_of"));
    if status >= 500 && !(status == 503 && not_complete) {
        return Err(format!("{}: {status} {answer}", shown()));
    }
    if method != "HEAD" && !(code.is_some() && answer["error"]["message"].is_string()) {
        return Err(format!("{}: {status} is not a JSON error: {:?}", shown(), String::from_utf8_lossy(&bytes)));
    }
    Ok(status)
}

#[test]
fn random_requests_never_get_a_5xx_or_a_panic() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = {
        let _entered = runtime.enter();
        app(dir.path())
    };
    let app = server.app.clone();
    let method = prop_oneof![
        4 => Just("GET".to_string()),
        4 => Just("POST".to_string()),
        2 => prop::sample::select(METHODS).prop_map(str::to_string),
        1 => "[A-Z]{1,8}",
    ];
    let strategy = (method, uris(), headers(), bodies());
    let mut runner = TestRunner::new(Config { cases: 5000, failure_persistence: None, ..Config::default() });
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    let result = runner.run(&strategy, |request| {
        let status = runtime.block_on(check(&app, request)).map_err(TestCaseError::fail)?;
        *statuses.lock().expect("statuses").entry(status).or_default() += 1;
        Ok(())
    });
    drop(app);
    runtime.block_on(server.stop());
    if let Err(error) = result {
        panic!("{error}");
    }
    // The requests reached every defence and the handlers behind them.
    let statuses = statuses.into_inner().expect("statuses");
    for expected in [200, 400, 401, 403, 404, 405, 415] {
        assert!(statuses.contains_key(&expected), "no {expected} among {statuses:?}");
    }
}
