//! Contention and throttling on every write path, by fault injection through
//! the SDK interceptor (`kobatela_tests::faults`): the emulator never answers
//! `TransactionConflict` or throttling, real DynamoDB does.
//!
//! For each write path (purchase, mandate, user create and PATCH, API key
//! create and revoke, category, merchant, allow, allowlist, certification,
//! transfer allowed and refused, payee, spend, escrow create, deposit,
//! mark-delivered, client-approve, client-reject, check-deadline releasing
//! or flagging a missed deadline) and each of the six answers
//! of `Fault::ALL` (three cancellation reasons, three whole-call errors):
//! - recovers: the first 4 attempts fail, then the call answers as without
//!   faults, and writes exactly what a clean call writes (item count);
//! - exhausted: every attempt fails; the answer is 503 `SERVICE_BUSY` with
//!   `Retry-After`, after at least `Backoff::ATTEMPTS` attempts, and the
//!   table is exactly as before (item count, balances).
//!
//! Proofs too: submission (auto-approved and paid, or to review) and both
//! decisions; and an S3 failure under a submission is a 5xx that stores
//! nothing.
//!
//! The sweep and `/mandates/cleanup` skip a mandate they cannot expire and
//! go on with the others; `POST /mandates` racing the expiry of the old
//! mandate never answers a false 409.
//!
//! Each test has its own table (`InProcess`), so item counts are exact.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use kobatela_tests::{
    create_user,
    faults::{Fault, Faults},
    photos, unique, EscrowSetup, InProcess, MandateSetup, Reply, Table,
};
use serde_json::{json, Value};
use shared::store::retry::Backoff;
use std::future::Future;

/// Attempts that fail before the "recovers" case succeeds: more than the
/// SDK's own 3, so our retry loop is exercised too.
const RECOVERED_AFTER: u64 = 4;

struct Harness {
    api: InProcess,
    faults: Faults,
    table: Table,
}

async fn harness(name: &str) -> Harness {
    let faults = Faults::start().await;
    let api = InProcess::with_client(name, faults.client().await, &[]).await;
    let table = Table::named(&api.table).await;
    Harness { api, faults, table }
}

/// Runs `act` once per context: the first clean (the reference), then for
/// every fault a "recovers" and an "exhausted" run. `after` checks the state
/// after a successful run (it sees that run's context and reply).
async fn under_every_fault<C: Clone, F, Fut>(
    h: &Harness,
    path: &str,
    contexts: Vec<C>,
    ok: u16,
    act: F,
) where
    F: Fn(C) -> Fut,
    Fut: Future<Output = Reply>,
{
    assert_eq!(contexts.len(), 1 + 2 * Fault::ALL.len(), "{path}: contexts");
    let mut contexts = contexts.into_iter();
    let before = h.table.item_count().await;
    act(contexts.next().unwrap()).await.expect(ok);
    let clean_writes = h.table.item_count().await - before;

    for fault in Fault::ALL {
        let before = h.table.item_count().await;
        h.faults.inject(fault, RECOVERED_AFTER);
        let reply = act(contexts.next().unwrap()).await;
        h.faults.clear();
        assert_eq!(
            reply.status.as_u16(),
            ok,
            "{path} under {fault:?} should recover: {}",
            reply.text
        );
        assert_eq!(
            h.faults.take_injected(),
            RECOVERED_AFTER,
            "{path} {fault:?}"
        );
        assert_eq!(
            h.table.item_count().await - before,
            clean_writes,
            "{path} under {fault:?} wrote other than a clean call"
        );

        let before = h.table.item_count().await;
        h.faults.inject_forever(fault);
        let reply = act(contexts.next().unwrap()).await;
        h.faults.clear();
        let reply = reply.expect_error(503, "SERVICE_BUSY");
        assert_eq!(
            reply
                .headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("1"),
            "{path} {fault:?}"
        );
        let injected = h.faults.take_injected();
        assert!(
            injected >= u64::from(Backoff::ATTEMPTS),
            "{path} under {fault:?} gave up after {injected} attempts"
        );
        assert_eq!(
            h.table.item_count().await,
            before,
            "{path} under {fault:?} changed the table although it answered 503"
        );
    }
}

fn contexts<C: Clone>(value: C) -> Vec<C> {
    vec![value; 1 + 2 * Fault::ALL.len()]
}

#[tokio::test]
async fn purchases_survive_contention_and_throttling() {
    let h = &harness("busy-purchase").await;
    let s = MandateSetup::new(&h.api, "1000.00").await;
    // One purchase first: its id counter exists, so no test run creates it.
    h.api
        .purchase(&unique("k"), s.purchase("1.00"))
        .await
        .expect(201);
    let keys: Vec<String> = (0..13).map(|_| unique("k")).collect();
    under_every_fault(h, "POST /spend/purchases", keys.clone(), 201, |key| {
        let body = s.purchase("1.00");
        async move { h.api.purchase(&key, body).await }
    })
    .await;
    // The first, the clean one and six recovered: 8.00; nothing for the six 503s.
    assert_eq!(
        h.api.mandate_money(s.mandate).await,
        ("992.00".into(), "8.00".into())
    );
    // A 503 stored nothing under its key: the client's retry debits once.
    let retried = h
        .api
        .purchase(&keys[2], s.purchase("1.00"))
        .await
        .expect(201);
    let again = h
        .api
        .purchase(&keys[2], s.purchase("1.00"))
        .await
        .expect(201);
    assert_eq!(retried.text, again.text);
    assert_eq!(
        h.api.mandate_money(s.mandate).await,
        ("991.00".into(), "9.00".into())
    );
}

#[tokio::test]
async fn mandate_creation_survives_contention_and_throttling() {
    let h = &harness("busy-mandate").await;
    // One mandate first: its id counter exists, so no test run creates it.
    MandateSetup::new(&h.api, "1.00").await;
    let mut pairs = Vec::new();
    for _ in 0..13 {
        pairs.push((
            create_user(&h.api, "s").await,
            create_user(&h.api, "b").await,
        ));
    }
    under_every_fault(
        h,
        "POST /mandates",
        pairs,
        201,
        |(sender, beneficiary)| async move {
            h.api
                .post(
                    "/mandates",
                    json!({"sender_id": sender, "beneficiary_id": beneficiary,
                       "total_amount": "10.00", "expires_at": "2099-01-01T00:00:00Z"}),
                )
                .await
        },
    )
    .await;
}

#[tokio::test]
async fn users_and_api_keys_survive_contention_and_throttling() {
    let h = &harness("busy-users").await;
    create_user(&h.api, "first").await;
    under_every_fault(h, "POST /users", contexts(()), 201, |()| async {
        let name = unique("u");
        h.api
            .post(
                "/users",
                json!({"username": name, "email": format!("{name}@example.com")}),
            )
            .await
    })
    .await;
    let mut users = Vec::new();
    for _ in 0..13 {
        users.push(create_user(&h.api, "u").await);
    }
    under_every_fault(h, "PATCH /users/{id}", users, 200, |user| async move {
        h.api
            .call(
                "PATCH",
                &format!("/users/{user}"),
                &[],
                Some(json!({"is_active": false})),
            )
            .await
    })
    .await;
    under_every_fault(h, "POST /apikeys", contexts(()), 201, |()| async {
        h.api
            .post(
                "/apikeys",
                json!({"name": unique("key"), "scope": "support"}),
            )
            .await
    })
    .await;

    let mut keys = Vec::new();
    for _ in 0..13 {
        let made = h
            .api
            .post(
                "/apikeys",
                json!({"name": unique("key"), "scope": "support"}),
            )
            .await
            .expect(201);
        keys.push((made.id(), made.body["key"].as_str().unwrap().to_string()));
    }
    // A revocation changes an item and adds an audit entry.
    under_every_fault(
        h,
        "DELETE /apikeys/{id}",
        keys.clone(),
        204,
        |(id, _)| async move {
            h.api
                .call("DELETE", &format!("/apikeys/{id}"), &[], None)
                .await
        },
    )
    .await;
    // The keys whose revocation answered 503 still work; the others do not.
    for (i, (_, secret)) in keys.iter().enumerate() {
        let revoked = i == 0 || i % 2 == 1;
        let status = h
            .api
            .state
            .auth
            .authenticate(&h.api.state.store, Some(&format!("Bearer {secret}")))
            .await
            .map(|_| 200)
            .unwrap_or_else(|e| e.status());
        assert_eq!(status, if revoked { 401 } else { 200 }, "key {i}");
    }
}

#[tokio::test]
async fn the_catalogue_survives_contention_and_throttling() {
    let h = &harness("busy-catalogue").await;
    let owner = create_user(&h.api, "owner").await;
    let category = h
        .api
        .post(
            "/spend/categories",
            json!({"code": unique("C"), "label": "Food"}),
        )
        .await
        .expect(201)
        .id();
    h.api
        .post(
            "/spend/merchants",
            json!({"name": unique("m"), "category_id": category}),
        )
        .await
        .expect(201);
    under_every_fault(h, "POST /spend/categories", contexts(()), 201, |()| async {
        h.api
            .post(
                "/spend/categories",
                json!({"code": unique("C"), "label": "Food"}),
            )
            .await
    })
    .await;
    under_every_fault(h, "POST /spend/merchants", contexts(()), 201, |()| async {
        h.api
            .post(
                "/spend/merchants",
                json!({"name": unique("m"), "category_id": category}),
            )
            .await
    })
    .await;
    let mut merchants = Vec::new();
    for _ in 0..13 {
        merchants.push(
            h.api
                .post("/spend/merchants", json!({"name": unique("m")}))
                .await
                .expect(201)
                .id(),
        );
    }
    under_every_fault(
        h,
        "POST /spend/allow",
        merchants,
        201,
        |merchant| async move {
            h.api
                .post(
                    "/spend/allow",
                    json!({"owner_id": owner, "merchant_id": merchant}),
                )
                .await
        },
    )
    .await;
}

#[tokio::test]
async fn restricted_transfers_survive_contention_and_throttling() {
    let h = &harness("busy-transfers").await;
    let transfer = |sender: u64, receiver: u64, key: String| async move {
        h.api
            .call(
                "POST",
                "/transactions",
                &[("idempotency-key", &key)],
                Some(json!({"sender_id": sender, "receiver_id": receiver, "amount": "1.00"})),
            )
            .await
    };
    let sender = create_user(&h.api, "sender").await;
    let mut receivers = Vec::new();
    for _ in 0..13 {
        receivers.push(create_user(&h.api, "receiver").await);
    }
    under_every_fault(
        h,
        "POST /allowlist",
        receivers.clone(),
        201,
        |r| async move {
            h.api
                .post("/allowlist", json!({"owner_id": sender, "recipient_id": r}))
                .await
        },
    )
    .await;
    under_every_fault(
        h,
        "POST /certified",
        receivers.clone(),
        201,
        |r| async move {
            h.api
                .post("/certified", json!({"user_id": r, "level": "basic"}))
                .await
        },
    )
    .await;

    // One of each first: the id counters exist, so no test run creates one.
    let stranger = create_user(&h.api, "stranger").await;
    transfer(sender, receivers[0], unique("k"))
        .await
        .expect(201);
    transfer(stranger, sender, unique("k"))
        .await
        .expect_error(403, "UNAUTHORIZED_TRANSFER");
    let keys = || (0..13).map(|_| unique("k")).collect::<Vec<_>>();
    under_every_fault(h, "POST /transactions", keys(), 201, |key| {
        transfer(sender, receivers[1], key)
    })
    .await;
    under_every_fault(h, "POST /transactions (refused)", keys(), 403, |key| {
        transfer(stranger, sender, key)
    })
    .await;
    // The first, the clean one and six recovered, each once; none for a 503.
    assert_eq!(h.table.count("TRANSACTION#", "sender_id", sender).await, 8);
    assert_eq!(
        h.table
            .count(
                "ALERT#UNAUTHORIZED_TRANSFER_ATTEMPT#",
                "actor_user_id",
                stranger
            )
            .await,
        8
    );
}

#[tokio::test]
async fn payees_and_spends_survive_contention_and_throttling() {
    let h = &harness("busy-spends").await;
    let e = EscrowSetup::new(&h.api, "100.00").await;
    h.api
        .deposit(e.escrow, &unique("k"), "100.00")
        .await
        .expect(200);
    let allow = |payee_ref: String| async move {
        h.api
            .post(
                "/spend/allowed",
                json!({"escrow_id": e.escrow, "payee_ref": payee_ref, "label": "School",
                       "daily_limit": "50.00", "total_limit": "60.00"}),
            )
            .await
    };
    let spend = |key: String| async move {
        h.api
            .call(
                "POST",
                "/spend",
                &[("idempotency-key", &key)],
                Some(json!({"escrow_id": e.escrow, "payee_ref": "first", "amount": "1.00"})),
            )
            .await
    };
    // One of each first: the id counters exist, so no test run creates one.
    allow("first".into()).await.expect(201);
    spend(unique("k")).await.expect(200);
    let refs = (0..13).map(|i| format!("payee-{i}")).collect();
    under_every_fault(h, "POST /spend/allowed", refs, 201, allow).await;
    let keys = (0..13).map(|_| unique("k")).collect();
    under_every_fault(h, "POST /spend", keys, 200, spend).await;
    // The first, the clean one and six recovered; nothing for a 503.
    let footprint = h.table.escrow_footprint(e.escrow).await;
    assert_eq!((footprint.available, footprint.paid), (9200, 800));
    let payee = h
        .table
        .item(shared::store::items::key_item(&shared::store::keys::payee(
            shared::domain::ids::Id::new(e.escrow).unwrap(),
            "first",
        )))
        .await
        .unwrap();
    assert_eq!(payee["spent_total_cents"].as_n().unwrap(), "800");
}

/// `n` escrows of 10.00, each brought to `state` (DRAFT, FUNDED,
/// RELEASABLE), backdated past their deadline if `overdue`.
async fn escrows_in(h: &Harness, n: usize, state: &str, overdue: bool) -> Vec<u64> {
    let mut made = Vec::new();
    for _ in 0..n {
        let s = EscrowSetup::new(&h.api, "10.00").await;
        if state != "DRAFT" {
            h.api
                .deposit(s.escrow, &unique("k"), "10.00")
                .await
                .expect(200);
        }
        if state == "RELEASABLE" {
            h.api
                .call(
                    "POST",
                    &format!("/escrows/{}/mark-delivered", s.escrow),
                    &[],
                    None,
                )
                .await
                .expect(200);
        }
        if overdue {
            h.table.backdate_escrow(s.escrow).await;
        }
        made.push(s.escrow);
    }
    made
}

async fn escrow_status(h: &Harness, escrow: u64) -> String {
    h.api
        .get(&format!("/escrows/{escrow}"))
        .await
        .expect(200)
        .body["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A harness with one of everything done first: the id counters (escrow,
/// milestone, payment, alert) exist, so no test run creates one.
async fn escrow_harness(name: &str) -> (Harness, EscrowSetup) {
    let h = harness(name).await;
    let first = EscrowSetup::with(
        &h.api,
        json!({"amount_total": "10.00",
               "milestones": [{"label": "all", "amount": "10.00", "proof_type": "PHOTO"}]}),
    )
    .await;
    h.api
        .deposit(first.escrow, &unique("k"), "10.00")
        .await
        .expect(200);
    h.api
        .call(
            "POST",
            &format!("/escrows/{}/client-approve", first.escrow),
            &[],
            None,
        )
        .await
        .expect(200);
    let missed = escrows_in(&h, 1, "FUNDED", true).await;
    h.api
        .call(
            "POST",
            &format!("/escrows/{}/check-deadline", missed[0]),
            &[],
            None,
        )
        .await
        .expect(200);
    (h, first)
}

#[tokio::test]
async fn escrow_creation_and_deposits_survive_contention_and_throttling() {
    let (h, first) = &escrow_harness("busy-escrows").await;
    let (client, provider) = (first.client, first.provider);
    under_every_fault(h, "POST /escrows", contexts(()), 201, |()| async move {
        h.api
            .post(
                "/escrows",
                json!({"client_id": client, "provider_id": provider, "amount_total": "5.00",
                       "deadline_at": "2099-01-01T00:00:00Z",
                       "milestones": [{"label": "all", "amount": "5.00", "proof_type": "PHOTO"}]}),
            )
            .await
    })
    .await;

    let drafts = escrows_in(h, 13, "DRAFT", false).await;
    under_every_fault(
        h,
        "POST /escrows/{id}/deposit",
        drafts.clone(),
        200,
        |id| async move { h.api.deposit(id, &unique("k"), "10.00").await },
    )
    .await;
    // The 503s deposited nothing: still DRAFT.
    for (i, id) in drafts.iter().enumerate() {
        let refused = i > 0 && i % 2 == 0;
        let expected = if refused { "DRAFT" } else { "FUNDED" };
        assert_eq!(escrow_status(h, *id).await, expected, "deposit {i}");
    }
}

/// Each `(action, from, overdue, to)` under every fault; the escrows whose
/// call answered 503 are still in `from`.
async fn escrow_transitions_under_every_fault(name: &str, cases: &[(&str, &str, bool, &str)]) {
    let (h, _) = &escrow_harness(name).await;
    for &(action, state, overdue, to) in cases {
        let escrows = escrows_in(h, 13, state, overdue).await;
        let path = format!("POST /escrows/{{id}}/{action} from {state}");
        under_every_fault(h, &path, escrows.clone(), 200, |id| async move {
            h.api
                .call("POST", &format!("/escrows/{id}/{action}"), &[], None)
                .await
        })
        .await;
        for (i, id) in escrows.iter().enumerate() {
            let refused = i > 0 && i % 2 == 0;
            let expected = if refused { state } else { to };
            assert_eq!(escrow_status(h, *id).await, expected, "{path}: escrow {i}");
        }
    }
}

#[tokio::test]
async fn escrow_payouts_survive_contention_and_throttling() {
    escrow_transitions_under_every_fault(
        "busy-payouts",
        &[
            ("client-approve", "FUNDED", false, "RELEASED"),
            ("check-deadline", "RELEASABLE", true, "RELEASED"),
            ("mark-delivered", "FUNDED", false, "RELEASABLE"),
        ],
    )
    .await;
}

#[tokio::test]
async fn escrow_refunds_survive_contention_and_throttling() {
    escrow_transitions_under_every_fault(
        "busy-refunds",
        &[
            ("client-reject", "FUNDED", false, "REFUNDED"),
            ("client-reject", "DRAFT", false, "CANCELLED"),
            ("check-deadline", "FUNDED", true, "FUNDED"),
        ],
    )
    .await;
}

fn scheduled_event() -> EventBridgeEvent {
    serde_json::from_value(
        json!({"version": "0", "id": "t", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "1", "time": "2030-01-01T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}}),
    )
    .unwrap()
}

/// Runs the sweep as the schedule does, or as `/mandates/cleanup` does.
async fn sweep(h: &Harness, by_cleanup: bool) -> Result<Value, Reply> {
    if by_cleanup {
        let reply = h.api.post("/mandates/cleanup", json!({})).await;
        if reply.status.as_u16() == 202 {
            Ok(reply.body)
        } else {
            Err(reply)
        }
    } else {
        match mandate_expiry::handle(&h.api.state.store, scheduled_event()).await {
            Ok(value) => Ok(value),
            Err(e) => Err(Reply::read(axum::response::IntoResponse::into_response(e)).await),
        }
    }
}

async fn status_of(h: &Harness, mandate: u64) -> String {
    h.api
        .get(&format!("/mandates/{mandate}"))
        .await
        .expect(200)
        .body["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn expired_entries(h: &Harness, mandate: u64) -> usize {
    h.table
        .audit_actions("USAGE_MANDATE", mandate)
        .await
        .iter()
        .filter(|a| *a == "USAGE_MANDATE_EXPIRED")
        .count()
}

/// Two overdue mandates; the first cannot be written this run.
async fn sweep_skips_and_goes_on(by_cleanup: bool) {
    let h = &harness(if by_cleanup {
        "busy-cleanup"
    } else {
        "busy-sweep"
    })
    .await;
    for fault in Fault::ALL {
        let stuck = MandateSetup::new(&h.api, "10.00").await.mandate;
        let free = MandateSetup::new(&h.api, "20.00").await.mandate;
        h.table.backdate_mandate(stuck).await;
        h.table.backdate_mandate(free).await;

        h.faults.inject_touching(fault, &format!("MANDATE#{stuck}"));
        let run = sweep(h, by_cleanup).await;
        h.faults.clear();
        let run = run.unwrap_or_else(|r| panic!("{fault:?}: the run failed: {}", r.text));
        assert_eq!(run["expired"], 1, "{fault:?}: {run}");
        assert_eq!(run["skipped"], 1, "{fault:?}: {run}");
        assert!(h.faults.take_injected() >= u64::from(Backoff::ATTEMPTS));
        assert_eq!(status_of(h, stuck).await, "ACTIVE", "{fault:?}");
        assert_eq!(status_of(h, free).await, "EXPIRED", "{fault:?}");

        // The next run picks it up; each is expired exactly once.
        h.faults.inject(fault, RECOVERED_AFTER);
        let run = sweep(h, by_cleanup).await;
        h.faults.clear();
        let run = run.unwrap_or_else(|r| panic!("{fault:?}: the run failed: {}", r.text));
        assert_eq!(
            (run["expired"].clone(), run["skipped"].clone()),
            (json!(1), json!(0))
        );
        assert_eq!(status_of(h, stuck).await, "EXPIRED");
        assert_eq!(expired_entries(h, stuck).await, 1);
        assert_eq!(expired_entries(h, free).await, 1);
    }

    // The index itself unreadable through every retry: 503 / an error, and
    // nothing changed.
    let overdue = MandateSetup::new(&h.api, "5.00").await.mandate;
    h.table.backdate_mandate(overdue).await;
    for fault in Fault::ALL
        .into_iter()
        .filter(|f| matches!(f, Fault::Refused(_)))
    {
        let before = h.table.item_count().await;
        h.faults.inject_forever(fault);
        let run = sweep(h, by_cleanup).await;
        h.faults.clear();
        let reply = run
            .expect_err("the index could not be read")
            .expect_error(503, "SERVICE_BUSY");
        if by_cleanup {
            assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
        }
        assert_eq!(h.table.item_count().await, before);
        assert_eq!(status_of(h, overdue).await, "ACTIVE");
    }
}

#[tokio::test]
async fn the_scheduled_sweep_skips_what_it_cannot_expire_and_goes_on() {
    sweep_skips_and_goes_on(false).await;
}

#[tokio::test]
async fn cleanup_skips_what_it_cannot_expire_and_goes_on() {
    sweep_skips_and_goes_on(true).await;
}

/// The sweep's escrow half: two RELEASABLE escrows past their deadline, the
/// first of which cannot be written this run. The other is released, the
/// first is skipped and released by the next run; each is paid once.
#[tokio::test]
async fn the_deadline_sweep_skips_a_busy_escrow_and_goes_on() {
    let h = &harness("busy-deadlines").await;
    for fault in Fault::ALL {
        let mut overdue = Vec::new();
        for _ in 0..2 {
            let e = EscrowSetup::new(&h.api, "7.00").await.escrow;
            h.api.deposit(e, &unique("k"), "7.00").await.expect(200);
            h.api
                .call("POST", &format!("/escrows/{e}/mark-delivered"), &[], None)
                .await
                .expect(200);
            h.table.backdate_escrow(e).await;
            overdue.push(e);
        }
        let (stuck, free) = (overdue[0], overdue[1]);
        let escrow_status = |id: u64| async move {
            h.api.get(&format!("/escrows/{id}")).await.expect(200).body["status"].clone()
        };

        h.faults.inject_touching(fault, &format!("ESCROW#{stuck}"));
        let run = sweep(h, false).await;
        h.faults.clear();
        let run = run.unwrap_or_else(|r| panic!("{fault:?}: the run failed: {}", r.text));
        assert_eq!(run["escrows_released"], 1, "{fault:?}: {run}");
        assert_eq!(run["escrows_skipped"], 1, "{fault:?}: {run}");
        assert!(h.faults.take_injected() >= u64::from(Backoff::ATTEMPTS));
        assert_eq!(escrow_status(stuck).await, "RELEASABLE", "{fault:?}");
        assert_eq!(escrow_status(free).await, "RELEASED", "{fault:?}");
        assert_eq!(h.table.escrow_footprint(stuck).await.payments, 0);

        // The next run picks it up; each escrow is paid exactly once.
        let run = sweep(h, false)
            .await
            .unwrap_or_else(|r| panic!("{}", r.text));
        assert_eq!(
            (
                run["escrows_released"].clone(),
                run["escrows_skipped"].clone()
            ),
            (json!(1), json!(0)),
            "{fault:?}"
        );
        assert_eq!(escrow_status(stuck).await, "RELEASED", "{fault:?}");
        for id in [stuck, free] {
            assert_eq!(h.table.escrow_footprint(id).await.payments, 1, "{fault:?}");
        }
    }
}

#[tokio::test]
async fn an_unreadable_index_entry_is_skipped_not_fatal() {
    let h = &harness("junk-index").await;
    let overdue = MandateSetup::new(&h.api, "10.00").await.mandate;
    h.table.backdate_mandate(overdue).await;
    // An entry of the expiry index that is not a mandate (no id).
    h.table
        .put(json!({"pk": "JUNK#1", "sk": "JUNK",
                    "expiry_pk": shared::store::keys::all_shards(shared::store::keys::ACTIVE_MANDATES)[0],
                    "expiry_sk": "2000-01-01T00:00:00.000000Z#junk"}))
        .await;
    for _ in 0..2 {
        let run = sweep(h, false).await.unwrap();
        assert_eq!(run["skipped"], 1, "{run}");
    }
    assert_eq!(status_of(h, overdue).await, "EXPIRED");
    assert_eq!(expired_entries(h, overdue).await, 1);
}

#[tokio::test]
async fn a_new_mandate_never_gets_a_false_conflict() {
    let h = &harness("false-409").await;
    // The guard looks taken (the transaction is cancelled on it), but when
    // read again it is free: someone freed it meanwhile. Not a 409.
    let s = MandateSetup::new(&h.api, "10.00").await;
    let other = create_user(&h.api, "other").await;
    h.faults
        .inject(Fault::CancelledAt("ConditionalCheckFailed", 1), 1);
    h.api
        .post(
            "/mandates",
            json!({"sender_id": s.sender, "beneficiary_id": other,
                   "total_amount": "5.00", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await
        .expect(201);
    assert_eq!(h.faults.take_injected(), 1);

    // The old mandate of the same parties is overdue: expired, not a 409;
    // raced by the sweep, round after round.
    let mut old = s.mandate;
    for round in 0..8 {
        h.table.backdate_mandate(old).await;
        let (created, _) = tokio::join!(
            h.api.post(
                "/mandates",
                json!({"sender_id": s.sender, "beneficiary_id": s.beneficiary,
                       "total_amount": "5.00", "expires_at": "2099-01-01T00:00:00Z"}),
            ),
            sweep(h, round % 2 == 0),
        );
        let created = created.expect(201);
        assert_eq!(status_of(h, old).await, "EXPIRED");
        assert_eq!(expired_entries(h, old).await, 1, "round {round}");
        old = created.id();
    }
    // A live ACTIVE mandate is a real conflict.
    h.api
        .post(
            "/mandates",
            json!({"sender_id": s.sender, "beneficiary_id": s.beneficiary,
                   "total_amount": "5.00", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await
        .expect_error(409, "MANDATE_CONFLICT");
}

/// `n` funded escrows of one PHOTO milestone of 10.00 each.
async fn photo_escrows(h: &Harness, n: usize) -> Vec<u64> {
    let mut made = Vec::new();
    for _ in 0..n {
        let s = EscrowSetup::with(
            &h.api,
            json!({"amount_total": "10.00",
                   "milestones": [{"label": "all", "amount": "10.00", "proof_type": "PHOTO"}]}),
        )
        .await;
        h.api
            .deposit(s.escrow, &unique("k"), "10.00")
            .await
            .expect(200);
        made.push(s.escrow);
    }
    made
}

/// An upload prepared for milestone 1 of `escrow` and its fresh photo PUT;
/// answers the upload_id.
async fn uploaded_photo(h: &Harness, escrow: u64) -> String {
    let bytes = photos::unique_bytes(photos::photo(10, None));
    let reply = h
        .api
        .post(
            "/proofs/uploads",
            photos::upload_body(escrow, 1, "image/jpeg", &bytes),
        )
        .await
        .expect(201);
    assert_eq!(photos::put_presigned(&reply.body, bytes, true).await, 200);
    reply.body["upload_id"].as_str().unwrap().to_string()
}

fn old_client_proof(escrow: u64) -> Value {
    json!({"escrow_id": escrow, "milestone_idx": 1, "type": "PHOTO",
           "storage_url": "https://example.com/p.jpg",
           "sha256": photos::sha256_hex(unique("old").as_bytes())})
}

async fn milestone_status(h: &Harness, escrow: u64) -> String {
    h.api
        .get(&format!("/escrows/{escrow}"))
        .await
        .expect(200)
        .body["milestones"][0]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Proof submission (auto-approved and paid, or to review) and decisions
/// (approve pays, reject) under every fault: they recover, or answer 503
/// having changed nothing.
#[tokio::test]
async fn proofs_survive_contention_and_throttling() {
    let (h, _) = &escrow_harness("busy-proofs").await;
    // One proof first: the proof id counter exists, so no run creates it.
    let first = photo_escrows(h, 1).await[0];
    h.api
        .post("/proofs", old_client_proof(first))
        .await
        .expect(201);

    let escrows = photo_escrows(h, 13).await;
    let mut uploads = Vec::new();
    for escrow in &escrows {
        uploads.push((*escrow, uploaded_photo(h, *escrow).await));
    }
    under_every_fault(
        h,
        "POST /proofs (auto-approved)",
        uploads,
        201,
        |(escrow, upload_id)| async move {
            h.api
                .post(
                    "/proofs",
                    json!({"escrow_id": escrow, "milestone_idx": 1, "type": "PHOTO",
                           "upload_id": upload_id}),
                )
                .await
        },
    )
    .await;
    for (i, escrow) in escrows.iter().enumerate() {
        let refused = i > 0 && i % 2 == 0;
        let expected = if refused { "WAITING" } else { "PAID" };
        assert_eq!(milestone_status(h, *escrow).await, expected, "proof {i}");
    }

    let escrows = photo_escrows(h, 13).await;
    under_every_fault(
        h,
        "POST /proofs (review)",
        escrows.clone(),
        201,
        |escrow| async move { h.api.post("/proofs", old_client_proof(escrow)).await },
    )
    .await;
    for (i, escrow) in escrows.iter().enumerate() {
        let refused = i > 0 && i % 2 == 0;
        let expected = if refused { "WAITING" } else { "PENDING_REVIEW" };
        assert_eq!(milestone_status(h, *escrow).await, expected, "review {i}");
    }

    for decision in ["approved", "rejected"] {
        let escrows = photo_escrows(h, 13).await;
        let mut proofs = Vec::new();
        for escrow in &escrows {
            let id = h
                .api
                .post("/proofs", old_client_proof(*escrow))
                .await
                .expect(201)
                .id();
            proofs.push(id);
        }
        let path = format!("POST /proofs/{{id}}/decision {decision}");
        under_every_fault(h, &path, proofs.clone(), 200, |id| async move {
            h.api
                .post(
                    &format!("/proofs/{id}/decision"),
                    json!({"decision": decision}),
                )
                .await
        })
        .await;
        for (i, escrow) in escrows.iter().enumerate() {
            let refused = i > 0 && i % 2 == 0;
            let expected = match (refused, decision) {
                (true, _) => "PENDING_REVIEW",
                (false, "approved") => "PAID",
                (false, _) => "WAITING",
            };
            assert_eq!(milestone_status(h, *escrow).await, expected, "{path} {i}");
        }
    }
}

/// The bucket failing under a submission (here: a bucket that does not
/// exist) answers 5xx, never a refusal, and stores nothing.
#[tokio::test]
async fn an_s3_read_failure_is_a_server_error_and_stores_nothing() {
    use tower::ServiceExt;
    let h = harness("s3-down").await;
    let escrow = photo_escrows(&h, 1).await[0];
    let upload_id = uploaded_photo(&h, escrow).await;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let broken = shared::blob::Blob::from_lookup(&sdk, |_| Some(unique("no-such-bucket"))).unwrap();
    let app = shared::http::app(kobatela_local::all_routes(&h.api.state, &broken));
    let before = h.table.item_count().await;
    let body = json!({"escrow_id": escrow, "milestone_idx": 1, "type": "PHOTO",
                      "upload_id": upload_id});
    let request = http::Request::builder()
        .method("POST")
        .uri("/proofs")
        .header("authorization", format!("Bearer {}", h.api.admin_key))
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let reply = Reply::read(app.oneshot(request).await.unwrap()).await;
    assert!(reply.status.is_server_error(), "{}", reply.text);
    assert!(
        ["INTERNAL_ERROR", "SERVICE_BUSY"].contains(&reply.code()),
        "{}",
        reply.text
    );
    assert!(!reply.text.contains("no-such-bucket"), "{}", reply.text);
    assert_eq!(h.table.item_count().await, before);
    assert_eq!(milestone_status(&h, escrow).await, "WAITING");
    // With the bucket back, the same upload goes through.
    h.api.post("/proofs", body).await.expect(201);
}
