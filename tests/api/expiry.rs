//! Risk R5: mandates expire without anyone calling an endpoint, and the three
//! ways in (the schedule, `/mandates/cleanup`, a purchase that notices) each
//! expire a mandate exactly once, free its guard and audit it.

use kobatela_tests::{unique, Api, InProcess, MandateSetup, Table};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_schedule_expires_overdue_mandates() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "25.00").await;
    table.backdate_mandate(s.mandate).await;

    // kobatela-local runs the sweep every KOBATELA_SWEEP_SECONDS (1 s in tests).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mandate = loop {
        let mandate = admin
            .get(&format!("/mandates/{}", s.mandate))
            .await
            .expect(200)
            .body;
        if mandate["status"] != "ACTIVE" || Instant::now() > deadline {
            break mandate;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(mandate["status"], "EXPIRED");
    assert_eq!(mandate["total_amount"], "25.00", "expiry moves no money");
    assert_eq!(
        table.audit_actions("USAGE_MANDATE", s.mandate).await,
        ["USAGE_MANDATE_CREATED", "USAGE_MANDATE_EXPIRED"]
    );
    admin
        .purchase(&unique("k"), s.purchase("1.00"))
        .await
        .expect_error(403, "MANDATE_REQUIRED");
    // The one-ACTIVE guard is free again.
    admin
        .post(
            "/mandates",
            json!({"sender_id": s.sender, "beneficiary_id": s.beneficiary, "total_amount": "5", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await
        .expect(201);
}

#[tokio::test]
async fn cleanup_expires_each_overdue_mandate_once_even_when_runs_overlap() {
    let api = InProcess::new("expiry").await;
    let table = Table::named(&api.table).await;
    let overdue = [
        MandateSetup::new(&api, "10.00").await,
        MandateSetup::new(&api, "20.00").await,
    ];
    let current = MandateSetup::new(&api, "30.00").await;
    for s in &overdue {
        table.backdate_mandate(s.mandate).await;
    }

    // Two cleanups and the scheduled handler, all at once.
    let event: aws_lambda_events::eventbridge::EventBridgeEvent =
        serde_json::from_value(json!({"version": "0", "id": "t", "detail-type": "Scheduled Event", "source": "aws.events", "account": "1", "time": "2030-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}))
            .unwrap();
    let (a, b, scheduled) = tokio::join!(
        api.post("/mandates/cleanup", json!({})),
        api.post("/mandates/cleanup", json!({})),
        mandate_expiry::handle(&api.state.store, event),
    );
    let a = a.expect(202).body["expired"].as_u64().unwrap();
    let b = b.expect(202).body["expired"].as_u64().unwrap();
    let scheduled = scheduled.unwrap()["expired"].as_u64().unwrap();
    assert_eq!(
        a + b + scheduled,
        2,
        "each overdue mandate expired exactly once"
    );

    for s in &overdue {
        let mandate = api
            .get(&format!("/mandates/{}", s.mandate))
            .await
            .expect(200)
            .body;
        assert_eq!(mandate["status"], "EXPIRED");
        assert_eq!(
            table.audit_actions("USAGE_MANDATE", s.mandate).await,
            ["USAGE_MANDATE_CREATED", "USAGE_MANDATE_EXPIRED"]
        );
    }
    let untouched = api
        .get(&format!("/mandates/{}", current.mandate))
        .await
        .expect(200)
        .body;
    assert_eq!(untouched["status"], "ACTIVE");
    // Nothing left to do: idempotent.
    assert_eq!(
        api.post("/mandates/cleanup", json!({}))
            .await
            .expect(202)
            .body["expired"],
        0
    );
}

#[tokio::test]
async fn a_purchase_notices_expiry() {
    let api = InProcess::new("expiry").await;
    let table = Table::named(&api.table).await;
    let s = MandateSetup::new(&api, "10.00").await;
    table.backdate_mandate(s.mandate).await;

    let key = unique("k");
    let refused = api
        .call(
            "POST",
            "/spend/purchases",
            &[("idempotency-key", &key)],
            Some(s.purchase("1.00")),
        )
        .await
        .expect_error(403, "MANDATE_EXPIRED");
    let mandate = api
        .get(&format!("/mandates/{}", s.mandate))
        .await
        .expect(200)
        .body;
    assert_eq!(mandate["status"], "EXPIRED");
    assert_eq!(mandate["total_amount"], "10.00");
    assert_eq!(
        table.audit_actions("USAGE_MANDATE", s.mandate).await,
        ["USAGE_MANDATE_CREATED", "USAGE_MANDATE_EXPIRED"]
    );
    // Retried with the same key: the same refusal, not a different one.
    let again = api
        .call(
            "POST",
            "/spend/purchases",
            &[("idempotency-key", &key)],
            Some(s.purchase("1.00")),
        )
        .await;
    assert_eq!((again.status, again.text), (refused.status, refused.text));
    assert!(table.purchases_of(s.mandate).await.is_empty());
}

#[tokio::test]
async fn an_overdue_mandate_does_not_block_a_new_one() {
    let api = InProcess::new("expiry").await;
    let table = Table::named(&api.table).await;
    let s = MandateSetup::new(&api, "10.00").await;
    table.backdate_mandate(s.mandate).await;
    let body = json!({"sender_id": s.sender, "beneficiary_id": s.beneficiary, "total_amount": "5", "expires_at": "2099-01-01T00:00:00Z"});
    let fresh = api.post("/mandates", body.clone()).await.expect(201);
    assert_ne!(fresh.id(), s.mandate);
    assert_eq!(
        api.get(&format!("/mandates/{}", s.mandate)).await.body["status"],
        "EXPIRED"
    );
    // …but a live one does.
    api.post("/mandates", body)
        .await
        .expect_error(409, "MANDATE_CONFLICT");
}
