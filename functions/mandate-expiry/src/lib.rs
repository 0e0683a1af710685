//! The scheduled mandate expiry (risk R5): every 5 minutes EventBridge runs
//! this, and every overdue ACTIVE mandate becomes EXPIRED, with its guard
//! freed and a `USAGE_MANDATE_EXPIRED` audit entry. Idempotent and safe to
//! overlap: each expiry is a conditional write. A mandate that cannot be
//! expired this run (contention, throttling) is skipped and counted; the next
//! run picks it up.

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
    let sweep = store
        .expire_overdue(Timestamp::now(), &Actor::System)
        .await?;
    shared::metrics::count(
        shared::metrics::MANDATES_EXPIRED,
        u64::from(sweep.expired),
        &[],
    );
    tracing::info!(
        expired = sweep.expired,
        skipped = sweep.skipped,
        event_id = event.id.as_deref().unwrap_or("-"),
        "mandate expiry sweep"
    );
    Ok(json!({ "expired": sweep.expired, "skipped": sweep.skipped }))
}
