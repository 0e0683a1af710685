//! Least privilege, checked against the code: every function's DynamoDB
//! policy in `template.yaml` grants exactly the actions its handlers issue
//! and exactly the indexes they query. A recording interceptor on the client
//! sees every call while each function's routes (and the scheduled sweep)
//! are driven in-process, through scenarios that reach every write path: a
//! purchase that notices an expired mandate, a cleanup and a sweep that
//! expire one, a key revocation, an idempotent replay. `TransactWriteItems`
//! counts as its items' actions, as IAM authorises it per item.
//!
//! The same recording checks the audit log's guarantee (every write to an
//! `AUDIT#` item is a Put that only creates) and that the public webhook
//! touches PSP event items only; the template's side of both is checked too.
//!
//! Also: unknown API keys are remembered briefly, so a flood of bad keys
//! costs one table read.
//!
//! Needs the emulator (`AWS_ENDPOINT_URL`, dummy credentials) and
//! `KOBATELA_API_KEY_PEPPER`; the template checks do not.

use aws_sdk_dynamodb::{
    operation::{
        batch_get_item::BatchGetItemInput, batch_write_item::BatchWriteItemInput,
        delete_item::DeleteItemInput, get_item::GetItemInput, put_item::PutItemInput,
        query::QueryInput, transact_get_items::TransactGetItemsInput,
        transact_write_items::TransactWriteItemsInput, update_item::UpdateItemInput,
    },
    types::AttributeValue,
};
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{
            context::{BeforeSerializationInterceptorContextRef, Input},
            Intercept,
        },
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::ConfigBag;
use kobatela_local::stream::{StartAt, StreamSource};
use kobatela_tests::{
    faults::operation, photos, unique, AdminApi, EscrowSetup, InProcess, MandateSetup, Reply, Table,
};
use payout_dispatch::Dispatcher;
use serde_json::{json, Value};
use shared::psp::{PayoutAnswer, PayoutFuture, PayoutRequest, Psp};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    future::Future,
    path::Path,
    sync::{Arc, Mutex},
};

/// What one function was granted, or was seen to use.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Access {
    actions: BTreeSet<String>,
    indexes: BTreeSet<String>,
}

/// One write to an `AUDIT#` item, as the SDK was asked to send it.
#[derive(Debug, Clone)]
struct AuditWrite {
    function: String,
    /// PutItem, UpdateItem or DeleteItem (a transaction's or batch's item).
    action: &'static str,
    pk: String,
    sk: String,
    condition: Option<String>,
}

#[derive(Debug, Default)]
struct Recording {
    /// The function whose code is running now (calls are sequential).
    current: String,
    by_function: BTreeMap<String, Access>,
    /// Executions per operation name, whatever the function.
    executions: BTreeMap<String, u64>,
    /// Per function, the pk of every key its calls name (IAM's
    /// `dynamodb:LeadingKeys`); `<Query>`-like markers where the recorder
    /// does not read the key, so that no allowed prefix matches them.
    leading_keys: BTreeMap<String, BTreeSet<String>>,
    audit_writes: Vec<AuditWrite>,
}

#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Recording>>);

impl Recorder {
    fn on(&self, function: &str) {
        self.0.lock().unwrap().current = function.to_string();
    }

    fn executions(&self, op: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .executions
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    fn recorded(&self) -> BTreeMap<String, Access> {
        self.0.lock().unwrap().by_function.clone()
    }

    fn leading_keys(&self, function: &str) -> BTreeSet<String> {
        self.0
            .lock()
            .unwrap()
            .leading_keys
            .get(function)
            .cloned()
            .unwrap_or_default()
    }

    fn audit_writes(&self) -> Vec<AuditWrite> {
        self.0.lock().unwrap().audit_writes.clone()
    }
}

type Item = HashMap<String, AttributeValue>;

fn string_of(item: &Item, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// The keys one call names, each with what the call does to that item
/// (a transaction's or batch's items one by one) and its condition; None for
/// calls whose keys are not read here (Query, Scan).
fn keys_of(input: &Input) -> Option<Vec<(&'static str, Item, Option<String>)>> {
    let cond = |c: Option<&str>| c.map(str::to_string);
    if let Some(i) = input.downcast_ref::<GetItemInput>() {
        return Some(vec![(
            "GetItem",
            i.key().cloned().unwrap_or_default(),
            None,
        )]);
    }
    if let Some(i) = input.downcast_ref::<PutItemInput>() {
        let item = i.item().cloned().unwrap_or_default();
        return Some(vec![("PutItem", item, cond(i.condition_expression()))]);
    }
    if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
        let key = i.key().cloned().unwrap_or_default();
        return Some(vec![("UpdateItem", key, cond(i.condition_expression()))]);
    }
    if let Some(i) = input.downcast_ref::<DeleteItemInput>() {
        let key = i.key().cloned().unwrap_or_default();
        return Some(vec![("DeleteItem", key, cond(i.condition_expression()))]);
    }
    if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
        return Some(
            i.transact_items()
                .iter()
                .map(|item| {
                    if let Some(put) = item.put() {
                        (
                            "PutItem",
                            put.item().clone(),
                            cond(put.condition_expression()),
                        )
                    } else if let Some(update) = item.update() {
                        (
                            "UpdateItem",
                            update.key().clone(),
                            cond(update.condition_expression()),
                        )
                    } else if let Some(delete) = item.delete() {
                        (
                            "DeleteItem",
                            delete.key().clone(),
                            cond(delete.condition_expression()),
                        )
                    } else {
                        let check = item.condition_check();
                        (
                            "ConditionCheckItem",
                            check.map(|c| c.key().clone()).unwrap_or_default(),
                            check.map(|c| c.condition_expression().to_string()),
                        )
                    }
                })
                .collect(),
        );
    }
    if let Some(i) = input.downcast_ref::<BatchWriteItemInput>() {
        return Some(
            i.request_items()
                .into_iter()
                .flat_map(|m| m.values().flatten())
                .filter_map(|w| {
                    w.put_request()
                        .map(|p| ("PutItem", p.item().clone(), None))
                        .or_else(|| {
                            w.delete_request()
                                .map(|d| ("DeleteItem", d.key().clone(), None))
                        })
                })
                .collect(),
        );
    }
    if let Some(i) = input.downcast_ref::<BatchGetItemInput>() {
        return Some(
            i.request_items()
                .into_iter()
                .flat_map(|m| m.values().flat_map(|k| k.keys()))
                .map(|key| ("GetItem", key.clone(), None))
                .collect(),
        );
    }
    if let Some(i) = input.downcast_ref::<TransactGetItemsInput>() {
        return Some(
            i.transact_items()
                .iter()
                .filter_map(|g| g.get())
                .map(|g| ("GetItem", g.key().clone(), None))
                .collect(),
        );
    }
    // Query, Scan and the rest: keys not read here.
    None
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "kobatela-tests policy recorder"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        let mut actions = Vec::new();
        let mut index = None;
        let keys = keys_of(context.input());
        if context
            .input()
            .downcast_ref::<TransactWriteItemsInput>()
            .is_some()
        {
            // IAM authorises a transaction per item, by the item's action.
            actions.extend(
                keys.iter()
                    .flatten()
                    .map(|(action, _, _)| action.to_string()),
            );
        } else {
            if let Some(query) = context.input().downcast_ref::<QueryInput>() {
                index = query.index_name().map(str::to_string);
            }
            actions.push(op.clone());
        }
        let mut recording = self.0.lock().unwrap();
        *recording.executions.entry(op.clone()).or_default() += 1;
        let current = recording.current.clone();
        let access = recording.by_function.entry(current.clone()).or_default();
        access
            .actions
            .extend(actions.into_iter().map(|a| format!("dynamodb:{a}")));
        access.indexes.extend(index);
        let pks: Vec<String> = match &keys {
            Some(keys) => keys
                .iter()
                .map(|(_, item, _)| string_of(item, "pk"))
                .collect(),
            None => vec![format!("<{op}>")],
        };
        recording
            .leading_keys
            .entry(current.clone())
            .or_default()
            .extend(pks);
        for (action, item, condition) in keys.into_iter().flatten() {
            let pk = string_of(&item, "pk");
            if action != "GetItem" && action != "ConditionCheckItem" && pk.starts_with("AUDIT#") {
                recording.audit_writes.push(AuditWrite {
                    function: current.clone(),
                    action,
                    pk,
                    sk: string_of(&item, "sk"),
                    condition,
                });
            }
        }
        Ok(())
    }
}

async fn in_process(prefix: &str, recorder: &Recorder) -> InProcess {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::config::Builder::from(&config)
        .interceptor(recorder.clone())
        .build();
    recorder.on("setup");
    InProcess::with_client(
        prefix,
        aws_sdk_dynamodb::Client::from_conf(dynamo),
        &[("KOBATELA_ID_BLOCK", "1")],
    )
    .await
}

/// A recorded in-process API on a fresh table (`prefix`), driven through
/// every route and write path (`drive`).
async fn driven(prefix: &str) -> (Recorder, Table) {
    let recorder = Recorder::default();
    let api = in_process(prefix, &recorder).await;
    let table = Table::named(&api.table).await;
    drive(
        &Routed {
            api: &api,
            recorder: &recorder,
        },
        &table,
    )
    .await;
    (recorder, table)
}

/// The function API Gateway routes `path` to: its first segment, except
/// `/audit` (the alerts function) and `/psp/…` (the webhook, or the
/// payments function for `/psp/events/…`).
fn function_of(path: &str) -> &str {
    match path
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
    {
        // GET /audit/{entity}/{id} belongs to the alerts group (staff reads).
        "audit" => "alerts",
        "allowlist" | "certified" => "transactions",
        "psp" if path.starts_with("/psp/webhook") => "psp-webhook",
        // GET /psp/events/{id}: staff read, by the payments function.
        "psp" => "payments",
        first => first,
    }
}

/// A signed webhook of `kind` for `psp_ref`, as the PSP sends it.
async fn webhook(api: &Routed<'_>, event_id: &str, kind: &str, psp_ref: &str) -> Reply {
    api.recorder.on("psp-webhook");
    let body = kobatela_tests::psp_body(event_id, kind, psp_ref);
    let headers = kobatela_tests::psp_headers(&body);
    api.api
        .psp_webhook(&kobatela_tests::header_refs(&headers), &body)
        .await
}

/// The in-process API, with every request labelled with the function that
/// API Gateway would route it to (the first path segment).
struct Routed<'a> {
    api: &'a InProcess,
    recorder: &'a Recorder,
}

impl Routed<'_> {
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        self.recorder.on(function_of(path));
        self.api.call(method, path, headers, body).await
    }
}

impl AdminApi for Routed<'_> {
    fn post_json(&self, path: &str, body: Value) -> impl Future<Output = Reply> + Send {
        self.recorder.on(function_of(path));
        self.api.post(path, body)
    }
}

fn scheduled_event() -> aws_lambda_events::eventbridge::EventBridgeEvent {
    serde_json::from_value(json!({"version": "0", "id": "t", "detail-type": "Scheduled Event", "source": "aws.events", "account": "1", "time": "2030-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}})).unwrap()
}

/// Every route of every function, and the write paths behind them.
async fn drive(api: &Routed<'_>, table: &Table) {
    // users, spend fixtures, mandates: creation and reads.
    let s = MandateSetup::new(api, "50.00").await;
    api.call("GET", &format!("/users/{}", s.sender), &[], None)
        .await
        .expect(200);
    api.call("GET", "/users/999999", &[], None)
        .await
        .expect(404);
    api.call(
        "POST",
        "/spend/allow",
        &[],
        Some(json!({"owner_id": s.beneficiary, "category_id": s.category})),
    )
    .await
    .expect(201);

    // A purchase, its replay, and a read.
    let key = unique("k");
    let bought = api
        .call(
            "POST",
            "/spend/purchases",
            &[("idempotency-key", &key)],
            Some(s.purchase("5.00")),
        )
        .await
        .expect(201);
    api.call(
        "POST",
        "/spend/purchases",
        &[("idempotency-key", &key)],
        Some(s.purchase("5.00")),
    )
    .await
    .expect(201);
    api.call(
        "GET",
        &format!("/spend/purchases/{}", bought.id()),
        &[],
        None,
    )
    .await
    .expect(200);

    // Lists: by sender, beneficiary, party, all.
    for query in [
        format!("?sender_id={}", s.sender),
        format!("?beneficiary_id={}", s.beneficiary),
        format!("?party_id={}", s.sender),
        String::new(),
    ] {
        api.call("GET", &format!("/mandates{query}"), &[], None)
            .await
            .expect(200);
    }
    api.call("GET", &format!("/mandates/{}", s.mandate), &[], None)
        .await
        .expect(200);

    // A purchase that notices its mandate expired (and expires it).
    let late = MandateSetup::new(api, "10.00").await;
    table.backdate_mandate(late.mandate).await;
    api.call(
        "POST",
        "/spend/purchases",
        &[("idempotency-key", &unique("k"))],
        Some(late.purchase("1.00")),
    )
    .await
    .expect_error(403, "MANDATE_EXPIRED");

    // A cleanup that expires one, and the sweep that expires another.
    let overdue = MandateSetup::new(api, "10.00").await;
    table.backdate_mandate(overdue.mandate).await;
    let cleaned = api
        .call("POST", "/mandates/cleanup", &[], Some(json!({})))
        .await
        .expect(202);
    assert_eq!(cleaned.body["expired"], 1, "{}", cleaned.text);
    let swept = MandateSetup::new(api, "10.00").await;
    table.backdate_mandate(swept.mandate).await;
    // And escrows past their deadline: one RELEASABLE (the sweep pays it
    // out), one FUNDED (the sweep raises its alert).
    for deliver in [true, false] {
        let e = EscrowSetup::new(api, "5.00").await;
        api.call(
            "POST",
            &format!("/escrows/{}/deposit", e.escrow),
            &[("idempotency-key", &unique("k"))],
            Some(json!({"amount": "5.00"})),
        )
        .await
        .expect(200);
        if deliver {
            api.call(
                "POST",
                &format!("/escrows/{}/mark-delivered", e.escrow),
                &[],
                None,
            )
            .await
            .expect(200);
        }
        table.backdate_escrow(e.escrow).await;
    }
    api.recorder.on("mandate-expiry");
    let result = mandate_expiry::handle(&api.api.state.store, scheduled_event())
        .await
        .unwrap();
    assert_eq!(result["expired"], 1);
    assert_eq!(result["escrows_released"], 1, "{result}");
    assert_eq!(result["escrows_missed"], 1, "{result}");

    // The ledger check of all the above: read-only but for its run and
    // pointer (and the alerts a mismatch would raise: none here).
    api.recorder.on("ledger-check");
    let result = ledger_check::handle(&api.api.state.store, scheduled_event())
        .await
        .unwrap();
    assert_eq!(result["status"], "DONE", "{result}");
    assert_eq!(result["counts"]["mismatches"], 0, "{result}");

    // The ledger routes: a check started and read; a settlement report
    // presigned, uploaded, reconciled (its unknown reference alerted),
    // listed and read.
    let run = api
        .call("POST", "/ledger/checks", &[], Some(json!({})))
        .await
        .expect(202);
    api.call("GET", &format!("/ledger/checks/{}", run.id()), &[], None)
        .await
        .expect(200);
    let report = format!(
        "psp_ref,amount,currency,status,settled_at\n{},1.00,USD,SETTLED,2020-01-01T00:00:00Z\n",
        unique("PSP-policies")
    )
    .into_bytes();
    let sha = photos::sha256_hex(&report);
    let upload = api
        .call(
            "POST",
            "/ledger/settlements/uploads",
            &[],
            Some(json!({"content_length": report.len(), "sha256": sha})),
        )
        .await
        .expect(201);
    assert_eq!(photos::put_presigned(&upload.body, report, true).await, 200);
    let settled = api
        .call(
            "POST",
            "/ledger/settlements",
            &[],
            Some(json!({"upload_id": sha})),
        )
        .await
        .expect(201);
    assert_eq!(settled.body["unknown_reference"], 1, "{}", settled.text);
    assert_eq!(settled.body["alerts_raised"], 1, "{}", settled.text);
    api.call("GET", "/ledger/settlements", &[], None)
        .await
        .expect(200);
    api.call(
        "GET",
        &format!("/ledger/settlements/{}", settled.id()),
        &[],
        None,
    )
    .await
    .expect(200);

    // API keys: issue, list, revoke.
    let issued = api
        .call(
            "POST",
            "/apikeys",
            &[],
            Some(json!({"name": unique("key"), "scope": "user", "user_id": s.sender})),
        )
        .await
        .expect(201);
    api.call("GET", "/apikeys", &[], None).await.expect(200);
    api.call("DELETE", &format!("/apikeys/{}", issued.id()), &[], None)
        .await
        .expect(204);

    // Escrows: create, read, lists (by client, by provider, all), timeline,
    // a deposit and its replay, every transition, a missed deadline.
    let e = EscrowSetup::with(
        api,
        json!({"amount_total": "20.00",
               "milestones": [{"label": "all", "amount": "20.00", "proof_type": "PHOTO"}]}),
    )
    .await;
    let key = unique("k");
    for _ in 0..2 {
        api.call(
            "POST",
            &format!("/escrows/{}/deposit", e.escrow),
            &[("idempotency-key", &key)],
            Some(json!({"amount": "20.00"})),
        )
        .await
        .expect(200);
    }
    for path in [
        format!("/escrows/{}", e.escrow),
        format!("/escrows?client_id={}", e.client),
        format!("/escrows?provider_id={}", e.provider),
        "/escrows".to_string(),
        format!("/escrows/{}/events", e.escrow),
    ] {
        api.call("GET", &path, &[], None).await.expect(200);
    }
    for action in ["mark-delivered", "check-deadline", "client-approve"] {
        api.call(
            "POST",
            &format!("/escrows/{}/{action}", e.escrow),
            &[],
            None,
        )
        .await
        .expect(200);
    }
    let rejected = EscrowSetup::new(api, "5.00").await;
    api.call(
        "POST",
        &format!("/escrows/{}/client-reject", rejected.escrow),
        &[],
        None,
    )
    .await
    .expect(200);
    let missed = EscrowSetup::new(api, "5.00").await;
    api.call(
        "POST",
        &format!("/escrows/{}/deposit", missed.escrow),
        &[("idempotency-key", &unique("k"))],
        Some(json!({"amount": "5.00"})),
    )
    .await
    .expect(200);
    table.backdate_escrow(missed.escrow).await;
    api.call(
        "POST",
        &format!("/escrows/{}/check-deadline", missed.escrow),
        &[],
        None,
    )
    .await
    .expect(200);

    // Payments: read, by escrow, all.
    let paid = api
        .call(
            "GET",
            &format!("/payments?escrow_id={}", e.escrow),
            &[],
            None,
        )
        .await
        .expect(200);
    let payment = paid.body["items"][0]["id"].as_u64().unwrap();
    api.call("GET", &format!("/payments/{payment}"), &[], None)
        .await
        .expect(200);
    api.call("GET", "/payments", &[], None).await.expect(200);

    // Restricted transfers: allowlist, certification (created, updated), a
    // transfer allowed, its replay, one refused (raising its alert), reads
    // and lists (by sender, by receiver, all).
    let (a, b, c) = (s.sender, s.beneficiary, e.provider);
    api.call(
        "POST",
        "/allowlist",
        &[],
        Some(json!({"owner_id": a, "recipient_id": b})),
    )
    .await
    .expect(201);
    for status in [201, 200] {
        api.call(
            "POST",
            "/certified",
            &[],
            Some(json!({"user_id": c, "level": "gold"})),
        )
        .await
        .expect(status);
    }
    let key = unique("k");
    let mut sent = None;
    for _ in 0..2 {
        sent = Some(
            api.call(
                "POST",
                "/transactions",
                &[("idempotency-key", &key)],
                Some(json!({"sender_id": a, "receiver_id": b, "amount": "3.00"})),
            )
            .await
            .expect(201),
        );
    }
    api.call(
        "POST",
        "/transactions",
        &[("idempotency-key", &unique("k"))],
        Some(json!({"sender_id": b, "receiver_id": a, "amount": "3.00"})),
    )
    .await
    .expect_error(403, "UNAUTHORIZED_TRANSFER");
    for path in [
        format!("/transactions/{}", sent.unwrap().id()),
        format!("/transactions?sender_id={a}"),
        format!("/transactions?receiver_id={b}"),
        "/transactions".to_string(),
    ] {
        api.call("GET", &path, &[], None).await.expect(200);
    }

    // Payees and spends: allow, list, a spend and its replay.
    let p = EscrowSetup::new(api, "10.00").await;
    api.call(
        "POST",
        &format!("/escrows/{}/deposit", p.escrow),
        &[("idempotency-key", &unique("k"))],
        Some(json!({"amount": "10.00"})),
    )
    .await
    .expect(200);
    api.call(
        "POST",
        "/spend/allowed",
        &[],
        Some(
            json!({"escrow_id": p.escrow, "payee_ref": "school", "label": "School",
                    "daily_limit": "5.00", "total_limit": "8.00"}),
        ),
    )
    .await
    .expect(201);
    api.call(
        "GET",
        &format!("/spend/allowed?escrow_id={}", p.escrow),
        &[],
        None,
    )
    .await
    .expect(200);
    let key = unique("k");
    for _ in 0..2 {
        api.call(
            "POST",
            "/spend",
            &[("idempotency-key", &key)],
            Some(json!({"escrow_id": p.escrow, "payee_ref": "school", "amount": "1.00"})),
        )
        .await
        .expect(200);
    }

    // Staff reads: an audit trail, and alerts (one raised as a write path
    // would raise it, so that a page reads items).
    table
        .raise_alert(&shared::store::alerts::NewAlert {
            id: shared::domain::ids::Id::new(1).unwrap(),
            alert_type: shared::domain::alert::AlertType::PaymentFailed,
            cause: unique("policies"),
            message: "A payment failed.".into(),
            actor_user_id: None,
            payload: json!({}),
            created_at: shared::domain::time::Timestamp::now(),
        })
        .await
        .unwrap();
    // A new support key, first seen by this function: its lookup is a read
    // the function makes on a cold start.
    let support = api
        .call(
            "POST",
            "/apikeys",
            &[],
            Some(json!({"name": unique("support"), "scope": "support"})),
        )
        .await
        .expect(201)
        .body["key"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        format!("/audit/mandate/{}?limit=1", s.mandate),
        "/alerts".to_string(),
        "/alerts?type=PAYMENT_FAILED".to_string(),
        "/alerts?acknowledged=false".to_string(),
    ] {
        api.recorder.on(function_of(&path));
        api.api
            .call_as(&support, "GET", &path, None)
            .await
            .expect(200);
    }
    // Acknowledged, then again (unchanged).
    for _ in 0..2 {
        api.recorder.on("alerts");
        api.api
            .call_as(&support, "POST", "/alerts/1/ack", None)
            .await
            .expect(200);
    }

    // PSP: a milestone payout failed by the webhook (the consumer gives the
    // money back, the milestone back to APPROVED, one alert), executed
    // again, settled; a contradiction, an unknown reference, a duplicate;
    // the event read back.
    let m = EscrowSetup::with(
        api,
        json!({"amount_total": "10.00",
               "milestones": [{"label": "m", "amount": "10.00", "proof_type": "PHOTO"}]}),
    )
    .await;
    api.call(
        "POST",
        &format!("/escrows/{}/deposit", m.escrow),
        &[("idempotency-key", &unique("k"))],
        Some(json!({"amount": "10.00"})),
    )
    .await
    .expect(200);
    // The proofs' payout hook (no function calls it yet).
    api.recorder.on("setup");
    let paid = api.api.pay_milestone(m.escrow, 1).await;
    let failed = unique("evt");
    webhook(api, &failed, "payment.failed", &paid.psp_ref)
        .await
        .expect(200);
    webhook(
        api,
        &unique("evt"),
        "payment.settled",
        &unique("PSP-nobody"),
    )
    .await
    .expect(200);
    api.recorder.on("psp-events");
    api.api.consume_psp().await;
    let retried = api
        .call("POST", &format!("/payments/execute/{}", paid.id), &[], None)
        .await
        .expect(200);
    let new_ref = retried.body["psp_ref"].as_str().unwrap().to_string();
    let settled = unique("evt");
    webhook(api, &settled, "payment.settled", &new_ref)
        .await
        .expect(200);
    webhook(api, &unique("evt"), "payment.failed", &new_ref)
        .await
        .expect(200);
    assert_eq!(
        webhook(api, &settled, "payment.settled", &new_ref)
            .await
            .expect(200)
            .body["status"],
        "duplicate"
    );
    api.recorder.on("psp-events");
    api.api.consume_psp().await;
    api.call("GET", &format!("/psp/events/{failed}"), &[], None)
        .await
        .expect(200);
    api.call("GET", "/psp/events?status=CONFLICT", &[], None)
        .await
        .expect(200);
    api.call("GET", "/payments?status=ERROR", &[], None)
        .await
        .expect(200);

    // Proofs: an upload, its PUT, an auto-approved proof and its read; an
    // old client's proof rejected, another approved.
    let e = EscrowSetup::with(
        api,
        json!({"amount_total": "30.00", "milestones": [
            {"label": "a", "amount": "10.00", "proof_type": "PHOTO"},
            {"label": "b", "amount": "10.00", "proof_type": "PHOTO"},
            {"label": "c", "amount": "10.00", "proof_type": "PHOTO"}]}),
    )
    .await;
    api.call(
        "POST",
        &format!("/escrows/{}/deposit", e.escrow),
        &[("idempotency-key", &unique("k"))],
        Some(json!({"amount": "30.00"})),
    )
    .await
    .expect(200);
    let bytes = photos::unique_bytes(photos::photo(10, None));
    let upload = api
        .call(
            "POST",
            "/proofs/uploads",
            &[],
            Some(photos::upload_body(e.escrow, 1, "image/jpeg", &bytes)),
        )
        .await
        .expect(201);
    assert_eq!(photos::put_presigned(&upload.body, bytes, true).await, 200);
    let approved = api
        .call(
            "POST",
            "/proofs",
            &[],
            Some(
                json!({"escrow_id": e.escrow, "milestone_idx": 1, "type": "PHOTO",
                        "upload_id": upload.body["upload_id"]}),
            ),
        )
        .await
        .expect(201);
    assert_eq!(approved.body["status"], "APPROVED");
    api.call("GET", &format!("/proofs/{}", approved.id()), &[], None)
        .await
        .expect(200);
    for decision in ["rejected", "approved"] {
        let old = api
            .call(
                "POST",
                "/proofs",
                &[],
                Some(
                    json!({"escrow_id": e.escrow, "milestone_idx": 2, "type": "PHOTO",
                            "storage_url": "https://example.com/p.jpg",
                            "sha256": photos::sha256_hex(unique("old").as_bytes())}),
                ),
            )
            .await
            .expect(201);
        api.call(
            "POST",
            &format!("/proofs/{}/decision", old.id()),
            &[],
            Some(json!({"decision": decision})),
        )
        .await
        .expect(200);
    }
    // The lists: the review queue, and one escrow's proofs.
    for path in [
        "/proofs?status=PENDING".to_string(),
        format!("/proofs?escrow_id={}", e.escrow),
    ] {
        api.call("GET", &path, &[], None).await.expect(200);
    }

    // Health touches nothing.
    api.call("GET", "/health", &[], None).await.expect(200);

    // The payout dispatcher, over the stream of everything above, with a
    // PSP that refuses every payout: its widest path (the escrow read for a
    // milestone, the money back, the alert). Stream reads are the event
    // source's, through a client the recorder does not see.
    api.recorder.on("payout-dispatch");
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut stream = StreamSource::open(
        &config,
        &aws_sdk_dynamodb::Client::new(&config),
        &api.api.table,
        StartAt::Oldest,
    )
    .await
    .unwrap();
    let dispatcher = Dispatcher::new(api.api.state.store.clone(), Arc::new(RefusingPsp));
    let handler = move |event: aws_lambda_events::dynamodb::Event| {
        let dispatcher = dispatcher.clone();
        async move { Ok::<_, String>(dispatcher.handle(event).await) }
    };
    let dispatched = stream.deliver_all(&handler, 100).await.unwrap();
    assert!(dispatched > 0);
}

/// A PSP that refuses every payout, definitively.
struct RefusingPsp;

impl Psp for RefusingPsp {
    fn submit_payout<'a>(&'a self, _: &'a PayoutRequest) -> PayoutFuture<'a> {
        Box::pin(async {
            PayoutAnswer::Refused {
                reason: "ACCOUNT_CLOSED".into(),
            }
        })
    }
}

/// The Sid of the Deny that keeps audit entries from being changed.
const AUDIT_DENY_SID: &str = "AuditEntriesAreNeverUpdatedOrDeleted";

/// One DynamoDB statement of a function's policies in `template.yaml`.
#[derive(Debug)]
struct Statement {
    sid: Option<String>,
    allow: bool,
    actions: BTreeSet<String>,
    /// As written, tag included: `!GetAtt Table.Arn`, `!Sub ${Table.Arn}/index/gsi1`.
    resources: Vec<String>,
    condition: serde_yaml::Value,
}

/// Each function of `template.yaml`: its resource name, its `Binary`, and
/// the statements of its policies that name DynamoDB actions.
fn dynamo_statements() -> Vec<(String, String, Vec<Statement>)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap().to_string();
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_string();
        let mut statements = Vec::new();
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let actions: BTreeSet<String> = match &statement["Action"] {
                    serde_yaml::Value::String(a) => BTreeSet::from([a.clone()]),
                    serde_yaml::Value::Sequence(list) => list
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect(),
                    other => panic!("{name:?}: Action {other:?}"),
                };
                if !actions.iter().any(|a| a.starts_with("dynamodb:")) {
                    continue;
                }
                assert!(
                    actions.iter().all(|a| a.starts_with("dynamodb:")),
                    "{name:?} mixes services in one statement: {actions:?}"
                );
                let resources = match &statement["Resource"] {
                    serde_yaml::Value::Sequence(list) => list.clone(),
                    one => vec![one.clone()],
                };
                let resources = resources
                    .iter()
                    .map(|resource| match resource {
                        serde_yaml::Value::Tagged(tagged) => {
                            format!("{} {}", tagged.tag, tagged.value.as_str().unwrap_or(""))
                        }
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<String>>();
                let allow = match statement["Effect"].as_str() {
                    Some("Allow") => true,
                    Some("Deny") => false,
                    other => panic!("{name:?}: Effect {other:?}"),
                };
                statements.push(Statement {
                    sid: statement["Sid"].as_str().map(str::to_string),
                    allow,
                    actions,
                    resources,
                    condition: statement["Condition"].clone(),
                });
            }
        }
        out.push((name, binary, statements));
    }
    out
}

/// The template's DynamoDB grants per function (`Binary`): Allow actions,
/// and the index names of `${Table.Arn}/index/<name>` resources.
fn granted() -> BTreeMap<String, Access> {
    let mut out = BTreeMap::new();
    for (name, binary, statements) in dynamo_statements() {
        let mut access = Access::default();
        for statement in statements
            .iter()
            .filter(|s| s.allow && !reads_the_stream(&name, s))
        {
            access.actions.extend(statement.actions.iter().cloned());
            for text in &statement.resources {
                assert!(
                    !text.contains("index/*"),
                    "{name:?} grants every index: {text}"
                );
                if let Some((_, index)) = text.split_once("/index/") {
                    access.indexes.insert(index.to_string());
                }
            }
        }
        out.insert(binary, access);
    }
    out
}

/// The stream reads of a stream-triggered function: the Lambda service
/// issues them with the function's role, its code never does, so the
/// recording cannot see them. Only on the table's stream, only reads.
const STREAM_READS: [&str; 4] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];

fn reads_the_stream(function: &str, statement: &Statement) -> bool {
    let on_stream =
        |r: &String| r == "!GetAtt Table.StreamArn" || r == "!Sub ${Table.Arn}/stream/*";
    if !statement.resources.iter().any(on_stream) {
        return false;
    }
    assert!(
        statement.resources.iter().all(on_stream)
            && statement
                .actions
                .iter()
                .all(|a| STREAM_READS.contains(&a.as_str())),
        "{function}: a stream statement grants more than stream reads: {statement:?}"
    );
    true
}

/// The domain-events function reads the stream (through the Lambda event
/// source) and may put events on its bus only: no table item, no other bus.
#[test]
fn domain_events_reads_the_stream_and_puts_on_its_bus_only() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let function = &template["Resources"]["DomainEventsFunction"];
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("domain-events")
    );
    let (_, _, statements) = dynamo_statements()
        .into_iter()
        .find(|(_, binary, _)| binary == "domain-events")
        .expect("domain-events in template.yaml");
    assert!(!statements.is_empty());
    for statement in &statements {
        assert!(statement.allow);
        assert!(reads_the_stream("domain-events", statement));
    }
    assert_eq!(
        granted()["domain-events"],
        Access::default(),
        "no table access"
    );
    let mut events_actions = Vec::new();
    for policy in function["Properties"]["Policies"].as_sequence().unwrap() {
        for statement in policy["Statement"].as_sequence().unwrap() {
            let actions: Vec<String> = match &statement["Action"] {
                serde_yaml::Value::String(a) => vec![a.clone()],
                serde_yaml::Value::Sequence(list) => list
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect(),
                other => panic!("Action {other:?}"),
            };
            if actions.iter().any(|a| a.starts_with("events:")) {
                assert_eq!(actions, ["events:PutEvents"]);
                let resource = match &statement["Resource"] {
                    serde_yaml::Value::Tagged(t) => {
                        format!("{} {}", t.tag, t.value.as_str().unwrap_or(""))
                    }
                    other => format!("{other:?}"),
                };
                assert_eq!(resource, "!GetAtt DomainEventBus.Arn");
                events_actions.extend(actions);
            }
        }
    }
    assert_eq!(events_actions, ["events:PutEvents"]);
}

/// Whether a condition expression holds only for an item that does not
/// exist yet: `attribute_not_exists(pk)` alone, or as one of its ANDed terms.
fn creates_only(condition: Option<&str>) -> bool {
    let Some(condition) = condition else {
        return false;
    };
    let words: Vec<String> = condition
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .map(str::to_uppercase)
        .collect();
    if words.iter().any(|w| w == "OR" || w == "NOT") {
        return false;
    }
    condition
        .split(" AND ")
        .chain(condition.split(" and "))
        .any(|term| term.trim() == "attribute_not_exists(pk)")
}

#[test]
fn creates_only_accepts_a_required_attribute_not_exists_only() {
    assert!(creates_only(Some("attribute_not_exists(pk)")));
    assert!(creates_only(Some("attribute_not_exists(pk) AND #s = :s")));
    assert!(!creates_only(None));
    assert!(!creates_only(Some("#s = :s")));
    assert!(!creates_only(Some("attribute_not_exists(pk) OR #s = :s")));
    assert!(!creates_only(Some("NOT attribute_not_exists(pk)")));
    assert!(!creates_only(Some("attribute_not_exists(sk)")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_entries_are_only_ever_created() {
    let (recorder, table) = driven("auditputs").await;

    let writes = recorder.audit_writes();
    println!("{} audit writes", writes.len());
    assert!(
        writes.len() >= 80,
        "only {} audit writes seen: the recorder or drive() lost some",
        writes.len()
    );
    let wrong: Vec<String> = writes
        .iter()
        .filter(|w| w.action != "PutItem" || !creates_only(w.condition.as_deref()))
        .map(|w| {
            format!(
                "{}: {} of {} {} if {:?}",
                w.function, w.action, w.pk, w.sk, w.condition
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "audit writes that may change an entry:\n{}",
        wrong.join("\n")
    );
    // The recorder saw every audit entry the table holds: nothing reaches
    // the audit log around it.
    let seen: BTreeSet<(String, String)> = writes.into_iter().map(|w| (w.pk, w.sk)).collect();
    let stored = table.items_with_prefix("AUDIT#").await;
    assert!(stored.len() >= 80, "{} audit entries stored", stored.len());
    for item in &stored {
        let key = (string_of(item, "pk"), string_of(item, "sk"));
        assert!(seen.contains(&key), "audit entry written unseen: {key:?}");
    }
}

#[test]
fn no_function_may_update_or_delete_an_audit_entry() {
    let functions = dynamo_statements();
    let granted_anywhere: BTreeSet<String> = functions
        .iter()
        .flat_map(|(_, _, statements)| statements.iter().filter(|s| s.allow))
        .flat_map(|s| s.actions.iter().cloned())
        .collect();
    // Update and Delete always; the batch and PartiQL forms that can change
    // or remove an item, if any function is ever granted one.
    let mut must_deny = BTreeSet::from([
        "dynamodb:UpdateItem".to_string(),
        "dynamodb:DeleteItem".to_string(),
    ]);
    for action in [
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
    ] {
        if granted_anywhere.contains(action) {
            must_deny.insert(action.to_string());
        }
    }
    let writes = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
    ];
    let mut writers = 0;
    let mut wrong = Vec::new();
    for (name, _, statements) in &functions {
        let writes_something = statements
            .iter()
            .filter(|s| s.allow)
            .any(|s| writes.iter().any(|w| s.actions.contains(*w)));
        if !writes_something {
            continue;
        }
        writers += 1;
        let denied = statements.iter().any(|s| {
            s.sid.as_deref() == Some(AUDIT_DENY_SID)
                && !s.allow
                && s.actions.is_superset(&must_deny)
                && s.resources == ["!GetAtt Table.Arn"]
                && s.condition["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"]
                    .as_sequence()
                    .is_some_and(|keys| keys.iter().any(|k| k.as_str() == Some("AUDIT#*")))
        });
        if !denied {
            wrong.push(format!(
                "{name}: no Deny {AUDIT_DENY_SID} of {must_deny:?} on AUDIT#* leading keys"
            ));
        }
    }
    assert!(writers >= 10, "only {writers} writing functions found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The public webhook's DynamoDB Allow is confined by leading key to the
/// items its code touches, and those are PSP event items only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_is_confined_to_psp_event_items() {
    let (recorder, _) = driven("webhookkeys").await;

    // What its calls touched, as prefixes up to the first `#`.
    let touched = recorder.leading_keys("psp-webhook");
    println!("psp-webhook touched {touched:?}");
    assert!(touched.len() >= 4, "{touched:?}");
    let prefixes: BTreeSet<String> = touched
        .iter()
        .map(|pk| match pk.split_once('#') {
            Some((kind, _)) => format!("{kind}#*"),
            None => pk.clone(),
        })
        .collect();
    let psp_event = format!(
        "{}*",
        shared::store::keys::psp_event("e")
            .pk
            .split_inclusive('#')
            .next()
            .unwrap()
    );
    assert_eq!(prefixes, BTreeSet::from([psp_event]));

    // The template: every DynamoDB Allow of the webhook lists exactly those.
    let (name, _, statements) = dynamo_statements()
        .into_iter()
        .find(|(_, binary, _)| binary == "psp-webhook")
        .expect("psp-webhook in template.yaml");
    let allows: Vec<&Statement> = statements.iter().filter(|s| s.allow).collect();
    assert!(!allows.is_empty(), "{name}: no DynamoDB Allow");
    for allow in allows {
        let condition = allow.condition.as_mapping().expect("a Condition");
        assert_eq!(condition.len(), 1, "{name}: {condition:?}");
        let listed: BTreeSet<String> = allow.condition["ForAllValues:StringLike"]
            ["dynamodb:LeadingKeys"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name}: no ForAllValues:StringLike LeadingKeys"))
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, prefixes, "{name}: {:?}", allow.actions);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_is_granted_exactly_what_it_calls() {
    let (recorder, _) = driven("policies").await;

    let mut recorded = recorder.recorded();
    recorded.remove("setup");
    let granted = granted();
    let mut wrong = Vec::new();
    for (function, grant) in &granted {
        let used = recorded.remove(function).unwrap_or_default();
        if used != *grant {
            wrong.push(format!(
                "{function}: calls {:?} on indexes {:?}, but template.yaml grants {:?} on indexes {:?}",
                used.actions, used.indexes, grant.actions, grant.indexes
            ));
        }
        println!(
            "{function}: {:?} on the table and indexes {:?}",
            grant.actions, grant.indexes
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        recorded.is_empty(),
        "calls by no function of the template: {recorded:?}"
    );
}

#[tokio::test]
async fn repeated_unknown_keys_cost_one_read_and_stay_unauthorized() {
    let recorder = Recorder::default();
    let api = in_process("badkeys", &recorder).await;
    let app = shared::http::app(users::router(api.state.clone()));
    let bad = shared::auth::generate_secret();
    let before = recorder.executions("GetItem");
    for _ in 0..5 {
        use tower::ServiceExt;
        let request = http::Request::builder()
            .uri("/users/1")
            .header("authorization", format!("Bearer {bad}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let reply = Reply::read(app.clone().oneshot(request).await.unwrap()).await;
        reply.expect_error(401, "UNAUTHORIZED");
    }
    assert_eq!(
        recorder.executions("GetItem") - before,
        1,
        "one table read for five tries of one bad key"
    );
    // The admin key still works (a known key is not hurt by the negative cache).
    api.get("/users/1").await.expect(404);
}

/// The proofs function alone reaches the bucket, and only its two prefixes:
/// GetObject and PutObject on `uploads/*` (presigned PUTs, the server's read)
/// and `proofs/*` (the kept copy). Its bucket comes from the template. The
/// ledger function reaches `settlements/*` only (settlement reports).
#[test]
fn only_the_proofs_function_reaches_the_proof_files() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut seen = false;
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap();
        let mut s3 = BTreeSet::new();
        let mut resources = BTreeSet::new();
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let actions: Vec<String> = match &statement["Action"] {
                    serde_yaml::Value::String(a) => vec![a.clone()],
                    serde_yaml::Value::Sequence(list) => list
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect(),
                    _ => vec![],
                };
                if !actions.iter().any(|a| a.starts_with("s3:")) {
                    continue;
                }
                s3.extend(actions);
                for r in statement["Resource"].as_sequence().into_iter().flatten() {
                    if let serde_yaml::Value::Tagged(tagged) = r {
                        resources.insert(tagged.value.as_str().unwrap_or("").to_string());
                    }
                }
            }
        }
        if binary == "proofs" {
            seen = true;
            assert_eq!(
                s3,
                BTreeSet::from(["s3:GetObject".to_string(), "s3:PutObject".to_string()])
            );
            assert_eq!(
                resources,
                BTreeSet::from([
                    "${ProofBucket.Arn}/proofs/*".to_string(),
                    "${ProofBucket.Arn}/uploads/*".to_string()
                ])
            );
            let bucket =
                &resource["Properties"]["Environment"]["Variables"]["KOBATELA_PROOF_BUCKET"];
            assert!(matches!(bucket, serde_yaml::Value::Tagged(_)), "{name:?}");
        } else if binary == "ledger" {
            // The settlement reports, their own prefix of the bucket.
            assert_eq!(
                s3,
                BTreeSet::from(["s3:GetObject".to_string(), "s3:PutObject".to_string()])
            );
            assert_eq!(
                resources,
                BTreeSet::from(["${ProofBucket.Arn}/settlements/*".to_string()])
            );
        } else {
            assert!(s3.is_empty(), "{name:?} reaches S3: {s3:?}");
        }
    }
    assert!(seen, "no proofs function in template.yaml");
}

/// Stream grants go with a stream event source, and only read the stream:
/// a function that is fed by the table's stream may read it (Lambda's event
/// source mapping uses the function's role), no other may, and none gets
/// more than the four read actions.
#[test]
fn the_stream_is_read_only_by_its_consumers() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let read: BTreeSet<String> = [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ]
    .map(String::from)
    .into();
    let mut consumers = 0;
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let fed = resource["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .any(|(_, event)| event["Type"].as_str() == Some("DynamoDB"));
        let mut granted = BTreeSet::new();
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let resource = format!("{:?}", statement["Resource"]);
                let on_stream = resource.contains("StreamArn") || resource.contains("/stream/");
                if !on_stream {
                    continue;
                }
                assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{name:?}");
                for action in statement["Action"].as_sequence().unwrap() {
                    granted.insert(action.as_str().unwrap().to_string());
                }
            }
        }
        if fed {
            consumers += 1;
            assert_eq!(granted, read, "{name:?} is fed by the stream");
        } else {
            assert!(granted.is_empty(), "{name:?} reads the stream: {granted:?}");
        }
    }
    assert!(consumers >= 1, "the payout dispatcher reads the stream");
}

/// The console serves bytes it holds: no policy at all (its role keeps only
/// what SAM gives every function, its logs), no pepper, and of the bucket
/// only the name, for the page's CSP.
#[test]
fn the_console_is_granted_nothing() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let (_, console) = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some("console"))
        .expect("a console function in template.yaml");
    let properties = &console["Properties"];
    assert!(
        properties.get("Policies").is_none(),
        "{:?}",
        properties["Policies"]
    );
    assert!(properties.get("Role").is_none());
    let variables: Vec<&str> = properties["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(variables, ["KOBATELA_PROOF_BUCKET"]);
    let routes: BTreeSet<(&str, &str)> = properties["Events"]
        .as_mapping()
        .unwrap()
        .values()
        .map(|e| {
            assert_eq!(e["Type"].as_str(), Some("HttpApi"));
            (
                e["Properties"]["Method"].as_str().unwrap(),
                e["Properties"]["Path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        BTreeSet::from([("ANY", "/console"), ("ANY", "/console/{proxy+}")])
    );
}
