//! [`Table`]: direct access to the emulator's table, to check what is stored
//! and to write what the API refuses to (backdated deadlines, index entries of
//! an older layout), and [`EscrowFootprint`].

use crate::env;
use aws_sdk_dynamodb::{operation::scan::builders::ScanFluentBuilder, types::AttributeValue};
use serde_json::Value;
use std::collections::HashMap;

/// Direct access to the emulator's table: reads that check the stored state,
/// and the writes the API refuses (backdating, index entries of an older layout).
pub struct Table {
    client: aws_sdk_dynamodb::Client,
    name: String,
}

impl Table {
    pub async fn new() -> Table {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Table {
            client: aws_sdk_dynamodb::Client::new(&config),
            name: env("KOBATELA_TABLE"),
        }
    }

    /// Every item that `filter` (a scan with its filter set) keeps, all pages.
    async fn scan_all(
        &self,
        filter: impl Fn(ScanFluentBuilder) -> ScanFluentBuilder,
    ) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = filter(self.client.scan().table_name(&self.name))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan works");
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    /// Every item whose `attribute` equals `value` (a number), all pages.
    pub async fn items_where(
        &self,
        attribute: &str,
        value: u64,
    ) -> Vec<HashMap<String, AttributeValue>> {
        self.scan_all(|scan| {
            scan.filter_expression("#a = :v")
                .expression_attribute_names("#a", attribute)
                .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
        })
        .await
    }

    /// Every item whose partition key starts with `pk_prefix` (`PURCHASE#`,
    /// `IDEMPOTENCY#`…), all pages.
    pub async fn items_with_prefix(&self, pk_prefix: &str) -> Vec<HashMap<String, AttributeValue>> {
        self.scan_all(|scan| {
            scan.filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(pk_prefix.into()))
        })
        .await
    }

    /// The item stored under `key` (consistent read), if any.
    pub async fn item(
        &self,
        key: HashMap<String, AttributeValue>,
    ) -> Option<HashMap<String, AttributeValue>> {
        self.client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .expect("get_item works")
            .item
    }

    /// Items of one partition key prefix (`PURCHASE#`, `AUDIT#USAGE_MANDATE#7`…)
    /// whose `attribute` is `value`.
    pub async fn count(&self, pk_prefix: &str, attribute: &str, value: u64) -> usize {
        self.items_where(attribute, value)
            .await
            .iter()
            .filter(|item| item["pk"].as_s().is_ok_and(|pk| pk.starts_with(pk_prefix)))
            .count()
    }

    /// The purchases of one mandate.
    pub async fn purchases_of(&self, mandate: u64) -> Vec<HashMap<String, AttributeValue>> {
        self.items_where("mandate_id", mandate)
            .await
            .into_iter()
            .filter(|item| {
                item["pk"]
                    .as_s()
                    .is_ok_and(|pk| pk.starts_with("PURCHASE#"))
            })
            .collect()
    }

    /// The audit actions recorded for one entity, oldest first.
    pub async fn audit_actions(&self, entity: &str, id: u64) -> Vec<String> {
        let page = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("AUDIT#{entity}#{id}")))
            .consistent_read(true)
            .send()
            .await
            .expect("query works");
        page.items()
            .iter()
            .map(|item| item["action"].as_s().unwrap().clone())
            .collect()
    }

    /// Every item in the table (for "nothing else was written" checks).
    pub async fn item_count(&self) -> usize {
        let mut count = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.name)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan works");
            count += page.count as usize;
            start = page.last_evaluated_key;
            if start.is_none() {
                return count;
            }
        }
    }
}

/// What is stored about one escrow (see [`Table::escrow_footprint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowFootprint {
    pub status: String,
    pub funded: i64,
    pub available: i64,
    pub paid: i64,
    pub refunded: i64,
    /// The escrow and its milestones.
    pub items: usize,
    pub events: usize,
    pub payments: usize,
    pub audit: usize,
}

/// Sum of the `amount` fields (cents) of purchase items.
pub fn cents_of(items: &[HashMap<String, AttributeValue>]) -> i64 {
    items
        .iter()
        .map(|item| item["amount_cents"].as_n().unwrap().parse::<i64>().unwrap())
        .sum()
}

/// A moment long past: what tests backdate deadlines and entries to, as the
/// API refuses past dates and tests must not wait for real time.
pub const PAST: &str = "2020-01-01T00:00:00.000000Z";

/// The deadline index sort key of `id` at [`PAST`] (`keys::expiry_sort_key`).
fn past_entry(id: u64) -> String {
    format!("{PAST}#{id:020}")
}

impl Table {
    /// The table of an in-process API.
    pub async fn named(name: &str) -> Table {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Table {
            client: aws_sdk_dynamodb::Client::new(&config),
            name: name.to_string(),
        }
    }

    /// Writes an item of string attributes as given (for tests that need
    /// what the API never writes, such as a corrupt index entry).
    pub async fn put(&self, item: Value) {
        let item = item
            .as_object()
            .expect("an object")
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    AttributeValue::S(v.as_str().expect("strings").to_string()),
                )
            })
            .collect();
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .expect("put_item works");
    }

    /// Sets number `attribute` of item (`pk`, `sk`), which must exist: a
    /// stored balance corrupted as a bad write would leave it.
    pub async fn set_number(&self, pk: &str, sk: &str, attribute: &str, value: i64) {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.to_string()))
            .key("sk", AttributeValue::S(sk.to_string()))
            .update_expression("SET #a = :v")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
            .send()
            .await
            .expect("the item exists");
    }

    /// The items of one partition key, exactly (consistent).
    pub async fn partition(&self, pk: &str) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("query works");
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    /// The payments of one escrow, as stored.
    pub async fn payments_of(&self, escrow: u64) -> Vec<HashMap<String, AttributeValue>> {
        self.items_where("escrow_id", escrow)
            .await
            .into_iter()
            .filter(|item| item["pk"].as_s().is_ok_and(|pk| pk.starts_with("PAYMENT#")))
            .collect()
    }

    /// Everything stored about one escrow: its balances and status as
    /// stored, and how many milestones, timeline events, payments and audit
    /// entries (escrow and its payments') it has. Two equal footprints: the
    /// escrow did not change.
    pub async fn escrow_footprint(&self, escrow: u64) -> EscrowFootprint {
        let own = self.partition(&format!("ESCROW#{escrow}")).await;
        let record = own
            .iter()
            .find(|i| i["sk"].as_s().is_ok_and(|sk| sk == "ESCROW"))
            .expect("the escrow is stored");
        let cents = |name: &str| record[name].as_n().unwrap().parse::<i64>().unwrap();
        let payments = self.payments_of(escrow).await;
        let mut audit = self.audit_actions("ESCROW", escrow).await.len();
        for payment in &payments {
            let id: u64 = payment["id"].as_n().unwrap().parse().unwrap();
            audit += self.audit_actions("PAYMENT", id).await.len();
        }
        let footprint = EscrowFootprint {
            status: record["status"].as_s().unwrap().clone(),
            funded: cents("funded_cents"),
            available: cents("available_cents"),
            paid: cents("paid_cents"),
            refunded: cents("refunded_cents"),
            items: own.len(),
            events: self
                .partition(&format!("ESCROW_EVENTS#{escrow}"))
                .await
                .len(),
            payments: payments.len(),
            audit,
        };
        assert_eq!(
            footprint.funded,
            footprint.available + footprint.paid + footprint.refunded,
            "escrow {escrow}: the money invariant is broken: {footprint:?}"
        );
        footprint
    }

    /// Moves an open escrow's deadline into the past (the API refuses past
    /// deadlines, and tests must not wait for real time).
    pub async fn backdate_escrow(&self, escrow: u64) {
        let update = |expression: &str, condition: &str, value: String| {
            self.client
                .update_item()
                .table_name(&self.name)
                .key("pk", AttributeValue::S(format!("ESCROW#{escrow}")))
                .key("sk", AttributeValue::S("ESCROW".into()))
                .update_expression(expression)
                .condition_expression(condition)
                .expression_attribute_values(":v", AttributeValue::S(value))
                .send()
        };
        update("SET deadline_at = :v", "attribute_exists(pk)", PAST.into())
            .await
            .expect("an escrow to backdate");
        // Its deadline index entry, if it has one (a DRAFT has none).
        let entry = update(
            "SET expiry_sk = :v",
            "attribute_exists(expiry_pk)",
            past_entry(escrow),
        )
        .await;
        if let Err(e) = entry {
            let e = e.into_service_error();
            assert!(e.is_conditional_check_failed_exception(), "{e:?}");
        }
    }

    /// Writes `count` escrow items from id `first` on, in `status`, each
    /// with a deadline index entry past due under `OPEN_ESCROW`: what the
    /// index held before it kept only what a sweep can act on (every open
    /// escrow, alerted or not). Items the API never reads as escrows.
    pub async fn put_legacy_deadline_entries(&self, first: u64, count: u64, status: &str) {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        use shared::{domain::ids::Id, store::keys};
        let ids: Vec<u64> = (first..first + count).collect();
        for chunk in ids.chunks(25) {
            let mut writes = Vec::new();
            for &id in chunk {
                let item = HashMap::from([
                    ("pk".to_string(), AttributeValue::S(format!("ESCROW#{id}"))),
                    ("sk".to_string(), AttributeValue::S("ESCROW".into())),
                    ("status".to_string(), AttributeValue::S(status.into())),
                    (
                        "expiry_pk".to_string(),
                        AttributeValue::S(keys::sharded_partition(
                            keys::OPEN_ESCROWS,
                            Id::new(id).unwrap(),
                        )),
                    ),
                    ("expiry_sk".to_string(), AttributeValue::S(past_entry(id))),
                ]);
                let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
                writes.push(WriteRequest::builder().put_request(put).build());
            }
            let mut pending = Some(HashMap::from([(self.name.clone(), writes)]));
            while let Some(request) = pending.take() {
                let out = self
                    .client
                    .batch_write_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .expect("the emulator takes the batch");
                pending = out.unprocessed_items.filter(|u| !u.is_empty());
            }
        }
    }

    /// Puts an escrow back in the deadline index under `OPEN_ESCROW`, past
    /// due, as the index kept every open escrow before.
    pub async fn put_legacy_deadline_entry(&self, escrow: u64) {
        use shared::{domain::ids::Id, store::keys};
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(format!("ESCROW#{escrow}")))
            .key("sk", AttributeValue::S("ESCROW".into()))
            .update_expression("SET expiry_pk = :pk, expiry_sk = :sk")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(keys::sharded_partition(
                    keys::OPEN_ESCROWS,
                    Id::new(escrow).unwrap(),
                )),
            )
            .expression_attribute_values(":sk", AttributeValue::S(past_entry(escrow)))
            .send()
            .await
            .expect("an escrow to index");
    }

    /// Moves a PENDING payment's entry in the stuck-payout index into the
    /// past, as if it had waited long: tests must not wait 15 minutes.
    pub async fn backdate_pending_payment(&self, payment: u64) {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(format!("PAYMENT#{payment}")))
            .key("sk", AttributeValue::S("PAYMENT".into()))
            .update_expression("SET expiry_sk = :sk")
            .condition_expression("attribute_exists(expiry_pk)")
            .expression_attribute_values(":sk", AttributeValue::S(past_entry(payment)))
            .send()
            .await
            .expect("a PENDING payment to backdate");
    }

    /// How many entries the deadline index holds under `kind`'s shards.
    pub async fn deadline_entries(&self, kind: &str) -> usize {
        let mut total = 0;
        for shard in shared::store::keys::all_shards(kind) {
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.name)
                    .index_name("active_by_expiry")
                    .key_condition_expression("expiry_pk = :pk")
                    .expression_attribute_values(":pk", AttributeValue::S(shard.clone()))
                    .select(aws_sdk_dynamodb::types::Select::Count)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .expect("the index answers");
                total += usize::try_from(page.count).unwrap();
                start = page.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        total
    }

    /// The deadline index partition an escrow is in, if any.
    pub async fn deadline_entry(&self, escrow: u64) -> Option<String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(format!("ESCROW#{escrow}")))
            .key("sk", AttributeValue::S("ESCROW".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("the table answers")
            .item
            .expect("the escrow is stored");
        item.get("expiry_pk").map(|v| v.as_s().unwrap().clone())
    }

    /// Raises `alert` the way write paths do: its Put (from the store's
    /// builder) in a transaction. `Err` when the transaction is refused (the
    /// cause already raised it).
    pub async fn raise_alert(&self, alert: &shared::store::alerts::NewAlert) -> Result<(), String> {
        let put = shared::store::alerts::alert_put(&self.name, alert).expect("the alert builds");
        self.client
            .transact_write_items()
            .transact_items(put)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
    }

    /// Moves a mandate's expiry into the past, as if its date had come:
    /// the API refuses past dates, and tests must not wait for real time.
    pub async fn backdate_mandate(&self, mandate: u64) {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(format!("MANDATE#{mandate}")))
            .key("sk", AttributeValue::S("MANDATE".into()))
            .update_expression("SET expires_at = :past, expiry_sk = :sk")
            .condition_expression("attribute_exists(expiry_pk)")
            .expression_attribute_values(":past", AttributeValue::S(PAST.into()))
            .expression_attribute_values(":sk", AttributeValue::S(past_entry(mandate)))
            .send()
            .await
            .expect("an ACTIVE mandate to backdate");
    }
}
