//! Least privilege, checked against the code: every function's DynamoDB
//! policy in `template.yaml` grants exactly the actions its handlers issue
//! and exactly the indexes they query. A recording interceptor on the client
//! sees every call while each function's routes (and the scheduled sweep)
//! are driven in-process, through scenarios that reach every write path: a
//! purchase that notices an expired mandate, a cleanup and a sweep that
//! expire one, a key revocation, an idempotent replay. `TransactWriteItems`
//! counts as its items' actions, as IAM authorises it per item.
//!
//! Also: unknown API keys are remembered briefly, so a flood of bad keys
//! costs one table read.
//!
//! Needs the emulator (`AWS_ENDPOINT_URL`, dummy credentials) and
//! `KOBATELA_API_KEY_PEPPER`; the template checks do not.

use aws_sdk_dynamodb::operation::{
    query::QueryInput, transact_write_items::TransactWriteItemsInput,
};
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{context::BeforeSerializationInterceptorContextRef, Intercept},
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::ConfigBag;
use kobatela_tests::{
    faults::operation, photos, unique, AdminApi, EscrowSetup, InProcess, MandateSetup, Reply, Table,
};
use serde_json::{json, Value};
use std::{
    collections::{BTreeMap, BTreeSet},
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

#[derive(Debug, Default)]
struct Recording {
    /// The function whose code is running now (calls are sequential).
    current: String,
    by_function: BTreeMap<String, Access>,
    /// Executions per operation name, whatever the function.
    executions: BTreeMap<String, u64>,
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
        if let Some(input) = context.input().downcast_ref::<TransactWriteItemsInput>() {
            for item in input.transact_items() {
                actions.push(
                    if item.put().is_some() {
                        "PutItem"
                    } else if item.update().is_some() {
                        "UpdateItem"
                    } else if item.delete().is_some() {
                        "DeleteItem"
                    } else {
                        "ConditionCheckItem"
                    }
                    .to_string(),
                );
            }
        } else {
            if let Some(query) = context.input().downcast_ref::<QueryInput>() {
                index = query.index_name().map(str::to_string);
            }
            actions.push(op.clone());
        }
        let mut recording = self.0.lock().unwrap();
        *recording.executions.entry(op).or_default() += 1;
        let current = recording.current.clone();
        let access = recording.by_function.entry(current).or_default();
        access
            .actions
            .extend(actions.into_iter().map(|a| format!("dynamodb:{a}")));
        access.indexes.extend(index);
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
    ] {
        api.recorder.on(function_of(&path));
        api.api
            .call_as(&support, "GET", &path, None)
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
    let (_, paid) = api
        .api
        .state
        .store
        .pay_milestone(
            shared::domain::ids::Id::new(m.escrow).unwrap(),
            1,
            |_, _| Ok(vec![]),
            &shared::store::audit::Actor::System,
        )
        .await
        .unwrap();
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

    // Health touches nothing.
    api.call("GET", "/health", &[], None).await.expect(200);
}

/// The template's DynamoDB grants per function (`Binary`): Allow actions,
/// and the index names of `${Table.Arn}/index/<name>` resources.
fn granted() -> BTreeMap<String, Access> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_string();
        let mut access = Access::default();
        let mut denies_audit_changes = false;
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
                    other => panic!("{name:?}: Action {other:?}"),
                };
                let dynamo: Vec<String> = actions
                    .into_iter()
                    .filter(|a| a.starts_with("dynamodb:"))
                    .collect();
                if dynamo.is_empty() {
                    continue;
                }
                if statement["Effect"].as_str() == Some("Deny") {
                    let leading =
                        &statement["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"];
                    denies_audit_changes = dynamo.contains(&"dynamodb:UpdateItem".to_string())
                        && dynamo.contains(&"dynamodb:DeleteItem".to_string())
                        && leading
                            .as_sequence()
                            .is_some_and(|l| l.iter().any(|k| k.as_str() == Some("AUDIT#*")));
                    continue;
                }
                access.actions.extend(dynamo);
                let resources = match &statement["Resource"] {
                    serde_yaml::Value::Sequence(list) => list.clone(),
                    one => vec![one.clone()],
                };
                for resource in resources {
                    let text = match &resource {
                        serde_yaml::Value::Tagged(tagged) => {
                            format!("{} {}", tagged.tag, tagged.value.as_str().unwrap_or(""))
                        }
                        other => format!("{other:?}"),
                    };
                    assert!(
                        !text.contains("index/*"),
                        "{name:?} grants every index: {text}"
                    );
                    if let Some((_, index)) = text.split_once("/index/") {
                        access.indexes.insert(index.to_string());
                    }
                }
            }
        }
        if !access.actions.is_empty() {
            assert!(
                denies_audit_changes,
                "{name:?} may update or delete audit entries (no Deny on AUDIT#*)"
            );
        }
        out.insert(binary, access);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_is_granted_exactly_what_it_calls() {
    let recorder = Recorder::default();
    let api = in_process("policies", &recorder).await;
    let table = Table::named(&api.table).await;
    drive(
        &Routed {
            api: &api,
            recorder: &recorder,
        },
        &table,
    )
    .await;

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
/// and `proofs/*` (the kept copy). Its bucket comes from the template.
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
        } else {
            assert!(s3.is_empty(), "{name:?} reaches S3: {s3:?}");
        }
    }
    assert!(seen, "no proofs function in template.yaml");
}
