//! The crate's layering, read from its sources (ARCHITECTURE.md, "Layers"): what each
//! top-level module of `src/` may import, that no two sibling modules import each
//! other, that `serve` never names timely or differential dataflow, and that no file
//! of `src/` is over 500 lines or returns its errors as strings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import from the rest of the crate. A module not
/// listed may import anything (`lib.rs`, `main.rs`).
const MAY_IMPORT: &[(&str, &[&str])] = &[
    ("pipeline", &[]),
    ("runtime", &["pipeline"]),
    ("ingest", &["pipeline"]),
    ("checkpoint", &["pipeline"]),
    ("kafka", &["pipeline", "runtime"]),
    ("source", &["pipeline", "ingest", "kafka"]),
    ("sink", &["pipeline", "runtime", "kafka"]),
    ("job", &["pipeline", "runtime", "ingest", "checkpoint", "kafka", "source", "sink"]),
    ("config", &["job"]),
    ("replay", &["pipeline", "runtime", "ingest", "source", "job"]),
    ("serve", &["pipeline", "runtime", "ingest", "kafka", "source", "sink", "job"]),
    ("client", &[]),
];

/// Every `.rs` file under `src/`, by its module path (`["job", "manager"]`).
fn modules() -> BTreeMap<Vec<String>, String> {
    fn walk(dir: &Path, into: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, into);
            } else if path.extension().is_some_and(|e| e == "rs") {
                into.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&root).expect("under src").with_extension("");
            let module = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
            (module, std::fs::read_to_string(&path).expect("read source"))
        })
        .collect()
}

/// The code of a source file, without its comments (doc links name other modules
/// without importing them).
fn code(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file's code names: `crate::a::b`, `crate::a::{b, c}` and
/// `super::b`, each as the path of segments after `crate`.
fn named(module: &[String], source: &str) -> Vec<Vec<String>> {
    let code = code(source);
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        let base: Vec<String> = rest[..end].split("::").filter(|s| !s.is_empty()).map(str::to_string).collect();
        if rest[end..].starts_with('{') {
            let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |e| end + e)];
            for item in group.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let mut path = base.clone();
                path.push(item.split("::").next().unwrap_or(item).to_string());
                paths.push(path);
            }
        } else {
            paths.push(base);
        }
    }
    // `super::` of a top-level file can only be its own inline `mod tests`.
    let parent = &module[..module.len().saturating_sub(1)];
    let mut rest = if parent.is_empty() { "" } else { code.as_str() };
    while let Some(at) = rest.find("super::") {
        rest = &rest[at + "super::".len()..];
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end > 0 {
            let mut path = parent.to_vec();
            path.push(rest[..end].to_string());
            paths.push(path);
        }
    }
    paths
}

/// The file module a path lands in: its longest prefix that is a file.
fn file_of(path: &[String], modules: &BTreeMap<Vec<String>, String>) -> Option<Vec<String>> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|prefix| modules.contains_key(prefix))
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let modules = modules();
    let rules: BTreeMap<&str, BTreeSet<&str>> =
        MAY_IMPORT.iter().map(|(module, allowed)| (*module, allowed.iter().copied().collect())).collect();
    let mut wrong = Vec::new();
    for (module, source) in &modules {
        let Some(allowed) = rules.get(module[0].as_str()) else { continue };
        for path in named(module, source) {
            let Some(top) = path.first() else { continue };
            if top != &module[0] && !allowed.contains(top.as_str()) {
                wrong.push(format!("src/{}.rs names crate::{}", module.join("/"), path.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "imports across the layers:\n{}", wrong.join("\n"));
    let top: BTreeSet<&str> = modules.keys().map(|m| m[0].as_str()).collect();
    for module in top.into_iter().filter(|m| !["lib", "main"].contains(m)) {
        assert!(rules.contains_key(module), "src/{module} has no row in MAY_IMPORT");
    }
}

#[test]
fn no_two_modules_import_each_other() {
    let modules = modules();
    let mut imports: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, source) in &modules {
        for path in named(module, source) {
            // A module naming its own ancestors (`super::Item` of the parent file) is
            // how a file module reaches its parent's items, not a cycle between peers.
            if let Some(file) = file_of(&path, &modules).filter(|f| f != module && !module.starts_with(f)) {
                imports.entry(module.clone()).or_default().insert(file);
            }
        }
    }
    let mut cycles = Vec::new();
    for (a, targets) in &imports {
        for b in targets.iter().filter(|b| a < *b) {
            if imports.get(b).is_some_and(|back| back.contains(a)) && !b.starts_with(a) {
                cycles.push(format!("src/{}.rs <-> src/{}.rs", a.join("/"), b.join("/")));
            }
        }
    }
    assert!(cycles.is_empty(), "modules that import each other:\n{}", cycles.join("\n"));
}

#[test]
fn serve_never_names_timely_types() {
    let wrong: Vec<String> = modules()
        .into_iter()
        .filter(|(module, source)| {
            module[0] == "serve" && {
                let code = code(source);
                code.contains("timely::") || code.contains("differential_dataflow::")
            }
        })
        .map(|(module, _)| format!("src/{}.rs", module.join("/")))
        .collect();
    assert!(wrong.is_empty(), "serve files naming timely: {wrong:?}");
}

#[test]
fn the_pipeline_api_is_the_ground_floor() {
    // The test the layering rests on, stated on its own: a mutation check that the
    // scanner sees a `use crate::runtime` in a pipeline file.
    let module = vec!["pipeline".to_string(), "stream".to_string()];
    let named = named(&module, "use crate::runtime::{Runtime, worker::Worker};\n// crate::job in a comment\n");
    assert_eq!(
        named,
        vec![vec!["runtime".to_string(), "Runtime".to_string()], vec!["runtime".to_string(), "worker".to_string()]]
    );
}

/// The error type of every `Result<T, E>` a source text names, as written.
fn result_errors(code: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("Result<") {
        rest = &rest[at + "Result<".len()..];
        let (mut depth, mut comma) = (0usize, None);
        for (i, c) in rest.char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                ',' if depth == 0 && comma.is_none() => comma = Some(i),
                '>' | ')' | ']' if depth > 0 => depth -= 1,
                '>' => {
                    if let Some(comma) = comma {
                        errors.push(rest[comma + 1..i].trim().to_string());
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    errors
}

#[test]
fn errors_are_typed_and_files_are_short() {
    assert_eq!(result_errors("fn f() -> Result<Vec<(u8, String)>, String> {}"), ["String"]);
    assert_eq!(result_errors("Result<BTreeMap<String, String>, D::Error>"), ["D::Error"]);
    let mut wrong = Vec::new();
    for (module, source) in modules() {
        let file = format!("src/{}.rs", module.join("/"));
        if result_errors(&code(&source)).iter().any(|e| e == "String") {
            wrong.push(format!("{file} returns errors as strings"));
        }
        let lines = source.lines().count();
        if lines > 500 {
            wrong.push(format!("{file} has {lines} lines (at most 500)"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
