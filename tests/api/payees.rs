//! Escrow-backed payees and spends over HTTP: payees with limits, spends
//! in the contract's order of checks, each refusal changing nothing, replays,
//! access, and races on one payee's daily limit, its total limit and the
//! escrow's balance, checked by sums. The day boundary is tested in-process
//! with the store's clock pinned either side of midnight UTC.

use aws_sdk_dynamodb::types::AttributeValue;
use kobatela_tests::{
    create_user, psp_processed, send_psp_event, unique, user_key, Api, EscrowFootprint,
    EscrowSetup, InProcess, Reply, Table,
};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::time::Timestamp;

/// A FUNDED escrow of `total`.
async fn funded(admin: &Api, total: &str) -> EscrowSetup {
    let s = EscrowSetup::new(admin, total).await;
    admin
        .deposit(s.escrow, &unique("k"), total)
        .await
        .expect(200);
    s
}

fn payee_body(escrow: u64, payee_ref: &str, daily: Option<&str>, total: Option<&str>) -> Value {
    json!({"escrow_id": escrow, "payee_ref": payee_ref, "label": "École du Fleuve",
           "daily_limit": daily, "total_limit": total})
}

async fn spend(api: &Api, key: &str, escrow: u64, payee_ref: &str, amount: &str) -> Reply {
    api.send(
        Method::POST,
        "/spend",
        &[("idempotency-key", key)],
        Some(json!({"escrow_id": escrow, "payee_ref": payee_ref, "amount": amount}).to_string()),
    )
    .await
}

/// The payee `payee_ref` of `escrow`, as listed.
async fn payee(api: &Api, escrow: u64, payee_ref: &str) -> Value {
    let page = api
        .get(&format!("/spend/allowed?escrow_id={escrow}&limit=100"))
        .await
        .expect(200);
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["payee_ref"] == payee_ref)
        .cloned()
        .unwrap_or_else(|| panic!("no payee {payee_ref}: {}", page.text))
}

/// The sum (cents) and count of the escrow's USAGE_SPEND payments.
async fn spends_of(table: &Table, escrow: u64) -> (i64, usize) {
    let spends: Vec<_> = table
        .payments_of(escrow)
        .await
        .into_iter()
        .filter(|p| p["kind"].as_s().is_ok_and(|k| k == "USAGE_SPEND"))
        .collect();
    (kobatela_tests::cents_of(&spends), spends.len())
}

#[tokio::test]
async fn a_payee_is_allowed_once_with_its_limits() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = funded(&admin, "100.00").await;
    let client = user_key(&admin, s.client).await;
    let created = client
        .post(
            "/spend/allowed",
            payee_body(s.escrow, "school-1", Some("10"), None),
        )
        .await
        .expect(201);
    let p = &created.body;
    assert_eq!(p["escrow_id"], s.escrow);
    assert_eq!(p["payee_ref"], "school-1");
    assert_eq!(p["label"], "École du Fleuve");
    assert_eq!(p["daily_limit"], "10.00");
    assert_eq!(p["total_limit"], Value::Null);
    assert_eq!(
        (&p["spent_today"], &p["spent_total"]),
        (&json!("0.00"), &json!("0.00"))
    );
    assert_eq!(payee(&admin, s.escrow, "school-1").await, created.body);
    client
        .post(
            "/spend/allowed",
            payee_body(s.escrow, "school-1", None, None),
        )
        .await
        .expect_error(409, "PAYEE_ALREADY_ALLOWED");
    let actions = table.audit_actions("ESCROW", s.escrow).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "USAGE_PAYEE_ALLOWED")
            .count(),
        1,
        "{actions:?}"
    );
}

#[tokio::test]
async fn payee_refusals_change_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = funded(&admin, "100.00").await;
    let before = table
        .items_with_prefix(&format!("PAYEE#{}#", s.escrow))
        .await
        .len();
    for (bad, status, code) in [
        (
            payee_body(s.escrow, "x", None, None),
            422,
            "VALIDATION_ERROR",
        ),
        (
            payee_body(s.escrow, &"x".repeat(121), None, None),
            422,
            "VALIDATION_ERROR",
        ),
        (
            payee_body(s.escrow, "ok", Some("1.005"), None),
            422,
            "VALIDATION_ERROR",
        ),
        (
            payee_body(s.escrow, "ok", None, Some("-5")),
            422,
            "VALIDATION_ERROR",
        ),
        (
            json!({"escrow_id": s.escrow, "payee_ref": "ok", "label": "x"}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            payee_body(99999999, "ok", None, None),
            404,
            "ESCROW_NOT_FOUND",
        ),
    ] {
        admin
            .post("/spend/allowed", bad)
            .await
            .expect_error(status, code);
    }
    // Only the client (or an admin) allows payees; the provider and a
    // stranger act on an escrow that is not theirs to configure.
    let stranger = create_user(&admin, "stranger").await;
    for who in [s.provider, stranger] {
        user_key(&admin, who)
            .await
            .post("/spend/allowed", payee_body(s.escrow, "ok", None, None))
            .await
            .expect_error(403, "FORBIDDEN");
    }
    user_key(&admin, stranger)
        .await
        .get(&format!("/spend/allowed?escrow_id={}", s.escrow))
        .await
        .expect_error(404, "ESCROW_NOT_FOUND");
    let missing = admin
        .get("/spend/allowed")
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert!(missing.body["error"]["details"]["fields"]["escrow_id"].is_string());
    // A settled escrow takes no payee.
    admin
        .escrow_action(s.escrow, "client-approve")
        .await
        .expect(200);
    admin
        .post("/spend/allowed", payee_body(s.escrow, "ok", None, None))
        .await
        .expect_error(409, "ESCROW_NOT_ACTIVE");
    assert_eq!(
        table
            .items_with_prefix(&format!("PAYEE#{}#", s.escrow))
            .await
            .len(),
        before
    );
}

#[tokio::test]
async fn a_spend_pays_the_payee_out_of_the_escrow_once() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = funded(&admin, "100.00").await;
    admin
        .post(
            "/spend/allowed",
            payee_body(s.escrow, "pharma", Some("50"), Some("80")),
        )
        .await
        .expect(201);
    let provider = user_key(&admin, s.provider).await;
    let key = unique("k");
    let spent = spend(&provider, &key, s.escrow, "pharma", "12.34")
        .await
        .expect(200);
    let b = &spent.body;
    assert_eq!(b["escrow_id"], s.escrow);
    assert_eq!(b["payee_ref"], "pharma");
    assert_eq!(b["amount"], "12.34");
    assert_eq!(b["status"], "PENDING");
    assert!(b["psp_ref"].as_str().unwrap().starts_with("PSP-"));
    let again = spend(&provider, &key, s.escrow, "pharma", "12.34")
        .await
        .expect(200);
    assert_eq!(again.text, spent.text);
    spend(&provider, &key, s.escrow, "pharma", "12.35")
        .await
        .expect_error(422, "IDEMPOTENCY_KEY_REUSED");

    let footprint = table.escrow_footprint(s.escrow).await;
    assert_eq!((footprint.available, footprint.paid), (8766, 1234));
    assert_eq!(spends_of(&table, s.escrow).await, (1234, 1));
    let p = payee(&admin, s.escrow, "pharma").await;
    assert_eq!(
        (&p["spent_today"], &p["spent_total"]),
        (&json!("12.34"), &json!("12.34"))
    );
    let payment_id = b["payment_id"].as_u64().unwrap();
    let payment = admin
        .get(&format!("/payments/{payment_id}"))
        .await
        .expect(200);
    assert_eq!(payment.body["kind"], "USAGE_SPEND");
    assert_eq!(payment.body["payee"], json!({"payee_ref": "pharma"}));
    assert_eq!(payment.body["milestone_id"], Value::Null);
    assert_eq!(
        table.audit_actions("PAYMENT", payment_id).await,
        vec!["USAGE_SPEND"]
    );
    let events = admin
        .get(&format!("/escrows/{}/events?limit=100", s.escrow))
        .await
        .expect(200);
    let last = events.body["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "PAYMENT_PENDING");
    assert_eq!(last["data"]["payment_id"], payment_id);
}

#[tokio::test]
async fn a_failed_spend_gives_the_money_back_to_the_escrow_and_the_payee_total() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = funded(&admin, "50.00").await;
    admin
        .post(
            "/spend/allowed",
            payee_body(s.escrow, "clinic", Some("30"), Some("40")),
        )
        .await
        .expect(201);
    let spent = spend(&admin, &unique("k"), s.escrow, "clinic", "25.00")
        .await
        .expect(200);
    let (payment_id, psp_ref) = (
        spent.body["payment_id"].as_u64().unwrap(),
        spent.body["psp_ref"].as_str().unwrap().to_string(),
    );
    let event = unique("evt");
    send_psp_event(&event, "payment.failed", &psp_ref)
        .await
        .expect(200);
    assert_eq!(psp_processed(&admin, &event).await["status"], "APPLIED");
    let footprint = table.escrow_footprint(s.escrow).await;
    assert_eq!((footprint.available, footprint.paid), (5000, 0));
    // Back to the total, not to the day: the day's limit still counts it.
    let p = payee(&admin, s.escrow, "clinic").await;
    assert_eq!(
        (&p["spent_today"], &p["spent_total"]),
        (&json!("25.00"), &json!("0.00"))
    );
    spend(&admin, &unique("k"), s.escrow, "clinic", "5.01")
        .await
        .expect_error(409, "DAILY_LIMIT_REACHED");

    // Sent again: the same spend, out of the escrow and into the total again.
    let again = admin
        .post(&format!("/payments/execute/{payment_id}"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        (&again.body["status"], &again.body["attempts"]),
        (&json!("PENDING"), &json!(2))
    );
    let footprint = table.escrow_footprint(s.escrow).await;
    assert_eq!((footprint.available, footprint.paid), (2500, 2500));
    assert_eq!(
        payee(&admin, s.escrow, "clinic").await["spent_total"],
        "25.00"
    );
    assert_eq!(spends_of(&table, s.escrow).await, (2500, 1));
}

/// A failed spend sent again must fit the payee's total limit, as a new
/// spend would: here only a total limit (no daily limit to mask it), and a
/// second spend filled it after the first failed. The retry is 409
/// `TOTAL_LIMIT_REACHED` and writes nothing; never 100.00 out against 50.00.
#[tokio::test]
async fn a_failed_spend_sent_again_keeps_the_total_limit() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = funded(&admin, "100.00").await;
    admin
        .post(
            "/spend/allowed",
            payee_body(s.escrow, "school", None, Some("50.00")),
        )
        .await
        .expect(201);
    let first = spend(&admin, &unique("k"), s.escrow, "school", "50.00")
        .await
        .expect(200);
    let p1 = first.body["payment_id"].as_u64().unwrap();
    let event = unique("evt");
    send_psp_event(
        &event,
        "payment.failed",
        first.body["psp_ref"].as_str().unwrap(),
    )
    .await
    .expect(200);
    assert_eq!(psp_processed(&admin, &event).await["status"], "APPLIED");
    assert_eq!(
        payee(&admin, s.escrow, "school").await["spent_total"],
        "0.00"
    );
    spend(&admin, &unique("k"), s.escrow, "school", "50.00")
        .await
        .expect(200);

    let before = table.escrow_footprint(s.escrow).await;
    assert_eq!((before.available, before.paid), (5000, 5000));
    admin
        .post(&format!("/payments/execute/{p1}"), json!({}))
        .await
        .expect_error(409, "TOTAL_LIMIT_REACHED");
    assert_eq!(
        table.escrow_footprint(s.escrow).await,
        before,
        "nothing written"
    );
    let p = payee(&admin, s.escrow, "school").await;
    assert_eq!(p["spent_total"], "50.00");
    let read = admin.get(&format!("/payments/{p1}")).await.expect(200);
    assert_eq!(
        (&read.body["status"], &read.body["attempts"]),
        (&json!("ERROR"), &json!(1))
    );
    assert_eq!(spends_of(&table, s.escrow).await, (10000, 2));

    // Room made again (the second spend fails too): the retry now fits.
    let second_ref = table
        .payments_of(s.escrow)
        .await
        .into_iter()
        .find(|p| p["status"].as_s().is_ok_and(|s| s == "PENDING"))
        .map(|p| p["psp_ref"].as_s().unwrap().clone())
        .unwrap();
    let event = unique("evt");
    send_psp_event(&event, "payment.failed", &second_ref)
        .await
        .expect(200);
    assert_eq!(psp_processed(&admin, &event).await["status"], "APPLIED");
    admin
        .post(&format!("/payments/execute/{p1}"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        payee(&admin, s.escrow, "school").await["spent_total"],
        "50.00"
    );
    let after = table.escrow_footprint(s.escrow).await;
    assert_eq!((after.available, after.paid), (5000, 5000));
}

#[tokio::test]
async fn spend_refusals_come_in_the_contract_order_and_change_nothing() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = funded(&admin, "30.00").await;
    admin
        .post(
            "/spend/allowed",
            payee_body(s.escrow, "daily", Some("10"), None),
        )
        .await
        .expect(201);
    admin
        .post(
            "/spend/allowed",
            payee_body(s.escrow, "total", None, Some("15")),
        )
        .await
        .expect(201);
    admin
        .post("/spend/allowed", payee_body(s.escrow, "free", None, None))
        .await
        .expect(201);
    spend(&admin, &unique("k"), s.escrow, "daily", "10.00")
        .await
        .expect(200);
    spend(&admin, &unique("k"), s.escrow, "total", "15.00")
        .await
        .expect(200);
    let before: EscrowFootprint = table.escrow_footprint(s.escrow).await;
    let stranger = user_key(&admin, create_user(&admin, "stranger").await).await;
    for (api, escrow, payee_ref, amount, status, code) in [
        (&admin, 99999999, "daily", "1.00", 404, "ESCROW_NOT_FOUND"),
        (&admin, s.escrow, "nobody", "1.00", 403, "PAYEE_NOT_ALLOWED"),
        (
            &admin,
            s.escrow,
            "daily",
            "0.01",
            409,
            "DAILY_LIMIT_REACHED",
        ),
        (
            &admin,
            s.escrow,
            "total",
            "0.01",
            409,
            "TOTAL_LIMIT_REACHED",
        ),
        (
            &admin,
            s.escrow,
            "free",
            "5.01",
            409,
            "INSUFFICIENT_ESCROW_BALANCE",
        ),
        (&admin, s.escrow, "free", "1.005", 422, "VALIDATION_ERROR"),
        (&stranger, s.escrow, "free", "1.00", 403, "FORBIDDEN"),
    ] {
        spend(api, &unique("k"), escrow, payee_ref, amount)
            .await
            .expect_error(status, code);
    }
    assert_eq!(table.escrow_footprint(s.escrow).await, before);
    assert_eq!(spends_of(&table, s.escrow).await, (2500, 2));
    assert_eq!(
        payee(&admin, s.escrow, "daily").await["spent_total"],
        "10.00"
    );
    assert_eq!(
        payee(&admin, s.escrow, "total").await["spent_total"],
        "15.00"
    );

    // A settled escrow: closed before anything else is checked.
    admin
        .escrow_action(s.escrow, "client-approve")
        .await
        .expect(200);
    let closed = table.escrow_footprint(s.escrow).await;
    spend(&admin, &unique("k"), s.escrow, "nobody", "1.00")
        .await
        .expect_error(409, "ESCROW_NOT_ACTIVE");
    assert_eq!(table.escrow_footprint(s.escrow).await, closed);
}

/// `clients` concurrent spends of `amount` on one payee; the answers'
/// statuses counted.
async fn race(
    admin: &Api,
    escrow: u64,
    payee_ref: &str,
    clients: usize,
    amount: &str,
) -> (usize, usize) {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (admin, payee_ref, amount) = (admin.clone(), payee_ref.to_string(), amount.to_string());
        tasks.push(tokio::spawn(async move {
            spend(&admin, &unique("k"), escrow, &payee_ref, &amount).await
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            200 => ok += 1,
            409 => refused += 1,
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    (ok, refused)
}

#[tokio::test]
async fn concurrent_spends_never_pass_a_limit_or_the_balance() {
    let admin = Api::admin();
    let table = Table::new().await;
    for round in 0..3 {
        // The daily limit (7.00) binds first, then the total (12.00), then
        // the escrow (20.00 - what other payees took).
        let s = funded(&admin, "20.00").await;
        for (payee_ref, daily, total) in [
            ("daily", Some("7"), None),
            ("total", None, Some("12")),
            ("free", None, None),
        ] {
            admin
                .post(
                    "/spend/allowed",
                    payee_body(s.escrow, payee_ref, daily, total),
                )
                .await
                .expect(201);
        }
        assert_eq!(
            race(&admin, s.escrow, "daily", 12, "1.00").await,
            (7, 5),
            "round {round}"
        );
        assert_eq!(
            race(&admin, s.escrow, "total", 16, "1.00").await,
            (12, 4),
            "round {round}"
        );
        // 1.00 left in the escrow.
        assert_eq!(
            race(&admin, s.escrow, "free", 8, "0.50").await,
            (2, 6),
            "round {round}"
        );
        let footprint = table.escrow_footprint(s.escrow).await;
        assert_eq!(
            (footprint.available, footprint.paid),
            (0, 2000),
            "round {round}"
        );
        assert_eq!(
            spends_of(&table, s.escrow).await,
            (2000, 21),
            "round {round}"
        );
        let spent = |p: Value| (p["spent_today"].clone(), p["spent_total"].clone());
        assert_eq!(
            spent(payee(&admin, s.escrow, "daily").await),
            (json!("7.00"), json!("7.00"))
        );
        assert_eq!(
            spent(payee(&admin, s.escrow, "total").await),
            (json!("12.00"), json!("12.00"))
        );
    }
}

/// In-process: an escrow of 100.00, funded, with the payee "school"
/// (daily limit 10.00, total limit `total`).
async fn school_payee(api: &InProcess, total: Option<&str>) -> EscrowSetup {
    let s = EscrowSetup::new(api, "100.00").await;
    api.deposit(s.escrow, &unique("k"), "100.00")
        .await
        .expect(200);
    api.post(
        "/spend/allowed",
        payee_body(s.escrow, "school", Some("10"), total),
    )
    .await
    .expect(201);
    s
}

/// In-process: `POST /spend` of `amount` to "school", a fresh key each time.
async fn in_process_spend(api: &InProcess, escrow: u64, amount: &str) -> Reply {
    api.call(
        "POST",
        "/spend",
        &[("idempotency-key", &unique("k"))],
        Some(json!({"escrow_id": escrow, "payee_ref": "school", "amount": amount})),
    )
    .await
}

#[tokio::test]
async fn the_first_spend_after_midnight_utc_starts_a_new_day() {
    let api = InProcess::new("midnight").await;
    let table = Table::named(&api.table).await;
    let s = school_payee(&api, Some("25")).await;
    let spend = |amount| in_process_spend(&api, s.escrow, amount);
    let clock = api.state.store.clock();
    clock.pin(Some(
        Timestamp::parse("2031-03-04T23:59:59.999999Z").unwrap(),
    ));
    spend("6.00").await.expect(200);
    spend("4.00").await.expect(200);
    spend("0.01").await.expect_error(409, "DAILY_LIMIT_REACHED");

    clock.pin(Some(Timestamp::parse("2031-03-05T00:00:00Z").unwrap()));
    spend("10.00").await.expect(200);
    spend("0.01").await.expect_error(409, "DAILY_LIMIT_REACHED");
    let listed = api
        .get(&format!("/spend/allowed?escrow_id={}", s.escrow))
        .await
        .expect(200);
    assert_eq!(listed.body["items"][0]["spent_today"], "10.00");
    assert_eq!(listed.body["items"][0]["spent_total"], "20.00");

    // The next day again: the total (25.00) binds before the daily limit.
    clock.pin(Some(Timestamp::parse("2031-03-06T08:00:00Z").unwrap()));
    spend("5.01").await.expect_error(409, "TOTAL_LIMIT_REACHED");
    spend("5.00").await.expect(200);
    clock.pin(None);
    let footprint = table.escrow_footprint(s.escrow).await;
    assert_eq!((footprint.available, footprint.paid), (7500, 2500));
}

/// A container whose clock lags just before midnight, after another one
/// already moved the payee to the new day, counts on that day: the daily
/// counter never restarts and the stored day never moves backwards.
#[tokio::test]
async fn a_lagging_clock_never_moves_the_payee_day_backwards() {
    let api = InProcess::new("lagging").await;
    let table = Table::named(&api.table).await;
    let s = school_payee(&api, None).await;
    let spend = |amount| in_process_spend(&api, s.escrow, amount);
    let clock = api.state.store.clock();
    clock.pin(Some(Timestamp::parse("2031-03-05T00:00:00.500Z").unwrap()));
    spend("6.00").await.expect(200);
    // The lagging container: still the 4th by its clock.
    clock.pin(Some(Timestamp::parse("2031-03-04T23:59:59.900Z").unwrap()));
    spend("6.00").await.expect_error(409, "DAILY_LIMIT_REACHED");
    spend("4.00").await.expect(200);
    clock.pin(None);
    let stored = table
        .item(std::collections::HashMap::from([
            (
                "pk".to_string(),
                AttributeValue::S(format!("PAYEE#{}#school", s.escrow)),
            ),
            ("sk".to_string(), AttributeValue::S("PAYEE".into())),
        ]))
        .await;
    let listed = api
        .get(&format!("/spend/allowed?escrow_id={}", s.escrow))
        .await
        .expect(200);
    assert_eq!(listed.body["items"][0]["spent_total"], "10.00");
    let footprint = table.escrow_footprint(s.escrow).await;
    assert_eq!((footprint.available, footprint.paid), (9000, 1000));
    let stored = stored.expect("the payee item");
    assert_eq!(stored["spent_day"].as_s().unwrap(), "2031-03-05");
    assert_eq!(stored["spent_today_cents"].as_n().unwrap(), "1000");
}

/// A spend whose escrow client or provider is inactive is 403
/// `USER_INACTIVE` naming them, even by an admin key, and changes nothing;
/// reactivated, the same Idempotency-Key spends (the refusal was not kept).
#[tokio::test]
async fn a_spend_needs_both_escrow_parties_active() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = funded(&admin, "20.00").await;
    admin
        .post("/spend/allowed", payee_body(s.escrow, "shop", None, None))
        .await
        .expect(201);
    for (spent, party) in [s.client, s.provider].into_iter().enumerate() {
        let before = table.escrow_footprint(s.escrow).await;
        admin.set_user_active(party, false).await.expect(200);
        let key = unique("k");
        let refused = spend(&admin, &key, s.escrow, "shop", "1.00")
            .await
            .expect_error(403, "USER_INACTIVE");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&party.to_string()),
            "{}",
            refused.text
        );
        assert_eq!(table.escrow_footprint(s.escrow).await, before);
        assert_eq!(
            payee(&admin, s.escrow, "shop").await["spent_total"],
            format!("{spent}.00")
        );
        admin.set_user_active(party, true).await.expect(200);
        spend(&admin, &key, s.escrow, "shop", "1.00")
            .await
            .expect(200);
    }
    assert_eq!(spends_of(&table, s.escrow).await, (200, 2));
    assert_eq!(table.escrow_footprint(s.escrow).await.available, 1800);
}
