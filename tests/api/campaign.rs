//! A randomized campaign: from a seed, several concurrent clients make
//! random purchases, deposits, releases, refunds and payee spends on shared
//! mandates and escrows, the PSP answers every payout by webhook (settled
//! or failed, duplicated, reordered, late), failed payouts are retried,
//! and DynamoDB refuses calls at random all along (the fault interceptor:
//! cancelled transactions, throttling). A client sends a refused request
//! again under the same `Idempotency-Key`, as a real one would.
//!
//! Then: the ledger check finds **no** mismatch, and a model of every
//! balance, kept by the campaign from the answers it got, agrees with
//! every stored balance. Then three stored balances are corrupted in the
//! emulator, and the check finds exactly those.
//!
//! `make campaign SEED=… OPS=…` runs a long one (`KOBATELA_CAMPAIGN_SEED`,
//! `KOBATELA_CAMPAIGN_OPS`); `make test` a short one with a fixed seed.

use kobatela_tests::{
    faults::{Fault, Faults},
    unique, EscrowSetup, InProcess, MandateSetup, Reply, Table,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use shared::{
    domain::{
        ids::Id,
        ledger::{Entity, Invariant, RunStatus},
    },
    ops::ledger::{self, Budget},
};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

const CLIENTS: u64 = 4;
const MANDATES: usize = 3;
const ESCROWS: usize = 4;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What the campaign expects, from the answers it got.
#[derive(Debug, Default)]
struct Model {
    /// Mandate → remaining cents.
    mandates: BTreeMap<u64, i64>,
    /// Escrow → (funded, available, paid, refunded) cents.
    escrows: BTreeMap<u64, [i64; 4]>,
    /// (escrow, payee_ref) → spent_total cents.
    payees: BTreeMap<(u64, String), i64>,
    /// Payment → (escrow, kind, cents, status, payee).
    payments: BTreeMap<u64, (u64, String, i64, String, Option<String>)>,
    operations: u64,
    refused: u64,
}

fn cents(text: &str) -> i64 {
    let (units, frac) = text.split_once('.').unwrap_or((text, "0"));
    units.parse::<i64>().unwrap() * 100 + format!("{frac:0<2}")[..2].parse::<i64>().unwrap()
}

fn money(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// Sends until the answer is not 503 (the service's "busy, nothing
/// written"), the same request each time: same key, same body.
async fn send(
    world: &InProcess,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    for _ in 0..50 {
        let reply = world.call(method, path, &headers, body.clone()).await;
        if reply.status.as_u16() != 503 {
            return reply;
        }
    }
    panic!("{method} {path}: still 503 after 50 tries");
}

/// A refusal the rules give: a 4xx with one of `codes` (the model moves
/// nothing for it). Anything else fails the campaign.
fn refusal(what: &str, reply: &Reply, codes: &[&str]) {
    let code = reply.body["error"]["code"].as_str().unwrap_or_default();
    assert!(
        reply.status.is_client_error() && codes.contains(&code),
        "{what}: {} {}",
        reply.status,
        reply.text
    );
}

/// Records the payouts and refunds an escrow action created, PENDING.
async fn new_payments(world: &InProcess, model: &Mutex<Model>, escrow: u64) {
    let page = world
        .get(&format!("/payments?escrow_id={escrow}&limit=100"))
        .await
        .expect(200);
    let mut m = model.lock().unwrap();
    for p in page.body["items"].as_array().unwrap() {
        let id = p["id"].as_u64().unwrap();
        m.payments.entry(id).or_insert_with(|| {
            (
                escrow,
                p["kind"].as_str().unwrap().to_string(),
                cents(p["amount"].as_str().unwrap()),
                "PENDING".to_string(),
                p["payee"]["payee_ref"].as_str().map(str::to_string),
            )
        });
    }
}

/// One client's share of the operations.
async fn client(
    world: Arc<InProcess>,
    faults: Faults,
    model: Arc<Mutex<Model>>,
    mandates: Vec<MandateSetup>,
    escrows: Vec<u64>,
    seed: u64,
    ops: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..ops {
        if rng.random_bool(0.3) {
            faults.inject(Fault::ALL[rng.random_range(0..Fault::ALL.len())], 1);
        }
        let amount = rng.random_range(1..=2_500_i64);
        match rng.random_range(0..10) {
            0..=3 => {
                let m = &mandates[rng.random_range(0..mandates.len())];
                let reply = send(
                    &world,
                    "POST",
                    "/spend/purchases",
                    Some(&unique("p")),
                    Some(m.purchase(&money(amount))),
                )
                .await;
                let mut model = model.lock().unwrap();
                model.operations += 1;
                match reply.status.as_u16() {
                    201 => *model.mandates.get_mut(&m.mandate).unwrap() -= amount,
                    _ => {
                        refusal(
                            "purchase",
                            &reply,
                            &["MANDATE_BALANCE_EXCEEDED", "MANDATE_REQUIRED"],
                        );
                        model.refused += 1;
                    }
                }
            }
            4..=5 => {
                let e = escrows[rng.random_range(0..escrows.len())];
                let reply = send(
                    &world,
                    "POST",
                    &format!("/escrows/{e}/deposit"),
                    Some(&unique("d")),
                    Some(json!({"amount": money(amount)})),
                )
                .await;
                let mut model = model.lock().unwrap();
                model.operations += 1;
                match reply.status.as_u16() {
                    200 => {
                        let b = model.escrows.get_mut(&e).unwrap();
                        b[0] += amount;
                        b[1] += amount;
                    }
                    _ => {
                        refusal(
                            "deposit",
                            &reply,
                            &["DEPOSIT_EXCEEDS_TOTAL", "ESCROW_INVALID_STATE"],
                        );
                        model.refused += 1;
                    }
                }
            }
            6..=8 => {
                let e = escrows[rng.random_range(0..escrows.len())];
                let reply = send(
                    &world,
                    "POST",
                    "/spend",
                    Some(&unique("s")),
                    Some(json!({"escrow_id": e, "payee_ref": "shop", "amount": money(amount / 4 + 1)})),
                )
                .await;
                {
                    let mut model = model.lock().unwrap();
                    model.operations += 1;
                    match reply.status.as_u16() {
                        200 => {
                            let amount = amount / 4 + 1;
                            let b = model.escrows.get_mut(&e).unwrap();
                            b[1] -= amount;
                            b[2] += amount;
                            *model.payees.get_mut(&(e, "shop".into())).unwrap() += amount;
                        }
                        _ => {
                            refusal(
                                "spend",
                                &reply,
                                &["ESCROW_NOT_ACTIVE", "INSUFFICIENT_ESCROW_BALANCE"],
                            );
                            model.refused += 1;
                        }
                    }
                }
                new_payments(&world, &model, e).await;
            }
            _ => {
                // Closing an escrow: released to the provider, or refunded.
                let e = escrows[rng.random_range(0..escrows.len())];
                let (first, then) = if rng.random_bool(0.5) {
                    ("mark-delivered", "client-approve")
                } else {
                    ("mark-delivered", "client-reject")
                };
                let step = send(&world, "POST", &format!("/escrows/{e}/{first}"), None, None).await;
                let mut landed = None;
                if step.status.as_u16() == 200 {
                    let reply =
                        send(&world, "POST", &format!("/escrows/{e}/{then}"), None, None).await;
                    if reply.status.as_u16() == 200 {
                        landed = Some(then);
                    }
                }
                {
                    let mut model = model.lock().unwrap();
                    model.operations += 1;
                    match landed {
                        Some(action) => {
                            let b = model.escrows.get_mut(&e).unwrap();
                            let rest = b[1];
                            b[1] = 0;
                            if action == "client-approve" {
                                b[2] += rest;
                            } else {
                                b[3] += rest;
                            }
                        }
                        None => model.refused += 1,
                    }
                }
                new_payments(&world, &model, e).await;
            }
        }
    }
}

/// The PSP's answers: each payment PENDING gets a random fate, its events
/// sent in a shuffled order with duplicates; the model applies the first
/// event that moves a PENDING payment (the later ones are conflicts or
/// duplicates, which change nothing). Failed payouts are then retried.
async fn psp_round(world: &InProcess, faults: &Faults, model: &Mutex<Model>, rng: &mut StdRng) {
    let pending: Vec<(u64, String)> = {
        let m = model.lock().unwrap();
        m.payments
            .iter()
            .filter(|(_, p)| p.3 == "PENDING")
            .map(|(id, _)| (*id, String::new()))
            .collect()
    };
    let mut events = Vec::new();
    for (id, _) in pending {
        let payment = world.get(&format!("/payments/{id}")).await.expect(200);
        let psp_ref = payment.body["psp_ref"].as_str().unwrap().to_string();
        let kind = if rng.random_bool(0.3) {
            "payment.failed"
        } else {
            "payment.settled"
        };
        let event = unique("evt");
        events.push((id, event.clone(), kind, psp_ref.clone()));
        if rng.random_bool(0.3) {
            // Duplicated: the same event again.
            events.push((id, event, kind, psp_ref.clone()));
        }
        if rng.random_bool(0.2) {
            // Late and contradicting: a conflict, changes nothing.
            let other = if kind == "payment.failed" {
                "payment.settled"
            } else {
                "payment.failed"
            };
            events.push((id, unique("evt"), other, psp_ref));
        }
    }
    // Reordered, but each payment's first event first: what the model
    // applies is the first that reaches the consumer.
    let mut firsts: Vec<_> = Vec::new();
    let mut rest: Vec<_> = Vec::new();
    for e in events {
        if firsts
            .iter()
            .any(|f: &(u64, String, &str, String)| f.0 == e.0)
        {
            rest.push(e);
        } else {
            firsts.push(e);
        }
    }
    for i in (1..firsts.len()).rev() {
        firsts.swap(i, rng.random_range(0..=i));
    }
    for (id, event, kind, psp_ref) in firsts.into_iter().chain(rest) {
        if rng.random_bool(0.2) {
            faults.inject(Fault::ALL[rng.random_range(0..Fault::ALL.len())], 1);
        }
        let body = kobatela_tests::psp_body(&event, kind, &psp_ref);
        let headers = kobatela_tests::psp_headers(&body);
        let reply = world
            .psp_webhook(&kobatela_tests::header_refs(&headers), &body)
            .await;
        assert!(matches!(reply.status.as_u16(), 200 | 503), "{}", reply.text);
        if reply.status.as_u16() == 503 {
            // The PSP sends again.
            world
                .psp_webhook(&kobatela_tests::header_refs(&headers), &body)
                .await
                .expect(200);
        }
        loop {
            let (_, failed) = world.consume_psp().await;
            if failed == 0 {
                break;
            }
        }
        let mut m = model.lock().unwrap();
        let (escrow, pkind, amount, status, payee) = m.payments[&id].clone();
        if status != "PENDING" {
            continue;
        }
        let settled = kind == "payment.settled";
        m.payments.get_mut(&id).unwrap().3 = if settled { "SETTLED" } else { "ERROR" }.into();
        if !settled {
            let b = m.escrows.get_mut(&escrow).unwrap();
            b[1] += amount;
            if pkind == "REFUND" {
                b[3] -= amount;
            } else {
                b[2] -= amount;
            }
            if let Some(payee) = payee {
                *m.payees.get_mut(&(escrow, payee)).unwrap() -= amount;
            }
        }
    }
    // Retry every failed payment once.
    let failed: Vec<u64> = {
        let m = model.lock().unwrap();
        m.payments
            .iter()
            .filter(|(_, p)| p.3 == "ERROR")
            .map(|(id, _)| *id)
            .collect()
    };
    for id in failed {
        let reply = send(
            world,
            "POST",
            &format!("/payments/execute/{id}"),
            None,
            Some(json!({})),
        )
        .await;
        let mut m = model.lock().unwrap();
        m.operations += 1;
        if reply.status.as_u16() != 200 || reply.body["status"] != "PENDING" {
            // A spend past its payee's total limit, or an escrow without
            // the money: refused, nothing moved.
            m.refused += 1;
            continue;
        }
        let (escrow, pkind, amount, _, payee) = m.payments[&id].clone();
        m.payments.get_mut(&id).unwrap().3 = "PENDING".into();
        let b = m.escrows.get_mut(&escrow).unwrap();
        b[1] -= amount;
        if pkind == "REFUND" {
            b[3] += amount;
        } else {
            b[2] += amount;
        }
        if let Some(payee) = payee {
            *m.payees.get_mut(&(escrow, payee)).unwrap() += amount;
        }
    }
}

async fn check_to_end(world: &InProcess) -> shared::store::ledger::LedgerRun {
    let store = &world.state.store;
    let run = match ledger::start(store, "campaign".into(), 4).await.unwrap() {
        Ok(run) | Err(run) => run,
    };
    let budget = Budget {
        until: Instant::now() + Duration::from_secs(600),
        pages: u32::MAX,
        page_items: 50,
    };
    let run = ledger::advance(store, run.id, budget)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Done);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_campaign_leaves_every_balance_as_its_model_says() {
    let seed = setting("KOBATELA_CAMPAIGN_SEED", 20261206);
    let ops = setting("KOBATELA_CAMPAIGN_OPS", 240);
    let started = Instant::now();
    let faults = Faults::start().await;
    let world = Arc::new(InProcess::with_client("campaign", faults.client().await, &[]).await);
    let model = Arc::new(Mutex::new(Model::default()));

    let mut mandates = Vec::new();
    for _ in 0..MANDATES {
        let m = MandateSetup::new(world.as_ref(), "500.00").await;
        model.lock().unwrap().mandates.insert(m.mandate, 50_000);
        mandates.push(m);
    }
    let mut escrows = Vec::new();
    for _ in 0..ESCROWS {
        let e = EscrowSetup::new(world.as_ref(), "900.00").await;
        world
            .call(
                "POST",
                "/spend/allowed",
                &[],
                Some(json!({"escrow_id": e.escrow, "payee_ref": "shop", "label": "Shop"})),
            )
            .await
            .expect(201);
        let mut m = model.lock().unwrap();
        m.escrows.insert(e.escrow, [0; 4]);
        m.payees.insert((e.escrow, "shop".into()), 0);
        escrows.push(e.escrow);
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let rounds = 3;
    for round in 0..rounds {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(client(
                    world.clone(),
                    faults.clone(),
                    model.clone(),
                    mandates.clone(),
                    escrows.clone(),
                    seed ^ (round * 1000 + c),
                    ops / (CLIENTS * rounds),
                ))
            })
            .collect();
        for task in tasks {
            task.await.expect("a client ends");
        }
        psp_round(&world, &faults, &model, &mut rng).await;
    }
    faults.clear();
    let injected = faults.take_injected();

    // The ledger finds nothing wrong.
    let checked_at = Instant::now();
    let clean = check_to_end(&world).await;
    let check_time = checked_at.elapsed();
    assert_eq!(clean.findings, vec![], "{:?}", clean.findings);
    assert_eq!(clean.counts.mismatches, 0);

    // The model agrees with every stored balance.
    let m = std::mem::take(&mut *model.lock().unwrap());
    for (mandate, remaining) in &m.mandates {
        let stored = world.mandate_money(*mandate).await;
        assert_eq!(cents(&stored.0), *remaining, "mandate {mandate}");
    }
    for (escrow, expected) in &m.escrows {
        let e = world.get(&format!("/escrows/{escrow}")).await.expect(200);
        let got = [
            "amount_funded",
            "amount_available",
            "amount_paid",
            "amount_refunded",
        ]
        .map(|f| cents(e.body[f].as_str().unwrap()));
        assert_eq!(&got, expected, "escrow {escrow}");
    }
    for ((escrow, payee_ref), expected) in &m.payees {
        let page = world
            .get(&format!("/spend/allowed?escrow_id={escrow}"))
            .await
            .expect(200);
        let payee = page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["payee_ref"] == payee_ref.as_str())
            .unwrap()
            .clone();
        assert_eq!(
            cents(payee["spent_total"].as_str().unwrap()),
            *expected,
            "payee {escrow}"
        );
    }
    let (operations, refused, payments) = (m.operations, m.refused, m.payments.len());

    // Three balances corrupted: found, exactly those.
    let table = Table::named(&world.table).await;
    let (mandate, escrow) = (mandates[0].mandate, escrows[0]);
    let remaining = cents(&world.mandate_money(mandate).await.0);
    table
        .set_number(
            &format!("MANDATE#{mandate}"),
            "MANDATE",
            "balance_cents",
            remaining + 7,
        )
        .await;
    let e = world.get(&format!("/escrows/{escrow}")).await.expect(200);
    let funded = cents(e.body["amount_funded"].as_str().unwrap());
    table
        .set_number(
            &format!("ESCROW#{escrow}"),
            "ESCROW",
            "funded_cents",
            funded + 1,
        )
        .await;
    let payee_total = m.payees[&(escrows[1], "shop".to_string())];
    table
        .set_number(
            &format!("PAYEE#{}#shop", escrows[1]),
            "PAYEE",
            "spent_total_cents",
            payee_total + 3,
        )
        .await;
    let found = check_to_end(&world).await;
    let mut seen: Vec<(Entity, Invariant)> = found
        .findings
        .iter()
        .map(|f| (f.entity.clone(), f.invariant))
        .collect();
    seen.sort_by_key(|f| format!("{f:?}"));
    let mut expected = vec![
        (
            Entity::Mandate {
                id: Id::new(mandate).unwrap(),
            },
            Invariant::MandateRemaining,
        ),
        (
            Entity::Escrow {
                id: Id::new(escrow).unwrap(),
            },
            Invariant::EscrowBalances,
        ),
        (
            Entity::Escrow {
                id: Id::new(escrow).unwrap(),
            },
            Invariant::EscrowFunded,
        ),
        (
            Entity::Payee {
                escrow_id: Id::new(escrows[1]).unwrap(),
                payee_ref: "shop".into(),
            },
            Invariant::PayeeSpentTotal,
        ),
    ];
    expected.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(seen, expected);

    let entities = clean.counts.mandates + clean.counts.escrows + clean.counts.payees;
    println!(
        "campaign seed {seed}: {operations} operations ({refused} refused as the model expected), \
         {payments} payments, {injected} DynamoDB faults injected; ledger check: {} mismatches on \
         {entities} entities in {:.2} s ({:.2} s per 1 000 entities); 3 balances corrupted, {} \
         invariants broken, all found; {:.0} s in all",
        clean.counts.mismatches,
        check_time.as_secs_f64(),
        check_time.as_secs_f64() * 1000.0 / entities.max(1) as f64,
        found.counts.mismatches,
        started.elapsed().as_secs_f64()
    );
}
