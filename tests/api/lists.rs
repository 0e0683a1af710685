//! Lists over sharded, narrow indexes: a `user` key filtering by its
//! counterparty sees the mandates between the two; a filtered list reads a
//! bounded number of index pages per request and hands back a cursor, and
//! following the cursors yields every match exactly once; the list of all
//! mandates merges every shard newest first; the sweep finds overdue mandates
//! in every shard. Each test has its own table (`InProcess`), and counts the
//! index reads of each request through the fault injector's client.

use kobatela_tests::{create_user, faults::Faults, unique, InProcess, MandateSetup, Reply, Table};
use serde_json::{json, Value};
use shared::store::keys;
use std::collections::BTreeSet;

/// An in-process API whose DynamoDB calls can be counted.
async fn api(name: &str) -> (InProcess, Faults) {
    let faults = Faults::start().await;
    let api = InProcess::with_client(name, faults.client().await, &[]).await;
    (api, faults)
}

fn ids(page: &Reply) -> Vec<u64> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {}", page.text))
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// Follows `next_cursor` from `path` (which has a `?`); every id seen, in
/// order, and the most index reads one request made.
async fn follow(api: &InProcess, faults: &Faults, path: &str) -> (Vec<u64>, u64, usize) {
    let mut seen = Vec::new();
    let mut most_queries = 0;
    let mut pages = 0;
    let mut next = path.to_string();
    loop {
        faults.reset_counts();
        let page = api.get(&next).await.expect(200);
        most_queries = most_queries.max(faults.executions("Query"));
        pages += 1;
        seen.extend(ids(&page));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => next = format!("{path}&cursor={cursor}"),
            None => return (seen, most_queries, pages),
        }
        assert!(pages < 1000, "the cursor never ends");
    }
}

async fn mandate(api: &InProcess, sender: u64, beneficiary: u64, currency: &str) -> u64 {
    api.post(
        "/mandates",
        json!({"sender_id": sender, "beneficiary_id": beneficiary, "total_amount": "1.00",
               "currency": currency, "expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await
    .expect(201)
    .id()
}

async fn user_api(api: &InProcess, user: u64) -> String {
    api.post(
        "/apikeys",
        json!({"name": unique("k"), "scope": "user", "user_id": user}),
    )
    .await
    .expect(201)
    .body["key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn get_as(api: &InProcess, key: &str, path: &str) -> Reply {
    api.call_as(key, "GET", path, None).await
}

#[tokio::test]
async fn a_user_filtering_by_its_counterparty_sees_their_mandates() {
    let (api, _) = api("lists-counterparty").await;
    let sender = create_user(&api, "s").await;
    let beneficiary = create_user(&api, "b").await;
    let stranger = create_user(&api, "x").await;
    let usd = mandate(&api, sender, beneficiary, "USD").await;
    let eur = mandate(&api, sender, beneficiary, "EUR").await;
    mandate(&api, sender, stranger, "USD").await;
    mandate(&api, stranger, beneficiary, "USD").await;
    let as_sender = user_api(&api, sender).await;
    let as_beneficiary = user_api(&api, beneficiary).await;

    // The beneficiary asks for its mandates from this sender; and the reverse.
    let from_sender = get_as(
        &api,
        &as_beneficiary,
        &format!("/mandates?sender_id={sender}"),
    )
    .await
    .expect(200);
    assert_eq!(ids(&from_sender), [eur, usd]);
    let to_beneficiary = get_as(
        &api,
        &as_sender,
        &format!("/mandates?beneficiary_id={beneficiary}"),
    )
    .await
    .expect(200);
    assert_eq!(ids(&to_beneficiary), [eur, usd]);
    // Nobody sees mandates they are not a party to.
    let none = get_as(
        &api,
        &as_sender,
        &format!("/mandates?sender_id={stranger}&beneficiary_id={beneficiary}"),
    )
    .await
    .expect(200);
    assert_eq!(ids(&none), Vec::<u64>::new());
}

#[tokio::test]
async fn filtered_lists_read_a_bounded_number_of_pages_and_miss_nothing() {
    let (api, faults) = api("lists-bounded").await;
    let sender = create_user(&api, "s").await;
    // 40 mandates of one sender, 4 of them ACTIVE in EUR... the filter keeps
    // only CONSUMED ones, which are few: most index entries are dropped.
    let mut consumed = Vec::new();
    for i in 0..40 {
        let beneficiary = create_user(&api, "b").await;
        let id = mandate(&api, sender, beneficiary, "USD").await;
        if i % 10 == 3 {
            // Consume it: allow a merchant and spend the whole balance.
            let s = MandateSetup {
                sender,
                beneficiary,
                category: 0,
                merchant: api
                    .post("/spend/merchants", json!({"name": unique("m")}))
                    .await
                    .expect(201)
                    .id(),
                mandate: id,
            };
            api.post(
                "/spend/allow",
                json!({"owner_id": beneficiary, "merchant_id": s.merchant}),
            )
            .await
            .expect(201);
            let mut body = s.purchase("1.00");
            body.as_object_mut().unwrap().remove("category_id");
            api.purchase(&unique("k"), body).await.expect(201);
            consumed.push(id);
        }
    }
    consumed.reverse();
    let (seen, most_queries, pages) = follow(
        &api,
        &faults,
        &format!("/mandates?sender_id={sender}&status=CONSUMED&limit=2"),
    )
    .await;
    assert_eq!(seen, consumed, "every match once, newest first");
    assert!(
        most_queries <= 5,
        "a request made {most_queries} index reads"
    );
    assert!(pages >= 2);
}

#[tokio::test]
async fn all_mandates_merge_every_shard_newest_first() {
    let (api, faults) = api("lists-shards").await;
    let mut made = Vec::new();
    for _ in 0..(2 * keys::index_shards() + 3) {
        let s = create_user(&api, "s").await;
        let b = create_user(&api, "b").await;
        made.push(mandate(&api, s, b, "USD").await);
    }
    made.reverse();
    let (seen, most_queries, _) = follow(&api, &faults, "/mandates?limit=4").await;
    assert_eq!(seen, made, "every shard, newest first, each once");
    assert!(most_queries <= keys::index_shards().max(5));
    let shards: BTreeSet<u64> = made.iter().map(|id| id % keys::index_shards()).collect();
    assert_eq!(
        shards.len() as u64,
        keys::index_shards(),
        "mandates span every shard"
    );
}

#[tokio::test]
async fn the_sweep_finds_overdue_mandates_in_every_shard() {
    let (api, _) = api("lists-sweep").await;
    let table = Table::named(&api.table).await;
    let mut overdue = Vec::new();
    for _ in 0..keys::index_shards() {
        let s = create_user(&api, "s").await;
        let b = create_user(&api, "b").await;
        let id = mandate(&api, s, b, "USD").await;
        table.backdate_mandate(id).await;
        overdue.push(id);
    }
    let run: Value = api
        .post("/mandates/cleanup", json!({}))
        .await
        .expect(202)
        .body;
    assert_eq!(run["expired"], overdue.len());
    for id in overdue {
        let m = api.get(&format!("/mandates/{id}")).await.expect(200);
        assert_eq!(m.body["status"], "EXPIRED");
    }
}

// ---------------------------------------------------------------------------
// The work queues of the back office: proofs to review, failed payouts, PSP
// events, alerts to acknowledge.

/// A funded escrow of two PHOTO milestones (10.00 each).
async fn funded_escrow(api: &InProcess) -> kobatela_tests::EscrowSetup {
    let e = kobatela_tests::EscrowSetup::with(
        api,
        json!({"amount_total": "20.00", "milestones": [
            {"label": "a", "amount": "10.00", "proof_type": "PHOTO"},
            {"label": "b", "amount": "10.00", "proof_type": "PHOTO"}]}),
    )
    .await;
    api.deposit(e.escrow, &unique("d"), "20.00")
        .await
        .expect(200);
    e
}

/// An old client's proof of milestone 1 (the server never reads its file):
/// PENDING review, `UNVERIFIED_UPLOAD`. Its id.
async fn proof_to_review(api: &InProcess, escrow: u64) -> u64 {
    let reply = api
        .post(
            "/proofs",
            json!({"escrow_id": escrow, "milestone_idx": 1, "type": "PHOTO",
                   "storage_url": "https://files.example.com/p.jpg",
                   "sha256": kobatela_tests::photos::sha256_hex(unique("f").as_bytes())}),
        )
        .await
        .expect(201);
    assert_eq!(reply.body["status"], "PENDING", "{}", reply.text);
    assert_eq!(reply.body["review_reason"], "UNVERIFIED_UPLOAD");
    reply.id()
}

async fn decide(api: &InProcess, proof: u64, decision: &str) -> Reply {
    api.post(
        &format!("/proofs/{proof}/decision"),
        json!({"decision": decision, "note": "checked by support"}),
    )
    .await
}

#[tokio::test]
async fn the_review_queue_is_oldest_first_and_each_filter_narrows_it() {
    let (api, faults) = self::api("queue-proofs").await;
    let escrows = [
        funded_escrow(&api).await,
        funded_escrow(&api).await,
        funded_escrow(&api).await,
        funded_escrow(&api).await,
    ];
    let mut pending = Vec::new();
    for e in &escrows[..3] {
        pending.push(proof_to_review(&api, e.escrow).await);
    }
    // The fourth escrow's proof is rejected, then proved again and approved.
    let rejected = proof_to_review(&api, escrows[3].escrow).await;
    decide(&api, rejected, "rejected").await.expect(200);
    let approved = proof_to_review(&api, escrows[3].escrow).await;
    decide(&api, approved, "approved").await.expect(200);

    // The queue: oldest first, paged by 2, each page one Query per shard
    // and one batch read at most.
    let (seen, most_queries, pages) = follow(&api, &faults, "/proofs?status=PENDING&limit=2").await;
    assert_eq!(seen, pending, "oldest first, each once");
    assert_eq!(pages, 2);
    assert!(
        most_queries <= keys::index_shards(),
        "{most_queries} queries"
    );
    faults.reset_counts();
    let page = api.get("/proofs?status=PENDING&limit=2").await.expect(200);
    assert_eq!(faults.executions("BatchGetItem"), 1);
    let first = &page.body["items"][0];
    assert_eq!(first["escrow_id"], escrows[0].escrow);
    assert_eq!(first["download_url"], Value::Null, "an old client's file");

    // Other lists are newest first.
    let (all, _, _) = follow(&api, &faults, "/proofs?limit=100").await;
    let mut expected = pending.clone();
    expected.extend([rejected, approved]);
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(all, expected);
    assert_eq!(
        ids(&api.get("/proofs?status=REJECTED").await.expect(200)),
        vec![rejected]
    );
    assert_eq!(
        ids(&api.get("/proofs?status=APPROVED").await.expect(200)),
        vec![approved]
    );

    // By escrow: one partition, one Query.
    faults.reset_counts();
    let by_escrow = api
        .get(&format!("/proofs?escrow_id={}", escrows[3].escrow))
        .await
        .expect(200);
    assert_eq!(ids(&by_escrow), vec![approved, rejected]);
    assert_eq!(faults.executions("Query"), 1);
    let reason = api
        .get(&format!(
            "/proofs?escrow_id={}&status=PENDING&review_reason=UNVERIFIED_UPLOAD",
            escrows[1].escrow
        ))
        .await
        .expect(200);
    assert_eq!(ids(&reason), vec![pending[1]]);
    // The review reason is checked on the items: another reason, none.
    let other = api
        .get("/proofs?status=PENDING&review_reason=GPS_MISSING")
        .await
        .expect(200);
    assert_eq!(ids(&other), Vec::<u64>::new());

    // A user key lists only the proofs of its own escrows, by escrow.
    let provider = user_api(&api, escrows[0].provider).await;
    let own = get_as(
        &api,
        &provider,
        &format!("/proofs?escrow_id={}", escrows[0].escrow),
    )
    .await;
    assert_eq!(ids(&own.expect(200)), vec![pending[0]]);
    get_as(
        &api,
        &provider,
        &format!("/proofs?escrow_id={}", escrows[1].escrow),
    )
    .await
    .expect_error(404, "ESCROW_NOT_FOUND");
    let missing = get_as(&api, &provider, "/proofs?status=PENDING").await;
    assert_eq!(
        field_of(missing.expect_error(422, "VALIDATION_ERROR")),
        "escrow_id"
    );

    // Bad filters: 422 naming the field.
    for (query, field) in [
        ("status=pending", "status"),
        ("review_reason=BLURRY", "review_reason"),
        ("escrow_id=0", "escrow_id"),
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
    ] {
        let reply = api.get(&format!("/proofs?{query}")).await;
        assert_eq!(
            field_of(reply.expect_error(422, "VALIDATION_ERROR")),
            field,
            "{query}"
        );
    }
}

/// The one field a 422 names.
fn field_of(reply: Reply) -> String {
    let fields = reply.body["error"]["details"]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no fields in {}", reply.text));
    let names: Vec<&String> = fields.keys().collect();
    assert_eq!(names.len(), 1, "{}", reply.text);
    names[0].clone()
}

#[tokio::test]
async fn the_failed_payout_queue_lists_error_payments_only() {
    let (api, faults) = self::api("queue-payments").await;
    let (failed_escrow, failed) = api.failed_first_milestone("20.00", "10.00", "10.00").await;
    let pending = api.payout("30.00").await;

    faults.reset_counts();
    let errors = api.get("/payments?status=ERROR").await.expect(200);
    assert_eq!(ids(&errors), vec![failed.id.get()]);
    assert_eq!(errors.body["items"][0]["status"], "ERROR");
    assert!(faults.executions("Query") <= keys::index_shards());
    assert_eq!(
        ids(&api.get("/payments?status=PENDING").await.expect(200)),
        vec![pending.payment]
    );
    assert_eq!(
        ids(&api.get("/payments").await.expect(200)),
        vec![pending.payment, failed.id.get()]
    );
    let both = format!("/payments?escrow_id={}&status=ERROR", failed_escrow.escrow);
    assert_eq!(
        ids(&api.get(&both).await.expect(200)),
        vec![failed.id.get()]
    );
    let none = format!(
        "/payments?escrow_id={}&status=SETTLED",
        failed_escrow.escrow
    );
    assert_eq!(ids(&api.get(&none).await.expect(200)), Vec::<u64>::new());

    // Retried, it leaves the queue.
    api.post(&format!("/payments/execute/{}", failed.id), json!(null))
        .await
        .expect(200);
    assert_eq!(
        ids(&api.get("/payments?status=ERROR").await.expect(200)),
        Vec::<u64>::new()
    );

    let reply = api.get("/payments?status=FAILED").await;
    assert_eq!(
        field_of(reply.expect_error(422, "VALIDATION_ERROR")),
        "status"
    );
}

/// Sends one signed PSP event through the webhook and applies it.
async fn psp_event(api: &InProcess, kind: &str, psp_ref: &str) -> String {
    let event_id = unique("evt");
    let body = kobatela_tests::psp_body(&event_id, kind, psp_ref);
    let headers = kobatela_tests::psp_headers(&body);
    api.psp_webhook(&kobatela_tests::header_refs(&headers), &body)
        .await
        .expect(200);
    assert_eq!(api.consume_psp().await, (1, 0));
    event_id
}

fn event_ids(page: &Reply) -> Vec<String> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {}", page.text))
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn psp_events_are_listed_newest_first_by_status() {
    let (api, faults) = self::api("queue-psp").await;
    let payout = api.payout("10.00").await;
    let settled = psp_event(&api, "payment.settled", &payout.psp_ref).await;
    // A failure after the settlement contradicts it: CONFLICT.
    let conflict = psp_event(&api, "payment.failed", &payout.psp_ref).await;
    let unknown = psp_event(&api, "payment.settled", "no-such-ref").await;

    let conflicts = api.get("/psp/events?status=CONFLICT").await.expect(200);
    assert_eq!(event_ids(&conflicts), vec![conflict.clone()]);
    assert_eq!(conflicts.body["items"][0]["payment_id"], payout.payment);
    assert_eq!(
        event_ids(&api.get("/psp/events?status=IGNORED").await.expect(200)),
        vec![unknown.clone()]
    );
    assert_eq!(
        event_ids(&api.get("/psp/events?status=APPLIED").await.expect(200)),
        vec![settled.clone()]
    );
    // Paged one by one, newest first, each read bounded.
    let mut seen = Vec::new();
    let mut next = "/psp/events?limit=1".to_string();
    loop {
        faults.reset_counts();
        let page = api.get(&next).await.expect(200);
        assert!(faults.executions("Query") <= keys::index_shards());
        assert!(faults.executions("BatchGetItem") <= 1);
        seen.extend(event_ids(&page));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => next = format!("/psp/events?limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() < 10, "the cursor never ends");
    }
    assert_eq!(seen, vec![unknown, conflict, settled]);

    for (query, field) in [("status=FAILED", "status"), ("cursor=00", "cursor")] {
        let reply = api.get(&format!("/psp/events?{query}")).await;
        assert_eq!(
            field_of(reply.expect_error(422, "VALIDATION_ERROR")),
            field,
            "{query}"
        );
    }
    let user = create_user(&api, "psp-reader").await;
    let key = user_api(&api, user).await;
    get_as(&api, &key, "/psp/events")
        .await
        .expect_error(403, "FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_is_acknowledged_once_audited_and_leaves_the_open_list() {
    let (api, _faults) = self::api("queue-alerts").await;
    let api = std::sync::Arc::new(api);
    let (_, failed) = api.failed_first_milestone("20.00", "10.00", "10.00").await;
    psp_event(&api, "payment.settled", "no-such-ref").await;
    let open = api.get("/alerts?acknowledged=false").await.expect(200);
    let open_ids = ids(&open);
    assert_eq!(open_ids.len(), 2, "{}", open.text);
    let newest = &open.body["items"][0];
    assert_eq!(newest["type"], "PSP_UNKNOWN_REFERENCE");
    assert_eq!(newest["acknowledged_at"], Value::Null);
    let failed_alert = open.body["items"][1].clone();
    assert_eq!(failed_alert["type"], "PAYMENT_FAILED");
    assert_eq!(failed_alert["payload"]["payment_id"], failed.id.get());
    let id = failed_alert["id"].as_u64().unwrap();

    // Several staff acknowledge at once: one wins, all see the same answer.
    let ack = format!("/alerts/{id}/ack");
    let mut acks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (api, ack) = (api.clone(), ack.clone());
        acks.spawn(async move { api.call("POST", &ack, &[], None).await });
    }
    let answers: Vec<Reply> = acks.join_all().await;
    let first = answers[0].body.clone();
    for answer in answers {
        assert_eq!(answer.expect(200).body, first);
    }
    assert!(first["acknowledged_at"].is_string(), "{first}");
    assert_eq!(first["acknowledged_by"], "apikey:1");
    assert_eq!(first["id"], id);
    // Again later: 200, unchanged.
    assert_eq!(api.post(&ack, json!(null)).await.expect(200).body, first);
    let trail = api.get(&format!("/audit/alert/{id}")).await.expect(200);
    let actions: Vec<&str> = trail.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["ALERT_ACKNOWLEDGED"]);
    assert_eq!(trail.body["items"][0]["actor"], "apikey:1");

    assert_eq!(
        ids(&api.get("/alerts?acknowledged=false").await.expect(200)),
        vec![open_ids[0]]
    );
    let acked = api.get("/alerts?acknowledged=true").await.expect(200);
    assert_eq!(ids(&acked), vec![id]);
    assert_eq!(acked.body["items"][0], first);

    api.post("/alerts/999999/ack", json!(null))
        .await
        .expect_error(404, "ALERT_NOT_FOUND");
    let reply = api.get("/alerts?acknowledged=yes").await;
    assert_eq!(
        field_of(reply.expect_error(422, "VALIDATION_ERROR")),
        "acknowledged"
    );
    api.post("/alerts/x/ack", json!(null))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let user = create_user(api.as_ref(), "alert-reader").await;
    let key = user_api(&api, user).await;
    api.call_as(&key, "POST", &ack, None)
        .await
        .expect_error(403, "FORBIDDEN");
}

/// Acknowledging under what real DynamoDB does: with each contention and
/// throttling answer for the first 4 calls, it recovers and writes one audit
/// entry; with it for every call, 503 `SERVICE_BUSY` and nothing written
/// (the alert re-read unacknowledged, its trail empty).
#[tokio::test]
async fn acknowledging_survives_contention_and_throttling() {
    use kobatela_tests::faults::Fault;
    use shared::{
        domain::{alert::AlertType, ids::Id, time::Timestamp},
        store::alerts::NewAlert,
    };
    let (api, faults) = self::api("queue-ack-faults").await;
    let table = Table::named(&api.table).await;
    for (n, fault) in Fault::ALL.into_iter().enumerate() {
        for (m, recovers) in [(0, true), (1, false)] {
            let id = 1_000 + 10 * n as u64 + m;
            table
                .raise_alert(&NewAlert {
                    id: Id::new(id).unwrap(),
                    alert_type: AlertType::PaymentFailed,
                    cause: unique("ack-fault"),
                    message: "A payment failed.".into(),
                    actor_user_id: None,
                    payload: json!({}),
                    created_at: Timestamp::now(),
                })
                .await
                .unwrap();
            let ack = format!("/alerts/{id}/ack");
            if recovers {
                faults.inject(fault, 4);
            } else {
                faults.inject_forever(fault);
            }
            let reply = api.call("POST", &ack, &[], None).await;
            faults.clear();
            assert!(faults.take_injected() > 0, "{fault:?}");
            let trail = api.get(&format!("/audit/alert/{id}")).await.expect(200);
            let entries = trail.body["items"].as_array().unwrap().len();
            let listed = api
                .get("/alerts?acknowledged=false&limit=100")
                .await
                .expect(200);
            let open = ids(&listed).contains(&id);
            if recovers {
                let body = reply.expect(200).body;
                assert!(body["acknowledged_at"].is_string(), "{fault:?}: {body}");
                assert_eq!((entries, open), (1, false), "{fault:?}");
            } else {
                reply.expect_error(503, "SERVICE_BUSY");
                assert_eq!((entries, open), (0, true), "{fault:?}");
            }
        }
    }
}
