//! The schedule's escrow half: an open escrow past its deadline gets what
//! `check-deadline` does. RELEASABLE ones are paid out once, FUNDED ones
//! raise one `ESCROW_DEADLINE_MISSED` alert and pay nobody, even when three
//! runs overlap and when the schedule runs again; nothing else is touched.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kobatela_tests::{unique, EscrowSetup, InProcess, Table};
use serde_json::{json, Value};

fn scheduled_event() -> EventBridgeEvent {
    serde_json::from_value(json!({
        "version": "0", "id": unique("run"), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "1", "time": "2030-01-01T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}
    }))
    .unwrap()
}

async fn escrow(api: &InProcess, id: u64) -> Value {
    api.get(&format!("/escrows/{id}")).await.expect(200).body
}

async fn timeline(api: &InProcess, id: u64) -> Vec<String> {
    api.get(&format!("/escrows/{id}/events?limit=100"))
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The `ESCROW_DEADLINE_MISSED` alerts about `escrow`.
async fn missed_alerts(api: &InProcess, escrow: u64) -> usize {
    api.get("/alerts?type=ESCROW_DEADLINE_MISSED&limit=100")
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["payload"]["escrow_id"] == escrow)
        .count()
}

/// An escrow of `total`, funded and (if `deliver`) marked delivered.
async fn funded(api: &InProcess, total: &str, deliver: bool) -> EscrowSetup {
    let e = EscrowSetup::new(api, total).await;
    api.deposit(e.escrow, &unique("k"), total).await.expect(200);
    if deliver {
        api.call(
            "POST",
            &format!("/escrows/{}/mark-delivered", e.escrow),
            &[],
            None,
        )
        .await
        .expect(200);
    }
    e
}

#[tokio::test]
async fn overlapping_sweeps_release_or_alert_each_overdue_escrow_once() {
    let api = InProcess::new("deadlines").await;
    let table = Table::named(&api.table).await;
    let releasable = funded(&api, "40.00", true).await;
    let idle = funded(&api, "25.00", false).await;
    let draft = EscrowSetup::new(&api, "10.00").await;
    let not_due = funded(&api, "30.00", true).await;
    for e in [&releasable, &idle, &draft] {
        table.backdate_escrow(e.escrow).await;
    }
    let untouched = [
        (draft.escrow, table.escrow_footprint(draft.escrow).await),
        (not_due.escrow, table.escrow_footprint(not_due.escrow).await),
    ];

    let (a, b, c) = tokio::join!(
        mandate_expiry::handle(&api.state.store, scheduled_event()),
        mandate_expiry::handle(&api.state.store, scheduled_event()),
        mandate_expiry::handle(&api.state.store, scheduled_event()),
    );
    for run in [a, b, c] {
        let run = run.expect("a sweep run succeeds");
        assert_eq!(run["escrows_skipped"], 0, "{run}");
    }

    // The RELEASABLE one: released, its 40.00 paid once to the provider.
    let released = escrow(&api, releasable.escrow).await;
    assert_eq!(released["status"], "RELEASED");
    assert_eq!(released["amount_available"], "0.00");
    assert_eq!(released["amount_paid"], "40.00");
    let payments = api
        .get(&format!("/payments?escrow_id={}", releasable.escrow))
        .await
        .expect(200)
        .body;
    let payments = payments["items"].as_array().unwrap();
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["kind"], "PAYOUT");
    assert_eq!(payments[0]["amount"], "40.00");
    assert_eq!(
        payments[0]["payee"],
        json!({"user_id": releasable.provider})
    );
    let kinds = timeline(&api, releasable.escrow).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "DEADLINE_RELEASED").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(table.escrow_footprint(releasable.escrow).await.payments, 1);

    // The FUNDED one: nobody paid, one alert, one timeline entry.
    let missed = escrow(&api, idle.escrow).await;
    assert_eq!(missed["status"], "FUNDED");
    assert_eq!(missed["amount_available"], "25.00");
    assert_eq!(table.escrow_footprint(idle.escrow).await.payments, 0);
    assert_eq!(missed_alerts(&api, idle.escrow).await, 1);
    assert_eq!(
        timeline(&api, idle.escrow).await,
        ["CREATED", "DEPOSIT", "DEADLINE_MISSED"]
    );

    // A DRAFT past its deadline and a RELEASABLE one not yet due: unchanged.
    for (id, before) in &untouched {
        assert_eq!(&table.escrow_footprint(*id).await, before, "escrow {id}");
    }

    // The next run changes nothing: no second payment, alert or event.
    let again = mandate_expiry::handle(&api.state.store, scheduled_event())
        .await
        .unwrap();
    assert_eq!(again["escrows_released"], 0, "{again}");
    assert_eq!(table.escrow_footprint(releasable.escrow).await.payments, 1);
    assert_eq!(missed_alerts(&api, idle.escrow).await, 1);
    assert_eq!(
        timeline(&api, idle.escrow).await,
        ["CREATED", "DEPOSIT", "DEADLINE_MISSED"]
    );
    // The client may still take the money back.
    api.call(
        "POST",
        &format!("/escrows/{}/client-reject", idle.escrow),
        &[],
        None,
    )
    .await
    .expect(200);
    assert_eq!(escrow(&api, idle.escrow).await["status"], "REFUNDED");
}
