//! `GET /health`: liveness, no auth, no I/O; and `GET /openapi.json`: the
//! API document, no auth, served as committed (`openapi.json` at the repo
//! root, which the `openapi` tool writes from every function's routes and
//! whose test fails when it is not current).

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use shared::api_doc::{self, Route};

/// The API document as served: the committed `openapi.json`.
pub const DOCUMENT: &str = include_str!("../../../openapi.json");

pub fn router() -> Router {
    api_doc::router(routes(), ())
}

/// The answer of `GET /health`.
#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<Route<()>> {
    vec![
        Route::get("/health", "Liveness", health)
            .public()
            .answer_schema(
                200,
                api_doc::object(&[
                    ("status", api_doc::one_of_strings(&["ok"]).into()),
                    ("version", api_doc::string_schema(None, None).into()),
                ]),
                "The service is up.",
            ),
        Route::get(
            "/openapi.json",
            "This document (OpenAPI 3.1)",
            serve_document,
        )
        .public()
        .answer_schema(
            200,
            utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Object),
            "The API document.",
        ),
    ]
}

async fn serve_document() -> Response {
    let mut response = (StatusCode::OK, DOCUMENT).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::{collections::BTreeSet, path::PathBuf};

    fn repo_file(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(name)
    }

    fn parsed() -> Value {
        serde_json::from_str(DOCUMENT).expect("the document is JSON")
    }

    #[test]
    fn is_openapi_3_1_with_the_bearer_scheme() {
        let doc = parsed();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let codes: BTreeSet<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]
            ["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let all: BTreeSet<&str> = shared::domain::error::ErrorCode::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        assert_eq!(codes, all);
    }

    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = parsed();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {target}"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{target} is not defined"
            );
        }
    }

    #[test]
    fn auth_idempotency_and_errors_where_the_contract_says() {
        let doc = parsed();
        // The webhook is signed by the PSP, not authenticated by an API key.
        let public = ["/health", "/openapi.json", "/psp/webhook"];
        let money_moving = [
            "/spend/purchases",
            "/spend",
            "/transactions",
            "/escrows/{id}/deposit",
        ];
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
                assert_eq!(secured, !public.contains(&path.as_str()), "{method} {path}");
                if secured {
                    for status in ["401", "403", "503"] {
                        assert!(
                            op["responses"].get(status).is_some(),
                            "{method} {path} {status}"
                        );
                    }
                    assert!(op["responses"]["503"]["headers"]
                        .get("Retry-After")
                        .is_some());
                }
                let idempotent = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
                let moves_money = method == "post" && money_moving.contains(&path.as_str());
                assert_eq!(idempotent, moves_money, "{method} {path}");
                let success = op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|s| s.starts_with('2'));
                assert!(success, "{method} {path} has no success answer");
            }
        }
    }

    /// The HttpApi paths `template.yaml` sends to a function of the API.
    /// The console's are left out: it serves a page for people, not the API
    /// the document describes.
    fn template_paths() -> Vec<String> {
        let text = std::fs::read_to_string(repo_file("template.yaml")).unwrap();
        let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let mut paths = Vec::new();
        for (_, resource) in template["Resources"].as_mapping().unwrap() {
            if resource["Metadata"]["BuildProperties"]["Binary"].as_str() == Some("console") {
                continue;
            }
            let Some(events) = resource["Properties"]["Events"].as_mapping() else {
                continue;
            };
            for (_, event) in events {
                if event["Type"].as_str() == Some("HttpApi") {
                    if let Some(path) = event["Properties"]["Path"].as_str() {
                        paths.push(path.to_string());
                    }
                }
            }
        }
        paths
    }

    fn routed_by(template_path: &str, path: &str) -> bool {
        match template_path.strip_suffix("/{proxy+}") {
            Some(prefix) => path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')),
            None => template_path == path,
        }
    }

    /// Every documented path reaches a function through the template, and
    /// every route of the template has documented paths: a new function or
    /// route in the template without its `routes()` entry fails here.
    #[test]
    fn the_document_and_the_template_have_the_same_routes() {
        let doc = parsed();
        let documented: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        let template = template_paths();
        assert!(template.len() > 10);
        assert!(
            documented.iter().all(|p| !p.starts_with("/console")),
            "the console is not part of the API document"
        );
        for path in &documented {
            assert!(
                template.iter().any(|t| routed_by(t, path)),
                "{path} is documented but no template route sends it to a function"
            );
        }
        for t in &template {
            assert!(
                documented.iter().any(|p| routed_by(t, p)),
                "the template routes {t} but the document has no path under it"
            );
        }
    }
}
