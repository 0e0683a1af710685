//! The scheduled ledger check (`shared::ops::ledger`): every 15 minutes
//! EventBridge runs this. It goes on with the RUNNING run (started by the
//! schedule or by `POST /ledger/checks`) for at most [`BUDGET`], then saves
//! where each scan segment stands; when no run is RUNNING and the last one
//! started `KOBATELA_LEDGER_CHECK_HOURS` (default 24) or more ago, it
//! starts one. A run of a large table so spans as many invocations as it
//! needs, none near Lambda's 15 minutes.
//!
//! It writes nothing but run items and `LEDGER_MISMATCH` alerts (and the
//! alert id counter); template.yaml grants it nothing else.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::{json, Value};
use shared::{
    error::AppError,
    ops::ledger::{self, Budget},
    store::Store,
};
use std::time::{Duration, Instant};

/// How long one invocation starts new pages for: the function's timeout is
/// 15 minutes, and a page (a few hundred entities) takes seconds.
pub const BUDGET: Duration = Duration::from_secs(12 * 60);

/// Hours between two runs the schedule starts, by default.
pub const DEFAULT_EVERY_HOURS: u64 = 24;

/// `KOBATELA_LEDGER_CHECK_HOURS` (at least 1), else [`DEFAULT_EVERY_HOURS`].
pub fn every_from_env() -> Result<Duration, AppError> {
    let hours = match std::env::var("KOBATELA_LEDGER_CHECK_HOURS") {
        Err(_) => DEFAULT_EVERY_HOURS,
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(hours) if hours >= 1 => hours,
            _ => {
                return Err(AppError::internal(format!(
                    "KOBATELA_LEDGER_CHECK_HOURS={text}: must be whole hours, at least 1"
                )))
            }
        },
    };
    Ok(Duration::from_secs(hours * 3600))
}

pub async fn handle(store: &Store, event: EventBridgeEvent) -> Result<Value, AppError> {
    let budget = Budget::until(Instant::now() + BUDGET);
    let run = ledger::tick(store, every_from_env()?, budget).await?;
    let result = match &run {
        None => json!({"run": null}),
        Some(run) => json!({
            "run": run.id,
            "status": run.status,
            "counts": run.counts,
        }),
    };
    tracing::info!(
        %result,
        event_id = event.id.as_deref().unwrap_or("-"),
        "ledger check"
    );
    Ok(result)
}
