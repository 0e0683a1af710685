//! `GET /openapi.json`: served without a key, equal to the committed
//! `openapi.json`, and in step with the running routers: every documented
//! operation exists (no route-level 404), and every other method on a
//! documented path is 405. (Schemathesis, `local/schemathesis.sh`, then
//! checks the answers themselves against the document.)

use kobatela_tests::Api;
use reqwest::Method;
use serde_json::Value;
use std::path::Path;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[tokio::test]
async fn the_served_document_is_the_committed_one_and_matches_the_routes() {
    let reply = Api::anonymous().get("/openapi.json").await.expect(200);
    assert_eq!(
        reply.headers["content-type"], "application/json",
        "content type"
    );
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.json"))
            .expect("openapi.json is committed at the repo root");
    assert!(
        reply.text == committed,
        "the served document differs from openapi.json: run `make openapi`"
    );

    // Probed with a key that exists nowhere: a route answers 401 (or, when
    // public, its own answer), an unknown route 404, a wrong method 405.
    let api = Api::with_key(Some("kob_no_such_key".into()));
    let paths = reply.body["paths"].as_object().expect("paths");
    assert!(paths.len() >= 30, "{} paths", paths.len());
    for (path, item) in paths {
        let concrete = path.replace("{id}", "1").replace("{entity}", "user");
        for method in METHODS {
            let documented = item.get(method.to_lowercase()).is_some();
            let body = (method != "GET" && method != "DELETE").then(|| "{}".to_string());
            let answer = api
                .send(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &concrete,
                    &[],
                    body,
                )
                .await;
            let status = answer.status.as_u16();
            if documented {
                assert!(
                    !(status == 404 && answer.body["error"]["code"] == "NOT_FOUND")
                        && status != 405,
                    "{method} {path} is documented but the server has no such route ({status})"
                );
                let public = item[method.to_lowercase()]["security"]
                    .as_array()
                    .is_some_and(Vec::is_empty);
                if !public {
                    assert_eq!(status, 401, "{method} {path} without a valid key");
                }
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is not documented but answers {status}: {}",
                    answer.text
                );
                assert_eq!(
                    answer.body["error"]["code"],
                    Value::from("METHOD_NOT_ALLOWED")
                );
            }
        }
    }
}
