//! What a web page could make a browser do: DNS rebinding (`Host`), simple requests
//! (`text/plain` and form bodies), cross-origin calls (CORS), and the headers every
//! answer carries.

use serde_json::json;
use tidemark::serve::Security;

use super::{ADMIN, assert_error, request, send, window_job, with_tokens};
use crate::service::{TestOptions, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_known_hosts_are_answered() {
    let security = Security { allowed_hosts: vec!["tidemark.test".into()], ..Security::default() };
    let mut server = TestServer::start_with(TestOptions { security, ..TestOptions::default() }).await;
    let port = server.base.rsplit(':').next().expect("port").to_string();
    let with_host = |path: &str, host: &str| request(&server, "GET", path, None).header("host", host);

    for host in
        ["evil.example.com", &format!("evil.example.com:{port}"), "localhost.evil.example", "tidemark.test.evil"]
    {
        let answer = send(with_host("/api/v1/jobs", host)).await;
        assert_error(&format!("Host {host}"), &answer, 403, "forbidden_host");
        // A page of the rebinding kind may not even load the page.
        assert_eq!(send(with_host("/", host)).await.0, 403, "Host {host} on /");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost".to_string(),
        format!("tidemark.test:{port}"),
        format!("TIDEMARK.TEST:{port}"),
    ] {
        assert_eq!(send(with_host("/api/v1/jobs", &host)).await, (200, json!([])), "Host {host}");
    }
    // Health checks answer whatever the name.
    assert_eq!(send(with_host("/healthz", "evil.example.com")).await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_json_or_ndjson() {
    let mut server = TestServer::start().await;
    let spec = window_job("j").to_string();
    for content_type in [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let mut builder = request(&server, "POST", "/api/v1/jobs", None).body(spec.clone());
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        assert_error(&format!("{content_type:?}"), &send(builder).await, 415, "unsupported_media_type");
    }
    // None of them created the job.
    assert_eq!(send(request(&server, "GET", "/api/v1/jobs", None)).await, (200, json!([])));

    let json = request(&server, "POST", "/api/v1/jobs", None).header("content-type", "Application/JSON; charset=utf-8");
    assert_eq!(send(json.body(spec)).await.0, 201);
    let ndjson = request(&server, "POST", "/api/v1/jobs/j/inputs/events", None)
        .header("content-type", "application/x-ndjson")
        .body("{\"key\":\"a\",\"ts\":1,\"value\":1}\n");
    assert_eq!(send(ndjson).await.1["accepted"], 1);
    let plain = request(&server, "POST", "/api/v1/jobs/j/inputs/events/advance", None)
        .header("content-type", "text/plain")
        .body(r#"{"watermark": 5}"#);
    assert_error("text/plain advance", &send(plain).await, 415, "unsupported_media_type");
    // A request without a body needs no type.
    assert_eq!(send(request(&server, "DELETE", "/api/v1/jobs/j", None)).await.0, 204);
    server.stop().await;
}

/// A CORS preflight for `POST /api/v1/jobs` from `origin`: its status and
/// `Access-Control-Allow-Origin` / `-Headers`.
async fn preflight(server: &TestServer, origin: &str) -> (u16, Option<String>, Option<String>) {
    let response = request(server, "OPTIONS", "/api/v1/jobs", None)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .expect("preflight");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    (response.status().as_u16(), header("access-control-allow-origin"), header("access-control-allow-headers"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_the_named_origins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let allowed = "https://app.example.com";
    let security = Security { cors_origins: vec![allowed.into()], ..Security::default() };
    let mut server = with_tokens(dir.path(), TestOptions { security, ..TestOptions::default() }).await;

    let (status, origin, headers) = preflight(&server, allowed).await;
    assert_eq!((status, origin.as_deref()), (200, Some(allowed)));
    let headers = headers.unwrap_or_default().to_ascii_lowercase();
    assert!(headers.contains("authorization") && headers.contains("content-type"), "{headers}");
    let (_, origin, _) = preflight(&server, "https://evil.example.com").await;
    assert_eq!(origin, None, "a foreign origin gets no CORS permission");

    // The call itself, from the allowed origin: its answer (even an error) is readable.
    let call = request(&server, "GET", "/api/v1/jobs", Some(ADMIN)).header("origin", allowed).send().await;
    let call = call.expect("call");
    assert_eq!(call.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap_or("")), Some(allowed));
    let denied = request(&server, "GET", "/api/v1/jobs", None).header("origin", allowed).send().await;
    let denied = denied.expect("call");
    assert_eq!(denied.status().as_u16(), 401);
    assert!(denied.headers().contains_key("access-control-allow-origin"));
    let foreign = request(&server, "GET", "/api/v1/jobs", Some(ADMIN)).header("origin", "https://evil.example.com");
    let foreign = foreign.send().await.expect("call");
    assert!(!foreign.headers().contains_key("access-control-allow-origin"));
    server.stop().await;

    // Without --cors-origin no origin is answered.
    let mut server = TestServer::start().await;
    let (_, origin, _) = preflight(&server, allowed).await;
    assert_eq!(origin, None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_hardening_headers() {
    let mut server = TestServer::start().await;
    for path in ["/", "/healthz", "/api/v1/jobs", "/api/v1/no-such-route"] {
        let response = request(&server, "GET", path, None).send().await.expect("answer");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"), "{path}");
    }
    let page = request(&server, "GET", "/", None).send().await.expect("page");
    let policy = page.headers().get("content-security-policy").map(|v| v.to_str().unwrap_or("").to_string());
    assert!(policy.is_some_and(|p| p.contains("frame-ancestors 'none'")), "the page has a CSP");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_from_foreign_pages_are_refused() {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let allowed = "https://app.example.com";
    let security = Security { cors_origins: vec![allowed.into()], ..Security::default() };
    let mut server = TestServer::start_with(TestOptions { security, ..TestOptions::default() }).await;
    assert_eq!(server.post("/api/v1/jobs", &super::window_job("j")).await.0, 201);
    let url = server.url("/api/v1/jobs/j/outputs/windows/subscribe").replacen("http://", "ws://", 1);
    let own = server.base.clone();
    let handshake = |origin: Option<&str>| {
        let mut request = url.as_str().into_client_request().expect("request");
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse().expect("header"));
        }
        tokio_tungstenite::connect_async(request)
    };
    // A page elsewhere (here the classic cross-site WebSocket hijacking of a local server).
    for origin in ["https://evil.example.com", "http://localhost.evil.example.com:80", "null"] {
        match super::within("handshake", handshake(Some(origin))).await {
            Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 403, "{origin}"),
            other => panic!("{origin}: expected a 403, got {:?}", other.map(|(_, r)| r.status())),
        }
    }
    // The server's own page, an allowed origin, and clients that are not browsers.
    for origin in [Some(own.as_str()), Some(allowed), None] {
        let (mut ws, _) =
            super::within("handshake", handshake(origin)).await.unwrap_or_else(|e| panic!("{origin:?}: {e}"));
        let _ = ws.close(None).await;
    }
    server.stop().await;
}
