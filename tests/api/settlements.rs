//! Settlement reconciliation (`shared::ops::settlement`) on a table of its
//! own: payouts made and settled through the API, held against a PSP
//! report that agrees on one, differs in amount on one, in status on one,
//! names an unknown reference and leaves one out; each discrepancy is one
//! `SETTLEMENT_MISMATCH` alert, once however often it is reported; a bad
//! report is refused naming its line, and stores nothing; contention and
//! throttling on any of its calls leave one report and each alert once;
//! and the routes answer what the contract says.

use kobatela_tests::{
    faults::{Fault, Faults},
    photos, unique, EscrowSetup, InProcess,
};
use serde_json::{json, Value};
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

/// The ids of the stored reports (at most 10), newest first.
async fn stored_ids(world: &InProcess) -> Vec<shared::domain::ids::Id> {
    let page = PageRequest {
        limit: 10,
        past: None,
    };
    let listed = world.state.store.settlement_reports(page).await.unwrap();
    listed.items.iter().map(|r| r.id).collect()
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
    assert_eq!(
        stored_ids(&world).await,
        [again.id, first.id],
        "newest first"
    );

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
    assert_eq!(stored_ids(&world).await.len(), 2);
    assert_eq!(world.alerts("SETTLEMENT_MISMATCH").await.len(), 4);

    // The settled payments of a period are those settled within it.
    let ids = |found: Vec<shared::domain::settlement::OurPayment>| -> Vec<String> {
        found.iter().map(|p| p.id.to_string()).collect()
    };
    let within = store.settled_between(from, to).await.unwrap();
    let mut settled: Vec<String> = [&matched, &differs, &missing]
        .iter()
        .map(|p| p["id"].as_u64().unwrap().to_string())
        .collect();
    settled.sort_by_key(|id| id.parse::<u64>().unwrap());
    assert_eq!(ids(within), settled);
    let later = store
        .settled_between(to.plus_seconds(1), to.plus_seconds(3 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(ids(later), Vec::<String>::new());
}

/// A report of two lines: `paid` a cent over, and a reference nobody knows.
fn two_discrepancies(paid: &Value) -> String {
    let at = Timestamp::now();
    format!(
        "psp_ref,amount,currency,status,settled_at\n\
         {},30.01,USD,SETTLED,{at}\n\
         PSP-nobody-{},1.00,USD,SETTLED,{at}\n",
        text(&paid["psp_ref"]),
        unique("ref"),
    )
}

/// Each contention and throttling answer DynamoDB gives (`Fault::ALL`),
/// twice, on the next calls a reconciliation makes: it goes through, stores
/// its one report, and raises each alert once across all of them.
#[tokio::test]
async fn a_reconciliation_that_meets_any_fault_stores_one_report_and_alerts_once() {
    let faults = Faults::start().await;
    let world = InProcess::with_client("settle-faults", faults.client().await, &[]).await;
    let store = &world.state.store;
    let paid = payout(&world, "30.00").await;
    settle(&world, text(&paid["psp_ref"])).await;
    let report = two_discrepancies(&paid);
    let mut raised = Vec::new();
    let mut ids = Vec::new();
    for fault in Fault::ALL {
        faults.take_injected();
        faults.inject(fault, 2);
        let stored = reconcile_report(store, report.as_bytes(), "apikey:1".into())
            .await
            .unwrap()
            .unwrap();
        faults.clear();
        assert_eq!(faults.take_injected(), 2, "{fault:?}: both faults met");
        assert_eq!(
            (
                stored.lines,
                stored.amount_differs,
                stored.unknown_reference
            ),
            (2, 1, 1),
            "{fault:?}"
        );
        assert_eq!(
            store.settlement_report(stored.id).await.unwrap(),
            Some(stored.clone())
        );
        raised.push(stored.alerts_raised);
        ids.push(stored.id);
    }
    assert_eq!(raised, [2, 0, 0, 0, 0, 0]);
    assert_eq!(world.alerts("SETTLEMENT_MISMATCH").await.len(), 2);
    ids.reverse();
    assert_eq!(
        stored_ids(&world).await,
        ids,
        "one report per reconciliation, newest first"
    );
}

/// Presigns the PUT of `bytes` as `upload_id` and PUTs `sent` there.
async fn upload(world: &InProcess, bytes: &[u8], sent: &[u8]) -> String {
    let sha = photos::sha256_hex(bytes);
    let presigned = world
        .post(
            "/ledger/settlements/uploads",
            json!({"content_length": bytes.len(), "sha256": sha}),
        )
        .await
        .expect(201);
    assert_eq!(presigned.body["upload_id"], sha.as_str());
    assert_eq!(
        photos::put_presigned(&presigned.body, sent.to_vec(), false).await,
        200
    );
    sha
}

/// Through HTTP, as an admin client: 422 naming `upload_id` for bytes that
/// are not the report named, 422 naming `report` for a bad line (nothing
/// stored or alerted), 201 for a good one, then listed by pages and read;
/// 404 for no report.
#[tokio::test]
async fn the_settlement_routes_answer_as_the_contract_says() {
    let world = InProcess::new("settle-routes").await;
    let paid = payout(&world, "30.00").await;
    settle(&world, text(&paid["psp_ref"])).await;
    let report = two_discrepancies(&paid);
    let settle_upload = |id: String| world.post("/ledger/settlements", json!({"upload_id": id}));

    let forged = upload(&world, report.as_bytes(), b"psp_ref,amount\n").await;
    let refused = settle_upload(forged).await.expect(422);
    assert!(
        refused.body["error"]["details"]["fields"]["upload_id"].is_string(),
        "{}",
        refused.text
    );

    let repeated = "psp_ref,amount,currency,status,settled_at\n\
                    PSP-a,1.00,USD,SETTLED,2020-01-01T00:00:00Z\n\
                    PSP-a,2.00,USD,SETTLED,2020-01-01T00:00:00Z\n";
    let bad = upload(&world, repeated.as_bytes(), repeated.as_bytes()).await;
    let refused = settle_upload(bad).await.expect(422);
    assert_eq!(
        refused.body["error"]["details"]["fields"]["report"], "line 3: psp_ref repeats line 2",
        "{}",
        refused.text
    );
    let none = world.get("/ledger/settlements").await.expect(200);
    assert_eq!(none.body["items"], json!([]));
    assert_eq!(world.alerts("SETTLEMENT_MISMATCH").await.len(), 0);

    let good = upload(&world, report.as_bytes(), report.as_bytes()).await;
    let first = settle_upload(good.clone()).await.expect(201);
    assert_eq!(first.body["sha256"], good.as_str());
    assert_eq!(
        (
            first.body["lines"].as_u64(),
            first.body["amount_differs"].as_u64(),
            first.body["unknown_reference"].as_u64(),
            first.body["alerts_raised"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(2)),
        "{}",
        first.text
    );
    let second = settle_upload(good).await.expect(201);
    assert_eq!(second.body["alerts_raised"], 0);
    assert_eq!(world.alerts("SETTLEMENT_MISMATCH").await.len(), 2);

    let page = world.get("/ledger/settlements?limit=1").await.expect(200);
    assert_eq!(page.body["items"], json!([second.body]));
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    let page = world
        .get(&format!("/ledger/settlements?limit=1&cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(page.body["items"], json!([first.body]));
    assert_eq!(page.body["next_cursor"], Value::Null);
    let read = world
        .get(&format!("/ledger/settlements/{}", first.id()))
        .await
        .expect(200);
    assert_eq!(read.body, first.body);
    world
        .get("/ledger/settlements/999999")
        .await
        .expect_error(404, "SETTLEMENT_NOT_FOUND");
}
