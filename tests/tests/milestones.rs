//! The milestone payout hook (`Store::pay_milestone`), which the proofs
//! function plugs into: one PAYOUT per milestone, the milestone PAID, the
//! escrow RELEASED (event `CLOSED`) by the last one, even when the last
//! milestones are paid concurrently; never a second payout of a milestone.
//! In-process, on a table of its own.

use kobatela_tests::{unique, EscrowSetup, InProcess, Table};
use serde_json::json;
use shared::{
    domain::{error::ErrorCode, ids::Id},
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

    let (escrow, payment) = api
        .state
        .store
        .pay_milestone(id, 1, none, &Actor::System)
        .await
        .unwrap();
    assert_eq!(escrow.status.as_str(), "FUNDED");
    assert_eq!(escrow.amount_available.to_string(), "40.00");
    assert_eq!(payment.amount.to_string(), "60.00");
    assert_eq!(payment.milestone_id, Some(escrow.milestones[0].id));
    let again = api
        .state
        .store
        .pay_milestone(id, 1, none, &Actor::System)
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::MilestoneNotWaiting);
    let unknown = api
        .state
        .store
        .pay_milestone(id, 3, none, &Actor::System)
        .await
        .unwrap_err();
    assert_eq!(unknown.code, ErrorCode::MilestoneNotFound);

    let (closed, _) = api
        .state
        .store
        .pay_milestone(id, 2, none, &Actor::System)
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
            "PAYMENT_SENT",
            "PAYMENT_SENT",
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
    let refused = api
        .state
        .store
        .pay_milestone(Id::new(draft.escrow).unwrap(), 1, none, &Actor::System)
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
        let mut racers = Vec::new();
        // Each milestone twice: one of the two must be refused.
        for idx in [1, 2, 3, 1, 2, 3] {
            let store = api.state.store.clone();
            racers.push(tokio::spawn(async move {
                store
                    .pay_milestone(id, idx, |_: &_, _| Ok(Vec::new()), &Actor::System)
                    .await
                    .map(|(_, p)| p.amount.to_string())
                    .map_err(|e| e.code)
            }));
        }
        let mut paid = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                Ok(amount) => paid.push(amount),
                Err(code) => assert_eq!(code, ErrorCode::MilestoneNotWaiting, "round {round}"),
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
    let final_error = api
        .state
        .store
        .pay_milestone_with(id, 1, failing.clone(), &[(0, refused)], &Actor::System)
        .await
        .unwrap_err();
    let final_took = started.elapsed();
    assert_eq!(final_error.code, ErrorCode::ProofDuplicate);

    let started = std::time::Instant::now();
    let busy = api
        .state
        .store
        .pay_milestone(id, 1, failing, &Actor::System)
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
