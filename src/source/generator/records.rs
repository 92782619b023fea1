//! The records the generator writes, one struct per stream with its fields in the
//! order they are written (see [`GenStream::record_fields`]), and their encoding as JSON
//! text, malformed in one of several ways for an `invalid_fraction` of them.
//!
//! [`GenStream::record_fields`]: super::GenStream::record_fields

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Serialize)]
pub(super) struct ViewRecord<'a> {
    pub(super) product: &'a str,
    pub(super) category: &'a str,
    pub(super) user: &'a str,
    pub(super) ts: u64,
}

#[derive(Serialize)]
pub(super) struct OrderRecord<'a> {
    pub(super) order_id: &'a str,
    pub(super) category: &'a str,
    pub(super) amount: f64,
    pub(super) ts: u64,
}

#[derive(Serialize)]
pub(super) struct PaymentRecord<'a> {
    pub(super) order_id: &'a str,
    pub(super) ts: u64,
}

#[derive(Serialize)]
pub(super) struct EventRecord<'a> {
    pub(super) key: &'a str,
    pub(super) ts: u64,
    pub(super) value: f64,
}

#[derive(Serialize)]
pub(super) struct LineRecord<'a> {
    pub(super) text: &'a str,
    pub(super) ts: u64,
}

/// The `order_id` of order number `number`.
pub(super) fn order_id(number: u64) -> String {
    format!("o-{number}")
}

/// The JSON text of `record`, malformed in one of several ways when `invalid`.
pub(super) fn encode<R: Serialize>(rng: &mut ChaCha8Rng, record: &R, invalid: bool) -> String {
    let text = serde_json::to_string(record).expect("records serialize");
    if !invalid {
        return text;
    }
    let Ok(Value::Object(mut map)) = serde_json::to_value(record) else { unreachable!("records are objects") };
    match rng.random_range(0..6) {
        // Cut short: a proper prefix of an object is never JSON.
        0 => {
            let mut cut = rng.random_range(1..text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text[..cut].to_string()
        }
        // Comma-separated values instead of JSON (two or more values: never one JSON value).
        1 => map
            .values()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        // A missing field.
        2 => {
            let field = random_key(rng, &map, |_| true);
            map.remove(&field);
            Value::Object(map).to_string()
        }
        // A string where a number belongs.
        3 => {
            let field = random_key(rng, &map, Value::is_number);
            let number = map[&field].to_string();
            map.insert(field, Value::String(number));
            Value::Object(map).to_string()
        }
        // A number where a string belongs.
        4 => {
            let field = random_key(rng, &map, Value::is_string);
            map.insert(field, Value::from(rng.random_range(0..1000)));
            Value::Object(map).to_string()
        }
        // A negative event time.
        _ => {
            let ts = map["ts"].as_u64().unwrap_or(0).max(1);
            map.insert("ts".to_string(), Value::from(-(ts.min(i64::MAX as u64) as i64)));
            Value::Object(map).to_string()
        }
    }
}

/// A key of `map` whose value satisfies `wanted` (every record has a string and a number).
fn random_key(rng: &mut ChaCha8Rng, map: &Map<String, Value>, wanted: impl Fn(&Value) -> bool) -> String {
    let keys: Vec<&String> = map.iter().filter(|(_, v)| wanted(v)).map(|(k, _)| k).collect();
    keys[rng.random_range(0..keys.len())].clone()
}
