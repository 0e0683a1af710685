//! The ledger check: every mandate and escrow of the table, found by a
//! parallel Scan, rebuilt from its records and held to
//! `domain::ledger`'s invariants; each mismatch is one `LEDGER_MISMATCH`
//! alert (once per entity and invariant) and one finding of the run.
//!
//! Invariants:
//! - It writes nothing but its run item and alerts.
//! - A run is advanced a page of every unfinished segment at a time, and
//!   saved after each: an invocation that runs out of time (Lambda's 15
//!   minutes) leaves a cursor the next one goes on from, so a table of
//!   millions finishes across invocations. A page that meets a busy
//!   DynamoDB is checked again from the same cursors: it saved nothing, and
//!   an alert it raised is found raised and still counted by its run.
//! - An entity is read item by item, not as one snapshot, so a write
//!   landing between two reads can look like a mismatch: a mismatch is
//!   read again before it counts, and only what both reads find is kept.
//! - A mandate's purchases are those its `USAGE_MANDATE_DEBITED` entries
//!   name (a purchase is written only in the transaction that writes its
//!   entry), each read back and checked to belong to the mandate.

use crate::{
    domain::{
        escrow::payment::{Payee, PaymentKind},
        ids::Id,
        ledger::{
            check_escrow, check_mandate, check_payee, Entity, EscrowLedger, Finding, MandateLedger,
            PayeeLedger, PaymentLine, RunStatus,
        },
        money::Amount,
        time::Timestamp,
    },
    error::AppError,
    store::{
        audit::{action, entity},
        ledger::{LedgerRun, Root, SegmentCursor, MAX_FINDINGS_KEPT},
        list::{Page, PageRequest},
        Store,
    },
};
use futures::future::try_join_all;
use std::time::Instant;

/// Scan segments of a run by default: pages read in parallel.
pub const DEFAULT_SEGMENTS: u32 = 4;

/// Items a segment's page reads (not all are mandates or escrows).
pub const DEFAULT_PAGE_ITEMS: i32 = 500;

/// Entities checked at once within a page.
const CONCURRENT_CHECKS: usize = 8;

/// How much one invocation may do.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// No new page is started after this instant.
    pub until: Instant,
    /// Nor after this many pages (of every unfinished segment each).
    pub pages: u32,
    pub page_items: i32,
}

impl Budget {
    /// Until `until`, pages of [`DEFAULT_PAGE_ITEMS`].
    pub fn until(until: Instant) -> Budget {
        Budget {
            until,
            pages: u32::MAX,
            page_items: DEFAULT_PAGE_ITEMS,
        }
    }
}

/// Starts a run (`Ok`), or answers the one RUNNING (`Err`).
pub async fn start(
    store: &Store,
    requested_by: String,
    segments: u32,
) -> Result<Result<LedgerRun, LedgerRun>, AppError> {
    store
        .start_ledger_run(requested_by, segments, Timestamp::now())
        .await
}

/// What the schedule does each time it fires: go on with the RUNNING run;
/// else, when the last run started `every` or longer ago (or none ever
/// did), start one and go on with it. `None`: nothing was due.
pub async fn tick(
    store: &Store,
    every: std::time::Duration,
    budget: Budget,
) -> Result<Option<LedgerRun>, AppError> {
    let now = Timestamp::now();
    let due = |run: &LedgerRun| {
        let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
        run.started_at.plus_seconds(every) <= now
    };
    let run = match store.current_ledger_run().await? {
        Some(run) if run.status == RunStatus::Running => run,
        Some(run) if !due(&run) => return Ok(None),
        _ => match start(store, "schedule".into(), DEFAULT_SEGMENTS).await? {
            Ok(run) | Err(run) => run,
        },
    };
    advance(store, run.id, budget).await
}

/// Advances run `id` until it is DONE or `budget` is spent, and answers it
/// as saved (`None`: no such run). A page that meets a busy DynamoDB is
/// checked again from its saved cursors, with backoff: it recorded nothing,
/// and the alerts it raised are found raised.
pub async fn advance(store: &Store, id: Id, budget: Budget) -> Result<Option<LedgerRun>, AppError> {
    let Some(mut run) = store.ledger_run(id).await? else {
        return Ok(None);
    };
    let mut pages_done = 0;
    while run.status == RunStatus::Running
        && Instant::now() < budget.until
        && pages_done < budget.pages
    {
        pages_done += 1;
        run = store
            .until_settled("ledger page", AppError::busy, || async {
                check_page(store, &run, budget.page_items).await.map(Some)
            })
            .await?;
    }
    Ok(Some(run))
}

/// Checks the next page of every unfinished segment of `run` and saves the
/// run over the version it was read at: the run as saved, by this call or
/// by another invocation that recorded this page first.
async fn check_page(
    store: &Store,
    run: &LedgerRun,
    page_items: i32,
) -> Result<LedgerRun, AppError> {
    let mut next = run.clone();
    let segments = run.segments.len() as u32;
    let open: Vec<(usize, SegmentCursor)> = run
        .segments
        .iter()
        .cloned()
        .enumerate()
        .filter(|(_, cursor)| *cursor != SegmentCursor::Done)
        .collect();
    let pages = try_join_all(open.into_iter().map(|(i, cursor)| async move {
        let (roots, after) = store
            .scan_roots(i as u32, segments, &cursor, page_items)
            .await?;
        Ok::<_, AppError>((i, roots, after))
    }))
    .await?;
    let mut roots = Vec::new();
    for (i, found, after) in pages {
        next.segments[i] = after;
        roots.extend(found);
    }
    let mut checked: Vec<(Root, Vec<Finding>, u64)> = Vec::new();
    for batch in roots.chunks(CONCURRENT_CHECKS) {
        let results = try_join_all(batch.iter().map(|&root| async move {
            let (findings, payees) = check_confirmed(store, root).await?;
            Ok::<_, AppError>((root, findings, payees))
        }))
        .await?;
        checked.extend(results);
    }
    let now = Timestamp::now();
    for (root, findings, payees) in checked {
        match root {
            Root::Mandate(_) => next.counts.mandates += 1,
            Root::Escrow(_) => next.counts.escrows += 1,
        }
        next.counts.payees += payees;
        for finding in findings {
            next.counts.mismatches += 1;
            if store
                .raise_ledger_alert(&finding, run.started_at, now)
                .await?
            {
                next.counts.alerts_raised += 1;
            }
            if next.findings.len() < MAX_FINDINGS_KEPT {
                next.findings.push(finding);
            }
        }
    }
    if next.segments.iter().all(|c| *c == SegmentCursor::Done) {
        next.status = RunStatus::Done;
        next.finished_at = Some(now);
    }
    if store.save_ledger_run(&next).await? {
        next.version += 1;
        return Ok(next);
    }
    // Another invocation recorded this page first: go on from its.
    store
        .ledger_run(run.id)
        .await?
        .ok_or_else(|| AppError::internal(format!("ledger run {} vanished", run.id)))
}

/// What one entity breaks, confirmed by a second read; and how many payees
/// were checked with it.
async fn check_confirmed(store: &Store, root: Root) -> Result<(Vec<Finding>, u64), AppError> {
    let (first, payees) = check_root(store, root).await?;
    if first.is_empty() {
        return Ok((first, payees));
    }
    let (again, _) = check_root(store, root).await?;
    Ok((
        first.into_iter().filter(|f| again.contains(f)).collect(),
        payees,
    ))
}

/// One entity's findings (an escrow's include its payees'), and the number
/// of payees checked.
pub async fn check_root(store: &Store, root: Root) -> Result<(Vec<Finding>, u64), AppError> {
    match root {
        Root::Mandate(id) => Ok((check_one_mandate(store, id).await?, 0)),
        Root::Escrow(id) => check_one_escrow(store, id).await,
    }
}

async fn check_one_mandate(store: &Store, id: Id) -> Result<Vec<Finding>, AppError> {
    let Some(mandate) = store.mandate(id).await? else {
        return Ok(Vec::new());
    };
    let trail = store.audit_trail(entity::MANDATE, id).await?;
    let amount_of = |data: &str, field: &str| -> Option<Amount> {
        let data: serde_json::Value = serde_json::from_str(data).ok()?;
        Amount::from_json(data.get(field)?).ok()
    };
    let mut initial = None;
    let mut debits = Vec::new();
    let mut debited = Vec::new();
    for entry in &trail {
        if entry.action == action::MANDATE_CREATED {
            initial = amount_of(&entry.data, "total_amount");
        } else if entry.action == action::MANDATE_DEBITED {
            let amount = amount_of(&entry.data, "amount").ok_or_else(|| {
                AppError::internal(format!("mandate {id}: a debit without amount"))
            })?;
            debits.push(amount);
            let purchase = serde_json::from_str::<serde_json::Value>(&entry.data)
                .ok()
                .and_then(|d| Id::from_json(d.get("purchase_id")?).ok())
                .ok_or_else(|| {
                    AppError::internal(format!("mandate {id}: a debit without purchase"))
                })?;
            debited.push(purchase);
        }
    }
    let entity = Entity::Mandate { id };
    let Some(initial) = initial else {
        return Ok(vec![Finding {
            entity,
            invariant: crate::domain::ledger::Invariant::MandateRemaining,
            milestone_id: None,
            stored: "no USAGE_MANDATE_CREATED entry".into(),
            derived: mandate.balance.to_string(),
        }]);
    };
    let found = store.purchase_amounts(&debited).await?;
    let purchases = debited
        .iter()
        .filter_map(|p| found.get(p))
        .filter(|(mandate_id, _)| *mandate_id == id)
        .map(|&(_, amount)| amount)
        .collect();
    let ledger = MandateLedger {
        initial,
        remaining: mandate.balance,
        spent: mandate.spent,
        purchases,
        debits,
    };
    Ok(check_mandate(&ledger)
        .iter()
        .map(|m| Finding::of(&entity, m))
        .collect())
}

async fn check_one_escrow(store: &Store, id: Id) -> Result<(Vec<Finding>, u64), AppError> {
    let Some(escrow) = store.escrow(id).await? else {
        return Ok((Vec::new(), 0));
    };
    let trail = store.audit_trail(entity::ESCROW, id).await?;
    let deposits = trail
        .iter()
        .filter(|e| e.action == "ESCROW_DEPOSITED")
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.data)
                .ok()
                .and_then(|d| Amount::from_json(d.get("amount")?).ok())
                .ok_or_else(|| AppError::internal(format!("escrow {id}: a deposit without amount")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let payments = all_pages(|page| store.payments(Some(id), None, page)).await?;
    let payees = all_pages(|page| store.payees(id, page)).await?;
    let ledger = EscrowLedger {
        balances: escrow.balances(),
        deposits,
        payments: payments
            .iter()
            .map(|p| PaymentLine {
                kind: p.kind,
                status: p.status,
                amount: p.amount,
                milestone_id: p.milestone_id,
            })
            .collect(),
        milestones: escrow.milestones.iter().map(|m| (m.id, m.status)).collect(),
    };
    let entity = Entity::Escrow { id };
    let mut findings: Vec<Finding> = check_escrow(&ledger)
        .iter()
        .map(|m| Finding::of(&entity, m))
        .collect();
    for payee in &payees {
        let spends = payments
            .iter()
            .filter(|p| {
                p.kind == PaymentKind::UsageSpend
                    && matches!(&p.payee, Payee::Ref { payee_ref } if *payee_ref == payee.payee_ref)
            })
            .map(|p| (p.status, p.amount))
            .collect();
        let ledger = PayeeLedger {
            spent_total: payee.spent_total,
            spends,
        };
        let entity = Entity::Payee {
            escrow_id: id,
            payee_ref: payee.payee_ref.clone(),
        };
        findings.extend(check_payee(&ledger).iter().map(|m| Finding::of(&entity, m)));
    }
    Ok((findings, payees.len() as u64))
}

/// Every item of a list, page after page (100 at a time).
async fn all_pages<T, F, Fut>(mut read: F) -> Result<Vec<T>, AppError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, AppError>>,
{
    let mut items = Vec::new();
    let mut past = None;
    loop {
        let page = read(PageRequest { limit: 100, past }).await?;
        items.extend(page.items);
        match page.next_cursor {
            None => return Ok(items),
            Some(cursor) => {
                past = Some(Id::parse(&cursor).map_err(|_| {
                    AppError::internal(format!("a list cursor that is not an id: {cursor}"))
                })?)
            }
        }
    }
}
