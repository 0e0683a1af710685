//! The milestone payout hook (`ops::payout::pay_milestone`), which the proofs
//! function plugs into: one PAYOUT per milestone, the milestone PAID, the
//! escrow RELEASED (event `CLOSED`) by the last one, even when the last
//! milestones are paid concurrently; never a second payout of a milestone,
//! and never one while an earlier milestone's payout has failed (409
//! `EARLIER_MILESTONE_UNPAID`, through the proofs' own approval).
//! In-process, on a table of its own.

use kobatela_tests::{unique, EscrowSetup, InProcess, Table};
use serde_json::json;
use shared::{
    domain::{error::ErrorCode, ids::Id},
    ops,
    store::audit::Actor,
};

async fn escrow_with(api: &InProcess, amounts: &[&str], total: &str) -> EscrowSetup {
    let milestones: Vec<_> = amounts
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"label": format!("step {i}"), "amount": a, "proof_type": "PHOTO"}))
        .collect();
    let s = EscrowSetup::with(
        api,
        json!({"amount_total": total, "milestones": milestones}),
    )
    .await;
    api.deposit(s.escrow, &unique("k"), total).await.expect(200);
    s
}

#[tokio::test]
async fn milestones_are_paid_once_each_and_the_last_closes_the_escrow() {
    let api = InProcess::new("milestones").await;
    let table = Table::named(&api.table).await;
    let s = escrow_with(&api, &["60.00", "40.00"], "100.00").await;
    let id = Id::new(s.escrow).unwrap();
    let none = |_: &_, _| Ok(Vec::new());

    let (escrow, payment) =
        ops::payout::pay_milestone(&api.state.store, id, 1, none, &Actor::System)
            .await
            .unwrap();
    assert_eq!(escrow.status.as_str(), "FUNDED");
    assert_eq!(escrow.amount_available.to_string(), "40.00");
    assert_eq!(payment.amount.to_string(), "60.00");
    assert_eq!(payment.milestone_id, Some(escrow.milestones[0].id));
    let again = ops::payout::pay_milestone(&api.state.store, id, 1, none, &Actor::System)
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::MilestoneNotWaiting);
    let unknown = ops::payout::pay_milestone(&api.state.store, id, 3, none, &Actor::System)
        .await
        .unwrap_err();
    assert_eq!(unknown.code, ErrorCode::MilestoneNotFound);

    let (closed, _) = ops::payout::pay_milestone(&api.state.store, id, 2, none, &Actor::System)
        .await
        .unwrap();
    assert_eq!(closed.status.as_str(), "RELEASED");
    let read = api
        .get(&format!("/escrows/{}", s.escrow))
        .await
        .expect(200)
        .body;
    assert_eq!(read["status"], "RELEASED");
    assert_eq!(read["amount_paid"], "100.00");
    assert_eq!(read["milestones"][0]["status"], "PAID");
    assert_eq!(read["milestones"][1]["status"], "PAID");
    let footprint = table.escrow_footprint(s.escrow).await;
    assert_eq!(footprint.payments, 2);
    assert_eq!(
        table.audit_actions("ESCROW", s.escrow).await,
        ["ESCROW_CREATED", "ESCROW_DEPOSITED", "ESCROW_RELEASED"]
    );
    let events = api
        .get(&format!("/escrows/{}/events", s.escrow))
        .await
        .expect(200)
        .body;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "CREATED",
            "DEPOSIT",
            "PAYMENT_PENDING",
            "PAYMENT_PENDING",
            "CLOSED"
        ]
    );

    // A DRAFT escrow pays no milestone.
    let draft = EscrowSetup::with(
        &api,
        json!({"amount_total": "10.00",
               "milestones": [{"label": "a", "amount": "10.00", "proof_type": "PHOTO"}]}),
    )
    .await;
    let refused = ops::payout::pay_milestone(
        &api.state.store,
        Id::new(draft.escrow).unwrap(),
        1,
        none,
        &Actor::System,
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code, ErrorCode::EscrowInvalidState);
    assert_eq!(table.escrow_footprint(draft.escrow).await.payments, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payouts_close_the_escrow_exactly_once() {
    let api = InProcess::new("milestone-race").await;
    let table = Table::named(&api.table).await;
    for round in 0..4 {
        let s = escrow_with(&api, &["10.00", "20.00", "30.00"], "60.00").await;
        let id = Id::new(s.escrow).unwrap();
        // Waves of racers, each milestone twice, until all are paid: in
        // every wave at most one payout per milestone wins, the others are
        // refused (already paid, or an earlier one not paid yet).
        let mut paid = Vec::new();
        for _wave in 0..3 {
            let mut racers = Vec::new();
            for idx in [1, 2, 3, 1, 2, 3] {
                let store = api.state.store.clone();
                racers.push(tokio::spawn(async move {
                    ops::payout::pay_milestone(
                        &store,
                        id,
                        idx,
                        |_: &_, _| Ok(Vec::new()),
                        &Actor::System,
                    )
                    .await
                    .map(|(_, p)| p.amount.to_string())
                    .map_err(|e| e.code)
                }));
            }
            for racer in racers {
                match racer.await.unwrap() {
                    Ok(amount) => paid.push(amount),
                    Err(code) => assert!(
                        matches!(
                            code,
                            ErrorCode::MilestoneNotWaiting | ErrorCode::EarlierMilestoneUnpaid
                        ),
                        "round {round}: {code:?}"
                    ),
                }
            }
            if paid.len() == 3 {
                break;
            }
        }
        paid.sort();
        assert_eq!(paid, ["10.00", "20.00", "30.00"], "round {round}");
        let footprint = table.escrow_footprint(s.escrow).await;
        assert_eq!(footprint.status, "RELEASED", "round {round}");
        assert_eq!(
            (footprint.paid, footprint.available, footprint.payments),
            (6000, 0, 3)
        );
    }
}

/// An extra item whose failed condition is named final answers its error
/// at once, with nothing paid; unnamed, the same failure reads as "the
/// escrow changed" and is decided again until the attempts run out (503).
#[tokio::test]
async fn a_final_extra_condition_answers_its_error_at_once() {
    use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
    let api = InProcess::new("milestones").await;
    let table = Table::named(&api.table).await;
    let s = escrow_with(&api, &["60.00", "40.00"], "100.00").await;
    let id = Id::new(s.escrow).unwrap();
    let before = table.escrow_footprint(s.escrow).await;
    let table_name = api.table.clone();
    // Always fails: a check that an item which is never written exists.
    let failing = move |_: &_, _| {
        let check = ConditionCheck::builder()
            .table_name(&table_name)
            .key("pk", AttributeValue::S("NEVER#WRITTEN".into()))
            .key("sk", AttributeValue::S("NEVER".into()))
            .condition_expression("attribute_exists(pk)")
            .build()
            .unwrap();
        Ok(vec![TransactWriteItem::builder()
            .condition_check(check)
            .build()])
    };
    let refused = || shared::error::AppError::new(ErrorCode::ProofDuplicate, "taken");

    let started = std::time::Instant::now();
    let final_error = ops::payout::pay_milestone_with(
        &api.state.store,
        id,
        1,
        failing.clone(),
        &[(0, refused)],
        &Actor::System,
    )
    .await
    .unwrap_err();
    let final_took = started.elapsed();
    assert_eq!(final_error.code, ErrorCode::ProofDuplicate);

    let started = std::time::Instant::now();
    let busy = ops::payout::pay_milestone(&api.state.store, id, 1, failing, &Actor::System)
        .await
        .unwrap_err();
    let busy_took = started.elapsed();
    assert_eq!(busy.code, ErrorCode::ServiceBusy);
    // The final answer takes one attempt, the busy one every backoff step.
    assert!(final_took < busy_took, "{final_took:?} vs {busy_took:?}");
    assert_eq!(
        table.escrow_footprint(s.escrow).await,
        before,
        "nothing paid"
    );
}

/// The review's case, through the proofs' approval (the hook with the
/// proof's own items): milestone 1 paid, milestone 2's proof waiting for a
/// decision, then milestone 1's payout fails at the PSP (back to APPROVED).
/// Approving proof 2 is 409 `EARLIER_MILESTONE_UNPAID` (it was a 500: the
/// transaction named milestone 1 twice) and writes nothing; once the failed
/// payout is sent again, the same approval pays and closes the escrow.
#[tokio::test]
async fn a_proof_is_not_paid_while_an_earlier_payout_has_failed() {
    use shared::domain::proof_review::Decision;
    let api = InProcess::new("milestones-failed").await;
    let table = Table::named(&api.table).await;
    let (e, p1) = api.failed_first_milestone("100.00", "60.00", "40.00").await;
    // Milestone 2's proof, submitted while milestone 1 was still PAID.
    ops::payout::execute_payment(&api.state.store, p1.id, &Actor::System)
        .await
        .unwrap();
    let proof = api
        .post(
            "/proofs",
            json!({"escrow_id": e.escrow, "milestone_idx": 2, "type": "DOC",
                   "storage_url": "https://files.example.com/roof.pdf",
                   "sha256": uuid::Uuid::new_v4().simple().to_string().repeat(2)}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(proof["status"], "PENDING", "{proof}");
    let proof_id = Id::new(proof["id"].as_u64().unwrap()).unwrap();
    let retried = table
        .payments_of(e.escrow)
        .await
        .into_iter()
        .find(|p| p["status"].as_s().is_ok_and(|s| s == "PENDING"))
        .unwrap();
    let body = kobatela_tests::psp_body(
        &unique("evt"),
        "payment.failed",
        retried["psp_ref"].as_s().unwrap(),
    );
    let headers = kobatela_tests::psp_headers(&body);
    api.psp_webhook(&kobatela_tests::header_refs(&headers), &body)
        .await
        .expect(200);
    assert_eq!(api.consume_psp().await, (1, 0));

    let before = table.escrow_footprint(e.escrow).await;
    assert_eq!(before.available, 10000);
    let approve = || {
        shared::ops::proof::decide(
            &api.state.store,
            shared::ops::Asker::System(&Actor::System),
            proof_id,
            Decision::Approve,
            None,
        )
    };
    let refused = approve().await.unwrap_err();
    assert_eq!(
        refused.code,
        ErrorCode::EarlierMilestoneUnpaid,
        "{refused:?}"
    );
    assert_eq!(refused.status(), 409);
    assert_eq!(
        table.escrow_footprint(e.escrow).await,
        before,
        "nothing written"
    );
    let read = api
        .get(&format!("/proofs/{proof_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(read["status"], "PENDING");
    assert_eq!(
        table.audit_actions("PROOF", proof_id.get()).await,
        ["SUBMIT_PROOF"]
    );

    // Sent again, then the same approval pays milestone 2 and closes.
    ops::payout::execute_payment(&api.state.store, p1.id, &Actor::System)
        .await
        .unwrap();
    let approved = approve().await.unwrap();
    assert_eq!(approved.status.as_str(), "APPROVED");
    let after = table.escrow_footprint(e.escrow).await;
    assert_eq!(after.status, "RELEASED");
    assert_eq!((after.available, after.paid, after.payments), (0, 10000, 2));
}
