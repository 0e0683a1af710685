//! A randomized campaign: from a seed, several concurrent clients create
//! their users and those users' API keys through the API, then make random
//! purchases, deposits, releases, refunds and payee spends on shared
//! mandates and escrows, pay milestones of escrows of their own through
//! photo proofs (presigned upload, `POST /proofs`, then the client's
//! decision when a proof goes to review), and send restricted transfers
//! between their users (allowlists and certifications made along the way).
//! The PSP answers every payout by webhook (settled or failed, duplicated,
//! reordered, late), failed payouts are retried, and faults are injected
//! at random all along:
//! - DynamoDB (the fault interceptor `Faults`): cancelled transactions and
//!   throttling, whichever call comes next; the service answers 503
//!   `SERVICE_BUSY` having written nothing, or recovers;
//! - S3 (`Wire` on the proof bucket's client): a refused `GetObject` (the
//!   server's read of the upload) or `PutObject` (the proof's own copy, or
//!   the presigned PUT of `POST /proofs/uploads`) is a 500 that stored
//!   nothing; a lost answer is retried by the SDK and never seen;
//! - SQS (`Wire` on the webhook's queue client): a refused `SendMessage`,
//!   or sends whose answers are lost (the message is on the queue, one or
//!   three times), and a lost answer of the webhook's `PutItem`: the
//!   webhook answers 503 or 200, the PSP sends again after a 503, and the
//!   consumer applies each event once.
//!
//! A client sends a request refused 503 (or 500 under an S3 refusal) again,
//! the same request under the same `Idempotency-Key` where the route takes
//! one, as a real one would.
//!
//! Between two rounds, one operation at a time, answers of DynamoDB
//! transactions are lost after the write landed (`lossy`): the SDK's retry
//! under the same client request token is answered as DynamoDB answers it
//! (the wire plays that part, the emulator ignores the token); when every
//! attempt's answer is lost the service answers 500, and the client sends
//! the same request again under the same `Idempotency-Key`. Only routes
//! with a key there: on the others (users, escrows, proofs) a client
//! cannot tell a lost answer from a refusal, and the contract does not
//! promise it can. Not faulted: the consumer's own `ReceiveMessage` and
//! `DeleteMessage` (`psp.rs` covers the consumer under every fault).
//!
//! Then: the ledger check finds **no** mismatch, and a model of every
//! balance, kept by the campaign from the answers it got, agrees with
//! every stored balance; every user is stored once, every transfer and
//! refusal alert once, every proof once; each 500 the clients saw is one S3
//! refusal. Then three stored balances are corrupted in the emulator, and
//! the check finds exactly those.
//!
//! `make campaign SEED=… OPS=…` runs a long one (`KOBATELA_CAMPAIGN_SEED`,
//! `KOBATELA_CAMPAIGN_OPS`); `make test` a short one with a fixed seed.

use kobatela_tests::{
    faults::{Fault, Faults, Wire},
    photos, unique, EscrowSetup, InProcess, MandateSetup, Reply, Table,
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
    collections::{BTreeMap, BTreeSet},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

const CLIENTS: u64 = 4;
const MANDATES: usize = 3;
const ESCROWS: usize = 4;
/// Users each client makes through the API before anything else, and at
/// most in all.
const USERS: usize = 4;
const MAX_USERS: usize = 8;
/// Escrows paid by proofs each client keeps open at most.
const PROOF_ESCROWS: usize = 2;
/// The last of a client's operation draws: a user, an allowlist entry or a
/// certification.
const OWN_OPS: u32 = 21;

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
    /// Users made by the campaign: id → username.
    users: BTreeMap<u64, String>,
    /// `user` API keys made by the campaign.
    keys: u64,
    /// Sender → (transfers, cents) recorded.
    transfers: BTreeMap<u64, (u64, i64)>,
    /// Sender → `UNAUTHORIZED_TRANSFER_ATTEMPT` alerts raised.
    transfer_alerts: BTreeMap<u64, u64>,
    /// Escrow paid by proofs → proof status → proofs.
    proofs: BTreeMap<u64, BTreeMap<String, u64>>,
    operations: u64,
    refused: u64,
    counts: Counts,
}

/// What the campaign did, for its report.
#[derive(Debug, Default, Clone)]
struct Counts {
    allowlisted: u64,
    certified: u64,
    replays: u64,
    proofs_approved_at_once: u64,
    proofs_to_review: u64,
    decisions_approved: u64,
    decisions_rejected: u64,
    /// 500s seen under a refused S3 call (each retried).
    s3_errors: u64,
    /// 503s the webhook answered under an SQS or DynamoDB fault.
    webhook_busy: u64,
    /// 500s the webhook answered when every attempt's answer of one of its
    /// DynamoDB calls was lost (the write may have landed; the PSP sends
    /// again and the retry finds the event).
    webhook_lost: u64,
    /// Operations made while a transaction's answers were lost, and the
    /// 500s they answered (every answer lost: sent again under their key).
    lossy_operations: u64,
    lost_for_good: u64,
}

/// A user made by the campaign, with its `user` key.
#[derive(Debug, Clone)]
struct User {
    id: u64,
    key: String,
}

/// An escrow of a client's own, paid milestone by milestone by proofs.
#[derive(Debug, Clone)]
struct ProofEscrow {
    id: u64,
    client: User,
    provider: User,
    total: i64,
    milestones: Vec<i64>,
    /// The proof waiting for the client's decision.
    review: Option<u64>,
}

/// What one client owns across rounds: its users, who they allowlisted,
/// which of them are certified, its escrows paid by proofs. Only this
/// client acts on them, so it knows what each transfer must answer.
#[derive(Debug, Default)]
struct Own {
    users: Vec<User>,
    allowlist: BTreeSet<(u64, u64)>,
    certified: BTreeSet<u64>,
    proof_escrows: Vec<ProofEscrow>,
    /// Proofs submitted: the first goes to review, so that even a short
    /// campaign decides some.
    proofs: u64,
}

/// The world and the campaign's instruments, shared by its clients.
#[derive(Clone)]
struct Ctx {
    world: Arc<InProcess>,
    faults: Faults,
    wire: Wire,
    model: Arc<Mutex<Model>>,
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
    send_as(world, None, method, path, key, body).await
}

/// `send` with a user's key (`None`: the admin's).
async fn send_as(
    world: &InProcess,
    user: Option<&User>,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    for _ in 0..50 {
        let reply = match user {
            Some(u) => {
                world
                    .call_with(&u.key, method, path, &headers, body.clone())
                    .await
            }
            None => world.call(method, path, &headers, body.clone()).await,
        };
        if reply.status.as_u16() == 500 && key.is_some() && ANSWERS_LOST.load(Ordering::SeqCst) {
            // A transaction whose every answer was lost: the client cannot
            // know whether it landed, and sends the same request again
            // under the same key.
            assert_eq!(reply.code(), "INTERNAL_ERROR", "{}", reply.text);
            LOST_FOR_GOOD.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        if reply.status.as_u16() != 503 {
            return reply;
        }
        busy(&reply);
    }
    panic!("{method} {path}: still 503 after 50 tries");
}

/// Set while the answers of DynamoDB transactions are being lost (one
/// operation at a time, no other client running): a 500 to a request with
/// an `Idempotency-Key` is then one whose answer was lost for good.
static ANSWERS_LOST: AtomicBool = AtomicBool::new(false);
/// The 500s seen so.
static LOST_FOR_GOOD: AtomicU64 = AtomicU64::new(0);

/// A 503 is the contract's "busy, nothing written": `SERVICE_BUSY` with
/// `Retry-After`.
fn busy(reply: &Reply) {
    assert_eq!(reply.code(), "SERVICE_BUSY", "{}", reply.text);
    assert_eq!(reply.headers["retry-after"], "1", "{}", reply.text);
}

/// `send_as` for the proof routes, which read and write the bucket: a 500
/// `INTERNAL_ERROR` that names nothing inside is what a refused S3 call
/// answers (counted, then checked against the refusals the wire made),
/// and the client sends the same request again.
async fn send_proof(ctx: &Ctx, user: &User, path: &str, body: Value) -> Reply {
    for _ in 0..20 {
        let reply = send_as(
            &ctx.world,
            Some(user),
            "POST",
            path,
            None,
            Some(body.clone()),
        )
        .await;
        if reply.status.as_u16() != 500 {
            return reply;
        }
        assert_eq!(reply.code(), "INTERNAL_ERROR", "{}", reply.text);
        for inside in ["kobatela-tests", "Object", "s3", "bucket"] {
            assert!(!reply.text.contains(inside), "{inside}: {}", reply.text);
        }
        ctx.model.lock().unwrap().counts.s3_errors += 1;
    }
    panic!("POST {path}: still 500 after 20 tries");
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

/// One client's share of the operations; answers what it owns, for the
/// next round.
async fn client(
    ctx: Ctx,
    mut own: Own,
    mandates: Vec<MandateSetup>,
    escrows: Vec<u64>,
    seed: u64,
    ops: u64,
) -> Own {
    let (world, faults, model) = (ctx.world.clone(), ctx.faults.clone(), ctx.model.clone());
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..ops {
        if rng.random_bool(0.3) {
            faults.inject(Fault::ALL[rng.random_range(0..Fault::ALL.len())], 1);
        }
        let amount = rng.random_range(1..=2_500_i64);
        // Its users first, under the faults like everything else.
        let op = if own.users.len() < USERS {
            OWN_OPS
        } else {
            rng.random_range(0..=OWN_OPS)
        };
        match op {
            0..=5 => purchase(&ctx, &mandates, &mut rng, amount).await,
            6..=8 => deposit(&ctx, &escrows, &mut rng, amount).await,
            9..=12 => spend(&ctx, &escrows, &mut rng, amount).await,
            13 => {
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
            14..=16 => proof_step(&ctx, &mut own, &mut rng).await,
            17..=19 => transfer(&ctx, &own, &mut rng, amount).await,
            20..=OWN_OPS => match rng.random_range(0..3) {
                _ if own.users.len() < USERS => new_user(&ctx, &mut own).await,
                0 if own.users.len() < MAX_USERS => new_user(&ctx, &mut own).await,
                0 | 1 => allowlist(&ctx, &mut own, &mut rng).await,
                _ => certify(&ctx, &mut own, &mut rng).await,
            },
            _ => unreachable!(),
        }
    }
    own
}

/// A purchase on one of the shared mandates.
async fn purchase(ctx: &Ctx, mandates: &[MandateSetup], rng: &mut StdRng, amount: i64) {
    let (world, model) = (&ctx.world, &ctx.model);
    let m = &mandates[rng.random_range(0..mandates.len())];
    let reply = send(
        world,
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

/// A deposit on one of the shared escrows.
async fn deposit(ctx: &Ctx, escrows: &[u64], rng: &mut StdRng, amount: i64) {
    let (world, model) = (&ctx.world, &ctx.model);
    let e = escrows[rng.random_range(0..escrows.len())];
    let reply = send(
        world,
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

/// A payee's spend from one of the shared escrows.
async fn spend(ctx: &Ctx, escrows: &[u64], rng: &mut StdRng, amount: i64) {
    let (world, model) = (&ctx.world, &ctx.model);
    let e = escrows[rng.random_range(0..escrows.len())];
    let reply = send(
        world,
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
    new_payments(world, model, e).await;
}

/// Money operations with `Idempotency-Key` (purchases, deposits, spends,
/// transfers), one at a time between two rounds, each after arming the
/// loss of the next 1, 2 or 3 answers of DynamoDB transactions: the write
/// lands and its answer is lost, as after a timeout. The SDK sends it
/// again under the same client request token, which DynamoDB answers with
/// success writing nothing again (the wire plays that part: moto ignores
/// the token). With 1 or 2 lost the client sees nothing; with 3, every
/// attempt the SDK makes, the service answers 500 and the client sends the
/// same request again under the same key: it must get the first answer,
/// and the model counts the operation once.
async fn lossy(
    ctx: &Ctx,
    owned: &[Own],
    mandates: &[MandateSetup],
    escrows: &[u64],
    rng: &mut StdRng,
    ops: u64,
) {
    ANSWERS_LOST.store(true, Ordering::SeqCst);
    for _ in 0..ops {
        let losses = rng.random_range(1..=3);
        ctx.wire.lose_answers("TransactWriteItems", losses);
        let before = LOST_FOR_GOOD.load(Ordering::SeqCst);
        let amount = rng.random_range(1..=2_500_i64);
        match rng.random_range(0..4) {
            0 => purchase(ctx, mandates, rng, amount).await,
            1 => deposit(ctx, escrows, rng, amount).await,
            2 => spend(ctx, escrows, rng, amount).await,
            _ => {
                let own = &owned[rng.random_range(0..owned.len())];
                transfer(ctx, own, rng, amount).await
            }
        }
        ctx.wire.clear();
        let seen = LOST_FOR_GOOD.load(Ordering::SeqCst) - before;
        assert!(seen == 0 || losses == 3, "a 500 with {losses} answers lost");
        let mut m = ctx.model.lock().unwrap();
        m.counts.lossy_operations += 1;
        m.counts.lost_for_good += seen;
    }
    ANSWERS_LOST.store(false, Ordering::SeqCst);
}

/// A user made through the API (`POST /users`, as staff do), then its
/// `user` key (`POST /apikeys`). Neither route takes an `Idempotency-Key`:
/// a 503 wrote nothing, so the same body is sent again, and it must then
/// be created, never found taken (that would be a write behind a 503).
async fn new_user(ctx: &Ctx, own: &mut Own) {
    let name = unique("cu");
    let user = send(
        &ctx.world,
        "POST",
        "/users",
        None,
        Some(json!({"username": name, "email": format!("{name}@example.com")})),
    )
    .await
    .expect(201);
    assert_eq!(user.body["username"], name.as_str());
    let id = user.id();
    let key = send(
        &ctx.world,
        "POST",
        "/apikeys",
        None,
        Some(json!({"name": unique("cu-key"), "scope": "user", "user_id": id})),
    )
    .await
    .expect(201);
    assert_eq!(key.body["user_id"], id);
    let key = key.body["key"].as_str().unwrap().to_string();
    {
        let mut m = ctx.model.lock().unwrap();
        m.operations += 1;
        assert_eq!(m.users.insert(id, name), None, "user {id} counted twice");
        m.keys += 1;
    }
    own.users.push(User { id, key });
}

/// Two different users of this client's, at random.
fn pair(own: &Own, rng: &mut StdRng) -> (User, User) {
    let a = rng.random_range(0..own.users.len());
    let mut b = rng.random_range(0..own.users.len() - 1);
    if b >= a {
        b += 1;
    }
    (own.users[a].clone(), own.users[b].clone())
}

/// `POST /allowlist` by its owner: added the first time, "exists" after.
async fn allowlist(ctx: &Ctx, own: &mut Own, rng: &mut StdRng) {
    let (owner, recipient) = pair(own, rng);
    let reply = send_as(
        &ctx.world,
        Some(&owner),
        "POST",
        "/allowlist",
        None,
        Some(json!({"owner_id": owner.id, "recipient_id": recipient.id})),
    )
    .await;
    let new = own.allowlist.insert((owner.id, recipient.id));
    let (status, word) = if new { (201, "added") } else { (200, "exists") };
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.body["status"], word);
    let mut m = ctx.model.lock().unwrap();
    m.operations += 1;
    m.counts.allowlisted += u64::from(new);
}

/// `POST /certified` by the admin: created the first time, updated after.
async fn certify(ctx: &Ctx, own: &mut Own, rng: &mut StdRng) {
    let user = own.users[rng.random_range(0..own.users.len())].clone();
    let level = if rng.random_bool(0.5) {
        "BASIC"
    } else {
        "gold"
    };
    let reply = send(
        &ctx.world,
        "POST",
        "/certified",
        None,
        Some(json!({"user_id": user.id, "level": level})),
    )
    .await;
    let new = own.certified.insert(user.id);
    let (status, word) = if new {
        (201, "created")
    } else {
        (200, "updated")
    };
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.body["status"], word);
    let mut m = ctx.model.lock().unwrap();
    m.operations += 1;
    m.counts.certified += u64::from(new);
}

/// A restricted transfer by its sender's key: allowed iff the sender
/// allowlisted the receiver or the receiver is certified, which this
/// client alone decides, so the answer is known before it comes. A
/// quarter are sent again under the same key: the same answer, nothing
/// more recorded, no second alert.
async fn transfer(ctx: &Ctx, own: &Own, rng: &mut StdRng, amount: i64) {
    // Mostly to whom the rules let the sender pay, if anyone yet.
    let allowed_pairs: Vec<(u64, u64)> = own
        .allowlist
        .iter()
        .copied()
        .chain(own.users.iter().flat_map(|s| {
            own.certified
                .iter()
                .filter(move |r| **r != s.id)
                .map(move |r| (s.id, *r))
        }))
        .collect();
    let (sender, receiver) = if !allowed_pairs.is_empty() && rng.random_bool(0.5) {
        let (s, r) = allowed_pairs[rng.random_range(0..allowed_pairs.len())];
        let user = |id: u64| own.users.iter().find(|u| u.id == id).unwrap().clone();
        (user(s), user(r))
    } else {
        pair(own, rng)
    };
    let allowed =
        own.allowlist.contains(&(sender.id, receiver.id)) || own.certified.contains(&receiver.id);
    let key = unique("t");
    let body = json!({"sender_id": sender.id, "receiver_id": receiver.id, "amount": money(amount)});
    let reply = send_as(
        &ctx.world,
        Some(&sender),
        "POST",
        "/transactions",
        Some(&key),
        Some(body.clone()),
    )
    .await;
    if allowed {
        let reply = reply.clone().expect(201);
        assert_eq!(reply.body["status"], "COMPLETED");
        assert_eq!(reply.body["amount"], money(amount).as_str());
    } else {
        reply.clone().expect_error(403, "UNAUTHORIZED_TRANSFER");
    }
    let replayed = rng.random_bool(0.25);
    if replayed {
        let again = send_as(
            &ctx.world,
            Some(&sender),
            "POST",
            "/transactions",
            Some(&key),
            Some(body),
        )
        .await;
        assert_eq!(again.status, reply.status, "{}", again.text);
        assert_eq!(again.body, reply.body);
    }
    let mut m = ctx.model.lock().unwrap();
    m.operations += 1;
    m.counts.replays += u64::from(replayed);
    if allowed {
        let t = m.transfers.entry(sender.id).or_default();
        t.0 += 1;
        t.1 += amount;
    } else {
        m.refused += 1;
        *m.transfer_alerts.entry(sender.id).or_default() += 1;
    }
}

/// One step on an escrow of this client's paid by proofs: open one, fund
/// it, prove its current milestone with a fresh photo (trusted: approved
/// and paid at once; from an untrusted source: to review), or decide the
/// proof in review (approve pays, reject reopens the milestone). A third
/// of the steps first arm an S3 fault.
async fn proof_step(ctx: &Ctx, own: &mut Own, rng: &mut StdRng) {
    if rng.random_bool(0.35) {
        let op = if rng.random_bool(0.5) {
            "GetObject"
        } else {
            "PutObject"
        };
        if rng.random_bool(0.5) {
            ctx.wire.refuse_calls(op, 1);
        } else {
            ctx.wire.lose_answers(op, 1);
        }
    }
    if own.proof_escrows.is_empty()
        || (own.proof_escrows.len() < PROOF_ESCROWS && rng.random_bool(0.2))
    {
        return open_proof_escrow(ctx, own, rng).await;
    }
    let at = rng.random_range(0..own.proof_escrows.len());
    let pe = own.proof_escrows[at].clone();
    let escrow = send(
        &ctx.world,
        "GET",
        &format!("/escrows/{}", pe.id),
        None,
        None,
    )
    .await
    .expect(200)
    .body;
    let status = escrow["status"].as_str().unwrap();
    if status == "RELEASED" {
        // Its last milestone was paid: closed.
        assert!(pe.review.is_none());
        own.proof_escrows.remove(at);
        return;
    }
    if status == "DRAFT" {
        let missing = pe.total - ctx.model.lock().unwrap().escrows[&pe.id][0];
        let amount = if rng.random_bool(0.5) {
            missing
        } else {
            rng.random_range(1..=missing)
        };
        send_as(
            &ctx.world,
            Some(&pe.client),
            "POST",
            &format!("/escrows/{}/deposit", pe.id),
            Some(&unique("pd")),
            Some(json!({"amount": money(amount)})),
        )
        .await
        .expect(200);
        let mut m = ctx.model.lock().unwrap();
        m.operations += 1;
        let b = m.escrows.get_mut(&pe.id).unwrap();
        b[0] += amount;
        b[1] += amount;
        return;
    }
    assert!(
        ["FUNDED", "RELEASABLE"].contains(&status),
        "escrow {}: {status}",
        pe.id
    );
    let milestone = escrow["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["status"] != "PAID")
        .expect("an open escrow has a milestone to pay")
        .clone();
    let idx = milestone["idx"].as_u64().unwrap() as u32;
    let amount = pe.milestones[idx as usize - 1];
    match milestone["status"].as_str().unwrap() {
        "WAITING" => {
            assert!(pe.review.is_none());
            let bytes = photos::unique_bytes(photos::photo(10, None));
            let upload = send_proof(
                ctx,
                &pe.provider,
                "/proofs/uploads",
                photos::upload_body(pe.id, idx, "image/jpeg", &bytes),
            )
            .await
            .expect(201);
            assert_eq!(photos::put_presigned(&upload.body, bytes, true).await, 200);
            let trusted = own.proofs > 0 && rng.random_bool(0.7);
            own.proofs += 1;
            let source = if trusted { "app" } else { "gallery" };
            let proof = send_proof(
                ctx,
                &pe.provider,
                "/proofs",
                json!({"escrow_id": pe.id, "milestone_idx": idx, "type": "PHOTO",
                       "upload_id": upload.body["upload_id"], "metadata": {"source": source}}),
            )
            .await
            .expect(201);
            {
                let mut m = ctx.model.lock().unwrap();
                m.operations += 1;
                if trusted {
                    assert_eq!(proof.body["status"], "APPROVED", "{}", proof.text);
                    m.counts.proofs_approved_at_once += 1;
                    paid_milestone(&mut m, pe.id, amount);
                    *m.proofs
                        .get_mut(&pe.id)
                        .unwrap()
                        .entry("APPROVED".into())
                        .or_default() += 1;
                } else {
                    assert_eq!(proof.body["status"], "PENDING", "{}", proof.text);
                    assert_eq!(proof.body["review_reason"], "UNTRUSTED_SOURCE");
                    m.counts.proofs_to_review += 1;
                    *m.proofs
                        .get_mut(&pe.id)
                        .unwrap()
                        .entry("PENDING".into())
                        .or_default() += 1;
                }
            }
            own.proof_escrows[at].review = (!trusted).then(|| proof.id());
            if trusted {
                new_payments(&ctx.world, &ctx.model, pe.id).await;
            }
        }
        "PENDING_REVIEW" => {
            let proof = pe.review.expect("the proof in review is known");
            let approve = rng.random_bool(0.7);
            let decision = if approve { "approved" } else { "rejected" };
            let reply = send_as(
                &ctx.world,
                Some(&pe.client),
                "POST",
                &format!("/proofs/{proof}/decision"),
                None,
                Some(json!({"decision": decision, "note": "campaign"})),
            )
            .await
            .expect(200);
            assert_eq!(reply.body["status"], decision.to_ascii_uppercase().as_str());
            {
                let mut m = ctx.model.lock().unwrap();
                m.operations += 1;
                let by_status = m.proofs.get_mut(&pe.id).unwrap();
                *by_status.get_mut("PENDING").unwrap() -= 1;
                *by_status.entry(decision.to_ascii_uppercase()).or_default() += 1;
                if approve {
                    m.counts.decisions_approved += 1;
                    paid_milestone(&mut m, pe.id, amount);
                } else {
                    m.counts.decisions_rejected += 1;
                }
            }
            own.proof_escrows[at].review = None;
            if approve {
                new_payments(&ctx.world, &ctx.model, pe.id).await;
            }
        }
        // Paid, then failed at the PSP: the next PSP round retries it.
        "APPROVED" => {}
        other => panic!("escrow {} milestone {idx}: {other}", pe.id),
    }
}

/// A milestone's payout left the escrow's available money.
fn paid_milestone(m: &mut Model, escrow: u64, amount: i64) {
    let b = m.escrows.get_mut(&escrow).unwrap();
    b[1] -= amount;
    b[2] += amount;
}

/// `POST /escrows` by the client's own key, between two of this client's
/// users, in two or three PHOTO milestones.
async fn open_proof_escrow(ctx: &Ctx, own: &mut Own, rng: &mut StdRng) {
    let (client, provider) = pair(own, rng);
    let milestones: Vec<i64> = (0..rng.random_range(2..=3))
        .map(|_| rng.random_range(100..=3_000))
        .collect();
    let total: i64 = milestones.iter().sum();
    let body = json!({
        "client_id": client.id,
        "provider_id": provider.id,
        "amount_total": money(total),
        "currency": "USD",
        "deadline_at": "2099-12-31T23:59:59Z",
        "milestones": milestones.iter().enumerate().map(|(i, a)| json!({
            "label": format!("step {}", i + 1), "amount": money(*a), "proof_type": "PHOTO"
        })).collect::<Vec<_>>(),
    });
    let created = send_as(
        &ctx.world,
        Some(&client),
        "POST",
        "/escrows",
        None,
        Some(body),
    )
    .await
    .expect(201);
    let id = created.id();
    {
        let mut m = ctx.model.lock().unwrap();
        m.operations += 1;
        assert!(m.escrows.insert(id, [0; 4]).is_none());
        m.proofs.insert(id, BTreeMap::new());
    }
    own.proof_escrows.push(ProofEscrow {
        id,
        client,
        provider,
        total,
        milestones,
        review: None,
    });
}

/// The PSP's answers: each payment PENDING gets a random fate, its events
/// sent in a shuffled order with duplicates; the model applies the first
/// event that moves a PENDING payment (the later ones are conflicts or
/// duplicates, which change nothing). Failed payouts are then retried.
///
/// Each delivery may first arm a DynamoDB fault and, apart, a fault on the
/// wire: the queue refuses the send (503, the event stays RECEIVED), or the
/// send lands and its answer is lost once (the SDK sends it again: two
/// messages, 200) or on every attempt (three messages, 503), or the
/// event's record lands and its answer is lost. After a 503 the PSP sends
/// the same request again.
async fn psp_round(ctx: &Ctx, rng: &mut StdRng) {
    let (world, faults, model, wire) = (&ctx.world, &ctx.faults, &ctx.model, &ctx.wire);
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
        match rng.random_range(0..10) {
            0 => wire.refuse_calls("SendMessage", 1),
            1 => wire.lose_answers("SendMessage", 1),
            2 => wire.lose_answers("SendMessage", 3),
            3 => wire.lose_answers("PutItem", 1),
            _ => {}
        }
        let body = kobatela_tests::psp_body(&event, kind, &psp_ref);
        let headers = kobatela_tests::psp_headers(&body);
        let mut delivered = false;
        for _ in 0..20 {
            let lost_before = wire.lost();
            let reply = world
                .psp_webhook(&kobatela_tests::header_refs(&headers), &body)
                .await;
            match reply.status.as_u16() {
                200 => {
                    assert!(
                        ["queued", "duplicate"].contains(&reply.body["status"].as_str().unwrap()),
                        "{}",
                        reply.text
                    );
                    delivered = true;
                    break;
                }
                // The PSP sends again.
                503 => {
                    busy(&reply);
                    model.lock().unwrap().counts.webhook_busy += 1;
                }
                // Every answer of a call lost (the SDK's attempts used up):
                // an unexpected error, nothing internal shown; only then.
                500 if wire.lost() > lost_before => {
                    assert_eq!(reply.code(), "INTERNAL_ERROR", "{}", reply.text);
                    model.lock().unwrap().counts.webhook_lost += 1;
                }
                _ => panic!("webhook: {} {}", reply.status, reply.text),
            }
        }
        assert!(delivered, "the webhook still refuses event {event}");
        // What this delivery did not use is not left for the next.
        wire.clear();
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
            world.as_ref(),
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
    let wire = Wire::default();
    let world = Arc::new(
        InProcess::with_s3(
            "campaign",
            wire.dynamodb_client(Some(&faults)).await,
            wire.sqs_client().await,
            wire.s3_client().await,
            &[],
        )
        .await,
    );
    let model = Arc::new(Mutex::new(Model::default()));
    let table = Table::named(&world.table).await;

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

    // Users and keys made by the fixtures above; the campaign's own come
    // on top.
    let users_before = table.items_with_prefix("USER#").await.len();
    let keys_before = table.items_with_prefix("APIKEY_ID#").await.len();

    let ctx = Ctx {
        world: world.clone(),
        faults: faults.clone(),
        wire: wire.clone(),
        model: model.clone(),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let rounds = 3;
    let mut owned: Vec<Own> = (0..CLIENTS).map(|_| Own::default()).collect();
    for round in 0..rounds {
        let tasks: Vec<_> = owned
            .drain(..)
            .enumerate()
            .map(|(c, own)| {
                tokio::spawn(client(
                    ctx.clone(),
                    own,
                    mandates.clone(),
                    escrows.clone(),
                    seed ^ (round * 1000 + c as u64),
                    ops / (CLIENTS * rounds),
                ))
            })
            .collect();
        for task in tasks {
            owned.push(task.await.expect("a client ends"));
        }
        lossy(
            &ctx,
            &owned,
            &mandates,
            &escrows,
            &mut rng,
            ops / (10 * rounds),
        )
        .await;
        psp_round(&ctx, &mut rng).await;
    }
    faults.clear();
    wire.clear();
    let injected = faults.take_injected();
    let wire_faults = |op: &str| (wire.refused_of(op), wire.lost_of(op));
    let (s3_refused, s3_lost) = {
        let (get, put) = (wire_faults("GetObject"), wire_faults("PutObject"));
        (get.0 + put.0, get.1 + put.1)
    };
    let (sqs_refused, sqs_lost) = wire_faults("SendMessage");
    let (_, put_item_lost) = wire_faults("PutItem");
    let (_, transactions_lost) = wire_faults("TransactWriteItems");
    let replayed = wire.replayed();

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

    // Every user the campaign made is stored once, as made, with its key.
    for (id, username) in &m.users {
        let user = world.get(&format!("/users/{id}")).await.expect(200);
        assert_eq!(user.body["username"], username.as_str());
    }
    assert_eq!(
        table.items_with_prefix("USER#").await.len(),
        users_before + m.users.len(),
        "users stored"
    );
    assert_eq!(
        table.items_with_prefix("APIKEY_ID#").await.len(),
        keys_before + m.keys as usize,
        "keys stored"
    );

    // Every transfer recorded once, every refusal alerted once.
    let senders: BTreeSet<u64> = m
        .transfers
        .keys()
        .chain(m.transfer_alerts.keys())
        .copied()
        .collect();
    let alerts = table
        .items_with_prefix("ALERT#UNAUTHORIZED_TRANSFER_ATTEMPT#")
        .await;
    assert_eq!(
        alerts.len() as u64,
        m.transfer_alerts.values().sum::<u64>(),
        "refusal alerts"
    );
    for sender in senders {
        let (mut count, mut sum, mut cursor) = (0, 0, String::new());
        loop {
            let page = world
                .get(&format!(
                    "/transactions?sender_id={sender}&limit=100{cursor}"
                ))
                .await
                .expect(200);
            for t in page.body["items"].as_array().unwrap() {
                count += 1;
                sum += cents(t["amount"].as_str().unwrap());
            }
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(
            (count, sum),
            m.transfers.get(&sender).copied().unwrap_or_default(),
            "transfers of {sender}"
        );
        let raised = alerts
            .iter()
            .filter(|a| {
                a["actor_user_id"]
                    .as_n()
                    .is_ok_and(|n| *n == sender.to_string())
            })
            .count() as u64;
        assert_eq!(
            raised,
            m.transfer_alerts.get(&sender).copied().unwrap_or_default(),
            "alerts of {sender}"
        );
    }

    // Every proof stored once, in the state its answers said.
    for (escrow, expected) in &m.proofs {
        let page = world
            .get(&format!("/proofs?escrow_id={escrow}&limit=100"))
            .await
            .expect(200);
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        for p in page.body["items"].as_array().unwrap() {
            *got.entry(p["status"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let expected: BTreeMap<String, u64> = expected
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (s.clone(), *n))
            .collect();
        assert_eq!(got, expected, "proofs of escrow {escrow}");
    }

    // Each 500 a client saw was one S3 refusal (and none else).
    assert_eq!(
        m.counts.s3_errors, s3_refused,
        "500s seen, S3 calls refused"
    );

    // Three balances corrupted: found, exactly those.
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
    let c = &m.counts;
    let transfers: u64 = m.transfers.values().map(|t| t.0).sum();
    let alerted: u64 = m.transfer_alerts.values().sum();
    println!(
        "campaign seed {seed}: {operations} operations ({refused} refused as the model expected), \
         {payments} payments; {} users and keys made through the API; proofs: {} approved at \
         once, {} to review ({} approved, {} rejected by the client); transfers: {transfers} \
         recorded, {alerted} refused with one alert each, {} sent again under their key; faults: \
         {injected} DynamoDB, S3 {s3_refused} refused ({} answered 500, retried) and {s3_lost} \
         answers lost, SQS {sqs_refused} sends refused and {sqs_lost} answers lost, \
         {put_item_lost} DynamoDB answers lost (webhook PutItem); the webhook answered 503 {} \
         times and 500 {} times (every answer of a call lost); {} operations under lost DynamoDB transaction answers ({transactions_lost} lost, \
         {replayed} retries answered as DynamoDB does by their client request token, {} answered \
         500 and sent again under their key); ledger check: {} mismatches on {entities} entities in {:.2} s ({:.2} s per 1 000 \
         entities); 3 balances corrupted, {} invariants broken, all found; {:.0} s in all",
        m.users.len(),
        c.proofs_approved_at_once,
        c.proofs_to_review,
        c.decisions_approved,
        c.decisions_rejected,
        c.replays,
        c.s3_errors,
        c.webhook_busy,
        c.webhook_lost,
        c.lossy_operations,
        c.lost_for_good,
        clean.counts.mismatches,
        check_time.as_secs_f64(),
        check_time.as_secs_f64() * 1000.0 / entities.max(1) as f64,
        found.counts.mismatches,
        started.elapsed().as_secs_f64()
    );
}
