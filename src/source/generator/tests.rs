//! The generator's behaviour end to end: seeded simulations over irregular ticks,
//! checked against the promises of the module docs (rates, determinism, record shapes,
//! malformations, event times, payments, catch-up, popularity).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use super::catalog::{CATEGORIES, SENSORS};
use super::*;

/// Wall-clock start of the simulations: 2024-01-01T00:00:00Z.
pub(super) const T0: u64 = 1_704_067_200_000;

fn spec(stream: GenStream) -> GeneratorSpec {
    GeneratorSpec::new(stream)
}

/// A tick of a simulation: its time and its records per input.
struct Tick {
    now: u64,
    records: Vec<(usize, Vec<String>)>,
}

/// Irregular tick times (100 ms ± 40 ms) after `T0`, up to `duration` ms.
fn tick_times(duration: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut times = vec![T0];
    let mut now = T0;
    while now < T0 + duration {
        now += rng.random_range(60..=140);
        times.push(now);
    }
    times
}

fn simulate(inputs: Vec<(usize, GeneratorSpec)>, times: &[u64]) -> Vec<Tick> {
    let mut generator = Generator::new(inputs);
    times.iter().map(|&now| Tick { now, records: generator.tick(now) }).collect()
}

/// All records of input `index`, with the time of the tick that produced them.
fn records_of(ticks: &[Tick], index: usize) -> Vec<(u64, &str)> {
    ticks
        .iter()
        .flat_map(|t| {
            t.records.iter().filter(|(i, _)| *i == index).flat_map(move |(_, r)| r.iter().map(|s| (t.now, s.as_str())))
        })
        .collect()
}

/// Why generated text is not a valid record (`invalid` ones must not be).
#[derive(Debug)]
#[allow(dead_code)] // the fields are read through Debug, in failure messages
enum NotARecord {
    NotAnObject,
    Fields(Vec<String>),
    Value { field: String, value: Value },
}

/// Whether `text` parses as a record of the dataflow input `stream` fits, and fits
/// the generator's own promises (ranges, names); the parsed record if so.
fn parse_valid(stream: GenStream, text: &str) -> Result<Map<String, Value>, NotARecord> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else { return Err(NotARecord::NotAnObject) };
    let keys: BTreeSet<&str> = map.keys().map(String::as_str).collect();
    let wanted: BTreeSet<&str> = stream.record_fields().iter().copied().collect();
    if keys != wanted {
        return Err(NotARecord::Fields(keys.into_iter().map(String::from).collect()));
    }
    for (field, value) in &map {
        let ok = match field.as_str() {
            "ts" => value.as_u64().is_some(),
            "value" | "amount" => value.is_number() && value.as_f64().is_some_and(f64::is_finite),
            _ => value.is_string(),
        };
        if !ok {
            return Err(NotARecord::Value { field: field.clone(), value: value.clone() });
        }
    }
    let string = |f: &str| map[f].as_str().unwrap_or_default();
    let two_decimals = |x: f64| ((x * 100.0).round() / 100.0 - x).abs() < 1e-9;
    match stream {
        GenStream::Views => {
            assert!(CATEGORIES.iter().any(|c| c.name == string("category")), "{text}");
            assert!(string("user").starts_with("user-"), "{text}");
        }
        GenStream::Orders => {
            let amount = map["amount"].as_f64().unwrap_or_default();
            assert!((1.0..=300.0).contains(&amount) && two_decimals(amount), "{text}");
            assert!(CATEGORIES.iter().any(|c| c.name == string("category")), "{text}");
            assert!(string("order_id").strip_prefix("o-").is_some_and(|n| n.parse::<u64>().is_ok()), "{text}");
        }
        GenStream::Payments => assert!(string("order_id").starts_with("o-"), "{text}"),
        GenStream::Events => {
            let n: usize = string("key").strip_prefix("sensor-").and_then(|n| n.parse().ok()).unwrap_or(0);
            assert!((1..=SENSORS).contains(&n), "{text}");
            assert!(two_decimals(map["value"].as_f64().unwrap_or_default()), "{text}");
        }
        GenStream::Lines => assert!(string("text").split(' ').count() >= 3, "{text}"),
    }
    Ok(map)
}

fn ts(record: &Map<String, Value>) -> u64 {
    record["ts"].as_u64().unwrap()
}

#[test]
fn the_first_tick_starts_the_clock() {
    let mut generator = Generator::new(vec![(0, spec(GenStream::Views)), (3, spec(GenStream::Lines))]);
    assert_eq!(generator.tick(T0), vec![(0, vec![]), (3, vec![])]);
    let second = generator.tick(T0 + 1000);
    assert_eq!(second.iter().map(|(i, r)| (*i, r.len())).collect::<Vec<_>>(), vec![(0, 100), (3, 100)]);
    // A clock going backwards produces nothing.
    assert!(generator.tick(T0 + 500).iter().all(|(_, r)| r.is_empty()));
    assert!(Generator::new(vec![]).tick(T0).is_empty());
}

#[test]
fn rates_follow_the_clock() {
    let times = tick_times(60_000);
    let elapsed = times[times.len() - 1] - T0;
    let rates =
        [(GenStream::Views, 200.0), (GenStream::Orders, 1000.0), (GenStream::Events, 37.5), (GenStream::Lines, 0.7)];
    let inputs = rates.iter().enumerate().map(|(i, &(s, rate))| (i, GeneratorSpec { rate, ..spec(s) })).collect();
    let ticks = simulate(inputs, &times);
    for (i, (stream, rate)) in rates.iter().enumerate() {
        let got = records_of(&ticks, i).len() as f64;
        let want = rate * elapsed as f64 / 1000.0;
        assert!((got - want).abs() <= 1.0, "{stream:?}: {got} records, want {want}");
    }
    // Every tick produces its share, not bursts.
    let per_tick = ticks.windows(2).map(|w| (w[1].now - w[0].now, w[1].records[1].1.len()));
    for (gap, n) in per_tick {
        assert!((n as f64 - gap as f64).abs() <= 1.0, "{n} orders in {gap} ms at 1000/s");
    }
}

#[test]
fn generators_are_deterministic() {
    let times = tick_times(90_000);
    let inputs = |seed| -> Vec<(usize, GeneratorSpec)> {
        GenStream::ALL
            .iter()
            .enumerate()
            .map(|(i, &s)| (i, GeneratorSpec { seed, invalid_fraction: 0.05, late_fraction: 0.1, ..spec(s) }))
            .collect()
    };
    let (a, b, c) = (simulate(inputs(7), &times), simulate(inputs(7), &times), simulate(inputs(8), &times));
    assert!(records_of(&a, 2).len() > 1000, "payments were produced");
    for i in 0..GenStream::ALL.len() {
        assert_eq!(records_of(&a, i), records_of(&b, i));
        assert_ne!(records_of(&a, i), records_of(&c, i));
    }
    // Two inputs of one stream and seed differ (each input's draws are its own).
    let twins = simulate(vec![(0, spec(GenStream::Views)), (1, spec(GenStream::Views))], &times[..50]);
    let texts = |i| records_of(&twins, i).into_iter().map(|(_, r)| r).collect::<Vec<_>>();
    assert_ne!(texts(0), texts(1));
}

/// The compiled-in dataflow input each stream is made for, and that input's record
/// fields in the order `dataflows/` declares them: (stream, dataflow, input, fields).
/// The generator knows no pipeline (a job's spec says which stream feeds which input);
/// this table is the test's statement of what fits what.
const DATAFLOW_INPUTS: [(GenStream, &str, &str, &[&str]); 5] = [
    (GenStream::Views, "trending", "views", &["product", "category", "user", "ts"]),
    (GenStream::Orders, "orders", "orders", &["order_id", "category", "amount", "ts"]),
    (GenStream::Payments, "orders", "payments", &["order_id", "ts"]),
    (GenStream::Events, "window_agg", "events", &["key", "ts", "value"]),
    (GenStream::Lines, "word_count", "lines", &["text", "ts"]),
];

#[test]
fn valid_records_fit_the_dataflow_inputs() {
    // Each stream is named after the input it fits, and its records have exactly that
    // input's fields (and `parse_valid` below checks every record against them).
    assert_eq!(DATAFLOW_INPUTS.map(|(stream, ..)| stream), GenStream::ALL);
    for (stream, dataflow, input, fields) in DATAFLOW_INPUTS {
        assert_eq!(stream.name(), input, "{dataflow}'s {input}");
        assert_eq!(stream.record_fields(), fields, "{dataflow}'s {input}");
    }
    let inputs =
        GenStream::ALL.iter().enumerate().map(|(i, &s)| (i, GeneratorSpec { invalid_fraction: 0.0, ..spec(s) }));
    let ticks = simulate(inputs.collect(), &tick_times(120_000));
    for (i, stream) in GenStream::ALL.iter().enumerate() {
        let records = records_of(&ticks, i);
        assert!(records.len() > 5000, "{stream:?}: {}", records.len());
        for (now, text) in records {
            let record = parse_valid(*stream, text).unwrap_or_else(|e| panic!("{stream:?} {text}: {e:?}"));
            assert!(ts(&record) <= now);
        }
    }
    // Records are written field by field in the dataflows' order.
    let first = |i| records_of(&ticks, i)[0].1.to_string();
    assert!(first(0).starts_with(r#"{"product":""#), "{}", first(0));
    assert!(first(3).starts_with(r#"{"key":"sensor-"#), "{}", first(3));
}

/// The way a record is malformed.
fn malformation(stream: GenStream, text: &str) -> &'static str {
    let Ok(value) = serde_json::from_str::<Value>(text) else { return "not json" };
    let map = value.as_object().expect("an object");
    if map.len() < stream.record_fields().len() {
        "missing field"
    } else if map["ts"].as_i64().is_some_and(|t| t < 0) {
        "negative ts"
    } else if ["ts", "value", "amount"].iter().any(|f| map.get(*f).is_some_and(Value::is_string)) {
        "string for number"
    } else if map.values().any(Value::is_number) && map.values().filter(|v| v.is_string()).count() + 1 < map.len() {
        "number for string"
    } else {
        panic!("{text} is malformed in no known way")
    }
}

#[test]
fn an_invalid_fraction_is_malformed_in_varied_ways() {
    for (i, &stream) in GenStream::ALL.iter().enumerate() {
        let inputs = vec![(i, GeneratorSpec { rate: 2000.0, invalid_fraction: 0.1, ..spec(stream) })];
        let inputs = if stream == GenStream::Payments {
            let orders = GeneratorSpec { rate: 2000.0, invalid_fraction: 0.0, ..spec(GenStream::Orders) };
            vec![inputs[0].clone(), (9, orders)]
        } else {
            inputs
        };
        let ticks = simulate(inputs, &tick_times(40_000));
        let records = records_of(&ticks, i);
        let mut kinds = BTreeMap::new();
        for (_, text) in &records {
            if parse_valid(stream, text).is_err() {
                *kinds.entry(malformation(stream, text)).or_insert(0) += 1;
            }
        }
        let invalid: usize = kinds.values().sum();
        let fraction = invalid as f64 / records.len() as f64;
        assert!((fraction - 0.1).abs() < 0.01, "{stream:?}: {invalid} of {} invalid", records.len());
        assert_eq!(kinds.len(), 5, "{stream:?}: {kinds:?}");
    }
    // None by request.
    let ticks =
        simulate(vec![(0, GeneratorSpec { invalid_fraction: 0.0, ..spec(GenStream::Events) })], &tick_times(60_000));
    assert!(records_of(&ticks, 0).iter().all(|(_, t)| parse_valid(GenStream::Events, t).is_ok()));
}

#[test]
fn event_times_are_within_the_documented_bounds() {
    let late = GeneratorSpec {
        rate: 1000.0,
        disorder_ms: 3000,
        late_fraction: 0.05,
        late_ms: 20_000,
        ..spec(GenStream::Views)
    };
    let on_time = GeneratorSpec { rate: 1000.0, late_fraction: 0.0, ..spec(GenStream::Events) };
    let ticks = simulate(vec![(0, late), (1, on_time)], &tick_times(60_000));
    let (mut behind_disorder, mut n) = (0, 0);
    for (now, text) in records_of(&ticks, 0) {
        let Ok(record) = parse_valid(GenStream::Views, text) else { continue };
        let behind = now - ts(&record);
        assert!(behind <= 20_000, "{behind}");
        behind_disorder += usize::from(behind > 3000);
        n += 1;
    }
    let fraction = behind_disorder as f64 / n as f64;
    assert!((0.04..0.06).contains(&fraction), "{fraction} beyond disorder_ms");
    let mut behinds = Vec::new();
    for (now, text) in records_of(&ticks, 1) {
        let Ok(record) = parse_valid(GenStream::Events, text) else { continue };
        behinds.push(now - ts(&record));
    }
    assert!(behinds.iter().all(|&b| b <= 2000));
    let mean = behinds.iter().sum::<u64>() as f64 / behinds.len() as f64;
    assert!((mean - 1000.0).abs() < 30.0, "mean disorder {mean}: uniform in [0, 2000]");
    // Near the epoch, times saturate at 0.
    let mut generator = Generator::new(vec![(0, spec(GenStream::Lines))]);
    generator.tick(0);
    for text in &generator.tick(1000)[0].1 {
        if let Ok(record) = parse_valid(GenStream::Lines, text) {
            assert!(ts(&record) <= 1000);
        }
    }
}

#[test]
fn payments_pay_generated_orders_after_them() {
    let times = tick_times(300_000);
    let end = times[times.len() - 1];
    let orders = GeneratorSpec { rate: 100.0, ..spec(GenStream::Orders) };
    let payments = GeneratorSpec { rate: 5.0, late_fraction: 0.02, ..spec(GenStream::Payments) };
    let ticks = simulate(vec![(1, payments.clone()), (4, orders.clone())], &times);
    // Valid orders: id -> (ts, arrival).
    let mut made = HashMap::new();
    for (now, text) in records_of(&ticks, 4) {
        if let Ok(order) = parse_valid(GenStream::Orders, text) {
            made.insert(order["order_id"].as_str().unwrap().to_string(), (ts(&order), now));
        }
    }
    let mut paid = HashMap::new();
    let mut same_tick = 0;
    for (now, text) in records_of(&ticks, 1) {
        let Ok(payment) = parse_valid(GenStream::Payments, text) else { continue };
        let id = payment["order_id"].as_str().unwrap().to_string();
        let (order_ts, order_arrival) = *made.get(&id).unwrap_or_else(|| panic!("{text} pays no order"));
        let ts = ts(&payment);
        assert!(PAYMENT_DELAY_MS.contains(&(ts - order_ts)), "{text}: order at {order_ts}");
        assert!(order_arrival <= now && ts <= now, "{text}");
        assert!(now - ts <= orders.late_ms + payments.late_ms, "{text} at {now}");
        same_tick += usize::from(order_arrival == now);
        assert!(paid.insert(id, ts).is_none(), "{text}: paid twice");
    }
    // Payments of late orders come in the very tick of their order.
    assert!(same_tick > 0);
    // Of the orders old enough for their payment to have come, about 0.9 are paid.
    let old = made.iter().filter(|(_, (ts, _))| ts + 60_000 + payments.late_ms + 200 < end);
    let (n, n_paid) = old.fold((0, 0), |(n, p), (id, _)| (n + 1, p + usize::from(paid.contains_key(id))));
    let fraction = n_paid as f64 / n as f64;
    assert!(n > 20_000 && (fraction - PAYMENT_PROBABILITY).abs() < 0.01, "{n_paid} of {n} paid");
}

#[test]
fn payments_alone_pay_a_hidden_order_stream() {
    let times = tick_times(200_000);
    let ticks =
        simulate(vec![(0, GeneratorSpec { rate: 50.0, invalid_fraction: 0.0, ..spec(GenStream::Payments) })], &times);
    let mut ids = BTreeSet::new();
    let mut steady = 0;
    for (now, text) in records_of(&ticks, 0) {
        let payment = parse_valid(GenStream::Payments, text).unwrap();
        assert!(ids.insert(payment["order_id"].as_str().unwrap().to_string()), "{text}: paid twice");
        steady += usize::from(now > T0 + 100_000);
    }
    let rate = steady as f64 / ((times[times.len() - 1] - T0 - 100_000) as f64 / 1000.0);
    assert!((rate - 45.0).abs() < 2.0, "{rate} payments per second");
}

#[test]
fn a_long_pause_produces_at_most_five_seconds_worth() {
    let inputs = vec![(0, spec(GenStream::Views)), (1, spec(GenStream::Orders)), (2, spec(GenStream::Payments))];
    let mut generator = Generator::new(inputs);
    let mut now = T0;
    generator.tick(now);
    for _ in 0..600 {
        now += 100;
        generator.tick(now);
    }
    now += 3_600_000;
    let after = generator.tick(now);
    assert_eq!(after[0].1.len(), 500);
    assert_eq!(after[1].1.len(), 500);
    // The payments of the orders before the pause, and of some of those after it.
    assert!(after[2].1.len() < 6000 + 500, "{}", after[2].1.len());
    for text in &after[0].1 {
        if let Ok(view) = parse_valid(GenStream::Views, text) {
            assert!(now - ts(&view) <= 30_000);
        }
    }
    let next = generator.tick(now + 100);
    assert_eq!(next[0].1.len(), 10);
}

#[test]
fn popularity_is_skewed_and_drifts() {
    let times = tick_times(1_200_000);
    let views = GeneratorSpec { rate: 100.0, invalid_fraction: 0.0, ..spec(GenStream::Views) };
    let ticks = simulate(vec![(0, views)], &times);
    let top = |from: u64, to: u64| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut total = 0;
        for (now, text) in records_of(&ticks, 0) {
            if (T0 + from..T0 + to).contains(&now) {
                let view = parse_valid(GenStream::Views, text).unwrap();
                *counts.entry(view["product"].as_str().unwrap().to_string()).or_default() += 1;
                total += 1;
            }
        }
        let mut ranked: Vec<(usize, String)> = counts.into_iter().map(|(p, n)| (n, p)).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        (ranked[0].0 as f64 / total as f64, ranked.into_iter().take(5).map(|(_, p)| p).collect::<Vec<_>>())
    };
    let (share, first) = top(0, 180_000);
    let (_, last) = top(1_020_000, 1_200_000);
    assert!(share > 0.05, "the top product has {share} of the views");
    assert_ne!(first, last, "the top 5 changed over 20 minutes");
}
