//! The ledger check (`shared::ops::ledger`) on a table of its own: money
//! moved through the API checks clean, page after page and across
//! invocations; balances corrupted in the emulator are found, exactly
//! those, each alerted once however many runs find it; a page that meets
//! contention, throttling or a lost answer is recorded once; and the
//! routes answer what the contract says.

use kobatela_tests::{
    faults::{Fault, Faults, Wire},
    unique, EscrowSetup, InProcess, MandateSetup, Table,
};
use serde_json::{json, Value};
use shared::{
    domain::{
        ids::Id,
        ledger::{Entity, Invariant, RunStatus},
    },
    ops::ledger::{self, Budget},
    store::ledger::{LedgerRun, SegmentCursor},
};
use std::time::{Duration, Instant};

/// Pages small enough that the scan takes several per segment.
fn pages(n: u32) -> Budget {
    Budget {
        until: Instant::now() + Duration::from_secs(120),
        pages: n,
        page_items: 4,
    }
}

/// Runs a new check to its end, one page per invocation: how many
/// invocations it took, and the run.
async fn run_to_end(world: &InProcess) -> (u32, LedgerRun) {
    let store = &world.state.store;
    let run = ledger::start(store, "test".into(), 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Running);
    for invocation in 1..=200 {
        let run = ledger::advance(store, run.id, pages(1))
            .await
            .unwrap()
            .unwrap();
        if run.status == RunStatus::Done {
            return (invocation, run);
        }
        assert!(run.finished_at.is_none());
    }
    panic!("the run did not end in 200 invocations");
}

/// A mandate with two purchases, an escrow paid out in part through a
/// payee and refunded, another released whole.
async fn money_moved(world: &InProcess) -> (u64, u64) {
    let mandate = MandateSetup::new(world, "100.00").await;
    for amount in ["10.00", "2.50"] {
        world
            .purchase(&unique("p"), mandate.purchase(amount))
            .await
            .expect(201);
    }
    let spent = EscrowSetup::new(world, "50.00").await;
    for amount in ["20.00", "30.00"] {
        world
            .deposit(spent.escrow, &unique("d"), amount)
            .await
            .expect(200);
    }
    world
        .call(
            "POST",
            "/spend/allowed",
            &[],
            Some(json!({"escrow_id": spent.escrow, "payee_ref": "shop", "label": "Shop"})),
        )
        .await
        .expect(201);
    world
        .call(
            "POST",
            "/spend",
            &[("idempotency-key", &unique("s"))],
            Some(json!({"escrow_id": spent.escrow, "payee_ref": "shop", "amount": "7.00"})),
        )
        .await
        .expect(200);
    let released = EscrowSetup::new(world, "40.00").await;
    world
        .deposit(released.escrow, &unique("d"), "40.00")
        .await
        .expect(200);
    for action in ["mark-delivered", "client-approve"] {
        world
            .escrow_action(released.escrow, action)
            .await
            .expect(200);
    }
    (mandate.mandate, spent.escrow)
}

fn findings(run: &LedgerRun) -> Vec<(Entity, Invariant, String, String)> {
    let mut found: Vec<_> = run
        .findings
        .iter()
        .map(|f| {
            (
                f.entity.clone(),
                f.invariant,
                f.stored.clone(),
                f.derived.clone(),
            )
        })
        .collect();
    found.sort_by_key(|f| format!("{f:?}"));
    found
}

#[tokio::test]
async fn every_balance_checks_clean_and_exactly_the_corrupted_ones_are_found_once() {
    let world = InProcess::new("ledger").await;
    let (mandate, escrow) = money_moved(&world).await;

    let (invocations, clean) = run_to_end(&world).await;
    assert_eq!(clean.findings, vec![], "{:?}", clean.findings);
    assert_eq!(clean.counts.mismatches, 0);
    assert_eq!(
        (
            clean.counts.mandates,
            clean.counts.escrows,
            clean.counts.payees
        ),
        (1, 2, 1)
    );
    // Three segments of pages of 4 items over a table of dozens: the run
    // took several invocations, each going on from the saved cursors.
    assert!(invocations >= 3, "{invocations} invocations");
    assert!(clean.segments.iter().all(|c| *c == SegmentCursor::Done));
    assert!(clean.finished_at.is_some());

    // Corrupt three stored balances, as a bad write would.
    let table = Table::named(&world.table).await;
    corrupt_mandate(&table, mandate).await;
    table
        .set_number(&format!("ESCROW#{escrow}"), "ESCROW", "paid_cents", 800)
        .await;
    table
        .set_number(
            &format!("PAYEE#{escrow}#shop"),
            "PAYEE",
            "spent_total_cents",
            1,
        )
        .await;

    let (_, found) = run_to_end(&world).await;
    let payee = Entity::Payee {
        escrow_id: Id::new(escrow).unwrap(),
        payee_ref: "shop".into(),
    };
    let mandate_id = Entity::Mandate {
        id: Id::new(mandate).unwrap(),
    };
    let escrow_id = Entity::Escrow {
        id: Id::new(escrow).unwrap(),
    };
    let mut expected = vec![
        (
            mandate_id.clone(),
            Invariant::MandateRemaining,
            "100.00".to_string(),
            "100.01".to_string(),
        ),
        (
            escrow_id.clone(),
            Invariant::EscrowBalances,
            "50.00".into(),
            "51.00".into(),
        ),
        (
            escrow_id.clone(),
            Invariant::EscrowPaid,
            "8.00".into(),
            "7.00".into(),
        ),
        (
            payee.clone(),
            Invariant::PayeeSpentTotal,
            "0.01".into(),
            "7.00".into(),
        ),
    ];
    expected.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(findings(&found), expected);
    assert_eq!(
        (found.counts.mismatches, found.counts.alerts_raised),
        (4, 4)
    );
    let alerts = world.alerts("LEDGER_MISMATCH").await;
    assert_eq!(alerts.len(), 4);
    let alerted: Value = alerts
        .iter()
        .find(|a| a["payload"]["invariant"] == "PAYEE_SPENT_TOTAL")
        .cloned()
        .unwrap();
    assert_eq!(
        alerted["payload"],
        json!({"entity": "PAYEE", "escrow_id": escrow, "payee_ref": "shop",
               "invariant": "PAYEE_SPENT_TOTAL", "stored": "0.01", "derived": "7.00"})
    );

    // Found again by the next run, alerted no more.
    let (_, again) = run_to_end(&world).await;
    assert_eq!(findings(&again), expected);
    assert_eq!(
        (again.counts.mismatches, again.counts.alerts_raised),
        (4, 0)
    );
    assert_eq!(world.alerts("LEDGER_MISMATCH").await.len(), 4);
}

/// An invocation with no time left does nothing and loses nothing; two
/// invocations advancing one run at once record each page once.
#[tokio::test]
async fn a_run_goes_on_where_it_stopped_and_is_advanced_once_per_page() {
    let world = InProcess::new("ledger-resume").await;
    money_moved(&world).await;
    let store = &world.state.store;
    let run = ledger::start(store, "test".into(), 2)
        .await
        .unwrap()
        .unwrap();
    // One run at a time: a second start answers the running one.
    let second = ledger::start(store, "test".into(), 2).await.unwrap();
    assert_eq!(second, Err(run.clone()));
    let expired = Budget {
        until: Instant::now(),
        ..pages(10)
    };
    let same = ledger::advance(store, run.id, expired)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same, run);

    let (a, b) = tokio::join!(
        ledger::advance(store, run.id, pages(u32::MAX)),
        ledger::advance(store, run.id, pages(u32::MAX)),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    let done = store.ledger_run(run.id).await.unwrap().unwrap();
    assert_eq!(done.status, RunStatus::Done);
    assert!(a.status == RunStatus::Done && b.status == RunStatus::Done);
    // Each entity counted once, though two invocations raced over pages.
    assert_eq!(
        (
            done.counts.mandates,
            done.counts.escrows,
            done.counts.payees
        ),
        (1, 2, 1)
    );
    assert_eq!(
        ledger::advance(store, Id::new(999_999).unwrap(), pages(1))
            .await
            .unwrap(),
        None
    );
}

/// The schedule starts a run when none ran for `every`, goes on with it
/// tick after tick, then rests until the next is due.
#[tokio::test]
async fn the_schedule_starts_a_run_when_due_and_goes_on_with_it() {
    let world = InProcess::new("ledger-tick").await;
    money_moved(&world).await;
    let store = &world.state.store;
    let day = Duration::from_secs(24 * 3600);
    let first = ledger::tick(store, day, pages(1)).await.unwrap().unwrap();
    assert_eq!(first.requested_by, "schedule");
    let mut ticks = 1;
    let mut run = first.clone();
    while run.status == RunStatus::Running {
        run = ledger::tick(store, day, pages(1)).await.unwrap().unwrap();
        assert_eq!(run.id, first.id, "the same run, going on");
        ticks += 1;
        assert!(ticks < 200);
    }
    assert!(ticks > 1, "pages of 4 items take several ticks");
    assert_eq!(run.counts.mismatches, 0);
    // Done, and the next is not due for a day.
    assert_eq!(ledger::tick(store, day, pages(1)).await.unwrap(), None);
    // Due at once: a new run.
    let next = ledger::tick(store, Duration::ZERO, pages(u32::MAX))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(next.id, first.id);
    assert_eq!(next.status, RunStatus::Done);
    assert_eq!(store.current_ledger_run().await.unwrap(), Some(next));
}

/// One corrupted mandate balance (`MANDATE_REMAINING`): the money of
/// `money_moved`, then its mandate corrupted (`corrupt_mandate`).
async fn one_mandate_corrupted(world: &InProcess) -> Id {
    let (mandate, _) = money_moved(world).await;
    corrupt_mandate(&Table::named(&world.table).await, mandate).await;
    Id::new(mandate).unwrap()
}

/// `money_moved`'s mandate (100.00, 12.50 spent) left with 87.51: its
/// remaining a cent over what its purchases leave.
async fn corrupt_mandate(table: &Table, mandate: u64) {
    table
        .set_number(
            &format!("MANDATE#{mandate}"),
            "MANDATE",
            "balance_cents",
            8_751,
        )
        .await;
}

/// Asserts a DONE run counted each entity once and found the one corrupted
/// mandate.
fn assert_counted_once(run: &LedgerRun, mandate: Id, what: &str) {
    assert_eq!(run.status, RunStatus::Done, "{what}");
    assert_eq!(
        (
            run.counts.mandates,
            run.counts.escrows,
            run.counts.payees,
            run.counts.mismatches
        ),
        (1, 2, 1, 1),
        "{what}"
    );
    assert_eq!(run.findings.len(), 1, "{what}");
    assert_eq!(
        (&run.findings[0].entity, run.findings[0].invariant),
        (
            &Entity::Mandate { id: mandate },
            Invariant::MandateRemaining
        ),
        "{what}"
    );
}

/// Each contention and throttling answer DynamoDB gives (`Fault::ALL`),
/// twice on the save of a page that has just raised its alert: the page is
/// checked again from its saved cursors and recorded once, and the alert
/// its first attempt raised is counted by the run that raised it, once.
#[tokio::test]
async fn a_page_whose_save_meets_any_fault_is_checked_again_and_recorded_once() {
    let faults = Faults::start().await;
    let world = InProcess::with_client("ledger-faults", faults.client().await, &[]).await;
    let mandate = one_mandate_corrupted(&world).await;
    let store = &world.state.store;
    let one_page = Budget {
        until: Instant::now() + Duration::from_secs(120),
        pages: u32::MAX,
        page_items: 500,
    };
    let mut alerts_raised = Vec::new();
    for fault in Fault::ALL {
        let run = ledger::start(store, "test".into(), 2)
            .await
            .unwrap()
            .unwrap();
        faults.take_injected();
        faults.inject_touching_times(fault, &format!("LEDGER_RUN#{}", run.id), 2);
        let done = ledger::advance(store, run.id, one_page)
            .await
            .unwrap()
            .unwrap();
        faults.clear();
        assert_eq!(faults.take_injected(), 2, "{fault:?}: both faults met");
        assert_counted_once(&done, mandate, &format!("{fault:?}"));
        assert_eq!(done.version, 1, "{fault:?}: one page, saved once");
        assert_eq!(store.ledger_run(run.id).await.unwrap(), Some(done.clone()));
        alerts_raised.push(done.counts.alerts_raised);
    }
    // The first run raised the alert (its page, then gave up twice on the
    // save and was checked again); the later runs found it raised.
    assert_eq!(alerts_raised, [1, 0, 0, 0, 0, 0]);
    assert_eq!(world.alerts("LEDGER_MISMATCH").await.len(), 1);
}

/// Every answer of a page's save lost after it landed (the SDK's three
/// attempts): the invocation fails, and the next one goes on from what
/// landed, counting no entity twice.
#[tokio::test]
async fn a_save_whose_every_answer_is_lost_is_gone_on_from_once() {
    let faults = Faults::start().await;
    let wire = Wire::default();
    let client = wire.dynamodb_client(Some(&faults)).await;
    let world = InProcess::with_client("ledger-lost", client, &[]).await;
    let mandate = one_mandate_corrupted(&world).await;
    let store = &world.state.store;
    let run = ledger::start(store, "test".into(), 2)
        .await
        .unwrap()
        .unwrap();
    let lost_before = wire.lost();
    wire.lose_answers("TransactWriteItems", 3);
    let failed = ledger::advance(store, run.id, pages(1)).await;
    wire.clear();
    assert!(failed.is_err(), "{failed:?}");
    assert!(wire.lost() - lost_before >= 1);
    let landed = store.ledger_run(run.id).await.unwrap().unwrap();
    assert_eq!(landed.version, 1, "the first page's save landed");
    let mut run = landed;
    while run.status == RunStatus::Running {
        run = ledger::advance(store, run.id, pages(1))
            .await
            .unwrap()
            .unwrap();
    }
    assert_counted_once(&run, mandate, "after the lost answers");
    assert_eq!(run.counts.alerts_raised, 1);
    assert_eq!(world.alerts("LEDGER_MISMATCH").await.len(), 1);
}

/// `POST /ledger/checks` answers 202 a new run, then 200 the RUNNING one
/// (one at a time), and `GET /ledger/checks/{id}` 404 for no run.
#[tokio::test]
async fn the_check_routes_answer_as_the_contract_says() {
    let world = InProcess::new("ledger-routes").await;
    let started = world.post("/ledger/checks", json!({})).await.expect(202);
    assert_eq!(started.body["status"], "RUNNING", "{}", started.text);
    assert_eq!(started.body["requested_by"], "apikey:1");
    let again = world.post("/ledger/checks", json!({})).await.expect(200);
    assert_eq!(again.body, started.body, "the RUNNING one, not a second");
    let read = world
        .get(&format!("/ledger/checks/{}", started.id()))
        .await
        .expect(200);
    assert_eq!(read.body, started.body);
    let missing = world.get("/ledger/checks/999999").await.expect(404);
    assert_eq!(missing.body["error"]["code"], "LEDGER_CHECK_NOT_FOUND");
    let bad = world.get("/ledger/checks/abc").await.expect(422);
    assert_eq!(bad.body["error"]["code"], "VALIDATION_ERROR");
}
