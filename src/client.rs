//! A blocking client of a running server's HTTP API, for `tidemark jobs` (API.md,
//! "Lifecycle"): a base URL (`http://` or `https://`), an optional bearer token, and
//! for HTTPS the certificates to trust (a PEM file, which may be a bundle such as the
//! system's `/etc/ssl/certs/ca-certificates.crt`). Answers are JSON; an error answer
//! is the server's `{"error": {"code", "message"}}`.

use std::path::Path;
use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::{Method, Url};
use serde_json::Value;

/// Why a request got no good answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is not one.
    #[error("not a server URL: {0}")]
    Url(String),
    /// The certificates to trust could not be read.
    #[error("cannot read the certificates in {path}: {why}")]
    Certificates {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The server could not be reached, or its answer read.
    #[error("{url}: {source}")]
    Request {
        /// What was asked.
        url: String,
        /// Why it failed.
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("{message} ({status} {code})")]
    Answer {
        /// The HTTP status.
        status: u16,
        /// The error's code (`unknown_job`, ...).
        code: String,
        /// The error's message.
        message: String,
    },
}

/// A client of one server.
pub struct Client {
    http: Http,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `base`, sending `token` if given, trusting the
    /// certificates of the PEM file `certificates` if given (else none: then only
    /// `http://` works), waiting at most `timeout` for an answer.
    pub fn new(
        base: &str,
        token: Option<String>,
        certificates: Option<&Path>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let base = Url::parse(base).map_err(|e| ClientError::Url(format!("{base} ({e})")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::Url(format!("{base} (http:// or https:// expected)")));
        }
        let mut http = Http::builder().timeout(timeout);
        if let Some(path) = certificates {
            let failed = |why: String| ClientError::Certificates { path: path.display().to_string(), why };
            let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
            let bundle = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| failed(e.to_string()))?;
            if bundle.is_empty() {
                return Err(failed("no certificate in it".into()));
            }
            for certificate in bundle {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http.build().map_err(|source| ClientError::Request { url: base.to_string(), source })?;
        Ok(Client { http, base, token })
    }

    /// `GET` the path of `segments` (each escaped), with `query` pairs.
    pub fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value, ClientError> {
        self.send(Method::GET, segments, query, None)
    }

    /// `POST` a JSON body.
    pub fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        self.send(Method::POST, segments, &[], Some(body))
    }

    /// `PUT` a JSON body, with `query` pairs.
    pub fn put(&self, segments: &[&str], query: &[(&str, &str)], body: &Value) -> Result<Value, ClientError> {
        self.send(Method::PUT, segments, query, Some(body))
    }

    /// `DELETE`.
    pub fn delete(&self, segments: &[&str]) -> Result<Value, ClientError> {
        self.send(Method::DELETE, segments, &[], None)
    }

    /// Sends a request; the answer's JSON (`null` for an empty one).
    fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut().map_err(|()| ClientError::Url(self.base.to_string()))?.pop_if_empty().extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let failed = |source| ClientError::Request { url: url.to_string(), source };
        let mut request: RequestBuilder = self.http.request(method, url.clone());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().map_err(failed)?;
        let status = answer.status();
        let text = answer.text().map_err(failed)?;
        let json = if text.trim().is_empty() { Ok(Value::Null) } else { serde_json::from_str::<Value>(&text) };
        if status.is_success() {
            return Ok(json.unwrap_or(Value::String(text)));
        }
        let error = json.ok().and_then(|v| v.get("error").cloned()).unwrap_or_default();
        let field = |name: &str| error.get(name).and_then(Value::as_str).map(str::to_string);
        Err(ClientError::Answer {
            status: status.as_u16(),
            code: field("code").unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase()),
            message: field("message").unwrap_or_else(|| if text.is_empty() { status.to_string() } else { text }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked() {
        let client = |url: &str| Client::new(url, None, None, Duration::from_secs(1)).map(drop);
        assert!(client("http://127.0.0.1:8080").is_ok());
        assert!(client("https://tidemark.internal/").is_ok());
        assert!(matches!(client("127.0.0.1:8080"), Err(ClientError::Url(_))));
        assert!(matches!(client("ftp://host"), Err(ClientError::Url(_))));
        let missing = Client::new("https://h", None, Some(Path::new("/nonexistent.pem")), Duration::from_secs(1));
        assert!(matches!(missing, Err(ClientError::Certificates { .. })));
    }
}
