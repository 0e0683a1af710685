//! Risk R2: under concurrent purchases the sum of successful purchases never
//! exceeds the mandate and the balance never goes below zero. Many clients,
//! one mandate, over HTTP; money proven by sums.

use kobatela_tests::{cents_of, unique, Api, MandateSetup, Table};
use std::sync::Arc;
use tokio::sync::Barrier;

const CLIENTS: usize = 16;

/// "12.34" → 1234.
fn cents(text: &str) -> i64 {
    let amount: rust_decimal::Decimal = text.parse().unwrap();
    i64::try_from(amount * rust_decimal::Decimal::from(100)).unwrap()
}

/// Fires `amounts.len()` purchases at once from `CLIENTS` clients (each its
/// own connection pool), released together by a barrier. Answers the replies.
async fn race(
    setup: &MandateSetup,
    amounts: &[String],
    keys: &[String],
) -> Vec<kobatela_tests::Reply> {
    let clients: Vec<Api> = (0..CLIENTS).map(|_| Api::admin()).collect();
    let barrier = Arc::new(Barrier::new(amounts.len()));
    let mut tasks = Vec::new();
    for (i, amount) in amounts.iter().enumerate() {
        let api = clients[i % CLIENTS].clone();
        let body = setup.purchase(amount);
        let key = keys[i].clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            api.purchase(&key, body).await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("purchase task"));
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn r2_forty_concurrent_purchases_never_overspend() {
    let admin = Api::admin();
    let table = Table::new().await;
    for round in 0..5 {
        let s = MandateSetup::new(&admin, "100.00").await;
        let amounts = vec!["10.00".to_string(); 40];
        let keys: Vec<String> = (0..40).map(|_| unique("race")).collect();
        let replies = race(&s, &amounts, &keys).await;

        let succeeded = replies.iter().filter(|r| r.status.as_u16() == 201).count();
        for reply in replies.iter().filter(|r| r.status.as_u16() != 201) {
            assert_eq!(reply.status.as_u16(), 403, "round {round}: {}", reply.text);
            assert!(
                ["MANDATE_BALANCE_EXCEEDED", "MANDATE_REQUIRED"].contains(&reply.code()),
                "round {round}: {}",
                reply.text
            );
        }
        assert_eq!(succeeded, 10, "round {round}");

        let mandate = admin
            .get(&format!("/mandates/{}", s.mandate))
            .await
            .expect(200)
            .body;
        assert_eq!(mandate["total_amount"], "0.00", "round {round}");
        assert_eq!(mandate["total_spent"], "100.00", "round {round}");
        assert_eq!(mandate["status"], "CONSUMED", "round {round}");
        let purchases = table.purchases_of(s.mandate).await;
        assert_eq!(purchases.len(), 10, "round {round}");
        assert_eq!(cents_of(&purchases), 10_000, "round {round}");
        let audit = table.audit_actions("USAGE_MANDATE", s.mandate).await;
        assert_eq!(
            audit
                .iter()
                .filter(|a| *a == "USAGE_MANDATE_DEBITED")
                .count(),
            10
        );
        assert_eq!(
            audit
                .iter()
                .filter(|a| *a == "USAGE_MANDATE_CONSUMED")
                .count(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_mixed_amounts_sum_to_what_was_spent() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "100.00").await;
    // 30 amounts from 0.01 to 19.37, deterministic, more than the balance in total.
    let amounts: Vec<String> = (0..30u64)
        .map(|i| {
            let cents = (i * 733 + 1) % 1937 + 1;
            format!("{}.{:02}", cents / 100, cents % 100)
        })
        .collect();
    let keys: Vec<String> = (0..amounts.len()).map(|_| unique("mixed")).collect();
    let replies = race(&s, &amounts, &keys).await;

    let spent: i64 = replies
        .iter()
        .filter(|r| r.status.as_u16() == 201)
        .map(|r| cents(r.body["amount"].as_str().unwrap()))
        .sum();
    for reply in replies.iter().filter(|r| r.status.as_u16() != 201) {
        assert!(
            ["MANDATE_BALANCE_EXCEEDED", "MANDATE_REQUIRED"].contains(&reply.code()),
            "{}",
            reply.text
        );
    }
    let mandate = admin
        .get(&format!("/mandates/{}", s.mandate))
        .await
        .expect(200)
        .body;
    let balance_cents = cents(mandate["total_amount"].as_str().unwrap());
    assert!(balance_cents >= 0);
    assert!(spent <= 10_000);
    assert_eq!(spent + balance_cents, 10_000, "spent + balance = funded");
    assert_eq!(
        cents_of(&table.purchases_of(s.mandate).await),
        spent,
        "stored purchases = answered"
    );
    assert_eq!(mandate["status"] == "CONSUMED", balance_cents == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn ten_concurrent_requests_with_one_key_debit_once() {
    let admin = Api::admin();
    let table = Table::new().await;
    let s = MandateSetup::new(&admin, "50.00").await;
    let key = unique("same");
    let amounts = vec!["7.00".to_string(); 10];
    let keys = vec![key; 10];
    let replies = race(&s, &amounts, &keys).await;

    for reply in &replies {
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        assert_eq!(
            reply.text, replies[0].text,
            "every reply is the first response"
        );
    }
    let purchases = table.purchases_of(s.mandate).await;
    assert_eq!(purchases.len(), 1);
    assert_eq!(cents_of(&purchases), 700);
    let mandate = admin
        .get(&format!("/mandates/{}", s.mandate))
        .await
        .expect(200)
        .body;
    assert_eq!(mandate["total_amount"], "43.00");
    let audit = table.audit_actions("USAGE_MANDATE", s.mandate).await;
    assert_eq!(audit, ["USAGE_MANDATE_CREATED", "USAGE_MANDATE_DEBITED"]);
}
