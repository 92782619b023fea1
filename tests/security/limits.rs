//! Each limit with its answer: 413 (body size), 408 (slow body), 429 with
//! `Retry-After` (rate), 503 `too_many_subscribers`, 409 `too_many_jobs`, an oversized
//! WebSocket message; and slow-loris clients dropped while others are served.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tidemark::job::manager::JobSettings;
use tidemark::serve::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{ADMIN, READ, addr, assert_error, event, request, send, window_job, with_tokens, within};
use crate::service::{TestOptions, TestServer};

/// Reads what the server sends on `tcp` until it closes the connection (or 20 s).
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match within("the server closes the connection", tcp.read(&mut buffer)).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&text).into_owned(),
            Ok(n) => text.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_too_large_or_too_slow() {
    let limits = Limits { max_body: 1000, body_timeout: Duration::from_secs(1), ..Limits::default() };
    let mut server = TestServer::start_with(TestOptions { limits, ..TestOptions::default() }).await;
    assert_eq!(server.post("/api/v1/jobs", &window_job("j")).await.0, 201);
    let big: Vec<Value> = (0..100).map(|i| event("k", i, 1.0)).collect();
    assert_error("1000+ bytes", &server.post("/api/v1/jobs/j/inputs/events", &json!(big)).await, 413, "body_too_large");

    // A declared length over the limit is refused before any of it is read.
    let mut tcp = TcpStream::connect(addr(&server)).await.expect("connect");
    let head = "POST /api/v1/jobs/j/inputs/events HTTP/1.1\r\nhost: localhost\r\n\
                content-type: application/json\r\ncontent-length: 100000000\r\n\r\n[";
    tcp.write_all(head.as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A body that stops arriving: 408 once the body timeout passes.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr(&server)).await.expect("connect");
    let head = "POST /api/v1/jobs/j/inputs/events HTTP/1.1\r\nhost: localhost\r\n\
                content-type: application/json\r\ncontent-length: 100\r\n\r\n[{\"key\":";
    tcp.write_all(head.as_bytes()).await.expect("write");
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10), "answered after {:?}", started.elapsed());
    // Nothing of it was ingested.
    assert_eq!(server.get("/api/v1/jobs/j").await.1["inputs"]["events"]["accepted"], 0);
    server.stop().await;
}

/// GETs `/api/v1/jobs` with `token` until one is refused; the refusal.
async fn until_limited(server: &TestServer, token: Option<&str>) -> reqwest::Response {
    for _ in 0..50 {
        let response = request(server, "GET", "/api/v1/jobs", token).send().await.expect("answer");
        if response.status().as_u16() == 429 {
            return response;
        }
    }
    panic!("50 requests at once were never limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rates_per_token_and_per_client() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = Limits { rate_limit: NonZeroU32::new(5), ..Limits::default() };
    let mut server = with_tokens(dir.path(), TestOptions { limits, ..TestOptions::default() }).await;

    let refused = until_limited(&server, Some(READ)).await;
    let retry: u64 = refused.headers()["retry-after"].to_str().expect("text").parse().expect("seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Another token has a rate of its own.
    assert_eq!(send(request(&server, "GET", "/api/v1/jobs", Some(ADMIN))).await.0, 200);
    // Clients without a valid token are limited by address: no guessing tokens at speed.
    let refused = until_limited(&server, Some("guess")).await;
    assert!(refused.headers().contains_key("retry-after"));
    // After the wait it says, the token is served again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(send(request(&server, "GET", "/api/v1/jobs", Some(READ))).await.0, 200);
    server.stop().await;
}

/// Opens an SSE subscription; its status, and the response to keep it open.
async fn subscribe(server: &TestServer, output: &str) -> (u16, reqwest::Response) {
    let path = format!("/api/v1/jobs/j/outputs/{output}/subscribe");
    let response = within("subscribe", request(server, "GET", &path, None).send()).await.expect("answer");
    (response.status().as_u16(), response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_per_output_are_limited() {
    let limits = Limits { max_subscribers: 2, ..Limits::default() };
    let mut server = TestServer::start_with(TestOptions { limits, ..TestOptions::default() }).await;
    assert_eq!(server.post("/api/v1/jobs", &window_job("j")).await.0, 201);
    let (first, a) = subscribe(&server, "windows").await;
    let (second, _b) = subscribe(&server, "windows").await;
    assert_eq!((first, second), (200, 200));
    let (third, refused) = subscribe(&server, "windows").await;
    assert_eq!(third, 503);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "too_many_subscribers", "{body}");
    // Per output: another output of the job has room.
    assert_eq!(subscribe(&server, "dead_letter").await.0, 200);

    // A subscriber that leaves gives its place back.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ts = 0;
    loop {
        // Changes make the server write to the stream, and so notice it was closed.
        ts += 1000;
        server.post("/api/v1/jobs/j/inputs/events", &json!([event("k", ts, 1.0)])).await;
        let (status, _kept) = subscribe(&server, "windows").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the place of a closed subscription was not given back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_limited_but_configured_ones_always_start() {
    let settings = JobSettings { max_jobs: 2, ..JobSettings::default() };
    let configured = ["c1", "c2", "c3"].map(|n| serde_json::from_value(window_job(n)).expect("spec")).to_vec();
    let options = TestOptions { settings, jobs: configured, ..TestOptions::default() };
    let mut server = TestServer::start_with(options).await;
    assert_eq!(server.get("/api/v1/jobs").await.1.as_array().map(Vec::len), Some(3));
    assert_error("over the limit", &server.post("/api/v1/jobs", &window_job("x")).await, 409, "too_many_jobs");
    assert_eq!(server.delete("/api/v1/jobs/c1").await, 204);
    assert_error("still at the limit", &server.post("/api/v1/jobs", &window_job("x")).await, 409, "too_many_jobs");
    assert_eq!(server.delete("/api/v1/jobs/c2").await, 204);
    assert_eq!(server.post("/api/v1/jobs", &window_job("x")).await.0, 201);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_dropped_while_others_are_served() {
    let limits = Limits { header_timeout: Duration::from_secs(1), ..Limits::default() };
    let mut server = TestServer::start_with(TestOptions { limits, ..TestOptions::default() }).await;
    let started = Instant::now();

    // Slow-loris: headers a few bytes at a time, never finished; and clients that say nothing.
    let mut slow = Vec::new();
    for i in 0..40u32 {
        let mut tcp = TcpStream::connect(addr(&server)).await.expect("connect");
        if i.is_multiple_of(2) {
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n").await.expect("write");
        }
        slow.push(tcp);
    }
    let dribble = tokio::spawn(async move {
        let mut closed = 0;
        let mut clients = slow;
        let deadline = Instant::now() + Duration::from_secs(15);
        while !clients.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut open = Vec::new();
            for mut tcp in clients {
                // A header byte now and then keeps a naive server waiting forever.
                let alive = tcp.write_all(b"x").await.is_ok() && {
                    let mut buffer = [0u8; 256];
                    !matches!(
                        tokio::time::timeout(Duration::from_millis(5), tcp.read(&mut buffer)).await,
                        Ok(Ok(0) | Err(_))
                    )
                };
                if alive { open.push(tcp) } else { closed += 1 }
            }
            clients = open;
        }
        (closed, clients.len())
    });

    // Meanwhile others are served, promptly.
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let asked = Instant::now();
        assert_eq!(server.get("/healthz").await.0, 200);
        assert!(asked.elapsed() < Duration::from_secs(1), "a request took {:?}", asked.elapsed());
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (closed, open) = within("the slow clients", dribble).await.expect("dribble");
    assert_eq!((closed, open), (40, 0), "slow clients still connected after {:?}", started.elapsed());
    assert!(served >= 20, "{served} requests served");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_websocket_message_closes_only_its_connection() {
    let limits = Limits { max_ws_message: 1024, ..Limits::default() };
    let mut server = TestServer::start_with(TestOptions { limits, ..TestOptions::default() }).await;
    assert_eq!(server.post("/api/v1/jobs", &window_job("j")).await.0, 201);
    let url = server.url("/api/v1/jobs/j/outputs/windows/subscribe").replacen("http://", "ws://", 1);
    let (mut ws, _) = within("connect", tokio_tungstenite::connect_async(&url)).await.expect("ws");
    let _ = ws.send(WsMessage::Text("x".repeat(64 * 1024).into())).await;
    let ended = within("the server ends the connection", async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended);
    // Others are unaffected.
    let (mut other, _) = within("connect", tokio_tungstenite::connect_async(&url)).await.expect("ws");
    let first = within("a message", other.next()).await.expect("open").expect("message");
    assert!(matches!(first, WsMessage::Text(_)), "{first:?}");
    assert_eq!(server.get("/healthz").await.0, 200);
    server.stop().await;
}
