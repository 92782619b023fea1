//! Who may reach the server and what they may do: the options, checked at start, and
//! the gate every request passes.
//!
//! ```text
//!  TCP ─► TLS? ─► headers in time ─► Host allowed? ─► CORS ─► gate ─► body ─► handler
//!         (listen)  (listen)          (browser)        (browser) │      (browser)
//!                                                               ├ rate limit per caller: 429
//!                                                               └ token and scope: 401, 403
//! ```
//!
//! Without tokens the server answers everyone who can connect, so it listens only on
//! loopback unless told `--insecure`. With tokens, every `/api/v1` route and `/metrics`
//! need one (see `auth.rs`); `/healthz` and the page at `/` stay open.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::{Access, Scope, TokenFile, TokensError, access, takes_query_token};
use super::browser::{AllowedHosts, HostError, OriginError, parse_origins};
use super::error::ApiError;
use super::limits::{Caller, Limits, RateLimit};
use super::tls::{Certificates, TlsError, TlsFiles};

/// How a server protects itself, as configured.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// The tokens file (`--tokens`); `None`: no authentication.
    pub tokens_file: Option<PathBuf>,
    /// Listen beyond loopback without tokens (`--insecure`).
    pub insecure: bool,
    /// Names requests may give as `Host` beside `localhost` and IP addresses
    /// (`--allowed-hosts`; `*` for any).
    pub allowed_hosts: Vec<String>,
    /// Origins whose pages may call the API (`--cors-origin`; `*` for any).
    pub cors_origins: Vec<String>,
    /// HTTPS (`--tls-cert`, `--tls-key`).
    pub tls: Option<TlsFiles>,
}

/// Why a server's security options cannot be used: a usage error.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The server would answer anyone on the network.
    #[error(
        "--listen {0} is reachable beyond this machine, and without --tokens anyone who can connect could run jobs and read files; \
         give --tokens FILE (and --tls-cert/--tls-key), or --insecure if the network is trusted"
    )]
    Exposed(SocketAddr),
    /// The tokens file.
    #[error(transparent)]
    Tokens(#[from] TokensError),
    /// The certificate or key.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An allowed host.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A CORS origin.
    #[error(transparent)]
    Origin(#[from] OriginError),
}

/// The security a running server applies: built from [`Security`] at start.
#[derive(Default)]
pub struct Guard {
    pub(super) tokens: Option<TokenFile>,
    pub(super) hosts: AllowedHosts,
    pub(super) cors: Vec<HeaderValue>,
    pub(super) rate: Option<RateLimit>,
    pub(super) certificates: Option<Arc<Certificates>>,
}

impl Guard {
    /// Checks `security` for a server on `listen` and loads its files.
    pub fn new(security: &Security, listen: SocketAddr, limits: &Limits) -> Result<Guard, SecurityError> {
        let tokens = security.tokens_file.as_deref().map(TokenFile::load).transpose()?;
        if tokens.is_none() && !security.insecure && !listen.ip().to_canonical().is_loopback() {
            return Err(SecurityError::Exposed(listen));
        }
        if tokens.is_none() && !listen.ip().to_canonical().is_loopback() {
            tracing::warn!(%listen, "--insecure: serving without tokens beyond loopback; anyone who can connect controls this server");
        }
        Ok(Guard {
            tokens,
            hosts: AllowedHosts::parse(&security.allowed_hosts)?,
            cors: parse_origins(&security.cors_origins)?,
            rate: limits.rate_limit.map(RateLimit::new),
            certificates: security.tls.as_ref().map(Certificates::load).transpose()?.map(Arc::new),
        })
    }

    /// Whether requests need tokens.
    pub fn has_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Reads changed tokens and certificate files again, and forgets idle callers of
    /// the rate limit.
    pub(super) fn refresh(&self) {
        if let Some(tokens) = &self.tokens {
            tokens.refresh();
        }
        if let Some(certificates) = &self.certificates {
            certificates.refresh();
        }
        if let Some(rate) = &self.rate {
            rate.forget_idle();
        }
    }
}

/// Identifies the caller, applies the rate limit (to every request), and checks the
/// token's scope (of requests that need one).
pub(super) async fn gate(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let access = access(request.method(), request.uri().path());
    let presented = match (presented_token(&mut request), access) {
        (Ok(token), _) => token,
        // An open route ignores an Authorization header it cannot read.
        (Err(_), Access::Open) => None,
        (Err(problem), Access::Needs(_)) => return unauthorized_with(problem),
    };
    let guard = &app.guard;
    let found = match (&guard.tokens, &presented) {
        (Some(tokens), Some(token)) => tokens.tokens().find(token),
        _ => None,
    };
    if let Some(rate) = &guard.rate {
        let caller = match found {
            Some((id, _)) => Caller::Token(id),
            None => Caller::Client(request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())),
        };
        if let Err(refused) = rate.check(caller) {
            return refused.into_response();
        }
    }
    if let (Some(_), Access::Needs(scope)) = (&guard.tokens, access) {
        match found {
            None => return unauthorized(presented.is_some()),
            Some((_, has)) if has < scope => return forbidden(has, scope),
            Some(_) => {}
        }
    }
    next.run(request).await
}

/// The token a request presents: `Authorization: Bearer TOKEN`, or on a subscription
/// `?access_token=TOKEN`, which is taken out of the query either way (it is not a
/// filter). An `Authorization` header of another kind is a problem (a 401).
fn presented_token(request: &mut Request) -> Result<Option<String>, &'static str> {
    let mut token = None;
    if takes_query_token(request.method(), request.uri().path()) {
        token = take_query_token(request.uri_mut());
    }
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default();
        let bearer = text.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
        match bearer {
            Some((_, presented)) => token = Some(presented.trim().to_string()),
            None => return Err("the Authorization header must be `Bearer TOKEN`"),
        }
    }
    Ok(token)
}

/// Removes `access_token` from `uri`'s query; returns its value.
fn take_query_token(uri: &mut Uri) -> Option<String> {
    let query = uri.query()?;
    let mut token = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        // Decoded as the handlers' query extractor decodes it.
        match form_urlencoded::parse(pair.as_bytes()).next() {
            Some((name, value)) if name == "access_token" => token = Some(value.into_owned()),
            _ => kept.push(pair),
        }
    }
    token.as_ref()?;
    let path = uri.path();
    let rebuilt = if kept.is_empty() { path.to_string() } else { format!("{path}?{}", kept.join("&")) };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(rebuilt).ok();
    if let Ok(new) = Uri::from_parts(parts) {
        *uri = new;
    }
    token
}

fn unauthorized(presented: bool) -> Response {
    if presented {
        unauthorized_with("the token is not valid")
    } else {
        unauthorized_with("this server needs a token: send `Authorization: Bearer TOKEN`")
    }
}

fn unauthorized_with(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tidemark\""));
    response
}

fn forbidden(has: Scope, needs: Scope) -> Response {
    let message = format!("this token's scope is `{}`; this request needs `{}`", has.name(), needs.name());
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_taken_out() {
        let mut uri: Uri = "/api/v1/jobs/j/outputs/o/subscribe?key=a&access_token=t%2Bx%3D&since=3".parse().unwrap();
        assert_eq!(take_query_token(&mut uri).as_deref(), Some("t+x="));
        assert_eq!(uri, "/api/v1/jobs/j/outputs/o/subscribe?key=a&since=3");
        let mut uri: Uri = "/s?access_token=abc".parse().unwrap();
        assert_eq!(take_query_token(&mut uri).as_deref(), Some("abc"));
        assert_eq!(uri, "/s");
        let mut uri: Uri = "/s?key=a".parse().unwrap();
        assert_eq!(take_query_token(&mut uri), None);
        assert_eq!(uri, "/s?key=a");
        let mut uri: Uri = "/s?access%5Ftoken=a+b&x".parse().unwrap();
        assert_eq!(take_query_token(&mut uri).as_deref(), Some("a b"));
        assert_eq!(uri, "/s?x");
    }

    #[test]
    fn exposed_servers_need_tokens() {
        let limits = Limits::default();
        let open: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(matches!(Guard::new(&Security::default(), open, &limits), Err(SecurityError::Exposed(_))));
        assert!(Guard::new(&Security::default(), local, &limits).is_ok());
        assert!(Guard::new(&Security { insecure: true, ..Security::default() }, open, &limits).is_ok());
        let v6: SocketAddr = "[::]:8080".parse().unwrap();
        assert!(matches!(Guard::new(&Security::default(), v6, &limits), Err(SecurityError::Exposed(_))));
    }
}
