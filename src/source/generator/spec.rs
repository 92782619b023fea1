//! What a job asks of the generator for one input: [`GeneratorSpec`] (which
//! [`GenStream`], at what rate, how disordered, late and malformed), its defaults, its
//! parsing and validation, and [`GeneratorError`], the answer to a spec out of range.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest `rate`, in records per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The largest `disorder_ms` and `late_ms`: one day.
pub const MAX_LATE_MS: u64 = 86_400_000;

fn default_rate() -> f64 {
    100.0
}
fn default_disorder_ms() -> u64 {
    2_000
}
fn default_late_fraction() -> f64 {
    0.01
}
fn default_late_ms() -> u64 {
    30_000
}
fn default_invalid_fraction() -> f64 {
    0.001
}

/// What a generator-fed input produces, as given in the job spec:
/// `{"source": "generator", "stream": "views", "rate": 200, ...}` (the `"source"` key is
/// the caller's; [`GeneratorSpec::from_json`] drops it, plain serde rejects it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    /// What to produce (required).
    pub stream: GenStream,
    /// Records per second (default 100; `0 < rate <= 1_000_000`). Ignored by `payments`
    /// when the job generates orders (see the module docs).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// The seed of the input's random draws (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Records arrive up to this much out of order, in ms (default 2000).
    #[serde(default = "default_disorder_ms")]
    pub disorder_ms: u64,
    /// The fraction of records that arrive late (default 0.01).
    #[serde(default = "default_late_fraction")]
    pub late_fraction: f64,
    /// How late those are: uniform in `[disorder_ms, late_ms]` behind the clock (default 30000).
    #[serde(default = "default_late_ms")]
    pub late_ms: u64,
    /// The fraction of malformed records (default 0.001).
    #[serde(default = "default_invalid_fraction")]
    pub invalid_fraction: f64,
}

/// Why a generator spec was refused. The messages name the field first: they reach
/// API clients as they are.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// The source object is not a generator spec (a missing, unknown or mistyped field).
    #[error("generator source: {0}")]
    Decode(#[source] serde_json::Error),
    /// `rate` is not in `(0, MAX_RATE]`.
    #[error("rate must be > 0 and <= {MAX_RATE} records per second, got {0}")]
    Rate(f64),
    /// `late_fraction` is not in `[0, 1]`.
    #[error("late_fraction must be in [0, 1], got {0}")]
    LateFraction(f64),
    /// `invalid_fraction` is not in `[0, 1]`.
    #[error("invalid_fraction must be in [0, 1], got {0}")]
    InvalidFraction(f64),
    /// `disorder_ms` is above [`MAX_LATE_MS`].
    #[error("disorder_ms must be at most {MAX_LATE_MS}, got {0}")]
    DisorderMs(u64),
    /// `late_ms` is above [`MAX_LATE_MS`].
    #[error("late_ms must be at most {MAX_LATE_MS}, got {0}")]
    LateMs(u64),
    /// `late_ms` is below `disorder_ms`.
    #[error("late_ms must be at least disorder_ms ({disorder_ms}), got {late_ms}")]
    LateBelowDisorder {
        /// The spec's `disorder_ms`.
        disorder_ms: u64,
        /// The spec's `late_ms`.
        late_ms: u64,
    },
}

impl GeneratorSpec {
    /// A spec of `stream` with every other field at its default.
    pub fn new(stream: GenStream) -> GeneratorSpec {
        GeneratorSpec {
            stream,
            rate: default_rate(),
            seed: 0,
            disorder_ms: default_disorder_ms(),
            late_fraction: default_late_fraction(),
            late_ms: default_late_ms(),
            invalid_fraction: default_invalid_fraction(),
        }
    }

    /// Parses and validates an input's source object, ignoring its `"source"` key.
    pub fn from_json(value: &Value) -> Result<GeneratorSpec, GeneratorError> {
        let mut value = value.clone();
        if let Value::Object(map) = &mut value {
            map.remove("source");
        }
        let spec: GeneratorSpec = serde_json::from_value(value).map_err(GeneratorError::Decode)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the ranges of the fields; the error names the field.
    pub fn validate(&self) -> Result<(), GeneratorError> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(GeneratorError::Rate(self.rate));
        }
        if !(0.0..=1.0).contains(&self.late_fraction) {
            return Err(GeneratorError::LateFraction(self.late_fraction));
        }
        if !(0.0..=1.0).contains(&self.invalid_fraction) {
            return Err(GeneratorError::InvalidFraction(self.invalid_fraction));
        }
        if self.disorder_ms > MAX_LATE_MS {
            return Err(GeneratorError::DisorderMs(self.disorder_ms));
        }
        if self.late_ms > MAX_LATE_MS {
            return Err(GeneratorError::LateMs(self.late_ms));
        }
        if self.late_ms < self.disorder_ms {
            return Err(GeneratorError::LateBelowDisorder { disorder_ms: self.disorder_ms, late_ms: self.late_ms });
        }
        Ok(())
    }

    /// The spec with every field forced into its range (for specs never validated).
    pub(super) fn sanitized(&self) -> GeneratorSpec {
        let fraction = |f: f64| if f.is_finite() { f.clamp(0.0, 1.0) } else { 0.0 };
        let disorder_ms = self.disorder_ms.min(MAX_LATE_MS);
        GeneratorSpec {
            stream: self.stream,
            rate: if self.rate.is_finite() { self.rate.clamp(0.0, MAX_RATE) } else { 0.0 },
            seed: self.seed,
            disorder_ms,
            late_fraction: fraction(self.late_fraction),
            late_ms: self.late_ms.clamp(disorder_ms, MAX_LATE_MS),
            invalid_fraction: fraction(self.invalid_fraction),
        }
    }
}

/// The kinds of records a generator produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenStream {
    /// Product views: `{"product", "category", "user", "ts"}`.
    Views,
    /// Orders: `{"order_id", "category", "amount", "ts"}`.
    Orders,
    /// Payments of orders: `{"order_id", "ts"}`.
    Payments,
    /// Sensor readings: `{"key", "ts", "value"}`.
    Events,
    /// Lines of text: `{"text", "ts"}`.
    Lines,
}

impl GenStream {
    /// Every stream.
    pub const ALL: [GenStream; 5] =
        [GenStream::Views, GenStream::Orders, GenStream::Payments, GenStream::Events, GenStream::Lines];

    /// The stream's name in specs (`"views"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            GenStream::Views => "views",
            GenStream::Orders => "orders",
            GenStream::Payments => "payments",
            GenStream::Events => "events",
            GenStream::Lines => "lines",
        }
    }

    /// The fields of the stream's records, each exactly once, in the order they are
    /// written (a malformed record may lack one or have one of the wrong type).
    pub fn record_fields(&self) -> &'static [&'static str] {
        match self {
            GenStream::Views => &["product", "category", "user", "ts"],
            GenStream::Orders => &["order_id", "category", "amount", "ts"],
            GenStream::Payments => &["order_id", "ts"],
            GenStream::Events => &["key", "ts", "value"],
            GenStream::Lines => &["text", "ts"],
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::source::generator::Generator;
    use crate::source::generator::tests::T0;

    fn spec(stream: GenStream) -> GeneratorSpec {
        GeneratorSpec::new(stream)
    }

    #[test]
    fn validation_names_the_field() {
        // The messages reach API clients: their texts are part of the API.
        let cases = [
            (
                GeneratorSpec { rate: 0.0, ..spec(GenStream::Views) },
                "rate must be > 0 and <= 1000000 records per second, got 0",
            ),
            (
                GeneratorSpec { rate: f64::NAN, ..spec(GenStream::Views) },
                "rate must be > 0 and <= 1000000 records per second, got NaN",
            ),
            (
                GeneratorSpec { rate: 2e6, ..spec(GenStream::Views) },
                "rate must be > 0 and <= 1000000 records per second, got 2000000",
            ),
            (
                GeneratorSpec { late_fraction: 1.5, ..spec(GenStream::Views) },
                "late_fraction must be in [0, 1], got 1.5",
            ),
            (
                GeneratorSpec { invalid_fraction: -0.1, ..spec(GenStream::Views) },
                "invalid_fraction must be in [0, 1], got -0.1",
            ),
            (
                GeneratorSpec { disorder_ms: MAX_LATE_MS + 1, ..spec(GenStream::Views) },
                "disorder_ms must be at most 86400000, got 86400001",
            ),
            (
                GeneratorSpec { late_ms: MAX_LATE_MS + 1, ..spec(GenStream::Views) },
                "late_ms must be at most 86400000, got 86400001",
            ),
            (
                GeneratorSpec { disorder_ms: 5000, late_ms: 4000, ..spec(GenStream::Views) },
                "late_ms must be at least disorder_ms (5000), got 4000",
            ),
        ];
        for (spec, message) in cases {
            assert_eq!(spec.validate().unwrap_err().to_string(), message);
        }
        spec(GenStream::Views).validate().unwrap();
        GeneratorSpec { rate: MAX_RATE, late_fraction: 1.0, ..spec(GenStream::Lines) }.validate().unwrap();
        // An unvalidated spec is forced into range rather than panicking.
        let wild = GeneratorSpec {
            rate: f64::NAN,
            late_fraction: 7.0,
            late_ms: 0,
            invalid_fraction: -1.0,
            ..spec(GenStream::Views)
        };
        let mut generator = Generator::new(vec![(0, wild)]);
        generator.tick(T0);
        assert!(generator.tick(T0 + 1000)[0].1.is_empty());
    }

    #[test]
    fn specs_parse_with_defaults_and_deny_unknown_fields() {
        let parsed = GeneratorSpec::from_json(&json!({"source": "generator", "stream": "views"})).unwrap();
        assert_eq!(parsed, spec(GenStream::Views));
        assert_eq!(
            (
                parsed.rate,
                parsed.seed,
                parsed.disorder_ms,
                parsed.late_fraction,
                parsed.late_ms,
                parsed.invalid_fraction
            ),
            (100.0, 0, 2000, 0.01, 30_000, 0.001)
        );
        let full = json!({"stream": "payments", "rate": 5.5, "seed": 3, "disorder_ms": 0, "late_fraction": 0.0,
            "late_ms": 0, "invalid_fraction": 0.5});
        let parsed: GeneratorSpec = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), full);

        let error = GeneratorSpec::from_json(&json!({"source": "generator", "stream": "views", "rat": 5}))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("generator source: unknown field `rat`"), "{error}");
        assert!(serde_json::from_value::<GeneratorSpec>(json!({"source": "generator", "stream": "views"})).is_err());
        let error = GeneratorSpec::from_json(&json!({"rate": 5})).unwrap_err().to_string();
        assert!(error.contains("missing field `stream`"), "{error}");
        let error = GeneratorSpec::from_json(&json!({"stream": "clicks"})).unwrap_err().to_string();
        assert!(error.contains("clicks"), "{error}");
        let error = GeneratorSpec::from_json(&json!({"stream": "views", "rate": -1})).unwrap_err().to_string();
        assert!(error.starts_with("rate"), "{error}");
        for stream in GenStream::ALL {
            assert_eq!(serde_json::to_value(stream).unwrap(), json!(stream.name()));
        }
    }
}
