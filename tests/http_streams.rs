//! Change streams over HTTP, against `/work/shared/API.md`: SSE and WebSocket
//! subscriptions (snapshot + updates = query), late corrections as retraction and
//! assertion, resuming with `since` and `Last-Event-ID`, filters, a slow subscriber's
//! resync, graceful shutdown, and restarts of the server (in-process and the binary).
//!
//! Every wait has a timeout, so a hang fails the test instead of blocking.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use tidemark::job::manager::JobSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::service::{TestOptions, TestServer, spawn_binary};

/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(20);

/// `future`, or a panic naming `what` after [`WAIT`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    within_for(WAIT, what, future).await
}

async fn within_for<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

// ---------------------------------------------------------------------------------------
// Jobs, inputs and queries.

/// `window_agg` params: tumbling windows of `size` ms, `allowed_lateness` ms, and no
/// wall-clock fallback for idle inputs (so that nothing moves unless the test moves it).
fn tumbling(size: u64, allowed_lateness: u64) -> Value {
    json!({"window": {"tumbling": {"size": size}}, "allowed_lateness": allowed_lateness, "idle_timeout_ms": null})
}

async fn create_http_job(server: &TestServer, name: &str, params: Value) {
    let spec =
        json!({"name": name, "dataflow": "window_agg", "params": params, "inputs": {"events": {"source": "http"}}});
    let (status, body) = within("create job", server.post("/api/v1/jobs", &spec)).await;
    assert_eq!(status, 201, "create {name}: {body}");
}

fn ev(key: &str, ts: u64, value: f64) -> Value {
    json!({"key": key, "ts": ts, "value": value})
}

/// Posts `events` to the job's `events` input; returns the report.
async fn post_events(server: &TestServer, job: &str, events: &[Value]) -> Value {
    let path = format!("/api/v1/jobs/{job}/inputs/events");
    let (status, body) = within("post events", server.post(&path, &Value::Array(events.to_vec()))).await;
    assert_eq!(status, 200, "post to {job}: {body}");
    assert_eq!(body["rejected"], json!([]), "no record is invalid: {body}");
    body
}

/// Advances the job's `events` input; returns the frontier the answer reports.
async fn advance(server: &TestServer, job: &str, watermark: u64) -> u64 {
    let path = format!("/api/v1/jobs/{job}/inputs/events/advance");
    let (status, body) = within("advance", server.post(&path, &json!({"watermark": watermark}))).await;
    assert_eq!(status, 200, "advance {job} to {watermark}: {body}");
    assert!(body["watermark"].as_u64().expect("watermark") >= watermark, "{body}");
    body["frontier"].as_u64().unwrap_or_else(|| panic!("advance answers a frontier: {body}"))
}

/// A multiset of rows: canonical JSON text (keys sorted) → multiplicity.
type Rows = BTreeMap<String, i64>;

fn add(rows: &mut Rows, row: String, diff: i64) {
    let n = rows.entry(row.clone()).or_insert(0);
    *n += diff;
    if *n == 0 {
        rows.remove(&row);
    }
}

fn multiset(rows: &Value) -> Rows {
    let mut set = Rows::new();
    for row in rows.as_array().unwrap_or_else(|| panic!("rows are an array: {rows}")) {
        add(&mut set, row.to_string(), 1);
    }
    set
}

/// `GET .../outputs/windows?{query}` → (frontier, rows).
async fn query(server: &TestServer, job: &str, query: &str) -> (u64, Rows) {
    let path = format!("/api/v1/jobs/{job}/outputs/windows?{query}");
    let (status, body) = within("query", server.get(&path)).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    (body["frontier"].as_u64().unwrap_or_else(|| panic!("frontier: {body}")), multiset(&body["rows"]))
}

// ---------------------------------------------------------------------------------------
// Messages of the protocol, and a subscriber's state.

/// One message: the SSE event name (over WebSocket, the payload's `"event"`), its data
/// and its SSE `id:`.
#[derive(Clone, Debug, PartialEq)]
struct Msg {
    event: String,
    data: Value,
    id: Option<String>,
}

/// Parses one SSE event block; `None` for a block without event or data (a comment,
/// such as a keep-alive).
fn parse_block(block: &str) -> Option<Msg> {
    let (mut event, mut data, mut id) = (None, Vec::new(), None);
    for line in block.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_string()),
            "data" => data.push(value),
            "id" => id = Some(value.to_string()),
            "retry" => {}
            other => panic!("unexpected SSE field `{other}` in {block:?}"),
        }
    }
    if event.is_none() && data.is_empty() {
        return None;
    }
    let text = data.join("\n");
    let data: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {block:?}"));
    let event = event.unwrap_or_else(|| "message".to_string());
    if let Some(named) = data.get("event") {
        assert_eq!(named, &json!(event), "the payload names its event: {block:?}");
    }
    Some(Msg { event, data, id })
}

/// Takes the complete event blocks off the front of `buffer`.
fn take_events(buffer: &mut Vec<u8>) -> Vec<Msg> {
    let mut messages = Vec::new();
    while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
        let block: Vec<u8> = buffer.drain(..end + 2).collect();
        let block = String::from_utf8(block).expect("SSE is UTF-8");
        messages.extend(parse_block(&block));
    }
    messages
}

/// A non-snapshot update message: its time and its changes (row, diff).
type Update = (u64, Vec<(String, i64)>);

/// What a subscriber knows: its rows, the last progress, and what it saw.
#[derive(Clone, Debug, Default)]
struct Acc {
    rows: Rows,
    frontier: Option<u64>,
    /// Every progress frontier, in order.
    progress: Vec<u64>,
    /// The rows after each progress message, with its frontier.
    checkpoints: Vec<(u64, Rows)>,
    /// Every non-snapshot update: its time and changes, in order.
    updates: Vec<Update>,
    snapshots: usize,
}

impl Acc {
    /// A subscriber that already holds `rows` (e.g. from a query or an earlier stream).
    fn from_rows(rows: Rows) -> Acc {
        Acc { rows, ..Acc::default() }
    }

    /// Applies one message, checking the protocol's promises on the way.
    fn apply(&mut self, m: &Msg) {
        match m.event.as_str() {
            "update" => {
                let time = m.data["time"].as_u64().unwrap_or_else(|| panic!("update time: {m:?}"));
                let snapshot = m.data.get("snapshot").and_then(Value::as_bool).unwrap_or(false);
                if snapshot {
                    assert!(
                        self.frontier.is_none() && self.updates.is_empty() && self.snapshots == 0,
                        "a snapshot comes first and once: {m:?}"
                    );
                    self.snapshots += 1;
                }
                if let Some(f) = self.frontier {
                    assert!(time >= f, "update at time {time} after progress {f}: {m:?}");
                }
                let mut changes = Vec::new();
                for u in m.data["updates"].as_array().unwrap_or_else(|| panic!("updates: {m:?}")) {
                    let diff = u["diff"].as_i64().unwrap_or_else(|| panic!("diff: {m:?}"));
                    assert!(u["row"].is_object(), "a row is an object: {m:?}");
                    assert_ne!(diff, 0, "consolidated updates have no zero diff: {m:?}");
                    let row = u["row"].to_string();
                    add(&mut self.rows, row.clone(), diff);
                    changes.push((row, diff));
                }
                if !snapshot {
                    self.updates.push((time, changes));
                }
                if let Some((row, n)) = self.rows.iter().find(|(_, n)| **n < 0) {
                    panic!("multiplicity {n} of {row} after {m:?}");
                }
            }
            "progress" => {
                let f = m.data["frontier"].as_u64().unwrap_or_else(|| panic!("progress frontier: {m:?}"));
                assert!(m.data["watermark"].is_u64(), "progress has a watermark: {m:?}");
                if let Some(previous) = self.frontier {
                    assert!(f >= previous, "frontier went back from {previous} to {f}");
                }
                if let Some(id) = &m.id {
                    assert_eq!(id, &f.to_string(), "the SSE id of a progress message is its frontier");
                }
                self.frontier = Some(f);
                self.progress.push(f);
                self.checkpoints.push((f, self.rows.clone()));
            }
            other => panic!("unexpected event `{other}`: {m:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Subscribers: SSE over reqwest, and WebSocket.

/// An SSE subscription read with reqwest.
struct Sse {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buffer: Vec<u8>,
    pending: std::collections::VecDeque<Msg>,
}

impl Sse {
    /// Subscribes; `Err((status, body))` if the server refuses.
    async fn open(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Result<Sse, (u16, Value)> {
        // No overall timeout on a stream (the harness's client has one): each read has its own.
        let client = reqwest::Client::new();
        let mut request = client.get(server.url(path)).header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = within("subscribe", request.send()).await.expect("GET subscribe");
        let status = response.status().as_u16();
        if status != 200 {
            return Err((status, within("error body", response.json()).await.unwrap_or(Value::Null)));
        }
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(content_type.starts_with("text/event-stream"), "content type `{content_type}`");
        let body = response.bytes_stream().map(|chunk| chunk.map(|b| b.to_vec()));
        Ok(Sse { body: Box::pin(body), buffer: Vec::new(), pending: Default::default() })
    }

    async fn subscribe(server: &TestServer, path: &str) -> Sse {
        match Sse::open(server, path, &[]).await {
            Ok(sse) => sse,
            Err((status, body)) => panic!("subscribe {path}: {status} {body}"),
        }
    }

    /// The next message; `None` once the stream ended.
    async fn next(&mut self) -> Option<Msg> {
        within("the next SSE message", self.next_unbounded()).await
    }

    async fn next_unbounded(&mut self) -> Option<Msg> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => {
                    self.buffer.extend_from_slice(&chunk);
                    self.pending.extend(take_events(&mut self.buffer));
                }
                Some(Err(e)) => panic!("SSE stream failed: {e}"),
                None => {
                    let rest = String::from_utf8_lossy(&self.buffer);
                    assert!(rest.trim().is_empty(), "the stream ended within an event: {rest:?}");
                    return None;
                }
            }
        }
    }

    async fn expect_next(&mut self) -> Msg {
        self.next().await.expect("the stream goes on")
    }

    /// Reads and applies messages until a progress at `target` or beyond; returns them.
    async fn until_frontier(&mut self, acc: &mut Acc, target: u64) -> Vec<Msg> {
        let mut seen = Vec::new();
        loop {
            let m = self.next().await.unwrap_or_else(|| panic!("the stream ended before frontier {target}"));
            acc.apply(&m);
            seen.push(m.clone());
            if m.event == "progress" && acc.frontier.is_some_and(|f| f >= target) {
                return seen;
            }
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message of a WebSocket subscription as a [`Msg`]; `None` once closed.
async fn ws_next(ws: &mut Ws) -> Option<Msg> {
    loop {
        match within("the next WebSocket message", ws.next()).await {
            Some(Ok(WsMessage::Text(text))) => {
                let data: Value = serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("WebSocket text is not JSON ({e}): {text}"));
                let event = data["event"].as_str().unwrap_or_else(|| panic!("payload names its event: {data}"));
                return Some(Msg { event: event.to_string(), data, id: None });
            }
            Some(Ok(WsMessage::Close(_))) | None => return None,
            Some(Ok(WsMessage::Binary(b))) => panic!("unexpected binary message of {} bytes", b.len()),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("WebSocket failed: {e}"),
        }
    }
}

fn addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

fn subscribe_path(job: &str, query: &str) -> String {
    format!("/api/v1/jobs/{job}/outputs/windows/subscribe{query}")
}

// ---------------------------------------------------------------------------------------
// 1. Snapshot + updates = query.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_updates_equal_the_query() {
    let mut server = TestServer::start().await;
    create_http_job(&server, "j", tumbling(1000, 3000)).await;
    post_events(&server, "j", &[ev("a", 100, 1.0), ev("b", 300, 2.0), ev("a", 900, 3.5), ev("c", 1500, 4.0)]).await;
    let f0 = advance(&server, "j", 2000).await;
    let (qf0, rows0) = query(&server, "j", "").await;
    assert_eq!(qf0, f0);
    assert!(!rows0.is_empty());

    let mut sse = Sse::subscribe(&server, &subscribe_path("j", "")).await;
    let mut acc = Acc::default();
    let first = sse.expect_next().await;
    assert_eq!(first.event, "update", "{first:?}");
    assert_eq!(first.data["snapshot"], json!(true), "the first message is the snapshot: {first:?}");
    assert_eq!(first.data["time"], json!(f0 - 1), "the snapshot is at time F - 1: {first:?}");
    acc.apply(&first);
    let second = sse.expect_next().await;
    assert_eq!(second.event, "progress", "the snapshot is followed by progress: {second:?}");
    assert_eq!(second.id.as_deref(), Some(f0.to_string().as_str()), "SSE id of a progress is its frontier");
    acc.apply(&second);
    assert_eq!(acc.frontier, Some(f0));
    assert_eq!(acc.rows, rows0, "the snapshot is the query's content");

    for round in 1..=4u64 {
        let base = 2000 * round;
        // Late but allowed first (judged at W = base), then on time, then (from round 3)
        // too late.
        let mut events = vec![ev("b", base - 1200, 10.0), ev("a", base - 100, -2.0)];
        events.extend([ev("a", base + 100, round as f64), ev("b", base + 600, 0.5), ev("c", base + 1500, 1.25)]);
        if round >= 3 {
            events.push(ev("a", base - 5000, 100.0));
        }
        let report = post_events(&server, "j", &events).await;
        assert_eq!(report["accepted"], json!(5), "{report}");
        assert_eq!(report["late"], json!(2), "{report}");
        assert_eq!(report["too_late"], json!(if round >= 3 { 1 } else { 0 }), "{report}");
        let f = advance(&server, "j", base + 2000).await;
        let (qf, rows) = query(&server, "j", "").await;
        assert!(qf >= f, "the output is at least at the advance's frontier");
        sse.until_frontier(&mut acc, qf).await;
        assert_eq!(acc.frontier, Some(qf), "a progress message at exactly the query's frontier");
        assert_eq!(acc.rows, rows, "snapshot + updates = query at frontier {qf}");
    }
    // Every progress message, not only the last of each round: the state up to it is
    // the content as of `f - 1`.
    assert!(acc.checkpoints.len() >= 5);
    for (f, rows) in &acc.checkpoints {
        let (_, past) = query(&server, "j", &format!("as_of={}", f - 1)).await;
        assert_eq!(&past, rows, "state at progress {f} = content as of {}", f - 1);
    }
    // Late corrections showed as changes: some update retracted a row.
    assert!(acc.updates.iter().any(|(_, c)| c.iter().any(|(_, d)| *d < 0)), "late events corrected rows");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 2. A late event: retraction and assertion at one time.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_retracts_and_asserts_at_one_time() {
    let mut server = TestServer::start().await;
    create_http_job(&server, "late", tumbling(1000, 5000)).await;
    post_events(&server, "late", &[ev("a", 100, 1.0), ev("a", 200, 2.0), ev("b", 1200, 5.0)]).await;
    let f = advance(&server, "late", 1500).await;

    let mut sse = Sse::subscribe(&server, &subscribe_path("late", "")).await;
    let mut acc = Acc::default();
    sse.until_frontier(&mut acc, f).await;
    let old: Vec<&String> = acc.rows.keys().filter(|r| r.contains(r#""key":"a""#)).collect();
    assert_eq!(old.len(), 1, "one row for a: {:?}", acc.rows);
    let old: Value = serde_json::from_str(old[0]).expect("row");
    assert_eq!((old["start"].clone(), old["count"].clone(), old["sum"].clone()), (json!(0), json!(2), json!(3.0)));

    let report = post_events(&server, "late", &[ev("a", 300, 4.0)]).await;
    assert_eq!((report["accepted"].clone(), report["late"].clone()), (json!(1), json!(1)), "{report}");
    let f2 = advance(&server, "late", 1600).await;
    let seen = sse.until_frontier(&mut acc, f2).await;
    let updates: Vec<&Msg> = seen.iter().filter(|m| m.event == "update").collect();
    assert!(!updates.is_empty(), "the correction is streamed: {seen:?}");
    let batch = &updates[0].data;
    let changes = batch["updates"].as_array().expect("updates");
    assert_eq!(changes.len(), 2, "exactly the old row out and the new one in: {batch}");
    let retracted: Vec<&Value> = changes.iter().filter(|u| u["diff"] == json!(-1)).collect();
    let asserted: Vec<&Value> = changes.iter().filter(|u| u["diff"] == json!(1)).collect();
    assert_eq!(retracted.len(), 1, "{batch}");
    assert_eq!(asserted.len(), 1, "{batch}");
    assert_eq!(retracted[0]["row"], old, "the old row is retracted: {batch}");
    let new = &asserted[0]["row"];
    assert_eq!((new["key"].clone(), new["start"].clone(), new["end"].clone()), (json!("a"), json!(0), json!(1000)));
    assert_eq!((new["count"].clone(), new["sum"].clone()), (json!(3), json!(7.0)), "{new}");
    assert_eq!((new["min"].clone(), new["max"].clone()), (json!(1.0), json!(4.0)), "{new}");
    assert!(batch["time"].as_u64().expect("time") >= f, "the correction is after the last progress");
    let (_, rows) = query(&server, "late", "").await;
    assert_eq!(acc.rows, rows);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 3. Resuming with `since` and `Last-Event-ID`; 410 once the history is gone.

/// Posts a round of events for `round` (some late but allowed) and advances.
async fn resume_round(server: &TestServer, job: &str, round: u64) -> u64 {
    let base = 1000 * round;
    let events = [
        ev("a", base - 700, 1.0 + round as f64),
        ev("b", base + 100, 2.5),
        ev("c", base + 400, -1.0),
        ev(&format!("k{round}"), base + 900, 7.0),
    ];
    post_events(server, job, &events).await;
    advance(server, job, base + 1000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_subscriptions_miss_nothing_and_repeat_nothing() {
    let mut server = TestServer::start().await;
    create_http_job(&server, "r", tumbling(1000, 3000)).await;
    resume_round(&server, "r", 1).await;

    // A: uninterrupted. B: disconnects after a middle progress.
    let mut a = Sse::subscribe(&server, &subscribe_path("r", "")).await;
    let mut b = Sse::subscribe(&server, &subscribe_path("r", "")).await;
    let (mut acc_a, mut acc_b) = (Acc::default(), Acc::default());
    let f2 = resume_round(&server, "r", 2).await;
    let f3 = resume_round(&server, "r", 3).await;
    a.until_frontier(&mut acc_a, f3).await;
    // B reads up to the progress of round 2 only; round 3's messages are in flight.
    let b_seen = b.until_frontier(&mut acc_b, f2).await;
    let last = b_seen.last().expect("a progress");
    // Resume from the last progress B saw (its SSE id).
    let f2 = acc_b.frontier.expect("a frontier");
    assert_eq!(last.id.as_deref(), Some(f2.to_string().as_str()));
    assert!(f2 < f3, "B stopped in the middle");
    drop(b);

    for round in 4..=6 {
        resume_round(&server, "r", round).await;
    }
    let (final_frontier, final_rows) = query(&server, "r", "").await;
    a.until_frontier(&mut acc_a, final_frontier).await;
    assert_eq!(acc_a.rows, final_rows, "the uninterrupted subscriber equals the query");
    // What A saw from progress f2 on: every update at a time >= f2.
    let expected: Vec<Update> = acc_a.updates.iter().filter(|(t, _)| *t >= f2).cloned().collect();
    assert!(expected.len() >= 4, "rounds 3 to 6 changed rows: {expected:?}");

    let f2_text = f2.to_string();
    let header = [("Last-Event-ID", f2_text.as_str())];
    let resumes = [
        ("since", subscribe_path("r", &format!("?since={f2}")), &[][..]),
        ("Last-Event-ID", subscribe_path("r", ""), &header[..]),
    ];
    for (how, path, headers) in resumes {
        let mut c = match Sse::open(&server, &path, headers).await {
            Ok(sse) => sse,
            Err((status, body)) => panic!("resume with {how}: {status} {body}"),
        };
        let mut acc = Acc::from_rows(acc_b.rows.clone());
        acc.frontier = Some(f2);
        c.until_frontier(&mut acc, final_frontier).await;
        assert_eq!(acc.snapshots, 0, "{how}: a resumed stream has no snapshot");
        assert_eq!(acc.updates, expected, "{how}: exactly the updates at times >= {f2}, no gap, no duplicate");
        assert_eq!(acc.rows, acc_a.rows, "{how}: state at the disconnect + resumed updates = uninterrupted state");
        assert_eq!(acc.rows, final_rows, "{how}: ... = the query");
        assert_eq!(acc.frontier, Some(final_frontier));
    }

    // Resuming from every progress A saw gives the same tail as A.
    for (f, rows) in acc_a.checkpoints.clone() {
        let mut c = Sse::subscribe(&server, &subscribe_path("r", &format!("?since={f}"))).await;
        let mut acc = Acc::from_rows(rows);
        acc.frontier = Some(f);
        c.until_frontier(&mut acc, final_frontier).await;
        let tail: Vec<_> = acc_a.updates.iter().filter(|(t, _)| *t >= f).cloned().collect();
        assert_eq!(acc.updates, tail, "resume since {f}");
        assert_eq!(acc.rows, final_rows, "resume since {f}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_before_the_retained_history_is_gone() {
    let settings = JobSettings { history: 5, ..JobSettings::default() };
    let mut server = TestServer::start_with(TestOptions { settings, ..TestOptions::default() }).await;
    create_http_job(&server, "h", tumbling(1000, 0)).await;
    let f0 = resume_round(&server, "h", 1).await;
    // Resuming at the current frontier is fine at first.
    let mut ok = Sse::subscribe(&server, &subscribe_path("h", &format!("?since={f0}"))).await;
    let first = ok.expect_next().await;
    assert_eq!((first.event.as_str(), first.data["frontier"].clone()), ("progress", json!(f0)), "{first:?}");
    drop(ok);
    for round in 2..=8 {
        resume_round(&server, "h", round).await;
    }
    let (status, job) = server.get("/api/v1/jobs/h").await;
    assert_eq!(status, 200);
    let (frontier, _) = query(&server, "h", "").await;
    for since in [0, f0] {
        let gone = Sse::open(&server, &subscribe_path("h", &format!("?since={since}")), &[]).await;
        let Err((status, body)) = gone else { panic!("since={since} is older than the history ({job}) but streams") };
        assert_eq!(status, 410, "since={since}: {body}");
        assert_eq!(body["error"]["code"], json!("history_gone"), "{body}");
        let header = since.to_string();
        let gone = Sse::open(&server, &subscribe_path("h", ""), &[("Last-Event-ID", &header)]).await;
        assert_eq!(gone.err().map(|(s, _)| s), Some(410), "Last-Event-ID: {since}");
    }
    // Bad parameters and unknown names.
    for (path, status) in [
        (subscribe_path("h", "?since=soon"), 400),
        (subscribe_path("h", "?snapshot=maybe"), 400),
        ("/api/v1/jobs/nope/outputs/windows/subscribe".to_string(), 404),
        ("/api/v1/jobs/h/outputs/nope/subscribe".to_string(), 404),
    ] {
        let refused = Sse::open(&server, &path, &[]).await;
        let Err((got, body)) = refused else { panic!("{path} streams") };
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"]["code"].is_string(), "{path}: an API error: {body}");
    }
    // The current frontier is still retained.
    let mut ok = Sse::subscribe(&server, &subscribe_path("h", &format!("?since={frontier}"))).await;
    let first = ok.expect_next().await;
    assert_eq!((first.event.as_str(), first.data["frontier"].clone()), ("progress", json!(frontier)), "{first:?}");
    drop(ok);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 4. Filters, and subscriptions without a snapshot.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_subscriptions_and_no_snapshot() {
    let mut server = TestServer::start().await;
    create_http_job(&server, "f", tumbling(1000, 3000)).await;
    post_events(&server, "f", &[ev("a", 100, 1.0), ev("b", 200, 2.0), ev("a", 1100, 3.0), ev("c", 1300, 1.0)]).await;
    let f0 = advance(&server, "f", 2000).await;
    let (_, before_b) = query(&server, "f", "key=b").await;

    let mut only_a = Sse::subscribe(&server, &subscribe_path("f", "?key=a")).await;
    let mut b_no_snapshot = Sse::subscribe(&server, &subscribe_path("f", "?key=b&snapshot=false")).await;
    let mut no_snapshot = Sse::subscribe(&server, &subscribe_path("f", "?snapshot=false")).await;

    let mut acc_a = Acc::default();
    let snapshot = only_a.expect_next().await;
    assert_eq!(snapshot.data["snapshot"], json!(true), "{snapshot:?}");
    acc_a.apply(&snapshot);
    assert_eq!(acc_a.rows.len(), 2, "two windows of a: {:?}", acc_a.rows);
    for first in [b_no_snapshot.expect_next().await, no_snapshot.expect_next().await] {
        assert_eq!(first.event, "progress", "snapshot=false starts with progress: {first:?}");
        assert_eq!(first.data["frontier"], json!(f0));
    }
    let (_, before_all) = query(&server, "f", "").await;
    let mut acc_b = Acc::from_rows(before_b);
    let mut acc_all = Acc::from_rows(before_all);

    let mut f = f0;
    for round in 1..=3u64 {
        let base = 2000 * round;
        let events = [
            ev("b", base - 500, 1.0),
            ev("a", base - 1500, 2.0),
            ev("a", base + 200, 1.0),
            ev("b", base + 700, 3.0),
            ev("c", base + 1200, 4.0),
            ev("ab", base + 1300, 5.0),
        ];
        post_events(&server, "f", &events).await;
        f = advance(&server, "f", base + 2000).await;
    }
    only_a.until_frontier(&mut acc_a, f).await;
    b_no_snapshot.until_frontier(&mut acc_b, f).await;
    no_snapshot.until_frontier(&mut acc_all, f).await;
    for (acc, key) in [(&acc_a, "a"), (&acc_b, "b")] {
        assert!(!acc.updates.is_empty(), "{key} changed");
        for (_, changes) in &acc.updates {
            for (row, _) in changes {
                let row: Value = serde_json::from_str(row).expect("row");
                assert_eq!(row["key"], json!(key), "only rows of {key}");
            }
        }
        let (_, rows) = query(&server, "f", &format!("key={key}")).await;
        assert_eq!(acc.rows, rows, "filtered stream = filtered query for {key}");
    }
    assert_eq!(acc_b.snapshots + acc_all.snapshots, 0);
    let (_, rows) = query(&server, "f", "").await;
    assert_eq!(acc_all.rows, rows, "query at subscription + changes = query");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 5. A slow subscriber is resynchronized; nobody waits for it.

/// A subscription over a raw socket with a small receive buffer, which the test stops
/// reading: only the response head is read.
async fn open_slow(addr: &str, path: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = within("connect", socket.connect(addr.parse().expect("address"))).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request");
    // Wait for the head (200), so the subscription exists before anything moves.
    let mut head = [0u8; 12];
    within("response head", stream.read_exact(&mut head)).await.expect("head");
    assert_eq!(&head, b"HTTP/1.1 200", "the slow subscription is accepted");
    stream
}

/// The body of an HTTP/1.1 response read to its end: dechunked if chunked; and
/// whether it ended properly (the last chunk).
fn response_body(raw: &[u8]) -> (Vec<u8>, bool) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let mut rest = &raw[end + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (rest.to_vec(), true);
    }
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else { return (body, false) };
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("chunk size {size_text:?}"));
        rest = &rest[line_end + 2..];
        if size == 0 {
            return (body, true);
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..size.min(rest.len())]);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_resynced_and_nobody_waits_for_it() {
    // Each step is a post and an advance (two frontier steps) of ~15 KB of changes; the
    // socket buffers of the stalled connection hold a few MB (~200 steps), the queue 256.
    const STEPS: u64 = 800;
    const KEYS: usize = 24;
    let mut server = TestServer::start().await;
    create_http_job(&server, "s", tumbling(100_000_000, 0)).await;
    let keys: Vec<String> = (0..KEYS).map(|k| format!("{}-{k:02}", "sensor-with-a-long-name-".repeat(8))).collect();
    let batch = |step: u64| -> Vec<Value> { keys.iter().map(|k| ev(k, step * 10, step as f64 + 0.25)).collect() };
    post_events(&server, "s", &batch(0)).await;
    let f0 = advance(&server, "s", 5).await;

    let path = subscribe_path("s", "");
    let mut slow = open_slow(&addr(&server), &path).await;
    let mut normal = Sse::subscribe(&server, &path).await;
    let last_watermark = STEPS * 10 + 5;
    let reader = tokio::spawn(async move {
        let mut acc = Acc::default();
        let mut events = Vec::new();
        loop {
            let m = normal.next().await.expect("the normal subscriber's stream goes on");
            assert_ne!(m.event, "resync", "the normal subscriber keeps up");
            acc.apply(&m);
            events.push(m.event.clone());
            if m.event == "progress" && acc.frontier.is_some_and(|f| f >= last_watermark) {
                return acc;
            }
        }
    });

    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut frontiers = vec![f0];
    for step in 1..=STEPS {
        let t = Instant::now();
        post_events(&server, "s", &batch(step)).await;
        frontiers.push(advance(&server, "s", step * 10 + 5).await);
        slowest = slowest.max(t.elapsed());
    }
    let pushing = started.elapsed();
    assert!(slowest < Duration::from_secs(3), "a post + advance took {slowest:?} with a stalled subscriber");
    assert!(pushing < Duration::from_secs(45), "{STEPS} steps took {pushing:?}");

    let normal = within_for(Duration::from_secs(40), "the normal subscriber", reader).await.expect("reader");
    for f in &frontiers {
        assert!(normal.progress.contains(f), "the normal subscriber saw progress {f}");
    }
    let (frontier, rows) = query(&server, "s", "").await;
    assert_eq!(normal.frontier, Some(frontier));
    assert_eq!(normal.rows, rows, "the normal subscriber's state = the query");
    assert_eq!(rows.len(), KEYS);

    // Now read the slow one to its end: what was buffered, then `resync`, then the end.
    let mut raw = b"HTTP/1.1 200".to_vec();
    let mut still_open = false;
    let deadline = Instant::now() + WAIT;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(5));
        match tokio::time::timeout(left, slow.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => panic!("reading the slow subscription: {e}"),
            Err(_) => {
                still_open = true;
                break;
            }
        }
    }
    let (mut body, complete) = response_body(&raw);
    let messages = take_events(&mut body);
    let kinds: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
    let last = messages.last().map(|m| m.event.as_str());
    assert_eq!(
        last,
        Some("resync"),
        "a subscriber that fell behind gets `resync` last ({} messages, {} bytes, still open: {still_open}, \
         ended properly: {complete}; last kinds {:?})",
        messages.len(),
        raw.len(),
        &kinds[kinds.len().saturating_sub(4)..]
    );
    assert!(complete && !still_open, "the stream is closed cleanly after the resync");
    let mut slow_acc = Acc::default();
    for m in &messages[..messages.len() - 1] {
        slow_acc.apply(m);
    }
    assert!(
        normal.progress.starts_with(&slow_acc.progress),
        "before its resync the slow subscriber got a gapless prefix of the steps"
    );
    assert!(
        slow_acc.progress.len() + 200 < normal.progress.len(),
        "the slow subscriber fell behind: {} of {} progress messages",
        slow_acc.progress.len(),
        normal.progress.len()
    );
    // Subscribing again after the resync works and catches up.
    let mut again = Sse::subscribe(&server, &path).await;
    let mut acc = Acc::default();
    again.until_frontier(&mut acc, frontier).await;
    assert_eq!(acc.rows, rows);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 6. WebSocket on the same path.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscriptions_carry_the_same_payloads() {
    let mut server = TestServer::start().await;
    create_http_job(&server, "w", tumbling(1000, 2000)).await;
    post_events(&server, "w", &[ev("a", 100, 1.0), ev("b", 700, 2.0), ev("a", 1200, 3.0)]).await;
    let f0 = advance(&server, "w", 1500).await;

    let url = format!("ws://{}{}", addr(&server), subscribe_path("w", ""));
    let (mut ws, response) = within("WebSocket connect", tokio_tungstenite::connect_async(url)).await.expect("ws");
    assert_eq!(response.status().as_u16(), 101);
    let mut sse = Sse::subscribe(&server, &subscribe_path("w", "")).await;

    let mut acc = Acc::default();
    let first = ws_next(&mut ws).await.expect("snapshot");
    assert_eq!((first.event.as_str(), first.data["snapshot"].clone()), ("update", json!(true)), "{first:?}");
    acc.apply(&first);
    let second = ws_next(&mut ws).await.expect("progress");
    assert_eq!((second.event.as_str(), second.data["frontier"].clone()), ("progress", json!(f0)), "{second:?}");
    acc.apply(&second);
    // The same JSON as over SSE.
    assert_eq!(sse.expect_next().await.data, first.data, "same snapshot payload over SSE and WebSocket");
    assert_eq!(sse.expect_next().await.data, second.data, "same progress payload over SSE and WebSocket");
    assert_eq!(acc.rows, query(&server, "w", "").await.1);

    let mut f = f0;
    for round in 1..=3u64 {
        let base = 1500 * round;
        post_events(&server, "w", &[ev("a", base - 900, 1.5), ev("b", base + 300, 2.0), ev("c", base + 1000, 0.5)])
            .await;
        f = advance(&server, "w", base + 1500).await;
    }
    let mut sse_acc = acc.clone();
    loop {
        let m = ws_next(&mut ws).await.expect("the WebSocket stream goes on");
        acc.apply(&m);
        let over_sse = sse.expect_next().await;
        assert_eq!(over_sse.data, m.data, "SSE and WebSocket deliver the same messages");
        sse_acc.apply(&over_sse);
        if acc.frontier.is_some_and(|g| g >= f) {
            break;
        }
    }
    let (qf, rows) = query(&server, "w", "").await;
    assert_eq!(acc.frontier, Some(qf));
    assert_eq!(acc.rows, rows, "WebSocket snapshot + updates = query");
    assert!(acc.updates.len() >= 3);
    ws.close(None).await.expect("close");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 7. Graceful shutdown.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_end_when_the_server_stops() {
    let mut server = TestServer::start().await;
    create_http_job(&server, "g", tumbling(1000, 0)).await;
    post_events(&server, "g", &[ev("a", 100, 1.0)]).await;
    let f = advance(&server, "g", 1000).await;
    let mut sse = Sse::subscribe(&server, &subscribe_path("g", "")).await;
    let mut acc = Acc::default();
    sse.until_frontier(&mut acc, f).await;
    let url = format!("ws://{}{}", addr(&server), subscribe_path("g", "?snapshot=false"));
    let (mut ws, _) = within("WebSocket connect", tokio_tungstenite::connect_async(url)).await.expect("ws");
    assert_eq!(ws_next(&mut ws).await.map(|m| m.event), Some("progress".to_string()));

    let running = server.server.take().expect("running");
    let stopping = tokio::spawn(running.stop());
    let mut after = Vec::new();
    while let Some(m) = sse.next().await {
        after.push(m);
    }
    // API.md: streams end cleanly when the server stops; the protocol (subscribe.rs)
    // says with an `end` message first.
    let kinds: Vec<&str> = after.iter().map(|m| m.event.as_str()).collect();
    assert!(kinds.is_empty() || kinds == ["end"], "an open SSE stream gets `end` (or just closes): {after:?}");
    let mut ws_after = Vec::new();
    while let Some(m) = ws_next(&mut ws).await {
        ws_after.push(m.event);
    }
    assert!(ws_after.is_empty() || ws_after == ["end"], "a WebSocket stream gets `end` (or just closes): {ws_after:?}");
    within("the server stops", stopping).await.expect("stop");
    let refused = within("GET after stop", server.client.get(server.url("/healthz")).send()).await;
    assert!(refused.is_err(), "the stopped server no longer answers: {refused:?}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// 8. Restarts, in-process and of the real binary; 9. an empty configuration.

/// What must survive a restart of a job listing: name, dataflow, params and sources.
fn spec_of(job: &Value) -> Value {
    let inputs: serde_json::Map<String, Value> = job["inputs"]
        .as_object()
        .unwrap_or_else(|| panic!("inputs: {job}"))
        .iter()
        .map(|(name, input)| (name.clone(), input["source"].clone()))
        .collect();
    json!({"name": job["name"], "dataflow": job["dataflow"], "params": job["params"], "inputs": inputs})
}

async fn jobs_by_name(server: &TestServer) -> BTreeMap<String, Value> {
    let (status, list) = within("list jobs", server.get("/api/v1/jobs")).await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap_or_else(|| panic!("a list: {list}")).clone();
    list.into_iter().map(|job| (job["name"].as_str().expect("name").to_string(), job)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_come_back_after_a_restart() {
    let mut first = TestServer::start().await;
    create_http_job(&first, "fed", tumbling(1000, 1000)).await;
    let generated = json!({
        "name": "generated",
        "dataflow": "window_agg",
        "params": {"window": {"tumbling": {"size": 1000}}},
        "inputs": {"events": {"source": "generator", "stream": "events", "rate": 500, "seed": 7}},
    });
    let (status, body) = first.post("/api/v1/jobs", &generated).await;
    assert_eq!(status, 201, "{body}");
    create_http_job(&first, "deleted", tumbling(1000, 0)).await;
    post_events(&first, "fed", &[ev("a", 100, 1.0), ev("b", 1100, 2.0)]).await;
    advance(&first, "fed", 2000).await;
    assert_eq!(query(&first, "fed", "").await.1.len(), 2);
    assert_eq!(first.delete("/api/v1/jobs/deleted").await, 204);
    let before = jobs_by_name(&first).await;
    assert_eq!(before.keys().collect::<Vec<_>>(), ["fed", "generated"]);
    first.stop().await;

    let mut second = TestServer::start_in(first.data_dir.clone(), TestOptions::default()).await;
    let after = jobs_by_name(&second).await;
    assert_eq!(after.keys().collect::<Vec<_>>(), ["fed", "generated"], "the deleted job does not come back");
    for (name, job) in &after {
        assert_eq!(spec_of(job), spec_of(&before[name]), "{name} has the same spec");
        assert_eq!(job["state"], json!("running"), "{name}: {job}");
    }
    let (status, _) = second.get("/api/v1/jobs/deleted").await;
    assert_eq!(status, 404);
    // The HTTP-fed job comes back with what it had acknowledged (API.md, "Durability and
    // recovery"), and takes posts again. (An advance to the watermark it had answers once
    // the outputs reflect everything before it: the restored records are applied by then.)
    advance(&second, "fed", 2000).await;
    assert_eq!(query(&second, "fed", "").await.1.len(), 2, "an HTTP-fed job comes back with its records");
    let report = post_events(&second, "fed", &[ev("c", 2500, 3.0)]).await;
    assert_eq!(report["accepted"], json!(1), "{report}");
    advance(&second, "fed", 4000).await;
    let rows: Vec<Value> = query(&second, "fed", "").await.1.keys().map(|r| serde_json::from_str(r).unwrap()).collect();
    let counts: Vec<(Value, Value)> = rows.iter().map(|r| (r["key"].clone(), r["count"].clone())).collect();
    assert_eq!(counts, [(json!("a"), json!(1)), (json!("b"), json!(1)), (json!("c"), json!(1))]);
    // The generator-fed job runs again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, job) = second.get("/api/v1/jobs/generated").await;
        if job["inputs"]["events"]["accepted"].as_u64().unwrap_or(0) > 0 && job["outputs"]["windows"]["rows"] != 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the generator-fed job produces nothing after the restart: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_configuration_starts_no_jobs() {
    let config = tidemark::config::parse("").expect("an empty file is a configuration");
    let options = TestOptions { jobs: config.jobs, ..TestOptions::default() };
    let mut server = TestServer::start_with(options).await;
    let (status, jobs) = server.get("/api/v1/jobs").await;
    assert_eq!((status, jobs), (200, json!([])));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_keeps_its_jobs_across_a_kill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let data_dir = dir.path().join("data");
    let client = reqwest::Client::builder().timeout(WAIT).build().expect("client");

    let (mut child, base) = spawn_binary(&config, &data_dir, dir.path().join("first.log")).await;
    let health = client.get(format!("{base}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let jobs: Value = client.get(format!("{base}/api/v1/jobs")).send().await.expect("jobs").json().await.expect("json");
    assert_eq!(jobs, json!([]), "an empty config starts a server with no jobs");
    let spec = json!({"name": "kept", "dataflow": "window_agg", "params": tumbling(1000, 0),
                      "inputs": {"events": {"source": "http"}}});
    let created = client.post(format!("{base}/api/v1/jobs")).json(&spec).send().await.expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let before: Value = created.json().await.expect("job");
    let posted = client
        .post(format!("{base}/api/v1/jobs/kept/inputs/events"))
        .json(&json!([ev("a", 5, 1.0)]))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status().as_u16(), 200);

    child.kill();
    drop(child);

    let (child, base) = spawn_binary(&config, &data_dir, dir.path().join("second.log")).await;
    let jobs: Value = client.get(format!("{base}/api/v1/jobs")).send().await.expect("jobs").json().await.expect("json");
    let jobs = jobs.as_array().expect("list").clone();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(spec_of(&jobs[0]), spec_of(&before), "the job is back with its spec");
    assert_eq!(jobs[0]["state"], json!("running"));
    let posted = client
        .post(format!("{base}/api/v1/jobs/kept/inputs/events"))
        .json(&json!([ev("b", 7, 2.0)]))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status().as_u16(), 200, "the restored job takes posts");
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_later_of_since_and_last_event_id_is_where_a_client_resumes() {
    // A browser's EventSource reconnects to its original URL (with its old `since`) and
    // sends the newer resume point as `Last-Event-ID`: the later one counts.
    let mut server = TestServer::start().await;
    create_http_job(&server, "later", tumbling(1000, 3000)).await;
    let f1 = resume_round(&server, "later", 1).await;
    let f2 = resume_round(&server, "later", 2).await;
    resume_round(&server, "later", 3).await;
    let path = subscribe_path("later", &format!("?since={f1}"));
    let mut both = Sse::open(&server, &path, &[("last-event-id", &f2.to_string())]).await.expect("resumes");
    let first = both.expect_next().await;
    assert_eq!(first.event, "update", "{first:?}");
    let time = first.data["time"].as_u64().expect("time");
    assert!(time >= f2, "resumed at time {time}, before the later resume point {f2}");
    // Only the URL's `since`: the updates between f1 and f2 come too.
    let mut only_since = Sse::subscribe(&server, &path).await;
    let first = only_since.expect_next().await;
    let time = first.data["time"].as_u64().expect("time");
    assert!((f1..f2).contains(&time), "resumed at time {time}, expected within [{f1}, {f2})");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_point_beyond_the_frontier_is_gone() {
    // Such a point was given out by an earlier instance of the output (before a restart
    // rebuilt it): resuming would keep rows the server may no longer have.
    let mut server = TestServer::start().await;
    create_http_job(&server, "beyond", tumbling(1000, 3000)).await;
    let f = resume_round(&server, "beyond", 1).await;
    for (query, headers) in
        [(format!("?since={}", f + 1), vec![]), (String::new(), vec![("last-event-id", "999999999")])]
    {
        let headers: Vec<(&str, &str)> = headers;
        match Sse::open(&server, &subscribe_path("beyond", &query), &headers).await {
            Err((status, body)) => {
                assert_eq!(status, 410, "{body}");
                assert_eq!(body["error"]["code"], "history_gone", "{body}");
            }
            Ok(_) => panic!("resuming beyond frontier {f} ({query} {headers:?}) was accepted"),
        }
    }
    // The frontier itself is fine (nothing newer to send yet).
    let mut at = Sse::subscribe(&server, &subscribe_path("beyond", &format!("?since={f}"))).await;
    assert_eq!(at.expect_next().await.event, "progress");
    server.stop().await;
}

/// A subscriber of a job that comes back after a restart resumes with `since` from
/// the last progress it saw before the restart: no gap, no duplicate, against a
/// server that never stopped, fed the same requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_resumes_across_a_restart() {
    resumes_across_a_restart(false).await;
}

/// The same, the restarted job coming back from checkpoints taken after the point the
/// subscriber resumes from: the history before them comes back with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_resumes_across_a_restart_from_checkpoints() {
    resumes_across_a_restart(true).await;
}

async fn resumes_across_a_restart(checkpoints: bool) {
    let mut steady = TestServer::start().await;
    let mut first = TestServer::start().await;
    for server in [&steady, &first] {
        create_http_job(server, "r", tumbling(1000, 3000)).await;
        resume_round(server, "r", 1).await;
    }
    // The steady server takes the same checkpoints: a checkpoint moves the frontier,
    // which places later late records.
    if checkpoints {
        for server in [&steady, &first] {
            assert_eq!(server.post("/api/v1/jobs/r/checkpoint", &json!({})).await.0, 200);
        }
    }
    let mut a = Sse::subscribe(&steady, &subscribe_path("r", "")).await;
    let mut b = Sse::subscribe(&first, &subscribe_path("r", "")).await;
    let (mut acc_a, mut acc_b) = (Acc::default(), Acc::default());
    let mut f2 = 0;
    for server in [&steady, &first] {
        f2 = resume_round(server, "r", 2).await;
    }
    b.until_frontier(&mut acc_b, f2).await;
    let seen = acc_b.frontier.expect("a frontier");
    drop(b);
    if checkpoints {
        for server in [&steady, &first] {
            let (status, taken) = server.post("/api/v1/jobs/r/checkpoint", &json!({})).await;
            assert_eq!(status, 200, "{taken}");
            assert!(taken["frontier"].as_u64() > Some(seen), "{taken} after {seen}");
        }
    }
    first.stop().await;

    let mut second = TestServer::start_in(first.data_dir.clone(), TestOptions::default()).await;
    let (_, job) = second.get("/api/v1/jobs/r").await;
    assert_eq!(job["checkpoint"]["id"].as_u64(), checkpoints.then_some(2), "{job}");
    for round in 3..=5 {
        for server in [&steady, &second] {
            resume_round(server, "r", round).await;
        }
    }
    let (final_frontier, final_rows) = query(&steady, "r", "").await;
    assert_eq!(query(&second, "r", "").await, (final_frontier, final_rows.clone()), "same content after the restart");
    a.until_frontier(&mut acc_a, final_frontier).await;
    let expected: Vec<Update> = acc_a.updates.iter().filter(|(t, _)| *t >= seen).cloned().collect();
    assert!(expected.len() >= 3, "rounds 3 to 5 changed rows: {expected:?}");

    let mut c = Sse::subscribe(&second, &subscribe_path("r", &format!("?since={seen}"))).await;
    let mut acc = Acc::from_rows(acc_b.rows.clone());
    acc.frontier = Some(seen);
    c.until_frontier(&mut acc, final_frontier).await;
    assert_eq!(acc.snapshots, 0, "a resumed stream has no snapshot");
    assert_eq!(acc.updates, expected, "exactly the updates at times >= {seen}, no gap, no duplicate");
    assert_eq!(acc.rows, final_rows);
    steady.stop().await;
    second.stop().await;
}
