use super::*;
use axum::{body::Body, http::Request};
use std::{collections::BTreeSet, path::PathBuf};
use tower::ServiceExt;

const BUCKET: &str = "https://proofs-x.s3.eu-west-3.amazonaws.com";

fn app() -> Router {
    shared::http::app(router(Policy::for_image_origin(BUCKET)))
}

async fn get(path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    request("GET", path, headers).await
}

async fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = app()
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[track_caller]
fn assert_secured(headers: &HeaderMap) {
    let csp = header(headers, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(csp.contains(&format!("img-src 'self' {BUCKET}")), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(header(headers, "x-frame-options"), "DENY");
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "referrer-policy"), "no-referrer");
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "no CORS"
    );
}

#[tokio::test]
async fn the_page_is_html_not_cached_and_locked_down() {
    let (status, headers, body) = get("/console", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    assert_secured(&headers);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    assert_eq!(html.as_bytes(), ASSETS[0].bytes);
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_and_headers() {
    for asset in ASSETS {
        let (status, headers, body) = get(&format!("/console/{}", asset.path), &[]).await;
        assert_eq!(status, StatusCode::OK, "{}", asset.path);
        assert_eq!(
            header(&headers, "content-type"),
            content_type(asset.path).unwrap()
        );
        assert_eq!(
            header(&headers, "cache-control"),
            "no-cache",
            "{}",
            asset.path
        );
        assert_secured(&headers);
        assert_eq!(body, asset.bytes, "{}", asset.path);
    }
    let (_, headers, _) = get("/console/app.js", &[]).await;
    assert_eq!(
        header(&headers, "content-type"),
        "text/javascript; charset=utf-8"
    );
    let (_, headers, _) = get("/console/console.css", &[]).await;
    assert_eq!(header(&headers, "content-type"), "text/css; charset=utf-8");
}

#[tokio::test]
async fn an_unchanged_file_is_a_bodiless_304() {
    let (_, headers, _) = get("/console/app.js", &[]).await;
    let tag = header(&headers, "etag").to_string();
    assert!(tag.starts_with('"') && tag.len() == 34, "{tag}");
    let (status, headers, body) = get("/console/app.js", &[("if-none-match", &tag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "etag"), tag);
    assert_secured(&headers);
    // Another file's tag is not this one's.
    let (status, _, _) = get("/console", &[("if-none-match", &tag)]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_files_are_the_apis_json_404() {
    for path in [
        "/console/nope.js",
        "/console/../Cargo.toml",
        "/console/screens",
        "/console/%2e%2e/src/lib.rs",
    ] {
        let (status, headers, body) = get(path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(header(&headers, "content-type"), "application/json");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}");
        assert!(body["error"]["message"].as_str().is_some());
    }
    let (status, headers, _) = get("/console/nope.js", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_secured(&headers);
    // A write is the contract's 405, not a file.
    let (status, _, body) = request("POST", "/console", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
}

fn assets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

fn files_under(dir: &std::path::Path, prefix: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            files_under(&entry.path(), &format!("{name}/"), out);
        } else {
            out.insert(name);
        }
    }
}

/// A file added to `assets/` but not to the table (or the reverse) fails.
#[test]
fn the_table_is_the_assets_folder() {
    let mut on_disk = BTreeSet::new();
    files_under(&assets_dir(), "", &mut on_disk);
    let table: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
    assert_eq!(table.len(), ASSETS.len(), "a file is listed twice");
    assert_eq!(on_disk, table);
    assert_eq!(ASSETS[0].path, "index.html");
    for asset in ASSETS {
        assert!(content_type(asset.path).is_some(), "{}", asset.path);
    }
}

fn text(asset: &Asset) -> &'static str {
    std::str::from_utf8(asset.bytes).unwrap_or_else(|_| panic!("{} is not UTF-8", asset.path))
}

/// What the CSP forbids is not in the files either, so the policy costs
/// nothing: no inline script body, no style attribute or element, no on*
/// handler attribute, no HTML built from strings, no eval.
#[test]
fn no_asset_needs_unsafe_inline() {
    let handler = |t: &str| {
        t.match_indices(" on").any(|(i, _)| {
            let rest = &t[i + 3..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            !name.is_empty() && rest[name.len()..].trim_start().starts_with('=')
        })
    };
    for asset in ASSETS {
        let t = text(asset);
        let lower = t.to_ascii_lowercase();
        let path = asset.path;
        assert!(!lower.contains("style="), "{path}: a style attribute");
        assert!(!lower.contains("<style"), "{path}: a style element");
        if path.ends_with(".html") || path.ends_with(".svg") {
            assert!(!handler(&lower), "{path}: an on* handler attribute");
            for (i, _) in lower.match_indices("<script") {
                let tag_end = i + lower[i..].find('>').unwrap();
                let tag = &lower[i..tag_end];
                assert!(
                    tag.contains(" src=\"/console/"),
                    "{path}: inline script {tag}"
                );
                assert!(
                    lower[tag_end + 1..].starts_with("</script>"),
                    "{path}: a script with a body"
                );
            }
        }
        if path.ends_with(".js") {
            for banned in [
                "innerhtml",
                "outerhtml",
                "insertadjacenthtml",
                "document.write",
                "eval(",
                "new function",
                ".style",
                "localstorage",
                "console.log",
            ] {
                assert!(!lower.contains(banned), "{path} uses {banned}");
            }
        }
    }
    // The handler check can fail.
    assert!(handler(r#"<a href="x" onclick="go()">"#));
}

/// Every module the page imports is a served file, so a typo is caught
/// here rather than as a blank page.
#[test]
fn every_import_and_link_resolves_to_an_asset() {
    let served: BTreeSet<&str> = ASSETS.iter().map(|a| a.path).collect();
    for asset in ASSETS {
        let t = text(asset);
        let dir = asset.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        for (i, _) in t.match_indices(" from '") {
            let target = &t[i + 7..];
            let target = &target[..target.find('\'').unwrap()];
            let mut parts: Vec<&str> = if dir.is_empty() {
                vec![]
            } else {
                dir.split('/').collect()
            };
            for piece in target.split('/') {
                match piece {
                    "." => {}
                    ".." => {
                        parts.pop().expect("import above the assets folder");
                    }
                    other => parts.push(other),
                }
            }
            let resolved = parts.join("/");
            assert!(
                served.contains(resolved.as_str()),
                "{} imports {target} ({resolved}), not served",
                asset.path
            );
        }
        for (i, _) in t.match_indices("=\"/console/") {
            let target = &t[i + 11..];
            let target = &target[..target.find('"').unwrap()];
            assert!(served.contains(target), "{} links {target}", asset.path);
        }
    }
}
