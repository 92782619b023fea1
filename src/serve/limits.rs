//! Limits of the API: sizes, timeouts, subscribers per output, request rates.
//!
//! Every limit answers with its own status and code, so that a client can tell them
//! apart: 413 `body_too_large`, 408 `body_timeout`, 503 `too_many_subscribers`,
//! 409 `too_many_jobs` (in the job manager), 429 `rate_limited` with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::auth::TokenId;
use super::error::ApiError;

/// Limits and timeouts of the HTTP API.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body, in bytes (larger: 413).
    pub max_body: usize,
    /// How long a client may take to send a request body (longer: 408).
    pub body_timeout: Duration,
    /// How long a client may take to send a request's headers, and a TLS handshake;
    /// an idle connection is closed after it too. Slow clients cannot hold connections.
    pub header_timeout: Duration,
    /// How long `advance` waits for the outputs to catch up.
    pub wait: Duration,
    /// How long an `as_of` read waits by default for its time to complete.
    pub as_of_timeout: Duration,
    /// Live subscriptions per output (more: 503).
    pub max_subscribers: usize,
    /// Requests per second per token, or per client address without one; `None`: any.
    pub rate_limit: Option<NonZeroU32>,
    /// Largest WebSocket message a client may send (subscribers only send control
    /// messages).
    pub max_ws_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 16 << 20,
            body_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            wait: Duration::from_secs(30),
            as_of_timeout: Duration::from_secs(5),
            max_subscribers: 1024,
            rate_limit: None,
            max_ws_message: 64 << 10,
        }
    }
}

/// Who is asking, for the rate limit: a token, else the client's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A valid token.
    Token(TokenId),
    /// A client without a valid token, by address (`None`: not known, in-process).
    Client(Option<IpAddr>),
}

/// Requests per second per caller (GCRA: a burst of the same size, then evenly spaced).
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<Caller>,
    per_second: NonZeroU32,
}

impl RateLimit {
    /// `per_second` requests per second per caller.
    pub fn new(per_second: NonZeroU32) -> RateLimit {
        RateLimit { limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second)), per_second }
    }

    /// Counts one request of `caller`; refused if it has used its rate.
    pub fn check(&self, caller: Caller) -> Result<(), RateLimited> {
        let Err(not_until) = self.limiter.check_key(&caller) else { return Ok(()) };
        let wait = not_until.wait_time_from(self.limiter.clock().now());
        // Retry-After counts whole seconds: round up, so that a client that waits is let in.
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        Err(RateLimited { per_second: self.per_second, retry_after: seconds })
    }

    /// Forgets callers whose rate is whole again, so that memory follows the callers
    /// of the last moments, not of all time.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A request over its caller's rate: 429 with `Retry-After`.
#[derive(Debug)]
pub struct RateLimited {
    per_second: NonZeroU32,
    /// Seconds until the caller may ask again.
    pub retry_after: u64,
}

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        let RateLimited { per_second, retry_after } = self;
        let message = format!("more than {per_second} requests per second; retry after {retry_after} s (--rate-limit)");
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        response
    }
}

/// Live subscriptions per output.
#[derive(Default)]
pub struct Subscribers {
    counts: Mutex<HashMap<(String, String), usize>>,
}

/// A subscription's place; given back when dropped.
pub struct Slot {
    owner: Arc<Subscribers>,
    key: (String, String),
}

impl Subscribers {
    /// Takes a place among the subscribers of `output` of `job`, if fewer than `max`
    /// hold one (503 `too_many_subscribers` otherwise).
    pub fn join(self: &Arc<Self>, job: &str, output: &str, max: usize) -> Result<Slot, ApiError> {
        let key = (job.to_string(), output.to_string());
        let mut counts = self.counts.lock().expect("subscribers lock");
        let count = counts.entry(key.clone()).or_default();
        if *count >= max {
            let message = format!(
                "output `{output}` of job `{job}` has {max} subscribers, as many as it may (--max-subscribers); try later"
            );
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_subscribers", message));
        }
        *count += 1;
        Ok(Slot { owner: self.clone(), key })
    }

    /// How many subscribe to `output` of `job`.
    pub fn count(&self, job: &str, output: &str) -> usize {
        let counts = self.counts.lock().expect("subscribers lock");
        counts.get(&(job.to_string(), output.to_string())).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().expect("subscribers lock");
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_over_its_rate_is_told_when_to_come_back() {
        let limit = RateLimit::new(NonZeroU32::new(3).expect("3"));
        let caller = Caller::Client(Some([10, 0, 0, 1].into()));
        for _ in 0..3 {
            assert!(limit.check(caller).is_ok());
        }
        let refused = limit.check(caller).unwrap_err().into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        // Others have their own rate.
        assert!(limit.check(Caller::Token(0)).is_ok());
        assert!(limit.check(Caller::Client(Some([10, 0, 0, 2].into()))).is_ok());
    }

    #[test]
    fn places_are_given_back() {
        let subscribers = Arc::new(Subscribers::default());
        let a = subscribers.join("j", "o", 2).expect("first");
        let _b = subscribers.join("j", "o", 2).expect("second");
        let refused = subscribers.join("j", "o", 2).err().expect("third is refused");
        assert_eq!((refused.status, refused.code), (StatusCode::SERVICE_UNAVAILABLE, "too_many_subscribers"));
        assert!(subscribers.join("j", "other", 2).is_ok(), "per output");
        drop(a);
        assert_eq!(subscribers.count("j", "o"), 1);
        assert!(subscribers.join("j", "o", 2).is_ok());
    }
}
