//! The PSP webhook, its consumer, `GET /psp/events/{id}` and
//! `POST /payments/execute/{id}`.
//!
//! Black-box tests talk to the running `kobatela-local` as the PSP and a
//! client would (its background consumer applies events within moments:
//! the tests poll `GET /psp/events/{id}` with a deadline). Tests that need
//! faults, or to decide when the consumer runs, use an in-process API with a
//! queue of its own.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use kobatela_tests::{
    faults::{Fault, Faults, Wire},
    header_refs, psp_body, psp_headers, psp_previous_secret, psp_processed as processed,
    psp_secret, psp_sign, send_psp_event as send_event, unique, unix_now, user_key, Api,
    EscrowSetup, InProcess, Payout, Reply, Table,
};
use serde_json::{json, Value};

/// An escrow of `total`, funded and approved: one PAYOUT, SENT.
async fn payout(admin: &Api, total: &str) -> (EscrowSetup, Value) {
    let e = EscrowSetup::new(admin, total).await;
    admin
        .deposit(e.escrow, &unique("dep"), total)
        .await
        .expect(200);
    admin
        .escrow_action(e.escrow, "client-approve")
        .await
        .expect(200);
    let payment = admin
        .get(&format!("/payments?escrow_id={}", e.escrow))
        .await
        .expect(200)
        .body["items"][0]
        .clone();
    assert_eq!(payment["status"], "PENDING");
    (e, payment)
}

async fn payment(admin: &Api, id: u64) -> Value {
    admin.get(&format!("/payments/{id}")).await.expect(200).body
}

async fn escrow(admin: &Api, id: u64) -> Value {
    admin.get(&format!("/escrows/{id}")).await.expect(200).body
}

/// Alerts of `alert_type` whose payload names this `field` = `value`.
async fn alerts_about(admin: &Api, alert_type: &str, field: &str, value: &Value) -> usize {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/alerts?type={alert_type}&limit=100&cursor={c}"),
            None => format!("/alerts?type={alert_type}&limit=100"),
        };
        let page = admin.get(&path).await.expect(200).body;
        count += page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| &a["payload"][field] == value)
            .count();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return count,
        }
    }
}

/// `funded = available + paid + refunded`, in cents, from the API's strings.
fn assert_money_adds_up(e: &Value) {
    let cents = |f: &str| -> i64 {
        let text = e[f].as_str().unwrap();
        let (units, frac) = text.split_once('.').unwrap();
        units.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
    };
    assert_eq!(
        cents("amount_funded"),
        cents("amount_available") + cents("amount_paid") + cents("amount_refunded"),
        "{e}"
    );
}

async fn stored_events(table: &Table, event_id: &str) -> usize {
    table
        .items_with_prefix("PSP_EVENT#")
        .await
        .iter()
        .filter(|i| i["event_id"].as_s().is_ok_and(|id| id == event_id))
        .count()
}

#[tokio::test]
async fn psp_every_refusal_is_401_with_its_reason_and_stores_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let now = unix_now();
    let secret = psp_secret();
    let event_id = unique("evt-refused");
    let body = psp_body(&event_id, "payment.settled", "PSP-nothing");
    let good_ts = now.to_string();
    let good = psp_sign(&secret, &good_ts, &body);
    let skewed_past = (now - 302).to_string();
    let skewed_future = (now + 302).to_string();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("x-psp-timestamp", good_ts.clone())],
            "signature-missing",
        ),
        (vec![("x-psp-signature", good.clone())], "timestamp-missing"),
        (
            vec![
                ("x-psp-timestamp", format!("{now}.0")),
                (
                    "x-psp-signature",
                    psp_sign(&secret, &format!("{now}.0"), &body),
                ),
            ],
            "timestamp-invalid",
        ),
        (
            vec![
                ("x-psp-timestamp", skewed_past.clone()),
                ("x-psp-signature", psp_sign(&secret, &skewed_past, &body)),
            ],
            "timestamp-skew",
        ),
        (
            vec![
                ("x-psp-timestamp", skewed_future.clone()),
                ("x-psp-signature", psp_sign(&secret, &skewed_future, &body)),
            ],
            "timestamp-skew",
        ),
        (
            vec![
                ("x-psp-timestamp", good_ts.clone()),
                (
                    "x-psp-signature",
                    psp_sign("another-secret-entirely-0123456789", &good_ts, &body),
                ),
            ],
            "hmac-mismatch",
        ),
        (
            vec![
                ("x-psp-timestamp", good_ts.clone()),
                ("x-psp-signature", good.to_uppercase()),
            ],
            "hmac-mismatch",
        ),
    ];
    for (headers, reason) in cases {
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = Api::anonymous()
            .psp_webhook(&refs, &body)
            .await
            .expect_error(401, "INVALID_SIGNATURE");
        assert_eq!(
            reply.body["error"]["message"],
            format!("invalid signature: {reason}"),
            "{headers:?}"
        );
    }
    // Signed, but another body than the one signed.
    let other = psp_body(&event_id, "payment.failed", "PSP-nothing");
    Api::anonymous()
        .psp_webhook(
            &[("x-psp-timestamp", &good_ts), ("x-psp-signature", &good)],
            &other,
        )
        .await
        .expect_error(401, "INVALID_SIGNATURE");
    admin
        .get(&format!("/psp/events/{event_id}"))
        .await
        .expect_error(404, "PSP_EVENT_NOT_FOUND");
    assert_eq!(stored_events(&table, &event_id).await, 0);
}

/// The signed body is the truth, not the unsigned headers. The review's
/// attack: a captured, signed `payment.failed` of payout A, replayed within
/// the 300 s with payout B's `X-PSP-Ref` and a fresh `X-PSP-Event-Id`, is 401
/// `header-mismatch` and stores nothing; B stays SENT with its money paid.
/// Headers that repeat the body pass; a header the body does not back is
/// ignored (the event id is then the body's hash, the ref none).
#[tokio::test]
async fn psp_headers_never_override_the_signed_body() {
    let admin = Api::admin();
    let table = Table::new().await;
    let (_, a) = payout(&admin, "10.00").await;
    let (b_escrow, b) = payout(&admin, "20.00").await;
    let a_ref = a["psp_ref"].as_str().unwrap();
    let b_ref = b["psp_ref"].as_str().unwrap();
    let captured_id = unique("evt-captured");
    let body = psp_body(&captured_id, "payment.failed", a_ref);
    let signed = psp_headers(&body);
    let b_before = table.escrow_footprint(b_escrow.escrow).await;
    let fresh = unique("evt-fresh");
    for extra in [
        vec![("x-psp-ref", b_ref), ("x-psp-event-id", fresh.as_str())],
        vec![("x-psp-ref", b_ref)],
        vec![("x-psp-event-id", fresh.as_str())],
    ] {
        let mut refs = header_refs(&signed);
        refs.extend(extra.iter().copied());
        let reply = Api::anonymous()
            .psp_webhook(&refs, &body)
            .await
            .expect_error(401, "INVALID_SIGNATURE");
        assert_eq!(
            reply.body["error"]["message"], "invalid signature: header-mismatch",
            "{extra:?}"
        );
    }
    for id in [&captured_id, &fresh] {
        assert_eq!(stored_events(&table, id).await, 0, "{id}");
    }
    assert_eq!(
        payment(&admin, b["id"].as_u64().unwrap()).await["status"],
        "PENDING"
    );
    assert_eq!(table.escrow_footprint(b_escrow.escrow).await, b_before);

    // The same headers, agreeing with the body: accepted, A fails.
    let mut refs = header_refs(&signed);
    refs.extend([
        ("x-psp-ref", a_ref),
        ("x-psp-event-id", captured_id.as_str()),
    ]);
    Api::anonymous().psp_webhook(&refs, &body).await.expect(200);
    assert_eq!(processed(&admin, &captured_id).await["status"], "APPLIED");
    assert_eq!(
        payment(&admin, a["id"].as_u64().unwrap()).await["status"],
        "ERROR"
    );

    // Headers alone, the body naming neither: not trusted. The event is
    // known by the body's hash and names no payment; B is untouched.
    let bare = json!({"type": "payment.failed", "nonce": unique("n")}).to_string();
    let headers = psp_headers(&bare);
    let mut refs = header_refs(&headers);
    refs.extend([("x-psp-ref", b_ref), ("x-psp-event-id", fresh.as_str())]);
    let reply = Api::anonymous().psp_webhook(&refs, &bare).await.expect(200);
    let hash = kobatela_tests::photos::sha256_hex(bare.as_bytes());
    assert_eq!(reply.body["event_id"], hash.as_str());
    let event = processed(&admin, &hash).await;
    assert_eq!(
        (&event["status"], &event["psp_ref"]),
        (&json!("IGNORED"), &Value::Null)
    );
    assert_eq!(stored_events(&table, &fresh).await, 0);
    assert_eq!(
        payment(&admin, b["id"].as_u64().unwrap()).await["status"],
        "PENDING"
    );
    assert_eq!(table.escrow_footprint(b_escrow.escrow).await, b_before);
}

#[tokio::test]
async fn psp_skew_boundary_previous_secret_and_several_signatures_pass() {
    let admin = Api::admin();
    let secret = psp_secret();
    // (offset from now, the secret that signs, a bad signature in front):
    // each timestamp is taken right before its request is sent, so that
    // waiting for the previous event's processing does not age it.
    let mut cases: Vec<(i64, String, bool)> = vec![
        (300, secret.clone(), false),
        (-298, secret.clone(), false),
        (0, secret.clone(), true),
    ];
    if let Some(previous) = psp_previous_secret() {
        cases.push((0, previous, false));
    }
    for (offset, signer, several) in cases {
        let id = unique("evt-edge");
        let body = psp_body(&id, "payment.created", "PSP-edge");
        let ts = (unix_now() + offset).to_string();
        let mut sig = psp_sign(&signer, &ts, &body);
        if several {
            sig = format!(
                "{},zz, {sig}",
                psp_sign("a-retired-secret-0123456789abcdef", &ts, &body)
            );
        }
        let reply = Api::anonymous()
            .psp_webhook(
                &[("x-psp-timestamp", &ts), ("x-psp-signature", &sig)],
                &body,
            )
            .await
            .expect(200);
        assert_eq!(
            reply.body,
            json!({"ok": "true", "event_id": id, "status": "queued"})
        );
        let event = processed(&admin, &id).await;
        assert_eq!(event["status"], "IGNORED", "{event}");
    }
}

#[tokio::test]
async fn psp_bad_bodies_are_413_and_400_and_store_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    for (body, status, code) in [
        ("x".repeat(256 * 1024 + 1), 413, "PAYLOAD_TOO_LARGE"),
        ("[1, 2]".to_string(), 400, "INVALID_JSON"),
        ("not json".to_string(), 400, "INVALID_JSON"),
        ("".to_string(), 400, "INVALID_JSON"),
    ] {
        let id = unique("evt-bad");
        let headers = psp_headers(&body);
        let mut refs = header_refs(&headers);
        refs.push(("x-psp-event-id", &id));
        Api::anonymous()
            .psp_webhook(&refs, &body)
            .await
            .expect_error(status, code);
        admin
            .get(&format!("/psp/events/{id}"))
            .await
            .expect_error(404, "PSP_EVENT_NOT_FOUND");
        assert_eq!(stored_events(&table, &id).await, 0);
    }
}

#[tokio::test]
async fn psp_settled_event_settles_once_and_a_duplicate_changes_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let (e, p) = payout(&admin, "120.00").await;
    let psp_ref = p["psp_ref"].as_str().unwrap();
    let event_id = unique("evt-settled");
    let reply = send_event(&event_id, "payment.settled", psp_ref)
        .await
        .expect(200);
    assert_eq!(
        reply.body,
        json!({"ok": "true", "event_id": event_id, "status": "queued"})
    );
    let event = processed(&admin, &event_id).await;
    assert_eq!(event["status"], "APPLIED");
    assert_eq!(event["type"], "payment.settled");
    assert_eq!(event["psp_ref"], psp_ref);
    assert_eq!(event["payment_id"], p["id"]);
    assert!(event["received_at"].as_str().unwrap().ends_with('Z'));
    assert!(event["processed_at"].as_str().unwrap().ends_with('Z'));
    let id = p["id"].as_u64().unwrap();
    let settled = payment(&admin, id).await;
    assert_eq!(settled["status"], "SETTLED");
    assert_eq!(settled["attempts"], 1);
    let before = table.escrow_footprint(e.escrow).await;
    assert_eq!((before.available, before.paid), (0, 12000));
    assert_eq!(
        table.audit_actions("PAYMENT", id).await,
        vec!["PAYOUT_PENDING", "PAYMENT_SETTLED"]
    );
    let kinds: Vec<String> = admin
        .get(&format!("/escrows/{}/events", e.escrow))
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.last().map(String::as_str), Some("PAYMENT_SETTLED"));
    let trail = admin
        .get(&format!("/audit/payment/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(trail["items"][1]["actor"], "psp");

    // The PSP sends it again, and another event of the same meaning.
    assert_eq!(
        send_event(&event_id, "payment.settled", psp_ref)
            .await
            .expect(200)
            .body,
        json!({"ok": "true", "event_id": event_id, "status": "duplicate"})
    );
    let again = unique("evt-settled-again");
    send_event(&again, "payment.succeeded", psp_ref)
        .await
        .expect(200);
    assert_eq!(processed(&admin, &again).await["status"], "IGNORED");
    assert_eq!(table.escrow_footprint(e.escrow).await, before);
    assert_eq!(payment(&admin, id).await, settled);
}

#[tokio::test]
async fn psp_failed_event_gives_the_money_back_then_execute_sends_it_again() {
    let admin = Api::admin();
    let table = Table::new().await;
    let (e, p) = payout(&admin, "80.00").await;
    let id = p["id"].as_u64().unwrap();
    let old_ref = p["psp_ref"].as_str().unwrap().to_string();
    let failed_event = unique("evt-failed");
    send_event(&failed_event, "payment_failed", &old_ref)
        .await
        .expect(200);
    assert_eq!(processed(&admin, &failed_event).await["status"], "APPLIED");
    let failed = payment(&admin, id).await;
    assert_eq!(failed["status"], "ERROR");
    let back = escrow(&admin, e.escrow).await;
    assert_eq!(back["amount_available"], "80.00");
    assert_eq!(back["amount_paid"], "0.00");
    assert_eq!(back["status"], "RELEASED");
    assert_money_adds_up(&back);
    assert_eq!(
        alerts_about(&admin, "PAYMENT_FAILED", "payment_id", &json!(id)).await,
        1
    );
    assert_eq!(
        table.audit_actions("PAYMENT", id).await,
        vec!["PAYOUT_PENDING", "PAYMENT_FAILED"]
    );

    // Staff send it again: a new reference, the money out again.
    let retried = admin
        .post(&format!("/payments/execute/{id}"), json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(retried["status"], "PENDING");
    assert_eq!(retried["attempts"], 2);
    let new_ref = retried["psp_ref"].as_str().unwrap().to_string();
    assert_ne!(new_ref, old_ref);
    let out = escrow(&admin, e.escrow).await;
    assert_eq!(
        (
            out["amount_available"].as_str(),
            out["amount_paid"].as_str()
        ),
        (Some("0.00"), Some("80.00"))
    );
    assert_money_adds_up(&out);
    // Again: unchanged.
    let same = admin
        .post(&format!("/payments/execute/{id}"), json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(same, retried);

    // A late "settled" of the failed attempt contradicts it: one alert.
    let late = unique("evt-late");
    send_event(&late, "payment.settled", &old_ref)
        .await
        .expect(200);
    let conflict = processed(&admin, &late).await;
    assert_eq!(conflict["status"], "CONFLICT");
    assert_eq!(
        alerts_about(&admin, "PSP_EVENT_CONFLICT", "event_id", &json!(late)).await,
        1
    );
    assert_eq!(payment(&admin, id).await["status"], "PENDING");
    // The new attempt settles.
    let ok = unique("evt-ok");
    send_event(&ok, "payment.settled", &new_ref)
        .await
        .expect(200);
    assert_eq!(processed(&admin, &ok).await["status"], "APPLIED");
    assert_eq!(payment(&admin, id).await["status"], "SETTLED");
    assert_money_adds_up(&escrow(&admin, e.escrow).await);
    assert_eq!(
        table.audit_actions("PAYMENT", id).await,
        vec![
            "PAYOUT_PENDING",
            "PAYMENT_FAILED",
            "PAYOUT_PENDING",
            "PAYMENT_SETTLED"
        ]
    );
}

#[tokio::test]
async fn psp_contradiction_conflicts_once_and_changes_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let (e, p) = payout(&admin, "30.00").await;
    let psp_ref = p["psp_ref"].as_str().unwrap();
    let settled = unique("evt-s");
    send_event(&settled, "payment.settled", psp_ref)
        .await
        .expect(200);
    assert_eq!(processed(&admin, &settled).await["status"], "APPLIED");
    let before = table.escrow_footprint(e.escrow).await;
    let contra = unique("evt-contra");
    send_event(&contra, "payment.failed", psp_ref)
        .await
        .expect(200);
    let event = processed(&admin, &contra).await;
    assert_eq!(event["status"], "CONFLICT");
    assert_eq!(event["payment_id"], p["id"]);
    assert_eq!(
        payment(&admin, p["id"].as_u64().unwrap()).await["status"],
        "SETTLED"
    );
    assert_eq!(table.escrow_footprint(e.escrow).await, before);
    assert_eq!(
        alerts_about(&admin, "PSP_EVENT_CONFLICT", "event_id", &json!(contra)).await,
        1
    );
    // The PSP retries the contradiction: a duplicate, no second alert.
    assert_eq!(
        send_event(&contra, "payment.failed", psp_ref)
            .await
            .expect(200)
            .body["status"],
        "duplicate"
    );
    assert_eq!(
        alerts_about(&admin, "PSP_EVENT_CONFLICT", "event_id", &json!(contra)).await,
        1
    );
}

#[tokio::test]
async fn psp_unknown_reference_alerts_once_and_unknown_types_are_ignored() {
    let admin = Api::admin();
    let table = Table::new().await;
    let unknown = unique("evt-unknown");
    let psp_ref = unique("PSP-nobody");
    send_event(&unknown, "payment.settled", &psp_ref)
        .await
        .expect(200);
    let event = processed(&admin, &unknown).await;
    assert_eq!(event["status"], "IGNORED");
    assert_eq!(event["payment_id"], Value::Null);
    assert_eq!(
        alerts_about(&admin, "PSP_UNKNOWN_REFERENCE", "event_id", &json!(unknown)).await,
        1
    );

    let (e, p) = payout(&admin, "10.00").await;
    let before = table.escrow_footprint(e.escrow).await;
    let other = unique("evt-other");
    send_event(&other, "payment.created", p["psp_ref"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(processed(&admin, &other).await["status"], "IGNORED");
    assert_eq!(payment(&admin, p["id"].as_u64().unwrap()).await, p);
    assert_eq!(table.escrow_footprint(e.escrow).await, before);
}

#[tokio::test]
async fn psp_events_and_execute_are_for_staff_and_unknown_ids_are_404() {
    let admin = Api::admin();
    admin
        .get(&format!("/psp/events/{}", unique("evt-none")))
        .await
        .expect_error(404, "PSP_EVENT_NOT_FOUND");
    admin
        .post("/payments/execute/999999999", json!({}))
        .await
        .expect_error(404, "PAYMENT_NOT_FOUND");
    let (e, p) = payout(&admin, "5.00").await;
    let id = p["id"].as_u64().unwrap();
    // SENT: unchanged.
    assert_eq!(
        admin
            .post(&format!("/payments/execute/{id}"), json!({}))
            .await
            .expect(200)
            .body,
        p
    );
    let client = user_key(&admin, e.client).await;
    client
        .post(&format!("/payments/execute/{id}"), json!({}))
        .await
        .expect_error(403, "FORBIDDEN");
    client
        .get(&format!("/psp/events/{}", unique("evt")))
        .await
        .expect_error(403, "FORBIDDEN");
    Api::anonymous()
        .post(&format!("/payments/execute/{id}"), json!({}))
        .await
        .expect_error(401, "UNAUTHORIZED");
    let support_key = admin
        .post(
            "/apikeys",
            json!({"name": unique("support"), "scope": "support"}),
        )
        .await
        .expect(201)
        .body["key"]
        .as_str()
        .unwrap()
        .to_string();
    let support = Api::with_key(Some(support_key));
    support
        .get(&format!("/psp/events/{}", unique("evt")))
        .await
        .expect_error(404, "PSP_EVENT_NOT_FOUND");
}

/// Fails a SENT payout through the webhook, waiting for the consumer.
async fn fail_payment(admin: &Api, psp_ref: &str) {
    let id = unique("evt-fail");
    send_event(&id, "payment.failed", psp_ref).await.expect(200);
    assert_eq!(processed(admin, &id).await["status"], "APPLIED");
}

#[tokio::test]
async fn psp_concurrent_executes_pay_at_most_once() {
    let admin = Api::admin();
    let table = Table::new().await;
    for round in 0..3 {
        let (e, p) = payout(&admin, "100.00").await;
        let id = p["id"].as_u64().unwrap();
        fail_payment(&admin, p["psp_ref"].as_str().unwrap()).await;
        let calls = (0..16).map(|_| {
            let admin = admin.clone();
            async move {
                admin
                    .post(&format!("/payments/execute/{id}"), json!({}))
                    .await
            }
        });
        let replies = futures_join_all(calls).await;
        let mut refs = std::collections::BTreeSet::new();
        for reply in replies {
            let reply = reply.expect(200);
            assert_eq!(reply.body["status"], "PENDING");
            assert_eq!(reply.body["attempts"], 2, "round {round}: {}", reply.text);
            refs.insert(reply.body["psp_ref"].as_str().unwrap().to_string());
        }
        assert_eq!(refs.len(), 1, "round {round}: one new attempt: {refs:?}");
        let f = table.escrow_footprint(e.escrow).await;
        assert_eq!(
            (f.available, f.paid, f.funded),
            (0, 10000, 10000),
            "round {round}"
        );
        assert_eq!(
            table.audit_actions("PAYMENT", id).await,
            vec!["PAYOUT_PENDING", "PAYMENT_FAILED", "PAYOUT_PENDING"]
        );
    }
}

async fn futures_join_all<F: std::future::Future<Output = Reply> + Send + 'static>(
    calls: impl Iterator<Item = F>,
) -> Vec<Reply> {
    let handles: Vec<_> = calls.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn psp_execute_without_the_money_is_409() {
    // A milestone payout fails; the client then approves the remainder,
    // which takes what came back: the retry finds nothing available.
    let api = InProcess::new("psp-insufficient").await;
    let (e, paid) = api.failed_first_milestone("100.00", "60.00", "40.00").await;
    let back = api
        .get(&format!("/escrows/{}", e.escrow))
        .await
        .expect(200)
        .body;
    assert_eq!(back["milestones"][0]["status"], "APPROVED");
    assert_eq!(back["amount_available"], "100.00");
    api.call(
        "POST",
        &format!("/escrows/{}/client-approve", e.escrow),
        &[],
        None,
    )
    .await
    .expect(200);
    let table = Table::named(&api.table).await;
    let before = table.escrow_footprint(e.escrow).await;
    assert_eq!(before.available, 0);
    api.call("POST", &format!("/payments/execute/{}", paid.id), &[], None)
        .await
        .expect_error(409, "INSUFFICIENT_ESCROW_BALANCE");
    assert_eq!(table.escrow_footprint(e.escrow).await, before);
    let after = api
        .get(&format!("/payments/{}", paid.id))
        .await
        .expect(200)
        .body;
    assert_eq!(after["status"], "ERROR");
}

#[tokio::test]
async fn psp_milestone_payout_retry_pays_the_milestone_again() {
    let api = InProcess::new("psp-milestone").await;
    let (e, paid) = api.failed_first_milestone("50.00", "20.00", "30.00").await;
    let retried = api
        .call("POST", &format!("/payments/execute/{}", paid.id), &[], None)
        .await
        .expect(200)
        .body;
    assert_eq!(retried["attempts"], 2);
    let after = api
        .get(&format!("/escrows/{}", e.escrow))
        .await
        .expect(200)
        .body;
    assert_eq!(after["milestones"][0]["status"], "PAID");
    assert_eq!(after["amount_available"], "30.00");
    assert_money_adds_up(&after);
}

#[tokio::test]
async fn psp_events_apply_once_in_any_arrival_order() {
    let api = InProcess::new("psp-order").await;
    let table = Table::named(&api.table).await;
    for (first, second) in [
        ("payment.failed", "payment.settled"),
        ("payment.settled", "payment.failed"),
    ] {
        let Payout {
            escrow,
            payment,
            psp_ref,
        } = api.payout("40.00").await;
        let psp_ref = psp_ref.as_str();
        // Both arrive before the consumer runs; the queue hands them over in
        // its own order, twice each (a redelivery).
        let mut ids = Vec::new();
        for kind in [first, second] {
            let id = unique("evt");
            let body = psp_body(&id, kind, psp_ref);
            let headers = psp_headers(&body);
            api.psp_webhook(&header_refs(&headers), &body)
                .await
                .expect(200);
            ids.push(id);
        }
        // The second is consumed first: arrival order is not sending order.
        for id in ids.iter().rev().chain(ids.iter()) {
            let mut record = SqsMessage::default();
            record.message_id = Some(unique("m"));
            record.body = Some(json!({"event_id": id}).to_string());
            let mut event = SqsEvent::default();
            event.records.push(record);
            let response = psp_events::handle(&api.state.store, event).await;
            assert!(response.batch_item_failures.is_empty());
        }
        api.consume_psp().await;
        let mut seen = Vec::new();
        for id in &ids {
            seen.push(
                api.get(&format!("/psp/events/{id}")).await.expect(200).body["status"].clone(),
            );
        }
        // The one consumed first (the second sent) applied; the other conflicts.
        assert_eq!(
            seen,
            vec![json!("CONFLICT"), json!("APPLIED")],
            "{first} then {second}"
        );
        let after = api
            .get(&format!("/payments/{payment}"))
            .await
            .expect(200)
            .body;
        let expected = if second == "payment.settled" {
            "SETTLED"
        } else {
            "ERROR"
        };
        assert_eq!(after["status"], expected);
        let f = table.escrow_footprint(escrow).await;
        if expected == "ERROR" {
            assert_eq!((f.available, f.paid), (4000, 0));
        } else {
            assert_eq!((f.available, f.paid), (0, 4000));
        }
        assert_eq!(
            table.audit_actions("PAYMENT", payment).await.len(),
            2,
            "sent, then one PSP change"
        );
    }
}

/// An in-process API whose DynamoDB and SQS clients go through `wire`
/// (and `faults`).
async fn faulty(prefix: &str, wire: &Wire, faults: &Faults) -> InProcess {
    InProcess::with_clients(
        prefix,
        wire.dynamodb_client(Some(faults)).await,
        Some(wire.sqs_client().await),
        &[],
    )
    .await
}

/// A SENT payout made in-process: (escrow, payment id, psp_ref).
async fn stored_status(table: &Table, event_id: &str) -> Option<String> {
    table
        .items_with_prefix("PSP_EVENT#")
        .await
        .into_iter()
        .find(|i| i["event_id"].as_s().is_ok_and(|id| id == event_id))
        .map(|i| i["status"].as_s().unwrap().clone())
}

#[tokio::test]
async fn psp_a_failed_sqs_send_is_503_then_the_retry_queues_and_applies_once() {
    let (wire, faults) = (Wire::default(), Faults::start().await);
    let api = faulty("psp-sqsfail", &wire, &faults).await;
    let table = Table::named(&api.table).await;
    let Payout {
        escrow,
        payment,
        psp_ref,
    } = api.payout("25.00").await;
    let event = unique("evt");
    let body = psp_body(&event, "payment.settled", &psp_ref);
    let headers = psp_headers(&body);
    wire.refuse_calls("SendMessage", 1);
    let reply = api
        .psp_webhook(&header_refs(&headers), &body)
        .await
        .expect_error(503, "SERVICE_BUSY");
    assert_eq!(reply.headers["retry-after"], "1");
    assert_eq!(
        stored_status(&table, &event).await.as_deref(),
        Some("RECEIVED")
    );
    assert_eq!(api.consume_psp().await, (0, 0), "nothing was queued");
    // The PSP retries the same request.
    let reply = api
        .psp_webhook(&header_refs(&headers), &body)
        .await
        .expect(200);
    assert_eq!(reply.body["status"], "queued");
    assert_eq!(
        stored_status(&table, &event).await.as_deref(),
        Some("QUEUED")
    );
    assert_eq!(api.consume_psp().await, (1, 0));
    assert_eq!(
        stored_status(&table, &event).await.as_deref(),
        Some("APPLIED")
    );
    let p = api
        .get(&format!("/payments/{payment}"))
        .await
        .expect(200)
        .body;
    assert_eq!(p["status"], "SETTLED");
    assert_eq!(
        table.audit_actions("PAYMENT", payment).await,
        vec!["PAYOUT_PENDING", "PAYMENT_SETTLED"]
    );
    let f = table.escrow_footprint(escrow).await;
    assert_eq!((f.available, f.paid), (0, 2500));
    // A third delivery is a duplicate.
    assert_eq!(
        api.psp_webhook(&header_refs(&headers), &body)
            .await
            .expect(200)
            .body["status"],
        "duplicate"
    );
}

#[tokio::test]
async fn psp_a_busy_table_is_503_with_nothing_stored_then_the_retry_applies_once() {
    let (wire, faults) = (Wire::default(), Faults::start().await);
    let api = faulty("psp-busy", &wire, &faults).await;
    let table = Table::named(&api.table).await;
    let Payout {
        payment, psp_ref, ..
    } = api.payout("15.00").await;
    for fault in [
        Fault::Refused("ThrottlingException"),
        Fault::Refused("ProvisionedThroughputExceededException"),
    ] {
        let event = unique("evt");
        let body = psp_body(&event, "payment.failed", &psp_ref);
        let headers = psp_headers(&body);
        faults.inject_forever(fault);
        api.psp_webhook(&header_refs(&headers), &body)
            .await
            .expect_error(503, "SERVICE_BUSY");
        faults.clear();
        assert_eq!(stored_status(&table, &event).await, None, "{fault:?}");
        assert_eq!(api.consume_psp().await, (0, 0));
    }
    let event = unique("evt");
    let body = psp_body(&event, "payment.failed", &psp_ref);
    let headers = psp_headers(&body);
    faults.inject(Fault::Refused("ThrottlingException"), 4);
    assert_eq!(
        api.psp_webhook(&header_refs(&headers), &body)
            .await
            .expect(200)
            .body["status"],
        "queued"
    );
    assert_eq!(api.consume_psp().await, (1, 0));
    let p = api
        .get(&format!("/payments/{payment}"))
        .await
        .expect(200)
        .body;
    assert_eq!(p["status"], "ERROR");
    assert_eq!(
        table.audit_actions("PAYMENT", payment).await,
        vec!["PAYOUT_PENDING", "PAYMENT_FAILED"]
    );
}

#[tokio::test]
async fn psp_lost_answers_send_again_and_the_consumer_applies_once() {
    let (wire, faults) = (Wire::default(), Faults::start().await);
    let api = faulty("psp-lost", &wire, &faults).await;
    let table = Table::named(&api.table).await;
    let Payout {
        escrow,
        payment,
        psp_ref,
    } = api.payout("60.00").await;
    let event = unique("evt");
    let body = psp_body(&event, "payment.failed", &psp_ref);
    let headers = psp_headers(&body);
    // The record landed but its answer was lost (the SDK retries: the
    // condition fails, the event is found RECEIVED); every send landed and
    // lost its answer: 503, though three messages are on the queue.
    wire.lose_answers("PutItem", 1);
    wire.lose_answers("SendMessage", 3);
    api.psp_webhook(&header_refs(&headers), &body)
        .await
        .expect_error(503, "SERVICE_BUSY");
    assert_eq!(wire.lost(), 4);
    assert_eq!(
        stored_status(&table, &event).await.as_deref(),
        Some("RECEIVED")
    );
    // The PSP retries: sent again, one more message.
    assert_eq!(
        api.psp_webhook(&header_refs(&headers), &body)
            .await
            .expect(200)
            .body["status"],
        "queued"
    );
    assert_eq!(api.consume_psp().await, (4, 0), "four messages, one event");
    assert_eq!(
        stored_status(&table, &event).await.as_deref(),
        Some("APPLIED")
    );
    assert_eq!(
        table.audit_actions("PAYMENT", payment).await,
        vec!["PAYOUT_PENDING", "PAYMENT_FAILED"]
    );
    let f = table.escrow_footprint(escrow).await;
    assert_eq!((f.available, f.paid), (6000, 0));
    let alerts = table.items_with_prefix("ALERT#PAYMENT_FAILED#").await;
    assert_eq!(alerts.len(), 1, "one alert for one failure");
}

#[tokio::test]
async fn psp_consumer_recovers_from_every_fault_or_reports_the_message() {
    let (wire, faults) = (Wire::default(), Faults::start().await);
    let api = faulty("psp-consumer", &wire, &faults).await;
    let table = Table::named(&api.table).await;
    for fault in Fault::ALL {
        let Payout {
            escrow,
            payment,
            psp_ref,
        } = api.payout("10.00").await;
        let event = unique("evt");
        let body = psp_body(&event, "payment.failed", &psp_ref);
        let headers = psp_headers(&body);
        api.psp_webhook(&header_refs(&headers), &body)
            .await
            .expect(200);
        // The queue's message, handed to the consumer as SQS would.
        let message = || {
            let mut record = SqsMessage::default();
            record.message_id = Some("m-1".into());
            record.body = Some(json!({"event_id": event}).to_string());
            let mut batch = SqsEvent::default();
            batch.records.push(record);
            batch
        };
        let before = table.escrow_footprint(escrow).await;
        faults.inject_forever(fault);
        let response = psp_events::handle(&api.state.store, message()).await;
        faults.clear();
        assert_eq!(
            response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect::<Vec<_>>(),
            vec!["m-1"],
            "{fault:?}"
        );
        assert_eq!(table.escrow_footprint(escrow).await, before, "{fault:?}");
        assert_eq!(
            stored_status(&table, &event).await.as_deref(),
            Some("QUEUED")
        );
        // Redelivered, through a few more faults: applied once.
        faults.inject(fault, 4);
        let response = psp_events::handle(&api.state.store, message()).await;
        faults.clear();
        assert!(response.batch_item_failures.is_empty(), "{fault:?}");
        assert_eq!(
            stored_status(&table, &event).await.as_deref(),
            Some("APPLIED")
        );
        let after = table.escrow_footprint(escrow).await;
        assert_eq!((after.available, after.paid), (1000, 0), "{fault:?}");
        // Redelivered again: nothing changes, no second alert.
        assert!(psp_events::handle(&api.state.store, message())
            .await
            .batch_item_failures
            .is_empty());
        assert_eq!(table.escrow_footprint(escrow).await, after);
        assert_eq!(
            table.audit_actions("PAYMENT", payment).await,
            vec!["PAYOUT_PENDING", "PAYMENT_FAILED"]
        );
        // The real message is still on the queue: consumed, changes nothing.
        assert_eq!(api.consume_psp().await, (1, 0));
        assert_eq!(table.escrow_footprint(escrow).await, after);
    }
    assert_eq!(
        table.items_with_prefix("ALERT#PAYMENT_FAILED#").await.len(),
        Fault::ALL.len()
    );
}
