//! Checkpoints of a running job, through the library: a `window_agg` job fed seeded
//! random events (late and too-late ones among them) is checkpointed twice (a first
//! checkpoint, then a delta) and restored each time on another number of workers; its
//! outputs right after each restore equal those at the checkpoint, and at the end equal
//! those of a job that was never interrupted.

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tidemark::checkpoint::Store;
use tidemark::job::checkpoint::Restored;
use tidemark::job::params::JobParams;
use tidemark::job::{JobOptions, RunningJob};
use tidemark::pipeline::TimeMode;
use tidemark::runtime::{Keep, Runtime};

type Job = RunningJob<Arc<Runtime>>;

fn start(params: &Value, workers: usize, restored: Option<Restored>) -> Job {
    start_dataflow("window_agg", params, workers, restored)
}

fn start_dataflow(name: &str, params: &Value, workers: usize, restored: Option<Restored>) -> Job {
    let registry = crate::dataflows::registry();
    let dataflow = registry.get(name).expect("a compiled-in dataflow").clone();
    let params = JobParams::decode(&dataflow, params.as_object().expect("object")).expect("valid params");
    let options = JobOptions {
        mode: TimeMode::Exact,
        keep: Keep::Served { history: 100_000 },
        dead_letter_retention: None,
        checkpoints: true,
    };
    let runtime = Arc::new(Runtime::start(workers).expect("runtime"));
    RunningJob::start_from(runtime, 1, "job", &dataflow, params, &options, restored).expect("job starts")
}

/// Batches of events: time moves on, a few are late and a few too late.
fn batches(seed: u64) -> Vec<Vec<Vec<u8>>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut now = 10_000u64;
    (0..40)
        .map(|_| {
            (0..rng.random_range(1..30))
                .map(|_| {
                    now += rng.random_range(0..150);
                    let ts = match rng.random_range(0..20) {
                        0 => now.saturating_sub(rng.random_range(2_000..4_000)),
                        1 => now.saturating_sub(rng.random_range(6_000..20_000)),
                        _ => now.saturating_sub(rng.random_range(0..1_500)),
                    };
                    let key = ["a", "b", "c", "d", "e", "f", "g"][rng.random_range(0..7)];
                    let value = rng.random_range(-100..100);
                    serde_json::to_vec(&json!({"key": key, "ts": ts, "value": value})).unwrap()
                })
                .collect()
        })
        .collect()
}

fn feed(job: &Job, batches: &[Vec<Vec<u8>>]) {
    for batch in batches {
        job.ingest(0, batch.iter().map(Vec::as_slice)).expect("ingest");
    }
}

fn rows(job: &Job) -> Vec<String> {
    output(job, "windows")
}

fn output(job: &Job, name: &str) -> Vec<String> {
    assert!(job.wait_complete(Duration::from_secs(30)), "outputs did not complete");
    let mut rows: Vec<String> =
        job.output(name).expect("output").rows.snapshot().1.iter().map(|(r, _)| r.to_string()).collect();
    rows.sort();
    rows
}

fn check(params: Value, seed: u64, workers: [usize; 3]) {
    let batches = batches(seed);
    let (first, second) = (12, 27);
    let steady = start(&params, 2, None);
    feed(&steady, &batches);
    let all_letters = output(&steady, "dead_letter");

    let expected = rows(&steady);
    assert!(expected.len() > 20, "{params}: the job has windows: {}", expected.len());

    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let job = start(&params, workers[0], None);
    assert_eq!(job.not_checkpointable(), None);
    feed(&job, &batches[..first]);
    let manifest = job.checkpoint(&mut store, 1, Default::default).expect("first checkpoint");
    // (The checkpoint moved the frontier past every record placed: read after it.)
    let at_first = rows(&job);
    let letters = output(&job, "dead_letter");
    assert!(!letters.is_empty(), "some records were too late");
    assert_eq!(manifest.id, 1);
    drop(job);

    let job = start(&params, workers[1], Restored::read(&Store::open(dir.path()).unwrap()).unwrap());
    assert_eq!(
        rows(&job),
        at_first,
        "{params}, seed {seed}: restored on {} workers, the content at the checkpoint",
        workers[1]
    );
    assert_eq!(output(&job, "dead_letter"), letters, "{params}, seed {seed}: the dead letters come back");
    feed(&job, &batches[first..second]);
    let manifest = job.checkpoint(&mut store, 2, Default::default).expect("second checkpoint");
    let at_second = rows(&job);
    assert_eq!(manifest.id, 2);
    drop(job);

    let job = start(&params, workers[2], Restored::read(&Store::open(dir.path()).unwrap()).unwrap());
    assert_eq!(rows(&job), at_second, "{params}, seed {seed}: restored from a delta, the content at the checkpoint");
    feed(&job, &batches[second..]);

    assert_eq!(output(&job, "dead_letter"), all_letters, "{params}, seed {seed}: every dead letter, once");
    let got = rows(&job);
    let missing: Vec<&String> = expected.iter().filter(|r| !got.contains(r)).collect();
    let extra: Vec<&String> = got.iter().filter(|r| !expected.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{params}, seed {seed}: after two restores, an uninterrupted run's content; missing {missing:?}, extra {extra:?}"
    );
}

#[test]
fn tumbling_windows_come_back_from_checkpoints_on_other_workers() {
    let params =
        json!({"window": {"tumbling": {"size": 2000}}, "max_out_of_orderness": 1000, "allowed_lateness": 2000});
    for seed in 0..3 {
        check(params.clone(), seed, [1, 2, 1]);
    }
}

#[test]
fn sliding_windows_with_retention_come_back_from_checkpoints() {
    let params = json!({
        "window": {"sliding": {"size": 3000, "slide": 1000}},
        "max_out_of_orderness": 500, "allowed_lateness": 1000, "retention": 4000,
    });
    for seed in 0..3 {
        check(params.clone(), seed, [2, 2, 1]);
    }
}

#[test]
fn sessions_come_back_from_checkpoints() {
    let params = json!({"window": {"session": {"gap": 700}}, "max_out_of_orderness": 800, "allowed_lateness": 1500, "emit": "on_close"});
    for seed in 0..3 {
        check(params.clone(), seed, [2, 1, 2]);
    }
}

/// A pipeline that reaches past the pipeline API into timely (`Job::scope`): state
/// there is out of the checkpoints' reach.
mod raw {
    use tidemark::pipeline::prelude::*;

    use crate::dataflows::window_agg::Event;

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    pub struct NoParams {}
    impl Params for NoParams {}

    pub struct Raw;

    impl Pipeline for Raw {
        type Params = NoParams;

        fn description(&self) -> Description {
            Description::new("raw", "reaches into timely")
                .input(InputDesc::of::<Event>("events"))
                .output(OutputDesc::new("events", &[]))
        }

        fn inputs(&self, _: &NoParams) -> Inputs {
            Inputs::new().with("events", InputOptions::default())
        }

        fn build<'s>(&self, job: &mut Job<'s>, _: &NoParams) -> Result<(), BuildError> {
            let events = job.input::<Event>("events")?;
            let _ = job.scope();
            job.output("events", events.collection())
        }
    }
}

#[test]
fn a_job_that_reaches_into_timely_says_it_cannot_be_checkpointed() {
    let registry = tidemark::pipeline::Registry::new().with(raw::Raw);
    let dataflow = registry.get("raw").expect("raw").clone();
    let params = JobParams::decode(&dataflow, &serde_json::Map::new()).expect("params");
    let options = JobOptions {
        mode: TimeMode::Exact,
        keep: Keep::Served { history: 10 },
        dead_letter_retention: None,
        checkpoints: true,
    };
    let job = RunningJob::start_from(Arc::new(Runtime::start(1).unwrap()), 1, "c", &dataflow, params, &options, None)
        .unwrap();
    let why = job.not_checkpointable().expect("not checkpointable");
    assert!(why.contains("Job::scope"), "{why}");
    let dir = tempfile::tempdir().unwrap();
    let error = job.checkpoint(&mut Store::open(dir.path()).unwrap(), 1, Default::default).unwrap_err();
    assert!(error.to_string().contains("cannot be checkpointed"), "{error}");
}

/// Every compiled-in dataflow can be checkpointed (with its examples' parameters).
#[test]
fn every_compiled_in_dataflow_can_be_checkpointed() {
    let registry = crate::dataflows::registry();
    for dataflow in registry.iter() {
        let given = dataflow.decode_params(&serde_json::Map::new(), &[]).map(|_| json!({}));
        let params = given.unwrap_or_else(|_| json!({"window": {"tumbling": {"size": 1000}}}));
        let job = start_dataflow(dataflow.name(), &params, 1, None);
        assert_eq!(job.not_checkpointable(), None, "{}", dataflow.name());
    }
}

/// Records for the pipelines whose state lives in raw differential operators over
/// their inputs (`Stream::collection`, `Stream::expire`, `Stream::batched` under a
/// loop), as `(input, batches)`.
fn raw_batches(dataflow: &str, seed: u64) -> Vec<(usize, Vec<Vec<u8>>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut now = 10_000u64;
    let mut batches = Vec::new();
    let mut orders: Vec<String> = Vec::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    for n in 0..36 {
        let mut batch = Vec::new();
        let mut input = 0;
        for i in 0..rng.random_range(1..20) {
            now += rng.random_range(0..200);
            let ts = now.saturating_sub(rng.random_range(0..800));
            let record = match dataflow {
                "chaos" => {
                    let key = ["a", "b", "c", "d"][rng.random_range(0..4)];
                    json!({"key": key, "ts": ts, "value": 1})
                }
                "word_count" => {
                    let words: Vec<&str> = (0..rng.random_range(1..4))
                        .map(|_| ["x", "y", "z", "w", "v"][rng.random_range(0..5)])
                        .collect();
                    json!({"text": words.join(" "), "ts": ts})
                }
                "orders" if n % 3 == 2 && !orders.is_empty() => {
                    input = 1;
                    json!({"order_id": orders[rng.random_range(0..orders.len())], "ts": ts})
                }
                "orders" => {
                    let id = format!("o{n}-{i}");
                    orders.push(id.clone());
                    let category = ["books", "games", "tools"][rng.random_range(0..3)];
                    json!({"order_id": id, "category": category, "amount": rng.random_range(1..100), "ts": ts})
                }
                "components" if rng.random_bool(0.2) && !edges.is_empty() => {
                    let (src, dst) = edges.swap_remove(rng.random_range(0..edges.len()));
                    json!({"src": src, "dst": dst, "ts": ts, "op": "remove"})
                }
                "components" => {
                    let (src, dst) = (format!("n{}", rng.random_range(0..30)), format!("n{}", rng.random_range(0..30)));
                    edges.push((src.clone(), dst.clone()));
                    json!({"src": src, "dst": dst, "ts": ts})
                }
                other => panic!("no records for {other}"),
            };
            batch.push(serde_json::to_vec(&record).unwrap());
        }
        batches.push((input, batch));
    }
    batches
}

fn outputs(job: &Job, names: &[&str]) -> Vec<Vec<String>> {
    names.iter().map(|name| output(job, name)).collect()
}

fn feed_inputs(job: &Job, batches: &[(usize, Vec<Vec<u8>>)]) {
    for (input, batch) in batches {
        job.ingest(*input, batch.iter().map(Vec::as_slice)).expect("ingest");
    }
}

/// As [`check`], for a pipeline keeping raw differential state over its inputs.
fn check_raw(dataflow: &str, params: Value, names: &[&str], seed: u64, workers: [usize; 3]) {
    let batches = raw_batches(dataflow, seed);
    let (first, second) = (10, 24);
    let steady = start_dataflow(dataflow, &params, 2, None);
    feed_inputs(&steady, &batches);
    let expected = outputs(&steady, names);
    assert!(expected.iter().all(|rows| !rows.is_empty()), "{dataflow}: every output has rows");

    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let job = start_dataflow(dataflow, &params, workers[0], None);
    assert_eq!(job.not_checkpointable(), None);
    feed_inputs(&job, &batches[..first]);
    job.checkpoint(&mut store, 1, Default::default).expect("first checkpoint");
    let at_first = outputs(&job, names);
    drop(job);

    let restored = Restored::read(&Store::open(dir.path()).unwrap()).unwrap();
    let job = start_dataflow(dataflow, &params, workers[1], restored);
    assert_eq!(outputs(&job, names), at_first, "{dataflow}, seed {seed}: restored, the content at the checkpoint");
    feed_inputs(&job, &batches[first..second]);
    job.checkpoint(&mut store, 2, Default::default).expect("second checkpoint");
    let at_second = outputs(&job, names);
    drop(job);

    let restored = Restored::read(&Store::open(dir.path()).unwrap()).unwrap();
    let job = start_dataflow(dataflow, &params, workers[2], restored);
    assert_eq!(outputs(&job, names), at_second, "{dataflow}, seed {seed}: restored from a delta");
    feed_inputs(&job, &batches[second..]);
    assert_eq!(outputs(&job, names), expected, "{dataflow}, seed {seed}: after two restores, an uninterrupted run's");
}

#[test]
fn raw_collections_come_back_from_checkpoints() {
    for seed in 0..2 {
        check_raw("chaos", json!({}), &["counts"], seed, [1, 2, 1]);
        check_raw("word_count", json!({}), &["counts"], seed, [2, 1, 2]);
    }
}

#[test]
fn expiring_collections_come_back_from_checkpoints() {
    let params = json!({"window": {"tumbling": {"size": 2_000}}, "payment_timeout": 1_500});
    for seed in 0..3 {
        check_raw("orders", params.clone(), &["revenue", "unpaid"], seed, [1, 2, 1]);
    }
}

#[test]
fn loops_over_batched_inputs_come_back_from_checkpoints() {
    for seed in 0..2 {
        check_raw("components", json!({}), &["components", "sizes"], seed, [2, 1, 2]);
    }
}

/// `POST /api/v1/jobs/{job}/checkpoint` and the job's `"checkpoint"`, across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_over_http_and_back_after_a_restart() {
    use crate::service::{TestOptions, TestServer};
    let mut server = TestServer::start().await;
    let spec = json!({
        "name": "w", "dataflow": "window_agg", "checkpoint_interval_ms": 0,
        "params": {"window": {"tumbling": {"size": 1000}}, "max_out_of_orderness": 5000},
    });
    assert_eq!(server.post("/api/v1/jobs", &spec).await.0, 201);
    let (_, job) = server.get("/api/v1/jobs/w").await;
    assert_eq!(job["checkpoint"], Value::Null, "{job}");
    let events: Vec<Value> =
        (0..200).map(|i| json!({"key": format!("k{}", i % 7), "ts": i * 37, "value": i})).collect();
    assert_eq!(server.post("/api/v1/jobs/w/inputs/events", &json!(events[..150])).await.0, 200);

    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let (status, first) = server.post("/api/v1/jobs/w/checkpoint", &json!({})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["id"], 1, "{first}");
    assert!(first["frontier"].as_u64().unwrap() > 5_000, "{first}");
    assert!(first["bytes"].as_u64().unwrap() > 0 && first["duration_ms"].is_u64(), "{first}");
    assert!(first["at"].as_u64().unwrap() >= before, "{first}");
    let (_, job) = server.get("/api/v1/jobs/w").await;
    assert_eq!(job["checkpoint"], first, "{job}");
    // Nothing changed since: the next one writes (almost) nothing.
    let (_, second) = server.post("/api/v1/jobs/w/checkpoint", &json!({})).await;
    assert_eq!(second["id"], 2, "{second}");
    assert!(second["bytes"].as_u64().unwrap() * 5 < first["bytes"].as_u64().unwrap(), "{first} then {second}");

    assert_eq!(server.post("/api/v1/jobs/w/inputs/events", &json!(events[150..])).await.0, 200);
    // An advance answers once the outputs reflect everything before it.
    let settle = json!({"watermark": 1});
    assert_eq!(server.post("/api/v1/jobs/w/inputs/events/advance", &settle).await.0, 200);
    let windows = server.snapshot("w", &["windows"]).await;
    assert!(windows["windows"].len() > 5, "{windows:?}");
    // The generator's position is not kept: such a job replays from the start.
    let generated = json!({"name": "g", "dataflow": "window_agg", "params": {"window": {"tumbling": {"size": 1000}}},
        "inputs": {"events": {"source": "generator", "stream": "events", "rate": 10}}});
    assert_eq!(server.post("/api/v1/jobs", &generated).await.0, 201);
    let (status, body) = server.post("/api/v1/jobs/g/checkpoint", &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_checkpointable")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("generator"), "{body}");
    assert_eq!(server.post("/api/v1/jobs/nope/checkpoint", &json!({})).await.0, 404);
    server.stop().await;

    // Back from checkpoint 2, with the records after it from the log.
    let mut again = TestServer::start_in(server.data_dir.clone(), TestOptions::default()).await;
    let (_, job) = again.get("/api/v1/jobs/w").await;
    assert_eq!(job["checkpoint"]["id"], 2, "{job}");
    assert_eq!(again.post("/api/v1/jobs/w/inputs/events/advance", &settle).await.0, 200);
    assert_eq!(again.snapshot("w", &["windows"]).await, windows, "the same windows after the restart");
    again.stop().await;
}

/// Periodic checkpoints follow the input: an idle job takes none, a fed one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_job_takes_no_periodic_checkpoints() {
    use crate::service::TestServer;
    let mut server = TestServer::start().await;
    let spec = json!({
        "name": "p", "dataflow": "window_agg", "checkpoint_interval_ms": 100,
        "params": {"window": {"tumbling": {"size": 1000}}, "idle_timeout_ms": null},
    });
    assert_eq!(server.post("/api/v1/jobs", &spec).await.0, 201);
    let id = |job: &Value| job["checkpoint"]["id"].as_u64();
    let feed = json!([{"key": "a", "ts": 10, "value": 1}]);
    assert_eq!(server.post("/api/v1/jobs/p/inputs/events", &feed).await.0, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, job) = server.get("/api/v1/jobs/p").await;
    let taken = id(&job).expect("a periodic checkpoint after the first record");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, job) = server.get("/api/v1/jobs/p").await;
    assert_eq!(id(&job), Some(taken), "nothing came in: no new checkpoint");
    assert_eq!(server.post("/api/v1/jobs/p/inputs/events", &feed).await.0, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, job) = server.get("/api/v1/jobs/p").await;
    assert_eq!(id(&job), Some(taken + 1), "one record came in: one more checkpoint");
    server.stop().await;
}

/// A checkpoint damaged on disk (a flipped byte in a part file, then a manifest cut
/// short) fails its job alone at the next start, with the reason in its status: the
/// server starts, the other job comes back whole, the failed one refuses ingest and can
/// be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_checkpoint_fails_its_job_alone() {
    use crate::service::{TestOptions, TestServer};
    let mut server = TestServer::start().await;
    let events: Vec<Value> =
        (0..300).map(|i| json!({"key": format!("k{}", i % 9), "ts": i * 20, "value": i})).collect();
    for name in ["damaged", "healthy"] {
        let spec = json!({
            "name": name, "dataflow": "window_agg", "checkpoint_interval_ms": 0,
            "params": {"window": {"tumbling": {"size": 1000}}, "idle_timeout_ms": null},
        });
        assert_eq!(server.post("/api/v1/jobs", &spec).await.0, 201);
        assert_eq!(server.post(&format!("/api/v1/jobs/{name}/inputs/events"), &json!(events)).await.0, 200);
        assert_eq!(server.post(&format!("/api/v1/jobs/{name}/checkpoint"), &json!({})).await.0, 200);
    }
    let healthy = server.snapshot("healthy", &["windows"]).await;
    server.stop().await;
    let dir = server.data_dir.join("checkpoints").join("damaged");
    let files = |prefix: &str| -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect();
        found.sort();
        found
    };

    let part = files("part-").into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = std::fs::read(&part).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&part, bytes).unwrap();
    let manifest = files("manifest-").pop().unwrap();
    let whole = std::fs::read(&manifest).unwrap();
    for damage in ["part", "manifest"] {
        if damage == "manifest" {
            std::fs::write(&manifest, &whole[..whole.len() / 2]).unwrap();
        }
        let mut again = TestServer::start_in(server.data_dir.clone(), TestOptions::default()).await;
        assert_eq!(again.get("/healthz").await.0, 200);
        let (_, job) = again.get("/api/v1/jobs/damaged").await;
        assert_eq!(job["state"], "failed", "{damage}: {job}");
        let error = job["error"].as_str().unwrap_or_default();
        assert!(error.contains("cannot restore its checkpoint") && error.contains(damage), "{damage}: {job}");
        let (status, body) = again.post("/api/v1/jobs/damaged/inputs/events", &json!(events[..1])).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("job_failed")), "{body}");
        let (_, other) = again.get("/api/v1/jobs/healthy").await;
        assert_eq!(other["state"], "running", "{other}");
        assert_eq!(again.snapshot("healthy", &["windows"]).await, healthy, "the healthy job came back whole");
        if damage == "manifest" {
            assert_eq!(again.delete("/api/v1/jobs/damaged").await, 204);
            assert!(!dir.exists(), "deleting the job deleted its checkpoints");
        }
        again.stop().await;
    }
}

/// A checkpoint that cannot be written (its directory gone, a file in its place): the
/// job runs on and takes input, its status says why, and the next good checkpoint
/// recovers: a restart comes back from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_that_cannot_be_written_leaves_the_job_running() {
    use crate::service::{TestOptions, TestServer};
    let mut server = TestServer::start().await;
    // No window closes: the watermark stays below every one.
    let spec = json!({
        "name": "w", "dataflow": "window_agg", "checkpoint_interval_ms": 0,
        "params": {"window": {"tumbling": {"size": 1000}}, "idle_timeout_ms": null, "max_out_of_orderness": 1_000_000},
    });
    assert_eq!(server.post("/api/v1/jobs", &spec).await.0, 201);
    // Keys of their own per third: what the failed checkpoint took is changed by
    // nothing after it.
    let events: Vec<Value> =
        (0..90).map(|i| json!({"key": format!("k{}-{}", i / 30, i % 4), "ts": i * 50, "value": i})).collect();
    assert_eq!(server.post("/api/v1/jobs/w/inputs/events", &json!(events[..30])).await.0, 200);
    assert_eq!(server.post("/api/v1/jobs/w/checkpoint", &json!({})).await.0, 200);

    let dir = server.data_dir.join("checkpoints").join("w");
    let aside = server.data_dir.join("checkpoints").join("w.aside");
    std::fs::rename(&dir, &aside).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();
    assert_eq!(server.post("/api/v1/jobs/w/inputs/events", &json!(events[30..60])).await.0, 200);
    let (status, body) = server.post("/api/v1/jobs/w/checkpoint", &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("checkpoint_failed")), "{body}");
    let (_, job) = server.get("/api/v1/jobs/w").await;
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(job["checkpoint"]["id"], 1, "{job}");
    assert!(job["checkpoint_error"].as_str().is_some_and(|e| e.contains("checkpoint")), "{job}");
    assert_eq!(server.post("/api/v1/jobs/w/inputs/events", &json!(events[60..])).await.0, 200);

    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&aside, &dir).unwrap();
    // The failed one's number is not given again; it writes what the failed one could
    // not (the operators handed their changes to it) before its own changes.
    let (status, second) = server.post("/api/v1/jobs/w/checkpoint", &json!({})).await;
    assert_eq!((status, second["id"].as_u64()), (200, Some(3)), "{second}");
    let (_, job) = server.get("/api/v1/jobs/w").await;
    assert_eq!(job["checkpoint_error"], Value::Null, "{job}");
    let settle = json!({"watermark": 1});
    assert_eq!(server.post("/api/v1/jobs/w/inputs/events/advance", &settle).await.0, 200);
    let windows = server.snapshot("w", &["windows"]).await;
    server.stop().await;

    let mut again = TestServer::start_in(server.data_dir.clone(), TestOptions::default()).await;
    let (_, job) = again.get("/api/v1/jobs/w").await;
    assert_eq!(job["checkpoint"]["id"], 3, "{job}");
    assert_eq!(again.post("/api/v1/jobs/w/inputs/events/advance", &settle).await.0, 200);
    assert_eq!(again.snapshot("w", &["windows"]).await, windows, "the same windows after the restart");
    again.stop().await;
}

/// Chains are compacted after checkpoints: twenty checkpoints, each after a change,
/// leave a handful of files, not one per operator and worker each, and the job comes
/// back from them whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_chains_are_compacted() {
    use crate::service::{TestOptions, TestServer};
    let mut server = TestServer::start().await;
    let spec = json!({
        "name": "c", "dataflow": "window_agg", "checkpoint_interval_ms": 0,
        "params": {"window": {"tumbling": {"size": 1000}}, "idle_timeout_ms": null},
    });
    assert_eq!(server.post("/api/v1/jobs", &spec).await.0, 201);
    for i in 0..20 {
        let events = json!([{"key": format!("k{}", i % 3), "ts": i * 400, "value": i}]);
        assert_eq!(server.post("/api/v1/jobs/c/inputs/events", &events).await.0, 200);
        assert_eq!(server.post("/api/v1/jobs/c/checkpoint", &json!({})).await.0, 200);
    }
    let files = std::fs::read_dir(server.data_dir.join("checkpoints").join("c")).unwrap().count();
    // Uncompacted: a part per worker and one per output chain, twenty times over.
    assert!(files <= 16, "{files} files in the checkpoint directory");
    let settle = json!({"watermark": 1});
    assert_eq!(server.post("/api/v1/jobs/c/inputs/events/advance", &settle).await.0, 200);
    let windows = server.snapshot("c", &["windows"]).await;
    server.stop().await;
    let mut again = TestServer::start_in(server.data_dir.clone(), TestOptions::default()).await;
    assert_eq!(again.post("/api/v1/jobs/c/inputs/events/advance", &settle).await.0, 200);
    assert_eq!(again.snapshot("c", &["windows"]).await, windows, "the same windows after the restart");
    again.stop().await;
}
