//! The escrow deadline sweep (the schedule, with mandate expiry): what
//! `check-deadline` does, for every escrow the deadline index says is due,
//! within one run's budget. The index, its reads and its clean-up are the
//! store's (`store::deadlines`); each escrow is `ops::escrow::act`, asked by
//! the schedule.

use super::{escrow, Asker};
use crate::{
    domain::{
        escrow::{deadline_duty, EscrowAction, EscrowStatus},
        ids::Id,
        time::Timestamp,
    },
    error::AppError,
    store::{
        audit::Actor,
        deadlines::{stored_status, DeadlineSweep, SweepBudget, ESCROWS_PER_BATCH},
        escrow::transition::Remarks,
        keys::{self, Key},
        Store,
    },
};

/// The deadline sweep (the schedule, with mandate expiry): every escrow
/// in the index past its deadline gets what `check-deadline` does.
/// RELEASABLE ones are released (the remainder paid to the provider);
/// FUNDED ones raise one `ESCROW_DEADLINE_MISSED` alert and stay for the
/// client or an admin. Each is its own conditional transaction, so
/// overlapping runs pay and alert once; one that stays busy is skipped
/// for the next run. Statuses are read in batches first, so a stale
/// entry costs a share of one read and one small write.
pub async fn sweep(
    store: &Store,
    now: Timestamp,
    actor: &Actor,
    budget: &SweepBudget,
) -> Result<DeadlineSweep, AppError> {
    let mut sweep = DeadlineSweep::default();
    let mut left = budget.entries;
    for kind in [keys::RELEASABLE_ESCROWS, keys::OPEN_ESCROWS] {
        if left == 0 || budget.spent() {
            sweep.more = true;
            break;
        }
        let due = store.due(kind, keys::escrow, now, left).await?;
        left = left.saturating_sub(due.read());
        sweep.skipped += due.unreadable;
        sweep.more |= due.more;
        for batch in due.ids.chunks(ESCROWS_PER_BATCH) {
            if budget.spent() {
                sweep.more = true;
                break;
            }
            sweep_batch(store, batch, actor, &mut sweep).await;
        }
    }
    Ok(sweep)
}

async fn sweep_batch(store: &Store, ids: &[Id], actor: &Actor, sweep: &mut DeadlineSweep) {
    let keys: Vec<Key> = ids
        .iter()
        .flat_map(|&id| [keys::escrow(id), keys::deadline_missed(id)])
        .collect();
    let found = match store
        .retry_busy("read escrows due", || store.get_many(&keys))
        .await
    {
        Ok(found) => found,
        // The batch read only saves work: without it, each escrow is
        // handled on its own, as `check-deadline` would.
        Err(e) => {
            tracing::warn!(error = %e, "batch read of escrows due failed: one by one");
            for &id in ids {
                sweep_one(store, id, actor, sweep).await;
            }
            return;
        }
    };
    for &id in ids {
        // Gone between the index read and this one: nothing to do.
        let Some(item) = found.get(&keys::escrow(id)) else {
            continue;
        };
        let Some(status) = stored_status(item) else {
            tracing::error!(escrow = %id, "unreadable escrow status: skipped");
            sweep.skipped += 1;
            continue;
        };
        let alerted = found.contains_key(&keys::deadline_missed(id));
        if deadline_duty(status, alerted).is_some() {
            sweep_one(store, id, actor, sweep).await;
        } else {
            store.clean_entry(id, status, sweep).await;
        }
    }
}

async fn sweep_one(store: &Store, id: Id, actor: &Actor, sweep: &mut DeadlineSweep) {
    let check = EscrowAction::DeadlineCheck {
        now: Timestamp::now(),
    };
    let remarks = Remarks::new();
    // Boxed: the transition's future is large and deep; the sweep's own
    // future stays small (see mandate-expiry's main.rs).
    match Box::pin(escrow::act(
        store,
        Asker::System(actor),
        id,
        check,
        &remarks,
    ))
    .await
    {
        Ok(e) if e.status == EscrowStatus::Released => sweep.released += 1,
        Ok(e) if e.status == EscrowStatus::Funded => sweep.missed += 1,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(escrow = %id, error = %e, "deadline not handled this run: skipped");
            sweep.skipped += 1;
        }
    }
}
