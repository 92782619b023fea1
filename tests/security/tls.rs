//! HTTPS with a certificate made by the test: a client that trusts it is served
//! (requests, subscriptions), one that does not is refused, plain HTTP to the TLS port
//! fails cleanly, a silent client is dropped after the handshake timeout, and a
//! renewed certificate is served without a restart.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tidemark::serve::{Limits, Security, TlsFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{addr, run_binary, window_job, within};
use crate::service::{TestOptions, TestServer, spawn_binary_with};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files into
/// `dir`; returns the files and the certificate (PEM, and DER to compare).
fn certificate(dir: &Path) -> (TlsFiles, String, Vec<u8>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("certificate");
    let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    let pem = made.cert.pem();
    std::fs::write(&files.cert, &pem).expect("cert");
    std::fs::write(&files.key, made.signing_key.serialize_pem()).expect("key");
    (files, pem, made.cert.der().to_vec())
}

/// A client that trusts only `pem`.
fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem"))
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn port(base: &str) -> &str {
    base.rsplit(':').next().expect("port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_certificate_of_the_test() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (files, pem, _) = certificate(dir.path());
    let security = Security { tls: Some(files), ..Security::default() };
    let limits = Limits { header_timeout: Duration::from_secs(1), ..Limits::default() };
    let mut server = TestServer::start_with(TestOptions { security, limits, ..TestOptions::default() }).await;
    let https = format!("https://localhost:{}", port(&server.base));
    let client = trusting(&pem);

    let health = within("https", client.get(format!("{https}/healthz")).send()).await.expect("https answers");
    assert_eq!(health.status().as_u16(), 200);
    let created = client.post(format!("{https}/api/v1/jobs")).json(&window_job("j")).send().await.expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let events = json!([{"key": "a", "ts": 1, "value": 1}]);
    let fed = client.post(format!("{https}/api/v1/jobs/j/inputs/events")).json(&events).send().await.expect("feed");
    assert_eq!(fed.status().as_u16(), 200);
    let stream = client.get(format!("{https}/api/v1/jobs/j/outputs/windows/subscribe")).send().await;
    let mut body = stream.expect("subscribe").bytes_stream();
    let first = within("an event over TLS", body.next()).await.expect("stream").expect("chunk");
    assert!(String::from_utf8_lossy(&first).contains("event: update"), "{first:?}");
    drop(body);

    // A client that does not trust the certificate is refused by its own TLS stack.
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(false).build().expect("client");
    assert!(untrusting.get(format!("{https}/healthz")).send().await.is_err());

    // Plain HTTP to the TLS port: a plain 400 that says so, and the server serves on.
    let plain = reqwest::get(format!("{}/healthz", server.base)).await.expect("a plain answer");
    assert_eq!(plain.status().as_u16(), 400);
    let body: serde_json::Value = plain.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "tls_required", "{body}");
    assert_eq!(client.get(format!("{https}/healthz")).send().await.expect("https").status().as_u16(), 200);

    // A client that connects and says nothing is dropped after the handshake timeout.
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(addr(&server)).await.expect("connect");
    let mut buffer = [0u8; 64];
    let read = within("the server drops a silent client", silent.read(&mut buffer)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "dropped after {:?}", started.elapsed());
    // Garbage that looks like a TLS record is refused just as cleanly.
    let mut garbage = tokio::net::TcpStream::connect(addr(&server)).await.expect("connect");
    garbage.write_all(&[0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5, 6, 7]).await.expect("write");
    let read = within("the server drops garbage", garbage.read(&mut buffer)).await;
    assert!(matches!(read, Ok(_) | Err(_)));
    assert_eq!(client.get(format!("{https}/healthz")).send().await.expect("https").status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (files, first_pem, first_der) = certificate(dir.path());
    let security = Security { tls: Some(files), ..Security::default() };
    let mut server = TestServer::start_with(TestOptions { security, ..TestOptions::default() }).await;
    let https = format!("https://localhost:{}/healthz", port(&server.base));
    let peer = |response: &reqwest::Response| {
        response.extensions().get::<reqwest::tls::TlsInfo>().and_then(|i| i.peer_certificate().map(<[u8]>::to_vec))
    };
    let served = trusting(&first_pem).get(&https).send().await.expect("https");
    assert_eq!(peer(&served), Some(first_der));

    let renewed = tempfile::tempdir().expect("temp dir");
    let (new_files, new_pem, new_der) = certificate(renewed.path());
    // Renewal tools write both files; the server must not serve a half-written pair.
    std::fs::copy(&new_files.cert, dir.path().join("cert.pem")).expect("cert");
    std::fs::copy(&new_files.key, dir.path().join("key.pem")).expect("key");
    let client = trusting(&new_pem);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(response) = client.get(&https).send().await {
            assert_eq!(peer(&response), Some(new_der));
            break;
        }
        assert!(Instant::now() < deadline, "the renewed certificate is not served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_https_with_tls_cert_and_tls_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (files, pem, _) = certificate(dir.path());
    let config: PathBuf = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let args: [&OsStr; 4] =
        ["--tls-cert".as_ref(), files.cert.as_os_str(), "--tls-key".as_ref(), files.key.as_os_str()];
    let log = dir.path().join("log");
    let (mut child, base) = spawn_binary_with(&config, &dir.path().join("data"), log, &args, "info").await;
    let https = format!("https://localhost:{}/healthz", port(&base));
    let answer = trusting(&pem).get(&https).send().await.expect("https");
    assert_eq!(answer.status().as_u16(), 200);
    child.kill();

    // A key that does not belong to the certificate is a usage error.
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).expect("dir");
    let (other, _, _) = certificate(&other_dir);
    let mismatched = ["--tls-cert", files.cert.to_str().expect("path"), "--tls-key", other.key.to_str().expect("path")];
    let (code, stderr) = run_binary(&mismatched);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(run_binary(&["--tls-cert", files.cert.to_str().expect("path")]).0, Some(2), "a cert without a key");
}
