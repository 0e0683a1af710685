//! The scheduled sweep: every 5 minutes EventBridge runs this.
//! - Mandates (risk R5): every overdue ACTIVE mandate becomes EXPIRED, with
//!   its guard freed and a `USAGE_MANDATE_EXPIRED` audit entry.
//! - Escrows: every open escrow past its deadline gets what `check-deadline`
//!   does: RELEASABLE ones are released to the provider, FUNDED ones raise one
//!   `ESCROW_DEADLINE_MISSED` alert.
//!
//! Idempotent and safe to overlap: each change is a conditional write. What
//! cannot be done this run (contention, throttling) is skipped and counted;
//! the next run picks it up.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::{json, Value};
use shared::{
    domain::time::Timestamp,
    error::AppError,
    store::{audit::Actor, Store},
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
/// stand-in for it). All zeros when there was nothing to do.
pub async fn sweep(store: &Store, now: Timestamp) -> Result<Value, AppError> {
    let mandates = store.expire_overdue(now, &Actor::System).await?;
    let escrows = store.sweep_deadlines(now, &Actor::System).await?;
    Ok(json!({
        "expired": mandates.expired,
        "skipped": mandates.skipped,
        "escrows_released": escrows.released,
        "escrows_missed": escrows.missed,
        "escrows_skipped": escrows.skipped,
    }))
}
