//! The sparse deadline index (`active_by_expiry`, keys only) and the
//! scheduled runs that read it: mandate expiry (`mandates.rs`), the escrow
//! deadline sweep (its reads and entries here, its run in
//! `ops::deadlines`) and the stuck-payout sweep (here).
//!
//! Invariants:
//! - The index holds only what a run can act on: ACTIVE mandates, escrows
//!   whose `domain::escrow::deadline_duty` is some (RELEASABLE, or FUNDED
//!   not yet alerted), and PENDING payments. Acting takes the entry out
//!   (expiry, release, alert; a payment leaving PENDING), so work never
//!   piles up behind entries no run will clear.
//! - One run does bounded work ([`SweepBudget`]): at most
//!   [`SweepBudget::ENTRIES`] entries per sweep and no new work after
//!   [`SweepBudget::TIME`], well inside the function's 60 s timeout. What is
//!   left is reported (`more`) and taken by the next run: the entries that
//!   were acted on are gone, so the next run starts where this one stopped.
//! - RELEASABLE escrows are read first, from a partition of their own:
//!   money due to a provider is never queued behind alerts.
//! - An entry written before these rules (any open status) is cleaned when
//!   a run meets it: removed under the status it was read with.

use super::{
    items::{s, Item},
    keys::{self, Key},
    Store,
};
use crate::{
    domain::{
        alert::AlertType, escrow::payment::PaymentStatus, escrow::EscrowStatus, ids::Id,
        time::Timestamp,
    },
    error::AppError,
};
use std::time::{Duration, Instant};

/// How much one scheduled run may do.
#[derive(Debug, Clone, Copy)]
pub struct SweepBudget {
    /// Index entries one sweep (mandates, or escrows) reads at most.
    pub entries: u32,
    /// No new work starts after this instant.
    pub until: Instant,
}

impl SweepBudget {
    pub const ENTRIES: u32 = 500;
    pub const TIME: Duration = Duration::from_secs(30);

    /// The budget of a run that starts now.
    pub fn starting_now() -> SweepBudget {
        SweepBudget {
            entries: Self::ENTRIES,
            until: Instant::now() + Self::TIME,
        }
    }

    /// The budget of `POST /mandates/cleanup`: the same entries, and time
    /// to answer well inside API Gateway's 30 s.
    pub fn for_request() -> SweepBudget {
        SweepBudget {
            entries: Self::ENTRIES,
            until: Instant::now() + Duration::from_secs(10),
        }
    }

    pub(crate) fn spent(&self) -> bool {
        Instant::now() >= self.until
    }
}

/// Escrows read per batch: the escrow item and its alert guard, 100 keys.
pub(crate) const ESCROWS_PER_BATCH: usize = 50;

/// What the index says is due, within a budget.
#[derive(Debug, Default)]
pub(crate) struct Due {
    pub ids: Vec<Id>,
    /// Entries that are not the table key of their kind: logged, skipped,
    /// never a reason to fail every later run.
    pub unreadable: u32,
    /// The budget ended the read: there may be more due.
    pub more: bool,
}

impl Due {
    pub(crate) fn read(&self) -> u32 {
        u32::try_from(self.ids.len()).unwrap_or(u32::MAX) + self.unreadable
    }
}

/// What one deadline sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadlineSweep {
    /// RELEASABLE escrows past their deadline, RELEASED now (by this run,
    /// or by a run or request that overlapped it: it paid once either way).
    pub released: u32,
    /// FUNDED escrows past their deadline (alerted once, on the first run).
    pub missed: u32,
    /// Entries no run could act on, taken out of the index.
    pub cleaned: u32,
    /// Left for the next run (busy, or unreadable in the index).
    pub skipped: u32,
    /// The budget ended the run before the index did.
    pub more: bool,
}

impl Store {
    /// At most `budget` ids due by `now` under `kind`'s shards of the
    /// (keys-only) deadline index, each read from its entry's table key,
    /// which must be `key_of(id)`'s.
    pub(crate) async fn due(
        &self,
        kind: &str,
        key_of: fn(Id) -> Key,
        now: Timestamp,
        budget: u32,
    ) -> Result<Due, AppError> {
        let mut due = Due::default();
        for shard in keys::all_shards(kind) {
            let mut start = None;
            loop {
                let left = budget.saturating_sub(due.read());
                if left == 0 {
                    due.more = true;
                    return Ok(due);
                }
                let output = self
                    .retry_busy("read the deadline index", || async {
                        self.client
                            .query()
                            .table_name(self.table())
                            .index_name(keys::GSI_ACTIVE_BY_EXPIRY.name)
                            .key_condition_expression("#pk = :pk AND #sk <= :due")
                            .expression_attribute_names("#pk", keys::GSI_ACTIVE_BY_EXPIRY.pk)
                            .expression_attribute_names("#sk", keys::GSI_ACTIVE_BY_EXPIRY.sk)
                            .expression_attribute_values(":pk", s(&shard))
                            // '~' sorts after the '#id' suffix of every key due at `now`.
                            .expression_attribute_values(":due", s(format!("{now}#~")))
                            .limit(i32::try_from(left).unwrap_or(i32::MAX))
                            .set_exclusive_start_key(start.clone())
                            .send()
                            .await
                            .map_err(super::retry::aws_error)
                    })
                    .await?;
                for item in output.items.unwrap_or_default() {
                    match indexed_id(&item, key_of) {
                        Some(id) => due.ids.push(id),
                        None => {
                            tracing::error!(
                                ?item,
                                "unreadable entry in the deadline index: skipped"
                            );
                            due.unreadable += 1;
                        }
                    }
                }
                start = output.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(due)
    }

    /// An entry no run can act on (written before the index held only
    /// duties): out of the index, under the status it was read with.
    pub(crate) async fn clean_entry(
        &self,
        id: Id,
        status: EscrowStatus,
        sweep: &mut DeadlineSweep,
    ) {
        match self
            .transact(vec![self.leave_deadline_index(id, status)])
            .await
        {
            Ok(()) => sweep.cleaned += 1,
            // Its status changed meanwhile, and with it its entry.
            Err(e) if e.failed_condition(0) => {}
            Err(e) => {
                tracing::warn!(escrow = %id, error = ?e, "stale deadline entry kept this run");
                sweep.skipped += 1;
            }
        }
    }
}

/// What one stuck-payout sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StuckSweep {
    /// Payments PENDING for too long: one `PAYOUT_STUCK` alert each.
    pub alerted: u32,
    /// Left for the next run (busy, or unreadable in the index).
    pub skipped: u32,
    /// The budget ended the run before the index did.
    pub more: bool,
}

/// How long a payment may stay PENDING before it is called stuck, unless
/// configured (`KOBATELA_PAYOUT_STUCK_MINUTES`): the dispatcher answers in
/// seconds, and retries a PSP that does not answer for much longer.
pub const STUCK_AFTER: Duration = Duration::from_secs(15 * 60);

/// `KOBATELA_PAYOUT_STUCK_MINUTES` (at least 1), else [`STUCK_AFTER`].
pub fn stuck_after_from_env() -> Result<Duration, AppError> {
    match std::env::var("KOBATELA_PAYOUT_STUCK_MINUTES") {
        Ok(text) if !text.trim().is_empty() => match text.trim().parse::<u64>() {
            Ok(minutes) if minutes >= 1 => Ok(Duration::from_secs(minutes * 60)),
            _ => Err(AppError::internal(format!(
                "KOBATELA_PAYOUT_STUCK_MINUTES={text}: must be whole minutes, at least 1"
            ))),
        },
        _ => Ok(STUCK_AFTER),
    }
}

impl Store {
    /// The stuck-payout sweep (the schedule, after the deadlines): every
    /// payment PENDING since before `now − stuck_after` raises one
    /// `PAYOUT_STUCK` alert `{payment_id, escrow_id, amount, psp_ref,
    /// pending_since}` and leaves the index, in one transaction conditional
    /// on still being PENDING at that attempt; so overlapping runs alert
    /// once, and a retried payment (a new attempt) may alert again.
    pub async fn sweep_stuck_payouts(
        &self,
        now: Timestamp,
        stuck_after: Duration,
        budget: &SweepBudget,
    ) -> Result<StuckSweep, AppError> {
        let since = now.plus_seconds(-i64::try_from(stuck_after.as_secs()).unwrap_or(i64::MAX));
        let due = self
            .due(keys::PENDING_PAYMENTS, keys::payment, since, budget.entries)
            .await?;
        let mut sweep = StuckSweep {
            skipped: due.unreadable,
            more: due.more,
            ..StuckSweep::default()
        };
        for id in due.ids {
            if budget.spent() {
                sweep.more = true;
                break;
            }
            match self
                .retry_busy("alert a stuck payout", || self.stuck_payout(id, now))
                .await
            {
                Ok(true) => sweep.alerted += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(payment = %id, error = %e, "stuck payout not handled this run");
                    sweep.skipped += 1;
                }
            }
        }
        Ok(sweep)
    }

    /// One stuck payment: `true` when this run raised its alert.
    async fn stuck_payout(&self, id: Id, now: Timestamp) -> Result<bool, AppError> {
        let Some(read) = self.payment(id).await? else {
            return Ok(false);
        };
        let payment = read.payment;
        let key = keys::payment(id);
        // Out of the index, under the status (and, PENDING, the attempt) read.
        let leave = |pending: bool| {
            let mut update = aws_sdk_dynamodb::types::Update::builder()
                .set_key(Some(super::items::key_item(&key)))
                .update_expression("REMOVE expiry_pk, expiry_sk")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(payment.status.as_str()));
            update = if pending {
                update
                    .condition_expression("#status = :status AND attempts = :attempts")
                    .expression_attribute_values(":attempts", super::items::n(payment.attempts))
            } else {
                update.condition_expression("#status = :status")
            };
            self.update(update)
        };
        if payment.status != PaymentStatus::Pending {
            // Moved on without its entry going (written before entries
            // left with the status): clean it.
            return match self.transact(vec![leave(false)]).await {
                Ok(()) => Ok(false),
                Err(e) if e.is_busy() => Err(AppError::busy()),
                // Its status changed again meanwhile: the next read sees it.
                Err(e) if e.failed_condition(0) => Ok(false),
                Err(e) => Err(e.unexpected()),
            };
        }
        let alert = self.alert_put(&super::alerts::NewAlert {
            id: self.next_id(super::alerts::ID_KIND).await?,
            alert_type: AlertType::PayoutStuck,
            cause: format!("payout-stuck:{id}:{}", payment.attempts),
            message: format!(
                "Payment {id} has been PENDING since {}: the PSP has not accepted or refused it.",
                payment.updated_at
            ),
            actor_user_id: None,
            payload: super::escrow::payments::alert_payload(
                &payment,
                serde_json::json!({ "pending_since": payment.updated_at }),
            ),
            created_at: now,
        })?;
        match self.transact(vec![leave(true), alert]).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_busy() => Err(AppError::busy()),
            // It moved on meanwhile, or this attempt was alerted already.
            Err(e) if e.failed_condition(0) || e.failed_condition(1) => Ok(false),
            Err(e) => Err(e.unexpected()),
        }
    }
}

/// The id a deadline index entry stands for: the number after the last `#`
/// of its table key, if that key is exactly `key_of(id)`'s.
fn indexed_id(item: &Item, key_of: fn(Id) -> Key) -> Option<Id> {
    let pk = item.get(keys::PK)?.as_s().ok()?;
    let id = Id::parse(pk.rsplit('#').next()?).ok()?;
    (key_of(id).pk == *pk).then_some(id)
}

pub(crate) fn stored_status(item: &Item) -> Option<EscrowStatus> {
    EscrowStatus::parse(item.get("status")?.as_s().ok()?)
}
