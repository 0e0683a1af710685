//! What a purchase costs, measured, and the retry path on
//! `TransactionConflict`, proven by fault injection.
//!
//! Each test builds its own API in-process on a fresh table of the emulator
//! (`kobatela_tests::InProcess`), with a DynamoDB client carrying a `Meter`
//! interceptor. So the meter counts exactly the requests of this state's
//! handlers, whatever else runs on the emulator.
//!
//! - Steady state: round trips per purchase by operation, and write units:
//!   the emulator's `ConsumedCapacity` (moto answers an empty list) and
//!   DynamoDB's price computed from each `TransactWriteItems` request.
//! - Conflicts: real DynamoDB cancels contended transactions with the reason
//!   `TransactionConflict`; the emulator never does. The fault injector
//!   (`kobatela_tests::faults`) sends chosen `TransactWriteItems` calls to a
//!   tiny local server answering exactly what DynamoDB answers then.
//!
//! Needs the emulator (`AWS_ENDPOINT_URL`, the dummy credentials) and
//! `KOBATELA_API_KEY_PEPPER`.

use aws_sdk_dynamodb::{
    operation::batch_get_item::BatchGetItemInput,
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
                BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
            },
            Intercept,
        },
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::ConfigBag;
use kobatela_tests::{
    cents_of, create_user,
    faults::{operation, Fault, Faults},
    unique, EscrowSetup, InProcess, MandateSetup, Table,
};
use serde_json::{json, Value};
use shared::{
    domain::{ledger::RunStatus, time::Timestamp},
    ops::{ledger, settlement::reconcile_report},
    store::retry::Backoff,
};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

type Item = HashMap<String, AttributeValue>;

const TRANSACT: &str = "TransactWriteItems";
const BATCH_GET: &str = "BatchGetItem";
const GET: &str = "GetItem";
const UPDATE: &str = "UpdateItem";
const QUERY: &str = "Query";

/// DynamoDB's answer to a transaction that lost a race.
const CONFLICT: Fault = Fault::Cancelled("TransactionConflict");

/// Ids reserved per counter round trip in these tests (`KOBATELA_ID_BLOCK`).
const ID_BLOCK: u64 = 100;

// ---------------------------------------------------------------------------
// The meter: counts requests per operation, prices transactions, and injects
// conflicts.

/// One item of a `TransactWriteItems` request, for pricing.
#[derive(Debug, Clone)]
enum PricedItem {
    /// A Put: its size and its attribute names, from the request.
    Put(usize, Vec<String>),
    /// An Update, Delete or ConditionCheck: DynamoDB prices the stored item,
    /// which the request does not carry; read it back to price it. `written`:
    /// the attributes an Update sets or removes.
    Stored {
        kind: &'static str,
        key: Item,
        written: Vec<String>,
    },
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
    /// The keys of every `BatchGetItem` request.
    batch_keys: Vec<usize>,
    /// The `user-agent` of every signed request, and how many carried the
    /// SDK's `x-amz-user-agent`.
    user_agents: std::collections::BTreeSet<String>,
    amz_user_agents: u64,
}

#[derive(Debug, Default)]
struct MeterState {
    tally: Mutex<Tally>,
}

#[derive(Debug, Clone, Default)]
struct Meter(Arc<MeterState>);

impl Meter {
    fn tally<T>(&self, f: impl FnOnce(&mut Tally) -> T) -> T {
        f(&mut self.0.tally.lock().unwrap())
    }

    fn reset(&self) {
        self.tally(|t| *t = Tally::default());
    }

    fn executions(&self, op: &str) -> u64 {
        self.tally(|t| t.executions.get(op).copied().unwrap_or(0))
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
        let batch_keys = context
            .input()
            .downcast_ref::<BatchGetItemInput>()
            .map(|input| {
                input
                    .request_items()
                    .into_iter()
                    .flatten()
                    .map(|(_, wanted)| wanted.keys().len())
                    .sum::<usize>()
            });
        self.tally(|t| {
            *t.executions.entry(op).or_default() += 1;
            t.transactions.extend(priced);
            t.batch_keys.extend(batch_keys);
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

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request().headers();
        let agent = headers.get("user-agent").unwrap_or("<none>").to_string();
        let amz = u64::from(headers.get("x-amz-user-agent").is_some());
        self.tally(|t| {
            t.user_agents.insert(agent);
            t.amz_user_agents += amz;
        });
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
        return PricedItem::Put(item_size(put.item()), put.item().keys().cloned().collect());
    }
    let (kind, key, written) = if let Some(update) = item.update() {
        ("Update", update.key().clone(), written_attributes(update))
    } else if let Some(delete) = item.delete() {
        ("Delete", delete.key().clone(), Vec::new())
    } else if let Some(check) = item.condition_check() {
        ("ConditionCheck", check.key().clone(), Vec::new())
    } else {
        ("?", Item::new(), Vec::new())
    };
    PricedItem::Stored { kind, key, written }
}

/// The attributes an update expression sets or removes (`#name`s resolved).
fn written_attributes(update: &Update) -> Vec<String> {
    let names = update.expression_attribute_names();
    let mut written = Vec::new();
    let mut clause = "";
    for token in update
        .update_expression()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        match token {
            "SET" | "REMOVE" | "ADD" | "DELETE" => clause = token,
            _ if token.starts_with(':') || "=+-".contains(token) => {}
            name if clause == "SET" || clause == "REMOVE" => {
                let name = names
                    .and_then(|n| n.get(name))
                    .cloned()
                    .unwrap_or_else(|| name.to_string());
                if name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    written.push(name);
                }
            }
            _ => {}
        }
    }
    written.sort();
    written.dedup();
    written
}

/// Index entries a transaction item writes, by the table definition
/// (`shared::store::keys::INDEXES` and their projections): a Put or Delete
/// of an item that carries an index's key, or an Update of an indexed item
/// that changes an attribute the index holds (its keys or a projected one).
/// Each entry under 1 KiB costs 1 WCU.
fn index_writes(item: &PricedItem, stored: Option<&Item>) -> u64 {
    shared::store::keys::INDEXES
        .iter()
        .filter(|index| match item {
            PricedItem::Put(_, attributes) => attributes.iter().any(|a| a == index.pk),
            PricedItem::Stored { kind: "Delete", .. } => {
                stored.is_some_and(|s| s.contains_key(index.pk))
            }
            PricedItem::Stored {
                kind: "Update",
                written,
                ..
            } => {
                stored.is_some_and(|s| s.contains_key(index.pk))
                    && written.iter().any(|a| index.projects(a))
            }
            PricedItem::Stored { .. } => false,
        })
        .count() as u64
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
/// Stored items are sized as they are now (read through `Table`, whose client
/// the meter does not count): after the write, which for a debit differs from
/// before it only by a few digits.
async fn item_sizes(tally: &Tally, table: &Table) -> Vec<Vec<(&'static str, usize)>> {
    let mut stored_sizes: HashMap<String, usize> = HashMap::new();
    let mut transactions = Vec::new();
    for items in &tally.transactions {
        let mut sizes = Vec::new();
        for item in items {
            match item {
                PricedItem::Put(size, _) => sizes.push(("Put", *size)),
                PricedItem::Stored { kind, key, .. } => {
                    let mut parts: Vec<String> =
                        key.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    parts.sort();
                    let id = parts.join(",");
                    let size = match stored_sizes.get(&id) {
                        Some(size) => *size,
                        None => {
                            let found = table.item(key.clone()).await;
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
// State and calls.

struct Harness {
    api: InProcess,
    meter: Meter,
    /// The same table, read with a client the meter does not see.
    table: Table,
    /// Sends chosen calls to a server answering as DynamoDB under contention.
    faults: Faults,
}

/// A fresh in-process API whose DynamoDB client (the service's settings)
/// carries the meter and the fault injector.
async fn harness() -> Harness {
    let meter = Meter::default();
    let faults = Faults::start().await;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let metered = Client::from_conf(
        kobatela_tests::faults::store_client_config(&sdk)
            .interceptor(meter.clone())
            .interceptor(faults.clone())
            .build(),
    );
    let id_block = ID_BLOCK.to_string();
    let settings = [
        ("KOBATELA_ID_BLOCK", id_block.as_str()),
        // The longest allowed: the steady state must not re-read the key.
        ("KOBATELA_KEY_CACHE_SECONDS", "60"),
    ];
    let api = InProcess::with_client("roundtrips", metered, &settings).await;
    assert_eq!(api.state.config.id_block, ID_BLOCK);
    let table = Table::named(&api.table).await;
    Harness {
        api,
        meter,
        table,
        faults,
    }
}

impl Harness {
    /// The purchases of `mandate`: how many, and their sum in cents.
    async fn purchases_of(&self, mandate: u64) -> (usize, i64) {
        let purchases = self.table.purchases_of(mandate).await;
        (purchases.len(), cents_of(&purchases))
    }

    async fn debits_of(&self, mandate: u64) -> usize {
        let actions = self.table.audit_actions("USAGE_MANDATE", mandate).await;
        actions
            .iter()
            .filter(|a| *a == "USAGE_MANDATE_DEBITED")
            .count()
    }
}

/// What the metered calls since the last reset cost.
struct Cost {
    tally: Tally,
    /// Round trips, every operation.
    total: u64,
    /// Each transaction's items, by kind and size.
    sizes: Vec<Vec<(&'static str, usize)>>,
    /// Write units as DynamoDB prices them (2 per KB, rounded up, per item).
    priced: u64,
    /// Index entries the writes added or rewrote.
    index_units: u64,
}

impl Harness {
    async fn cost(&self) -> Cost {
        let tally = self.meter.tally(std::mem::take);
        let sizes = item_sizes(&tally, &self.table).await;
        Cost {
            total: tally.executions.values().sum(),
            priced: sizes
                .iter()
                .flatten()
                .map(|(_, size)| transactional_wcu(*size))
                .sum(),
            index_units: index_units_of(&tally, &self.table).await,
            sizes,
            tally,
        }
    }
}

fn per(total: u64, n: u64) -> f64 {
    total as f64 / n as f64
}

// ---------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_purchase_costs_two_round_trips() {
    const N: u64 = 20;
    let h = harness().await;
    let fixture = MandateSetup::new(&h.api, "1000.00").await;

    // Warm-up: caches the API key, reserves a block of purchase ids and
    // leaves the hint of the parties' mandate; without a hint the mandate
    // takes a second batched read.
    h.meter.reset();
    let warm = h.api.purchase("warm-up", fixture.purchase("1.00")).await;
    assert_eq!(warm.status, 201, "{}", warm.text);
    let first_id = warm.body["id"].as_u64().unwrap();
    let warm_reads = h
        .meter
        .tally(std::mem::take)
        .executions
        .get(BATCH_GET)
        .copied();
    assert_eq!(warm_reads, Some(2), "the first purchase of these parties");
    h.meter.reset();

    for i in 0..N {
        let reply = h
            .api
            .purchase(&format!("steady-{i}"), fixture.purchase("1.00"))
            .await;
        assert_eq!(reply.status, 201, "purchase {i}: {}", reply.text);
        assert_eq!(
            reply.body["id"].as_u64(),
            Some(first_id + 1 + i),
            "ids come from the reserved block in order"
        );
    }

    let tally = h.meter.tally(std::mem::take);
    // One fixed user-agent, unsigned, instead of the SDK's two built per call.
    assert_eq!(
        tally.user_agents.iter().collect::<Vec<_>>(),
        [shared::store::client::USER_AGENT]
    );
    assert_eq!(tally.amz_user_agents, 0, "x-amz-user-agent sent");
    // Each read: the idempotency record, the guard, both users and the
    // mandate; the merchant and its grant come from the container's memory.
    assert_eq!(tally.batch_keys, [5; N as usize], "keys per batched read");
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

    let sizes = item_sizes(&tally, &h.table).await;
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

    // Index writes, by the table definition: a purchase that leaves money on
    // the mandate changes only its balance, spent total and time, which no
    // index holds; the purchase, idempotency record and audit entry carry
    // no index key.
    let mut index_units = 0;
    for item in tally.transactions.iter().flatten() {
        let stored = match item {
            PricedItem::Stored { key, .. } => h.table.item(key.clone()).await,
            PricedItem::Put(..) => None,
        };
        index_units += index_writes(item, stored.as_ref());
    }
    println!(
        "purchase index writes: {:.2} per purchase; write units in all: {:.2} per purchase",
        per(index_units, N),
        per(priced + index_units, N)
    );
    let debit = tally
        .transactions
        .iter()
        .flatten()
        .find_map(|item| match item {
            PricedItem::Stored {
                kind: "Update",
                written,
                ..
            } => Some(written.clone()),
            _ => None,
        });
    assert_eq!(
        debit.as_deref(),
        Some(&["balance_cents", "spent_cents", "updated_at"].map(String::from)[..]),
        "the debit's written attributes, as read from its update expression"
    );
    assert_eq!(index_units, 0, "a purchase wrote index entries");
    assert!(
        priced + index_units <= 8 * N,
        "over 8 write units per purchase"
    );

    let ops = &tally.executions;
    // The proof: one batched read and one transaction per purchase, the
    // mandate's key from the hint, the API key from the cache, ids from the
    // block reserved by the warm-up.
    assert_eq!(calls(BATCH_GET), N, "{ops:?}");
    assert_eq!(calls(TRANSACT), N, "{ops:?}");
    assert_eq!(calls(GET), 0, "the API key was read again: {ops:?}");
    assert!(calls(UPDATE) <= N.div_ceil(ID_BLOCK), "{ops:?}");
    assert_eq!(
        calls(UPDATE),
        0,
        "the warm-up's block of {ID_BLOCK} ids covers {N} more: {ops:?}"
    );
    assert!(others.is_empty(), "unexpected operations: {others:?}");
    assert_eq!(total, 2 * N);
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
        h.api.mandate_money(fixture.mandate).await,
        ("979.00".to_string(), "21.00".to_string())
    );
    assert_eq!(h.purchases_of(fixture.mandate).await, (21, 2100));
    assert_eq!(h.debits_of(fixture.mandate).await, 21);
}

/// A hint names the mandate the last purchase used. Once that mandate is
/// consumed and the parties get a new one, the hint is wrong: the purchase
/// reads the new mandate in a second batch, debits it, and the next
/// purchase is back to one read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_mandate_hint_costs_one_read_and_debits_the_new_mandate() {
    let h = harness().await;
    let fixture = MandateSetup::new(&h.api, "5.00").await;
    let consume = h.api.purchase("consume", fixture.purchase("5.00")).await;
    assert_eq!(consume.status, 201, "{}", consume.text);
    let old_id = shared::domain::ids::Id::new(fixture.mandate).unwrap();
    let old = h.api.state.store.mandate(old_id).await.unwrap().unwrap();
    assert_eq!(old.status.as_str(), "CONSUMED");
    let renewed = h
        .api
        .post(
            "/mandates",
            json!({
                "sender_id": fixture.sender,
                "beneficiary_id": fixture.beneficiary,
                "total_amount": "10.00",
                "currency": "USD",
                "expires_at": "2099-12-31T23:59:59Z",
            }),
        )
        .await
        .expect(201)
        .id();
    assert_ne!(renewed, fixture.mandate);

    let mut reads = Vec::new();
    for key in ["after-renewal", "hinted-again"] {
        h.meter.reset();
        let reply = h.api.purchase(key, fixture.purchase("1.00")).await;
        assert_eq!(reply.status, 201, "{key}: {}", reply.text);
        assert_eq!(reply.body["mandate_id"].as_u64(), Some(renewed), "{key}");
        let tally = h.meter.tally(std::mem::take);
        reads.push(tally.executions.get(BATCH_GET).copied().unwrap_or(0));
    }
    assert_eq!(reads, [2, 1], "batched reads: stale hint, then the new one");
    assert_eq!(
        h.api.mandate_money(renewed).await,
        ("8.00".to_string(), "2.00".to_string())
    );
    assert_eq!(
        h.api.mandate_money(fixture.mandate).await,
        ("0.00".to_string(), "5.00".to_string()),
        "the consumed mandate is not touched"
    );
    assert_eq!(h.purchases_of(renewed).await, (2, 200));
}

/// The index entries and write units of every recorded transaction item.
async fn index_units_of(tally: &Tally, table: &Table) -> u64 {
    let mut units = 0;
    for item in tally.transactions.iter().flatten() {
        let stored = match item {
            PricedItem::Stored { key, .. } => table.item(key.clone()).await,
            PricedItem::Put(..) => None,
        };
        units += index_writes(item, stored.as_ref());
    }
    units
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_deposits_and_payouts_cost_few_round_trips() {
    const N: u64 = 10;
    let h = harness().await;
    let s = EscrowSetup::new(&h.api, "1000.00").await;
    // Warm-up: caches the API key; a first payout reserves payment ids.
    let warm = EscrowSetup::new(&h.api, "1.00").await;
    h.api
        .deposit(warm.escrow, &unique("k"), "1.00")
        .await
        .expect(200);
    h.api
        .call(
            "POST",
            &format!("/escrows/{}/client-approve", warm.escrow),
            &[],
            None,
        )
        .await
        .expect(200);
    h.meter.reset();

    for i in 0..N {
        h.api
            .deposit(s.escrow, &format!("deposit-{i}"), "1.00")
            .await
            .expect(200);
    }
    let Cost {
        tally,
        total,
        sizes,
        priced,
        index_units,
    } = h.cost().await;
    let calls = |op: &str| tally.executions.get(op).copied().unwrap_or(0);
    println!(
        "deposit round trips: {:.2} per deposit ({:?}); write units {:.1} per deposit, index writes {:.2}",
        per(total, N),
        tally.executions,
        per(priced, N),
        per(index_units, N)
    );
    // The idempotency record and the escrow read in parallel, then one
    // transaction: record, escrow update, audit entry, event.
    assert_eq!(
        (calls(GET), calls(QUERY), calls(TRANSACT)),
        (N, N, N),
        "{:?}",
        tally.executions
    );
    assert_eq!(total, 3 * N);
    assert!(sizes.iter().all(|t| t.len() == 4), "{sizes:?}");
    assert_eq!(priced, 8 * N, "item sizes {sizes:?}");
    assert_eq!(
        index_units, 0,
        "a deposit that keeps DRAFT wrote index entries"
    );

    // The rest funds it; then one approval pays it all out.
    h.api
        .deposit(s.escrow, &unique("k"), "990.00")
        .await
        .expect(200);
    h.meter.reset();
    let released = h
        .api
        .call(
            "POST",
            &format!("/escrows/{}/client-approve", s.escrow),
            &[],
            None,
        )
        .await
        .expect(200);
    assert_eq!(released.body["amount_paid"], "1000.00");
    let tally = h.meter.tally(std::mem::take);
    let sizes = item_sizes(&tally, &h.table).await;
    let index_units = index_units_of(&tally, &h.table).await;
    println!(
        "payout round trips: {:?}; items {:?}; index writes {index_units}",
        tally.executions, sizes
    );
    // One read, one transaction (the payment id from the reserved block):
    // escrow update, payment, PSP reference, 2 audit entries, 2 events.
    assert_eq!(
        tally.executions.values().sum::<u64>(),
        2,
        "{:?}",
        tally.executions
    );
    assert_eq!(
        (tally.executions[QUERY], tally.executions[TRANSACT]),
        (1, 1)
    );
    assert_eq!(sizes.len(), 1);
    assert_eq!(sizes[0].len(), 7, "{sizes:?}");
    // The status change rewrites the escrow's entries in gsi1-3 (3); the
    // payment enters gsi1, gsi3 and, PENDING, the stuck-payout entries of
    // the deadline index (3). The escrow also leaves the deadline index (1
    // more in truth): `index_writes` sees the item after the write, without
    // the key it removed, so it does not count that one.
    assert_eq!(index_units, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_cost_two_round_trips() {
    const N: u64 = 10;
    let h = harness().await;
    let [a, b, c] = [
        create_user(&h.api, "a").await,
        create_user(&h.api, "b").await,
        create_user(&h.api, "c").await,
    ];
    h.api
        .post("/allowlist", json!({"owner_id": a, "recipient_id": b}))
        .await
        .expect(201);
    let transfer = |receiver: u64, key: String| {
        let api = &h.api;
        async move {
            api.call(
                "POST",
                "/transactions",
                &[("idempotency-key", &key)],
                Some(json!({"sender_id": a, "receiver_id": receiver, "amount": "1.00"})),
            )
            .await
        }
    };
    // Warm-up: caches the API key and reserves transaction and alert ids.
    transfer(b, unique("k")).await.expect(201);
    transfer(c, unique("k")).await.expect(403);

    for (receiver, status, items, what) in [(b, 201, 3, "allowed"), (c, 403, 2, "refused")] {
        h.meter.reset();
        for _ in 0..N {
            transfer(receiver, unique("k")).await.expect(status);
        }
        let Cost {
            tally,
            total,
            sizes,
            priced,
            index_units,
        } = h.cost().await;
        println!(
            "transfer {what}: {:.2} round trips ({:?}); write units {:.1}, index writes {:.2} per transfer",
            per(total, N),
            tally.executions,
            per(priced, N),
            per(index_units, N)
        );
        // One batched read (record, both users, allowlist, certification),
        // one transaction: the record with the transaction and its audit
        // entry, or with the alert.
        assert_eq!(
            (
                tally.executions[BATCH_GET],
                tally.executions[TRANSACT],
                total
            ),
            (N, N, 2 * N),
            "{what}: {:?}",
            tally.executions
        );
        assert!(sizes.iter().all(|t| t.len() == items), "{what}: {sizes:?}");
        // Every item is under 1 KB: 2 write units each, in a transaction.
        assert_eq!(priced, 2 * items as u64 * N, "{what}: {sizes:?}");
        // A transaction enters gsi1-3 (by sender, receiver, kind); an alert
        // gsi1-3 too (by type, by id for its acknowledgement, all).
        assert_eq!(index_units, 3 * N, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spends_cost_three_round_trips() {
    const N: u64 = 10;
    let h = harness().await;
    let s = EscrowSetup::new(&h.api, "100.00").await;
    h.api
        .deposit(s.escrow, &unique("k"), "100.00")
        .await
        .expect(200);
    h.api
        .post(
            "/spend/allowed",
            json!({"escrow_id": s.escrow, "payee_ref": "school", "label": "School",
                   "daily_limit": "50.00", "total_limit": "90.00"}),
        )
        .await
        .expect(201);
    let spend = || async {
        h.api
            .call(
                "POST",
                "/spend",
                &[("idempotency-key", &unique("k"))],
                Some(json!({"escrow_id": s.escrow, "payee_ref": "school", "amount": "1.00"})),
            )
            .await
    };
    // Warm-up: caches the API key and reserves payment ids.
    spend().await.expect(200);
    h.meter.reset();
    for _ in 0..N {
        spend().await.expect(200);
    }
    let Cost {
        tally,
        total,
        sizes,
        priced,
        index_units,
    } = h.cost().await;
    println!(
        "spend: {:.2} round trips ({:?}); write units {:.1}, index writes {:.2} per spend; items {:?}",
        per(total, N),
        tally.executions,
        per(priced, N),
        per(index_units, N),
        sizes.first()
    );
    // The record and the payee (one BatchGetItem) beside the escrow (one
    // Query), then one transaction: record, escrow debit, payment, PSP
    // reference, payee counters, audit entry, timeline event, and the checks
    // that the client and the provider are active.
    assert_eq!(
        (
            tally.executions[BATCH_GET],
            tally.executions[QUERY],
            tally.executions[TRANSACT]
        ),
        (N, N, N),
        "{:?}",
        tally.executions
    );
    assert_eq!(total, 3 * N);
    assert!(sizes.iter().all(|t| t.len() == 9), "{sizes:?}");
    // Every item under 1 KB: 2 write units each, in a transaction (a
    // condition check is priced as a transactional write).
    assert_eq!(priced, 18 * N, "{sizes:?}");
    // The payment enters gsi1 (by escrow), gsi3 (all) and, PENDING, the
    // deadline index (stuck payouts); the escrow keeps its status and the
    // payee's counters are not projected: nothing more.
    assert_eq!(index_units, 3 * N);
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
                        .table_name(&h.api.table)
                        .item("pk", AttributeValue::S("PROBE#1".into()))
                        .item("sk", AttributeValue::S("PROBE".into()))
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&h.api.table)
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
    h.faults.inject(CONFLICT, 2);

    let error = h
        .api
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
        .api
        .state
        .store
        .transact(items())
        .await
        .expect_err("the conflict server cancels the transaction");
    assert!(
        store_error.is_busy(),
        "the store does not see a conflict: {store_error:?}"
    );
    assert!(!store_error.failed_condition(0) && !store_error.failed_condition(1));

    assert_eq!(
        h.faults.take_injected(),
        2,
        "the fault server answered both"
    );
    assert_eq!(h.meter.executions(TRANSACT), 2);
    assert!(
        h.table.items_with_prefix("PROBE#").await.is_empty(),
        "a conflicted write reached the emulator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_retries_conflicts_and_debits_once() {
    const K: u64 = 3;
    let h = harness().await;
    let fixture = MandateSetup::new(&h.api, "100.00").await;
    h.meter.reset();
    h.faults.inject(CONFLICT, K);

    let reply = h
        .api
        .purchase("conflicted", fixture.purchase("10.00"))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["amount"], "10.00");
    assert_eq!(reply.body["mandate_id"], fixture.mandate);

    assert_eq!(
        h.meter.executions(TRANSACT),
        K + 1,
        "K conflicts, then the commit"
    );
    assert_eq!(h.faults.take_injected(), K);
    assert_eq!(
        h.meter.executions(BATCH_GET),
        K + 2,
        "each attempt decides from a fresh read; the first, with no hint yet, in two"
    );
    println!(
        "purchase with {K} injected conflicts: {} TransactWriteItems, {} BatchGetItem",
        h.meter.executions(TRANSACT),
        h.meter.executions(BATCH_GET)
    );

    assert_eq!(
        h.api.mandate_money(fixture.mandate).await,
        ("90.00".to_string(), "10.00".to_string())
    );
    assert_eq!(h.purchases_of(fixture.mandate).await, (1, 1000));
    assert_eq!(h.debits_of(fixture.mandate).await, 1);

    // A retry of the same request replays the answer and debits nothing more.
    let again = h
        .api
        .purchase("conflicted", fixture.purchase("10.00"))
        .await;
    assert_eq!((again.status.as_u16(), &again.text), (201, &reply.text));
    assert_eq!(
        h.api.mandate_money(fixture.mandate).await,
        ("90.00".to_string(), "10.00".to_string())
    );
    assert_eq!(h.debits_of(fixture.mandate).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_that_always_conflicts_is_busy_and_debits_nothing() {
    let h = harness().await;
    let fixture = MandateSetup::new(&h.api, "100.00").await;
    h.meter.reset();
    h.faults.inject_forever(CONFLICT);

    let busy = h
        .api
        .purchase("always-conflicted", fixture.purchase("10.00"))
        .await;
    busy.expect_error(503, "SERVICE_BUSY");
    let attempts = u64::from(Backoff::ATTEMPTS);
    assert_eq!(
        h.meter.executions(TRANSACT),
        attempts,
        "bounded by Backoff::ATTEMPTS"
    );
    assert_eq!(h.faults.take_injected(), attempts);

    assert_eq!(
        h.api.mandate_money(fixture.mandate).await,
        ("100.00".to_string(), "0.00".to_string())
    );
    assert_eq!(h.purchases_of(fixture.mandate).await, (0, 0));
    assert_eq!(h.debits_of(fixture.mandate).await, 0);
    assert!(
        h.table.items_with_prefix("IDEMPOTENCY#").await.is_empty(),
        "the key was consumed by a failed purchase"
    );

    // Once the contention is over, the same request with the same key succeeds.
    h.faults.clear();
    let retried = h
        .api
        .purchase("always-conflicted", fixture.purchase("10.00"))
        .await;
    assert_eq!(retried.status, 201, "{}", retried.text);
    assert_eq!(retried.body["amount"], "10.00");
    assert_eq!(
        h.faults.take_injected(),
        0,
        "no conflict after the fault is off"
    );
    assert_eq!(
        h.api.mandate_money(fixture.mandate).await,
        ("90.00".to_string(), "10.00".to_string())
    );
    assert_eq!(h.purchases_of(fixture.mandate).await, (1, 1000));
    assert_eq!(h.debits_of(fixture.mandate).await, 1);
}

/// A webhook receipt: one conditional Put (RECEIVED) and one Update
/// (QUEUED) around the SQS send. An applied event: the event, the PSP
/// reference and the payment read (3 GetItem), then ONE transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psp_receipts_and_applied_events_cost_few_round_trips() {
    const N: u64 = 5;
    let h = harness().await;
    let mut payouts = Vec::new();
    for _ in 0..=N {
        payouts.push(h.api.payout("10.00").await.psp_ref);
    }
    let send = |kind: &'static str, psp_ref: String| {
        let api = &h.api;
        async move {
            let body = kobatela_tests::psp_body(&unique("evt"), kind, &psp_ref);
            let headers = kobatela_tests::psp_headers(&body);
            api.psp_webhook(&kobatela_tests::header_refs(&headers), &body)
                .await
                .expect(200);
        }
    };
    // Warm-up: the first failure reserves alert ids.
    send("payment.failed", payouts[0].clone()).await;
    h.api.consume_psp().await;

    for kind in ["payment.settled", "payment.failed"] {
        let refs: Vec<String> = if kind == "payment.settled" {
            payouts[1..=N as usize].to_vec()
        } else {
            // The failures of fresh payouts.
            let mut fresh = Vec::new();
            for _ in 0..N {
                fresh.push(h.api.payout("10.00").await.psp_ref);
            }
            fresh
        };
        h.meter.reset();
        for psp_ref in refs {
            send(kind, psp_ref).await;
        }
        let receipts = h.meter.tally(std::mem::take);
        println!("{kind} receipts: {:?} for {N}", receipts.executions);
        assert_eq!(
            receipts.executions,
            BTreeMap::from([("PutItem".to_string(), N), (UPDATE.to_string(), N)]),
            "a receipt: one Put, one Update"
        );
        let (received, failed) = h.api.consume_psp().await;
        assert_eq!((received, failed), (N as usize, 0));
        let tally = h.meter.tally(std::mem::take);
        let sizes = item_sizes(&tally, &h.table).await;
        let priced: u64 = sizes
            .iter()
            .flatten()
            .map(|(_, size)| transactional_wcu(*size))
            .sum();
        let index_units = index_units_of(&tally, &h.table).await;
        println!(
            "{kind} applied: {:?} for {N}; items per transaction {:?}; write units {:.1} per event, index writes {:.1}",
            tally.executions,
            sizes.first().map(|t| t.len()),
            per(priced, N),
            per(index_units, N)
        );
        assert_eq!(
            (tally.executions[GET], tally.executions[TRANSACT]),
            (3 * N, N),
            "{:?}",
            tally.executions
        );
        assert_eq!(tally.executions.values().sum::<u64>(), 4 * N);
        // Settled: payment, event, audit, timeline. Failed: + the escrow's
        // balances and the PAYMENT_FAILED alert.
        let items = if kind == "payment.settled" { 4 } else { 6 };
        assert!(sizes.iter().all(|t| t.len() == items), "{sizes:?}");
        assert_eq!(
            priced,
            2 * items as u64 * N,
            "every item under 1 KiB: {sizes:?}"
        );
        // Both: the payment's status in gsi1 and gsi3, the event's in gsi3.
        // Settled: + the payment into gsi2 by the day it settled. Failed: +
        // the alert in gsi1, gsi2 and gsi3.
        let index_writes = if kind == "payment.settled" { 4 } else { 6 };
        assert_eq!(index_units, index_writes * N, "{kind}");
    }
    // The event items themselves are small: a receipt's Put and Update are
    // 1 WCU each.
    for item in h.table.items_with_prefix("PSP_EVENT#").await {
        assert!(item_size(&item) < 1024, "{item:?}");
    }
}

/// The payout dispatcher's cost per payment the PSP accepts: the payment
/// read before asking (is it still PENDING at this attempt?), read again to
/// decide the write, and one transaction of 3 items (the payment SENT, its
/// audit entry, its timeline event). Stream reads are the event source's,
/// not the function's, and go through a client the meter does not see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payout_dispatch_costs_three_round_trips() {
    const N: u64 = 5;
    let h = harness().await;
    // Warm-up: the id counters and the first payment's reads.
    let mut payouts = Vec::new();
    for _ in 0..N {
        payouts.push(h.api.payout("10.00").await.payment);
    }
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut stream = kobatela_local::stream::StreamSource::open(
        &config,
        &Client::new(&config),
        &h.api.table,
        kobatela_local::stream::StartAt::Oldest,
    )
    .await
    .unwrap();
    let dispatcher = payout_dispatch::Dispatcher::new(
        h.api.state.store.clone(),
        Arc::new(kobatela_tests::AcceptingPsp),
    );
    let handler = move |event: aws_lambda_events::dynamodb::Event| {
        let dispatcher = dispatcher.clone();
        async move { Ok::<_, String>(dispatcher.handle(event).await) }
    };
    h.meter.reset();
    stream.deliver_all(&handler, 50).await.unwrap();
    let cost = h.cost().await;
    println!(
        "dispatch: {:?} for {N}; items per transaction {:?}; write units {:.1} per payout, index writes {:.1}",
        cost.tally.executions,
        cost.sizes.first().map(|t| t.len()),
        per(cost.priced, N),
        per(cost.index_units, N)
    );
    assert_eq!(
        cost.tally.executions,
        BTreeMap::from([(GET.to_string(), 2 * N), (TRANSACT.to_string(), N)]),
        "a dispatch: two reads, one transaction"
    );
    assert_eq!(cost.total, 3 * N);
    assert!(cost.sizes.iter().all(|t| t.len() == 3), "{:?}", cost.sizes);
    assert_eq!(
        cost.priced,
        2 * 3 * N,
        "every item under 1 KiB: {:?}",
        cost.sizes
    );
    for payment in payouts {
        let read = h.api.get(&format!("/payments/{payment}")).await.expect(200);
        assert_eq!(read.body["status"], "SENT");
    }
}

/// An auto-approved proof: DynamoDB round trips, the transaction's items
/// and write units, and the S3 bytes the server reads (exactly the file;
/// never more than declared + 1 when the object is longer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_approved_proof_costs_few_round_trips_and_reads_the_file_once() {
    use kobatela_tests::photos;
    const N: u64 = 5;
    let h = harness().await;
    let two = json!({"amount_total": "20.00", "milestones": [
        {"label": "a", "amount": "10.00", "proof_type": "PHOTO"},
        {"label": "b", "amount": "10.00", "proof_type": "PHOTO"}]});
    let mut ready = Vec::new();
    for _ in 0..=N {
        let s = EscrowSetup::with(&h.api, two.clone()).await;
        h.api
            .deposit(s.escrow, &unique("k"), "20.00")
            .await
            .expect(200);
        let bytes = photos::unique_bytes(photos::photo(10, None));
        let upload = h
            .api
            .post(
                "/proofs/uploads",
                photos::upload_body(s.escrow, 1, "image/jpeg", &bytes),
            )
            .await
            .expect(201);
        assert_eq!(
            photos::put_presigned(&upload.body, bytes.clone(), true).await,
            200
        );
        ready.push((
            s.escrow,
            upload.body["upload_id"].clone(),
            bytes.len() as u64,
        ));
    }
    let submit = |escrow: u64, upload_id: Value| {
        h.api.post(
            "/proofs",
            json!({"escrow_id": escrow, "milestone_idx": 1, "type": "PHOTO", "upload_id": upload_id}),
        )
    };
    // Warm-up: proof and payment ids reserved, the key cached.
    let (escrow, upload_id, _) = ready.remove(0);
    submit(escrow, upload_id).await.expect(201);
    h.meter.reset();
    let read_before = h.api.blob.bytes_read();
    let mut file_bytes = 0;
    for (escrow, upload_id, size) in ready {
        let proof = submit(escrow, upload_id).await.expect(201);
        assert_eq!(proof.body["status"], "APPROVED");
        file_bytes += size;
    }
    let read = h.api.blob.bytes_read() - read_before;
    let tally = h.meter.tally(std::mem::take);
    let total: u64 = tally.executions.values().sum();
    let sizes = item_sizes(&tally, &h.table).await;
    let priced: u64 = sizes
        .iter()
        .flatten()
        .map(|(_, size)| transactional_wcu(*size))
        .sum();
    println!(
        "auto-approved proof: {:.2} round trips ({:?}); {:?} items per transaction; {:.1} write units; S3 bytes read {read} for {file_bytes} bytes of files",
        per(total, N),
        tally.executions,
        sizes.iter().map(Vec::len).collect::<Vec<_>>(),
        per(priced, N),
    );
    // The upload and the file's guard (GetItem), the escrow (Query) for the
    // judge, then the payout hook: the escrow again, one transaction.
    assert_eq!(
        (
            calls_of(&tally, GET),
            calls_of(&tally, QUERY),
            calls_of(&tally, TRANSACT)
        ),
        (2 * N, 2 * N, N),
        "{:?}",
        tally.executions
    );
    assert_eq!(total, 5 * N);
    // Escrow update, payment, PSP reference, milestone PAID, the check that
    // milestone 2 is unpaid, the payout's audit entry and event; the proof,
    // its file's guard, SUBMIT_PROOF and APPROVE_PROOF, PROOF_SUBMITTED and
    // PROOF_APPROVED: 13 items, each under 1 KiB.
    assert!(sizes.iter().all(|t| t.len() == 13), "{sizes:?}");
    assert_eq!(priced, 26 * N, "item sizes {sizes:?}");
    assert_eq!(read, file_bytes, "the server reads each file once, whole");

    // An object longer than declared: at most declared + 1 bytes are read.
    let s = EscrowSetup::with(&h.api, two.clone()).await;
    h.api
        .deposit(s.escrow, &unique("k"), "20.00")
        .await
        .expect(200);
    let bytes = photos::unique_bytes(photos::photo(10, None));
    let upload = h
        .api
        .post(
            "/proofs/uploads",
            photos::upload_body(s.escrow, 1, "image/jpeg", &bytes),
        )
        .await
        .expect(201);
    let mut longer = bytes.clone();
    longer.extend(vec![7u8; 1 << 20]);
    assert_eq!(
        photos::put_presigned(&upload.body, longer, false).await,
        200
    );
    let before = h.api.blob.bytes_read();
    submit(s.escrow, upload.body["upload_id"].clone())
        .await
        .expect_error(422, "PROOF_HASH_MISMATCH");
    assert_eq!(h.api.blob.bytes_read() - before, bytes.len() as u64 + 1);
}

/// The ledger check of `mandates` mandates (two purchases each) and
/// `escrows` escrows (funded, released to their beneficiary), run whole in
/// one segment and one page: what it cost after its start.
async fn ledger_check_cost(h: &Harness, mandates: u64, escrows: u64) -> Cost {
    for _ in 0..mandates {
        let m = MandateSetup::new(&h.api, "50.00").await;
        for _ in 0..2 {
            h.api
                .purchase(&unique("p"), m.purchase("1.00"))
                .await
                .expect(201);
        }
    }
    for _ in 0..escrows {
        let e = EscrowSetup::new(&h.api, "20.00").await;
        h.api
            .deposit(e.escrow, &unique("d"), "20.00")
            .await
            .expect(200);
        for action in ["mark-delivered", "client-approve"] {
            h.api.escrow_action(e.escrow, action).await.expect(200);
        }
    }
    let store = &h.api.state.store;
    let run = ledger::start(store, "test".into(), 1)
        .await
        .unwrap()
        .unwrap();
    h.meter.reset();
    let budget =
        ledger::Budget::until(std::time::Instant::now() + std::time::Duration::from_secs(120));
    let done = ledger::advance(store, run.id, budget)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, RunStatus::Done);
    assert_eq!(
        (
            done.counts.mandates,
            done.counts.escrows,
            done.counts.mismatches
        ),
        (mandates, escrows, 0)
    );
    h.cost().await
}

/// The ledger check reads each mandate in 3 round trips (GetItem of the
/// mandate, a Query of its trail, a BatchGetItem of its purchases) and each
/// escrow in 5 (a Query of the escrow with its milestones, one of its
/// trail, its payments by index then in one batch, a Query of its payees),
/// after one read of the run and one Scan per page of its segment; it
/// writes one transaction per page: the run over its version, and the
/// pointer freed when it is DONE. Two tables of different sizes: the
/// difference is the cost per entity, the rest the fixed part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_check_costs_a_few_reads_per_entity_and_one_write_per_page() {
    let mut costs = Vec::new();
    for (mandates, escrows) in [(2, 1), (6, 3)] {
        let h = harness().await;
        let cost = ledger_check_cost(&h, mandates, escrows).await;
        println!(
            "ledger check of {mandates} mandates and {escrows} escrows: {} round trips ({:?}), \
             write units {}",
            cost.total, cost.tally.executions, cost.priced
        );
        // One page: one transaction (the run and the pointer), both items
        // under 1 KB, and no other write of any kind.
        assert_eq!(calls_of(&cost.tally, TRANSACT), 1);
        assert_eq!(cost.sizes.len(), 1);
        assert_eq!(cost.sizes[0].len(), 2, "{:?}", cost.sizes);
        assert_eq!(cost.priced, 4, "{:?}", cost.sizes);
        for write in ["PutItem", UPDATE, "DeleteItem", "BatchWriteItem"] {
            assert_eq!(calls_of(&cost.tally, write), 0, "{write}");
        }
        assert_eq!(calls_of(&cost.tally, "Scan"), 1);
        costs.push((mandates, escrows, cost));
    }
    let [(m1, e1, small), (m2, e2, large)] = &costs[..] else {
        unreachable!()
    };
    let more = |op: &str| calls_of(&large.tally, op) - calls_of(&small.tally, op);
    let (dm, de) = (m2 - m1, e2 - e1);
    assert_eq!(more(GET), dm, "the mandate");
    assert_eq!(
        more(QUERY),
        dm + 4 * de,
        "a trail each; escrow, payments, payees"
    );
    assert_eq!(
        more(BATCH_GET),
        dm + de,
        "purchases per mandate, payments per escrow"
    );
    assert_eq!(large.total - small.total, 3 * dm + 5 * de);
    // The fixed part: the run read, the Scan, the save.
    assert_eq!(small.total - 3 * m1 - 5 * e1, 3);
}

/// A settlement report whose lines are each our payment, settled as we
/// have it: two batched reads per 100 lines (the references, then their
/// payments); our SETTLED payments of the report's day by `gsi2`, one
/// Query per index shard (and day), and their batch; the report's id; one write,
/// the report; no alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_report_costs_two_batched_reads_per_hundred_lines() {
    const N: usize = 3;
    let h = harness().await;
    let mut lines = String::from("psp_ref,amount,currency,status,settled_at\n");
    for _ in 0..N {
        let e = EscrowSetup::new(&h.api, "9.00").await;
        h.api
            .deposit(e.escrow, &unique("d"), "9.00")
            .await
            .expect(200);
        for action in ["mark-delivered", "client-approve"] {
            h.api.escrow_action(e.escrow, action).await.expect(200);
        }
        let page = h
            .api
            .get(&format!("/payments?escrow_id={}", e.escrow))
            .await
            .expect(200);
        let psp_ref = page.body["items"][0]["psp_ref"]
            .as_str()
            .unwrap()
            .to_string();
        let body = kobatela_tests::psp_body(&unique("evt"), "payment.settled", &psp_ref);
        let headers = kobatela_tests::psp_headers(&body);
        h.api
            .psp_webhook(&kobatela_tests::header_refs(&headers), &body)
            .await
            .expect(200);
        assert_eq!(h.api.consume_psp().await, (1, 0));
        lines.push_str(&format!(
            "{psp_ref},9.00,USD,SETTLED,{}\n",
            Timestamp::now()
        ));
    }
    h.meter.reset();
    let report = reconcile_report(&h.api.state.store, lines.as_bytes(), "apikey:1".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.matched, report.alerts_raised), (N as u64, 0));
    let cost = h.cost().await;
    println!(
        "settlement report of {N} lines: {} round trips ({:?}), write units {}",
        cost.total, cost.tally.executions, cost.priced
    );
    // A day's partitions (two if the lines straddle midnight).
    let partitions = shared::store::keys::settled_on_partitions(
        report.period_start.unwrap(),
        report.period_end.unwrap(),
    );
    assert!(partitions.len() as u64 <= 2 * shared::store::keys::index_shards());
    assert_eq!(
        cost.tally.executions,
        BTreeMap::from([
            (BATCH_GET.to_string(), 2 + 1),
            (QUERY.to_string(), partitions.len() as u64),
            (UPDATE.to_string(), 1),
            (TRANSACT.to_string(), 1),
        ])
    );
    assert_eq!(cost.sizes, [[("Put", cost.sizes[0][0].1)]]);
}

fn calls_of(tally: &Tally, op: &str) -> u64 {
    tally.executions.get(op).copied().unwrap_or(0)
}
