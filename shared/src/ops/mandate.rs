//! Usage mandates as use cases: a mandate opened under its one-ACTIVE guard
//! (`POST /mandates`), and mandates expired (the schedule,
//! `POST /mandates/cleanup`). Each write is ONE transaction decided on a
//! fresh read; a lost race decides again, bounded; then 503
//! `SERVICE_BUSY`, nothing changed.

use crate::{
    domain::{
        access::Principal,
        error::ErrorCode,
        ids::Id,
        mandate::{
            check_terms, open_mandate, Mandate, MandateParties, MandateStatus, MandateTerms,
        },
        time::Timestamp,
    },
    error::AppError,
    store::{audit::Actor, deadlines::SweepBudget, ids, keys, Store},
};
use std::time::Instant;

/// Opens the mandate `terms` for the sender `caller` acts for: terms valid,
/// the users (active) and the restricting merchant or category known, then
/// the mandate under its one-ACTIVE guard. A guard held by a live ACTIVE
/// mandate is 409 `MANDATE_CONFLICT`; one held by an overdue mandate
/// expires it and tries again.
pub async fn create(
    store: &Store,
    caller: &Principal,
    terms: MandateTerms,
) -> Result<Mandate, AppError> {
    AppError::permit(caller.acts_for(terms.sender_id))?;
    let actor = Actor::from(caller);
    check_terms(&terms, Timestamp::now())?;
    store
        .retry_busy("check mandate references", || {
            store.check_mandate_references(&terms)
        })
        .await?;
    let id = store
        .retry_busy("allocate mandate id", || store.next_id(ids::MANDATE))
        .await?;
    store
        .until_settled("create a mandate", AppError::busy, || {
            create_pass(store, id, &terms, &actor)
        })
        .await
}

/// One attempt at writing the mandate under its one-ACTIVE guard. `None`:
/// the guard was held by a mandate that is no longer ACTIVE (it expired
/// just now, by us or by the sweep): try again. Only a live ACTIVE mandate
/// is a 409.
async fn create_pass(
    store: &Store,
    id: Id,
    terms: &MandateTerms,
    actor: &Actor,
) -> Result<Option<Mandate>, AppError> {
    let now = Timestamp::now();
    let mandate = open_mandate(id, terms.clone(), now)?;
    let items = store.mandate_items(&mandate, actor, now)?;
    match store.transact(items).await {
        Ok(()) => Ok(Some(mandate)),
        Err(e) if e.failed_condition(1) => {
            if guard_is_live(store, &mandate.parties(), actor).await? {
                Err(AppError::new(
                    ErrorCode::MandateConflict,
                    "An ACTIVE mandate already exists for this sender, beneficiary and currency.",
                ))
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(e.unexpected()),
    }
}

/// Whether the guard of `parties` belongs to a live ACTIVE mandate. An
/// overdue one is expired here (or was, by someone else): not live.
async fn guard_is_live(
    store: &Store,
    parties: &MandateParties,
    actor: &Actor,
) -> Result<bool, AppError> {
    let Some(guard) = store.active_guard(parties).await? else {
        return Ok(false);
    };
    let now = Timestamp::now();
    match store.mandate(guard.mandate_id).await? {
        Some(mandate) if mandate.is_overdue(now) => {
            expire(store, mandate.id, actor, now).await?;
            Ok(false)
        }
        Some(mandate) => Ok(mandate.status == MandateStatus::Active),
        None => Ok(false),
    }
}

/// Expires mandate `id` if it is ACTIVE and due at `now`, from a
/// consistent read (the index it was found in may be stale); false if it
/// was not (any more). A change under us (a debit, another sweep) or a busy
/// answer reads it again, bounded; then `SERVICE_BUSY`.
pub async fn expire(
    store: &Store,
    id: Id,
    actor: &Actor,
    now: Timestamp,
) -> Result<bool, AppError> {
    store
        .until_settled("expire a mandate", AppError::busy, || {
            expire_pass(store, id, actor, now)
        })
        .await
}

async fn expire_pass(
    store: &Store,
    id: Id,
    actor: &Actor,
    now: Timestamp,
) -> Result<Option<bool>, AppError> {
    match store.mandate(id).await? {
        Some(mandate) if mandate.is_overdue(now) => {
            match store
                .transact(store.expiry_items(&mandate, actor, now)?)
                .await
            {
                Ok(()) => Ok(Some(true)),
                // Changed under us (a debit, another sweep), or busy: again.
                Err(e) if e.failed_condition(0) || e.is_busy() => Ok(None),
                Err(e) => Err(e.unexpected()),
            }
        }
        _ => Ok(Some(false)),
    }
}

/// What one expiry sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    pub expired: u32,
    /// Mandates left for the next run (busy, or unreadable in the index).
    pub skipped: u32,
    /// The budget ended the run: more may be due (the next run takes them).
    pub more: bool,
}

/// Expires the ACTIVE mandates whose date has passed (risk R5), as many as
/// `budget` allows (see `store::deadlines`): reads the shards of the sparse,
/// keys-only index page by page; each expiry reads its mandate consistently
/// and is conditional, so overlapping runs and repeated runs expire each
/// mandate exactly once. A mandate that cannot be expired this time (busy,
/// or an unreadable index entry) is logged and skipped: the next run tries
/// again, and the others go on.
pub async fn expire_overdue(
    store: &Store,
    now: Timestamp,
    actor: &Actor,
    budget: &SweepBudget,
) -> Result<Sweep, AppError> {
    let due = store
        .due(keys::ACTIVE_MANDATES, keys::mandate, now, budget.entries)
        .await?;
    let mut sweep = Sweep {
        expired: 0,
        skipped: due.unreadable,
        more: due.more,
    };
    for id in due.ids {
        if Instant::now() >= budget.until {
            sweep.more = true;
            break;
        }
        // The time of this write, not of the run's start: a mandate created
        // (and due) after the run began must not get an expiry entry dated
        // before its creation. Later than `now`, so still due.
        match expire(store, id, actor, Timestamp::now().max(now)).await {
            Ok(true) => sweep.expired += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(mandate = %id, error = %e, "could not expire this run: skipped");
                sweep.skipped += 1;
            }
        }
    }
    Ok(sweep)
}
