//! Restricted transfers over HTTP: the allowlist and certifications, a
//! transfer allowed by either, a refusal raising exactly one
//! `UNAUTHORIZED_TRANSFER_ATTEMPT` alert (also when retried with the same
//! key or raced by concurrent duplicates), idempotency, access by scope and
//! party, lists, and bad input that changes nothing.

use kobatela_tests::{create_user, unique, user_key, Api, Reply, Table};
use reqwest::Method;
use serde_json::{json, Value};

const REFUSED: &str = "ALERT#UNAUTHORIZED_TRANSFER_ATTEMPT#";

async fn transfer(api: &Api, key: &str, body: Value) -> Reply {
    api.send(
        Method::POST,
        "/transactions",
        &[("idempotency-key", key)],
        Some(body.to_string()),
    )
    .await
}

fn body(sender: u64, receiver: u64, amount: &str) -> Value {
    json!({"sender_id": sender, "receiver_id": receiver, "amount": amount})
}

/// The refusal alerts raised for `sender`, and the transactions it sent.
async fn footprint(table: &Table, sender: u64) -> (usize, usize) {
    (
        table.count(REFUSED, "actor_user_id", sender).await,
        table.count("TRANSACTION#", "sender_id", sender).await,
    )
}

/// The ids of a page's items, in order.
fn ids(page: &Reply) -> Vec<u64> {
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect()
}

async fn users(admin: &Api, n: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(create_user(admin, "t").await);
    }
    ids
}

#[tokio::test]
async fn the_allowlist_adds_once_and_is_audited() {
    let admin = Api::admin();
    let table = Table::new().await;
    let [a, b] = users(&admin, 2).await[..] else {
        unreachable!()
    };
    let add = json!({"owner_id": a, "recipient_id": b});
    let added = admin.post("/allowlist", add.clone()).await.expect(201);
    assert_eq!(added.body, json!({"status": "added"}));
    let again = admin.post("/allowlist", add).await.expect(200);
    assert_eq!(again.body, json!({"status": "exists"}));
    assert_eq!(
        table.audit_actions("USER", a).await,
        vec!["USER_CREATED", "ALLOWLIST_ADDED"]
    );
    assert_eq!(
        table
            .items_with_prefix(&format!("ALLOWLIST#{a}"))
            .await
            .len(),
        1
    );

    // The owner's own key may add; another user's may not.
    let c = create_user(&admin, "t").await;
    let owner = user_key(&admin, a).await;
    owner
        .post("/allowlist", json!({"owner_id": a, "recipient_id": c}))
        .await
        .expect(201);
    user_key(&admin, c)
        .await
        .post("/allowlist", json!({"owner_id": a, "recipient_id": c}))
        .await
        .expect_error(403, "FORBIDDEN");
    assert_eq!(
        table
            .items_with_prefix(&format!("ALLOWLIST#{a}"))
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn allowlist_refusals_change_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let a = create_user(&admin, "t").await;
    for (bad, status, code) in [
        (
            json!({"owner_id": a, "recipient_id": a}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"owner_id": a, "recipient_id": 99999999}),
            404,
            "USER_NOT_FOUND",
        ),
        (
            json!({"owner_id": 99999999, "recipient_id": a}),
            404,
            "USER_NOT_FOUND",
        ),
        (json!({"owner_id": a}), 422, "VALIDATION_ERROR"),
        (
            json!({"owner_id": "x", "recipient_id": a}),
            422,
            "VALIDATION_ERROR",
        ),
        (json!([a]), 422, "VALIDATION_ERROR"),
    ] {
        admin
            .post("/allowlist", bad.clone())
            .await
            .expect_error(status, code);
    }
    let same = admin
        .post("/allowlist", json!({"owner_id": a, "recipient_id": a}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert!(same.body["error"]["details"]["fields"]["recipient_id"].is_string());
    assert!(table
        .items_with_prefix(&format!("ALLOWLIST#{a}"))
        .await
        .is_empty());
    assert_eq!(table.audit_actions("USER", a).await, vec!["USER_CREATED"]);
}

#[tokio::test]
async fn certification_is_created_then_updated_in_any_case_by_admins_only() {
    let admin = Api::admin();
    let table = Table::new().await;
    let u = create_user(&admin, "t").await;
    let created = admin
        .post("/certified", json!({"user_id": u, "level": "basic"}))
        .await
        .expect(201);
    assert_eq!(created.body, json!({"status": "created"}));
    let updated = admin
        .post("/certified", json!({"user_id": u, "level": "Gold"}))
        .await
        .expect(200);
    assert_eq!(updated.body, json!({"status": "updated"}));
    let stored = table.items_with_prefix(&format!("CERTIFIED#{u}")).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["level"].as_s().unwrap(), "GOLD");
    assert_eq!(
        table.audit_actions("USER", u).await,
        vec!["USER_CREATED", "CERTIFIED", "CERTIFIED"]
    );

    let other = create_user(&admin, "t").await;
    for (bad, status, code) in [
        (
            json!({"user_id": other, "level": "SILVER"}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"user_id": other, "level": 1}),
            422,
            "VALIDATION_ERROR",
        ),
        (json!({"user_id": other}), 422, "VALIDATION_ERROR"),
        (
            json!({"user_id": 99999999, "level": "GOLD"}),
            404,
            "USER_NOT_FOUND",
        ),
    ] {
        admin
            .post("/certified", bad)
            .await
            .expect_error(status, code);
    }
    let support_key = admin
        .post("/apikeys", json!({"name": unique("s"), "scope": "support"}))
        .await
        .expect(201)
        .body["key"]
        .as_str()
        .unwrap()
        .to_string();
    for caller in [
        Api::with_key(Some(support_key)),
        user_key(&admin, other).await,
    ] {
        caller
            .post("/certified", json!({"user_id": other, "level": "GOLD"}))
            .await
            .expect_error(403, "FORBIDDEN");
    }
    assert!(table
        .items_with_prefix(&format!("CERTIFIED#{other}"))
        .await
        .is_empty());
}

#[tokio::test]
async fn an_allowlisted_transfer_is_recorded_once_and_replayed() {
    let admin = Api::admin();
    let table = Table::new().await;
    let [a, b] = users(&admin, 2).await[..] else {
        unreachable!()
    };
    admin
        .post("/allowlist", json!({"owner_id": a, "recipient_id": b}))
        .await
        .expect(201);
    let key = unique("k");
    let sent = transfer(&admin, &key, body(a, b, "100.45"))
        .await
        .expect(201);
    let t = &sent.body;
    assert_eq!(
        (t["sender_id"].as_u64(), t["receiver_id"].as_u64()),
        (Some(a), Some(b))
    );
    assert_eq!(t["amount"], "100.45");
    assert_eq!(t["currency"], "USD");
    assert_eq!(t["status"], "COMPLETED");
    // The same request, written differently: the first answer again.
    let replay = transfer(
        &admin,
        &key,
        json!({"sender_id": a, "receiver_id": b, "amount": 100.45, "currency": "usd"}),
    )
    .await
    .expect(201);
    assert_eq!(replay.text, sent.text);
    transfer(&admin, &key, body(a, b, "100.46"))
        .await
        .expect_error(422, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(footprint(&table, a).await, (0, 1));
    assert_eq!(
        table.audit_actions("TRANSACTION", sent.id()).await,
        vec!["CREATE_TRANSACTION"]
    );
    let read = admin
        .get(&format!("/transactions/{}", sent.id()))
        .await
        .expect(200);
    assert_eq!(read.body, sent.body);

    // The allowlist is directional: b never allowlisted a.
    transfer(&admin, &unique("k"), body(b, a, "1.00"))
        .await
        .expect_error(403, "UNAUTHORIZED_TRANSFER");
    assert_eq!(footprint(&table, b).await, (1, 0));
}

#[tokio::test]
async fn a_certified_receiver_may_receive_from_anyone() {
    let admin = Api::admin();
    let table = Table::new().await;
    let [a, b] = users(&admin, 2).await[..] else {
        unreachable!()
    };
    transfer(&admin, &unique("k"), body(a, b, "5.00"))
        .await
        .expect_error(403, "UNAUTHORIZED_TRANSFER");
    admin
        .post("/certified", json!({"user_id": b, "level": "BASIC"}))
        .await
        .expect(201);
    transfer(&admin, &unique("k"), body(a, b, "5.00"))
        .await
        .expect(201);
    assert_eq!(footprint(&table, a).await, (1, 1));
}

#[tokio::test]
async fn a_refusal_raises_one_alert_per_request_and_none_on_retry() {
    let admin = Api::admin();
    let table = Table::new().await;
    let [a, b] = users(&admin, 2).await[..] else {
        unreachable!()
    };
    let key = unique("k");
    let refused = transfer(&admin, &key, body(a, b, "12.30"))
        .await
        .expect_error(403, "UNAUTHORIZED_TRANSFER");
    assert_eq!(
        refused.body["error"]["message"],
        "Receiver is not allowlisted or certified."
    );
    let retried = transfer(&admin, &key, body(a, b, "12.30"))
        .await
        .expect_error(403, "UNAUTHORIZED_TRANSFER");
    assert_eq!(retried.text, refused.text);
    assert_eq!(footprint(&table, a).await, (1, 0));

    let alerts = admin
        .get("/alerts?type=UNAUTHORIZED_TRANSFER_ATTEMPT&limit=100")
        .await
        .expect(200);
    let mine: Vec<&Value> = alerts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|alert| alert["actor_user_id"] == a)
        .collect();
    assert_eq!(mine.len(), 1, "{}", alerts.text);
    assert_eq!(
        mine[0]["payload"],
        json!({"sender_id": a, "attempted_receiver_id": b, "amount": "12.30"})
    );
    assert_eq!(
        mine[0]["message"],
        "Receiver is not allowlisted or certified."
    );

    // A new request is a new cause.
    transfer(&admin, &unique("k"), body(a, b, "12.30"))
        .await
        .expect_error(403, "UNAUTHORIZED_TRANSFER");
    assert_eq!(footprint(&table, a).await, (2, 0));
}

#[tokio::test]
async fn concurrent_duplicates_record_one_transfer_or_one_alert() {
    let admin = Api::admin();
    let table = Table::new().await;
    let [a, b, c] = users(&admin, 3).await[..] else {
        unreachable!()
    };
    admin
        .post("/allowlist", json!({"owner_id": a, "recipient_id": b}))
        .await
        .expect(201);
    for round in 0..3 {
        let (allowed_key, refused_key) = (unique("k"), unique("k"));
        let mut tasks = Vec::new();
        for i in 0..24 {
            let admin = admin.clone();
            let (key, request) = if i % 2 == 0 {
                (allowed_key.clone(), body(a, b, "7.00"))
            } else {
                (refused_key.clone(), body(a, c, "7.00"))
            };
            tasks.push(tokio::spawn(async move {
                transfer(&admin, &key, request).await
            }));
        }
        let mut answers = std::collections::BTreeMap::<u16, Vec<String>>::new();
        for task in tasks {
            let reply = task.await.unwrap();
            answers
                .entry(reply.status.as_u16())
                .or_default()
                .push(reply.text);
        }
        assert_eq!(
            answers.keys().copied().collect::<Vec<_>>(),
            vec![201, 403],
            "round {round}: {answers:?}"
        );
        for texts in answers.values() {
            assert_eq!(texts.len(), 12);
            assert!(
                texts.iter().all(|t| *t == texts[0]),
                "round {round}: {texts:?}"
            );
        }
        assert_eq!(
            footprint(&table, a).await,
            (round + 1, round + 1),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn transfer_refusals_of_bad_input_change_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let [a, b] = users(&admin, 2).await[..] else {
        unreachable!()
    };
    admin
        .post("/allowlist", json!({"owner_id": a, "recipient_id": b}))
        .await
        .expect(201);
    for (bad, status, code) in [
        (body(a, a, "1.00"), 422, "VALIDATION_ERROR"),
        (body(a, b, "1.005"), 422, "VALIDATION_ERROR"),
        (body(a, b, "-1.00"), 422, "VALIDATION_ERROR"),
        (body(a, b, "0"), 422, "VALIDATION_ERROR"),
        (
            json!({"sender_id": a, "receiver_id": b, "amount": "1.00", "currency": "XOF"}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"sender_id": a, "receiver_id": b}),
            422,
            "VALIDATION_ERROR",
        ),
        (body(a, 99999999, "1.00"), 404, "USER_NOT_FOUND"),
        (body(99999999, b, "1.00"), 404, "USER_NOT_FOUND"),
        (json!("a string"), 422, "VALIDATION_ERROR"),
    ] {
        transfer(&admin, &unique("k"), bad.clone())
            .await
            .expect_error(status, code);
    }
    admin
        .send(
            Method::POST,
            "/transactions",
            &[],
            Some(body(a, b, "1.00").to_string()),
        )
        .await
        .expect_error(400, "IDEMPOTENCY_KEY_REQUIRED");

    // An inactive party: refused, no alert, and not remembered under the key.
    admin.set_user_active(b, false).await.expect(200);
    let key = unique("k");
    transfer(&admin, &key, body(a, b, "1.00"))
        .await
        .expect_error(403, "USER_INACTIVE");
    assert_eq!(footprint(&table, a).await, (0, 0));
    admin
        .send(
            Method::PATCH,
            &format!("/users/{b}"),
            &[],
            Some(json!({"is_active": true}).to_string()),
        )
        .await
        .expect(200);
    transfer(&admin, &key, body(a, b, "1.00")).await.expect(201);
    assert_eq!(footprint(&table, a).await, (0, 1));
}

#[tokio::test]
async fn users_send_for_themselves_and_read_only_their_own() {
    let admin = Api::admin();
    let [a, b, stranger] = users(&admin, 3).await[..] else {
        unreachable!()
    };
    admin
        .post("/allowlist", json!({"owner_id": a, "recipient_id": b}))
        .await
        .expect(201);
    let (as_a, as_b, as_stranger) = (
        user_key(&admin, a).await,
        user_key(&admin, b).await,
        user_key(&admin, stranger).await,
    );
    let sent = transfer(&as_a, &unique("k"), body(a, b, "2.00"))
        .await
        .expect(201);
    // Only the sender acts; the receiver or a stranger may not send for it.
    for other in [&as_b, &as_stranger] {
        transfer(other, &unique("k"), body(a, b, "2.00"))
            .await
            .expect_error(403, "FORBIDDEN");
    }
    let path = format!("/transactions/{}", sent.id());
    assert_eq!(as_b.get(&path).await.expect(200).body, sent.body);
    as_stranger
        .get(&path)
        .await
        .expect_error(404, "TRANSACTION_NOT_FOUND");
    admin
        .get("/transactions/99999999")
        .await
        .expect_error(404, "TRANSACTION_NOT_FOUND");
    assert_eq!(
        ids(&as_b.get("/transactions").await.expect(200)),
        vec![sent.id()]
    );
    assert!(ids(&as_stranger.get("/transactions").await.expect(200)).is_empty());
    assert!(ids(&as_stranger
        .get(&format!("/transactions?sender_id={a}"))
        .await
        .expect(200))
    .is_empty());
}

#[tokio::test]
async fn lists_filter_by_party_and_page_newest_first() {
    let admin = Api::admin();
    let [a, b, c] = users(&admin, 3).await[..] else {
        unreachable!()
    };
    for r in [b, c] {
        admin
            .post("/allowlist", json!({"owner_id": a, "recipient_id": r}))
            .await
            .expect(201);
    }
    let mut sent = Vec::new();
    for r in [b, c, b] {
        sent.push(
            transfer(&admin, &unique("k"), body(a, r, "1.00"))
                .await
                .expect(201)
                .id(),
        );
    }
    let by_sender = admin
        .get(&format!("/transactions?sender_id={a}"))
        .await
        .expect(200);
    assert_eq!(ids(&by_sender), vec![sent[2], sent[1], sent[0]]);
    let to_b = admin
        .get(&format!("/transactions?receiver_id={b}"))
        .await
        .expect(200);
    assert_eq!(ids(&to_b), vec![sent[2], sent[0]]);
    let both = admin
        .get(&format!("/transactions?sender_id={a}&receiver_id={c}"))
        .await
        .expect(200);
    assert_eq!(ids(&both), vec![sent[1]]);

    let first = admin
        .get(&format!("/transactions?sender_id={a}&limit=2"))
        .await
        .expect(200);
    assert_eq!(ids(&first), vec![sent[2], sent[1]]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = admin
        .get(&format!(
            "/transactions?sender_id={a}&limit=2&cursor={cursor}"
        ))
        .await
        .expect(200);
    assert_eq!(ids(&rest), vec![sent[0]]);
    assert_eq!(rest.body["next_cursor"], Value::Null);

    let bad = admin
        .get("/transactions?sender_id=x&receiver_id=0&limit=0")
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let fields = &bad.body["error"]["details"]["fields"];
    for name in ["sender_id", "receiver_id", "limit"] {
        assert!(fields[name].is_string(), "{name}: {}", bad.text);
    }
}
