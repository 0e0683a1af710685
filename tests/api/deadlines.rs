//! The schedule's escrow half: an open escrow past its deadline gets what
//! `check-deadline` does. RELEASABLE ones are paid out once, FUNDED ones
//! raise one `ESCROW_DEADLINE_MISSED` alert and pay nobody, even when three
//! runs overlap and when the schedule runs again; nothing else is touched.
//! The deadline index holds only what a run can act on, and each run's work
//! is bounded, so stale entries never keep a due escrow from its release.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kobatela_tests::{unique, EscrowSetup, InProcess, Table};
use serde_json::{json, Value};
use shared::{
    domain::ids::Id,
    store::{deadlines::SweepBudget, keys},
};

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
    let alerts = api.alerts("ESCROW_DEADLINE_MISSED").await;
    alerts
        .iter()
        .filter(|a| a["payload"]["escrow_id"] == escrow)
        .count()
}

/// An escrow of `total`, funded and (if `deliver`) marked delivered.
async fn funded(api: &InProcess, total: &str, deliver: bool) -> EscrowSetup {
    let e = EscrowSetup::new(api, total).await;
    api.deposit(e.escrow, &unique("k"), total).await.expect(200);
    if deliver {
        api.escrow_action(e.escrow, "mark-delivered")
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
    api.escrow_action(idle.escrow, "client-reject")
        .await
        .expect(200);
    assert_eq!(escrow(&api, idle.escrow).await["status"], "REFUNDED");
}

async fn run_sweep(api: &InProcess) -> Value {
    mandate_expiry::handle(&api.state.store, scheduled_event())
        .await
        .expect("a sweep run succeeds")
}

fn shard_of(kind: &str, escrow: u64) -> Option<String> {
    Some(keys::sharded_partition(kind, Id::new(escrow).unwrap()))
}

/// The index holds an escrow only while a run can act on it: not while
/// DRAFT, under `OPEN_ESCROW` while FUNDED until its alert, under
/// `RELEASABLE_ESCROW` once delivered, and never once closed. An entry left
/// from before (an alerted escrow still indexed) is cleaned by the next run,
/// with no second alert.
#[tokio::test]
async fn the_deadline_index_holds_an_escrow_only_while_a_sweep_can_act_on_it() {
    let api = InProcess::new("deadline-index").await;
    let table = Table::named(&api.table).await;
    let e = EscrowSetup::new(&api, "20.00").await;
    assert_eq!(table.deadline_entry(e.escrow).await, None, "DRAFT");
    api.deposit(e.escrow, &unique("k"), "20.00")
        .await
        .expect(200);
    assert_eq!(
        table.deadline_entry(e.escrow).await,
        shard_of(keys::OPEN_ESCROWS, e.escrow),
        "FUNDED"
    );

    table.backdate_escrow(e.escrow).await;
    let run = run_sweep(&api).await;
    assert_eq!(
        (run["escrows_missed"].clone(), run["more"].clone()),
        (json!(1), json!(false)),
        "{run}"
    );
    assert_eq!(table.deadline_entry(e.escrow).await, None, "alerted");
    assert_eq!(missed_alerts(&api, e.escrow).await, 1);
    let run = run_sweep(&api).await;
    assert_eq!(run["escrows_missed"], 0, "{run}");

    // An entry from before the index kept only duties: cleaned, once, and
    // nothing else happens to the escrow.
    let before = table.escrow_footprint(e.escrow).await;
    table.put_legacy_deadline_entry(e.escrow).await;
    let run = run_sweep(&api).await;
    assert_eq!(
        (
            run["escrows_cleaned"].clone(),
            run["escrows_missed"].clone()
        ),
        (json!(1), json!(0)),
        "{run}"
    );
    assert_eq!(table.deadline_entry(e.escrow).await, None);
    assert_eq!(table.escrow_footprint(e.escrow).await, before);
    assert_eq!(missed_alerts(&api, e.escrow).await, 1);
    assert_eq!(run_sweep(&api).await["escrows_cleaned"], 0);

    // Delivered late: back in the index, in the partition read first.
    api.escrow_action(e.escrow, "mark-delivered")
        .await
        .expect(200);
    assert_eq!(
        table.deadline_entry(e.escrow).await,
        shard_of(keys::RELEASABLE_ESCROWS, e.escrow),
        "RELEASABLE"
    );
    table.backdate_escrow(e.escrow).await;
    let run = run_sweep(&api).await;
    assert_eq!(run["escrows_released"], 1, "{run}");
    let released = escrow(&api, e.escrow).await;
    assert_eq!(released["status"], "RELEASED");
    assert_eq!(released["amount_paid"], "20.00");
    assert_eq!(table.deadline_entry(e.escrow).await, None, "closed");
    assert_eq!(table.escrow_footprint(e.escrow).await.payments, 1);
}

/// One sweep that must clean `entries` stale entries: exactly that many
/// when it ran within its time budget; when the host was too slow for that
/// (a loaded CI machine), the time budget stopped it first: fewer, but some.
async fn timed_sweep(api: &InProcess, entries: u64) -> Value {
    let started = std::time::Instant::now();
    let run = run_sweep(api).await;
    let cleaned = run["escrows_cleaned"].as_u64().unwrap();
    if started.elapsed() < SweepBudget::TIME {
        assert_eq!(cleaned, entries, "{run}");
    } else {
        assert!(cleaned > 0 && cleaned <= entries, "{run}");
    }
    run
}

/// The scale case: 5 000 entries no run can act on (DRAFT escrows
/// indexed the old way) sit in the index, and a RELEASABLE escrow is due.
/// One run releases it and cleans what its budget allows; the next cleans a
/// full budget; none does unbounded work.
#[tokio::test]
async fn a_due_escrow_is_released_in_one_run_behind_5000_stale_entries() {
    const STALE: u64 = 5_000;
    let budget = u64::from(SweepBudget::ENTRIES);
    let api = InProcess::new("stale-deadlines").await;
    let table = Table::named(&api.table).await;
    let due = funded(&api, "40.00", true).await;
    table.backdate_escrow(due.escrow).await;
    // Ids far above the table's own, so no real escrow is among them.
    let first_stale = 1_000_000;
    table
        .put_legacy_deadline_entries(first_stale, STALE, "DRAFT")
        .await;
    assert_eq!(
        table.deadline_entries(keys::OPEN_ESCROWS).await as u64,
        STALE
    );

    let run = timed_sweep(&api, budget - 1).await;
    assert_eq!(run["escrows_released"], 1, "{run}");
    let cleaned_first = run["escrows_cleaned"].as_u64().unwrap();
    assert_eq!(run["escrows_skipped"], 0, "{run}");
    assert_eq!(run["more"], true, "{run}");
    let released = escrow(&api, due.escrow).await;
    assert_eq!(released["status"], "RELEASED");
    assert_eq!(released["amount_paid"], "40.00");
    assert_eq!(table.escrow_footprint(due.escrow).await.payments, 1);
    assert_eq!(
        table.deadline_entries(keys::OPEN_ESCROWS).await as u64,
        STALE - cleaned_first
    );

    // The next run cleans a full budget and releases nothing twice; runs
    // go on so until the index is empty (not waited for here: 4 000 more
    // emulated writes would only repeat this).
    let run = timed_sweep(&api, budget).await;
    assert_eq!(run["escrows_released"], 0, "{run}");
    assert_eq!(run["escrows_skipped"], 0, "{run}");
    let cleaned_second = run["escrows_cleaned"].as_u64().unwrap();
    assert_eq!(run["more"], true, "{run}");
    assert_eq!(
        table.deadline_entries(keys::OPEN_ESCROWS).await as u64,
        STALE - cleaned_first - cleaned_second
    );
    assert_eq!(table.deadline_entries(keys::RELEASABLE_ESCROWS).await, 0);
    assert_eq!(table.escrow_footprint(due.escrow).await.payments, 1);
    // Cleaning touched the index entry only.
    let stale = table.partition(&format!("ESCROW#{first_stale}")).await;
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0]["status"].as_s().unwrap(), "DRAFT");
    assert!(!stale[0].contains_key("expiry_pk"));
}

/// Cleaning a stale entry under what real DynamoDB does: through every
/// retry the run skips it and writes nothing (the entry kept, the item as
/// it was); the next run cleans it.
#[tokio::test]
async fn a_stale_entry_that_cannot_be_cleaned_is_skipped_then_cleaned() {
    use kobatela_tests::faults::{Fault, Faults};
    let faults = Faults::start().await;
    let api = InProcess::with_client("stale-faults", faults.client().await, &[]).await;
    let table = Table::named(&api.table).await;
    for (n, fault) in Fault::ALL.into_iter().enumerate() {
        let stale = 2_000_000 + n as u64;
        table.put_legacy_deadline_entries(stale, 1, "DRAFT").await;
        faults.inject_touching(fault, &format!("ESCROW#{stale}"));
        let run = run_sweep(&api).await;
        faults.clear();
        assert!(faults.take_injected() > 0, "{fault:?}");
        assert_eq!(
            (
                run["escrows_cleaned"].clone(),
                run["escrows_skipped"].clone()
            ),
            (json!(0), json!(1)),
            "{fault:?}: {run}"
        );
        assert_eq!(
            table.deadline_entries(keys::OPEN_ESCROWS).await,
            1,
            "{fault:?}"
        );
        let run = run_sweep(&api).await;
        assert_eq!(run["escrows_cleaned"], 1, "{fault:?}: {run}");
        assert_eq!(
            table.deadline_entries(keys::OPEN_ESCROWS).await,
            0,
            "{fault:?}"
        );
        let item = table.partition(&format!("ESCROW#{stale}")).await;
        assert_eq!(item[0]["status"].as_s().unwrap(), "DRAFT");
    }
}
