//! `GET /api/v1/jobs/{job}/outputs/{output}/subscribe`: an output's changes as a stream,
//! over Server-Sent Events, or over a WebSocket when the request asks to upgrade.
//!
//! # Protocol
//!
//! Every message is a JSON object with an `"event"` field; over SSE the same name is
//! the SSE event type and the object is its data.
//! - `update`: `{"event": "update", "time": t, "updates": [{"row": {...}, "diff": d}, ...]}`,
//!   the consolidated changes at time `t`. Unless `snapshot=false`, the first message is
//!   the content at the current frontier `F`: `{"event": "update", "time": F - 1,
//!   "snapshot": true, "updates": [...]}`.
//! - `progress`: `{"event": "progress", "frontier": f, "watermark": w}`: no update at a
//!   time below `f` follows. Over SSE its `id:` is `f`. One follows the snapshot (or the
//!   resumed history) at once, then one after every step of the output.
//! - `resync`: the subscriber fell more than a queue of steps behind; the stream ends
//!   and the client must subscribe again. The job and other subscribers never wait.
//! - `end`: the server is shutting down; the stream ends.
//!
//! Query parameters: `snapshot=true|false` (default `true`); `since=f` (or the header
//! `Last-Event-ID: f`; with both, the later) resumes after a progress message `f`:
//! every update at a time `>= f` that the history still holds, then live. 410 if the
//! history no longer reaches back to `f`, or if `f` is beyond the output's frontier —
//! a resume point from before a restart, when the output was rebuilt: the client must
//! subscribe again with a snapshot. `access_token` carries the caller's token (for
//! browsers, whose `EventSource` cannot set headers) and is not a filter. Any other
//! name filters rows on that field.
//! A client that applies updates and remembers the last progress frontier it saw can
//! reconnect with it and miss nothing and see nothing twice.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::AppState;
use super::error::ApiError;
use super::limits::Slot;
use super::outputs::{output, read_params};
use crate::pipeline::{Diff, Time};
use crate::runtime::{Batch, KeyAtom, RowText, Start, Step, Subscription, matches};

/// How often an idle stream sends something, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/api/v1/jobs/{job}/outputs/{output}/subscribe", get(subscribe))
}

/// One message of the protocol.
#[derive(Debug)]
pub(super) struct Message {
    kind: &'static str,
    data: String,
    id: Option<Time>,
}

async fn subscribe(
    State(app): State<AppState>,
    Path((job, name)): Path<(String, String)>,
    QueryParams(params): QueryParams<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (managed, index) = output(&app, &job, &name)?;
    let rows = &managed.job.outputs()[index].rows;
    let mut snapshot = true;
    let mut since: Option<Time> = None;
    for (name, value) in &params {
        match name.as_str() {
            "snapshot" => {
                snapshot = value.parse().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("`snapshot` must be true or false, got `{value}`"),
                    )
                })?
            }
            "since" => since = Some(parse_frontier("since", value)?),
            _ => {}
        }
    }
    // A browser's EventSource reconnects to the same URL with the newer resume point in
    // `Last-Event-ID`: of the two, the later one is where the client stands.
    if let Some(last) = headers.get("last-event-id") {
        let last = parse_frontier("Last-Event-ID", last.to_str().unwrap_or_default())?;
        since = Some(since.map_or(last, |s| s.max(last)));
    }
    let read = read_params(params, &["snapshot", "since"])?;
    let start = match since {
        Some(f) => Start::Since(f),
        None if snapshot => Start::Snapshot,
        None => Start::Since(rows.frontier().unwrap_or(Time::MAX)),
    };
    let slot = app.subscribers.join(&job, &name, app.limits.max_subscribers)?;
    let subscription = rows.subscribe(start)?;
    let filters = read.query.filters.iter().map(|(f, v)| (f.clone(), KeyAtom::candidates(v))).collect();
    let mut feed = Feed::new(subscription, filters, since.unwrap_or(0), rows.watermark(), app.shutdown.clone());
    feed.slot = Some(slot);
    match upgrade {
        Ok(upgrade) => {
            // A subscriber sends only control messages: anything large is not one.
            let max = app.limits.max_ws_message;
            let upgrade = upgrade.max_message_size(max).max_frame_size(max);
            Ok(upgrade.on_upgrade(move |socket| send_over_websocket(socket, feed)))
        }
        Err(_) => {
            let events = feed.into_stream().map(|m| {
                let event = Event::default().event(m.kind).data(m.data);
                Ok::<_, Infallible>(match m.id {
                    Some(id) => event.id(id.to_string()),
                    None => event,
                })
            });
            Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
        }
    }
}

fn parse_frontier(name: &str, value: &str) -> Result<Time, ApiError> {
    value.trim().parse().map_err(|_| {
        ApiError::bad_request("invalid_parameter", format!("`{name}` must be a frontier (an integer), got `{value}`"))
    })
}

/// Turns a subscription into protocol messages.
pub(super) struct Feed {
    queue: VecDeque<Message>,
    steps: broadcast::Receiver<Arc<Step>>,
    filters: Vec<(String, Vec<KeyAtom>)>,
    /// Updates below this time were delivered before (a resumed subscription).
    since: Time,
    shutdown: watch::Receiver<bool>,
    done: bool,
    /// Its place among the output's subscribers, given back when the stream ends.
    slot: Option<Slot>,
}

impl Feed {
    fn new(
        subscription: Subscription,
        filters: Vec<(String, Vec<KeyAtom>)>,
        since: Time,
        watermark: Time,
        shutdown: watch::Receiver<bool>,
    ) -> Feed {
        let Subscription { frontier, snapshot, backlog, steps } = subscription;
        let mut feed = Feed { queue: VecDeque::new(), steps, filters, since, shutdown, done: false, slot: None };
        if let Some(rows) = snapshot {
            let time = frontier.map_or(Time::MAX, |f| f.saturating_sub(1));
            let updates = rows.iter().filter(|(row, _)| matches(row, &feed.filters));
            feed.queue.push_back(update(time, updates, true));
        }
        for batch in backlog {
            feed.push_batch(&batch, None);
        }
        if frontier.is_none_or(|f| f >= feed.since) {
            feed.queue.push_back(progress(frontier, watermark));
        }
        feed
    }

    /// Queues the update of `batch` (filtered; nothing if it is empty or delivered before).
    fn push_batch(&mut self, batch: &Batch, rendered: Option<&String>) {
        if batch.time < self.since {
            return;
        }
        if let Some(text) = rendered {
            self.queue.push_back(Message { kind: "update", data: text.clone(), id: None });
            return;
        }
        let mut changes = batch.changes.iter().filter(|(row, _)| matches(row, &self.filters)).peekable();
        if changes.peek().is_some() {
            self.queue.push_back(update(batch.time, changes, false));
        }
    }

    fn push_step(&mut self, step: &Step) {
        if self.filters.is_empty() {
            let rendered = step
                .rendered
                .get_or_init(|| step.batches.iter().map(|b| update(b.time, b.changes.iter(), false).data).collect());
            for (batch, text) in step.batches.iter().zip(rendered.iter()) {
                self.push_batch(batch, Some(text));
            }
        } else {
            for batch in &step.batches {
                self.push_batch(batch, None);
            }
        }
        if step.frontier.is_none_or(|f| f >= self.since) {
            self.queue.push_back(progress(step.frontier, step.watermark));
        }
        if step.frontier.is_none() {
            self.done = true;
        }
    }

    /// The next message, waiting for the output's next step if need be.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(message) = self.queue.pop_front() {
                return Some(message);
            }
            if self.done {
                return None;
            }
            let Feed { steps, shutdown, .. } = self;
            let woken = tokio::select! {
                step = steps.recv() => Some(step),
                _ = shutdown.wait_for(|down| *down) => None,
            };
            match woken {
                Some(Ok(step)) => self.push_step(&step),
                Some(Err(RecvError::Lagged(missed))) => {
                    self.done = true;
                    let data = format!(
                        r#"{{"event":"resync","reason":"subscriber fell {missed} steps behind; subscribe again"}}"#
                    );
                    return Some(Message { kind: "resync", data, id: None });
                }
                Some(Err(RecvError::Closed)) => return None,
                None => {
                    self.done = true;
                    let data = r#"{"event":"end","reason":"server shutting down"}"#.to_string();
                    return Some(Message { kind: "end", data, id: None });
                }
            }
        }
    }

    fn into_stream(self) -> impl Stream<Item = Message> + Send {
        futures_util::stream::unfold(self, |mut feed| async move { feed.next().await.map(|m| (m, feed)) })
    }
}

fn update<'a>(time: Time, changes: impl Iterator<Item = &'a (RowText, Diff)>, snapshot: bool) -> Message {
    use std::fmt::Write;
    let mut data = format!(r#"{{"event":"update","time":{time},"#);
    if snapshot {
        data.push_str(r#""snapshot":true,"#);
    }
    data.push_str(r#""updates":["#);
    for (i, (row, diff)) in changes.enumerate() {
        if i > 0 {
            data.push(',');
        }
        let _ = write!(data, r#"{{"row":{row},"diff":{diff}}}"#);
    }
    data.push_str("]}");
    Message { kind: "update", data, id: None }
}

fn progress(frontier: Option<Time>, watermark: Time) -> Message {
    let shown = frontier.map_or_else(|| "null".to_string(), |f| f.to_string());
    let data = format!(r#"{{"event":"progress","frontier":{shown},"watermark":{watermark}}}"#);
    Message { kind: "progress", data, id: frontier }
}

/// Sends the feed as text messages, answering the client's pings and stopping when it
/// goes away.
async fn send_over_websocket(mut socket: WebSocket, mut feed: Feed) {
    loop {
        tokio::select! {
            message = feed.next() => {
                let Some(message) = message else { break };
                if socket.send(WsMessage::Text(message.data.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep(KEEP_ALIVE) => {
                if socket.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}
