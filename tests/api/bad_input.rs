//! Every malformed or hostile request gets a clear 4xx in the contract's
//! shape and changes no state. It counts every item of the shared table around
//! each call, so it is `#[ignore]`d: `local/integration.sh` runs it after the
//! others, alone (`--ignored`), and nothing else writes meanwhile.

use kobatela_tests::{unique, Api, MandateSetup, Reply, Table};
use reqwest::Method;
use serde_json::{json, Value};

struct Case {
    api: Api,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    status: u16,
    code: &'static str,
    /// Fields `details.fields` must name.
    fields: &'static [&'static str],
}

fn case(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<String>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        api: api.clone(),
        method,
        path: path.to_string(),
        headers: Vec::new(),
        body,
        status,
        code,
        fields: &[],
    }
}

fn json_case(
    api: &Api,
    path: &str,
    body: Value,
    status: u16,
    code: &'static str,
    fields: &'static [&'static str],
) -> Case {
    Case {
        fields,
        ..case(
            api,
            Method::POST,
            path,
            Some(body.to_string()),
            status,
            code,
        )
    }
}

fn with_key(mut c: Case, key: &str) -> Case {
    c.headers.push(("idempotency-key", key.to_string()));
    c
}

async fn run(c: &Case) -> Reply {
    let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    c.api
        .send(c.method.clone(), &c.path, &headers, c.body.clone())
        .await
}

#[tokio::test]
#[ignore = "alone: counts every item of the shared table (local/integration.sh runs it after the others)"]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "40.00").await;
    let purchase_with = |field: &str, value: Value| {
        let mut body = s.purchase("1.00");
        body[field] = value;
        body
    };
    let mandate_with = |field: &str, value: Value| {
        let mut body = json!({"sender_id": s.sender, "beneficiary_id": s.beneficiary, "total_amount": "10", "expires_at": "2099-01-01T00:00:00Z"});
        body[field] = value;
        body
    };
    let huge = format!(
        r#"{{"username":"{}","email":"a@example.com"}}"#,
        "x".repeat(1024 * 1024 + 1)
    );
    let anonymous = Api::anonymous();
    let forged = Api::with_key(Some("kob_0000000000000000000000000000000000000000".into()));

    let cases = vec![
        // Transport and shape.
        case(
            &admin,
            Method::POST,
            "/users",
            Some("{not json".into()),
            400,
            "INVALID_JSON",
        ),
        case(
            &admin,
            Method::POST,
            "/users",
            Some(String::new()),
            400,
            "INVALID_JSON",
        ),
        case(
            &admin,
            Method::POST,
            "/users",
            Some(huge),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        json_case(
            &admin,
            "/users",
            json!([1, 2]),
            422,
            "VALIDATION_ERROR",
            &["body"],
        ),
        json_case(
            &admin,
            "/users",
            json!({}),
            422,
            "VALIDATION_ERROR",
            &["username", "email"],
        ),
        json_case(
            &admin,
            "/users",
            json!({"username": 5, "email": "not-an-email", "is_active": "yes"}),
            422,
            "VALIDATION_ERROR",
            &["username", "email", "is_active"],
        ),
        json_case(
            &admin,
            "/users",
            json!({"username": "", "email": "a@example.com"}),
            422,
            "VALIDATION_ERROR",
            &["username"],
        ),
        case(
            &admin,
            Method::GET,
            "/users/abc",
            None,
            422,
            "VALIDATION_ERROR",
        ),
        case(
            &admin,
            Method::GET,
            "/users/0",
            None,
            422,
            "VALIDATION_ERROR",
        ),
        case(
            &admin,
            Method::GET,
            "/users/999999999",
            None,
            404,
            "USER_NOT_FOUND",
        ),
        case(
            &admin,
            Method::GET,
            "/no/such/route",
            None,
            404,
            "NOT_FOUND",
        ),
        case(
            &admin,
            Method::DELETE,
            "/users",
            None,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        // Keys.
        case(
            &anonymous,
            Method::POST,
            "/users",
            Some("{not json".into()),
            401,
            "UNAUTHORIZED",
        ),
        case(&forged, Method::GET, "/mandates", None, 401, "UNAUTHORIZED"),
        with_key(
            json_case(
                &forged,
                "/spend/purchases",
                s.purchase("1.00"),
                401,
                "UNAUTHORIZED",
                &[],
            ),
            "k",
        ),
        // Money.
        json_case(
            &admin,
            "/mandates",
            mandate_with("total_amount", json!("10.001")),
            422,
            "VALIDATION_ERROR",
            &["total_amount"],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("total_amount", json!(-5)),
            422,
            "VALIDATION_ERROR",
            &["total_amount"],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("total_amount", json!(0)),
            422,
            "VALIDATION_ERROR",
            &["total_amount"],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("total_amount", json!("1e30")),
            422,
            "VALIDATION_ERROR",
            &["total_amount"],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("total_amount", json!(true)),
            422,
            "VALIDATION_ERROR",
            &["total_amount"],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("currency", json!("XXX")),
            422,
            "VALIDATION_ERROR",
            &["currency"],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("expires_at", json!("tomorrow")),
            422,
            "VALIDATION_ERROR",
            &["expires_at"],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("sender_id", json!("1")),
            422,
            "VALIDATION_ERROR",
            &["sender_id"],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("beneficiary_id", json!(s.sender)),
            422,
            "VALIDATION_ERROR",
            &["beneficiary_id"],
        ),
        // Domain refusals of a mandate.
        json_case(
            &admin,
            "/mandates",
            mandate_with("expires_at", json!("2001-01-01T00:00:00Z")),
            400,
            "MANDATE_EXPIRES_IN_PAST",
            &[],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("sender_id", json!(999_999_999)),
            404,
            "USER_NOT_FOUND",
            &[],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("allowed_category_id", json!(999_999_999)),
            404,
            "CATEGORY_NOT_FOUND",
            &[],
        ),
        json_case(
            &admin,
            "/mandates",
            mandate_with("total_amount", json!("1")),
            409,
            "MANDATE_CONFLICT",
            &[],
        ),
        // Catalogue.
        json_case(
            &admin,
            "/spend/allow",
            json!({"owner_id": s.beneficiary}),
            422,
            "VALIDATION_ERROR",
            &["merchant_id", "category_id"],
        ),
        json_case(
            &admin,
            "/spend/allow",
            json!({"owner_id": s.beneficiary, "merchant_id": s.merchant, "category_id": s.category}),
            422,
            "VALIDATION_ERROR",
            &["merchant_id", "category_id"],
        ),
        json_case(
            &admin,
            "/spend/allow",
            json!({"owner_id": s.beneficiary, "merchant_id": 999_999_999}),
            404,
            "MERCHANT_NOT_FOUND",
            &[],
        ),
        json_case(
            &admin,
            "/spend/merchants",
            json!({"name": unique("m"), "category_id": 999_999_999}),
            404,
            "CATEGORY_NOT_FOUND",
            &[],
        ),
        json_case(
            &admin,
            "/spend/categories",
            json!({"code": "x".repeat(65), "label": "l"}),
            422,
            "VALIDATION_ERROR",
            &["code"],
        ),
        // Purchases: schema problems are refused before anything is read or stored.
        with_key(
            json_case(
                &admin,
                "/spend/purchases",
                purchase_with("amount", json!("1.001")),
                422,
                "VALIDATION_ERROR",
                &["amount"],
            ),
            "k1",
        ),
        with_key(
            json_case(
                &admin,
                "/spend/purchases",
                purchase_with("amount", json!("-1")),
                422,
                "VALIDATION_ERROR",
                &["amount"],
            ),
            "k2",
        ),
        with_key(
            json_case(
                &admin,
                "/spend/purchases",
                purchase_with("amount", json!(0)),
                422,
                "VALIDATION_ERROR",
                &["amount"],
            ),
            "k3",
        ),
        with_key(
            json_case(
                &admin,
                "/spend/purchases",
                json!({"sender_id": "a", "merchant_id": null, "amount": [], "currency": 5}),
                422,
                "VALIDATION_ERROR",
                &["sender_id", "merchant_id", "amount", "currency"],
            ),
            "k4",
        ),
        json_case(
            &admin,
            "/spend/purchases",
            s.purchase("1.00"),
            400,
            "IDEMPOTENCY_KEY_REQUIRED",
            &[],
        ),
    ];

    for c in &cases {
        let before = table.item_count().await;
        let reply = run(c).await;
        let what = format!(
            "{} {} → {}",
            c.method,
            c.path,
            reply.text.chars().take(300).collect::<String>()
        );
        assert_eq!(reply.status.as_u16(), c.status, "{what}");
        assert_eq!(reply.code(), c.code, "{what}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert!(reply.headers.contains_key("x-request-id"), "{what}");
        for field in c.fields {
            assert!(
                reply.body["error"]["details"]["fields"][field].is_string(),
                "{field} not named: {what}"
            );
        }
        assert_eq!(table.item_count().await, before, "state changed: {what}");
    }

    // A purchase refused by a domain rule stores only its idempotency record
    // (so that a retry gets the same answer), once.
    let key = unique("k");
    let before = table.item_count().await;
    let unknown_merchant = purchase_with("merchant_id", json!(999_999_999));
    let first = admin
        .purchase(&key, unknown_merchant.clone())
        .await
        .expect_error(404, "MERCHANT_NOT_FOUND");
    assert_eq!(table.item_count().await, before + 1);
    let again = admin.purchase(&key, unknown_merchant).await;
    assert_eq!(again.text, first.text);
    assert_eq!(table.item_count().await, before + 1);

    let mandate = admin
        .get(&format!("/mandates/{}", s.mandate))
        .await
        .expect(200)
        .body;
    assert_eq!(mandate["total_amount"], "40.00");
    assert!(table.purchases_of(s.mandate).await.is_empty());
}
