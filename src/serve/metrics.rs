//! `GET /metrics`: the jobs' counters in Prometheus' text format.
//!
//! Every name begins with `tidemark_`. Read from the jobs at each scrape: records per
//! input and outcome, watermarks, output frontiers and sizes, subscribers, job states.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;
use crate::job::managed::JobState;

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&app))
}

/// One metric family: its header, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let _ = writeln!(self.out, "{}{{{}}} {value}", self.name, labels.join(","));
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn render(app: &AppState) -> String {
    let jobs = app.jobs.list();
    let mut out = String::new();
    let mut family = Family::new(&mut out, "tidemark_input_records_total", "counter", "Records received, by outcome.");
    for managed in &jobs {
        for (i, input) in managed.job.inputs().iter().enumerate() {
            let stats = managed.job.input_stats(i);
            let outcomes = [
                ("accepted", stats.accepted),
                ("late", stats.late),
                ("too_late", stats.too_late),
                ("invalid", stats.rejected),
            ];
            for (outcome, count) in outcomes {
                family.sample(&[("job", &managed.spec.name), ("input", &input.name), ("outcome", outcome)], count);
            }
        }
    }
    let mut family =
        Family::new(&mut out, "tidemark_input_watermark_ms", "gauge", "An input's watermark (event time).");
    for managed in &jobs {
        for (i, input) in managed.job.inputs().iter().enumerate() {
            family.sample(&[("job", &managed.spec.name), ("input", &input.name)], managed.job.watermark(i));
        }
    }
    let mut family =
        Family::new(&mut out, "tidemark_output_frontier_ms", "gauge", "An output's frontier: complete below it.");
    for managed in &jobs {
        for output in managed.job.outputs() {
            if let Some(frontier) = output.rows.frontier() {
                family.sample(&[("job", &managed.spec.name), ("output", &output.name)], frontier);
            }
        }
    }
    let mut family = Family::new(&mut out, "tidemark_output_rows", "gauge", "Rows an output holds.");
    for managed in &jobs {
        for output in managed.job.outputs() {
            family.sample(&[("job", &managed.spec.name), ("output", &output.name)], output.rows.len());
        }
    }
    let mut family = Family::new(&mut out, "tidemark_subscribers", "gauge", "Live subscriptions to an output.");
    for managed in &jobs {
        for output in managed.job.outputs() {
            let count = app.subscribers.count(&managed.spec.name, &output.name);
            family.sample(&[("job", &managed.spec.name), ("output", &output.name)], count);
        }
    }
    let mut family = Family::new(&mut out, "tidemark_job_state", "gauge", "1 for a job's current state.");
    for managed in &jobs {
        let (state, _) = managed.state();
        let states = [
            ("running", JobState::Running),
            ("restarting", JobState::Restarting),
            ("failed", JobState::Failed),
            ("suspended", JobState::Suspended),
        ];
        for (name, is) in states.map(|(name, s)| (name, s == state)) {
            family.sample(&[("job", &managed.spec.name), ("state", name)], u8::from(is));
        }
    }
    let mut family =
        Family::new(&mut out, "tidemark_job_restarts_total", "counter", "Restarts of a job after its pipeline failed.");
    for managed in &jobs {
        family.sample(&[("job", &managed.spec.name)], managed.restarts());
    }
    out
}
