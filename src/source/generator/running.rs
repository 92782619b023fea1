//! [`GeneratorSource`]: the generator of one job, ticking on a task of its own and
//! feeding each of its inputs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use super::{Generator, GeneratorSpec};
use crate::source::{Feed, FeedError, Position, Source};

/// How often the generator ticks.
pub const TICK_PERIOD: Duration = Duration::from_millis(100);

/// How far the generator has gone.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    ticks: u64,
    records: u64,
    clock: Option<u64>,
}

/// The generator-fed inputs of one job: one source, since they share one world.
pub struct GeneratorSource {
    seeds: Vec<(usize, u64)>,
    progress: Arc<Mutex<Progress>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl GeneratorSource {
    /// Starts ticking for `inputs` (input index, spec, feed) on the current tokio
    /// runtime. The generator's records follow the wall clock, so it always starts
    /// afresh: its position says how far it went, not where to go on from.
    pub fn start(inputs: Vec<(usize, GeneratorSpec, Arc<dyn Feed>)>) -> GeneratorSource {
        let seeds = inputs.iter().map(|(index, spec, _)| (*index, spec.seed)).collect();
        let feeds: Vec<(usize, Arc<dyn Feed>)> = inputs.iter().map(|(i, _, feed)| (*i, feed.clone())).collect();
        let generator = Generator::new(inputs.into_iter().map(|(index, spec, _)| (index, spec)).collect());
        let progress = Arc::new(Mutex::new(Progress::default()));
        let task = tokio::spawn(tick(generator, feeds, progress.clone()));
        GeneratorSource { seeds, progress, task: Mutex::new(Some(task)) }
    }
}

/// Feeds the generator's records every [`TICK_PERIOD`] until the job takes no more.
async fn tick(mut generator: Generator, feeds: Vec<(usize, Arc<dyn Feed>)>, progress: Arc<Mutex<Progress>>) {
    let mut ticks = tokio::time::interval(TICK_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let feeds_now = feeds.clone();
        let progress_now = progress.clone();
        let step = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let mut fed = 0;
            for (input, records) in generator.tick(now) {
                let Some((_, feed)) = feeds_now.iter().find(|(i, _)| *i == input) else { continue };
                let records: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
                if let Err(error) = feed.records(&records) {
                    return Err((error, feed.clone()));
                }
                fed += records.len() as u64;
            }
            let mut progress = progress_now.lock().expect("progress lock");
            progress.ticks += 1;
            progress.records += fed;
            progress.clock = Some(now);
            Ok::<_, (FeedError, Arc<dyn Feed>)>(generator)
        });
        match step.await {
            Ok(Ok(next)) => generator = next,
            Ok(Err((FeedError::Gone, _))) => return,
            Ok(Err((error, feed))) => return feed.fail(&error),
            Err(error) if error.is_cancelled() => return,
            Err(error) => {
                if let Some((_, feed)) = feeds.first() {
                    feed.fail(&error);
                }
                return;
            }
        }
    }
}

impl Source for GeneratorSource {
    fn position(&self) -> Position {
        let progress = *self.progress.lock().expect("progress lock");
        Position::Generator {
            seeds: self.seeds.clone(),
            ticks: progress.ticks,
            records: progress.records,
            clock: progress.clock,
        }
    }

    fn stop(&self) {
        if let Some(task) = self.task.lock().expect("task lock").take() {
            task.abort();
        }
    }
}

impl Drop for GeneratorSource {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Wall-clock milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::generator::GenStream;
    use crate::source::testing::Kept;

    fn spec(stream: GenStream, seed: u64) -> GeneratorSpec {
        let mut spec: GeneratorSpec = serde_json::from_value(serde_json::json!({"stream": "views"})).unwrap();
        spec.stream = stream;
        spec.seed = seed;
        spec.rate = 1000.0;
        spec
    }

    async fn ticked(source: &GeneratorSource, ticks: u64) -> Position {
        for _ in 0..500 {
            if let position @ Position::Generator { ticks: t, .. } = source.position()
                && t >= ticks
            {
                return position;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the generator did not tick {ticks} times: {:?}", source.position());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_position_counts_ticks_and_records_of_every_input() {
        let (orders, views) = (Arc::new(Kept::default()), Arc::new(Kept::default()));
        let source = GeneratorSource::start(vec![
            (3, spec(GenStream::Views, 7), views.clone() as Arc<dyn Feed>),
            (1, spec(GenStream::Orders, 9), orders.clone() as Arc<dyn Feed>),
        ]);
        ticked(&source, 4).await;
        source.stop();
        let Position::Generator { seeds, ticks, records, clock } = source.position() else { panic!() };
        assert_eq!(seeds, [(3, 7), (1, 9)]);
        assert!(ticks >= 4 && clock.is_some());
        let fed = views.records.lock().unwrap().len() + orders.records.lock().unwrap().len();
        assert!(fed > 0);
        assert_eq!(records, fed as u64);
        assert!(views.records.lock().unwrap().iter().all(|r| !r.contains("order_id")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_feed_that_refuses_fails_the_input_and_stops_the_ticks() {
        let feed = Arc::new(Kept { refuse_after: Some(0), ..Kept::default() });
        let source = GeneratorSource::start(vec![(0, spec(GenStream::Events, 1), feed.clone() as Arc<dyn Feed>)]);
        for _ in 0..500 {
            if !feed.failures.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*feed.failures.lock().unwrap(), ["refused"]);
        let Position::Generator { records, .. } = source.position() else { panic!() };
        assert_eq!(records, 0);
    }
}
