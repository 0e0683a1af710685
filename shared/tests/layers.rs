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
