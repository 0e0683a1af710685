//! Escrow decisions asked over the API or by the schedule: a deposit (💰,
//! under an `Idempotency-Key`) and the transitions that need no key
//! (mark-delivered, client-approve, client-reject, check-deadline, the
//! deadline sweep). Each is read → permit → `decide` → items → ONE
//! transaction → on a lost race, again from a fresh read (bounded; then 503
//! `SERVICE_BUSY`, nothing changed). Who may ask is decided here, on the
//! escrow as read ([`may_ask`]).

use super::Asker;
use crate::{
    domain::{
        access::Principal,
        escrow::{decide, Escrow, EscrowAction, EscrowOutcome},
        ids::Id,
        money::Amount,
        time::Timestamp,
    },
    error::AppError,
    store::{
        audit::Actor,
        escrow::transition::{applied, not_found, payee_of, Remarks},
        idempotency::{fingerprint, IdempotencyRecord, Scope, StoredResponse},
        Store,
    },
};

/// Whether `caller` may ask `action` of `escrow`: the client deposits,
/// approves and rejects; the provider marks delivered; staff or either
/// party checks the deadline. Payouts and spends are asked by other use
/// cases (a proof's approval, a usage spend), never by this route.
pub fn may_ask(caller: &Principal, escrow: &Escrow, action: &EscrowAction) -> bool {
    match action {
        EscrowAction::Deposit { .. } | EscrowAction::ClientApprove | EscrowAction::ClientReject => {
            caller.acts_for(escrow.client_id)
        }
        EscrowAction::MarkDelivered => caller.acts_for(escrow.provider_id),
        EscrowAction::DeadlineCheck { .. } => {
            caller.is_staff()
                || caller.acts_for(escrow.client_id)
                || caller.acts_for(escrow.provider_id)
        }
        EscrowAction::PayMilestone { .. } | EscrowAction::Spend { .. } => false,
    }
}

/// A deposit (💰) of `amount` into escrow `id`: decided on a fresh read,
/// written with its idempotency record in one transaction; a lost race
/// decides again, bounded. Refusals (wrong state, beyond the total) are not
/// stored under the key: they change nothing, and they are final (a DRAFT
/// escrow never comes back, what is funded only grows), so the same request
/// gets the same refusal again.
pub async fn deposit(
    store: &Store,
    caller: &Principal,
    id: Id,
    amount: Amount,
    scope: &Scope,
) -> Result<StoredResponse, AppError> {
    let canonical = serde_json::json!({"escrow_id": id, "amount": amount});
    let fingerprint = fingerprint(&canonical);
    let actor = Actor::from(caller);
    store
        .until_settled("deposit", AppError::busy, || {
            deposit_pass(store, caller, id, amount, scope, &fingerprint, &actor)
        })
        .await
}

async fn deposit_pass(
    store: &Store,
    caller: &Principal,
    id: Id,
    amount: Amount,
    scope: &Scope,
    fingerprint: &str,
    actor: &Actor,
) -> Result<Option<StoredResponse>, AppError> {
    let (record, escrow) = tokio::join!(
        store.idempotency_record(scope, Timestamp::now()),
        store.escrow(id)
    );
    if let Some(record) = record? {
        return record.replay(fingerprint).map(Some);
    }
    let escrow = escrow?.ok_or_else(not_found)?;
    let action = EscrowAction::Deposit { amount };
    AppError::permit(may_ask(caller, &escrow, &action))?;
    let transition = match decide(&escrow.state(), action) {
        Ok(EscrowOutcome::Changed(t)) => t,
        Ok(other) => return Err(AppError::internal(format!("deposit decided {other:?}"))),
        Err(refusal) => return Err(refusal.into()),
    };
    let now = Timestamp::now();
    let after = applied(&escrow, &transition, now);
    let response = StoredResponse {
        status: 200,
        body: serde_json::to_string(&after).map_err(AppError::internal)?,
    };
    let record = IdempotencyRecord::new(scope, fingerprint.to_string(), response.clone(), now);
    let mut items = vec![store.idempotency_put(&record, now)?];
    items.extend(store.deposit_items(&escrow, &transition, amount, &after, actor, now)?);
    match store.transact(items).await {
        Ok(()) => Ok(Some(response)),
        Err(e) if e.failed_condition(0) => store.replay_taken_key(scope, fingerprint).await,
        Err(e) if e.is_busy() || e.failed_condition(1) => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}

/// A transition that needs no `Idempotency-Key` (mark-delivered,
/// client-approve, client-reject, check-deadline): decided on a fresh read;
/// a repeat answers the escrow unchanged; a lost race decides again,
/// bounded. `remarks` go into the timeline event.
pub async fn act(
    store: &Store,
    asker: Asker<'_>,
    id: Id,
    action: EscrowAction,
    remarks: &Remarks,
) -> Result<Escrow, AppError> {
    let actor = asker.actor();
    store
        .until_settled("escrow action", AppError::busy, || {
            act_pass(store, asker, id, action, remarks, &actor)
        })
        .await
}

async fn act_pass(
    store: &Store,
    asker: Asker<'_>,
    id: Id,
    action: EscrowAction,
    remarks: &Remarks,
    actor: &Actor,
) -> Result<Option<Escrow>, AppError> {
    let escrow = store.escrow(id).await?.ok_or_else(not_found)?;
    if let Asker::Caller(caller) = asker {
        AppError::permit(may_ask(caller, &escrow, &action))?;
    }
    let action = match action {
        // The time of this read, not of the request.
        EscrowAction::DeadlineCheck { .. } => EscrowAction::DeadlineCheck {
            now: Timestamp::now(),
        },
        other => other,
    };
    let now = Timestamp::now();
    let (items, after) = match decide(&escrow.state(), action)? {
        EscrowOutcome::Unchanged => return Ok(Some(escrow)),
        EscrowOutcome::DeadlineMissed => {
            return store.deadline_missed(&escrow, actor, now).await.map(Some)
        }
        EscrowOutcome::Changed(transition) => {
            let items = match transition.payment {
                Some(order) => {
                    let payee = payee_of(&escrow, order.kind)?;
                    store
                        .payment_transaction(
                            &escrow,
                            &transition,
                            order,
                            payee,
                            None,
                            remarks,
                            actor,
                            now,
                        )
                        .await?
                        .0
                }
                None => store.plain_items(&escrow, &transition, remarks, actor, now)?,
            };
            (items, applied(&escrow, &transition, now))
        }
    };
    match store.transact(items).await {
        Ok(()) => Ok(Some(after)),
        // The escrow changed under us (item 0 is its update): again.
        Err(e) if e.is_busy() || e.failed_condition(0) => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}
