//! The access matrix of docs/api.md, as a table: every route of the inventory ×
//! {no key, revoked key, admin, support, the named party, another party, a
//! stranger, an inactive user} → the status class the contract gives that
//! cell: 2xx, 401, 403, or 404 (a user reading what it is not a party to
//! sees it as absent). Each cell is one request over HTTP; cells that change
//! state get fresh fixtures or are safe to repeat (a second approval is 200
//! unchanged, a new `Idempotency-Key` is a new request).
//!
//! `every_documented_route_has_a_row` fails when a route is added to the
//! API document (`openapi.json`) without a row here.

use kobatela_tests::{
    create_user, psp_processed, send_psp_event, unique, user_key, Api, EscrowSetup, Reply,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The eight callers of every row, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    NoKey,
    Revoked,
    Admin,
    Support,
    Party,
    OtherParty,
    Stranger,
    Inactive,
}

const CALLERS: [Caller; 8] = [
    Caller::NoKey,
    Caller::Revoked,
    Caller::Admin,
    Caller::Support,
    Caller::Party,
    Caller::OtherParty,
    Caller::Stranger,
    Caller::Inactive,
];

/// A status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Ok,
    Unauthorized,
    Forbidden,
    Absent,
}
use Class::{Absent as N, Forbidden as F, Ok as K, Unauthorized as U};

fn class_of(status: u16) -> Option<Class> {
    match status {
        200..=299 => Some(Class::Ok),
        401 => Some(Class::Unauthorized),
        403 => Some(Class::Forbidden),
        404 => Some(Class::Absent),
        _ => None,
    }
}

/// Who plays which part, and what exists before the rows run.
struct World {
    admin: Api,
    keys: [Api; 8],
    /// Users: an escrow's client and provider, a mandate's beneficiary.
    c: u64,
    p: u64,
    b: u64,
    merchant: u64,
    mandate: u64,
    purchase: u64,
    escrow_draft: u64,
    escrow_funded: u64,
    escrow_released: u64,
    payment: u64,
    transaction: u64,
    psp_event: String,
    /// The alert `psp_event` raised (its reference is unknown).
    alert: u64,
    /// An old client's proof (PENDING) on an escrow of `c` (client) and `p`.
    proof: u64,
    /// A ledger check run (this world's, or one already running).
    ledger_run: u64,
    /// A settlement report uploaded (its SHA-256) and one reconciled.
    report_upload: String,
    settlement: u64,
}

impl World {
    async fn new() -> World {
        let admin = Api::admin();
        let (c, p, b) = (
            create_user(&admin, "c").await,
            create_user(&admin, "p").await,
            create_user(&admin, "b").await,
        );
        let stranger = create_user(&admin, "s").await;
        let inactive = create_user(&admin, "i").await;
        let inactive_key = user_key(&admin, inactive).await;
        admin.set_user_active(inactive, false).await.expect(200);
        let revoked = admin
            .post("/apikeys", json!({"name": unique("r"), "scope": "admin"}))
            .await
            .expect(201);
        admin
            .delete(&format!("/apikeys/{}", revoked.id()))
            .await
            .expect(204);
        let support = admin
            .post("/apikeys", json!({"name": unique("s"), "scope": "support"}))
            .await
            .expect(201);
        let secret = |r: &Reply| Some(r.body["key"].as_str().unwrap().to_string());
        // The party keys are the client's (c); rows name who is who.
        let keys = [
            Api::anonymous(),
            Api::with_key(secret(&revoked)),
            admin.clone(),
            Api::with_key(secret(&support)),
            user_key(&admin, c).await,
            user_key(&admin, p).await,
            user_key(&admin, stranger).await,
            inactive_key,
        ];

        let merchant = admin
            .post(
                "/spend/merchants",
                json!({"name": unique("m"), "is_certified": true}),
            )
            .await
            .expect(201)
            .id();
        let mandate = admin
            .post(
                "/mandates",
                json!({"sender_id": c, "beneficiary_id": b, "total_amount": "1000.00",
                       "expires_at": "2099-01-01T00:00:00Z"}),
            )
            .await
            .expect(201)
            .id();
        // The provider funds one for the client too: the purchase row's
        // named party (the beneficiary) is then the party key's user.
        admin
            .post(
                "/mandates",
                json!({"sender_id": p, "beneficiary_id": c, "total_amount": "1000.00",
                       "expires_at": "2099-01-01T00:00:00Z"}),
            )
            .await
            .expect(201);
        let purchase = admin
            .purchase(
                &unique("k"),
                json!({"sender_id": c, "beneficiary_id": b, "merchant_id": merchant,
                       "amount": "1.00"}),
            )
            .await
            .expect(201)
            .id();
        let escrow = |total: &'static str| {
            let admin = admin.clone();
            async move {
                admin
                    .post(
                        "/escrows",
                        json!({"client_id": c, "provider_id": p, "amount_total": total,
                               "deadline_at": "2099-12-31T23:59:59Z"}),
                    )
                    .await
                    .expect(201)
                    .id()
            }
        };
        let escrow_draft = escrow("100000.00").await;
        let escrow_funded = escrow("100.00").await;
        admin
            .deposit(escrow_funded, &unique("k"), "100.00")
            .await
            .expect(200);
        admin
            .post(
                "/spend/allowed",
                json!({"escrow_id": escrow_funded, "payee_ref": "shop", "label": "Shop"}),
            )
            .await
            .expect(201);
        let escrow_released = escrow("10.00").await;
        admin
            .deposit(escrow_released, &unique("k"), "10.00")
            .await
            .expect(200);
        admin
            .escrow_action(escrow_released, "client-approve")
            .await
            .expect(200);
        let payment = admin
            .get(&format!("/payments?escrow_id={escrow_released}"))
            .await
            .expect(200)
            .body["items"][0]["id"]
            .as_u64()
            .unwrap();
        admin
            .post("/allowlist", json!({"owner_id": c, "recipient_id": p}))
            .await
            .expect(201);
        let transaction = transfer(&admin, c, p).await.expect(201).id();
        let proof = admin
            .post(
                "/proofs",
                json!({"escrow_id": photo_escrow(&admin, c, p).await, "milestone_idx": 1,
                       "type": "PHOTO", "storage_url": "https://example.com/p.jpg",
                       "sha256": sha256_hex(&unique("file"))}),
            )
            .await
            .expect(201)
            .id();
        let psp_event = unique("evt");
        send_psp_event(&psp_event, "payment.settled", "PSP-unknown")
            .await
            .expect(200);
        psp_processed(&admin, &psp_event).await;
        let alert = alert_raised_by(&admin, &psp_event).await;
        let ledger_run = admin.post("/ledger/checks", json!({})).await;
        assert!(
            matches!(ledger_run.status.as_u16(), 200 | 202),
            "{}",
            ledger_run.text
        );
        let ledger_run = ledger_run.id();
        // A report of a reference nobody knows, settled long ago: no
        // payment of the shared table is in its period.
        let report = format!(
            "psp_ref,amount,currency,status,settled_at\n{},1.00,USD,SETTLED,2020-01-01T00:00:00Z\n",
            unique("PSP-access")
        )
        .into_bytes();
        let sha = kobatela_tests::photos::sha256_hex(&report);
        let upload = admin
            .post(
                "/ledger/settlements/uploads",
                json!({"content_length": report.len(), "sha256": sha}),
            )
            .await
            .expect(201);
        assert_eq!(
            kobatela_tests::photos::put_presigned(&upload.body, report, true).await,
            200
        );
        let settlement = admin
            .post("/ledger/settlements", json!({"upload_id": sha}))
            .await
            .expect(201)
            .id();
        World {
            admin,
            keys,
            c,
            p,
            b,
            merchant,
            mandate,
            purchase,
            escrow_draft,
            escrow_funded,
            escrow_released,
            payment,
            transaction,
            psp_event,
            alert,
            proof,
            ledger_run,
            report_upload: sha,
            settlement,
        }
    }

    fn key(&self, caller: Caller) -> &Api {
        &self.keys[CALLERS.iter().position(|c| *c == caller).unwrap()]
    }
}

/// A FUNDED escrow of `client` and `provider` with one PHOTO milestone.
async fn photo_escrow(admin: &Api, client: u64, provider: u64) -> u64 {
    let e = EscrowSetup::with(
        admin,
        json!({"client_id": client, "provider_id": provider, "amount_total": "1.00",
               "milestones": [{"label": "m", "amount": "1.00", "proof_type": "PHOTO"}]}),
    )
    .await;
    admin
        .deposit(e.escrow, &unique("k"), "1.00")
        .await
        .expect(200);
    e.escrow
}

fn sha256_hex(text: &str) -> String {
    kobatela_tests::photos::sha256_hex(text.as_bytes())
}

async fn transfer(api: &Api, sender: u64, receiver: u64) -> Reply {
    api.send(
        Method::POST,
        "/transactions",
        &[("idempotency-key", &unique("k"))],
        Some(json!({"sender_id": sender, "receiver_id": receiver, "amount": "1.00"}).to_string()),
    )
    .await
}

/// One request of a row: method, path, body, and whether it needs an
/// `Idempotency-Key` (a fresh one per cell).
struct Request {
    method: Method,
    path: String,
    body: Option<Value>,
    idempotent: bool,
}

fn get(path: String) -> Request {
    Request {
        method: Method::GET,
        path,
        body: None,
        idempotent: false,
    }
}

fn post(path: &str, body: Value) -> Request {
    Request {
        method: Method::POST,
        path: path.to_string(),
        body: Some(body),
        idempotent: false,
    }
}

/// The `PSP_UNKNOWN_REFERENCE` alert that the event `event_id` raised, found
/// by its payload: other tests raise alerts on the shared server meanwhile,
/// so the newest alert may be anyone's.
async fn alert_raised_by(admin: &Api, event_id: &str) -> u64 {
    let list = "/alerts?type=PSP_UNKNOWN_REFERENCE&limit=100";
    let mut page = admin.get(list).await.expect(200).body;
    loop {
        let items = page["items"].as_array().expect("a page of alerts");
        if let Some(alert) = items.iter().find(|a| a["payload"]["event_id"] == event_id) {
            return alert["id"].as_u64().expect("an alert id");
        }
        let cursor = page["next_cursor"]
            .as_str()
            .unwrap_or_else(|| panic!("the unknown-reference event {event_id} raised no alert"));
        page = admin
            .get(&format!("{list}&cursor={cursor}"))
            .await
            .expect(200)
            .body;
    }
}

fn money_post(path: &str, body: Value) -> Request {
    Request {
        idempotent: true,
        ..post(path, body)
    }
}

/// A row: the route as the inventory writes it, and the expected class per
/// caller (in `CALLERS` order). "Party" is the client's key: rows whose
/// named party is another user swap the roles in their requests.
struct Row {
    route: &'static str,
    expect: [Class; 8],
}

/// What each cell sends; fixtures made per cell where a request cannot be
/// repeated.
async fn request(w: &World, route: &str) -> Request {
    let (c, p, b) = (w.c, w.p, w.b);
    match route {
        "GET /health" => get("/health".into()),
        "POST /apikeys" => post("/apikeys", json!({"name": unique("k"), "scope": "support"})),
        "GET /apikeys" => get("/apikeys".into()),
        "DELETE /apikeys/{id}" => {
            let key = w
                .admin
                .post("/apikeys", json!({"name": unique("k"), "scope": "support"}))
                .await
                .expect(201)
                .id();
            Request {
                method: Method::DELETE,
                ..get(format!("/apikeys/{key}"))
            }
        }
        "POST /users" => {
            let name = unique("u");
            post(
                "/users",
                json!({"username": name, "email": format!("{name}@example.com")}),
            )
        }
        "GET /users/{id}" => get(format!("/users/{c}")),
        "PATCH /users/{id}" => Request {
            method: Method::PATCH,
            ..post(&format!("/users/{p}"), json!({"is_active": true}))
        },
        // The client creates; a second ACTIVE mandate per pair and currency
        // would conflict, so each cell names a new beneficiary.
        "POST /mandates" => {
            let beneficiary = create_user(&w.admin, "mb").await;
            post(
                "/mandates",
                json!({"sender_id": c, "beneficiary_id": beneficiary, "total_amount": "5.00",
                       "expires_at": "2099-01-01T00:00:00Z"}),
            )
        }
        "GET /mandates/{id}" => get(format!("/mandates/{}", w.mandate)),
        "GET /mandates" => get(format!("/mandates?sender_id={c}")),
        "POST /mandates/cleanup" => post("/mandates/cleanup", json!({})),
        "POST /spend/categories" => post(
            "/spend/categories",
            json!({"code": unique("C"), "label": "Food"}),
        ),
        "POST /spend/merchants" => post("/spend/merchants", json!({"name": unique("m")})),
        "POST /spend/allow" => post(
            "/spend/allow",
            json!({"owner_id": c, "merchant_id": w.merchant}),
        ),
        // The beneficiary spends: the mandate's beneficiary is the client
        // here, the provider being the sender (roles swapped).
        "POST /spend/purchases" => money_post(
            "/spend/purchases",
            json!({"sender_id": p, "beneficiary_id": c, "merchant_id": w.merchant,
                   "amount": "0.01"}),
        ),
        "GET /spend/purchases/{id}" => get(format!("/spend/purchases/{}", w.purchase)),
        "POST /spend/allowed" => post(
            "/spend/allowed",
            json!({"escrow_id": w.escrow_funded, "payee_ref": unique("payee"), "label": "Shop"}),
        ),
        "GET /spend/allowed" => get(format!("/spend/allowed?escrow_id={}", w.escrow_funded)),
        "POST /spend" => money_post(
            "/spend",
            json!({"escrow_id": w.escrow_funded, "payee_ref": "shop", "amount": "0.01"}),
        ),
        "POST /escrows" => post(
            "/escrows",
            json!({"client_id": c, "provider_id": p, "amount_total": "1.00",
                   "deadline_at": "2099-12-31T23:59:59Z"}),
        ),
        "GET /escrows" => get(format!("/escrows?client_id={c}")),
        "GET /escrows/{id}" => get(format!("/escrows/{}", w.escrow_funded)),
        "GET /escrows/{id}/events" => get(format!("/escrows/{}/events", w.escrow_funded)),
        "POST /escrows/{id}/deposit" => money_post(
            &format!("/escrows/{}/deposit", w.escrow_draft),
            json!({"amount": "0.01"}),
        ),
        // The provider delivers (roles swapped: the escrow's provider is
        // the party key's user); a repeat is 200 unchanged.
        "POST /escrows/{id}/mark-delivered" => {
            let e = EscrowSetup::with(
                &w.admin,
                json!({"amount_total": "1.00", "client_id": p, "provider_id": c}),
            )
            .await;
            w.admin
                .deposit(e.escrow, &unique("k"), "1.00")
                .await
                .expect(200);
            post(&format!("/escrows/{}/mark-delivered", e.escrow), json!({}))
        }
        "POST /escrows/{id}/client-approve" | "POST /escrows/{id}/client-reject" => {
            let e = w
                .admin
                .post(
                    "/escrows",
                    json!({"client_id": c, "provider_id": p, "amount_total": "1.00",
                           "deadline_at": "2099-12-31T23:59:59Z"}),
                )
                .await
                .expect(201)
                .id();
            w.admin.deposit(e, &unique("k"), "1.00").await.expect(200);
            let action = route.rsplit('/').next().unwrap();
            post(&format!("/escrows/{e}/{action}"), json!({}))
        }
        "POST /escrows/{id}/check-deadline" => post(
            &format!("/escrows/{}/check-deadline", w.escrow_funded),
            json!({}),
        ),
        // The provider proves (roles swapped: the party key's user is the
        // provider), on a fresh escrow each time (a milestone takes one
        // proof at a time).
        "POST /proofs/uploads" => post(
            "/proofs/uploads",
            json!({"escrow_id": photo_escrow(&w.admin, p, c).await, "milestone_idx": 1,
                   "content_type": "image/jpeg", "content_length": 100,
                   "sha256": sha256_hex(&unique("file"))}),
        ),
        "POST /proofs" => post(
            "/proofs",
            json!({"escrow_id": photo_escrow(&w.admin, p, c).await, "milestone_idx": 1,
                   "type": "PHOTO", "storage_url": "https://example.com/p.jpg",
                   "sha256": sha256_hex(&unique("file"))}),
        ),
        "GET /proofs/{id}" => get(format!("/proofs/{}", w.proof)),
        // The client decides; the same decision again is 200 unchanged.
        "POST /proofs/{id}/decision" => post(
            &format!("/proofs/{}/decision", w.proof),
            json!({"decision": "rejected"}),
        ),
        "GET /payments/{id}" => get(format!("/payments/{}", w.payment)),
        "GET /payments" => get(format!("/payments?escrow_id={}", w.escrow_released)),
        "GET /proofs" => get(format!("/proofs?escrow_id={}", w.escrow_released)),
        "GET /psp/events" => get("/psp/events?status=IGNORED".into()),
        "POST /allowlist" => post("/allowlist", json!({"owner_id": c, "recipient_id": p})),
        "POST /certified" => post("/certified", json!({"user_id": b, "level": "GOLD"})),
        "POST /transactions" => money_post(
            "/transactions",
            json!({"sender_id": c, "receiver_id": p, "amount": "0.01"}),
        ),
        "GET /transactions/{id}" => get(format!("/transactions/{}", w.transaction)),
        "GET /transactions" => get(format!("/transactions?sender_id={c}")),
        "GET /psp/events/{event_id}" => get(format!("/psp/events/{}", w.psp_event)),
        // A SENT payment: answered unchanged.
        "POST /payments/execute/{id}" => {
            post(&format!("/payments/execute/{}", w.payment), json!({}))
        }
        "GET /alerts" => get("/alerts".into()),
        // This world's alert: acknowledging again is 200 unchanged.
        "POST /alerts/{id}/ack" => post(&format!("/alerts/{}/ack", w.alert), json!({})),
        "GET /audit/{entity}/{id}" => get(format!("/audit/user/{c}")),
        // One run at a time: 202 new, or 200 the one running.
        "POST /ledger/checks" => post("/ledger/checks", json!({})),
        "GET /ledger/checks/{id}" => get(format!("/ledger/checks/{}", w.ledger_run)),
        "POST /ledger/settlements/uploads" => post(
            "/ledger/settlements/uploads",
            json!({"content_length": 10, "sha256": "ab".repeat(32)}),
        ),
        // The world's report again: a new result, no new alert.
        "POST /ledger/settlements" => {
            post("/ledger/settlements", json!({"upload_id": w.report_upload}))
        }
        "GET /ledger/settlements" => get("/ledger/settlements".into()),
        "GET /ledger/settlements/{id}" => get(format!("/ledger/settlements/{}", w.settlement)),
        other => panic!("no request for {other}: add one"),
    }
}

/// docs/api.md's inventory, row by row. Columns: no key, revoked, admin, support,
/// party, other party, stranger, inactive.
fn rows() -> Vec<Row> {
    let row = |route, expect| Row { route, expect };
    // Staff only, or admin only: users are forbidden, whoever they are.
    let admin_only = [U, U, K, F, F, F, F, F];
    let staff = [U, U, K, K, F, F, F, F];
    // Acting as the named party: the other party and strangers may not.
    let party_acts = [U, U, K, F, K, F, F, F];
    // Reading one resource: parties may, a stranger sees it absent.
    let party_reads = [U, U, K, K, K, K, N, F];
    // A list: everyone may ask; a user sees only its own.
    let lists = [U, U, K, K, K, K, K, F];
    vec![
        row("GET /health", [K, K, K, K, K, K, K, K]),
        row("POST /apikeys", admin_only),
        row("GET /apikeys", admin_only),
        row("DELETE /apikeys/{id}", admin_only),
        row("POST /users", staff),
        // A user reads itself; another user (party or not) is absent.
        row("GET /users/{id}", [U, U, K, K, K, N, N, F]),
        row("PATCH /users/{id}", staff),
        row("POST /mandates", party_acts),
        row("GET /mandates/{id}", [U, U, K, K, K, N, N, F]),
        row("GET /mandates", lists),
        row("POST /mandates/cleanup", staff),
        row("POST /spend/categories", admin_only),
        row("POST /spend/merchants", admin_only),
        row("POST /spend/allow", party_acts),
        row("POST /spend/purchases", party_acts),
        row("GET /spend/purchases/{id}", [U, U, K, K, K, N, N, F]),
        row("POST /spend/allowed", party_acts),
        row("GET /spend/allowed", party_reads),
        // The client or the provider spends.
        row("POST /spend", [U, U, K, F, K, K, F, F]),
        row("POST /escrows", party_acts),
        row("GET /escrows", lists),
        row("GET /escrows/{id}", party_reads),
        row("GET /escrows/{id}/events", party_reads),
        row("POST /escrows/{id}/deposit", party_acts),
        row("POST /escrows/{id}/mark-delivered", party_acts),
        row("POST /escrows/{id}/client-approve", party_acts),
        row("POST /escrows/{id}/client-reject", party_acts),
        // What the schedule does: staff and either party.
        row(
            "POST /escrows/{id}/check-deadline",
            [U, U, K, K, K, K, F, F],
        ),
        row("POST /proofs/uploads", party_acts),
        row("POST /proofs", party_acts),
        row("GET /proofs/{id}", party_reads),
        row("POST /proofs/{id}/decision", [U, U, K, K, K, F, F, F]),
        row("GET /payments/{id}", party_reads),
        row("GET /payments", party_reads),
        row("GET /proofs", party_reads),
        row("GET /psp/events", staff),
        row("POST /payments/execute/{id}", staff),
        row("GET /psp/events/{event_id}", staff),
        row("POST /allowlist", party_acts),
        row("POST /certified", admin_only),
        row("POST /transactions", party_acts),
        row("GET /transactions/{id}", party_reads),
        row("GET /transactions", lists),
        row("GET /alerts", staff),
        row("POST /alerts/{id}/ack", staff),
        row("POST /ledger/checks", admin_only),
        row("GET /ledger/checks/{id}", admin_only),
        row("POST /ledger/settlements/uploads", admin_only),
        row("POST /ledger/settlements", admin_only),
        row("GET /ledger/settlements", admin_only),
        row("GET /ledger/settlements/{id}", admin_only),
        row("GET /audit/{entity}/{id}", staff),
    ]
}

#[tokio::test]
async fn every_route_answers_each_caller_as_the_contract_says() {
    let w = World::new().await;
    let mut wrong = Vec::new();
    for row in rows() {
        for (caller, expected) in CALLERS.into_iter().zip(row.expect) {
            let r = request(&w, row.route).await;
            let key = unique("k");
            let headers: Vec<(&str, &str)> = if r.idempotent {
                vec![("idempotency-key", &key)]
            } else {
                Vec::new()
            };
            let reply = w
                .key(caller)
                .send(
                    r.method.clone(),
                    &r.path,
                    &headers,
                    r.body.map(|b| b.to_string()),
                )
                .await;
            let got = class_of(reply.status.as_u16());
            if got != Some(expected) {
                wrong.push(format!(
                    "{} as {caller:?}: expected {expected:?}, got {} {}",
                    row.route,
                    reply.status.as_u16(),
                    reply.text
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The released escrow was only read.
    let released = w
        .admin
        .get(&format!("/escrows/{}", w.escrow_released))
        .await
        .expect(200);
    assert_eq!(released.body["status"], "RELEASED");
}

#[test]
fn every_documented_route_has_a_row() {
    let table = rows();
    let rows: BTreeSet<&str> = table.iter().map(|r| r.route).collect();
    assert_eq!(rows.len(), table.len(), "a route has two rows");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.json");
    let text = std::fs::read_to_string(&path).expect("the committed API document");
    let document: Value = serde_json::from_str(&text).unwrap();
    let mut missing = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let route = format!("{} {path}", method.to_uppercase());
            let exempt = ["GET /openapi.json", "POST /psp/webhook"];
            if !rows.contains(route.as_str()) && !exempt.contains(&route.as_str()) {
                missing.push(route);
            }
        }
    }
    assert!(missing.is_empty(), "routes without a row: {missing:?}");
}
