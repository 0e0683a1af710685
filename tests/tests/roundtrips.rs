//! What a purchase costs, measured, and the retry path on
//! `TransactionConflict`, proven by fault injection.
//!
//! Each test builds its own state in-process on a fresh table of the emulator,
//! with a DynamoDB client carrying a `Meter` interceptor, and drives the API
//! through the functions' own apps (`shared::http::app(spend::router(..))`…)
//! with `tower::ServiceExt::oneshot`. So the meter counts exactly the requests
//! of this state's handlers, whatever else runs on the emulator.
//!
//! - Steady state: round trips per purchase by operation, and write units:
//!   the emulator's `ConsumedCapacity` (moto answers an empty list) and
//!   DynamoDB's price computed from each `TransactWriteItems` request.
//! - Conflicts: real DynamoDB cancels contended transactions with the reason
//!   `TransactionConflict`; the emulator never does. The meter sends chosen
//!   `TransactWriteItems` calls to a tiny local server answering exactly what
//!   DynamoDB answers then, instead of the emulator.
//!
//! Needs the emulator (`AWS_ENDPOINT_URL` and the dummy credentials).

use aws_sdk_dynamodb::{
    operation::transact_write_items::{
        TransactWriteItemsError, TransactWriteItemsInput, TransactWriteItemsOutput,
    },
    types::{AttributeValue, Put, TransactWriteItem, Update},
    Client,
};
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{
            context::{
                AfterDeserializationInterceptorContextRef,
                BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
                BeforeTransmitInterceptorContextRef,
            },
            Intercept,
        },
        orchestrator::Metadata,
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::ConfigBag;
use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    Router,
};
use serde_json::{json, Value};
use shared::{
    auth::{generate_secret, visible_prefix},
    config::Config,
    domain::{access::Role, ids::Id},
    store::{apikeys::NewApiKey, audit::Actor, schema::ensure_table, transact::Backoff},
    AppState, SharedState,
};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};
use tower::ServiceExt;

type Item = HashMap<String, AttributeValue>;

const TRANSACT: &str = "TransactWriteItems";
const BATCH_GET: &str = "BatchGetItem";
const GET: &str = "GetItem";
const UPDATE: &str = "UpdateItem";

/// Ids reserved per counter round trip in these tests (`KOBATELA_ID_BLOCK`).
const ID_BLOCK: u64 = 100;

// ---------------------------------------------------------------------------
// The meter: counts requests per operation, prices transactions, and injects
// conflicts.

/// One item of a `TransactWriteItems` request, for pricing.
#[derive(Debug, Clone)]
enum PricedItem {
    /// A Put: its size, from the request.
    Put(usize),
    /// An Update, Delete or ConditionCheck: DynamoDB prices the stored item,
    /// which the request does not carry; read it back to price it.
    Stored { kind: &'static str, key: Item },
}

#[derive(Debug, Default)]
struct Tally {
    /// Operation executions (`send()` calls), by operation name.
    executions: BTreeMap<String, u64>,
    /// Attempts (the SDK retries within one execution), by operation name.
    attempts: BTreeMap<String, u64>,
    /// The items of every `TransactWriteItems` request.
    transactions: Vec<Vec<PricedItem>>,
    /// `TransactWriteItems` outputs seen, and what their `ConsumedCapacity` said.
    transact_outputs: u64,
    consumed_entries: u64,
    consumed_units: f64,
}

#[derive(Debug, Default)]
struct MeterState {
    tally: Mutex<Tally>,
    /// `TransactWriteItems` calls still to answer with a conflict (`u64::MAX`: all).
    conflicts: AtomicU64,
    /// Where conflicted calls go instead of the emulator.
    conflict_server: Mutex<Option<String>>,
    /// Calls sent to the conflict server.
    conflicted: AtomicU64,
}

#[derive(Debug, Clone, Default)]
struct Meter(Arc<MeterState>);

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| m.name().to_string())
        .unwrap_or_else(|| "?".into())
}

impl Meter {
    fn tally<T>(&self, f: impl FnOnce(&mut Tally) -> T) -> T {
        f(&mut self.0.tally.lock().unwrap())
    }

    fn reset(&self) {
        self.tally(|t| *t = Tally::default());
        self.0.conflicted.store(0, Ordering::SeqCst);
    }

    fn executions(&self, op: &str) -> u64 {
        self.tally(|t| t.executions.get(op).copied().unwrap_or(0))
    }

    /// Answers the next `n` transactions with a conflict (`u64::MAX`: all).
    fn conflict_next(&self, n: u64) {
        self.0.conflicts.store(n, Ordering::SeqCst);
    }

    fn conflicted(&self) -> u64 {
        self.0.conflicted.load(Ordering::SeqCst)
    }

    /// Takes one conflict, if any is left.
    fn take_conflict(&self) -> bool {
        self.0
            .conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                0 => None,
                u64::MAX => Some(u64::MAX),
                n => Some(n - 1),
            })
            .is_ok()
    }
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "kobatela-tests meter"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        let priced = context
            .input()
            .downcast_ref::<TransactWriteItemsInput>()
            .map(|input| {
                input
                    .transact_items()
                    .iter()
                    .map(priced_item)
                    .collect::<Vec<_>>()
            });
        self.tally(|t| {
            *t.executions.entry(op).or_default() += 1;
            t.transactions.extend(priced);
        });
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        self.tally(|t| *t.attempts.entry(op).or_default() += 1);
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if operation(cfg) != TRANSACT || !self.take_conflict() {
            return Ok(());
        }
        let server = self
            .0
            .conflict_server
            .lock()
            .unwrap()
            .clone()
            .ok_or("a conflict was asked for, but no conflict server runs")?;
        context.request_mut().set_uri(server)?;
        self.0.conflicted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(output) = context.output_or_error() {
            if let Some(output) = output.downcast_ref::<TransactWriteItemsOutput>() {
                let entries = output.consumed_capacity();
                let units: f64 = entries
                    .iter()
                    .map(|c| {
                        c.capacity_units()
                            .or(c.write_capacity_units())
                            .unwrap_or(0.0)
                    })
                    .sum();
                self.tally(|t| {
                    t.transact_outputs += 1;
                    t.consumed_entries += entries.len() as u64;
                    t.consumed_units += units;
                });
            }
        }
        Ok(())
    }
}

fn priced_item(item: &TransactWriteItem) -> PricedItem {
    if let Some(put) = item.put() {
        return PricedItem::Put(item_size(put.item()));
    }
    let (kind, key) = if let Some(update) = item.update() {
        ("Update", update.key().clone())
    } else if let Some(delete) = item.delete() {
        ("Delete", delete.key().clone())
    } else if let Some(check) = item.condition_check() {
        ("ConditionCheck", check.key().clone())
    } else {
        ("?", Item::new())
    };
    PricedItem::Stored { kind, key }
}

// ---------------------------------------------------------------------------
// DynamoDB item sizes (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html),
// approximately: names and strings in UTF-8 bytes, numbers 1 byte per two
// significant digits plus 1, booleans and nulls 1 byte, lists and maps 3
// bytes plus 1 per element.

fn number_size(text: &str) -> usize {
    let mantissa = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// Transactional writes cost 2 WCU per started KiB of each item.
fn transactional_wcu(size: usize) -> u64 {
    2 * (size.max(1).div_ceil(1024) as u64)
}

/// The size of every item of every recorded transaction, with its kind.
/// Stored items are sized as they are now (read with a client the meter does
/// not count): after the write, which for a debit differs from before it only
/// by a few digits.
async fn item_sizes(tally: &Tally, plain: &Client, table: &str) -> Vec<Vec<(&'static str, usize)>> {
    let mut stored_sizes: HashMap<String, usize> = HashMap::new();
    let mut transactions = Vec::new();
    for items in &tally.transactions {
        let mut sizes = Vec::new();
        for item in items {
            match item {
                PricedItem::Put(size) => sizes.push(("Put", *size)),
                PricedItem::Stored { kind, key } => {
                    let mut parts: Vec<String> =
                        key.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    parts.sort();
                    let id = parts.join(",");
                    let size = match stored_sizes.get(&id) {
                        Some(size) => *size,
                        None => {
                            let found = plain
                                .get_item()
                                .table_name(table)
                                .set_key(Some(key.clone()))
                                .consistent_read(true)
                                .send()
                                .await
                                .expect("the emulator answers")
                                .item;
                            // A deleted item is priced at the minimum.
                            assert!(
                                found.is_some() || *kind == "Delete",
                                "the {kind} target {key:?} is not stored"
                            );
                            let size = found.as_ref().map(item_size).unwrap_or(0);
                            stored_sizes.insert(id, size);
                            size
                        }
                    };
                    sizes.push((*kind, size));
                }
            }
        }
        transactions.push(sizes);
    }
    transactions
}

// ---------------------------------------------------------------------------
// The conflict server: answers like DynamoDB does when a transaction loses a
// race, one cancellation reason per item (the Update items conflicted).

/// Starts it on a free loopback port; answers its URI and how many requests it had.
async fn start_conflict_server() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let address = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counted = hits.clone();
    let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let counted = counted.clone();
        async move {
            let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
            if target != Some("DynamoDB_20120810.TransactWriteItems") {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("unexpected target {target:?}"),
                )
                    .into_response();
            }
            counted.fetch_add(1, Ordering::SeqCst);
            conflict_response(&body)
        }
    });
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the conflict server runs");
    });
    (format!("http://{address}/"), hits)
}

fn conflict_response(request: &[u8]) -> axum::response::Response {
    let request: Value = serde_json::from_slice(request).unwrap_or(Value::Null);
    let codes: Vec<&str> = request["TransactItems"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|item| {
            if item.get("Update").is_some() {
                "TransactionConflict"
            } else {
                "None"
            }
        })
        .collect();
    let reasons: Vec<Value> = codes
        .iter()
        .map(|code| match *code {
            "None" => json!({"Code": "None"}),
            code => json!({"Code": code, "Message": "Transaction is ongoing for the item"}),
        })
        .collect();
    let body = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    });
    (
        StatusCode::BAD_REQUEST,
        [
            ("x-amzn-errortype", "TransactionCanceledException"),
            ("content-type", "application/x-amz-json-1.0"),
        ],
        body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// State, fixture and calls.

struct Harness {
    state: SharedState,
    meter: Meter,
    /// A client of the same emulator that the meter does not see.
    plain: Client,
    table: String,
    admin: String,
    conflict_hits: Arc<AtomicU64>,
}

/// A fresh table, a state whose client carries the meter, an admin key.
async fn harness() -> Harness {
    let table = format!("roundtrips-{}", uuid::Uuid::new_v4().simple());
    let pepper = std::env::var("KOBATELA_API_KEY_PEPPER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "roundtrips-test-pepper-".repeat(2));
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let plain = Client::new(&sdk);
    ensure_table(&plain, &table)
        .await
        .expect("the emulator creates the table");

    let meter = Meter::default();
    let (server, conflict_hits) = start_conflict_server().await;
    *meter.0.conflict_server.lock().unwrap() = Some(server);
    let metered = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(meter.clone())
            .build(),
    );
    let config = Config::from_lookup(|name| match name {
        "KOBATELA_TABLE" => Some(table.clone()),
        "KOBATELA_API_KEY_PEPPER" => Some(pepper.clone()),
        "KOBATELA_ID_BLOCK" => Some(ID_BLOCK.to_string()),
        // The longest allowed: the steady state must not re-read the key.
        "KOBATELA_KEY_CACHE_SECONDS" => Some("60".into()),
        _ => None,
    })
    .expect("config");
    assert_eq!(config.id_block, ID_BLOCK);
    let state = AppState::new(config, metered);

    let admin = generate_secret();
    state
        .store
        .create_api_key(
            NewApiKey {
                name: "roundtrips-admin".into(),
                scope: Role::Admin,
                user_id: None,
                expires_at: None,
                hash: state.auth.hash(&admin),
                prefix: visible_prefix(&admin),
            },
            &Actor::System,
        )
        .await
        .expect("the admin key is created");
    Harness {
        state,
        meter,
        plain,
        table,
        admin,
        conflict_hits,
    }
}

struct Reply {
    status: u16,
    text: String,
    body: Value,
}

/// The ids of one funded mandate and its parties.
struct Fixture {
    sender: u64,
    beneficiary: u64,
    merchant: u64,
    mandate: Id,
}

impl Harness {
    fn app(&self, function: &str) -> Router {
        let state = self.state.clone();
        shared::http::app(match function {
            "users" => users::router(state),
            "spend" => spend::router(state),
            "mandates" => mandates::router(state),
            other => panic!("no function {other}"),
        })
    }

    async fn call(
        &self,
        function: &str,
        method: &str,
        path: &str,
        idempotency_key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.admin));
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self
            .app(function)
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, text, body }
    }

    async fn create(&self, function: &str, path: &str, body: Value) -> u64 {
        let reply = self.call(function, "POST", path, None, Some(body)).await;
        assert_eq!(reply.status, 201, "POST {path}: {}", reply.text);
        reply.body["id"].as_u64().unwrap_or(0)
    }

    /// Users, a category, a merchant in it the beneficiary may use, and a
    /// mandate of `total`, all through the functions' routes.
    async fn fixture(&self, total: &str) -> Fixture {
        let sender = self
            .create(
                "users",
                "/users",
                json!({"username": "sender", "email": "sender@example.com"}),
            )
            .await;
        let beneficiary = self
            .create(
                "users",
                "/users",
                json!({"username": "beneficiary", "email": "beneficiary@example.com"}),
            )
            .await;
        let category = self
            .create(
                "spend",
                "/spend/categories",
                json!({"code": "PHARMACY", "label": "Pharmacy"}),
            )
            .await;
        let merchant = self
            .create(
                "spend",
                "/spend/merchants",
                json!({"name": "Pharmacie du Fleuve", "category_id": category}),
            )
            .await;
        let allow = self
            .call(
                "spend",
                "POST",
                "/spend/allow",
                None,
                Some(json!({"owner_id": beneficiary, "merchant_id": merchant})),
            )
            .await;
        assert_eq!(allow.status, 201, "{}", allow.text);
        let mandate = self
            .create(
                "mandates",
                "/mandates",
                json!({
                    "sender_id": sender,
                    "beneficiary_id": beneficiary,
                    "total_amount": total,
                    "currency": "USD",
                    "expires_at": "2099-12-31T23:59:59Z",
                }),
            )
            .await;
        Fixture {
            sender,
            beneficiary,
            merchant,
            mandate: Id::new(mandate).expect("a mandate id"),
        }
    }

    async fn purchase(&self, fixture: &Fixture, key: &str, amount: &str) -> Reply {
        let body = json!({
            "sender_id": fixture.sender,
            "beneficiary_id": fixture.beneficiary,
            "merchant_id": fixture.merchant,
            "amount": amount,
            "currency": "USD",
        });
        self.call("spend", "POST", "/spend/purchases", Some(key), Some(body))
            .await
    }

    /// The mandate's balance and spent total, as stored.
    async fn money(&self, mandate: Id) -> (String, String) {
        let found = self
            .state
            .store
            .mandate(mandate)
            .await
            .unwrap()
            .expect("the mandate is stored");
        (found.balance.to_string(), found.spent.to_string())
    }

    /// Every item of the table whose partition key starts with `prefix`.
    async fn items(&self, prefix: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .plain
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("the emulator scans");
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    /// The purchases of `mandate`: how many, and their sum in cents.
    async fn purchases_of(&self, mandate: Id) -> (usize, i64) {
        let purchases: Vec<Item> = self
            .items("PURCHASE#")
            .await
            .into_iter()
            .filter(|item| {
                item.get("mandate_id").and_then(|v| v.as_n().ok())
                    == Some(&mandate.get().to_string())
            })
            .collect();
        let cents = purchases
            .iter()
            .map(|item| item["amount_cents"].as_n().unwrap().parse::<i64>().unwrap())
            .sum();
        (purchases.len(), cents)
    }

    async fn debits_of(&self, mandate: Id) -> usize {
        self.state
            .store
            .audit_trail("USAGE_MANDATE", mandate)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.action == "USAGE_MANDATE_DEBITED")
            .count()
    }
}

fn per(total: u64, n: u64) -> f64 {
    total as f64 / n as f64
}

// ---------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_purchase_costs_three_round_trips() {
    const N: u64 = 20;
    let h = harness().await;
    let fixture = h.fixture("1000.00").await;

    // Warm-up: caches the API key and reserves a block of purchase ids.
    let warm = h.purchase(&fixture, "warm-up", "1.00").await;
    assert_eq!(warm.status, 201, "{}", warm.text);
    let first_id = warm.body["id"].as_u64().unwrap();
    h.meter.reset();

    for i in 0..N {
        let reply = h.purchase(&fixture, &format!("steady-{i}"), "1.00").await;
        assert_eq!(reply.status, 201, "purchase {i}: {}", reply.text);
        assert_eq!(
            reply.body["id"].as_u64(),
            Some(first_id + 1 + i),
            "ids come from the reserved block in order"
        );
    }

    let tally = h.meter.tally(std::mem::take);
    let calls = |op: &str| tally.executions.get(op).copied().unwrap_or(0);
    let total: u64 = tally.executions.values().sum();
    let others: Vec<String> = tally
        .executions
        .iter()
        .filter(|(op, _)| ![BATCH_GET, TRANSACT, UPDATE, GET].contains(&op.as_str()))
        .map(|(op, n)| format!("{op} {:.2}", per(*n, N)))
        .collect();
    println!(
        "purchase round trips: {:.2} per purchase ({BATCH_GET} {:.2}, {TRANSACT} {:.2}, {UPDATE} {:.2}, {GET} {:.2}{}) over {N} purchases",
        per(total, N),
        per(calls(BATCH_GET), N),
        per(calls(TRANSACT), N),
        per(calls(UPDATE), N),
        per(calls(GET), N),
        others.iter().map(|o| format!(", {o}")).collect::<String>(),
    );

    let sizes = item_sizes(&tally, &h.plain, &h.table).await;
    let units: Vec<u64> = sizes
        .iter()
        .map(|items| items.iter().map(|(_, size)| transactional_wcu(*size)).sum())
        .collect();
    let priced: u64 = units.iter().sum();
    let items: usize = sizes.iter().map(Vec::len).sum();
    let first: Vec<String> = sizes
        .first()
        .map(|items| {
            items
                .iter()
                .map(|(kind, size)| format!("{kind} {size} B"))
                .collect()
        })
        .unwrap_or_default();
    let moto = if tally.consumed_entries == 0 {
        format!("none reported in {} responses", tally.transact_outputs)
    } else {
        format!(
            "{:.1} per purchase ({} entries in {} responses)",
            tally.consumed_units / N as f64,
            tally.consumed_entries,
            tally.transact_outputs
        )
    };
    println!(
        "purchase write units: {:.1} per purchase, priced from the requests ({:.1} items per transaction at 2 WCU per started KiB each; items of the first: {}); emulator's ConsumedCapacity: {moto}",
        per(priced, N),
        items as f64 / sizes.len().max(1) as f64,
        first.join(", "),
    );

    let ops = &tally.executions;
    // The proof: two batched reads and one transaction per purchase, the API
    // key from the cache, ids from the block reserved by the warm-up.
    assert_eq!(calls(BATCH_GET), 2 * N, "{ops:?}");
    assert_eq!(calls(TRANSACT), N, "{ops:?}");
    assert_eq!(calls(GET), 0, "the API key was read again: {ops:?}");
    assert!(calls(UPDATE) <= N.div_ceil(ID_BLOCK), "{ops:?}");
    assert_eq!(
        calls(UPDATE),
        0,
        "the warm-up's block of {ID_BLOCK} ids covers {N} more: {ops:?}"
    );
    assert!(others.is_empty(), "unexpected operations: {others:?}");
    assert_eq!(total, 3 * N);
    assert_eq!(
        tally.attempts, tally.executions,
        "the SDK retried a request"
    );
    assert_eq!(tally.transact_outputs, N, "every transaction answered");
    // Each transaction: idempotency record, debit, purchase, audit entry; each
    // under 1 KiB, so 2 WCU each.
    assert!(sizes.iter().all(|t| t.len() == 4), "{sizes:?}");
    assert_eq!(
        priced,
        8 * N,
        "write units per transaction: {units:?}, item sizes {sizes:?}"
    );

    // The money: 21 purchases of 1.00.
    assert_eq!(
        h.money(fixture.mandate).await,
        ("979.00".to_string(), "21.00".to_string())
    );
    assert_eq!(h.purchases_of(fixture.mandate).await, (21, 2100));
    assert_eq!(h.debits_of(fixture.mandate).await, 21);
}

/// The injected answer decodes as DynamoDB's: a `TransactionCanceledException`
/// with its reasons, which the store reads as a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_conflict_decodes_as_transaction_conflict() {
    let h = harness().await;
    let items = || {
        vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&h.table)
                        .item("pk", AttributeValue::S("PROBE#1".into()))
                        .item("sk", AttributeValue::S("PROBE".into()))
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&h.table)
                        .key("pk", AttributeValue::S("PROBE#2".into()))
                        .key("sk", AttributeValue::S("PROBE".into()))
                        .update_expression("SET n = :n")
                        .expression_attribute_values(":n", AttributeValue::N("1".into()))
                        .build()
                        .unwrap(),
                )
                .build(),
        ]
    };
    h.meter.reset();
    h.meter.conflict_next(2);

    let error = h
        .state
        .store
        .client()
        .transact_write_items()
        .set_transact_items(Some(items()))
        .send()
        .await
        .expect_err("the conflict server cancels the transaction")
        .into_service_error();
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = &error else {
        panic!("not a TransactionCanceledException: {error:?}");
    };
    let codes: Vec<Option<&str>> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code())
        .collect();
    assert_eq!(codes, vec![Some("None"), Some("TransactionConflict")]);
    assert!(cancelled
        .message()
        .is_some_and(|m| m.contains("TransactionConflict")));

    let store_error = h
        .state
        .store
        .transact(items())
        .await
        .expect_err("the conflict server cancels the transaction");
    assert!(
        store_error.is_conflict(),
        "the store does not see a conflict: {store_error:?}"
    );
    assert!(!store_error.failed_condition(0) && !store_error.failed_condition(1));

    assert_eq!(h.meter.conflicted(), 2);
    assert_eq!(
        h.conflict_hits.load(Ordering::SeqCst),
        2,
        "the conflict server answered both"
    );
    assert_eq!(h.meter.executions(TRANSACT), 2);
    assert!(
        h.items("PROBE#").await.is_empty(),
        "a conflicted write reached the emulator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_retries_conflicts_and_debits_once() {
    const K: u64 = 3;
    let h = harness().await;
    let fixture = h.fixture("100.00").await;
    h.meter.reset();
    h.meter.conflict_next(K);

    let reply = h.purchase(&fixture, "conflicted", "10.00").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["amount"], "10.00");
    assert_eq!(reply.body["mandate_id"], fixture.mandate.get());

    assert_eq!(
        h.meter.executions(TRANSACT),
        K + 1,
        "K conflicts, then the commit"
    );
    assert_eq!(h.meter.conflicted(), K);
    assert_eq!(h.conflict_hits.load(Ordering::SeqCst), K);
    assert_eq!(
        h.meter.executions(BATCH_GET),
        2 * (K + 1),
        "each attempt decides from a fresh read"
    );
    println!(
        "purchase with {K} injected conflicts: {} TransactWriteItems, {} BatchGetItem",
        h.meter.executions(TRANSACT),
        h.meter.executions(BATCH_GET)
    );

    assert_eq!(
        h.money(fixture.mandate).await,
        ("90.00".to_string(), "10.00".to_string())
    );
    assert_eq!(h.purchases_of(fixture.mandate).await, (1, 1000));
    assert_eq!(h.debits_of(fixture.mandate).await, 1);

    // A retry of the same request replays the answer and debits nothing more.
    let again = h.purchase(&fixture, "conflicted", "10.00").await;
    assert_eq!((again.status, &again.text), (201, &reply.text));
    assert_eq!(
        h.money(fixture.mandate).await,
        ("90.00".to_string(), "10.00".to_string())
    );
    assert_eq!(h.debits_of(fixture.mandate).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_that_always_conflicts_is_busy_and_debits_nothing() {
    let h = harness().await;
    let fixture = h.fixture("100.00").await;
    h.meter.reset();
    h.meter.conflict_next(u64::MAX);

    let busy = h.purchase(&fixture, "always-conflicted", "10.00").await;
    assert_eq!(busy.status, 503, "{}", busy.text);
    assert_eq!(busy.body["error"]["code"], "SERVICE_BUSY", "{}", busy.text);
    assert!(busy.body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let attempts = u64::from(Backoff::PURCHASE_ATTEMPTS);
    assert_eq!(
        h.meter.executions(TRANSACT),
        attempts,
        "bounded by Backoff::PURCHASE_ATTEMPTS"
    );
    assert_eq!(h.meter.conflicted(), attempts);
    assert_eq!(h.conflict_hits.load(Ordering::SeqCst), attempts);

    assert_eq!(
        h.money(fixture.mandate).await,
        ("100.00".to_string(), "0.00".to_string())
    );
    assert_eq!(h.purchases_of(fixture.mandate).await, (0, 0));
    assert_eq!(h.debits_of(fixture.mandate).await, 0);
    assert!(
        h.items("IDEMPOTENCY#").await.is_empty(),
        "the key was consumed by a failed purchase"
    );

    // Once the contention is over, the same request with the same key succeeds.
    h.meter.conflict_next(0);
    let retried = h.purchase(&fixture, "always-conflicted", "10.00").await;
    assert_eq!(retried.status, 201, "{}", retried.text);
    assert_eq!(retried.body["amount"], "10.00");
    assert_eq!(
        h.meter.conflicted(),
        attempts,
        "no conflict after the fault is off"
    );
    assert_eq!(
        h.money(fixture.mandate).await,
        ("90.00".to_string(), "10.00".to_string())
    );
    assert_eq!(h.purchases_of(fixture.mandate).await, (1, 1000));
    assert_eq!(h.debits_of(fixture.mandate).await, 1);
}
