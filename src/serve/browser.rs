//! Defences against web pages: what a browser could send to the server on a page's
//! behalf, and read back.
//!
//! - **DNS rebinding**: a page on `evil.example` whose name later resolves to
//!   127.0.0.1 may read the server's answers as its own. Browsers send the page's
//!   name in `Host`, so a request whose `Host` is neither `localhost`, an IP address,
//!   nor a name of `--allowed-hosts` gets 403 `forbidden_host`. (A request without a
//!   `Host` is not a browser's. `/healthz` answers any `Host`.)
//! - **Cross-site WebSockets**: a page may open a WebSocket to any server, no CORS
//!   asked; a handshake whose `Origin` is neither the server itself nor an origin of
//!   `--cors-origin` gets 403 `forbidden_origin`.
//! - **Simple requests**: a page may POST `text/plain`, form data or multipart to any
//!   server without asking first. A request with a body must be `application/json`
//!   or `application/x-ndjson` (415 `unsupported_media_type`), which a browser sends
//!   cross-origin only after a CORS preflight, which only the origins of
//!   `--cors-origin` pass.
//! - **Headers** on every answer: no MIME sniffing, no framing, no referrer (a
//!   subscription's URL may carry its token).
//!
//! The request body is also read here, within the size and time limits, so that no
//! handler ever waits for a slow client.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::AppState;
use super::error::ApiError;

/// The names (beside `localhost` and IP addresses) that requests may give as `Host`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    any: bool,
    patterns: Vec<HostPattern>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct HostPattern {
    /// A whole name, or with `subdomains` a suffix such as `.example.com`.
    name: String,
    subdomains: bool,
    port: Option<u16>,
}

/// An entry of `--allowed-hosts` that is not a host name.
#[derive(Debug, thiserror::Error)]
#[error("--allowed-hosts: `{0}` is not a host name, `*.domain`, `name:port` or `*`")]
pub struct HostError(String);

impl AllowedHosts {
    /// Any `Host` at all (`*`): for a server behind a proxy that checks it.
    pub fn any() -> AllowedHosts {
        AllowedHosts { any: true, patterns: Vec::new() }
    }

    /// Parses entries: `name`, `name:port`, `*.domain` (its subdomains) or `*` (any).
    pub fn parse(entries: &[String]) -> Result<AllowedHosts, HostError> {
        let mut hosts = AllowedHosts::default();
        for entry in entries.iter().flat_map(|e| e.split(',')).map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                hosts.any = true;
                continue;
            }
            let bad = || HostError(entry.to_string());
            let (host, port) = split_authority(entry).ok_or_else(bad)?;
            let (name, subdomains) = match host.strip_prefix("*.") {
                Some(domain) => (format!(".{domain}"), true),
                None => (host.to_string(), false),
            };
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
            if name.trim_matches('.').is_empty() || !name.chars().all(valid) {
                return Err(bad());
            }
            hosts.patterns.push(HostPattern { name: normalize(&name), subdomains, port });
        }
        Ok(hosts)
    }

    /// Whether a request naming `authority` (`host[:port]`) is answered.
    pub fn allows(&self, authority: &str) -> bool {
        if self.any {
            return true;
        }
        let Some((host, port)) = split_authority(authority) else { return false };
        let host = normalize(host);
        if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        self.patterns.iter().any(|p| {
            let name_matches = if p.subdomains { host.ends_with(&p.name) } else { host == p.name };
            name_matches && p.port.is_none_or(|wanted| port == Some(wanted))
        })
    }
}

/// `host` and `port` of `host[:port]` (`[v6]:port` for IPv6), if it has that shape.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => Some(port.parse().ok()?),
        None => None,
    };
    (!host.is_empty()).then_some((host, port))
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// 403 `forbidden_host` for a request whose `Host` the server does not answer to, and
/// 403 `forbidden_origin` for a WebSocket handshake from another origin's page.
pub(super) async fn check_host(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let authority = match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => request.headers().get(header::HOST).map(|v| v.to_str().unwrap_or("\u{fffd}")),
    };
    if let Some(host) = authority
        && !app.guard.hosts.allows(host)
    {
        let shown: String = host.chars().take(100).collect();
        let message = format!(
            "this server does not answer to the host `{shown}` (a defence against DNS rebinding); \
             start it with --allowed-hosts {shown} to allow it"
        );
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden_host", message).into_response();
    }
    if let Some(origin) = foreign_websocket_origin(&request, authority, &app.guard.cors) {
        let shown: String = origin.chars().take(100).collect();
        let message = format!(
            "a WebSocket from a page of `{shown}` may not subscribe (start the server with --cors-origin {shown} to allow it)"
        );
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden_origin", message).into_response();
    }
    next.run(request).await
}

/// The `Origin` of a WebSocket handshake from a page of another origin than the server
/// (`authority`), unless `--cors-origin` allows it. Browsers open WebSockets to any
/// server without CORS, so a page could otherwise read a local server's streams. A
/// handshake without `Origin` is not a browser's.
fn foreign_websocket_origin<'r>(
    request: &'r Request,
    authority: Option<&str>,
    allowed: &[HeaderValue],
) -> Option<&'r str> {
    let upgrade = request.headers().get(header::UPGRADE)?;
    if !upgrade.as_bytes().eq_ignore_ascii_case(b"websocket") {
        return None;
    }
    let origin = request.headers().get(header::ORIGIN)?;
    let text = origin.to_str().unwrap_or("\u{fffd}");
    let same = text.split_once("://").is_some_and(|(_, rest)| authority.is_some_and(|a| a.eq_ignore_ascii_case(rest)));
    let listed = allowed.iter().any(|o| o == "*" || o == origin);
    (!same && !listed).then_some(text)
}

/// Media types a request body may have.
const BODY_TYPES: &[&str] = &["application/json", "application/x-ndjson", "application/jsonl"];

/// Checks a request body's type and reads it within the size and time limits (415,
/// 413, 408), so that handlers get it whole.
pub(super) async fn read_body(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if body.size_hint().exact() == Some(0) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let media = parts.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?"));
    let essence = media.map(|m| m.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if !essence.as_deref().is_some_and(|e| BODY_TYPES.contains(&e)) {
        let got = media.map_or_else(|| "no Content-Type".to_string(), |m| format!("`{m}`"));
        let message = format!(
            "a request body must be application/json or application/x-ndjson, got {got} \
             (with curl: -H 'Content-Type: application/json')"
        );
        return ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message).into_response();
    }
    let max = app.limits.max_body;
    let too_large = || {
        let message = format!("the request body is larger than {max} bytes (--max-body-bytes)");
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message).into_response()
    };
    if body.size_hint().lower() > max as u64 {
        return too_large();
    }
    let timeout = app.limits.body_timeout;
    let bytes = match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<LengthLimitError>() => return too_large(),
        Ok(Err(error)) => {
            return ApiError::bad_request("invalid_body", format!("cannot read the request body: {error}"))
                .into_response();
        }
        Err(_) => {
            let message = format!("the request body did not arrive within {timeout:?}");
            return ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", message).into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// The CORS layer for `origins` (`*`: any), or none: then browsers refuse every
/// cross-origin request that needs a preflight.
pub(super) fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") { AllowOrigin::any() } else { AllowOrigin::list(origins.to_vec()) };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("last-event-id")])
        .max_age(Duration::from_secs(600));
    Some(layer)
}

/// An origin of `--cors-origin` that is not `scheme://host[:port]` or `*`.
#[derive(Debug, thiserror::Error)]
#[error("--cors-origin: `{0}` is not an origin such as https://app.example.com or *")]
pub struct OriginError(String);

/// Parses origins: `scheme://host[:port]`, without path, or `*`.
pub fn parse_origins(origins: &[String]) -> Result<Vec<HeaderValue>, OriginError> {
    origins
        .iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|given| {
            let bad = || OriginError(given.to_string());
            let origin = given.trim_end_matches('/');
            let shaped = origin == "*"
                || origin.split_once("://").is_some_and(|(scheme, rest)| {
                    !scheme.is_empty() && !rest.is_empty() && !rest.contains('/') && split_authority(rest).is_some()
                });
            if !shaped {
                return Err(bad());
            }
            HeaderValue::from_str(origin).map_err(|_| bad())
        })
        .collect()
}

/// Headers every answer carries.
pub(super) fn hardening_headers() -> [(HeaderName, HeaderValue); 3] {
    [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let strict = AllowedHosts::default();
        for host in ["localhost", "localhost:8080", "LOCALHOST.:1", "127.0.0.1:8080", "[::1]:8080", "10.1.2.3", "[::1]"]
        {
            assert!(strict.allows(host), "{host}");
        }
        for host in ["evil.example.com", "evil.example.com:8080", "localhost.evil.com", "127.0.0.1.evil.com", "", ":80"]
        {
            assert!(!strict.allows(host), "{host}");
        }
        let listed =
            AllowedHosts::parse(&["api.example.com".into(), "*.corp.example, other:8443".into()]).expect("parses");
        for host in ["api.example.com", "API.example.com:9000", "a.corp.example", "b.a.corp.example:1", "other:8443"] {
            assert!(listed.allows(host), "{host}");
        }
        for host in ["corp.example", "other", "other:8444", "xapi.example.com", "evil.com"] {
            assert!(!listed.allows(host), "{host}");
        }
        assert!(AllowedHosts::parse(&["*".into()]).expect("any").allows("evil.com"));
        for bad in ["a/b", "*.", "a b", "host:port", "[::1"] {
            assert!(AllowedHosts::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins() {
        let parsed = parse_origins(&["https://app.example.com, http://localhost:3000/".into()]).expect("parses");
        assert_eq!(parsed, ["https://app.example.com", "http://localhost:3000"]);
        assert!(parse_origins(&["*".into()]).is_ok());
        for bad in ["app.example.com", "https://a.com/path", "https://", "://x"] {
            assert!(parse_origins(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
