//! Golden tests: every case in `tests/golden/<case>/` replays its inputs through a
//! compiled-in dataflow and must print exactly `expected.ndjson`, with 1 and 2
//! workers and with one record per batch. `case.json` names the dataflow, its params,
//! its input files and (optionally) the outputs to print and `"changes": true`.
//!
//! To re-bless after a deliberate change: `BLESS=1 cargo test --test tests golden`,
//! then review the diff of the expected files.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tidemark::replay::{Replay, replay};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("case.json").exists())
        .collect();
    cases.sort();
    cases
}

fn printed(case: &Path, workers: usize, chunk_lines: usize) -> String {
    let spec: Value = serde_json::from_slice(&std::fs::read(case.join("case.json")).expect("read case.json"))
        .expect("case.json is JSON");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().map(|s| s.as_str().expect("string").to_string()).collect()).unwrap_or_default()
    };
    let replay_spec = Replay {
        dataflow: spec["dataflow"].as_str().expect("dataflow").to_string(),
        inputs: spec["inputs"]
            .as_object()
            .expect("inputs")
            .iter()
            .map(|(name, file)| (name.clone(), case.join(file.as_str().expect("file name"))))
            .collect(),
        params: spec["params"]
            .as_object()
            .map_or_else(Vec::new, |p| p.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()),
        outputs: strings(&spec["outputs"]),
        changes: spec["changes"].as_bool().unwrap_or(false),
        workers,
        chunk_lines,
    };
    let mut out = Vec::new();
    replay(&crate::dataflows::registry(), &replay_spec, &mut out)
        .unwrap_or_else(|e| panic!("{}: replay failed: {e}", case.display()));
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn golden_outputs() {
    let cases = cases();
    assert!(cases.len() >= 8, "golden cases missing");
    let bless = std::env::var_os("BLESS").is_some();
    for case in cases {
        let expected_path = case.join("expected.ndjson");
        let actual = printed(&case, 1, 0);
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        assert_eq!(actual, expected, "{}: output differs from expected.ndjson (BLESS=1 to update)", case.display());
        let changes = std::fs::read_to_string(case.join("case.json")).expect("case").contains("\"changes\": true");
        assert_eq!(printed(&case, 2, 0), expected, "{}: 2 workers differ", case.display());
        if !changes {
            // Batching changes the times of changes, never the final rows.
            assert_eq!(printed(&case, 1, 1), expected, "{}: one record per batch differs", case.display());
            assert_eq!(printed(&case, 2, 1), expected, "{}: one record per batch, 2 workers, differs", case.display());
        }
    }
}

/// `Record::FIELDS` is written by hand; it must name exactly the fields serde reads,
/// for every input of every compiled-in dataflow.
#[test]
fn declared_record_fields_are_the_struct_fields() {
    let mut wrong = Vec::new();
    for dataflow in crate::dataflows::registry().iter() {
        for input in &dataflow.description().inputs {
            let mut declared: Vec<&str> = input.fields.iter().map(|(name, _)| *name).collect();
            let mut actual: Vec<&str> = input.struct_fields.map(<[&str]>::to_vec).unwrap_or_default();
            declared.sort_unstable();
            actual.sort_unstable();
            if declared != actual {
                wrong.push(format!("{}.{}: declared {declared:?}, struct {actual:?}", dataflow.name(), input.name));
            }
        }
    }
    assert!(wrong.is_empty(), "Record::FIELDS differs from the record's fields:\n{}", wrong.join("\n"));
}
