//! The HTTP contract of `/work/shared/API.md`, written from the contract: health,
//! dataflows, jobs, invalid specs, ingest (JSON and NDJSON), advance, reads (filters,
//! limits, multiplicities, `as_of`, history), late data, sources, and a little fuzzing
//! for "never a 500". Subscriptions and restarts are covered elsewhere.
//!
//! Most tests talk to a real server over TCP ([`TestServer`]); a few drive the router
//! in-process with `tower::ServiceExt::oneshot`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tidemark::job::manager::JobSettings;
use tidemark::serve::{App, Guard, Limits};
use tower::ServiceExt;

use crate::harness::{Expected, Judged, Reference, approx, assert_windows};
use crate::service::{InProcess, TestOptions, TestServer};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A `window_agg` job fed over HTTP, with the idle fallback off so that watermarks
/// move only with the records and advances of the test.
fn window_job(name: &str, params: Value) -> Value {
    let mut params = params;
    params["idle_timeout_ms"] = Value::Null;
    json!({"name": name, "dataflow": "window_agg", "params": params, "inputs": {"events": {"source": "http"}}})
}

fn tumbling(size: u64) -> Value {
    json!({"tumbling": {"size": size}})
}

fn event(key: &str, ts: u64, value: f64) -> Value {
    json!({"key": key, "ts": ts, "value": value})
}

async fn create(server: &TestServer, spec: &Value) -> Value {
    let (status, body) = server.post("/api/v1/jobs", spec).await;
    assert_eq!(status, 201, "creating {spec}: {body}");
    body
}

async fn ingest(server: &TestServer, job: &str, records: &[Value]) -> Value {
    let path = format!("/api/v1/jobs/{job}/inputs/events");
    let (status, body) = server.post(&path, &Value::Array(records.to_vec())).await;
    assert_eq!(status, 200, "ingest into {job}: {body}");
    body
}

async fn ingest_ndjson(server: &TestServer, job: &str, records: &[Value]) -> Value {
    let path = format!("/api/v1/jobs/{job}/inputs/events");
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    let (status, body) = server.post_raw(&path, "application/x-ndjson", text.into_bytes()).await;
    assert_eq!(status, 200, "NDJSON ingest into {job}: {body}");
    body
}

async fn advance(server: &TestServer, job: &str, watermark: u64) -> Value {
    let path = format!("/api/v1/jobs/{job}/inputs/events/advance");
    let (status, body) = server.post(&path, &json!({"watermark": watermark})).await;
    assert_eq!(status, 200, "advance {job} to {watermark}: {body}");
    body
}

/// `GET path` that must answer 200 with `{"frontier","watermark","rows"}`; the body.
async fn read(server: &TestServer, path: &str) -> Value {
    let (status, body) = server.get(path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    for field in ["frontier", "watermark", "rows"] {
        assert!(body.get(field).is_some(), "GET {path}: no `{field}` in {body}");
    }
    assert!(body["rows"].is_array(), "GET {path}: rows not an array: {body}");
    body
}

async fn rows(server: &TestServer, path: &str) -> Vec<Value> {
    read(server, path).await["rows"].as_array().cloned().unwrap_or_default()
}

/// The rows as a sorted multiset of their JSON texts.
fn sorted(rows: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = rows.iter().map(Value::to_string).collect();
    texts.sort();
    texts
}

/// Checks an error answer: its status, `{"error": {"code", "message"}}`, the code,
/// and that the message mentions each of `mentions`.
#[track_caller]
fn assert_error(what: &str, (status, body): (u16, Value), expected: &[u16], code: Option<&str>, mentions: &[&str]) {
    assert!(expected.contains(&status), "{what}: status {status} not in {expected:?}: {body}");
    let error = &body["error"];
    let (Some(actual_code), Some(message)) = (error["code"].as_str(), error["message"].as_str()) else {
        panic!("{what}: not an error body {{\"error\": {{\"code\", \"message\"}}}}: {body}");
    };
    if let Some(code) = code {
        assert_eq!(actual_code, code, "{what}: {body}");
    }
    for m in mentions {
        assert!(message.contains(m), "{what}: message does not name `{m}`: {message}");
    }
}

/// Polls `GET path` until `done` holds of the body; panics after `timeout`.
async fn poll(server: &TestServer, path: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = server.get(path).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "GET {path}: condition not met within {timeout:?}; last {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// 1. Health and dataflows
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_dataflows() {
    let mut server = TestServer::start().await;
    assert_eq!(server.get("/healthz").await, (200, json!({"status": "ok"})));

    let (status, listing) = server.get("/api/v1/dataflows").await;
    assert_eq!(status, 200, "{listing}");
    let listing = listing.as_array().expect("an array of dataflows").clone();
    let registry = crate::dataflows::registry();
    let names: Vec<&str> = listing.iter().filter_map(|d| d["name"].as_str()).collect();
    for dataflow in registry.iter() {
        assert!(names.contains(&dataflow.name()), "{} is not listed: {names:?}", dataflow.name());
    }
    assert_eq!(listing.len(), registry.iter().count(), "{names:?}");
    for d in &listing {
        let name = d["name"].as_str().unwrap_or_default();
        assert!(d["description"].as_str().is_some_and(|s| !s.is_empty()), "{name}: description: {d}");
        let inputs = d["inputs"].as_array().unwrap_or_else(|| panic!("{name}: inputs: {d}"));
        assert!(!inputs.is_empty(), "{name}");
        for input in inputs {
            assert!(input["name"].is_string(), "{name}: {input}");
            let fields = input["fields"].as_array().unwrap_or_else(|| panic!("{name}: fields: {input}"));
            assert!(fields.iter().all(Value::is_string) && !fields.is_empty(), "{name}: {input}");
        }
        let outputs = d["outputs"].as_array().unwrap_or_else(|| panic!("{name}: outputs: {d}"));
        for output in outputs {
            assert!(output["name"].is_string(), "{name}: {output}");
            assert!(output["key"].as_array().is_some_and(|k| k.iter().all(Value::is_string)), "{name}: {output}");
        }
        assert!(
            outputs.iter().any(|o| o["name"] == "dead_letter"),
            "{name}: every dataflow has a dead_letter output: {d}"
        );
        assert!(d["params"].is_object(), "{name}: params: {d}");
    }

    let window_agg = listing.iter().find(|d| d["name"] == "window_agg").expect("window_agg is listed");
    let events = &window_agg["inputs"].as_array().expect("inputs").iter().find(|i| i["name"] == "events");
    let events = events.expect("input events");
    let mut fields: Vec<&str> = events["fields"].as_array().expect("fields").iter().filter_map(Value::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["key", "ts", "value"]);
    let outputs = window_agg["outputs"].as_array().expect("outputs");
    let windows = outputs.iter().find(|o| o["name"] == "windows").expect("output windows");
    assert_eq!(windows["key"], json!(["key", "start"]));
    let params = &window_agg["params"];
    assert_eq!(params["max_out_of_orderness"], json!(0), "{params}");
    assert_eq!(params["allowed_lateness"], json!(0), "{params}");
    assert_eq!(params["retention"], json!(3_600_000), "{params}");
    assert_eq!(params["emit"], json!("eager"), "{params}");
    assert!(params.get("window").is_some(), "window is a parameter: {params}");

    let word_count = listing.iter().find(|d| d["name"] == "word_count").expect("word_count is listed");
    let counts = word_count["outputs"].as_array().expect("outputs").iter().find(|o| o["name"] == "counts");
    assert_eq!(counts.expect("output counts")["key"], json!(["word", "start"]));
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Jobs
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_lifecycle() {
    let mut server = TestServer::start().await;
    assert_eq!(server.get("/api/v1/jobs").await, (200, json!([])));

    let spec = json!({"name": "j1", "dataflow": "window_agg", "params": {"window": tumbling(10_000)},
        "inputs": {"events": {"source": "http"}}});
    let created = create(&server, &spec).await;
    assert_eq!(created["name"], "j1", "{created}");
    assert_eq!(created["dataflow"], "window_agg", "{created}");

    let (status, list) = server.get("/api/v1/jobs").await;
    assert_eq!(status, 200);
    let list = list.as_array().expect("a list of jobs").clone();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["name"], "j1");

    let (status, job) = server.get("/api/v1/jobs/j1").await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["name"], "j1");
    assert_eq!(job["dataflow"], "window_agg");
    assert_eq!(job["state"], "running", "{job}");
    // The effective parameters: the given ones over the defaults.
    let params = &job["params"];
    assert_eq!(params["window"], tumbling(10_000), "{params}");
    assert_eq!(params["max_out_of_orderness"], json!(0), "{params}");
    assert_eq!(params["allowed_lateness"], json!(0), "{params}");
    assert_eq!(params["retention"], json!(3_600_000), "{params}");
    assert_eq!(params["emit"], json!("eager"), "{params}");
    let events = &job["inputs"]["events"];
    for field in ["watermark", "accepted", "late", "too_late", "rejected"] {
        assert!(events[field].is_u64(), "inputs.events.{field}: {job}");
    }
    assert_eq!(events["accepted"], 0, "{job}");
    let windows = &job["outputs"]["windows"];
    assert!(windows.get("frontier").is_some(), "outputs.windows.frontier: {job}");
    assert_eq!(windows["rows"], 0, "{job}");
    assert!(job["outputs"].get("dead_letter").is_some(), "outputs.dead_letter: {job}");

    // The status follows the job's input and output.
    ingest(&server, "j1", &[event("a", 1000, 1.0), event("b", 2000, 2.0), json!({"bad": true})]).await;
    advance(&server, "j1", 5000).await;
    let (_, job) = server.get("/api/v1/jobs/j1").await;
    let events = &job["inputs"]["events"];
    assert_eq!((&events["accepted"], &events["rejected"], &events["watermark"]), (&json!(2), &json!(1), &json!(5000)));
    assert_eq!(job["outputs"]["windows"]["rows"], 2, "{job}");
    assert!(job["outputs"]["windows"]["frontier"].as_u64().is_some_and(|f| f >= 5000), "{job}");

    // A duplicate name is a conflict, whatever the rest of the spec.
    let again = server.post("/api/v1/jobs", &spec).await;
    assert_error("duplicate job", again, &[409], Some("job_exists"), &["j1"]);
    let mut other = spec.clone();
    other["params"]["window"] = tumbling(5);
    assert_error("duplicate job", server.post("/api/v1/jobs", &other).await, &[409], Some("job_exists"), &["j1"]);

    assert_eq!(server.delete("/api/v1/jobs/j1").await, 204);
    assert_error("deleted job", server.get("/api/v1/jobs/j1").await, &[404], None, &["j1"]);
    assert_eq!(server.get("/api/v1/jobs").await, (200, json!([])));
    assert_eq!(server.delete("/api/v1/jobs/j1").await, 404);
    let gone = server.get("/api/v1/jobs/j1/outputs/windows").await;
    assert_error("output of a deleted job", gone, &[404], None, &["j1"]);

    // The name is free again.
    create(&server, &spec).await;
    assert_error("unknown job", server.get("/api/v1/jobs/nope").await, &[404], Some("unknown_job"), &["nope"]);
    assert_eq!(server.delete("/api/v1/jobs/nope").await, 404);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Invalid specs
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_name_the_offending_field() {
    let mut server = TestServer::start().await;
    let jobs = "/api/v1/jobs";
    let valid = window_job("ok", json!({"window": tumbling(1000)}));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut spec = valid.clone();
        f(&mut spec);
        spec
    };

    for body in [&b"{\"name\": "[..], b"not json", b"", b"[1, 2]", b"{\"name\": \"x\"} trailing"] {
        let answer = server.post_raw(jobs, "application/json", body.to_vec()).await;
        assert_error(&format!("body {:?}", String::from_utf8_lossy(body)), answer, &[400], None, &[]);
    }

    let cases: Vec<(&str, Value, &[u16], &[&str])> = vec![
        ("unknown dataflow", with(&|s| s["dataflow"] = json!("no_such_flow")), &[400, 422], &["no_such_flow"]),
        ("unknown param", with(&|s| s["params"]["windw"] = json!(3)), &[400, 422], &["windw"]),
        ("param of the wrong type", with(&|s| s["params"]["window"] = json!("big")), &[400], &["params.window"]),
        (
            "nested param of the wrong type",
            with(&|s| s["params"]["window"] = json!({"tumbling": {"size": "big"}})),
            &[400],
            &["params.window"],
        ),
        (
            "flattened param of the wrong type",
            with(&|s| s["params"]["allowed_lateness"] = json!("soon")),
            &[400],
            &["params.allowed_lateness"],
        ),
        ("emit of the wrong value", with(&|s| s["params"]["emit"] = json!("sometimes")), &[400, 422], &["params.emit"]),
        ("window size 0", with(&|s| s["params"]["window"] = tumbling(0)), &[422], &["params.window"]),
        (
            "slide larger than size",
            with(&|s| s["params"]["window"] = json!({"sliding": {"size": 10, "slide": 20}})),
            &[422],
            &["params.window"],
        ),
        (
            "lateness out of range",
            with(&|s| s["params"]["allowed_lateness"] = json!(1u64 << 61)),
            &[422],
            &["params.allowed_lateness"],
        ),
        ("unknown input", with(&|s| s["inputs"] = json!({"evnts": {"source": "http"}})), &[422], &["inputs.evnts"]),
        (
            "unknown source",
            with(&|s| s["inputs"]["events"] = json!({"source": "ftp"})),
            &[422],
            &["inputs.events.source", "ftp"],
        ),
        (
            "missing file",
            with(&|s| s["inputs"]["events"] = json!({"source": "file", "path": "/nonexistent/x.ndjson"})),
            &[422],
            &["inputs.events.path"],
        ),
        (
            "generator out of range",
            with(&|s| s["inputs"]["events"] = json!({"source": "generator", "stream": "events", "rate": 0})),
            &[422],
            &["inputs.events", "rate"],
        ),
        ("invalid job name", with(&|s| s["name"] = json!("a b")), &[422], &["name"]),
        ("job name with a slash", with(&|s| s["name"] = json!("a/b")), &[422], &["name"]),
        ("empty job name", with(&|s| s["name"] = json!("")), &[422], &["name"]),
        ("job name of 65 characters", with(&|s| s["name"] = json!("x".repeat(65))), &[422], &["name"]),
        ("hidden job name", with(&|s| s["name"] = json!(".hidden")), &[422], &["name"]),
        ("missing window", with(&|s| s["params"] = json!({})), &[422], &["params.window"]),
        ("null window", with(&|s| s["params"]["window"] = Value::Null), &[422], &["params.window"]),
        ("name of the wrong type", with(&|s| s["name"] = json!(7)), &[400], &["name"]),
        ("missing dataflow", with(&|s| _ = s.as_object_mut().map(|o| o.remove("dataflow"))), &[400], &["dataflow"]),
        ("unknown spec field", with(&|s| s["colour"] = json!("red")), &[400], &["colour"]),
        ("params not an object", with(&|s| s["params"] = json!([1])), &[400], &["params"]),
    ];
    for (what, spec, statuses, mentions) in cases {
        let answer = server.post(jobs, &spec).await;
        assert_error(what, answer, statuses, None, mentions);
    }
    // The codes the error module documents for the common cases.
    let answer = server.post(jobs, &with(&|s| s["dataflow"] = json!("nope"))).await;
    assert_error("unknown dataflow", answer, &[400, 422], Some("unknown_dataflow"), &["nope"]);
    let answer = server.post(jobs, &with(&|s| s["name"] = json!("a b"))).await;
    assert_error("invalid name", answer, &[422], Some("invalid_name"), &[]);

    // None of them made a job; the valid spec still does.
    assert_eq!(server.get(jobs).await, (200, json!([])));
    create(&server, &valid).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Ingest
// ---------------------------------------------------------------------------

/// A batch for tumbling windows of 10 s, `max_out_of_orderness` 1000 and
/// `allowed_lateness` 5000, judged by hand:
/// - 0: on time (W 0 → 0); 1: on time (W → 24000);
/// - 2: ts 9000, window [0, 10000): 10000 + 5000 <= 24000, too late;
/// - 3: ts 17000 < 24000, window [10000, 20000): 25000 > 24000, late but allowed;
/// - 4, 5, 7, 8: invalid (ts not an integer, not an object, negative ts, no value);
/// - 6: ts 23500 < 24000, window [20000, 30000): late but allowed;
/// - 9: on time (W → 29000).
fn crafted_batch() -> Vec<Value> {
    vec![
        event("a", 1000, 1.0),
        event("a", 25_000, 2.0),
        event("a", 9000, 3.0),
        event("b", 17_000, 4.0),
        json!({"key": "b", "ts": "x", "value": 1}),
        json!("not an object"),
        event("a", 23_500, 5.0),
        json!({"key": "a", "ts": -5, "value": 1}),
        json!({"key": "c", "ts": 26_000}),
        event("a", 30_000, 6.0),
    ]
}

fn crafted_params() -> Value {
    json!({"window": tumbling(10_000), "max_out_of_orderness": 1000, "allowed_lateness": 5000})
}

#[track_caller]
fn assert_crafted_report(what: &str, report: &Value) {
    assert_eq!(report["accepted"], 5, "{what}: {report}");
    assert_eq!(report["late"], 2, "{what}: {report}");
    assert_eq!(report["too_late"], 1, "{what}: {report}");
    // Records are processed in order: the watermark is max ts - max_out_of_orderness.
    assert_eq!(report["watermark"], 29_000, "{what}: {report}");
    let rejected = report["rejected"].as_array().unwrap_or_else(|| panic!("{what}: rejected: {report}"));
    let indexes: Vec<u64> = rejected.iter().filter_map(|r| r["index"].as_u64()).collect();
    assert_eq!(indexes, [4, 5, 7, 8], "{what}: {report}");
    for r in rejected {
        assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_reports_exact_counts_and_dead_letters() {
    let mut server = TestServer::start().await;
    create(&server, &window_job("arr", crafted_params())).await;
    create(&server, &window_job("nd", crafted_params())).await;
    let batch = crafted_batch();
    let from_array = ingest(&server, "arr", &batch).await;
    assert_crafted_report("JSON array", &from_array);
    let from_ndjson = ingest_ndjson(&server, "nd", &batch).await;
    assert_crafted_report("NDJSON", &from_ndjson);
    assert_eq!(from_array, from_ndjson);

    // NDJSON: blank lines and CRLF are no records; a line that is not JSON is one.
    let ndjson = "\n{\"key\":\"z\",\"ts\":31000,\"value\":1}\r\n\n{oops\n{\"key\":\"z\",\"ts\":31500,\"value\":2}";
    let (status, report) =
        server.post_raw("/api/v1/jobs/nd/inputs/events", "application/x-ndjson", ndjson.into()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!((&report["accepted"], &report["rejected"][0]["index"]), (&json!(2), &json!(1)), "{report}");
    assert_eq!(report["rejected"].as_array().map(Vec::len), Some(1), "{report}");

    for job in ["arr", "nd"] {
        advance(&server, job, 40_000).await;
        if job == "nd" {
            // A line that is not JSON is dead-lettered as the string it was.
            let dead = rows(&server, "/api/v1/jobs/nd/outputs/dead_letter").await;
            let oops = dead.iter().find(|d| d["record"] == json!("{oops"));
            assert_eq!(oops.map(|d| &d["reason"]), Some(&json!("invalid")), "{dead:#?}");
        }
        let (_, status) = server.get(&format!("/api/v1/jobs/{job}")).await;
        let events = &status["inputs"]["events"];
        let rejected = if job == "nd" { 5 } else { 4 };
        let accepted = if job == "nd" { 7 } else { 5 };
        assert_eq!(events["accepted"], accepted, "{job}: {status}");
        assert_eq!(events["late"], 2, "{job}: {status}");
        assert_eq!(events["too_late"], 1, "{job}: {status}");
        assert_eq!(events["rejected"], rejected, "{job}: {status}");
    }

    // Every accepted record is in `windows`; nothing of the others.
    let windows = rows(&server, "/api/v1/jobs/arr/outputs/windows").await;
    let expected = [
        Expected::of("a", 0, 10_000, &[1.0]),
        Expected::of("b", 10_000, 20_000, &[4.0]),
        Expected::of("a", 20_000, 30_000, &[2.0, 5.0]),
        Expected::of("a", 30_000, 40_000, &[6.0]),
    ];
    assert_windows("crafted batch", &windows, &expected);

    // Dead letters: the record as sent, its reason, and its event time when valid.
    let dead = rows(&server, "/api/v1/jobs/arr/outputs/dead_letter").await;
    assert_eq!(dead.len(), 5, "{dead:#?}");
    for (index, reason) in [(2, "too_late"), (4, "invalid"), (5, "invalid"), (7, "invalid"), (8, "invalid")] {
        let found = dead.iter().find(|d| d["record"] == batch[index]);
        let found = found.unwrap_or_else(|| panic!("record {index} {} not dead-lettered: {dead:#?}", batch[index]));
        assert_eq!(found["input"], "events", "{found}");
        assert_eq!(found["reason"], reason, "{found}");
    }
    let ts_of = |index: usize| dead.iter().find(|d| d["record"] == batch[index]).map(|d| d["ts"].clone());
    assert_eq!(ts_of(2), Some(json!(9000)));
    assert_eq!(ts_of(4), Some(Value::Null), "an invalid ts is no event time");
    assert_eq!(ts_of(7), Some(Value::Null), "a negative ts is no event time");
    let too_late = rows(&server, "/api/v1/jobs/arr/outputs/dead_letter?reason=too_late").await;
    assert_eq!(too_late.len(), 1, "{too_late:?}");

    // Numbers JSON allows but a record cannot hold are rejected one by one.
    let body = br#"[{"key":"a","ts":41000,"value":1e400},{"key":"a","ts":41001,"value":1},
        {"key":"a","ts":4611686018427387905,"value":1},{"key":"a","ts":18446744073709551616,"value":1},
        {"key":"a","ts":41002.5,"value":1},{"key":"a","ts":41003,"value":-2.5e-3}]"#;
    let (status, report) = server.post_raw("/api/v1/jobs/arr/inputs/events", "application/json", body.to_vec()).await;
    assert_eq!(status, 200, "{report}");
    let indexes: Vec<u64> =
        report["rejected"].as_array().expect("rejected").iter().filter_map(|r| r["index"].as_u64()).collect();
    assert_eq!((&report["accepted"], indexes), (&json!(2), vec![0, 2, 3, 4]), "{report}");
    assert_eq!(report["watermark"], 41_003 - 1000, "{report}");

    // An empty batch is fine and changes nothing.
    let report = ingest(&server, "arr", &[]).await;
    assert_eq!(
        (&report["accepted"], &report["rejected"], &report["watermark"]),
        (&json!(0), &json!([]), &json!(40_003))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_errors() {
    let mut server = TestServer::start().await;
    create(&server, &window_job("j", json!({"window": tumbling(1000)}))).await;
    let generated = json!({"name": "gen", "dataflow": "window_agg", "params": {"window": tumbling(1000)},
        "inputs": {"events": {"source": "generator", "stream": "events", "rate": 10}}});
    create(&server, &generated).await;
    let path = "/api/v1/jobs/j/inputs/events";

    let bodies: [&[u8]; 7] =
        [b"{\"key\":\"a\",\"ts\":1,\"value\":1}", b"[1, 2", b"garbage", b"", b"42", b"[] []", b"\xff\xfe"];
    for body in bodies {
        let what = format!("ingest body {:?}", String::from_utf8_lossy(body));
        assert_error(&what, server.post_raw(path, "application/json", body.to_vec()).await, &[400], None, &[]);
    }
    // None of that touched the input.
    let (_, job) = server.get("/api/v1/jobs/j").await;
    assert_eq!(job["inputs"]["events"]["accepted"], 0, "{job}");
    assert_eq!(job["inputs"]["events"]["rejected"], 0, "{job}");

    let unknown_job = server.post("/api/v1/jobs/nope/inputs/events", &json!([event("a", 1, 1.0)])).await;
    assert_error("unknown job", unknown_job, &[404], Some("unknown_job"), &["nope"]);
    let unknown_input = server.post("/api/v1/jobs/j/inputs/lines", &json!([event("a", 1, 1.0)])).await;
    assert_error("unknown input", unknown_input, &[404], Some("unknown_input"), &["lines"]);
    let advance_unknown = server.post("/api/v1/jobs/j/inputs/lines/advance", &json!({"watermark": 5})).await;
    assert_error("advance of an unknown input", advance_unknown, &[404], None, &["lines"]);
    let advance_unknown = server.post("/api/v1/jobs/nope/inputs/events/advance", &json!({"watermark": 5})).await;
    assert_error("advance of an unknown job", advance_unknown, &[404], None, &["nope"]);
    let generator_fed = server.post("/api/v1/jobs/gen/inputs/events", &json!([event("a", 1, 1.0)])).await;
    assert_error("generator-fed input", generator_fed, &[409], None, &["events"]);
    let generator_fed = server.post("/api/v1/jobs/gen/inputs/events/advance", &json!({"watermark": 5})).await;
    assert_error("advance of a generator-fed input", generator_fed, &[409], None, &["events"]);
    let unknown_output = server.get("/api/v1/jobs/j/outputs/nope").await;
    assert_error("unknown output", unknown_output, &[404], Some("unknown_output"), &["nope"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413() {
    let limits = Limits { max_body: 1024, ..Limits::default() };
    let mut server = TestServer::start_with(TestOptions { limits, ..TestOptions::default() }).await;
    create(&server, &window_job("j", json!({"window": tumbling(1000)}))).await;
    let big: Vec<Value> = (0..100).map(|i| event("a", i, 1.0)).collect();
    assert!(serde_json::to_vec(&big).expect("json").len() > 1024);
    let answer = server.post("/api/v1/jobs/j/inputs/events", &Value::Array(big.clone())).await;
    assert_error("ingest over the limit", answer, &[413], Some("body_too_large"), &[]);
    let ndjson: String = big.iter().map(|r| format!("{r}\n")).collect();
    let answer = server.post_raw("/api/v1/jobs/j/inputs/events", "application/x-ndjson", ndjson.into()).await;
    assert_error("NDJSON over the limit", answer, &[413], Some("body_too_large"), &[]);
    let mut spec = window_job("big", json!({"window": tumbling(1000)}));
    spec["padding"] = json!("x".repeat(2000));
    let answer = server.post("/api/v1/jobs", &spec).await;
    assert_error("spec over the limit", answer, &[413], Some("body_too_large"), &[]);
    let answer = server.post_raw("/api/v1/jobs/j/inputs/events/advance", "application/json", vec![b' '; 4096]).await;
    assert_error("advance over the limit", answer, &[413], Some("body_too_large"), &[]);

    // Nothing of it arrived; a body under the limit still does.
    let (_, job) = server.get("/api/v1/jobs/j").await;
    assert_eq!(job["inputs"]["events"]["accepted"], 0, "{job}");
    let report = ingest(&server, "j", &big[..5]).await;
    assert_eq!(report["accepted"], 5, "{report}");
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 5. Advance
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advance_reflects_every_record_below_the_watermark() {
    let mut server = TestServer::start().await;
    let (size, moo, lateness) = (1000, 500, 700);
    let params = json!({"window": tumbling(size), "max_out_of_orderness": moo, "allowed_lateness": lateness});
    create(&server, &window_job("j", params)).await;
    let mut reference = Reference::new(size, moo, lateness);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut clock = 0u64;
    let mut max_ts = 0u64;
    let mut too_late = 0;
    for batch in 0..4 {
        let mut records = Vec::new();
        let mut judged = Vec::new();
        for _ in 0..50 {
            clock += rng.random_range(0..300);
            let ts = clock.saturating_sub(if rng.random_bool(0.2) { rng.random_range(0..3000) } else { 0 });
            let key = format!("k{}", rng.random_range(0..5));
            let value = rng.random_range(-10_000i64..10_000) as f64 / 100.0;
            max_ts = max_ts.max(ts);
            judged.push(reference.feed(&key, ts, value));
            records.push(event(&key, ts, value));
        }
        let report = if batch % 2 == 0 {
            ingest(&server, "j", &records).await
        } else {
            ingest_ndjson(&server, "j", &records).await
        };
        let count = |j: Judged| judged.iter().filter(|x| **x == j).count();
        too_late += count(Judged::TooLate);
        let what = format!("batch {batch}");
        assert_eq!(report["accepted"], count(Judged::OnTime) + count(Judged::Late), "{what}: {report}");
        assert_eq!(report["late"], count(Judged::Late), "{what}: {report}");
        assert_eq!(report["too_late"], count(Judged::TooLate), "{what}: {report}");
        assert_eq!(report["rejected"], json!([]), "{what}: {report}");
        assert_eq!(report["watermark"], reference.watermark, "{what}: {report}");
        if batch == 0 {
            assert!(count(Judged::Late) > 0, "the batch has late records");
            assert_eq!(reference.watermark, max_ts - moo, "{what}");
        }

        // After an advance to T every accepted record below T shows.
        let t = max_ts + 1;
        let answer = advance(&server, "j", t).await;
        reference.advance(t);
        assert_eq!(answer["watermark"], t, "{what}: {answer}");
        assert!(answer["frontier"].as_u64().is_some_and(|f| f >= t), "{what}: {answer}");
        let read = read(&server, "/api/v1/jobs/j/outputs/windows").await;
        assert!(read["frontier"].as_u64().is_some_and(|f| f >= t), "{what}: {read}");
        assert_eq!(read["watermark"], t, "{what}: {read}");
        assert_windows(&what, read["rows"].as_array().expect("rows"), &reference.rows());
    }
    assert!(too_late > 0, "some records were too late");
    let (_, job) = server.get("/api/v1/jobs/j").await;
    assert_eq!(job["inputs"]["events"]["too_late"], too_late, "{job}");
    let dead = rows(&server, "/api/v1/jobs/j/outputs/dead_letter?reason=too_late").await;
    assert_eq!(dead.len(), too_late, "{dead:?}");
    let windows = rows(&server, "/api/v1/jobs/j/outputs/windows").await;
    let t = reference.watermark;

    // The watermark never moves backwards.
    let back = advance(&server, "j", 10).await;
    assert_eq!(back["watermark"], t, "{back}");
    let (_, job) = server.get("/api/v1/jobs/j").await;
    assert_eq!(job["inputs"]["events"]["watermark"], t, "{job}");
    let report = ingest(&server, "j", &[event("k0", 5, 1.0)]).await;
    assert_eq!((&report["too_late"], &report["watermark"]), (&json!(1), &json!(t)), "{report}");
    assert_eq!(rows(&server, "/api/v1/jobs/j/outputs/windows").await.len(), windows.len());

    let bad: [&[u8]; 9] = [
        b"{}",
        b"{\"watermark\": -1}",
        b"{\"watermark\": \"10\"}",
        b"{\"watermark\": 1.5}",
        b"{\"watermark\": null}",
        b"[10]",
        b"10",
        b"not json",
        b"",
    ];
    for body in bad {
        let answer = server.post_raw("/api/v1/jobs/j/inputs/events/advance", "application/json", body.to_vec()).await;
        assert_error(&format!("advance body {:?}", String::from_utf8_lossy(body)), answer, &[400], None, &[]);
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 6. Reads
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_filter_limit_and_repeat_rows() {
    let mut server = TestServer::start().await;
    create(&server, &window_job("j", json!({"window": tumbling(10_000)}))).await;
    let records = [
        event("a", 1000, 1.0),
        event("b", 2000, 5.0),
        event("10", 3000, 9.0),
        event("é \"q\"&=", 4000, 6.5),
        event("a", 12_000, 2.0),
        event("a", 13_000, 3.0),
        event("b", 15_000, 7.0),
        event("c", 21_000, 4.0),
        json!({"bad": "record"}),
        json!({"bad": "record"}),
        json!({"worse": 1}),
    ];
    ingest(&server, "j", &records).await;
    advance(&server, "j", 30_000).await;
    let base = "/api/v1/jobs/j/outputs/windows";

    let all = read(&server, base).await;
    assert_eq!(all["watermark"], 30_000, "{all}");
    assert!(all["frontier"].as_u64().is_some_and(|f| f >= 30_000), "{all}");
    let all = all["rows"].as_array().expect("rows").clone();
    let expected = [
        Expected::of("a", 0, 10_000, &[1.0]),
        Expected::of("a", 10_000, 20_000, &[2.0, 3.0]),
        Expected::of("b", 0, 10_000, &[5.0]),
        Expected::of("b", 10_000, 20_000, &[7.0]),
        Expected::of("c", 20_000, 30_000, &[4.0]),
        Expected::of("10", 0, 10_000, &[9.0]),
        Expected::of("é \"q\"&=", 0, 10_000, &[6.5]),
    ];
    assert_windows("all", &all, &expected);
    let pick = |f: &dyn Fn(&Expected) -> bool| expected.iter().filter(|e| f(e)).cloned().collect::<Vec<_>>();

    let cases: Vec<(&str, Vec<Expected>)> = vec![
        ("key=a", pick(&|e| e.key == "a")),
        ("key=a&start=0", pick(&|e| e.key == "a" && e.start == 0)),
        ("start=0&key=a", pick(&|e| e.key == "a" && e.start == 0)),
        ("key=a&start=10000", pick(&|e| e.key == "a" && e.start == 10_000)),
        ("start=10000", pick(&|e| e.start == 10_000)),
        ("count=2", pick(&|e| e.count == 2)),
        ("count=1", pick(&|e| e.count == 1)),
        ("key=b&count=1", pick(&|e| e.key == "b" && e.count == 1)),
        ("end=30000", pick(&|e| e.end == 30_000)),
        ("sum=5", pick(&|e| e.sum == 5.0)),
        ("avg=2.5", pick(&|e| e.key == "a" && e.count == 2)),
        ("max=6.5", pick(&|e| e.max == 6.5)),
        // A key that looks like a number, and one that needs escaping in URLs and JSON.
        ("key=10", pick(&|e| e.key == "10")),
        ("key=10&start=0", pick(&|e| e.key == "10")),
        ("key=%C3%A9%20%22q%22%26%3D", pick(&|e| e.key.starts_with('é'))),
        ("key=%C3%A9+%22q%22%26%3D&start=0", pick(&|e| e.key.starts_with('é'))),
        ("key=zzz", vec![]),
        ("start=5", vec![]),
        ("key=a&start=5", vec![]),
        ("no_such_field=1", vec![]),
    ];
    for (query, expected) in cases {
        let found = rows(&server, &format!("{base}?{query}")).await;
        assert_windows(query, &found, &expected);
    }

    // `limit`: at most N rows of the same content.
    for n in [0, 1, 3, 7, 100] {
        let limited = rows(&server, &format!("{base}?limit={n}")).await;
        assert_eq!(limited.len(), n.min(7), "limit={n}: {limited:?}");
        let known = sorted(&all);
        assert!(limited.iter().all(|r| known.contains(&r.to_string())), "limit={n}: {limited:?}");
    }
    let limited = rows(&server, &format!("{base}?key=a&limit=1")).await;
    assert_eq!(limited.len(), 1, "{limited:?}");
    assert_eq!(limited[0]["key"], "a");

    // A row with multiplicity 2 appears twice (and counts twice against a limit).
    let dead = rows(&server, "/api/v1/jobs/j/outputs/dead_letter").await;
    let twice = dead.iter().filter(|d| d["record"] == json!({"bad": "record"})).count();
    assert_eq!(twice, 2, "{dead:#?}");
    assert_eq!(dead.len(), 3, "{dead:#?}");
    let bad = rows(&server, "/api/v1/jobs/j/outputs/dead_letter?reason=invalid&limit=2").await;
    assert_eq!(bad.len(), 2, "{bad:?}");

    // Word counts: filters on the leading key field.
    let spec = json!({"name": "w", "dataflow": "word_count", "params": {"idle_timeout_ms": null},
        "inputs": {"lines": {"source": "http"}}});
    create(&server, &spec).await;
    let lines = json!([{"text": "the cat and the hat", "ts": 1}, {"text": "The end", "ts": 2}]);
    let (status, report) = server.post("/api/v1/jobs/w/inputs/lines", &lines).await;
    assert_eq!((status, &report["accepted"]), (200, &json!(2)), "{report}");
    let (status, _) = server.post("/api/v1/jobs/w/inputs/lines/advance", &json!({"watermark": 10})).await;
    assert_eq!(status, 200);
    let the = rows(&server, "/api/v1/jobs/w/outputs/counts?word=the").await;
    assert_eq!(the.len(), 1, "{the:?}");
    assert_eq!((&the[0]["count"], &the[0]["start"]), (&json!(3), &Value::Null), "{the:?}");
    assert_eq!(rows(&server, "/api/v1/jobs/w/outputs/counts").await.len(), 5);
    assert_eq!(rows(&server, "/api/v1/jobs/w/outputs/counts?count=1").await.len(), 4);

    for query in ["limit=x", "limit=-1", "limit=1.5", "as_of=x", "as_of=-3", "as_of=", "timeout_ms=soon"] {
        let answer = server.get(&format!("{base}?{query}")).await;
        assert_error(query, answer, &[400], None, &[query.split('=').next().unwrap_or_default()]);
    }
    let unknown = server.get("/api/v1/jobs/j/outputs/nope").await;
    assert_error("unknown output", unknown, &[404], None, &["nope"]);
    let unknown = server.get("/api/v1/jobs/nope/outputs/windows").await;
    assert_error("unknown job", unknown, &[404], None, &["nope"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_reads_the_past() {
    let mut server = TestServer::start().await;
    create(&server, &window_job("j", json!({"window": tumbling(10_000)}))).await;
    let base = "/api/v1/jobs/j/outputs/windows";
    ingest(&server, "j", &[event("a", 1000, 1.0), event("b", 2000, 2.0)]).await;
    advance(&server, "j", 5000).await;
    let first = read(&server, base).await;
    let f1 = first["frontier"].as_u64().expect("a frontier");
    assert!(f1 >= 5000, "{first}");
    let first_rows = first["rows"].as_array().expect("rows").clone();
    assert_eq!(first_rows.len(), 2);

    // More input: a changed row, a new one, and a new window.
    ingest(&server, "j", &[event("a", 6000, 10.0), event("c", 7000, 3.0), event("a", 15_000, 4.0)]).await;
    advance(&server, "j", 20_000).await;
    let second = read(&server, base).await;
    let f2 = second["frontier"].as_u64().expect("a frontier");
    assert!(f2 >= 20_000 && f2 > f1, "{second}");
    let second_rows = second["rows"].as_array().expect("rows").clone();
    assert_windows(
        "now",
        &second_rows,
        &[
            Expected::of("a", 0, 10_000, &[1.0, 10.0]),
            Expected::of("b", 0, 10_000, &[2.0]),
            Expected::of("c", 0, 10_000, &[3.0]),
            Expected::of("a", 10_000, 20_000, &[4.0]),
        ],
    );

    let past = rows(&server, &format!("{base}?as_of={}", f1 - 1)).await;
    assert_eq!(sorted(&past), sorted(&first_rows), "as_of the first frontier - 1");
    let now = rows(&server, &format!("{base}?as_of={}", f2 - 1)).await;
    assert_eq!(sorted(&now), sorted(&second_rows), "as_of the current frontier - 1");
    // Times are event times: an on-time record at ts t shows as of t, not before.
    let at = |t: u64| format!("{base}?as_of={t}");
    let a0 = |values: &[f64]| Expected::of("a", 0, 10_000, values);
    let b0 = Expected::of("b", 0, 10_000, &[2.0]);
    let c0 = Expected::of("c", 0, 10_000, &[3.0]);
    assert_windows("as_of 5999", &rows(&server, &at(5999)).await, &[a0(&[1.0]), b0.clone()]);
    assert_windows("as_of 6000", &rows(&server, &at(6000)).await, &[a0(&[1.0, 10.0]), b0.clone()]);
    assert_windows("as_of 6999", &rows(&server, &at(6999)).await, &[a0(&[1.0, 10.0]), b0.clone()]);
    assert_windows("as_of 7000", &rows(&server, &at(7000)).await, &[a0(&[1.0, 10.0]), b0.clone(), c0.clone()]);
    assert_windows("as_of 14999", &rows(&server, &at(14_999)).await, &[a0(&[1.0, 10.0]), b0, c0]);
    let filtered = rows(&server, &format!("{base}?as_of={}&key=a", f1 - 1)).await;
    assert_windows("as_of with a filter", &filtered, &[Expected::of("a", 0, 10_000, &[1.0])]);
    let limited = rows(&server, &format!("{base}?as_of={}&limit=1", f1 - 1)).await;
    assert_eq!(limited.len(), 1);
    // Before anything was ingested: nothing.
    let empty = rows(&server, &format!("{base}?as_of=0")).await;
    assert!(empty.is_empty(), "{empty:?}");

    // A time not complete yet: 503 after `timeout_ms`, not the default 5 s.
    let started = Instant::now();
    let answer = server.get(&format!("{base}?as_of=1000000000&timeout_ms=100")).await;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_error("as_of in the future", answer, &[503], None, &[]);
    let answer = server.get(&format!("{base}?as_of={f2}&timeout_ms=0")).await;
    assert_error("as_of at the frontier", answer, &[503], None, &[]);

    // A time that completes while the read waits.
    let waiting = {
        let client = server.client.clone();
        let url = server.url(&format!("{base}?as_of=25000&timeout_ms=10000"));
        tokio::spawn(async move {
            let response = client.get(url).send().await.expect("GET");
            (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    ingest(&server, "j", &[event("d", 24_000, 1.0)]).await;
    advance(&server, "j", 30_000).await;
    let (status, body) = waiting.await.expect("the waiting read");
    assert_eq!(status, 200, "{body}");
    let d = body["rows"].as_array().expect("rows").iter().filter(|r| r["key"] == "d").count();
    assert_eq!(d, 1, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_older_than_the_history_is_gone() {
    let settings = JobSettings { history: 5, ..JobSettings::default() };
    let mut server = TestServer::start_with(TestOptions { settings, ..TestOptions::default() }).await;
    create(&server, &window_job("j", json!({"window": tumbling(1000)}))).await;
    let base = "/api/v1/jobs/j/outputs/windows";
    for i in 0..12u64 {
        let ts = 1000 * (i + 1);
        ingest(&server, "j", &[event(&format!("k{i}"), ts, i as f64)]).await;
        advance(&server, "j", ts + 500).await;
    }
    let now = read(&server, base).await;
    let frontier = now["frontier"].as_u64().expect("frontier");
    assert_eq!(now["rows"].as_array().map(Vec::len), Some(12), "{now}");

    let gone = server.get(&format!("{base}?as_of=0")).await;
    assert_error("as_of 0 with a history of 5 changes", gone, &[410], Some("history_gone"), &[]);
    let gone = server.get(&format!("{base}?as_of=2000")).await;
    assert_error("as_of 2000 with a history of 5 changes", gone, &[410], None, &[]);
    // Recent times are still there.
    let recent = rows(&server, &format!("{base}?as_of={}", frontier - 1)).await;
    assert_eq!(sorted(&recent), sorted(now["rows"].as_array().expect("rows")));
    let (_, job) = server.get("/api/v1/jobs/j").await;
    let since = job["outputs"]["windows"]["since"].as_u64();
    if let Some(since) = since {
        let earlier = rows(&server, &format!("{base}?as_of={since}")).await;
        assert!(earlier.len() < 12, "{earlier:?}");
    }
    server.stop().await;
}

/// A read waiting for `as_of=T` must not answer 200 with content that never became
/// complete at T: when its job is deleted meanwhile, it is an error (404 or 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_wait_does_not_answer_for_a_deleted_job() {
    let mut server = TestServer::start().await;
    create(&server, &window_job("j", json!({"window": tumbling(10_000)}))).await;
    ingest(&server, "j", &[event("a", 1000, 1.0)]).await;
    let waiting = {
        let client = server.client.clone();
        let url = server.url("/api/v1/jobs/j/outputs/windows?as_of=50000&timeout_ms=3000");
        tokio::spawn(async move {
            let response = client.get(url).send().await.expect("GET");
            (response.status().as_u16(), response.text().await.unwrap_or_default())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.delete("/api/v1/jobs/j").await, 204);
    let (status, body) = waiting.await.expect("the waiting read");
    server.stop().await;
    assert!(
        matches!(status, 404 | 503),
        "GET ...?as_of=50000 while job `j` (frontier 1000) is deleted: {status} {body}"
    );
}

// ---------------------------------------------------------------------------
// 7. Late events
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_correct_their_window() {
    let mut server = TestServer::start().await;
    let params = json!({"window": tumbling(10_000), "allowed_lateness": 5000});
    create(&server, &window_job("j", params)).await;
    let base = "/api/v1/jobs/j/outputs/windows";
    let report = ingest(
        &server,
        "j",
        &[event("a", 1000, 2.0), event("a", 3000, 4.0), event("b", 5000, 1.5), event("a", 12_000, 1.0)],
    )
    .await;
    assert_eq!((&report["accepted"], &report["late"], &report["watermark"]), (&json!(4), &json!(0), &json!(12_000)));
    advance(&server, "j", 12_001).await;
    let before = rows(&server, base).await;
    let mut a0 = vec![2.0, 4.0];
    let b0 = Expected::of("b", 0, 10_000, &[1.5]);
    let a1 = Expected::of("a", 10_000, 20_000, &[1.0]);
    assert_windows("before", &before, &[Expected::of("a", 0, 10_000, &a0), b0.clone(), a1.clone()]);

    // Late but allowed (10000 + 5000 > 12001): a new max, then a new min.
    let report = ingest(&server, "j", &[event("a", 2000, 10.0), event("a", 9999, -3.25)]).await;
    assert_eq!((&report["accepted"], &report["late"], &report["too_late"]), (&json!(2), &json!(2), &json!(0)));
    advance(&server, "j", 13_000).await;
    a0.extend([10.0, -3.25]);
    let after = rows(&server, base).await;
    assert_windows("after late events", &after, &[Expected::of("a", 0, 10_000, &a0), b0.clone(), a1.clone()]);
    let a = rows(&server, &format!("{base}?key=a&start=0")).await;
    assert_eq!(a.len(), 1);
    assert!(approx(a[0]["avg"].as_f64().expect("avg"), 12.75 / 4.0), "{a:?}");
    assert_eq!(a[0]["count"], 4);

    // Too late once the watermark reaches 15000: nothing changes, it is dead-lettered.
    let report = ingest(&server, "j", &[event("c", 16_000, 1.0), event("a", 4000, 100.0)]).await;
    assert_eq!(
        (&report["accepted"], &report["too_late"], &report["watermark"]),
        (&json!(1), &json!(1), &json!(16_000))
    );
    advance(&server, "j", 16_500).await;
    let c1 = Expected::of("c", 10_000, 20_000, &[1.0]);
    let last = rows(&server, base).await;
    assert_windows("after a too-late event", &last, &[Expected::of("a", 0, 10_000, &a0), b0, a1, c1]);
    let dead = rows(&server, "/api/v1/jobs/j/outputs/dead_letter").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["record"], event("a", 4000, 100.0));
    assert_eq!(
        (&dead[0]["reason"], &dead[0]["ts"], &dead[0]["input"]),
        (&json!("too_late"), &json!(4000), &json!("events"))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_session_and_emit_modes_over_http() {
    let mut server = TestServer::start().await;
    let windows = |job: &str| format!("/api/v1/jobs/{job}/outputs/windows");

    // Sliding: a late event joins only those of its windows still open.
    let sliding = json!({"sliding": {"size": 10_000, "slide": 5000}});
    create(&server, &window_job("sl", json!({"window": sliding}))).await;
    let report = ingest(&server, "sl", &[event("a", 12_000, 1.0), event("a", 7000, 2.0), event("a", 3000, 4.0)]).await;
    let counts = (&report["accepted"], &report["late"], &report["too_late"]);
    assert_eq!(counts, (&json!(2), &json!(1), &json!(1)), "sliding: {report}");
    advance(&server, "sl", 30_000).await;
    let expected = [Expected::of("a", 5000, 15_000, &[1.0, 2.0]), Expected::of("a", 10_000, 20_000, &[1.0])];
    assert_windows("sliding", &rows(&server, &windows("sl")).await, &expected);

    // Sessions: too late when ts + gap + allowed_lateness <= W; a late event merges.
    create(&server, &window_job("se", json!({"window": {"session": {"gap": 1000}}}))).await;
    let records = [
        event("a", 1000, 1.0),
        event("a", 1500, 2.0),
        event("a", 5000, 3.0),
        event("a", 3000, 4.0),
        event("a", 4500, 5.0),
    ];
    let report = ingest(&server, "se", &records).await;
    let counts = (&report["accepted"], &report["late"], &report["too_late"]);
    assert_eq!(counts, (&json!(4), &json!(1), &json!(1)), "sessions: {report}");
    advance(&server, "se", 10_000).await;
    let expected = [Expected::of("a", 1000, 2500, &[1.0, 2.0]), Expected::of("a", 4500, 6000, &[3.0, 5.0])];
    assert_windows("sessions", &rows(&server, &windows("se")).await, &expected);

    // on_close: nothing before the window closes, then the value and its corrections.
    let params = json!({"window": tumbling(10_000), "allowed_lateness": 2000, "emit": "on_close"});
    create(&server, &window_job("oc", params)).await;
    // final: one value, once the window can no longer change.
    let params = json!({"window": tumbling(10_000), "allowed_lateness": 2000, "emit": "final"});
    create(&server, &window_job("fi", params)).await;
    for job in ["oc", "fi"] {
        ingest(&server, job, &[event("a", 1000, 1.0)]).await;
        advance(&server, job, 9999).await;
        assert_windows(&format!("{job} while open"), &rows(&server, &windows(job)).await, &[]);
        advance(&server, job, 10_001).await;
    }
    assert_windows(
        "on_close once closed",
        &rows(&server, &windows("oc")).await,
        &[Expected::of("a", 0, 10_000, &[1.0])],
    );
    assert_windows("final while late data may come", &rows(&server, &windows("fi")).await, &[]);
    for job in ["oc", "fi"] {
        let report = ingest(&server, job, &[event("a", 5000, 2.0)]).await;
        assert_eq!((&report["accepted"], &report["late"]), (&json!(1), &json!(1)), "{job}: {report}");
        advance(&server, job, 12_001).await;
        let expected = [Expected::of("a", 0, 10_000, &[1.0, 2.0])];
        assert_windows(&format!("{job} after a late event"), &rows(&server, &windows(job)).await, &expected);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_count_every_record() {
    let mut server = TestServer::start().await;
    let params = json!({"window": tumbling(1000), "allowed_lateness": 1_000_000_000});
    create(&server, &window_job("j", params)).await;
    let url = server.url("/api/v1/jobs/j/inputs/events");
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let (client, url) = (server.client.clone(), url.clone());
            tokio::spawn(async move {
                let mut rng = ChaCha8Rng::seed_from_u64(task);
                let mut accepted = 0;
                for _ in 0..5 {
                    let records: Vec<Value> =
                        (0..20).map(|_| event(&format!("t{task}"), rng.random_range(0..50_000), 1.0)).collect();
                    let response = client.post(&url).json(&records).send().await.expect("POST");
                    assert_eq!(response.status().as_u16(), 200);
                    let report: Value = response.json().await.expect("a report");
                    accepted += report["accepted"].as_u64().expect("accepted");
                }
                accepted
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.expect("a task");
    }
    assert_eq!(accepted, 800);
    advance(&server, "j", 60_000).await;
    let (_, job) = server.get("/api/v1/jobs/j").await;
    assert_eq!(job["inputs"]["events"]["accepted"], 800, "{job}");
    for task in 0..8 {
        let found = rows(&server, &format!("/api/v1/jobs/j/outputs/windows?key=t{task}")).await;
        let total: u64 = found.iter().filter_map(|r| r["count"].as_u64()).sum();
        let sum: f64 = found.iter().filter_map(|r| r["sum"].as_f64()).sum();
        assert_eq!((total, sum), (100, 100.0), "t{task}: {found:?}");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 8. Never a 500
// ---------------------------------------------------------------------------

fn random_json(rng: &mut ChaCha8Rng, depth: u32) -> Value {
    const KEYS: [&str; 16] = [
        "key",
        "ts",
        "value",
        "watermark",
        "name",
        "dataflow",
        "params",
        "inputs",
        "source",
        "window",
        "tumbling",
        "size",
        "path",
        "stream",
        "rate",
        "emit",
    ];
    match rng.random_range(0..if depth > 3 { 7 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => json!(rng.random::<i64>()),
        3 => {
            let extremes = [json!(u64::MAX), json!(i64::MIN), json!(1e300), json!(-0.0), json!(1u64 << 62), json!(0.5)];
            extremes[rng.random_range(0..extremes.len())].clone()
        }
        4 => json!(rng.random::<f64>() * 1e6),
        5 => {
            let len = rng.random_range(0..12);
            Value::String((0..len).map(|_| char::from_u32(rng.random_range(0..0x3000)).unwrap_or('?')).collect())
        }
        6 => json!(["http", "file", "generator", "kafka", "window_agg", "word_count", "a", ""][rng.random_range(0..8)]),
        7 => Value::Array((0..rng.random_range(0..4)).map(|_| random_json(rng, depth + 1)).collect()),
        _ => {
            let mut object = serde_json::Map::new();
            for _ in 0..rng.random_range(0..5) {
                let key =
                    if rng.random_bool(0.8) { KEYS[rng.random_range(0..KEYS.len())].to_string() } else { "x".into() };
                object.insert(key, random_json(rng, depth + 1));
            }
            Value::Object(object)
        }
    }
}

fn random_bytes(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = rng.random_range(0..64);
    (0..len).map(|_| rng.random()).collect()
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(b) {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Bodies every endpoint that takes one gets.
fn nasty_bodies(rng: &mut ChaCha8Rng) -> Vec<Vec<u8>> {
    let deep = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n)).into_bytes();
    let mut bodies = vec![
        deep("[", "]", 100_000),
        deep("[", "", 100_000),
        deep("{\"a\":", "}", 50_000),
        format!("[{}]", String::from_utf8(deep("[", "]", 20_000)).expect("utf-8")).into_bytes(),
        format!("[{{\"key\":{},\"ts\":1,\"value\":1}}]", String::from_utf8(deep("[", "]", 5000)).expect("utf-8"))
            .into_bytes(),
        format!("{{\"watermark\":{}}}", String::from_utf8(deep("[", "]", 5000)).expect("utf-8")).into_bytes(),
        b"\xff\xfe\x00".to_vec(),
        b"null".to_vec(),
        b"[null, true, 1, \"s\", [], {}]".to_vec(),
        vec![b'\n'; 1000],
    ];
    for number in
        ["1e400", "-1e400", "123456789012345678901234567890", "18446744073709551615", "4611686018427387905", "-0"]
    {
        bodies.push(format!("[{{\"key\":\"a\",\"ts\":{number},\"value\":1}}]").into_bytes());
        bodies.push(format!("[{{\"key\":\"a\",\"ts\":1,\"value\":{number}}}]").into_bytes());
        bodies.push(format!("{{\"watermark\":{number}}}").into_bytes());
        bodies.push(format!("{{\"name\":\"n\",\"dataflow\":\"window_agg\",\"params\":{{\"window\":{{\"tumbling\":{{\"size\":{number}}}}},\"allowed_lateness\":{number}}}}}").into_bytes());
    }
    for _ in 0..15 {
        bodies.push(random_bytes(rng));
        bodies.push(random_json(rng, 0).to_string().into_bytes());
        bodies.push(Value::Array((0..3).map(|_| random_json(rng, 1)).collect()).to_string().into_bytes());
    }
    bodies
}

/// Sends a request; its status and body, `Err` if there was no answer at all.
async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(u16, Value), String> {
    let url = server.url(path);
    let request = match method {
        "GET" => server.client.get(&url),
        "DELETE" => server.client.delete(&url),
        _ => server.client.post(&url).header("content-type", content_type).body(body),
    };
    let response = request.send().await.map_err(|e| format!("{e}"))?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| format!("reading the body: {e}"))?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_a_500() {
    let limits = Limits { as_of_timeout: Duration::from_millis(50), wait: Duration::from_secs(5), ..Limits::default() };
    let mut server = TestServer::start_with(TestOptions { limits, ..TestOptions::default() }).await;
    create(&server, &window_job("fz", json!({"window": tumbling(1000), "allowed_lateness": 100}))).await;
    let words = json!({"name": "wc", "dataflow": "word_count", "params": {"idle_timeout_ms": null}});
    create(&server, &words).await;
    ingest(&server, "fz", &[event("a", 10, 1.0), event("b", 1500, 2.0)]).await;
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut failures = Vec::new();
    let mut requests = 0;
    let mut shapeless = Vec::new();
    // `shaped`: the answer, if an error, must be `{"error": {"code", "message"}}` (paths
    // that are not UTF-8 and methods a route does not take are left to
    // `every_error_is_a_json_error`).
    let mut check = |what: String, shaped: bool, result: Result<(u16, Value), String>| {
        requests += 1;
        match result {
            // 503 "not complete yet" is the documented answer to an `as_of` in the future.
            Ok((status, body)) if status < 500 || (status == 503 && body["error"]["code"] == "not_complete") => {
                let error = &body["error"];
                if shaped && status >= 400 && !(error["code"].is_string() && error["message"].is_string()) {
                    shapeless.push(format!("{what}: {status} {body}"));
                }
            }
            Ok((status, body)) => failures.push(format!("{what}: {status} {body}")),
            Err(e) => failures.push(format!("{what}: no answer: {e}")),
        }
    };

    let posts = [
        "/api/v1/jobs",
        "/api/v1/jobs/fz/inputs/events",
        "/api/v1/jobs/wc/inputs/lines",
        "/api/v1/jobs/fz/inputs/events/advance",
        "/api/v1/jobs/wc/inputs/lines/advance",
    ];
    for body in nasty_bodies(&mut rng) {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        for path in posts {
            for content_type in ["application/json", "application/x-ndjson", "text/plain"] {
                let result = send(&server, "POST", path, content_type, body.clone()).await;
                check(format!("POST {path} ({content_type}) {shown:?}"), true, result);
            }
        }
    }

    // Random specs: a valid one with its values replaced by random ones.
    let valid = window_job("fuzzed", json!({"window": tumbling(1000)}));
    for i in 0..60 {
        let mut spec = valid.clone();
        let field = ["name", "dataflow", "params", "inputs"][i % 4];
        spec[field] = random_json(&mut rng, 1);
        if let (0, Some(params)) = (i % 3, spec["params"].as_object_mut()) {
            params.insert("window".into(), random_json(&mut rng, 1));
        }
        if let (0, Some(inputs)) = (i % 5, spec["inputs"].as_object_mut()) {
            inputs.insert("events".into(), json!({"source": "generator", "stream": random_json(&mut rng, 2)}));
        }
        let result = send(&server, "POST", "/api/v1/jobs", "application/json", spec.to_string().into_bytes()).await;
        check(format!("POST /api/v1/jobs {spec}"), true, result);
    }

    // Random query strings on reads; random names in paths.
    let names = ["as_of", "limit", "timeout_ms", "key", "start", "count", "word", "since", "snapshot", "", "x"];
    let values = [
        "0",
        "1",
        "-1",
        "1e3",
        "1.5",
        "18446744073709551615",
        "18446744073709551616",
        "4611686018427387904",
        "",
        "a",
        "%ZZ",
        "%00",
        "%FF%FE",
        "null",
        "[]",
    ];
    for i in 0..150 {
        let mut query = Vec::new();
        for _ in 0..rng.random_range(0..5) {
            let name = names[rng.random_range(0..names.len())];
            let value = if rng.random_bool(0.2) {
                percent_encode(&random_bytes(&mut rng))
            } else {
                values[rng.random_range(0..values.len())].to_string()
            };
            // Long waits are the client's right, but not for this test.
            let value = if name == "timeout_ms" && value.len() > 4 { "5".to_string() } else { value };
            query.push(format!("{name}={value}"));
        }
        if rng.random_bool(0.1) {
            query.push(percent_encode(&random_bytes(&mut rng)));
        }
        let output = [
            "/api/v1/jobs/fz/outputs/windows",
            "/api/v1/jobs/fz/outputs/dead_letter",
            "/api/v1/jobs/wc/outputs/counts",
        ][i % 3];
        let path = format!("{output}?{}", query.join("&"));
        let result = send(&server, "GET", &path, "", Vec::new()).await;
        check(format!("GET {path}"), true, result);
    }
    for _ in 0..40 {
        let name = percent_encode(&random_bytes(&mut rng));
        for (method, path) in [
            ("GET", format!("/api/v1/jobs/{name}")),
            ("DELETE", format!("/api/v1/jobs/x{name}")),
            ("GET", format!("/api/v1/jobs/{name}/outputs/{name}")),
            ("GET", format!("/api/v1/jobs/fz/outputs/{name}")),
            ("POST", format!("/api/v1/jobs/{name}/inputs/events")),
            ("POST", format!("/api/v1/jobs/fz/inputs/{name}")),
            ("POST", format!("/api/v1/jobs/fz/inputs/{name}/advance")),
            ("GET", format!("/{name}")),
            ("POST", "/api/v1/dataflows".to_string()),
            ("DELETE", "/healthz".to_string()),
        ] {
            let result = send(&server, method, &path, "application/json", b"[]".to_vec()).await;
            check(format!("{method} {path}"), false, result);
        }
    }
    // Extreme advances last (they make every later record too late).
    for watermark in ["4611686018427387903", "4611686018427387904", "18446744073709551615", "1e19"] {
        for path in ["/api/v1/jobs/fz/inputs/events/advance", "/api/v1/jobs/wc/inputs/lines/advance"] {
            let body = format!("{{\"watermark\": {watermark}}}").into_bytes();
            let result = send(&server, "POST", path, "application/json", body).await;
            check(format!("POST {path} watermark {watermark}"), true, result);
        }
        let result =
            send(&server, "GET", "/api/v1/jobs/fz/outputs/windows?as_of=4611686018427387903", "", Vec::new()).await;
        check("GET as_of 2^62 - 1 after an extreme advance".to_string(), true, result);
        let body = b"[{\"key\":\"a\",\"ts\":4611686018427387904,\"value\":1}]".to_vec();
        let result = send(&server, "POST", "/api/v1/jobs/fz/inputs/events", "application/json", body).await;
        check("POST a record at MAX_TS after an extreme advance".to_string(), true, result);
    }
    assert!(requests > 1000, "{requests} requests");
    // The server still works.
    assert_eq!(server.get("/healthz").await, (200, json!({"status": "ok"})));
    let (status, job) = server.get("/api/v1/jobs/fz").await;
    assert_eq!((status, &job["state"]), (200, &json!("running")), "{job}");
    assert!(failures.is_empty(), "{} of {requests} requests failed:\n{}", failures.len(), failures.join("\n"));
    assert!(shapeless.is_empty(), "{} errors without an error body:\n{}", shapeless.len(), shapeless.join("\n"));
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 9. File and generator sources
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_generator_sources() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Over the API a job reads files only below the server's file root.
    let file_root = Some(tidemark::job::file_root::FileRoot::new(dir.path()).expect("file root"));
    let settings = JobSettings { file_root, ..JobSettings::default() };
    let mut server = TestServer::start_with(TestOptions { settings, ..TestOptions::default() }).await;
    let path = dir.path().join("events.ndjson");
    let mut text: String =
        (0..10).map(|i| format!("{}\n", event(&format!("k{}", i % 3), 1000 * i, i as f64))).collect();
    text.push_str("\n{\"key\": \"bad\"}\n");
    std::fs::write(&path, text).expect("write the file");
    let spec = json!({"name": "from-file", "dataflow": "window_agg", "params": {"window": tumbling(1000)},
        "inputs": {"events": {"source": "file", "path": path}}});
    let created = create(&server, &spec).await;
    assert_eq!(created["inputs"]["events"]["source"]["source"], json!("file"), "{created}");
    let generated = json!({"name": "generated", "dataflow": "window_agg", "params": {"window": tumbling(1000)},
        "inputs": {"events": {"source": "generator", "stream": "events", "rate": 500, "seed": 3}}});
    create(&server, &generated).await;

    let timeout = Duration::from_secs(10);
    let file = poll(&server, "/api/v1/jobs/from-file", timeout, |job| {
        job["inputs"]["events"]["accepted"] == 10 && job["inputs"]["events"]["rejected"] == 1
    })
    .await;
    assert_eq!(file["state"], "running", "{file}");
    assert_eq!(file["inputs"]["events"]["too_late"], 0, "{file}");
    let dead = poll(&server, "/api/v1/jobs/from-file/outputs/dead_letter", timeout, |body| {
        body["rows"].as_array().is_some_and(|rows| !rows.is_empty())
    })
    .await;
    assert_eq!(dead["rows"][0]["record"], json!({"key": "bad"}), "{dead}");
    assert_eq!(dead["rows"][0]["reason"], "invalid", "{dead}");

    let generated = poll(&server, "/api/v1/jobs/generated", timeout, |job| {
        job["inputs"]["events"]["accepted"].as_u64().is_some_and(|n| n > 0)
    })
    .await;
    assert_eq!(generated["state"], "running", "{generated}");
    assert_eq!(generated["inputs"]["events"]["source"]["source"], json!("generator"), "{generated}");
    // Its windows fill as event time passes.
    poll(&server, "/api/v1/jobs/generated/outputs/windows", timeout, |body| {
        body["rows"].as_array().is_some_and(|rows| !rows.is_empty())
    })
    .await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// In-process handlers
// ---------------------------------------------------------------------------

/// An `App` on a runtime of its own, like `serve::start` builds one, without a listener.
fn in_process_app(limits: Limits) -> InProcess {
    InProcess::start(limits, Guard::default(), crate::dataflows::registry())
}

async fn call(app: &Arc<App>, method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    let response = tidemark::serve::router(app.clone()).oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn call_json(app: &Arc<App>, method: &str, uri: &str, body: &Value) -> (u16, Value) {
    call(app, method, uri, "application/json", body.to_string().into_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_in_process() {
    let limits = Limits { max_body: 4096, ..Limits::default() };
    let server = in_process_app(limits);
    let app = &server.app;

    assert_eq!(call(app, "GET", "/healthz", "text/plain", Vec::new()).await, (200, json!({"status": "ok"})));
    let unknown_route = call(app, "GET", "/api/v1/nothing", "text/plain", Vec::new()).await;
    assert_error("unknown route", unknown_route, &[404], None, &[]);
    let (status, listing) = call(app, "GET", "/api/v1/dataflows", "text/plain", Vec::new()).await;
    assert_eq!(status, 200);
    assert!(listing.as_array().is_some_and(|d| d.iter().any(|d| d["name"] == "window_agg")), "{listing}");

    let spec = window_job("p", json!({"window": tumbling(100), "max_out_of_orderness": 10}));
    let (status, created) = call_json(app, "POST", "/api/v1/jobs", &spec).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["params"]["max_out_of_orderness"], 10, "{created}");
    let answer = call_json(app, "POST", "/api/v1/jobs", &spec).await;
    assert_error("duplicate", answer, &[409], Some("job_exists"), &["p"]);
    let answer = call(app, "POST", "/api/v1/jobs", "application/json", b"{".to_vec()).await;
    assert_error("malformed spec", answer, &[400], None, &[]);

    let records =
        json!([event("x", 50, 1.0), event("x", 120, 2.0), {"key": "x"}, event("y", 130, 3.0), event("x", 60, 4.0)]);
    let (status, report) = call_json(app, "POST", "/api/v1/jobs/p/inputs/events", &records).await;
    assert_eq!(status, 200, "{report}");
    // W after ts 130 is 120: window [0, 100) is then final, so ts 60 is too late.
    assert_eq!(
        report,
        json!({"accepted": 3, "late": 0, "too_late": 1, "rejected": [{"index": 2, "error": report["rejected"][0]["error"]}], "watermark": 120})
    );
    let (status, advanced) =
        call_json(app, "POST", "/api/v1/jobs/p/inputs/events/advance", &json!({"watermark": 300})).await;
    assert_eq!(status, 200, "{advanced}");
    assert_eq!(advanced["watermark"], 300);
    assert!(advanced["frontier"].as_u64().is_some_and(|f| f >= 300), "{advanced}");
    let (status, read) = call(app, "GET", "/api/v1/jobs/p/outputs/windows?key=x", "text/plain", Vec::new()).await;
    assert_eq!(status, 200, "{read}");
    let expected = [Expected::of("x", 0, 100, &[1.0]), Expected::of("x", 100, 200, &[2.0])];
    assert_windows("in-process read", read["rows"].as_array().expect("rows"), &expected);

    let big = vec![b' '; 5000];
    let answer = call(app, "POST", "/api/v1/jobs/p/inputs/events", "application/json", big).await;
    assert_error("over the limit", answer, &[413], Some("body_too_large"), &[]);
    let answer = call(app, "GET", "/api/v1/jobs/p/outputs/windows?limit=no", "text/plain", Vec::new()).await;
    assert_error("bad limit", answer, &[400], Some("invalid_parameter"), &["limit"]);
    assert_eq!(call(app, "DELETE", "/api/v1/jobs/p", "text/plain", Vec::new()).await.0, 204);
    assert_eq!(call(app, "GET", "/api/v1/jobs", "text/plain", Vec::new()).await, (200, json!([])));

    server.stop().await;
}

/// API.md: "Errors are `{"error": {"code", "message"}}` with a fitting status" — also
/// those axum answers before a handler runs (a path segment that is not UTF-8, a
/// method a route does not take).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_json_error() {
    let server = in_process_app(Limits::default());
    let app = &server.app;
    let mut wrong = Vec::new();
    for (method, uri) in [
        ("GET", "/api/v1/jobs/%FF"),
        ("DELETE", "/api/v1/jobs/%FF"),
        ("GET", "/api/v1/jobs/j/outputs/%FF"),
        ("POST", "/api/v1/jobs/%C3%28/inputs/events"),
        ("DELETE", "/healthz"),
        ("POST", "/api/v1/dataflows"),
        ("PUT", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/j/inputs/events"),
        ("GET", "/no/such/route"),
    ] {
        let (status, body) = call(app, method, uri, "application/json", b"[]".to_vec()).await;
        let shaped = body["error"]["code"].is_string() && body["error"]["message"].is_string();
        if !(400..500).contains(&status) || !shaped {
            wrong.push(format!("{method} {uri} -> {status} {body}"));
        }
    }
    server.stop().await;
    assert!(wrong.is_empty(), "errors that are not {{\"error\": {{\"code\", \"message\"}}}}:\n{}", wrong.join("\n"));
}

/// A pipeline whose build fails: its dedupe window is empty.
struct Unbuildable;

impl tidemark::pipeline::Pipeline for Unbuildable {
    type Params = UnbuildableParams;

    fn description(&self) -> tidemark::pipeline::Description {
        use tidemark::pipeline::{Description, InputDesc, OutputDesc};
        Description::new("unbuildable", "a dedupe of 0 ms windows")
            .input(InputDesc::of::<Line>("lines"))
            .output(OutputDesc::new("kept", &[]))
    }

    fn inputs(&self, _: &UnbuildableParams) -> tidemark::pipeline::Inputs {
        tidemark::pipeline::Inputs::new()
    }

    fn build<'s>(
        &self,
        job: &mut tidemark::pipeline::Job<'s>,
        _: &UnbuildableParams,
    ) -> Result<(), tidemark::pipeline::BuildError> {
        let lines = job.input::<Line>("lines")?;
        let kept = lines.dedupe("dedupe", 0, 0, |l: &Line| l.text.clone(), |l: &Line| l.ts)?;
        job.output("kept", kept.collection())
    }
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct UnbuildableParams {}
impl tidemark::pipeline::Params for UnbuildableParams {}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
struct Line {
    text: String,
    ts: u64,
}

impl tidemark::pipeline::Record for Line {
    const FIELDS: &'static [(&'static str, &'static str)] = &[("text", "string"), ("ts", "int")];
    fn ts(&self) -> u64 {
        self.ts
    }
}

/// A pipeline that cannot be built is a 422 for its job, and nothing else notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_fails_to_build_is_a_422_for_its_job_only() {
    let server = InProcess::start(Limits::default(), Guard::default(), crate::dataflows::registry().with(Unbuildable));
    let app = &server.app;
    let spec = window_job("fine", json!({"window": tumbling(100)}));
    assert_eq!(call_json(app, "POST", "/api/v1/jobs", &spec).await.0, 201);
    let broken = json!({"name": "broken", "dataflow": "unbuildable"});
    let answer = call_json(app, "POST", "/api/v1/jobs", &broken).await;
    assert_error("build fails", answer, &[422], Some("build_failed"), &["dedupe", "window size"]);
    assert_eq!(call(app, "GET", "/api/v1/jobs/broken", "application/json", Vec::new()).await.0, 404);
    // The other job and the runtime go on.
    let report = call_json(app, "POST", "/api/v1/jobs/fine/inputs/events", &json!([event("x", 50, 1.0)])).await;
    assert_eq!(report.1["accepted"], 1, "{report:?}");
    let again = window_job("fine2", json!({"window": tumbling(100)}));
    assert_eq!(call_json(app, "POST", "/api/v1/jobs", &again).await.0, 201);
    server.stop().await;
}
