//! `word_count` — how often each word occurs, over all lines or per window.
//!
//! - input `lines`: `{"text": string, "ts": int}`.
//! - params: `window` (default `null`: one count over all lines; else tumbling, sliding
//!   or session as in `window_agg`), `max_out_of_orderness`, `allowed_lateness`,
//!   `retention` and `emit` as in `window_agg` (the last three only apply to windows).
//! - output `counts` (key `word`, `start`): `{"word", "start", "end", "count"}`;
//!   `start` and `end` are `null` without a window.
//!
//! Words are maximal runs of letters, digits and apostrophes, lowercased. Without a
//! window the count is a plain differential `count`: the escape hatch to raw
//! differential dataflow at work.
//!
//! ```sh
//! echo '{"text":"the cat and the hat","ts":1}' > lines.ndjson
//! tidemark run word_count --input lines=lines.ndjson
//! curl 'http://127.0.0.1:8080/api/v1/jobs/words/outputs/counts?word=the'
//! ```

use tidemark::pipeline::prelude::*;

/// One line of text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Line {
    /// The text.
    pub text: String,
    /// Event time, ms.
    pub ts: u64,
}

impl Record for Line {
    const FIELDS: &'static [(&'static str, &'static str)] = &[("text", "string"), ("ts", "int")];
    fn ts(&self) -> Time {
        self.ts
    }
}

/// The parameters of `word_count`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WordCountParams {
    /// Count per window, or over everything when `None`.
    pub window: Option<WindowKind>,
    /// Out-of-orderness, and for windows lateness, retention and emission.
    #[serde(flatten)]
    pub time: EventTime,
}

impl Params for WordCountParams {
    fn validate(&self) -> Result<(), ParamError> {
        if let Some(window) = self.window {
            window.validate()?;
        }
        self.time.validate()
    }
}

/// One row of `counts`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CountRow {
    word: String,
    start: Option<u64>,
    end: Option<u64>,
    count: u64,
}

/// The words of `text`, lowercased.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The `word_count` pipeline.
pub struct WordCount;

impl Pipeline for WordCount {
    type Params = WordCountParams;

    fn description(&self) -> Description {
        Description::new("word_count", "occurrences of each word, over all lines or per window")
            .input(InputDesc::of::<Line>("lines"))
            .output(OutputDesc::new("counts", &["word", "start"]))
    }

    fn inputs(&self, params: &WordCountParams) -> Inputs {
        let windowing = params.window.map(|kind| params.time.windowing(kind));
        let lateness = windowing.as_ref().map_or(Lateness::Never, Windowing::lateness);
        Inputs::new().with("lines", params.time.input(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &WordCountParams) -> Result<(), BuildError> {
        let windowing = params.window.map(|kind| params.time.windowing(kind));
        let lines = job.input::<Line>("lines")?;
        let words = lines.flat_map(|line: Line| words(&line.text).into_iter().map(move |w| (w, line.ts)));
        let counts = match windowing {
            Some(windowing) => words
                .window_aggregate("counts", &windowing, |(w, _)| w.clone(), |(_, ts)| *ts, |_| (), Count)
                .map(|(word, w, count)| CountRow { word, start: Some(w.start), end: Some(w.end), count }),
            None => words.collection().map(|(w, _)| w).count().map(|(word, count)| CountRow {
                word,
                start: None,
                end: None,
                count: count as u64,
            }),
        };
        job.output("counts", counts)
    }
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn words_are_lowercased_runs() {
        assert_eq!(words("The cat's hat -- THE 'end'!"), vec!["the", "cat's", "hat", "the", "end"]);
    }
}
