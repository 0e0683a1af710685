//! The scheduled sweep: every 5 minutes EventBridge runs this.
//! - Mandates (risk R5): every overdue ACTIVE mandate becomes EXPIRED, with
//!   its guard freed and a `USAGE_MANDATE_EXPIRED` audit entry.
//! - Escrows: every escrow in the deadline index past its deadline gets what
//!   `check-deadline` does: RELEASABLE ones are released to the provider,
//!   FUNDED ones raise one `ESCROW_DEADLINE_MISSED` alert.
//! - Payouts: a payment PENDING for longer than `KOBATELA_PAYOUT_STUCK_MINUTES`
//!   (default 15) raises one `PAYOUT_STUCK` alert per attempt.
//!
//! Idempotent and safe to overlap: each change is a conditional write. What
//! cannot be done this run (contention, throttling, the run's budget of
//! entries and time: `store::deadlines`) is counted; the next run picks it up.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::{json, Value};
use shared::{
    domain::time::Timestamp,
    error::AppError,
    store::{
        audit::Actor,
        deadlines::{stuck_after_from_env, SweepBudget},
        Store,
    },
};

/// Needs the store only: the sweep authenticates no one, so it does not get
/// the API key pepper.
pub async fn handle(store: &Store, event: EventBridgeEvent) -> Result<Value, AppError> {
    let result = sweep(store, Timestamp::now()).await?;
    // On Lambda only: kobatela-local's timer would log a metric line a tick.
    shared::metrics::count(
        shared::metrics::MANDATES_EXPIRED,
        result["expired"].as_u64().unwrap_or_default(),
        &[],
    );
    tracing::info!(
        %result,
        event_id = event.id.as_deref().unwrap_or("-"),
        "scheduled sweep"
    );
    Ok(result)
}

/// Both sweeps, as of `now`: what the schedule runs (and kobatela-local's
/// stand-in for it). All zeros when there was nothing to do; `more` when a
/// budget ended the run (the next run goes on: acted-on entries are gone).
pub async fn sweep(store: &Store, now: Timestamp) -> Result<Value, AppError> {
    // Each half has its own budget of entries, and both share the time.
    let budget = SweepBudget::starting_now();
    let mandates =
        shared::ops::mandate::expire_overdue(store, now, &Actor::System, &budget).await?;
    let escrows = shared::ops::deadlines::sweep(store, now, &Actor::System, &budget).await?;
    let stuck = store
        .sweep_stuck_payouts(now, stuck_after_from_env()?, &budget)
        .await?;
    Ok(json!({
        "expired": mandates.expired,
        "skipped": mandates.skipped,
        "escrows_released": escrows.released,
        "escrows_missed": escrows.missed,
        "escrows_cleaned": escrows.cleaned,
        "escrows_skipped": escrows.skipped,
        "payouts_stuck": stuck.alerted,
        "payouts_skipped": stuck.skipped,
        "more": mandates.more || escrows.more || stuck.more,
    }))
}
