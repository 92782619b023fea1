//! `components` against union-find on seeded random edge streams (additions and
//! removals), with 1 and 2 workers, checked after every prefix of the stream.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::harness::Run;

/// A random stream of edge additions and removals over `nodes` nodes.
fn stream(seed: u64, n: usize, nodes: usize) -> Vec<(String, String, bool)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut present: Vec<(String, String)> = Vec::new();
    (0..n)
        .map(|_| {
            if !present.is_empty() && rng.random_range(0..3) == 0 {
                let (a, b) = present.swap_remove(rng.random_range(0..present.len()));
                (a, b, false)
            } else {
                let a = format!("n{:03}", rng.random_range(0..nodes));
                let b = format!("n{:03}", rng.random_range(0..nodes));
                present.push((a.clone(), b.clone()));
                (a, b, true)
            }
        })
        .collect()
}

/// Union-find over the edges present after `changes`: node -> smallest node of its
/// component.
fn reference(changes: &[(String, String, bool)]) -> BTreeMap<String, String> {
    let mut count: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (a, b, add) in changes {
        *count.entry((a.clone(), b.clone())).or_default() += if *add { 1 } else { -1 };
    }
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    fn find(parent: &mut BTreeMap<String, String>, x: &str) -> String {
        let p = parent.get(x).cloned().unwrap_or_else(|| x.to_string());
        if p == x {
            return p;
        }
        let root = find(parent, &p);
        parent.insert(x.to_string(), root.clone());
        root
    }
    for ((a, b), n) in &count {
        if *n > 0 {
            parent.entry(a.clone()).or_insert_with(|| a.clone());
            parent.entry(b.clone()).or_insert_with(|| b.clone());
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            // The smaller root wins, so each root is its component's smallest node.
            if ra < rb {
                parent.insert(rb, ra);
            } else if rb < ra {
                parent.insert(ra, rb);
            }
        }
    }
    let nodes: Vec<String> = parent.keys().cloned().collect();
    nodes.into_iter().map(|n| (n.clone(), find(&mut parent, &n))).collect()
}

/// Replays `changes` in steps of `chunk` records (each step advances the frontier, so
/// the loop re-converges incrementally after each): the sorted `components` and
/// `sizes` rows.
fn replay(changes: &[(String, String, bool)], workers: usize, chunk: usize) -> (Vec<String>, Vec<String>) {
    let lines = changes
        .iter()
        .enumerate()
        .map(|(i, (a, b, add))| {
            json!({"src": a, "dst": b, "ts": i, "op": if *add { "add" } else { "remove" }}).to_string()
        })
        .collect();
    let printed = Run::new("components").input("edges", lines).workers(workers).chunk_lines(chunk).go();
    assert_eq!(printed.rows("dead_letter"), &[] as &[Value]);
    (printed.sorted("components"), printed.sorted("sizes"))
}

#[test]
fn components_match_union_find_as_edges_come_and_go() {
    let changes = stream(7, 400, 120);
    for (workers, chunk) in [(1, 0), (2, 0), (1, 7), (2, 13)] {
        for prefix in [50, 137, 260, 400] {
            let expected = reference(&changes[..prefix]);
            let mut rows: Vec<String> =
                expected.iter().map(|(n, c)| json!({"node": n, "component": c}).to_string()).collect();
            rows.sort();
            let mut sizes: BTreeMap<&String, u64> = BTreeMap::new();
            expected.values().for_each(|c| *sizes.entry(c).or_default() += 1);
            let mut size_rows: Vec<String> =
                sizes.iter().map(|(c, n)| json!({"component": c, "size": n}).to_string()).collect();
            size_rows.sort();
            let (components, actual_sizes) = replay(&changes[..prefix], workers, chunk);
            let what = format!("after {prefix} changes, {workers} workers, steps of {chunk}");
            assert_eq!(components, rows, "components {what}");
            assert_eq!(actual_sizes, size_rows, "sizes {what}");
        }
    }
}
