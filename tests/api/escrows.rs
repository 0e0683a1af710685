//! Escrows end to end, over HTTP: creation and its refusals, deposits
//! (idempotent, never beyond the total), every transition of the state
//! machine and its repeat, payments, access by scope and party, lists, the
//! timeline, and races (approve against reject, deposits against the total).
//! Every refusal is checked to change nothing (`Table::escrow_footprint`,
//! which also checks `funded = available + paid + refunded`).

use kobatela_tests::{create_user, escrow_money, unique, user_key, Api, EscrowSetup, Reply, Table};
use serde_json::{json, Value};

fn money(
    funded: &str,
    available: &str,
    paid: &str,
    refunded: &str,
    status: &str,
) -> (String, String, String, String, String) {
    (
        funded.into(),
        available.into(),
        paid.into(),
        refunded.into(),
        status.into(),
    )
}

async fn escrow(api: &Api, id: u64) -> Value {
    api.get(&format!("/escrows/{id}")).await.expect(200).body
}

async fn kinds(api: &Api, id: u64) -> Vec<String> {
    let page = api
        .get(&format!("/escrows/{id}/events?limit=100"))
        .await
        .expect(200)
        .body;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// A FUNDED escrow of `total` (one deposit by the admin).
async fn funded(admin: &Api, total: &str) -> EscrowSetup {
    let s = EscrowSetup::new(admin, total).await;
    admin
        .deposit(s.escrow, &unique("k"), total)
        .await
        .expect(200);
    s
}

#[tokio::test]
async fn an_escrow_is_created_draft_with_numbered_milestones() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = EscrowSetup::with(
        &admin,
        json!({
            "amount_total": 150,
            "currency": "eur",
            "release_conditions": {"kind": "photos"},
            "milestones": [
                {"label": "Foundations", "amount": "100.00", "proof_type": "PHOTO",
                 "geofence": {"lat": 14.7, "lng": -17.4, "radius_m": 500}},
                {"label": "Roof", "amount": 50, "proof_type": "PDF"},
            ],
        }),
    )
    .await;
    let b = &s.created;
    assert_eq!(b["client_id"], s.client);
    assert_eq!(b["provider_id"], s.provider);
    assert_eq!(b["currency"], "EUR");
    assert_eq!(b["amount_total"], "150.00");
    assert_eq!(
        escrow_money(b),
        money("0.00", "0.00", "0.00", "0.00", "DRAFT")
    );
    assert_eq!(b["release_conditions"], json!({"kind": "photos"}));
    assert!(b["deadline_at"]
        .as_str()
        .unwrap()
        .starts_with("2099-12-31T23:59:59"));
    assert!(b["created_at"].as_str().unwrap().ends_with('Z'));
    let milestones = b["milestones"].as_array().unwrap();
    assert_eq!(milestones.len(), 2);
    assert_eq!(milestones[0]["idx"], 1);
    assert_eq!(milestones[0]["label"], "Foundations");
    assert_eq!(milestones[0]["amount"], "100.00");
    assert_eq!(milestones[0]["status"], "WAITING");
    assert_eq!(milestones[0]["geofence"]["radius_m"].as_f64(), Some(500.0));
    assert_eq!(milestones[1]["idx"], 2);
    assert_eq!(milestones[1]["amount"], "50.00");
    assert_eq!(milestones[1]["geofence"], Value::Null);
    assert_ne!(milestones[0]["id"], milestones[1]["id"]);

    assert_eq!(escrow(&admin, s.escrow).await, *b);
    let stored = table.escrow_footprint(s.escrow).await;
    assert_eq!(
        (stored.items, stored.events, stored.payments, stored.audit),
        (3, 1, 0, 1)
    );
    assert_eq!(
        table.audit_actions("ESCROW", s.escrow).await,
        ["ESCROW_CREATED"]
    );
    assert_eq!(kinds(&admin, s.escrow).await, ["CREATED"]);

    // Without milestones: an empty list.
    let plain = EscrowSetup::new(&admin, "10").await;
    assert_eq!(plain.created["milestones"], json!([]));
}

#[tokio::test]
async fn bad_escrows_are_refused_naming_the_fields_and_store_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let client = create_user(&admin, "client").await;
    let provider = create_user(&admin, "provider").await;
    let base = json!({
        "client_id": client, "provider_id": provider, "amount_total": "100.00",
        "deadline_at": "2099-01-01T00:00:00Z",
    });
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({}),
            vec!["client_id", "provider_id", "amount_total", "deadline_at"],
        ),
        (
            with(json!({"amount_total": "10.005"})),
            vec!["amount_total"],
        ),
        (with(json!({"amount_total": 0})), vec!["amount_total"]),
        (with(json!({"provider_id": client})), vec!["provider_id"]),
        (
            with(json!({"deadline_at": "2020-01-01T00:00:00Z"})),
            vec!["deadline_at"],
        ),
        (with(json!({"currency": "XXX"})), vec!["currency"]),
        (
            with(json!({"release_conditions": [1]})),
            vec!["release_conditions"],
        ),
        (
            with(json!({"milestones": [{"label": "a", "amount": "60.00", "proof_type": "PHOTO"}]})),
            vec!["milestones"],
        ),
        (
            with(
                json!({"milestones": [{"label": "a", "amount": "99.999", "proof_type": "PHOTO"}]}),
            ),
            vec!["milestones[0].amount"],
        ),
        (with(json!({"milestones": []})), vec!["milestones"]),
        (with(json!({"milestones": "x"})), vec!["milestones"]),
        (
            with(json!({"milestones": [
                {"label": "a", "amount": "50.00", "proof_type": "PHOTO"},
                {"label": " ", "amount": "50.00", "proof_type": "",
                 "geofence": {"lat": 91, "lng": 0, "radius_m": 0}},
            ]})),
            vec!["milestones[1].label", "milestones[1].proof_type"],
        ),
        (
            with(json!({"milestones": [
                {"label": "a", "amount": "100.00", "proof_type": "PHOTO",
                 "geofence": {"lat": 91, "lng": -181, "radius_m": 100001}},
            ]})),
            vec![
                "milestones[0].geofence.lat",
                "milestones[0].geofence.lng",
                "milestones[0].geofence.radius_m",
            ],
        ),
    ];
    for (body, fields) in cases {
        let reply = admin
            .post("/escrows", body.clone())
            .await
            .expect_error(422, "VALIDATION_ERROR");
        let named = reply.body["error"]["details"]["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("no fields for {body}: {}", reply.text));
        for field in &fields {
            assert!(
                named.contains_key(*field),
                "{field} not named for {body}: {}",
                reply.text
            );
        }
    }
    for (who, body) in [
        ("client", with(json!({"client_id": 999_999_999}))),
        ("provider", with(json!({"provider_id": 999_999_999}))),
    ] {
        let reply = admin
            .post("/escrows", body)
            .await
            .expect_error(404, "USER_NOT_FOUND");
        assert!(reply.text.to_lowercase().contains(who), "{}", reply.text);
    }
    // An inactive party: 403 USER_INACTIVE, even for an admin.
    let inactive = create_user(&admin, "inactive").await;
    admin.set_user_active(inactive, false).await.expect(200);
    admin
        .post("/escrows", with(json!({"provider_id": inactive})))
        .await
        .expect_error(403, "USER_INACTIVE");
    // Nothing was stored for this client.
    assert!(table.items_where("client_id", client).await.is_empty());
    assert!(table.items_where("provider_id", provider).await.is_empty());
}

#[tokio::test]
async fn deposits_fund_the_escrow_and_never_pass_the_total() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = EscrowSetup::new(&admin, "100.00").await;
    let client = user_key(&admin, s.client).await;

    let first = client
        .deposit(s.escrow, &unique("k"), "40.00")
        .await
        .expect(200);
    assert_eq!(
        escrow_money(&first.body),
        money("40.00", "40.00", "0.00", "0.00", "DRAFT")
    );
    assert_eq!(first.body["milestones"], json!([]));

    let before = table.escrow_footprint(s.escrow).await;
    let over = client
        .deposit(s.escrow, &unique("k"), "60.01")
        .await
        .expect_error(409, "DEPOSIT_EXCEEDS_TOTAL");
    assert!(over.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("amount_total"));
    client
        .deposit(s.escrow, &unique("k"), "0.001")
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert_eq!(table.escrow_footprint(s.escrow).await, before);

    let last = admin
        .deposit(s.escrow, &unique("k"), "60")
        .await
        .expect(200);
    assert_eq!(
        escrow_money(&last.body),
        money("100.00", "100.00", "0.00", "0.00", "FUNDED")
    );
    assert_eq!(escrow(&admin, s.escrow).await, last.body);

    let before = table.escrow_footprint(s.escrow).await;
    client
        .deposit(s.escrow, &unique("k"), "0.01")
        .await
        .expect_error(409, "ESCROW_INVALID_STATE");
    assert_eq!(table.escrow_footprint(s.escrow).await, before);
    assert_eq!(
        table.audit_actions("ESCROW", s.escrow).await,
        ["ESCROW_CREATED", "ESCROW_DEPOSITED", "ESCROW_DEPOSITED"]
    );
    assert_eq!(
        kinds(&admin, s.escrow).await,
        ["CREATED", "DEPOSIT", "DEPOSIT"]
    );
    assert_eq!(before.payments, 0);

    admin
        .deposit(999_999_999, &unique("k"), "1.00")
        .await
        .expect_error(404, "ESCROW_NOT_FOUND");
}

#[tokio::test]
async fn a_deposit_is_idempotent_by_key() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = EscrowSetup::new(&admin, "100.00").await;
    let client = user_key(&admin, s.client).await;
    let key = unique("k");

    let first = client.deposit(s.escrow, &key, "25.00").await.expect(200);
    // The same request (10 / "10.00" are the same amount): the same answer.
    for amount in ["25.00", "25", "25.0"] {
        let again = client.deposit(s.escrow, &key, amount).await.expect(200);
        assert_eq!(again.text, first.text);
    }
    // The user's other key is the same user: the same request again.
    let phone = user_key(&admin, s.client).await;
    assert_eq!(
        phone
            .deposit(s.escrow, &key, "25.00")
            .await
            .expect(200)
            .text,
        first.text
    );
    let after = table.escrow_footprint(s.escrow).await;
    assert_eq!(after.funded, 2500, "one deposit only");
    assert_eq!(after.events, 2);

    client
        .deposit(s.escrow, &key, "26.00")
        .await
        .expect_error(422, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(table.escrow_footprint(s.escrow).await, after);

    let missing = client
        .send(
            reqwest::Method::POST,
            &format!("/escrows/{}/deposit", s.escrow),
            &[],
            Some(json!({"amount": "1.00"}).to_string()),
        )
        .await;
    missing.expect_error(400, "IDEMPOTENCY_KEY_REQUIRED");
    assert_eq!(table.escrow_footprint(s.escrow).await, after);
}

#[tokio::test]
async fn approval_pays_the_remainder_to_the_provider_once() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = funded(&admin, "100.00").await;
    let client = user_key(&admin, s.client).await;
    let provider = user_key(&admin, s.provider).await;

    let delivered = provider
        .post(
            &format!("/escrows/{}/mark-delivered", s.escrow),
            json!({"note": "done", "proof_url": "https://example.com/p.jpg"}),
        )
        .await
        .expect(200);
    assert_eq!(delivered.body["status"], "RELEASABLE");
    let before = table.escrow_footprint(s.escrow).await;
    let again = provider
        .escrow_action(s.escrow, "mark-delivered")
        .await
        .expect(200);
    assert_eq!(
        again.body, delivered.body,
        "a repeat answers the escrow unchanged"
    );
    assert_eq!(table.escrow_footprint(s.escrow).await, before);

    let released = client
        .escrow_action(s.escrow, "client-approve")
        .await
        .expect(200);
    assert_eq!(
        escrow_money(&released.body),
        money("100.00", "0.00", "100.00", "0.00", "RELEASED")
    );
    let after = table.escrow_footprint(s.escrow).await;
    assert_eq!(after.payments, 1);
    for _ in 0..2 {
        let repeat = client
            .post(
                &format!("/escrows/{}/client-approve", s.escrow),
                json!({"note": "again"}),
            )
            .await
            .expect(200);
        assert_eq!(repeat.body, released.body);
    }
    for action in ["client-reject", "mark-delivered"] {
        client.escrow_action(s.escrow, action).await.expect_error(
            if action == "mark-delivered" { 403 } else { 409 },
            if action == "mark-delivered" {
                "FORBIDDEN"
            } else {
                "ESCROW_INVALID_STATE"
            },
        );
        admin
            .escrow_action(s.escrow, action)
            .await
            .expect_error(409, "ESCROW_INVALID_STATE");
    }
    admin
        .deposit(s.escrow, &unique("k"), "1.00")
        .await
        .expect_error(409, "ESCROW_INVALID_STATE");
    assert_eq!(
        table.escrow_footprint(s.escrow).await,
        after,
        "no second payment"
    );

    // The payment, as stored and as answered.
    let payments = admin
        .get(&format!("/payments?escrow_id={}", s.escrow))
        .await
        .expect(200)
        .body;
    let items = payments["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let payment = &items[0];
    assert_eq!(payment["kind"], "PAYOUT");
    assert_eq!(payment["payee"], json!({"user_id": s.provider}));
    assert_eq!(payment["amount"], "100.00");
    assert_eq!(payment["currency"], "USD");
    assert_eq!(payment["status"], "PENDING");
    assert_eq!(payment["attempts"], 1);
    assert_eq!(payment["escrow_id"], s.escrow);
    assert_eq!(payment["milestone_id"], Value::Null);
    let psp_ref = payment["psp_ref"].as_str().unwrap();
    assert!(
        psp_ref.starts_with("PSP-") && psp_ref.len() == 40,
        "{psp_ref}"
    );
    let id = payment["id"].as_u64().unwrap();
    assert_eq!(
        provider
            .get(&format!("/payments/{id}"))
            .await
            .expect(200)
            .body,
        *payment
    );
    assert_eq!(
        client
            .get(&format!("/payments/{id}"))
            .await
            .expect(200)
            .body,
        *payment
    );
    let stranger = user_key(&admin, create_user(&admin, "stranger").await).await;
    stranger
        .get(&format!("/payments/{id}"))
        .await
        .expect_error(404, "PAYMENT_NOT_FOUND");
    stranger
        .get(&format!("/payments?escrow_id={}", s.escrow))
        .await
        .expect_error(404, "ESCROW_NOT_FOUND");
    client
        .get("/payments")
        .await
        .expect_error(422, "VALIDATION_ERROR");

    assert_eq!(
        table.audit_actions("ESCROW", s.escrow).await,
        [
            "ESCROW_CREATED",
            "ESCROW_DEPOSITED",
            "ESCROW_DELIVERED",
            "ESCROW_RELEASED"
        ]
    );
    assert_eq!(table.audit_actions("PAYMENT", id).await, ["PAYOUT_PENDING"]);
    assert_eq!(
        kinds(&admin, s.escrow).await,
        [
            "CREATED",
            "DEPOSIT",
            "DELIVERED",
            "CLIENT_APPROVED",
            "PAYMENT_PENDING"
        ]
    );
}

#[tokio::test]
async fn rejection_refunds_the_remainder_to_the_client_once() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = funded(&admin, "80.00").await;
    let client = user_key(&admin, s.client).await;

    let refunded = client
        .escrow_action(s.escrow, "client-reject")
        .await
        .expect(200);
    assert_eq!(
        escrow_money(&refunded.body),
        money("80.00", "0.00", "0.00", "80.00", "REFUNDED")
    );
    let after = table.escrow_footprint(s.escrow).await;
    assert_eq!(
        client
            .escrow_action(s.escrow, "client-reject")
            .await
            .expect(200)
            .body,
        refunded.body
    );
    for action in ["client-approve", "mark-delivered"] {
        admin
            .escrow_action(s.escrow, action)
            .await
            .expect_error(409, "ESCROW_INVALID_STATE");
    }
    assert_eq!(table.escrow_footprint(s.escrow).await, after);
    let payments = table.payments_of(s.escrow).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["kind"].as_s().unwrap(), "REFUND");
    assert_eq!(
        payments[0]["payee_user_id"].as_n().unwrap(),
        &s.client.to_string()
    );
    assert_eq!(payments[0]["amount_cents"].as_n().unwrap(), "8000");
    assert_eq!(
        table.audit_actions("ESCROW", s.escrow).await,
        ["ESCROW_CREATED", "ESCROW_DEPOSITED", "ESCROW_REFUNDED"]
    );
    assert_eq!(
        kinds(&admin, s.escrow).await,
        ["CREATED", "DEPOSIT", "CLIENT_REJECTED", "PAYMENT_PENDING"]
    );
}

#[tokio::test]
async fn rejecting_a_draft_cancels_it_and_refunds_the_deposits() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = EscrowSetup::new(&admin, "100.00").await;
    admin
        .deposit(s.escrow, &unique("k"), "30.00")
        .await
        .expect(200);
    let cancelled = admin
        .escrow_action(s.escrow, "client-reject")
        .await
        .expect(200);
    assert_eq!(
        escrow_money(&cancelled.body),
        money("30.00", "0.00", "0.00", "30.00", "CANCELLED")
    );
    assert_eq!(
        admin
            .escrow_action(s.escrow, "client-reject")
            .await
            .expect(200)
            .body,
        cancelled.body
    );
    admin
        .deposit(s.escrow, &unique("k"), "1.00")
        .await
        .expect_error(409, "ESCROW_INVALID_STATE");
    let footprint = table.escrow_footprint(s.escrow).await;
    assert_eq!(footprint.payments, 1);
    assert_eq!(
        table.audit_actions("ESCROW", s.escrow).await,
        ["ESCROW_CREATED", "ESCROW_DEPOSITED", "ESCROW_CANCELLED"]
    );

    // Nothing deposited: cancelled, and no payment of zero.
    let empty = EscrowSetup::new(&admin, "10.00").await;
    let cancelled = admin
        .escrow_action(empty.escrow, "client-reject")
        .await
        .expect(200);
    assert_eq!(
        escrow_money(&cancelled.body),
        money("0.00", "0.00", "0.00", "0.00", "CANCELLED")
    );
    assert_eq!(table.escrow_footprint(empty.escrow).await.payments, 0);
    assert_eq!(
        kinds(&admin, empty.escrow).await,
        ["CREATED", "CLIENT_REJECTED"]
    );
}

#[tokio::test]
async fn transitions_the_state_machine_refuses_change_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = EscrowSetup::new(&admin, "100.00").await;
    admin
        .deposit(s.escrow, &unique("k"), "10.00")
        .await
        .expect(200);
    let before = table.escrow_footprint(s.escrow).await;
    for action in ["mark-delivered", "client-approve"] {
        admin
            .escrow_action(s.escrow, action)
            .await
            .expect_error(409, "ESCROW_INVALID_STATE");
    }
    // A DRAFT before its deadline: nothing due.
    let checked = admin
        .escrow_action(s.escrow, "check-deadline")
        .await
        .expect(200);
    assert_eq!(checked.body, escrow(&admin, s.escrow).await);
    assert_eq!(table.escrow_footprint(s.escrow).await, before);
    admin
        .escrow_action(999_999_999, "client-approve")
        .await
        .expect_error(404, "ESCROW_NOT_FOUND");
    admin
        .post(
            &format!("/escrows/{}/client-approve", s.escrow),
            json!({"note": 5}),
        )
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert_eq!(table.escrow_footprint(s.escrow).await, before);
}

#[tokio::test]
async fn the_deadline_releases_a_delivered_escrow_and_only_flags_an_undelivered_one() {
    let admin = Api::admin();
    let table = Table::new().await;

    // Delivered, then silence past the deadline: released to the provider.
    let delivered = funded(&admin, "60.00").await;
    admin
        .escrow_action(delivered.escrow, "mark-delivered")
        .await
        .expect(200);
    let before = table.escrow_footprint(delivered.escrow).await;
    admin
        .escrow_action(delivered.escrow, "check-deadline")
        .await
        .expect(200);
    assert_eq!(
        table.escrow_footprint(delivered.escrow).await,
        before,
        "not due yet"
    );
    table.backdate_escrow(delivered.escrow).await;
    let provider = user_key(&admin, delivered.provider).await;
    let released = provider
        .escrow_action(delivered.escrow, "check-deadline")
        .await
        .expect(200);
    assert_eq!(
        escrow_money(&released.body),
        money("60.00", "0.00", "60.00", "0.00", "RELEASED")
    );
    provider
        .escrow_action(delivered.escrow, "check-deadline")
        .await
        .expect(200);
    assert_eq!(table.escrow_footprint(delivered.escrow).await.payments, 1);
    assert_eq!(
        kinds(&admin, delivered.escrow).await,
        [
            "CREATED",
            "DEPOSIT",
            "DELIVERED",
            "DEADLINE_RELEASED",
            "PAYMENT_PENDING"
        ]
    );

    // Never delivered: nobody is paid; one DEADLINE_MISSED, however often checked.
    let idle = funded(&admin, "40.00").await;
    table.backdate_escrow(idle.escrow).await;
    let support = Api::with_key(Some(
        admin
            .post(
                "/apikeys",
                json!({"name": unique("support"), "scope": "support"}),
            )
            .await
            .expect(201)
            .body["key"]
            .as_str()
            .unwrap()
            .to_string(),
    ));
    for _ in 0..3 {
        let checked = support
            .escrow_action(idle.escrow, "check-deadline")
            .await
            .expect(200);
        assert_eq!(
            escrow_money(&checked.body),
            money("40.00", "40.00", "0.00", "0.00", "FUNDED")
        );
    }
    assert_eq!(table.escrow_footprint(idle.escrow).await.payments, 0);
    assert_eq!(
        kinds(&admin, idle.escrow).await,
        ["CREATED", "DEPOSIT", "DEADLINE_MISSED"]
    );
    let alerts: Vec<_> = table
        .items_with_prefix("ALERT#")
        .await
        .into_iter()
        .filter(|a| {
            a["payload"].as_s().is_ok_and(|p| {
                serde_json::from_str::<Value>(p).unwrap()["escrow_id"] == idle.escrow
            })
        })
        .collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["type"].as_s().unwrap(), "ESCROW_DEADLINE_MISSED");
    // And staff see it, once, in GET /alerts (newest first).
    let listed = support
        .get("/alerts?type=ESCROW_DEADLINE_MISSED&limit=100")
        .await
        .expect(200);
    let ours: Vec<_> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["payload"]["escrow_id"] == idle.escrow)
        .collect();
    assert_eq!(ours.len(), 1, "{}", listed.text);
    assert_eq!(ours[0]["type"], "ESCROW_DEADLINE_MISSED");
    // The client may still take the money back.
    let client = user_key(&admin, idle.client).await;
    let refunded = client
        .escrow_action(idle.escrow, "client-reject")
        .await
        .expect(200);
    assert_eq!(refunded.body["status"], "REFUNDED");
}

#[tokio::test]
async fn only_the_named_party_acts_and_only_parties_read() {
    let admin = Api::admin();
    let s = EscrowSetup::new(&admin, "50.00").await;
    let client = user_key(&admin, s.client).await;
    let provider = user_key(&admin, s.provider).await;
    let stranger = user_key(&admin, create_user(&admin, "stranger").await).await;
    let support = Api::with_key(Some(
        admin
            .post(
                "/apikeys",
                json!({"name": unique("support"), "scope": "support"}),
            )
            .await
            .expect(201)
            .body["key"]
            .as_str()
            .unwrap()
            .to_string(),
    ));
    let table = Table::new().await;
    let before = table.escrow_footprint(s.escrow).await;

    // Creation: the client's own key, or an admin; not support, not another user.
    let body = json!({"client_id": s.client, "provider_id": s.provider,
                      "amount_total": "1.00", "deadline_at": "2099-01-01T00:00:00Z"});
    provider
        .post("/escrows", body.clone())
        .await
        .expect_error(403, "FORBIDDEN");
    support
        .post("/escrows", body.clone())
        .await
        .expect_error(403, "FORBIDDEN");
    let second = client.post("/escrows", body).await.expect(201).id();

    // Acting: 403 for anyone but the named party.
    for key in [&provider, &stranger, &support] {
        key.deposit(s.escrow, &unique("k"), "1.00")
            .await
            .expect_error(403, "FORBIDDEN");
        key.escrow_action(s.escrow, "client-reject")
            .await
            .expect_error(403, "FORBIDDEN");
    }
    client
        .escrow_action(s.escrow, "mark-delivered")
        .await
        .expect_error(403, "FORBIDDEN");
    stranger
        .escrow_action(s.escrow, "check-deadline")
        .await
        .expect_error(403, "FORBIDDEN");
    assert_eq!(table.escrow_footprint(s.escrow).await, before);

    // Reading: parties and staff; a stranger sees nothing there.
    for key in [&client, &provider, &support, &admin] {
        assert_eq!(escrow(key, s.escrow).await["id"], s.escrow);
        key.get(&format!("/escrows/{}/events", s.escrow))
            .await
            .expect(200);
        key.escrow_action(s.escrow, "check-deadline")
            .await
            .expect(200);
    }
    stranger
        .get(&format!("/escrows/{}", s.escrow))
        .await
        .expect_error(404, "ESCROW_NOT_FOUND");
    stranger
        .get(&format!("/escrows/{}/events", s.escrow))
        .await
        .expect_error(404, "ESCROW_NOT_FOUND");
    let listed = stranger
        .get(&format!("/escrows?client_id={}", s.client))
        .await
        .expect(200);
    assert_eq!(listed.body["items"], json!([]));
    let mine = provider.get("/escrows").await.expect(200).body;
    let ids: Vec<u64> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![second, s.escrow], "the provider's escrows only");
    Api::anonymous()
        .get(&format!("/escrows/{}", s.escrow))
        .await
        .expect_error(401, "UNAUTHORIZED");
}

fn ids(reply: &Reply) -> Vec<u64> {
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn lists_filter_by_party_and_status_and_page_newest_first() {
    let admin = Api::admin();
    let client = create_user(&admin, "client").await;
    let mut made = Vec::new();
    let mut providers = Vec::new();
    for _ in 0..3 {
        let provider = create_user(&admin, "provider").await;
        let id = admin
            .post(
                "/escrows",
                json!({"client_id": client, "provider_id": provider, "amount_total": "5.00",
                       "deadline_at": "2099-01-01T00:00:00Z",
                       "milestones": [{"label": "all", "amount": "5.00", "proof_type": "PHOTO"}]}),
            )
            .await
            .expect(201)
            .id();
        made.push(id);
        providers.push(provider);
    }
    admin
        .deposit(made[1], &unique("k"), "5.00")
        .await
        .expect(200);
    made.reverse();

    let first = admin
        .get(&format!("/escrows?client_id={client}&limit=2"))
        .await
        .expect(200);
    assert_eq!(ids(&first), made[..2]);
    assert_eq!(first.body["items"][0]["milestones"][0]["label"], "all");
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let second = admin
        .get(&format!(
            "/escrows?client_id={client}&limit=2&cursor={cursor}"
        ))
        .await
        .expect(200);
    assert_eq!(ids(&second), made[2..]);
    assert_eq!(second.body["next_cursor"], Value::Null);

    let funded = admin
        .get(&format!("/escrows?client_id={client}&status=FUNDED"))
        .await
        .expect(200);
    assert_eq!(ids(&funded), vec![made[1]]);
    let by_provider = admin
        .get(&format!("/escrows?provider_id={}", providers[0]))
        .await
        .expect(200);
    assert_eq!(ids(&by_provider), vec![made[2]]);
    let both = admin
        .get(&format!(
            "/escrows?client_id={client}&provider_id={}",
            providers[0]
        ))
        .await
        .expect(200);
    assert_eq!(ids(&both), vec![made[2]]);
    let all = admin.get("/escrows?limit=100").await.expect(200);
    assert!(ids(&all).contains(&made[0]));
    admin
        .get("/escrows?status=OPEN&client_id=x&limit=0")
        .await
        .expect_error(422, "VALIDATION_ERROR");
}

#[tokio::test]
async fn the_timeline_pages_oldest_first() {
    let admin = Api::admin();
    let s = EscrowSetup::new(&admin, "3.00").await;
    for _ in 0..3 {
        admin
            .deposit(s.escrow, &unique("k"), "1.00")
            .await
            .expect(200);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/escrows/{}/events?limit=2&cursor={c}", s.escrow),
            None => format!("/escrows/{}/events?limit=2", s.escrow),
        };
        let page = admin.get(&path).await.expect(200).body;
        for item in page["items"].as_array().unwrap() {
            assert!(item["actor"].as_str().unwrap().starts_with("apikey:"));
            assert!(item["at"].as_str().unwrap().ends_with('Z'));
            seen.push(item["kind"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.replace('#', "%23")),
            None => break,
        }
    }
    assert_eq!(seen, ["CREATED", "DEPOSIT", "DEPOSIT", "DEPOSIT"]);
    admin
        .get(&format!("/escrows/{}/events?cursor=nonsense", s.escrow))
        .await
        .expect_error(422, "VALIDATION_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_approve_and_reject_pay_exactly_once() {
    let admin = Api::admin();
    let table = Table::new().await;
    for round in 0..4 {
        let s = funded(&admin, "100.00").await;
        if round % 2 == 1 {
            admin
                .escrow_action(s.escrow, "mark-delivered")
                .await
                .expect(200);
        }
        let client = user_key(&admin, s.client).await;
        let mut racers = Vec::new();
        for i in 0..16 {
            let (api, id) = (
                if i % 3 == 0 {
                    admin.clone()
                } else {
                    client.clone()
                },
                s.escrow,
            );
            let action = if i % 2 == 0 {
                "client-approve"
            } else {
                "client-reject"
            };
            racers.push(tokio::spawn(async move {
                (action, api.escrow_action(id, action).await)
            }));
        }
        let mut won = Vec::new();
        for racer in racers {
            let (action, reply) = racer.await.unwrap();
            match reply.status.as_u16() {
                200 => won.push((action, reply.body["status"].as_str().unwrap().to_string())),
                409 => assert_eq!(reply.code(), "ESCROW_INVALID_STATE"),
                other => panic!("round {round}: {action} answered {other}: {}", reply.text),
            }
        }
        let footprint = table.escrow_footprint(s.escrow).await;
        assert_eq!(footprint.payments, 1, "round {round}: exactly one payment");
        let (status, payout) = match footprint.status.as_str() {
            "RELEASED" => ("client-approve", (10_000, 0)),
            "REFUNDED" => ("client-reject", (0, 10_000)),
            other => panic!("round {round}: {other}"),
        };
        assert_eq!(
            (footprint.paid, footprint.refunded, footprint.available),
            (payout.0, payout.1, 0)
        );
        // Every 200 was the winning action (first or a repeat of it).
        assert!(
            won.iter()
                .all(|(a, s)| *a == status && *s == footprint.status),
            "{won:?}"
        );
        let payments = table.payments_of(s.escrow).await;
        assert_eq!(payments[0]["amount_cents"].as_n().unwrap(), "10000");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_deposits_never_pass_the_total() {
    let admin = Api::admin();
    let table = Table::new().await;
    for _ in 0..3 {
        let s = EscrowSetup::new(&admin, "100.00").await;
        let client = user_key(&admin, s.client).await;
        let mut racers = Vec::new();
        for i in 0..16 {
            let api = if i % 4 == 0 {
                admin.clone()
            } else {
                client.clone()
            };
            let id = s.escrow;
            racers.push(tokio::spawn(async move {
                api.deposit(id, &unique("k"), "10.00").await
            }));
        }
        let mut ok = 0;
        for racer in racers {
            let reply = racer.await.unwrap();
            match reply.status.as_u16() {
                200 => ok += 1,
                409 => assert!(
                    ["ESCROW_INVALID_STATE", "DEPOSIT_EXCEEDS_TOTAL"].contains(&reply.code()),
                    "{}",
                    reply.text
                ),
                other => panic!("{other}: {}", reply.text),
            }
        }
        assert_eq!(ok, 10);
        let footprint = table.escrow_footprint(s.escrow).await;
        assert_eq!((footprint.funded, footprint.available), (10_000, 10_000));
        assert_eq!(footprint.status, "FUNDED");
        assert_eq!(footprint.events, 11);
    }
}
