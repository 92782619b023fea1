//! Tokens and scopes: every scope against every class of route, missing, wrong and
//! malformed tokens, subscriptions with the token in a header or the query, revoking a
//! token by editing the file, tokens never in the log, and the loopback rule of the
//! binary.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use super::{
    ADMIN, READ, WRITE, assert_error, event, request, run_binary, send, tokens_file, window_job, with_tokens, within,
};
use crate::service::{TestOptions, TestServer, spawn_binary_with};

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Read,
    Write,
    Admin,
}

/// The scope of each test token.
fn scope_of(token: &str) -> Class {
    match token {
        READ => Class::Read,
        WRITE => Class::Write,
        _ => Class::Admin,
    }
}

/// A job `j` with one row in `windows`, created and fed with the admin token.
async fn job_with_a_row(server: &TestServer) {
    let (status, body) = send(request(server, "POST", "/api/v1/jobs", Some(ADMIN)).json(&window_job("j"))).await;
    assert_eq!(status, 201, "{body}");
    let events = json!([event("a", 100, 1.0)]);
    let answer = send(request(server, "POST", "/api/v1/jobs/j/inputs/events", Some(ADMIN)).json(&events)).await;
    assert_eq!(answer.0, 200, "{answer:?}");
    let advance = json!({"watermark": 1000});
    let answer =
        send(request(server, "POST", "/api/v1/jobs/j/inputs/events/advance", Some(ADMIN)).json(&advance)).await;
    assert_eq!(answer.0, 200, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scope_against_every_class_of_route() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = with_tokens(dir.path(), TestOptions::default()).await;
    job_with_a_row(&server).await;

    // (method, path, body, class, status when allowed)
    let routes: Vec<(&str, &str, Option<Value>, Class, u16)> = vec![
        ("GET", "/api/v1/dataflows", None, Class::Read, 200),
        ("GET", "/api/v1/jobs", None, Class::Read, 200),
        ("GET", "/api/v1/jobs/j", None, Class::Read, 200),
        ("GET", "/api/v1/jobs/j/outputs/windows?key=a", None, Class::Read, 200),
        ("GET", "/metrics", None, Class::Read, 200),
        ("GET", "/api/v1/no-such-route", None, Class::Read, 404),
        ("POST", "/api/v1/jobs/j/inputs/events", Some(json!([event("b", 200, 2.0)])), Class::Write, 200),
        ("POST", "/api/v1/jobs/j/inputs/events/advance", Some(json!({"watermark": 1000})), Class::Write, 200),
        ("POST", "/api/v1/jobs", Some(window_job("NAME")), Class::Admin, 201),
        ("DELETE", "/api/v1/jobs/no-such-job", None, Class::Admin, 404),
    ];
    let mut created = 0;
    let mut wrong = Vec::new();
    for (method, path, body, class, allowed) in &routes {
        let presented = [None, Some("not-a-token"), Some(READ), Some(WRITE), Some(ADMIN)];
        for token in presented {
            let mut builder = request(&server, method, path, token);
            if let Some(body) = body {
                let mut body = body.clone();
                if body["name"] == "NAME" {
                    created += 1;
                    body["name"] = format!("created-{created}").into();
                }
                builder = builder.json(&body);
            }
            let response = within("an answer", builder.send()).await.expect("answer");
            let status = response.status().as_u16();
            let challenge = response.headers().get("www-authenticate").cloned();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            let expected = match token.map(scope_of) {
                _ if token == Some("not-a-token") => (401, Some("unauthorized")),
                None => (401, Some("unauthorized")),
                Some(scope) if scope < *class => (403, Some("forbidden")),
                Some(_) => (*allowed, None),
            };
            let code = answer["error"]["code"].as_str();
            let matches = status == expected.0 && (expected.1.is_none() || code == expected.1);
            let challenged = status != 401 || challenge.is_some_and(|c| c.to_str().unwrap_or("").starts_with("Bearer"));
            if !matches || !challenged {
                wrong.push(format!("{method} {path} with {token:?}: {status} {answer} (expected {expected:?})"));
            }
        }
    }
    assert!(wrong.is_empty(), "answers that break the scope rules:\n{}", wrong.join("\n"));

    // No other spelling of a path reaches a route without a token.
    for path in ["//api/v1/jobs", "/%61pi/v1/jobs", "/api//v1/jobs", "/./api/v1/jobs", "/api/v1/./jobs", "/API/v1/jobs"]
    {
        let answer = send(request(&server, "GET", path, None)).await;
        assert_error(path, &answer, 401, "unauthorized");
    }
    // Open without a token: the health check and the page (whose data comes from the API).
    assert_eq!(send(request(&server, "GET", "/healthz", None)).await, (200, json!({"status": "ok"})));
    let page = within("the page", request(&server, "GET", "/", None).send()).await.expect("page");
    assert_eq!(page.status().as_u16(), 200);
    // Other ways of presenting a token are refused.
    let basic = request(&server, "GET", "/api/v1/jobs", None).header("authorization", format!("Basic {ADMIN}"));
    assert_error("basic auth", &send(basic).await, 401, "unauthorized");
    let in_query = request(&server, "GET", &format!("/api/v1/jobs?access_token={ADMIN}"), None);
    assert_error("a query token outside subscriptions", &send(in_query).await, 401, "unauthorized");
    // The scheme's case does not matter (RFC 7235).
    let lower = request(&server, "GET", "/api/v1/jobs", None).header("authorization", format!("bearer {READ}"));
    assert_eq!(send(lower).await.0, 200);
    server.stop().await;
}

/// The first SSE event of a subscription's body: (event, data).
async fn first_sse_event(response: reqwest::Response) -> (String, Value) {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = within("an SSE event", body.next()).await.expect("the stream goes on").expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let event = text.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_string();
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).expect("data");
    (event, serde_json::from_str(data).expect("JSON data"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_take_the_token_in_a_header_or_the_query() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = with_tokens(dir.path(), TestOptions::default()).await;
    job_with_a_row(&server).await;
    let path = "/api/v1/jobs/j/outputs/windows/subscribe";

    for (how, url, token) in [
        ("header", path.to_string(), Some(READ)),
        ("query", format!("{path}?access_token={READ}"), None),
        ("query, with a filter", format!("{path}?key=a&access_token={WRITE}"), None),
    ] {
        let response = within("subscribe", request(&server, "GET", &url, token).send()).await.expect("answer");
        assert_eq!(response.status().as_u16(), 200, "{how}");
        let (event, data) = first_sse_event(response).await;
        // The token is not a filter: the snapshot holds the job's row.
        assert_eq!((event.as_str(), data["snapshot"].clone()), ("update", json!(true)), "{how}: {data}");
        assert_eq!(data["updates"][0]["row"]["key"], "a", "{how}: {data}");
    }
    for (how, url) in [
        ("no token", path.to_string()),
        ("a wrong token", format!("{path}?access_token=nope")),
        ("an empty token", format!("{path}?access_token=")),
    ] {
        assert_error(how, &send(request(&server, "GET", &url, None)).await, 401, "unauthorized");
    }

    // WebSocket: the same payloads, the token in a header or the query.
    let ws_url = server.url(path).replacen("http://", "ws://", 1);
    let mut with_header = ws_url.as_str().into_client_request().expect("request");
    with_header.headers_mut().insert("authorization", format!("Bearer {READ}").parse().expect("header"));
    for (how, request) in [
        ("header", with_header),
        ("query", format!("{ws_url}?access_token={READ}").into_client_request().expect("request")),
    ] {
        let (mut ws, response) = within("WebSocket", tokio_tungstenite::connect_async(request)).await.expect(how);
        assert_eq!(response.status().as_u16(), 101, "{how}");
        let first = within("a WebSocket message", ws.next()).await.expect("open").expect("message");
        let WsMessage::Text(text) = first else { panic!("{how}: not text: {first:?}") };
        let data: Value = serde_json::from_str(text.as_str()).expect("JSON");
        assert_eq!((data["event"].clone(), data["snapshot"].clone()), (json!("update"), json!(true)), "{how}");
        let _ = ws.close(None).await;
    }
    for (how, url) in [("no token", ws_url.clone()), ("a wrong token", format!("{ws_url}?access_token=nope"))] {
        match within("WebSocket", tokio_tungstenite::connect_async(url)).await {
            Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 401, "{how}"),
            other => panic!("{how}: expected a 401, got {:?}", other.map(|(_, r)| r.status())),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_tokens_file_grants_and_revokes_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = with_tokens(dir.path(), TestOptions::default()).await;
    let path = tokens_file(dir.path());
    assert_eq!(send(request(&server, "GET", "/api/v1/jobs", Some(READ))).await.0, 200);
    let new = "read-another-token-0123456789";
    std::fs::write(&path, format!("read {new}\nadmin {ADMIN}\n")).expect("rewrite");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let old = send(request(&server, "GET", "/api/v1/jobs", Some(READ))).await.0;
        let granted = send(request(&server, "GET", "/api/v1/jobs", Some(new))).await.0;
        if (old, granted) == (401, 200) {
            break;
        }
        assert!(Instant::now() < deadline, "after editing the file: old token {old}, new token {granted}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A file that no longer parses revokes every token until it is fixed.
    std::fs::write(&path, "admin\n").expect("break the file");
    let deadline = Instant::now() + Duration::from_secs(15);
    while send(request(&server, "GET", "/api/v1/jobs", Some(ADMIN))).await.0 != 401 {
        assert!(Instant::now() < deadline, "a broken tokens file still lets the admin token in");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}

#[test]
fn beyond_loopback_without_tokens_the_binary_exits_2() {
    let (code, stderr) = run_binary(&["--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--tokens") && stderr.contains("--insecure"), "{stderr}");
    let (code, stderr) = run_binary(&["--listen", "[::]:0"]);
    assert_eq!(code, Some(2), "{stderr}");

    // An unusable tokens file is a usage error too, and its message never quotes a token.
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("tokens");
    std::fs::write(&bad, "read SECRET-ONE\nsuperuser SECRET-TWO\n").expect("tokens");
    let (code, stderr) = run_binary(&["--tokens", bad.to_str().expect("path")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("line 2") && !stderr.contains("SECRET"), "{stderr}");
    let missing = dir.path().join("missing");
    assert_eq!(run_binary(&["--tokens", missing.to_str().expect("path")]).0, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_starts_beyond_loopback() {
    // This one server listens on every interface, for the second it takes to check it.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let args: [&OsStr; 3] = ["--listen".as_ref(), "0.0.0.0:0".as_ref(), "--insecure".as_ref()];
    let log = dir.path().join("log");
    let (mut child, base) = spawn_binary_with(&config, &dir.path().join("data"), log.clone(), &args, "info").await;
    let port = base.rsplit(':').next().expect("port");
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.expect("health");
    assert_eq!(health.status().as_u16(), 200);
    child.kill();
    let log = std::fs::read_to_string(log).expect("log");
    assert!(log.contains("--insecure"), "the log warns: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let tokens = tokens_file(dir.path());
    let log = dir.path().join("log");
    let args: [&OsStr; 2] = ["--tokens".as_ref(), tokens.as_os_str()];
    // Everything the server can log, at every level.
    let (mut child, base) = spawn_binary_with(&config, &dir.path().join("data"), log.clone(), &args, "trace").await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let wrong = "wrong-Xa7Qm3Lp9Rz2Tv5Wn8Yb1Kc4";
    let spec = window_job("j");
    let create = client.post(format!("{base}/api/v1/jobs")).bearer_auth(ADMIN).json(&spec).send().await;
    assert_eq!(create.expect("create").status().as_u16(), 201);
    for token in [READ, WRITE, ADMIN, wrong] {
        let _ = client.get(format!("{base}/api/v1/jobs/j")).bearer_auth(token).send().await;
        let feed = format!("{base}/api/v1/jobs/j/inputs/events");
        let _ = client.post(feed).bearer_auth(token).json(&json!([event("k", 5, 1.0)])).send().await;
        let _ = client.post(format!("{base}/api/v1/jobs")).bearer_auth(token).body("x").send().await;
        let subscribe = format!("{base}/api/v1/jobs/j/outputs/windows/subscribe?snapshot=false&access_token={token}");
        if let Ok(response) = client.get(&subscribe).send().await {
            drop(response);
        }
        let ws = subscribe.replacen("http://", "ws://", 1);
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(ws).await {
            let _ = ws.close(None).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("listening"), "the log was written: {text}");
    for token in [READ, WRITE, ADMIN, wrong] {
        assert!(!text.contains(token), "the log holds a token:\n{text}");
    }
}
