//! Mandates and purchases end to end, over HTTP, as a client would: the happy
//! path, risk R1 (a mandate is spent only by its own sender), every refusal
//! leaving the money and the records as they were, idempotency, and scopes.

use kobatela_tests::{
    cents_of, create_user, mandate_balance as balance, unique, user_key, Api, MandateSetup, Table,
};
use serde_json::json;

#[tokio::test]
async fn purchase_debits_the_mandate_and_consumes_it_at_zero() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "100.00").await;

    let first = admin
        .purchase(&unique("k"), s.purchase("60.25"))
        .await
        .expect(201);
    assert_eq!(first.body["amount"], "60.25");
    assert_eq!(first.body["mandate_id"], s.mandate);
    assert_eq!(first.body["sender_id"], s.sender);
    assert_eq!(first.body["beneficiary_id"], s.beneficiary);
    assert_eq!(first.body["category_id"], s.category);
    assert_eq!(first.body["status"], "COMPLETED");
    assert_eq!(
        balance(&admin, s.mandate).await,
        ("39.75".into(), "60.25".into(), "ACTIVE".into())
    );

    let read = admin
        .get(&format!("/spend/purchases/{}", first.id()))
        .await
        .expect(200);
    assert_eq!(read.body, first.body);

    admin
        .purchase(&unique("k"), s.purchase("39.75"))
        .await
        .expect(201);
    assert_eq!(
        balance(&admin, s.mandate).await,
        ("0.00".into(), "100.00".into(), "CONSUMED".into())
    );

    let purchases = table.purchases_of(s.mandate).await;
    assert_eq!(purchases.len(), 2);
    assert_eq!(cents_of(&purchases), 10_000);
    assert_eq!(
        table.audit_actions("USAGE_MANDATE", s.mandate).await,
        [
            "USAGE_MANDATE_CREATED",
            "USAGE_MANDATE_DEBITED",
            "USAGE_MANDATE_DEBITED",
            "USAGE_MANDATE_CONSUMED"
        ]
    );
    // Consumed: nothing more can be spent, and a new mandate may be opened.
    admin
        .purchase(&unique("k"), s.purchase("0.01"))
        .await
        .expect_error(403, "MANDATE_REQUIRED");
    admin
        .post(
            "/mandates",
            json!({"sender_id": s.sender, "beneficiary_id": s.beneficiary, "total_amount": 5, "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await
        .expect(201);
}

#[tokio::test]
async fn r1_a_mandate_is_never_spent_for_another_sender() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "50.00").await;
    let other_sender = create_user(&admin, "other-sender").await;

    // The purchase names sender B: A's mandate is not B's.
    let mut body = s.purchase("10.00");
    body["sender_id"] = json!(other_sender);
    admin
        .purchase(&unique("k"), body)
        .await
        .expect_error(403, "MANDATE_REQUIRED");

    // The original body shape: only the beneficiary, as `sender_id`.
    let old_shape = json!({"sender_id": s.beneficiary, "merchant_id": s.merchant, "amount": "10.00", "currency": "USD"});
    admin
        .purchase(&unique("k"), old_shape)
        .await
        .expect_error(403, "MANDATE_REQUIRED");

    // The beneficiary's own key cannot spend it under another sender either.
    let beneficiary = user_key(&admin, s.beneficiary).await;
    let mut body = s.purchase("10.00");
    body["sender_id"] = json!(other_sender);
    beneficiary
        .purchase(&unique("k"), body)
        .await
        .expect_error(403, "MANDATE_REQUIRED");

    assert_eq!(
        balance(&admin, s.mandate).await,
        ("50.00".into(), "0.00".into(), "ACTIVE".into())
    );
    assert!(table.purchases_of(s.mandate).await.is_empty());
    assert_eq!(
        table.audit_actions("USAGE_MANDATE", s.mandate).await,
        ["USAGE_MANDATE_CREATED"]
    );

    // With both parties right, the beneficiary spends it.
    beneficiary
        .purchase(&unique("k"), s.purchase("10.00"))
        .await
        .expect(201);
    assert_eq!(balance(&admin, s.mandate).await.0, "40.00");
}

/// Each refusal: the right code, and the mandate, its purchases and its
/// audit trail exactly as before.
#[tokio::test]
async fn every_refusal_changes_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "20.00").await;

    // Another category with a certified merchant, and a merchant of the
    // mandate's category that the beneficiary is not allowed.
    let other_category = admin
        .post(
            "/spend/categories",
            json!({"code": unique("CAT"), "label": "Food"}),
        )
        .await
        .expect(201)
        .id();
    let certified_elsewhere = admin
        .post(
            "/spend/merchants",
            json!({"name": unique("m"), "category_id": other_category, "is_certified": true}),
        )
        .await
        .expect(201)
        .id();
    let not_allowed = admin
        .post(
            "/spend/merchants",
            json!({"name": unique("m"), "category_id": s.category}),
        )
        .await
        .expect(201)
        .id();
    let merchant_only = MandateSetup::with_terms(
        &admin,
        "20.00",
        json!({"allowed_merchant_id": certified_elsewhere}),
    )
    .await;
    let category_only = MandateSetup::with_terms(
        &admin,
        "20.00",
        json!({"allowed_category_id": other_category}),
    )
    .await;

    let mut unknown_merchant = s.purchase("1.00");
    unknown_merchant["merchant_id"] = json!(9_000_000_000u64);
    let mut wrong_category = s.purchase("1.00");
    wrong_category["category_id"] = json!(other_category);
    let mut other_currency = s.purchase("1.00");
    other_currency["currency"] = json!("EUR");
    let mut not_allowed_merchant = s.purchase("1.00");
    not_allowed_merchant["merchant_id"] = json!(not_allowed);

    let cases = [
        (&s, unknown_merchant, 404, "MERCHANT_NOT_FOUND"),
        (&s, wrong_category, 422, "CATEGORY_MISMATCH"),
        (&s, other_currency, 403, "MANDATE_REQUIRED"),
        (
            &merchant_only,
            merchant_only.purchase("1.00"),
            403,
            "MANDATE_MERCHANT_FORBIDDEN",
        ),
        (
            &category_only,
            category_only.purchase("1.00"),
            403,
            "MANDATE_CATEGORY_FORBIDDEN",
        ),
        (&s, s.purchase("20.01"), 403, "MANDATE_BALANCE_EXCEEDED"),
        (&s, not_allowed_merchant, 403, "UNAUTHORIZED_USAGE"),
    ];
    for (setup, body, status, code) in cases {
        let before = balance(&admin, setup.mandate).await;
        let audit_before = table.audit_actions("USAGE_MANDATE", setup.mandate).await;
        let key = unique("k");
        let reply = admin
            .purchase(&key, body.clone())
            .await
            .expect_error(status, code);
        assert_eq!(
            balance(&admin, setup.mandate).await,
            before,
            "{code} changed the mandate"
        );
        assert!(
            table.purchases_of(setup.mandate).await.is_empty(),
            "{code} wrote a purchase"
        );
        assert_eq!(
            table.audit_actions("USAGE_MANDATE", setup.mandate).await,
            audit_before,
            "{code} wrote audit"
        );
        // The refusal is replayed for the same key and body, byte for byte.
        let again = admin.purchase(&key, body).await;
        assert_eq!(
            (again.status, again.text),
            (reply.status, reply.text),
            "{code} not replayed"
        );
    }

    // A certified merchant needs no allowance (and is in no restricted category here).
    let mut certified = s.purchase("1.00");
    certified["merchant_id"] = json!(certified_elsewhere);
    admin.purchase(&unique("k"), certified).await.expect(201);
}

#[tokio::test]
async fn idempotency_follows_the_user_and_the_parsed_request() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "30.00").await;
    let phone = user_key(&admin, s.beneficiary).await;
    let tablet = user_key(&admin, s.beneficiary).await;
    let key = unique("key");
    let body = |amount: serde_json::Value, currency: Option<&str>| {
        let mut b = s.purchase("1");
        b["amount"] = amount;
        match currency {
            Some(c) => b["currency"] = json!(c),
            None => {
                b.as_object_mut().unwrap().remove("currency");
            }
        }
        b
    };

    let first = phone
        .purchase(&key, body(json!(10), Some("USD")))
        .await
        .expect(201);
    // The same purchase, written otherwise, from the user's other key: the
    // first answer again, byte for byte, and no second debit.
    for (amount, currency) in [
        (json!("10.00"), Some("usd")),
        (serde_json::from_str("10.0").unwrap(), None),
        (json!("1e1"), Some("USD")),
    ] {
        let replay = tablet.purchase(&key, body(amount, currency)).await;
        assert_eq!(replay.status.as_u16(), 201, "{}", replay.text);
        assert_eq!(replay.text, first.text);
    }
    // Another amount or merchant under the same key: refused.
    tablet
        .purchase(&key, body(json!("10.01"), None))
        .await
        .expect_error(422, "IDEMPOTENCY_KEY_REUSED");
    let mut other_merchant = body(json!(10), None);
    other_merchant["merchant_id"] = json!(s.merchant + 1_000_000);
    phone
        .purchase(&key, other_merchant)
        .await
        .expect_error(422, "IDEMPOTENCY_KEY_REUSED");
    // A staff key's scope stays its own: the admin's same key is a new purchase.
    admin
        .purchase(&key, body(json!(10), None))
        .await
        .expect(201);
    assert_eq!(balance(&admin, s.mandate).await.0, "10.00");
    assert_eq!(cents_of(&table.purchases_of(s.mandate).await), 2_000);
}

#[tokio::test]
async fn idempotency_replays_and_refuses_reuse() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "30.00").await;
    let key = unique("key");

    let first = admin.purchase(&key, s.purchase("10.00")).await.expect(201);
    // Same key, same body (other spacing and order): same status, same bytes, no debit.
    let respaced = format!(
        r#"{{ "currency":"USD", "amount":"10.00", "merchant_id":{}, "beneficiary_id":{}, "sender_id":{} }}"#,
        s.merchant, s.beneficiary, s.sender
    );
    let replay = admin
        .send(
            reqwest::Method::POST,
            "/spend/purchases",
            &[("idempotency-key", &key)],
            Some(respaced),
        )
        .await;
    assert_eq!(replay.status.as_u16(), 201);
    assert_eq!(replay.text, first.text);
    // Same key, another body.
    admin
        .purchase(&key, s.purchase("11.00"))
        .await
        .expect_error(422, "IDEMPOTENCY_KEY_REUSED");
    // The key is scoped to the caller: another key's same Idempotency-Key is a new request.
    let beneficiary = user_key(&admin, s.beneficiary).await;
    beneficiary
        .purchase(&key, s.purchase("10.00"))
        .await
        .expect(201);

    assert_eq!(balance(&admin, s.mandate).await.0, "10.00");
    assert_eq!(cents_of(&table.purchases_of(s.mandate).await), 2_000);

    // The key is required, and must be visible ASCII.
    let missing = admin
        .send(
            reqwest::Method::POST,
            "/spend/purchases",
            &[],
            Some(s.purchase("1.00").to_string()),
        )
        .await;
    assert_eq!(missing.code(), "IDEMPOTENCY_KEY_REQUIRED");
    assert_eq!(missing.status.as_u16(), 400);
    let long_key = "k".repeat(256);
    admin
        .purchase(&long_key, s.purchase("1.00"))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert_eq!(balance(&admin, s.mandate).await.0, "10.00");
}

#[tokio::test]
async fn scopes_and_ownership() {
    let admin = Api::admin();
    let s = MandateSetup::new(&admin, "30.00").await;
    let sender = user_key(&admin, s.sender).await;
    let beneficiary = user_key(&admin, s.beneficiary).await;
    let stranger_id = create_user(&admin, "stranger").await;
    let stranger = user_key(&admin, stranger_id).await;
    let support = {
        let reply = admin
            .post(
                "/apikeys",
                json!({"name": unique("support"), "scope": "support"}),
            )
            .await
            .expect(201);
        Api::with_key(Some(reply.body["key"].as_str().unwrap().to_string()))
    };

    // Purchases: only the beneficiary (or an admin) spends.
    sender
        .purchase(&unique("k"), s.purchase("1.00"))
        .await
        .expect_error(403, "FORBIDDEN");
    stranger
        .purchase(&unique("k"), s.purchase("1.00"))
        .await
        .expect_error(403, "FORBIDDEN");
    support
        .purchase(&unique("k"), s.purchase("1.00"))
        .await
        .expect_error(403, "FORBIDDEN");
    let bought = beneficiary
        .purchase(&unique("k"), s.purchase("1.00"))
        .await
        .expect(201);

    // Reads: parties and support see it; a stranger gets 404, as if absent.
    let path = format!("/mandates/{}", s.mandate);
    for api in [&sender, &beneficiary, &support, &admin] {
        api.get(&path).await.expect(200);
        api.get(&format!("/spend/purchases/{}", bought.id()))
            .await
            .expect(200);
    }
    stranger
        .get(&path)
        .await
        .expect_error(404, "MANDATE_NOT_FOUND");
    stranger
        .get(&format!("/spend/purchases/{}", bought.id()))
        .await
        .expect_error(404, "PURCHASE_NOT_FOUND");
    stranger
        .get(&format!("/users/{}", s.sender))
        .await
        .expect_error(404, "USER_NOT_FOUND");
    sender
        .get(&format!("/users/{}", s.sender))
        .await
        .expect(200);

    // Lists: a user sees only mandates it is a party to.
    let mine = sender.get("/mandates").await.expect(200);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine.body["items"][0]["id"], s.mandate);
    let theirs = stranger
        .get(&format!("/mandates?sender_id={}", s.sender))
        .await
        .expect(200);
    assert_eq!(theirs.body["items"], json!([]));

    // Creating: a user funds only as itself; support creates no mandate.
    let body = json!({"sender_id": s.beneficiary, "beneficiary_id": stranger_id, "total_amount": "5", "expires_at": "2099-01-01T00:00:00Z"});
    sender
        .post("/mandates", body.clone())
        .await
        .expect_error(403, "FORBIDDEN");
    support
        .post("/mandates", body.clone())
        .await
        .expect_error(403, "FORBIDDEN");
    beneficiary.post("/mandates", body).await.expect(201);

    // Admin-only routes.
    for api in [&sender, &support] {
        api.post(
            "/spend/categories",
            json!({"code": unique("C"), "label": "x"}),
        )
        .await
        .expect_error(403, "FORBIDDEN");
        api.post("/apikeys", json!({"name": "x", "scope": "admin"}))
            .await
            .expect_error(403, "FORBIDDEN");
        api.get("/apikeys").await.expect_error(403, "FORBIDDEN");
    }
    sender
        .post(
            "/users",
            json!({"username": unique("u"), "email": "u@example.com"}),
        )
        .await
        .expect_error(403, "FORBIDDEN");
    support
        .post(
            "/users",
            json!({"username": unique("u"), "email": format!("{}@example.com", unique("u"))}),
        )
        .await
        .expect(201);
    sender
        .post("/mandates/cleanup", json!({}))
        .await
        .expect_error(403, "FORBIDDEN");
    support
        .post("/mandates/cleanup", json!({}))
        .await
        .expect(202);
    // Allow: the owner itself, not someone else.
    stranger
        .post(
            "/spend/allow",
            json!({"owner_id": s.beneficiary, "merchant_id": s.merchant}),
        )
        .await
        .expect_error(403, "FORBIDDEN");
    beneficiary
        .post(
            "/spend/allow",
            json!({"owner_id": s.beneficiary, "merchant_id": s.merchant}),
        )
        .await
        .expect(200);
}

#[tokio::test]
async fn api_keys_authenticate_and_revoke() {
    let admin = Api::admin();
    let table = Table::new().await;
    Api::anonymous()
        .get("/users/1")
        .await
        .expect_error(401, "UNAUTHORIZED");
    Api::with_key(Some("kob_forged_key_0000000000000000".into()))
        .get("/users/1")
        .await
        .expect_error(401, "UNAUTHORIZED");
    let reply = Api::anonymous()
        .send(
            reqwest::Method::GET,
            "/users/1",
            &[("authorization", "Basic abc")],
            None,
        )
        .await;
    assert_eq!(reply.status.as_u16(), 401);

    let created = admin
        .post(
            "/apikeys",
            json!({"name": unique("ops"), "scope": "support"}),
        )
        .await
        .expect(201);
    let secret = created.body["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("kob_") && secret.len() >= 36);
    assert!(secret.starts_with(created.body["prefix"].as_str().unwrap()));
    let id = created.id();
    let ops = Api::with_key(Some(secret.clone()));
    ops.get("/mandates?limit=1").await.expect(200);

    // Listed without the secret; the secret is stored nowhere.
    let listed = admin.get("/apikeys?limit=100").await.expect(200);
    let entry = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .expect("new key listed")
        .clone();
    assert!(entry.get("key").is_none());
    assert!(!listed.text.contains(&secret));
    let stored = table.items_where("id", id).await;
    assert!(!format!("{stored:?}").contains(&secret));

    admin.delete(&format!("/apikeys/{id}")).await.expect(204);
    ops.get("/mandates?limit=1")
        .await
        .expect_error(401, "UNAUTHORIZED");
    admin.delete(&format!("/apikeys/{id}")).await.expect(204);
    admin
        .delete("/apikeys/999999999")
        .await
        .expect_error(404, "APIKEY_NOT_FOUND");
    assert_eq!(
        table.audit_actions("APIKEY", id).await,
        ["API_KEY_CREATED", "API_KEY_REVOKED"]
    );

    // An expired key does not work.
    admin
        .post(
            "/apikeys",
            json!({"name": "x", "scope": "admin", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await
        .expect_error(422, "VALIDATION_ERROR");
    // user keys need a user; other scopes refuse one.
    let bad = admin
        .post("/apikeys", json!({"name": "x", "scope": "user"}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert!(bad.body["error"]["details"]["fields"]["user_id"].is_string());
    admin
        .post(
            "/apikeys",
            json!({"name": "x", "scope": "admin", "user_id": 1}),
        )
        .await
        .expect_error(422, "VALIDATION_ERROR");
    admin
        .post(
            "/apikeys",
            json!({"name": "x", "scope": "user", "user_id": 999999999}),
        )
        .await
        .expect_error(404, "USER_NOT_FOUND");
}

#[tokio::test]
async fn mandate_lists_filter_and_paginate() {
    let admin = Api::admin();
    let s = MandateSetup::new(&admin, "10.00").await;
    // Three more mandates from the same sender, to other beneficiaries.
    let mut ids = vec![s.mandate];
    for _ in 0..3 {
        let beneficiary = create_user(&admin, "b").await;
        let id = admin
            .post(
                "/mandates",
                json!({"sender_id": s.sender, "beneficiary_id": beneficiary, "total_amount": "1", "currency": "eur", "expires_at": "2099-01-01T00:00:00Z"}),
            )
            .await
            .expect(201)
            .id();
        ids.push(id);
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));

    let mut seen = Vec::new();
    let mut path = format!("/mandates?sender_id={}&limit=3", s.sender);
    loop {
        let page = admin.get(&path).await.expect(200);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_u64().unwrap());
        }
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/mandates?sender_id={}&limit=3&cursor={cursor}", s.sender)
            }
            None => break,
        }
    }
    assert_eq!(seen, ids, "newest first, each once");

    let eur = admin
        .get(&format!(
            "/mandates?sender_id={}&status=ACTIVE&limit=100",
            s.sender
        ))
        .await
        .expect(200);
    assert_eq!(eur.body["items"].as_array().unwrap().len(), 4);
    let by_beneficiary = admin
        .get(&format!("/mandates?beneficiary_id={}", s.beneficiary))
        .await
        .expect(200);
    assert_eq!(by_beneficiary.body["items"][0]["id"], s.mandate);
    assert_eq!(by_beneficiary.body["items"][0]["currency"], "USD");
    let consumed = admin
        .get(&format!("/mandates?sender_id={}&status=CONSUMED", s.sender))
        .await
        .expect(200);
    assert_eq!(consumed.body["items"], json!([]));

    let bad = admin
        .get("/mandates?status=active&limit=0&cursor=x&sender_id=abc")
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let fields = &bad.body["error"]["details"]["fields"];
    for name in ["status", "limit", "cursor", "sender_id"] {
        assert!(fields[name].is_string(), "{name} not named in {}", bad.text);
    }
}
