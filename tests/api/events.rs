//! Every file of `events/` through the real handler code, in-process: what
//! `sam local invoke -e events/<fn>/<file>.json` would do, without Docker.
//!
//! The files are replayed in the order of their numbers (`01-…`, `02-…`,
//! across folders) on a fresh table (`kobatela_tests::InProcess`: its state
//! and admin key, not its merged router), so ids are 1, 2, 3… in creation
//! order and each file can name the ids made by the ones before it. HTTP
//! events go through `lambda_http`'s own API Gateway v2 parsing and the
//! function's whole app (`shared::http::app`); the scheduled events go
//! through `mandate_expiry::handle` and `ledger_check::handle` (the last
//! file: the ledger of everything replayed before it checks clean).
//!
//! `events/`, the table of expectations below and `template.yaml` cannot drift
//! apart: a file without an expectation, an expectation without a file, an
//! unknown folder, or a route of the template without an event file fails.
//!
//! Needs the emulator (`AWS_ENDPOINT_URL`, the dummy credentials and
//! `KOBATELA_API_KEY_PEPPER`); the checks of files against the table and
//! the template do not.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use axum::Router;
use kobatela_tests::{InProcess, Reply, Table};
use serde_json::{json, Value};
use shared::SharedState;
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};
use tower::ServiceExt;

/// The folders of `events/`: one per function (the template's `Binary`).
const FUNCTIONS: &[&str] = &[
    "health",
    "users",
    "apikeys",
    "mandates",
    "spend",
    "escrows",
    "proofs",
    "payments",
    "alerts",
    "transactions",
    "mandate-expiry",
    "psp-webhook",
    "psp-events",
    "payout-dispatch",
    "domain-events",
    "console",
    "ledger-check",
    "ledger",
];

/// The one HTTP function that answers a page, not JSON: its replies are
/// checked through a summary (`page_summary`).
const PAGE_FUNCTION: &str = "console";

/// The functions invoked by a schedule rather than over HTTP.
const SCHEDULED_FUNCTIONS: [&str; 2] = ["mandate-expiry", "ledger-check"];

/// The one function invoked by an SQS queue (a batch of messages).
const QUEUE_FUNCTION: &str = "psp-events";

/// The payout dispatcher, fed by the table's stream (a batch of records).
const PAYOUT_FUNCTION: &str = "payout-dispatch";

/// The function that publishes the stream's business facts.
const STREAM_FUNCTION: &str = "domain-events";

/// What replaying one file must give.
struct Expected {
    file: &'static str,
    outcome: Outcome,
    /// Checks of the response body (JSON; `Null` when the body is empty).
    check: fn(&Value),
}

enum Outcome {
    /// An HTTP event: the response status.
    Status(u16),
    /// The scheduled event: `check` sees the handler's return value.
    Scheduled,
    /// An SQS batch: `check` sees the batch response (`batchItemFailures`).
    Queue,
    /// A payout stream batch: `check` sees the batch response, then the
    /// payment.
    Payouts,
    /// A stream batch: `check` sees `{"response": the batch response,
    /// "published": [the events put on the bus]}`.
    Stream,
}

fn id(value: &Value) -> u64 {
    value["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {value}"))
}

/// The expectation of every file, by file name. Ids follow from the order:
/// the admin key made before the replay is API key 1.
fn expectations() -> Vec<Expected> {
    vec![
        Expected {
            file: "01-health-get.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(
                    b,
                    &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
                )
            },
        },
        Expected {
            file: "02-users-create-sender.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["username"], "amina");
                assert_eq!(b["email"], "amina@example.com");
                assert_eq!(b["is_active"], true);
                assert!(b["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
            },
        },
        Expected {
            file: "03-users-create-beneficiary.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 2);
                assert_eq!(b["username"], "moussa");
                assert_eq!(b["email"], "moussa@example.com");
            },
        },
        Expected {
            file: "04-users-get.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["username"], "amina");
            },
        },
        Expected {
            file: "05-apikeys-create.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 2);
                assert_eq!(b["name"], "amina-app");
                assert_eq!(b["scope"], "user");
                assert_eq!(b["user_id"], 1);
                assert_eq!(b["revoked_at"], Value::Null);
                let key = b["key"].as_str().expect("the secret is shown at creation");
                assert!(key.starts_with("kob_") && key.len() == 68, "{key}");
                assert_eq!(b["prefix"].as_str(), Some(&key[..12]));
            },
        },
        Expected {
            file: "06-apikeys-list.json",
            outcome: Outcome::Status(200),
            check: |b| {
                let items = b["items"].as_array().expect("a page");
                let ids: Vec<u64> = items.iter().map(id).collect();
                assert_eq!(ids, vec![2, 1], "newest first: {b}");
                assert_eq!(items[0]["scope"], "user");
                assert_eq!(items[1]["scope"], "admin");
                for item in items {
                    assert!(
                        item.get("key").is_none(),
                        "a listed key shows its secret: {item}"
                    );
                    assert!(
                        item.get("hash").is_none(),
                        "a listed key shows its hash: {item}"
                    );
                }
                assert_eq!(b["next_cursor"], Value::Null);
            },
        },
        Expected {
            file: "07-spend-create-category.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["code"], "PHARMACY");
                assert_eq!(b["label"], "Pharmacy");
            },
        },
        Expected {
            file: "08-spend-create-merchant.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["name"], "Pharmacie du Fleuve");
                assert_eq!(b["category_id"], 1);
                assert_eq!(b["is_certified"], false);
            },
        },
        Expected {
            file: "09-spend-allow-merchant.json",
            outcome: Outcome::Status(201),
            check: |b| assert_eq!(b, &json!({"status": "added"})),
        },
        Expected {
            file: "10-mandates-create.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["sender_id"], 1);
                assert_eq!(b["beneficiary_id"], 2);
                assert_eq!(b["total_amount"], "100.00");
                assert_eq!(b["total_spent"], "0.00");
                assert_eq!(b["currency"], "USD");
                assert_eq!(b["allowed_category_id"], 1);
                assert_eq!(b["allowed_merchant_id"], Value::Null);
                assert_eq!(b["status"], "ACTIVE");
                assert!(b["expires_at"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("2099-12-31T23:59:59")));
            },
        },
        Expected {
            file: "11-mandates-get.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["total_amount"], "100.00", "before the purchase");
                assert_eq!(b["total_spent"], "0.00", "before the purchase");
                assert_eq!(b["status"], "ACTIVE");
            },
        },
        Expected {
            file: "12-mandates-list.json",
            outcome: Outcome::Status(200),
            check: |b| {
                let items = b["items"].as_array().expect("a page");
                assert_eq!(items.iter().map(id).collect::<Vec<_>>(), vec![1]);
                assert_eq!(items[0]["sender_id"], 1);
                assert_eq!(items[0]["status"], "ACTIVE");
                assert_eq!(b["next_cursor"], Value::Null);
            },
        },
        Expected {
            file: "13-spend-create-purchase.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["amount"], "25.50");
                assert_eq!(b["currency"], "USD");
                assert_eq!(b["mandate_id"], 1);
                assert_eq!(b["sender_id"], 1);
                assert_eq!(b["beneficiary_id"], 2);
                assert_eq!(b["merchant_id"], 1);
                assert_eq!(b["category_id"], 1, "the merchant's category");
                assert_eq!(b["status"], "COMPLETED");
            },
        },
        Expected {
            file: "14-spend-get-purchase.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["amount"], "25.50");
                assert_eq!(b["mandate_id"], 1);
            },
        },
        Expected {
            file: "15-mandates-cleanup.json",
            outcome: Outcome::Status(202),
            check: |b| assert_eq!(b, &json!({"expired": 0, "skipped": 0})),
        },
        Expected {
            file: "16-apikeys-revoke.json",
            outcome: Outcome::Status(204),
            check: |b| assert_eq!(b, &Value::Null, "204 has no body"),
        },
        Expected {
            file: "17-mandate-expiry-scheduled.json",
            outcome: Outcome::Scheduled,
            check: |b| {
                assert_eq!(
                    b,
                    &json!({"expired": 0, "skipped": 0, "escrows_released": 0, "escrows_missed": 0,
                            "escrows_cleaned": 0, "escrows_skipped": 0, "payouts_stuck": 0,
                            "payouts_skipped": 0, "more": false})
                )
            },
        },
        Expected {
            file: "18-health-unmatched-route.json",
            outcome: Outcome::Status(404),
            check: |b| assert_eq!(b["error"]["code"], "NOT_FOUND"),
        },
        Expected {
            file: "19-users-wrong-method.json",
            outcome: Outcome::Status(405),
            check: |b| assert_eq!(b["error"]["code"], "METHOD_NOT_ALLOWED"),
        },
        Expected {
            file: "20-users-deactivate.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(b["id"], 2);
                assert_eq!(b["is_active"], false);
            },
        },
        Expected {
            file: "21-users-create-provider.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 3);
                assert_eq!(b["username"], "fatou");
            },
        },
        Expected {
            file: "22-escrows-create.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["client_id"], 1);
                assert_eq!(b["provider_id"], 3);
                assert_eq!(b["amount_total"], "300.00");
                assert_eq!(b["amount_funded"], "0.00");
                assert_eq!(b["status"], "DRAFT");
                assert_eq!(b["release_conditions"], json!({"on": "delivery"}));
                let milestones = b["milestones"].as_array().unwrap();
                assert_eq!(milestones.len(), 2);
                assert_eq!(milestones[0]["idx"], 1);
                assert_eq!(milestones[0]["amount"], "200.00");
                assert_eq!(milestones[0]["status"], "WAITING");
                assert_eq!(milestones[1]["idx"], 2);
                assert_eq!(milestones[1]["geofence"], Value::Null);
            },
        },
        Expected {
            file: "23-escrows-get.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["status"], "DRAFT");
            },
        },
        Expected {
            file: "24-escrows-list.json",
            outcome: Outcome::Status(200),
            check: |b| {
                let items = b["items"].as_array().expect("a page");
                assert_eq!(items.iter().map(id).collect::<Vec<_>>(), vec![1]);
                assert_eq!(b["next_cursor"], Value::Null);
            },
        },
        Expected {
            file: "25-escrows-deposit.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(b["amount_funded"], "300.00");
                assert_eq!(b["amount_available"], "300.00");
                assert_eq!(b["status"], "FUNDED");
            },
        },
        Expected {
            file: "26-escrows-mark-delivered.json",
            outcome: Outcome::Status(200),
            check: |b| assert_eq!(b["status"], "RELEASABLE"),
        },
        Expected {
            file: "27-escrows-check-deadline.json",
            outcome: Outcome::Status(200),
            check: |b| assert_eq!(b["status"], "RELEASABLE", "not due before 2099"),
        },
        Expected {
            file: "28-escrows-client-approve.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(b["status"], "RELEASED");
                assert_eq!(b["amount_available"], "0.00");
                assert_eq!(b["amount_paid"], "300.00");
                assert_eq!(b["amount_refunded"], "0.00");
            },
        },
        Expected {
            file: "29-escrows-client-reject.json",
            outcome: Outcome::Status(409),
            check: |b| assert_eq!(b["error"]["code"], "ESCROW_INVALID_STATE"),
        },
        Expected {
            file: "30-escrows-events.json",
            outcome: Outcome::Status(200),
            check: |b| {
                let kinds: Vec<&str> = b["items"]
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
                        "DELIVERED",
                        "CLIENT_APPROVED",
                        "PAYMENT_PENDING"
                    ]
                );
                assert_eq!(b["items"][2]["data"]["note"], "Roof is on");
                assert_eq!(b["next_cursor"], Value::Null);
            },
        },
        Expected {
            file: "31-payments-get.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["escrow_id"], 1);
                assert_eq!(b["kind"], "PAYOUT");
                assert_eq!(b["payee"], json!({"user_id": 3}));
                assert_eq!(b["amount"], "300.00");
                assert_eq!(b["status"], "PENDING");
                assert!(b["psp_ref"].as_str().unwrap().starts_with("PSP-"));
            },
        },
        Expected {
            file: "32-payments-list.json",
            outcome: Outcome::Status(200),
            check: |b| {
                let items = b["items"].as_array().expect("a page");
                assert_eq!(items.iter().map(id).collect::<Vec<_>>(), vec![1]);
            },
        },
        Expected {
            file: "33-audit-user-trail.json",
            outcome: Outcome::Status(200),
            check: |b| {
                let actions: Vec<&str> = b["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["action"].as_str().unwrap())
                    .collect();
                // The beneficiary's allowance (09) is audited under the user.
                assert_eq!(
                    actions,
                    vec!["USER_CREATED", "USAGE_ALLOWED", "USER_DEACTIVATED"]
                );
                assert_eq!(b["items"][0]["actor"], "apikey:1");
                assert_eq!(b["items"][0]["data"]["username"], "moussa");
                assert_eq!(b["items"][1]["data"]["merchant_id"], 1);
                assert_eq!(b["items"][2]["data"], json!({"is_active": false}));
                assert_eq!(b["next_cursor"], Value::Null);
            },
        },
        Expected {
            file: "34-audit-alerts.json",
            outcome: Outcome::Status(200),
            check: |b| assert_eq!(b, &json!({"items": [], "next_cursor": null})),
        },
        Expected {
            file: "35-psp-webhook-payment-failed.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(
                    b,
                    &json!({"ok": "true", "event_id": "evt_0035", "status": "queued"})
                )
            },
        },
        Expected {
            file: "36-psp-events-batch.json",
            outcome: Outcome::Queue,
            check: |b| assert_eq!(b, &json!({"batchItemFailures": []})),
        },
        Expected {
            file: "37-payments-psp-event-get.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(b["event_id"], "evt_0035");
                assert_eq!(b["type"], "payment.failed");
                assert_eq!(b["status"], "APPLIED");
                assert_eq!(b["payment_id"], 1);
                assert!(b["psp_ref"].as_str().unwrap().starts_with("PSP-"));
                assert!(b["processed_at"].as_str().is_some_and(|t| t.ends_with('Z')));
            },
        },
        Expected {
            file: "38-payments-execute.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["status"], "PENDING");
                assert_eq!(b["attempts"], 2);
                assert_eq!(b["amount"], "300.00");
            },
        },
        Expected {
            file: "39-transactions-allowlist.json",
            outcome: Outcome::Status(201),
            check: |b| assert_eq!(b, &json!({"status": "added"})),
        },
        Expected {
            file: "40-transactions-certify.json",
            outcome: Outcome::Status(201),
            check: |b| assert_eq!(b, &json!({"status": "created"})),
        },
        Expected {
            file: "41-transactions-create.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(
                    (b["sender_id"].as_u64(), b["receiver_id"].as_u64()),
                    (Some(1), Some(3))
                );
                assert_eq!(b["amount"], "25.50");
                assert_eq!(b["currency"], "USD");
                assert_eq!(b["status"], "COMPLETED");
            },
        },
        Expected {
            file: "42-transactions-get.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["amount"], "25.50");
            },
        },
        Expected {
            file: "43-transactions-list.json",
            outcome: Outcome::Status(200),
            check: |b| {
                let items = b["items"].as_array().expect("a page");
                assert_eq!(items.iter().map(id).collect::<Vec<_>>(), vec![1]);
                assert_eq!(b["next_cursor"], Value::Null);
            },
        },
        Expected {
            file: "44-escrows-create-for-spends.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 2);
                assert_eq!(b["status"], "DRAFT");
            },
        },
        Expected {
            file: "45-escrows-deposit-for-spends.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(b["status"], "FUNDED");
                assert_eq!(b["amount_available"], "50.00");
            },
        },
        Expected {
            file: "46-spend-allow-payee.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["escrow_id"], 2);
                assert_eq!(b["payee_ref"], "school-dakar-01");
                assert_eq!(
                    (&b["daily_limit"], &b["total_limit"]),
                    (&json!("20.00"), &json!("40.00"))
                );
                assert_eq!(b["spent_total"], "0.00");
            },
        },
        Expected {
            file: "47-spend-list-payees.json",
            outcome: Outcome::Status(200),
            check: |b| {
                let items = b["items"].as_array().expect("a page");
                assert_eq!(items.iter().map(id).collect::<Vec<_>>(), vec![1]);
            },
        },
        Expected {
            file: "48-spend-from-escrow.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(b["payment_id"], 2);
                assert_eq!(b["escrow_id"], 2);
                assert_eq!(b["amount"], "15.00");
                assert_eq!(b["status"], "PENDING");
            },
        },
        Expected {
            file: "49-escrows-create-for-proofs.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 3);
                assert_eq!(b["milestones"][0]["proof_type"], "PHOTO");
                assert_eq!(b["milestones"][0]["geofence"]["radius_m"], 300.0);
            },
        },
        Expected {
            file: "50-escrows-deposit-for-proofs.json",
            outcome: Outcome::Status(200),
            check: |b| assert_eq!(b["status"], "FUNDED"),
        },
        Expected {
            file: "51-proofs-upload.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(b["method"], "PUT");
                let url = b["url"].as_str().unwrap();
                assert!(url.contains("/uploads/3/1/"), "{url}");
                assert!(url.contains("X-Amz-Expires=900"), "{url}");
                assert_eq!(b["headers"]["content-type"], "image/jpeg");
                assert_eq!(b["headers"]["content-length"], "2048");
                assert!(b["headers"]["x-amz-checksum-sha256"].as_str().is_some());
                assert_eq!(b["upload_id"].as_str().unwrap().len(), 32);
            },
        },
        Expected {
            file: "52-proofs-submit-old-client.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["status"], "PENDING");
                assert_eq!(b["review_reason"], "UNVERIFIED_UPLOAD");
                assert_eq!(b["evidence"], Value::Null);
                assert_eq!(b["storage_url"], "https://files.example.com/walls.jpg");
            },
        },
        Expected {
            file: "53-proofs-get.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["status"], "PENDING");
                assert_eq!(
                    b["download_url"],
                    Value::Null,
                    "an old client's file is not ours"
                );
            },
        },
        Expected {
            file: "54-proofs-decision.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["status"], "APPROVED");
                assert_eq!(b["decision_note"], "Walls are up");
                assert_eq!(b["decided_by"], "apikey:1");
            },
        },
        Expected {
            file: "55-health-openapi.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(b["openapi"], "3.1.0");
                assert!(b["paths"]["/escrows/{id}/deposit"]["post"].is_object());
            },
        },
        // The webhook's route is ANY, so another method reaches the function,
        // which answers 405 as docs/api.md says (not $default's 404).
        Expected {
            file: "56-psp-webhook-wrong-method.json",
            outcome: Outcome::Status(405),
            check: |b| assert_eq!(b["error"]["code"], "METHOD_NOT_ALLOWED"),
        },
        Expected {
            file: "57-domain-events-escrow-funded.json",
            outcome: Outcome::Stream,
            check: |b| {
                assert_eq!(b["response"], json!({"batchItemFailures": []}));
                let published = b["published"].as_array().unwrap();
                assert_eq!(published.len(), 1, "{published:?}");
                let event = &published[0];
                assert_eq!(event["type"], "escrow.funded");
                assert_eq!(event["version"], 1);
                assert_eq!(event["occurred_at"], "2026-06-01T09:00:00.000000Z");
                assert_eq!(event["id"].as_str().map(str::len), Some(32));
                assert_eq!(
                    event["data"],
                    json!({
                        "escrow_id": "7", "client_id": "1", "provider_id": "2",
                        "currency": "USD", "amount_total": "1500.00",
                        "amount_funded": "1500.00", "amount_available": "1500.00",
                        "amount_paid": "0.00", "amount_refunded": "0.00",
                        "status": "FUNDED",
                    })
                );
            },
        },
        Expected {
            // Payment 1, retried by 38 (PENDING, attempt 2): the PSP accepts.
            file: "58-payout-dispatch-pending-payment.json",
            outcome: Outcome::Payouts,
            check: |b| {
                assert_eq!(b["response"], json!({"batchItemFailures": []}));
                assert_eq!(b["payment"]["status"], "SENT");
                assert_eq!(b["payment"]["attempts"], 2);
            },
        },
        Expected {
            file: "59-alerts-ack.json",
            outcome: Outcome::Status(200),
            check: |b| {
                // The first alert: the PSP's failure of payment 1 (35, 36).
                assert_eq!(id(b), 1);
                assert_eq!(b["type"], "PAYMENT_FAILED");
                assert_eq!(b["acknowledged_by"], "apikey:1");
                assert!(b["acknowledged_at"].is_string(), "{b}");
            },
        },
        Expected {
            file: "60-payments-psp-events-applied.json",
            outcome: Outcome::Status(200),
            check: |b| {
                let items = b["items"].as_array().expect("a page");
                assert_eq!(items.len(), 1, "{b}");
                assert_eq!(items[0]["event_id"], "evt_0035");
                assert_eq!(items[0]["status"], "APPLIED");
                assert_eq!(items[0]["payment_id"], 1);
                assert_eq!(b["next_cursor"], Value::Null);
            },
        },
        Expected {
            // The console's page: no key needed, the page holds no data.
            file: "61-console-page.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(b["content-type"], "text/html; charset=utf-8");
                assert_eq!(b["cache-control"], "no-cache");
                assert_eq!(b["x-frame-options"], "DENY");
                let csp = b["content-security-policy"].as_str().unwrap();
                assert!(csp.starts_with("default-src 'none'; script-src 'self'"));
                assert!(b["starts"].as_str().unwrap().starts_with("<!doctype html>"));
            },
        },
        Expected {
            file: "62-console-asset.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(b["content-type"], "text/javascript; charset=utf-8");
                assert_eq!(b["x-content-type-options"], "nosniff");
                assert!(b["starts"].as_str().unwrap().starts_with("//"));
            },
        },
        Expected {
            file: "63-ledger-check-scheduled.json",
            outcome: Outcome::Scheduled,
            // Every mandate and escrow the files before made, checked
            // whole in this one tick, and clean.
            check: |b| {
                assert_eq!(b["status"], "DONE", "{b}");
                assert_eq!(b["counts"]["mismatches"], 0, "{b}");
                assert_eq!(b["counts"]["alerts_raised"], 0, "{b}");
                assert!(b["counts"]["mandates"].as_u64().unwrap() >= 1, "{b}");
                assert!(b["counts"]["escrows"].as_u64().unwrap() >= 2, "{b}");
            },
        },
        Expected {
            file: "64-ledger-checks-start.json",
            outcome: Outcome::Status(202),
            // Run 1 (the schedule's, 63) is DONE: a new one starts.
            check: |b| {
                assert_eq!(id(b), 2);
                assert_eq!(b["status"], "RUNNING");
                assert_eq!(b["requested_by"], "apikey:1");
                assert_eq!(
                    (b["segments"].as_u64(), b["segments_done"].as_u64()),
                    (Some(4), Some(0))
                );
            },
        },
        Expected {
            file: "65-ledger-checks-get.json",
            outcome: Outcome::Status(200),
            check: |b| {
                assert_eq!(id(b), 1);
                assert_eq!(b["status"], "DONE");
                assert_eq!(b["requested_by"], "schedule");
                assert_eq!(b["counts"]["mismatches"], 0);
                assert_eq!(b["findings"], json!([]));
            },
        },
        Expected {
            file: "66-ledger-settlements-upload.json",
            outcome: Outcome::Status(201),
            check: |b| {
                assert_eq!(b["method"], "PUT");
                assert_eq!(
                    b["upload_id"],
                    "802de8da803f0e8f223006438914d6923d49efac768c54276523de1b47a48d86"
                );
                assert!(
                    b["url"].as_str().unwrap().contains("/settlements/802de8da"),
                    "{b}"
                );
            },
        },
        Expected {
            file: "67-ledger-settlements-not-uploaded.json",
            outcome: Outcome::Status(422),
            // Presigned (66) but never PUT: nothing to read.
            check: |b| {
                assert_eq!(b["error"]["code"], "VALIDATION_ERROR");
                assert!(
                    b["error"]["details"]["fields"]["upload_id"].is_string(),
                    "{b}"
                );
            },
        },
        Expected {
            file: "68-ledger-settlements-list.json",
            outcome: Outcome::Status(200),
            check: |b| assert_eq!(b["items"], json!([])),
        },
        Expected {
            file: "69-ledger-settlements-get-missing.json",
            outcome: Outcome::Status(404),
            check: |b| assert_eq!(b["error"]["code"], "SETTLEMENT_NOT_FOUND"),
        },
    ]
}

/// What a page answer is checked on: its headers and first characters.
fn page_summary(reply: &Reply) -> Value {
    let mut summary = serde_json::Map::new();
    for name in [
        "content-type",
        "cache-control",
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
    ] {
        let value = reply.headers.get(name).and_then(|v| v.to_str().ok());
        summary.insert(name.into(), json!(value));
    }
    summary.insert(
        "starts".into(),
        json!(reply.text.chars().take(40).collect::<String>()),
    );
    Value::Object(summary)
}

/// One file of `events/`.
struct EventFile {
    name: String,
    /// Its folder under `events/` (the function it is for).
    function: String,
    path: PathBuf,
    json: Value,
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn collect(dir: &Path, into: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(&path, into);
        } else if path.extension().is_some_and(|e| e == "json") {
            into.push(path);
        }
    }
}

/// Every `*.json` under `events/`, by file name; fails on an unknown folder
/// or two files of the same name.
fn event_files() -> Vec<EventFile> {
    let root = events_dir();
    let mut paths = Vec::new();
    collect(&root, &mut paths);
    let mut files: Vec<EventFile> = paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let function = path
                .parent()
                .unwrap()
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(
                FUNCTIONS.contains(&function.as_str()),
                "events/{function}/{name}: the folder {function:?} is not a function (one of {FUNCTIONS:?})"
            );
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            EventFile {
                name,
                function,
                path,
                json,
            }
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in files.windows(2) {
        assert_ne!(pair[0].name, pair[1].name, "two event files share a name");
    }
    assert!(!files.is_empty(), "no event files under {}", root.display());
    files
}

#[test]
fn every_event_file_has_an_expectation_and_every_expectation_a_file() {
    let files: BTreeSet<String> = event_files().into_iter().map(|f| f.name).collect();
    let expected: Vec<&str> = expectations().iter().map(|e| e.file).collect();
    let expected_set: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        expected.len(),
        expected_set.len(),
        "the table names a file twice"
    );
    let unexpected: Vec<_> = files.difference(&expected_set).collect();
    let missing: Vec<_> = expected_set.difference(&files).collect();
    assert!(
        unexpected.is_empty(),
        "event files with no expectation: {unexpected:?}"
    );
    assert!(
        missing.is_empty(),
        "expectations naming no event file: {missing:?}"
    );
}

#[test]
fn events_are_numbered_in_replay_order() {
    for (index, file) in event_files().iter().enumerate() {
        let number = format!("{:02}-", index + 1);
        assert!(
            file.name.starts_with(&number),
            "{}: expected the number {number} (files are numbered 01- onwards, without gaps)",
            file.name
        );
    }
}

/// An API Gateway v2 route key matches a concrete path (`{id}` = one segment).
fn path_matches(route_path: &str, path: &str) -> bool {
    // A greedy `{name+}` takes the rest of the path, as in API Gateway.
    if let Some(prefix) = route_path.strip_suffix("{proxy+}") {
        return path
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty());
    }
    let route: Vec<&str> = route_path.split('/').collect();
    let concrete: Vec<&str> = path.split('/').collect();
    route.len() == concrete.len()
        && route
            .iter()
            .zip(&concrete)
            .all(|(r, c)| (r.starts_with('{') && r.ends_with('}') && !c.is_empty()) || r == c)
}

/// The template's functions: `Binary` → (HTTP route keys, has a schedule).
fn template_functions() -> BTreeMap<String, (BTreeSet<String>, bool)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml parses");
    let resources = template["Resources"].as_mapping().expect("Resources");
    let mut functions = BTreeMap::new();
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?} has no Metadata.BuildProperties.Binary"))
            .to_string();
        let mut routes = BTreeSet::new();
        let mut scheduled = false;
        if let Some(events) = resource["Properties"]["Events"].as_mapping() {
            for event in events.values() {
                match event["Type"].as_str() {
                    // Without Path and Method, SAM routes `$default` (what no
                    // other route matches) to the function.
                    Some("HttpApi") => match (
                        event["Properties"]["Method"].as_str(),
                        event["Properties"]["Path"].as_str(),
                    ) {
                        (None, None) => {
                            routes.insert("$default".to_string());
                        }
                        (Some(method), Some(path)) => {
                            routes.insert(format!("{} {path}", method.to_uppercase()));
                        }
                        other => panic!("{name:?}: HttpApi event with {other:?}"),
                    },
                    // A schedule or a queue: a trigger with one event file.
                    Some("Schedule") | Some("SQS") | Some("DynamoDB") => scheduled = true,
                    other => panic!("{name:?}: event type {other:?} is not covered by events/"),
                }
            }
        }
        assert!(
            functions
                .insert(binary.clone(), (routes, scheduled))
                .is_none(),
            "two functions build {binary}"
        );
    }
    functions
}

#[test]
fn events_cover_every_route_and_match_the_template() {
    let functions = template_functions();
    let files = event_files();
    let folders: BTreeSet<&str> = FUNCTIONS.iter().copied().collect();
    let binaries: BTreeSet<&str> = functions.keys().map(String::as_str).collect();
    assert_eq!(
        folders, binaries,
        "the folders of events/ and the template's functions differ"
    );

    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    for file in &files {
        let (routes, scheduled) = &functions[&file.function];
        let where_ = format!("events/{}/{}", file.function, file.name);
        if SCHEDULED_FUNCTIONS.contains(&file.function.as_str()) {
            assert!(
                *scheduled,
                "{where_}: the template does not schedule {}",
                file.function
            );
            assert_eq!(file.json["detail-type"], "Scheduled Event", "{where_}");
            assert_eq!(file.json["source"], "aws.events", "{where_}");
            covered.insert((file.function.clone(), "schedule".into()));
            continue;
        }
        if file.function == STREAM_FUNCTION || file.function == PAYOUT_FUNCTION {
            assert!(
                *scheduled,
                "{where_}: the template gives {} no stream",
                file.function
            );
            assert_eq!(
                file.json["Records"][0]["eventSource"], "aws:dynamodb",
                "{where_}"
            );
            covered.insert((file.function.clone(), "schedule".into()));
            continue;
        }
        if file.function == QUEUE_FUNCTION {
            assert!(
                *scheduled,
                "{where_}: the template gives {} no queue",
                file.function
            );
            assert_eq!(
                file.json["Records"][0]["eventSource"], "aws:sqs",
                "{where_}"
            );
            covered.insert((file.function.clone(), "schedule".into()));
            continue;
        }
        let route = file.json["routeKey"]
            .as_str()
            .unwrap_or_else(|| panic!("{where_}: no routeKey"));
        assert!(
            routes.contains(route),
            "{where_}: route {route:?} is not a route of the {} function in template.yaml ({routes:?})",
            file.function
        );
        let context = &file.json["requestContext"];
        assert_eq!(
            context["routeKey"].as_str(),
            Some(route),
            "{where_}: requestContext.routeKey"
        );
        let raw_path = file.json["rawPath"].as_str().expect("rawPath");
        if let Some((method, route_path)) = route.split_once(' ') {
            if method != "ANY" {
                assert_eq!(
                    context["http"]["method"].as_str(),
                    Some(method),
                    "{where_}: method"
                );
            }
            assert!(
                path_matches(route_path, raw_path),
                "{where_}: rawPath {raw_path} is not {route}"
            );
        }
        assert_eq!(
            context["http"]["path"].as_str(),
            Some(raw_path),
            "{where_}: requestContext.http.path"
        );
        assert_eq!(
            context["stage"], "$default",
            "{where_}: the API serves the $default stage"
        );
        assert!(
            context["requestId"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{where_}: no requestContext.requestId"
        );
        covered.insert((file.function.clone(), route.to_string()));
    }
    for (binary, (routes, scheduled)) in &functions {
        for route in routes {
            assert!(
                covered.contains(&(binary.clone(), route.clone())),
                "route {route} of {binary} in template.yaml has no file in events/{binary}/"
            );
        }
        if *scheduled {
            assert!(
                covered.contains(&(binary.clone(), "schedule".into())),
                "the trigger (schedule or queue) of {binary} has no file in events/{binary}/"
            );
        }
    }
}

/// The bus `local/bootstrap.py` creates.
const LOCAL_BUS: &str = "kobatela-local";

/// The real publisher, remembering the entries it put successfully.
struct Recording {
    inner: domain_events::Publisher,
    put: std::sync::Mutex<Vec<domain_events::Entry>>,
}

impl domain_events::PutEvents for Recording {
    async fn put(&self, entries: &[domain_events::Entry]) -> Result<Vec<Option<String>>, String> {
        let results = self.inner.put(entries).await?;
        let mut put = self.put.lock().unwrap();
        for (entry, result) in entries.iter().zip(&results) {
            if result.is_none() {
                put.push(entry.clone());
            }
        }
        Ok(results)
    }
}

/// The proof bucket of the replay (the in-process API's).
static BLOB: std::sync::OnceLock<shared::blob::Blob> = std::sync::OnceLock::new();

/// The function's whole app, as `run_on_lambda` serves it.
fn app_of(function: &str, state: &SharedState) -> Router {
    let routes = match function {
        "health" => health::router(),
        "users" => users::router(state.clone()),
        "apikeys" => apikeys::router(state.clone()),
        "mandates" => mandates::router(state.clone()),
        "spend" => spend::router(state.clone()),
        "escrows" => escrows::router(state.clone()),
        "proofs" => proofs::router(proofs::ProofsState {
            app: state.clone(),
            blob: BLOB.get().expect("the replay sets the bucket").clone(),
        }),
        "payments" => payments::router(state.clone()),
        "transactions" => transactions::router(state.clone()),
        "alerts" => alerts::router(state.clone()),
        "ledger" => ledger::router(ledger::LedgerState {
            app: state.clone(),
            blob: BLOB.get().expect("the replay sets the bucket").clone(),
        }),
        "console" => {
            kobatela_local::console_routes(BLOB.get().expect("the replay sets the bucket"))
                .expect("the replay's environment names the bucket's origin")
        }
        other => panic!("{other} is not an HTTP function"),
    };
    shared::http::app(routes)
}

/// One request through `app`; unless `page`, the body must be JSON or
/// empty (`Null`).
async fn call(app: Router, request: http::Request<lambda_http::Body>, page: bool) -> Reply {
    let response = app
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let reply = Reply::read(response).await;
    if page {
        return reply;
    }
    if let Err(e) = serde_json::from_str::<Value>(&reply.text) {
        assert!(
            reply.text.is_empty(),
            "the body is not JSON ({e}): {}",
            reply.text
        );
    }
    reply
}

/// The webhook event as the PSP would send it now: the payment's `psp_ref`
/// in the body, the current time, and the signature of both.
fn signed(event: &Value, psp_ref: &str) -> String {
    let mut event = event.clone();
    let body = event["body"]
        .as_str()
        .expect("a webhook event has a body")
        .replace("REPLACE_WITH_PSP_REF", psp_ref);
    let ts = kobatela_tests::unix_now().to_string();
    event["headers"]["x-psp-signature"] = Value::String(kobatela_tests::psp_sign(
        &kobatela_tests::psp_secret(),
        &ts,
        &body,
    ));
    event["headers"]["x-psp-timestamp"] = Value::String(ts);
    event["body"] = Value::String(body);
    event.to_string()
}

/// The event with `Authorization: Bearer <secret>` in place of the placeholder.
fn with_key(event: &Value, secret: &str) -> String {
    let mut event = event.clone();
    if event["headers"].get("authorization").is_some() {
        event["headers"]["authorization"] = Value::String(format!("Bearer {secret}"));
    }
    event.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_file_replays_through_its_handler() {
    let api = InProcess::new("events").await;
    let (state, secret) = (&api.state, &api.admin_key);
    let _ = BLOB.set(api.blob.clone());
    let admin = state
        .store
        .api_key_by_hash(&state.auth.hash(secret))
        .await
        .unwrap()
        .expect("the admin key is stored");
    assert_eq!(admin.id.get(), 1, "a fresh table starts its ids at 1");

    let expectations: BTreeMap<&str, Expected> =
        expectations().into_iter().map(|e| (e.file, e)).collect();
    let files = event_files();
    let mut bodies: BTreeMap<String, Value> = BTreeMap::new();
    for file in &files {
        let where_ = format!("events/{}/{}", file.function, file.name);
        let expected = expectations
            .get(file.name.as_str())
            .unwrap_or_else(|| panic!("{where_} has no expectation in this test"));
        let body = match expected.outcome {
            Outcome::Scheduled => {
                let event: EventBridgeEvent = serde_json::from_value(file.json.clone())
                    .unwrap_or_else(|e| panic!("{where_}: not an EventBridge event: {e}"));
                let result = match file.function.as_str() {
                    "mandate-expiry" => mandate_expiry::handle(&state.store, event).await,
                    "ledger-check" => ledger_check::handle(&state.store, event).await,
                    other => panic!("{where_}: {other} is not scheduled"),
                }
                .unwrap_or_else(|e| panic!("{where_}: the handler failed: {e}"));
                println!("{where_}: {result}");
                result
            }
            Outcome::Payouts => {
                assert_eq!(
                    file.function, PAYOUT_FUNCTION,
                    "{where_}: not the dispatcher's"
                );
                let event: aws_lambda_events::dynamodb::Event =
                    serde_json::from_value(file.json.clone())
                        .unwrap_or_else(|e| panic!("{where_}: not a stream event: {e}"));
                let dispatcher = payout_dispatch::Dispatcher::new(
                    state.store.clone(),
                    std::sync::Arc::new(kobatela_tests::AcceptingPsp),
                );
                let response = serde_json::to_value(dispatcher.handle(event).await).unwrap();
                let payment = state
                    .store
                    .payment(shared::domain::ids::Id::new(1).unwrap())
                    .await
                    .unwrap()
                    .unwrap()
                    .payment;
                let result = json!({"response": response, "payment": payment});
                println!("{where_}: {result}");
                result
            }
            Outcome::Queue => {
                assert_eq!(file.function, QUEUE_FUNCTION, "{where_}: not the queue's");
                let event: aws_lambda_events::sqs::SqsEvent =
                    serde_json::from_value(file.json.clone())
                        .unwrap_or_else(|e| panic!("{where_}: not an SQS event: {e}"));
                let response = psp_events::handle(&state.store, event).await;
                let result = serde_json::to_value(response).unwrap();
                println!("{where_}: {result}");
                result
            }
            Outcome::Stream => {
                assert_eq!(file.function, STREAM_FUNCTION, "{where_}: not the stream's");
                let event: aws_lambda_events::dynamodb::Event =
                    serde_json::from_value(file.json.clone())
                        .unwrap_or_else(|e| panic!("{where_}: not a DynamoDB event: {e}"));
                // The real publisher, to the emulator's bus; what it put is
                // kept for the check.
                let sdk = shared::app::sdk_config().await;
                let publisher = Recording {
                    inner: domain_events::Publisher::new(
                        domain_events::Publisher::new_client(&sdk),
                        LOCAL_BUS,
                    ),
                    put: Default::default(),
                };
                let response = domain_events::handle(&publisher, event).await;
                let published: Vec<Value> = publisher
                    .put
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|e| serde_json::from_str(&e.detail).unwrap())
                    .collect();
                let result = json!({"response": response, "published": published});
                println!("{where_}: {result}");
                result
            }
            Outcome::Status(status) => {
                assert!(
                    !SCHEDULED_FUNCTIONS.contains(&file.function.as_str()),
                    "{where_}: {} is not HTTP",
                    file.function
                );
                // A webhook with a body is signed as the PSP would; one
                // without (another method) goes as it is.
                let text = if file.function == "psp-webhook" && file.json["body"].is_string() {
                    let payment = bodies
                        .get("31-payments-get.json")
                        .expect("the payout is read before the webhook");
                    signed(&file.json, payment["psp_ref"].as_str().unwrap())
                } else {
                    with_key(&file.json, secret)
                };
                let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| {
                    panic!("{}: not an API Gateway event: {e}", file.path.display())
                });
                let app = if file.function == "psp-webhook" {
                    shared::http::app(psp_webhook::router(api.webhook.clone()))
                } else {
                    app_of(&file.function, state)
                };
                let page = file.function == PAGE_FUNCTION;
                let answer = call(app, request, page).await;
                println!("{where_}: {} {}", answer.status.as_u16(), answer.text);
                assert_eq!(
                    answer.status.as_u16(),
                    status,
                    "{where_}: unexpected status: {}",
                    answer.text
                );
                let request_id = file.json["requestContext"]["requestId"].as_str().unwrap();
                assert_eq!(
                    answer
                        .headers
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok()),
                    Some(request_id),
                    "{where_}: x-request-id is not the API Gateway request id"
                );
                if page {
                    page_summary(&answer)
                } else {
                    if !answer.text.is_empty() {
                        assert_eq!(
                            answer
                                .headers
                                .get("content-type")
                                .and_then(|v| v.to_str().ok()),
                            Some("application/json"),
                            "{where_}: content type"
                        );
                    }
                    answer.body
                }
            }
        };
        (expected.check)(&body);
        bodies.insert(file.name.clone(), body);
    }

    // Reads answer what the writes before them answered.
    let body = |name: &str| {
        bodies
            .get(name)
            .unwrap_or_else(|| panic!("{name} was not replayed"))
    };
    assert_eq!(
        body("04-users-get.json"),
        body("02-users-create-sender.json")
    );
    assert_eq!(
        body("11-mandates-get.json"),
        body("10-mandates-create.json")
    );
    assert_eq!(
        body("12-mandates-list.json")["items"][0],
        *body("10-mandates-create.json")
    );
    assert_eq!(
        body("14-spend-get-purchase.json"),
        body("13-spend-create-purchase.json")
    );
    assert_eq!(body("23-escrows-get.json"), body("22-escrows-create.json"));
    assert_eq!(
        body("24-escrows-list.json")["items"][0],
        *body("22-escrows-create.json")
    );
    assert_eq!(
        body("32-payments-list.json")["items"][0],
        *body("31-payments-get.json")
    );
    let table = Table::named(&api.table).await;
    assert_eq!(
        table.audit_actions("ESCROW", 1).await,
        vec![
            "ESCROW_CREATED",
            "ESCROW_DEPOSITED",
            "ESCROW_DELIVERED",
            "ESCROW_RELEASED"
        ]
    );
    // Paid out (28), failed by the PSP (35, 36), sent again (38), accepted
    // by the PSP through the dispatcher (58).
    assert_eq!(
        table.audit_actions("PAYMENT", 1).await,
        vec![
            "PAYOUT_PENDING",
            "PAYMENT_FAILED",
            "PAYOUT_PENDING",
            "PAYOUT_SENT"
        ]
    );
    assert_eq!(
        body("42-transactions-get.json"),
        body("41-transactions-create.json")
    );
    assert_eq!(
        body("43-transactions-list.json")["items"][0],
        *body("41-transactions-create.json")
    );
    assert_eq!(
        table.audit_actions("TRANSACTION", 1).await,
        vec!["CREATE_TRANSACTION"]
    );
    assert_eq!(table.audit_actions("PAYMENT", 2).await, vec!["USAGE_SPEND"]);

    // The purchase debited the mandate, through the handler and in the store.
    let read = lambda_http::request::from_str(&with_key(
        &event_files()
            .into_iter()
            .find(|f| f.name == "11-mandates-get.json")
            .unwrap()
            .json,
        secret,
    ))
    .unwrap();
    let after = call(app_of("mandates", state), read, false).await;
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(after.body["total_amount"], "74.50", "{}", after.text);
    assert_eq!(after.body["total_spent"], "25.50", "{}", after.text);
    assert_eq!(after.body["status"], "ACTIVE", "{}", after.text);
    assert_eq!(
        api.mandate_money(1).await,
        ("74.50".to_string(), "25.50".to_string())
    );

    assert_eq!(
        table.audit_actions("USAGE_MANDATE", 1).await,
        vec!["USAGE_MANDATE_CREATED", "USAGE_MANDATE_DEBITED"]
    );

    // 16 revoked the key 05 made: it no longer works (not even from the cache).
    let user_secret = body("05-apikeys-create.json")["key"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = state
        .store
        .api_key_by_hash(&state.auth.hash(&user_secret))
        .await
        .unwrap()
        .expect("key 2 is stored");
    assert_eq!(revoked.id.get(), 2);
    assert!(revoked.revoked_at.is_some(), "key 2 is not revoked");
    let read_user = lambda_http::request::from_str(&with_key(
        &event_files()
            .into_iter()
            .find(|f| f.name == "04-users-get.json")
            .unwrap()
            .json,
        &user_secret,
    ))
    .unwrap();
    let refused = call(app_of("users", state), read_user, false).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(
        refused.body["error"]["code"], "UNAUTHORIZED",
        "{}",
        refused.text
    );
}
