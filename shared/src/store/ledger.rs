//! The ledger check's reads and its writes: a parallel Scan that finds
//! every mandate and escrow, the run item that remembers where each scan
//! segment stands, and the `LEDGER_MISMATCH` alerts.
//!
//! Invariants:
//! - The check writes nothing but its run item, alerts and the alert id
//!   counter; its IAM policy says so (template.yaml).
//! - A run item is saved only over the version it was read at, so two
//!   invocations advancing one run never both record a page.
//! - One alert per entity and invariant, ever: its cause is
//!   `ledger:{entity}:{invariant}` (`Finding::cause`), raised by
//!   `Store::raise_alert_once`, which looks before it takes an id and puts
//!   conditionally.

use super::{
    alerts::Raised,
    items::{key_item, s, values, Item},
    keys::{self, Key},
    read::take,
    Store,
};
use crate::{
    domain::{
        alert::AlertType,
        ids::Id,
        ledger::{Finding, RunCounts, RunStatus},
        money::Amount,
        time::Timestamp,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Counter of ledger run ids (`Store::next_id`).
pub const RUN_ID_KIND: &str = "LEDGER_RUN";

/// The findings a run item keeps for `GET /ledger/checks/{id}`; every one
/// is also an alert, and `counts.mismatches` counts them all.
pub const MAX_FINDINGS_KEPT: usize = 100;

/// Where one scan segment of a run stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SegmentCursor {
    Start,
    /// Go on after this table key.
    After {
        pk: String,
        sk: String,
    },
    Done,
}

/// What the scan finds: the entities whose balances are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Mandate(Id),
    Escrow(Id),
}

/// A ledger check run, as stored (`version`: how many times it was saved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRun {
    pub id: Id,
    pub status: RunStatus,
    pub requested_by: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub segments: Vec<SegmentCursor>,
    pub counts: RunCounts,
    pub findings: Vec<Finding>,
    pub version: u64,
}

/// A run as `POST /ledger/checks` and `GET /ledger/checks/{id}` answer
/// it: how far its scan is, not where (its cursors are table keys).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LedgerRunView {
    pub id: Id,
    pub status: RunStatus,
    /// `apikey:{id}`, or `schedule`.
    pub requested_by: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Scan segments, read in parallel, and how many have ended.
    pub segments: u32,
    pub segments_done: u32,
    pub counts: RunCounts,
    /// The mismatches found, at most 100 (`counts.mismatches` counts all).
    pub findings: Vec<Finding>,
}

impl From<LedgerRun> for LedgerRunView {
    fn from(run: LedgerRun) -> LedgerRunView {
        LedgerRunView {
            id: run.id,
            status: run.status,
            requested_by: run.requested_by,
            started_at: run.started_at,
            finished_at: run.finished_at,
            segments: run.segments.len() as u32,
            segments_done: run
                .segments
                .iter()
                .filter(|c| **c == SegmentCursor::Done)
                .count() as u32,
            counts: run.counts,
            findings: run.findings,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RunRecord {
    pk: String,
    sk: String,
    /// JSON text of the run: its cursors are keys of any shape.
    run: String,
    version: u64,
}

/// Names the latest run; `running` while it is RUNNING.
#[derive(Serialize, Deserialize)]
struct Pointer {
    pk: String,
    sk: String,
    run_id: Id,
    running: bool,
}

impl Pointer {
    fn of(run: &LedgerRun) -> Pointer {
        let key = pointer_key();
        Pointer {
            pk: key.pk,
            sk: key.sk,
            run_id: run.id,
            running: run.status == RunStatus::Running,
        }
    }
}

fn pointer_key() -> Key {
    Key {
        pk: "LEDGER_RUN#CURRENT".into(),
        sk: "LEDGER_RUN".into(),
    }
}

fn run_key(id: Id) -> Key {
    Key {
        pk: format!("LEDGER_RUN#{id}"),
        sk: "LEDGER_RUN".into(),
    }
}

/// A purchase as the check reads it.
#[derive(Deserialize)]
struct PurchaseAmount {
    mandate_id: Id,
    amount_cents: i64,
}

impl Store {
    /// One page of scan segment `segment` of `segments`: the mandates and
    /// escrows among the next `limit` items after `cursor` (consistent
    /// reads), and where the segment stands after it.
    pub async fn scan_roots(
        &self,
        segment: u32,
        segments: u32,
        cursor: &SegmentCursor,
        limit: i32,
    ) -> Result<(Vec<Root>, SegmentCursor), AppError> {
        let start = match cursor {
            SegmentCursor::Done => return Ok((Vec::new(), SegmentCursor::Done)),
            SegmentCursor::Start => None,
            SegmentCursor::After { pk, sk } => Some(key_item(&Key {
                pk: pk.clone(),
                sk: sk.clone(),
            })),
        };
        let output = self
            .client
            .scan()
            .table_name(self.table())
            .segment(segment as i32)
            .total_segments(segments as i32)
            .limit(limit)
            .consistent_read(true)
            .filter_expression("#sk IN (:mandate, :escrow)")
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .set_expression_attribute_values(Some(values([
                (":mandate", s("MANDATE")),
                (":escrow", s("ESCROW")),
            ])))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(super::retry::aws_error)?;
        let roots = output.items().iter().filter_map(root_of).collect();
        let next = match output.last_evaluated_key() {
            None => SegmentCursor::Done,
            Some(key) => {
                let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
                match (text(keys::PK), text(keys::SK)) {
                    (Some(pk), Some(sk)) => SegmentCursor::After { pk, sk },
                    _ => return Err(AppError::internal("a scan key without pk and sk")),
                }
            }
        };
        Ok((roots, next))
    }

    /// Each purchase named by `ids` that exists: its mandate and amount.
    pub async fn purchase_amounts(
        &self,
        ids: &[Id],
    ) -> Result<HashMap<Id, (Id, Amount)>, AppError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(100) {
            let keys: Vec<Key> = chunk.iter().map(|&id| keys::purchase(id)).collect();
            let mut items = self.get_many(&keys).await?;
            for (&id, key) in chunk.iter().zip(&keys) {
                if let Some(p) = take::<PurchaseAmount>(&mut items, key)? {
                    let amount = Amount::from_minor_units(p.amount_cents)
                        .map_err(|_| AppError::internal(format!("purchase {id}: a bad amount")))?;
                    found.insert(id, (p.mandate_id, amount));
                }
            }
        }
        Ok(found)
    }

    /// A new run, RUNNING, every segment at its start; or, while another
    /// is RUNNING, that one (`Err`): one run at a time, as the pointer
    /// item `LEDGER_RUN#CURRENT` says.
    pub async fn start_ledger_run(
        &self,
        requested_by: String,
        segments: u32,
        now: Timestamp,
    ) -> Result<Result<LedgerRun, LedgerRun>, AppError> {
        loop {
            if let Some(running) = self.current_ledger_run().await? {
                if running.status == RunStatus::Running {
                    return Ok(Err(running));
                }
            }
            let run = LedgerRun {
                id: self.next_id(RUN_ID_KIND).await?,
                status: RunStatus::Running,
                requested_by: requested_by.clone(),
                started_at: now,
                finished_at: None,
                segments: vec![SegmentCursor::Start; segments.max(1) as usize],
                counts: RunCounts::default(),
                findings: Vec::new(),
                version: 0,
            };
            let pointer = Put::builder()
                .table_name(self.table())
                .set_item(Some(super::items::to_item(&Pointer::of(&run))?))
                .condition_expression("attribute_not_exists(pk) OR running = :false")
                .set_expression_attribute_values(Some(values([(
                    ":false",
                    aws_sdk_dynamodb::types::AttributeValue::Bool(false),
                )])))
                .build()
                .map_err(AppError::internal)?;
            match self
                .transact(vec![
                    self.run_put(&run, None)?,
                    TransactWriteItem::builder().put(pointer).build(),
                ])
                .await
            {
                Ok(()) => return Ok(Ok(run)),
                // Another run started meanwhile: answer it (read again).
                Err(e) if e.failed_condition(1) => continue,
                Err(e) if e.is_busy() => return Err(AppError::busy()),
                Err(e) => return Err(e.unexpected()),
            }
        }
    }

    /// The latest run started, if any.
    pub async fn current_ledger_run(&self) -> Result<Option<LedgerRun>, AppError> {
        match self.get::<Pointer>(&pointer_key()).await? {
            Some(pointer) => self.ledger_run(pointer.run_id).await,
            None => Ok(None),
        }
    }

    pub async fn ledger_run(&self, id: Id) -> Result<Option<LedgerRun>, AppError> {
        let Some(record) = self.get::<RunRecord>(&run_key(id)).await? else {
            return Ok(None);
        };
        let mut run: LedgerRun = serde_json::from_str(&record.run)
            .map_err(|e| AppError::internal(format!("ledger run {id}: {e}")))?;
        run.version = record.version;
        Ok(Some(run))
    }

    /// Saves `run` over the version it was read at (and, when it is DONE,
    /// frees the pointer for the next run, in the same transaction);
    /// `Ok(false)` if another invocation saved it first (its page is then
    /// not recorded here).
    pub async fn save_ledger_run(&self, run: &LedgerRun) -> Result<bool, AppError> {
        let mut items = vec![self.run_put(run, Some(run.version))?];
        if run.status == RunStatus::Done {
            let pointer = Put::builder()
                .table_name(self.table())
                .set_item(Some(super::items::to_item(&Pointer::of(run))?))
                .build()
                .map_err(AppError::internal)?;
            items.push(TransactWriteItem::builder().put(pointer).build());
        }
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_condition(0) => Ok(false),
            Err(e) if e.is_busy() => Err(AppError::busy()),
            Err(e) => Err(e.unexpected()),
        }
    }

    /// The Put of `run`: new (`read_at` None) or over that version.
    fn run_put(
        &self,
        run: &LedgerRun,
        read_at: Option<u64>,
    ) -> Result<TransactWriteItem, AppError> {
        let key = run_key(run.id);
        let record = RunRecord {
            pk: key.pk,
            sk: key.sk,
            run: serde_json::to_string(run).map_err(AppError::internal)?,
            version: read_at.map_or(0, |v| v + 1),
        };
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(super::items::to_item(&record)?));
        let put = match read_at {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(version) => put
                .condition_expression("version = :read_at")
                .set_expression_attribute_values(Some(values([(
                    ":read_at",
                    super::items::n(version),
                )]))),
        }
        .build()
        .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Raises the one `LEDGER_MISMATCH` alert of this entity and invariant,
    /// unless it was raised before: `Ok(true)` if the run that started at
    /// `run_started` raised it, by this call or by an attempt of the same
    /// page that gave up busy after raising it (only runs raise these
    /// alerts, one run at a time).
    pub async fn raise_ledger_alert(
        &self,
        finding: &Finding,
        run_started: Timestamp,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let payload = serde_json::to_value(finding).map_err(AppError::internal)?;
        let raised = self
            .raise_alert_once(
                AlertType::LedgerMismatch,
                finding.cause(),
                finding.message(),
                payload,
                now,
            )
            .await?;
        Ok(match raised {
            Raised::Now => true,
            Raised::Before(at) => at >= run_started,
        })
    }
}

/// The mandate or escrow an item of the scan is, if it is one.
fn root_of(item: &Item) -> Option<Root> {
    let pk = item.get(keys::PK)?.as_s().ok()?;
    let sk = item.get(keys::SK)?.as_s().ok()?;
    let id = Id::parse(pk.rsplit('#').next()?).ok()?;
    let is = |key: Key| key.pk == *pk && key.sk == *sk;
    if is(keys::mandate(id)) {
        Some(Root::Mandate(id))
    } else if is(keys::escrow(id)) {
        Some(Root::Escrow(id))
    } else {
        None
    }
}
