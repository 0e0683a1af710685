//! The domain is the ground floor: no file under `src/domain/` may import
//! a module above it (`api_doc`, `store`, `http`, `config`, … — anything of
//! `crate::` that is not `crate::domain`), climb out of it with `super::`,
//! or name an AWS, Lambda or HTTP crate. Schemas of domain types live with
//! the document (`api_doc`), errors' HTTP shape with `error`.

use std::path::{Path, PathBuf};

/// Crates the domain must not name: the cloud, the runtime, the web.
const OUTSIDE_CRATES: [&str; 9] = [
    "aws_config",
    "aws_sdk_",
    "aws_smithy",
    "aws_lambda_events",
    "lambda_http",
    "lambda_runtime",
    "axum",
    "reqwest",
    "tokio",
];

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// How many `super::` a file may chain before it leaves the domain: a file
/// `domain/a.rs` is module `domain::a` (one), `domain/x/b.rs` is
/// `domain::x::b` (two); a `mod.rs` is its folder's module (one less).
fn supers_allowed(relative: &Path) -> usize {
    let depth = relative.components().count();
    if relative.file_name().is_some_and(|n| n == "mod.rs") {
        depth - 1
    } else {
        depth
    }
}

/// The upward imports in `text` (one line each), for a file `relative` to
/// `src/domain/`.
fn upward_imports(relative: &Path, text: &str) -> Vec<String> {
    let allowed = supers_allowed(relative);
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            // `$crate::` (a macro) is the same crate's root, as named.
            if !after.starts_with("domain") {
                found.push(format!("{}:{}: {}", relative.display(), n + 1, line.trim()));
            }
            rest = after;
        }
        let supers = code.matches("super::").count();
        if supers > allowed && code.contains(&"super::".repeat(allowed + 1)) {
            found.push(format!("{}:{}: {}", relative.display(), n + 1, line.trim()));
        }
        for outside in OUTSIDE_CRATES {
            let named = code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'));
            if named
                .into_iter()
                .any(|word| word.starts_with(outside) && !word.starts_with("crate::"))
            {
                found.push(format!("{}:{}: {}", relative.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_domain_imports_nothing_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "the domain's files: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a readable file");
        found.extend(upward_imports(file.strip_prefix(&root).unwrap(), &text));
    }
    assert!(
        found.is_empty(),
        "the domain imports from above it:\n{}",
        found.join("\n")
    );
}

#[test]
fn upward_imports_are_found() {
    let file = Path::new("escrow.rs");
    assert!(upward_imports(file, "use crate::domain::money::Money;").is_empty());
    assert!(upward_imports(file, "use super::money::Money;").is_empty());
    assert!(upward_imports(file, "// crate::api_doc is not code").is_empty());
    for bad in [
        "use crate::api_doc::id_schema;",
        "        crate::store::keys::escrow(id)",
        "use super::super::config::Config;",
        "use aws_sdk_dynamodb::types::AttributeValue;",
        "async fn f() { tokio::time::sleep(d).await }",
        "use axum::http::StatusCode;",
    ] {
        assert_eq!(upward_imports(file, bad).len(), 1, "{bad}");
    }
    // A file one folder down may climb one more, a mod.rs one less.
    let nested = Path::new("exif/builder.rs");
    assert!(upward_imports(nested, "use super::super::time::Timestamp;").is_empty());
    assert_eq!(
        upward_imports(nested, "use super::super::super::store::Store;").len(),
        1
    );
    let root_mod = Path::new("mod.rs");
    assert_eq!(
        upward_imports(root_mod, "use super::store::Store;").len(),
        1
    );
    assert!(upward_imports(root_mod, "pub mod money;").is_empty());
}

// ---------------------------------------------------------------------------
// No circles. The drawn structure (docs/architecture.md, "Floors") is a graph
// whose nodes are the files of `src/` and whose edges are the modules a file
// names: its `use` lines (braces expanded) and every `crate::…` or `super::…`
// path in its code, each resolved to the file of the deepest module it names
// (a folder's module is its `mod.rs`; `x.rs` beside a folder `x/` is that
// folder's module). The rule:
//
// - No circle between files, of any length.
// - A parent's edges down to its own parts are not counted: a `mod.rs` (or
//   `lib.rs`, or `x.rs` of a folder `x/`) declares, re-exports and uses the
//   files directly inside it, which is what a folder is (`store/mod.rs`
//   declares `Store`, which every file of the store extends, and holds two
//   of their caches). A part's edge up to its parent counts, and so does
//   every edge between siblings, cousins and floors.
// - An aggregate's folder (`domain/escrow/`, `store/escrow/`) is built bottom
//   up: no part names its folder's `mod.rs` (which re-exports the parts), so
//   `mod.rs` is on top and a circle through a re-export cannot hide.
// - Test modules (`#[cfg(test)] mod tests`, at the end of a file) are not part
//   of the structure. Method calls (`store.purchase(…)`) are not paths and
//   are not seen: the graph is of what a file names.

use std::collections::{BTreeMap, BTreeSet};

/// The module path of a file relative to `src/` (`store/escrow/mod.rs` →
/// `["store", "escrow"]`, `lib.rs` → `[]`).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && !(parts.is_empty() && stem == "lib") {
        parts.push(stem.to_owned());
    }
    parts
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e` (`self` in braces is
/// the prefix itself; `as` renames and globs are dropped).
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree
        .replace(" as ", "@")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let Some(open) = tree.find('{') else {
        let path = tree.split('@').next().unwrap_or_default();
        return vec![path.trim_end_matches("::*").to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut out = Vec::new();
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        for path in expand_use(part) {
            if path == "self" || path == "*" {
                out.push(prefix.trim_end_matches("::").to_owned());
            } else {
                out.push(format!("{prefix}{path}"));
            }
        }
    }
    out
}

/// The absolute module path a path names, from the module `here` of a file
/// (`is_face`: a `mod.rs`, `lib.rs` or a folder's `x.rs`, whose `self::` and
/// bare child names are its own children). `None`: another crate.
fn absolute(path: &str, here: &[String], children: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segments.first().copied() {
        Some("crate") | Some("$crate") => {
            segments.remove(0);
            Vec::new()
        }
        Some("super") => {
            let mut base = here.to_vec();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
            base
        }
        Some("self") => {
            segments.remove(0);
            here.to_vec()
        }
        Some(first) if children.contains(first) => here.to_vec(),
        _ => return None,
    };
    base.extend(segments.into_iter().map(str::to_owned));
    Some(base)
}

/// Every module path `text` names, from the file whose module is `here`.
fn named_modules(text: &str, here: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        code.push_str(line.split("//").next().unwrap_or_default());
        code.push('\n');
    }
    let mut found = Vec::new();
    // `use` statements, which may span lines and name bare child modules;
    // what is left is code.
    let mut other = String::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let after = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            other.push_str(&rest[..at + 4]);
            rest = after;
            continue;
        }
        other.push_str(&rest[..at]);
        let end = after.find(';').unwrap_or(after.len());
        for path in expand_use(&after[..end]) {
            found.extend(absolute(&path, here, children));
        }
        rest = &after[end..];
    }
    other.push_str(rest);
    // Paths in code: `crate::a::b`, `super::x::y`.
    for start in ["crate::", "super::"] {
        let mut rest = other.as_str();
        while let Some(at) = rest.find(start) {
            let prior = rest[..at].chars().last();
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if prior.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':')) {
                found.extend(absolute(&tail[..len], here, children));
            }
            rest = &tail[start.len()..];
        }
    }
    found
}

/// The file-to-file graph of `src/` under the rule above.
fn import_graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|f| {
            let relative = f.strip_prefix(root).unwrap();
            (module_of(relative), relative.display().to_string())
        })
        .collect();
    let mut graph = BTreeMap::new();
    for (here, file) in &modules {
        let children: BTreeSet<String> = modules
            .keys()
            .filter(|m| m.len() == here.len() + 1 && m.starts_with(here))
            .map(|m| m[here.len()].clone())
            .collect();
        let text = std::fs::read_to_string(root.join(file)).expect("a readable file");
        let mut edges = BTreeSet::new();
        for named in named_modules(&text, here, &children) {
            // The deepest module the path names.
            let Some(target) = (0..=named.len())
                .rev()
                .find_map(|n| modules.get_key_value(&named[..n]))
            else {
                continue;
            };
            let (module, target) = target;
            // A parent declaring, re-exporting or using its own parts.
            let down_to_own_part = module.len() == here.len() + 1 && module.starts_with(here);
            if module != here && !down_to_own_part {
                edges.insert(target.clone());
            }
        }
        graph.insert(file.clone(), edges);
    }
    graph
}

/// The circles of `graph`, each as the files along it (first = last).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            found.push(circle);
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done, found);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn no_file_imports_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&root);
    assert!(graph.len() > 60, "the crate's files: {:?}", graph.keys());
    let found = circles(&graph);
    assert!(
        found.is_empty(),
        "files of shared/src import each other in a circle:\n{}",
        found
            .iter()
            .map(|c| c.join(" → "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The folders whose parts must not name their `mod.rs`.
const AGGREGATE_FOLDERS: [&str; 2] = ["domain/escrow", "store/escrow"];

#[test]
fn aggregate_folders_are_built_bottom_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&root);
    let mut found = Vec::new();
    for folder in AGGREGATE_FOLDERS {
        let face = format!("{folder}/mod.rs");
        assert!(graph.contains_key(&face), "{face} exists");
        for (file, edges) in &graph {
            if file.starts_with(&format!("{folder}/")) && *file != face && edges.contains(&face) {
                found.push(format!("{file} names {face}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a part names its folder:\n{}",
        found.join("\n")
    );
}

#[test]
fn circles_are_found() {
    let none = BTreeSet::new();
    let here = vec!["store".to_owned(), "payments".to_owned()];
    let named = named_modules(
        "use super::{\n    escrow::{self, payee_of as payee},\n    Store,\n};\nfn f() { crate::domain::money::Money::ZERO; }\n// crate::api_doc\n#[cfg(test)]\nmod tests {\n    use crate::http::x;\n}\n",
        &here,
        &none,
    );
    let named: Vec<String> = named.iter().map(|m| m.join("::")).collect();
    assert_eq!(
        named,
        [
            "store::escrow",
            "store::escrow::payee_of",
            "store::Store",
            "domain::money::Money::ZERO"
        ]
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a.rs", vec!["b.rs"]),
        ("b.rs", vec!["c.rs"]),
        ("c.rs", vec!["a.rs"]),
        ("d.rs", vec!["a.rs"]),
    ]
    .into_iter()
    .map(|(f, to)| (f.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(circles(&graph), [["a.rs", "b.rs", "c.rs", "a.rs"]]);
    let mut dag = graph.clone();
    dag.insert("c.rs".to_owned(), BTreeSet::new());
    assert!(circles(&dag).is_empty());
}
