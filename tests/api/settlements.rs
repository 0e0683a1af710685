//! Settlement reconciliation (`shared::ops::settlement`) on a table of its
//! own: payouts made and settled through the API, held against a PSP
//! report that agrees on one, differs in amount on one, in status on one,
//! names an unknown reference and leaves one out; each discrepancy is one
//! `SETTLEMENT_MISMATCH` alert, once however often it is reported; a bad
//! report is refused naming its line, and stores nothing.

use kobatela_tests::{unique, EscrowSetup, InProcess};
use serde_json::Value;
use shared::{
    domain::time::Timestamp, ops::settlement::reconcile_report, store::list::PageRequest,
};

/// An escrow released whole: its payout, PENDING.
async fn payout(world: &InProcess, amount: &str) -> Value {
    let e = EscrowSetup::new(world, amount).await;
    world
        .deposit(e.escrow, &unique("d"), amount)
        .await
        .expect(200);
    for action in ["mark-delivered", "client-approve"] {
        world.escrow_action(e.escrow, action).await.expect(200);
    }
    let page = world
        .get(&format!("/payments?escrow_id={}", e.escrow))
        .await
        .expect(200);
    page.body["items"][0].clone()
}

async fn settle(world: &InProcess, psp_ref: &str) {
    let body = kobatela_tests::psp_body(&unique("evt"), "payment.settled", psp_ref);
    let headers = kobatela_tests::psp_headers(&body);
    world
        .psp_webhook(&kobatela_tests::header_refs(&headers), &body)
        .await
        .expect(200);
    assert_eq!(world.consume_psp().await, (1, 0));
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[tokio::test]
async fn each_discrepancy_is_found_alerted_once_and_stored() {
    let world = InProcess::new("settle").await;
    let store = &world.state.store;
    let matched = payout(&world, "40.00").await;
    let differs = payout(&world, "25.00").await;
    let missing = payout(&world, "12.00").await;
    let pending = payout(&world, "8.00").await;
    for p in [&matched, &differs, &missing] {
        settle(&world, text(&p["psp_ref"])).await;
    }
    let from = Timestamp::now().plus_seconds(-3600);
    let to = Timestamp::now().plus_seconds(3600);
    let report = format!(
        "psp_ref,amount,currency,status,settled_at\n\
         {},40.00,USD,SETTLED,{from}\n\
         {},25.01,USD,SETTLED,{from}\n\
         {},8.00,USD,SETTLED,{to}\n\
         PSP-nobody-knows,1.00,USD,SETTLED,{to}\n",
        text(&matched["psp_ref"]),
        text(&differs["psp_ref"]),
        text(&pending["psp_ref"]),
    );
    let first = reconcile_report(store, report.as_bytes(), "apikey:1".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            first.lines,
            first.matched,
            first.amount_differs,
            first.status_differs,
            first.unknown_reference,
            first.missing_from_report
        ),
        (4, 1, 1, 1, 1, 1),
        "{first:?}"
    );
    assert_eq!(first.alerts_raised, 4);
    assert_eq!(
        (first.period_start, first.period_end),
        (Some(from), Some(to))
    );
    let kinds: Vec<&str> = first
        .discrepancies
        .iter()
        .map(|d| text(&d["kind"]))
        .collect();
    assert_eq!(
        kinds,
        [
            "AMOUNT_DIFFERS",
            "STATUS_DIFFERS",
            "UNKNOWN_REFERENCE",
            "MISSING_FROM_REPORT"
        ]
    );
    assert_eq!(first.discrepancies[0]["ours"]["amount"], "25.00");
    assert_eq!(first.discrepancies[0]["theirs"]["amount"], "25.01");
    assert_eq!(first.discrepancies[1]["ours"], "PENDING");
    assert_eq!(first.discrepancies[3]["payment_id"], missing["id"]);
    let alerts = world.alerts("SETTLEMENT_MISMATCH").await;
    assert_eq!(alerts.len(), 4);
    assert!(alerts
        .iter()
        .all(|a| a["payload"]["report_id"] == first.id.get()));

    // The same report again: stored again, alerted no more.
    let again = reconcile_report(store, report.as_bytes(), "apikey:1".into())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(again.sha256, first.sha256);
    assert_eq!((again.amount_differs, again.alerts_raised), (1, 0));
    assert_eq!(world.alerts("SETTLEMENT_MISMATCH").await.len(), 4);
    assert_eq!(
        store.settlement_report(first.id).await.unwrap(),
        Some(first.clone())
    );
    let listed = store
        .settlement_reports(PageRequest {
            limit: 10,
            past: None,
        })
        .await
        .unwrap();
    let ids: Vec<_> = listed.items.iter().map(|r| r.id).collect();
    assert_eq!(ids, [again.id, first.id], "newest first");

    // A repeated reference on line 3: refused, nothing stored or alerted.
    let bad = format!(
        "psp_ref,amount,currency,status,settled_at\n{r},40.00,USD,SETTLED,{from}\n{r},1.00,USD,SETTLED,{from}\n",
        r = text(&matched["psp_ref"])
    );
    let problem = reconcile_report(store, bad.as_bytes(), "apikey:1".into())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!((problem.line, problem.field), (3, Some("psp_ref")));
    let listed = store
        .settlement_reports(PageRequest {
            limit: 10,
            past: None,
        })
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(world.alerts("SETTLEMENT_MISMATCH").await.len(), 4);
}
