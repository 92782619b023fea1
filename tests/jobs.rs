//! Jobs driven directly through the library: the processing-time fallback for idle
//! inputs, and job-level parameters.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidemark::job::params::JobParams;
use tidemark::job::{JobOptions, RunningJob};
use tidemark::pipeline::TimeMode;
use tidemark::runtime::{Inline, Keep};

fn params(dataflow: &str, given: Value) -> Result<JobParams, String> {
    let registry = crate::dataflows::registry();
    let dataflow = registry.get(dataflow).expect("dataflow exists");
    JobParams::decode(dataflow, given.as_object().expect("object")).map_err(|e| e.to_string())
}

fn start(given: Value) -> RunningJob<Inline> {
    let registry = crate::dataflows::registry();
    let dataflow = registry.get("window_agg").expect("window_agg").clone();
    let params = params("window_agg", given).expect("valid params");
    let options = JobOptions {
        mode: TimeMode::Exact,
        keep: Keep::Served { history: 1000 },
        dead_letter_retention: None,
        checkpoints: false,
    };
    RunningJob::start(Inline::new(), 1, "job", &dataflow, params, &options).expect("job starts")
}

fn windows(job: &RunningJob<Inline>) -> Vec<String> {
    assert!(job.wait_complete(Duration::from_secs(10)), "outputs did not complete");
    job.output("windows").expect("output").rows.snapshot().1.iter().map(|(r, _)| r.to_string()).collect()
}

#[test]
fn idle_inputs_follow_the_wall_clock() {
    let job = start(json!({"window": {"tumbling": {"size": 10000}}, "emit": "on_close", "idle_timeout_ms": 5000}));
    job.ingest(0, [br#"{"key":"a","ts":1000,"value":2}"#.as_slice()]).expect("ingest");
    assert!(windows(&job).is_empty(), "window [0, 10000) must not be closed at watermark 1000");

    // Quiet for less than the idle timeout: nothing moves.
    job.tick(Instant::now() + Duration::from_secs(4)).expect("tick");
    assert_eq!(job.watermark(0), 1000);
    assert!(windows(&job).is_empty());

    // Quiet for 12 s: event time is taken to have passed with the wall clock.
    job.tick(Instant::now() + Duration::from_secs(12)).expect("tick");
    let w = job.watermark(0);
    assert!((13_000..14_000).contains(&w), "watermark {w}");
    assert_eq!(windows(&job).len(), 1, "the window closed by the idle advance is emitted");
}

#[test]
fn idle_advance_can_be_disabled() {
    let job = start(json!({"window": {"tumbling": {"size": 10000}}, "idle_timeout_ms": null}));
    job.ingest(0, [br#"{"key":"a","ts":1000,"value":2}"#.as_slice()]).expect("ingest");
    job.tick(Instant::now() + Duration::from_secs(3600)).expect("tick");
    assert_eq!(job.watermark(0), 1000);
}

#[test]
fn idle_timeout_is_a_parameter_of_every_dataflow() {
    let registry = crate::dataflows::registry();
    for dataflow in registry.iter() {
        assert_eq!(JobParams::defaults(dataflow)["idle_timeout_ms"], json!(10000), "{}", dataflow.name());
    }
    let ok = params("word_count", json!({"idle_timeout_ms": 250})).expect("valid");
    assert_eq!(ok.idle_timeout, Some(Duration::from_millis(250)));
    assert_eq!(ok.json["idle_timeout_ms"], json!(250));
    let bad = params("word_count", json!({"idle_timeout_ms": "soon"})).expect_err("invalid");
    assert!(bad.contains("idle_timeout_ms"), "{bad}");
    let unknown = params("word_count", json!({"idle": 3})).expect_err("unknown");
    assert!(unknown.contains("`idle`") && unknown.contains("`idle_timeout_ms`"), "{unknown}");
}
