//! Usage payees and spends out of an escrow. Allowing a payee (`POST
//! /spend/allowed`): read the escrow, the client only, the escrow still
//! open, ONE transaction (the payee if new, the escrow's status as read,
//! the audit entry). A spend (💰, `POST /spend`, under an
//! `Idempotency-Key`): one batched read (`Store::read_for_spend`), the
//! client or the provider only, `authorize_spend` decides, ONE transaction
//! writes the idempotency record, the escrow's debit and the USAGE_SPEND
//! payment, the payee's counters and the parties' active checks. A lost
//! race decides again from a fresh read, bounded; then 503
//! `SERVICE_BUSY`, nothing spent.

use crate::{
    domain::{
        access::Principal,
        error::ErrorCode,
        escrow::{payment::Payee, Escrow, EscrowRefusal},
        ids::Id,
        money::Money,
        spend::{authorize_spend, utc_day, PayeeView, SpendRequest, UsagePayee},
        time::Timestamp,
    },
    error::AppError,
    store::{
        audit::Actor,
        escrow::transition::{not_found, Remarks},
        idempotency::{fingerprint, IdempotencyRecord, Scope, StoredResponse},
        ids,
        payees::{NewPayee, SpendReads, SpendView},
        transact::TransactError,
        Store,
    },
};
use std::sync::OnceLock;

/// Whether `caller` may allow payees on `escrow`: its client only.
pub fn may_allow(caller: &Principal, escrow: &Escrow) -> bool {
    caller.acts_for(escrow.client_id)
}

/// Whether `caller` may spend from `escrow`: its client or its provider.
pub fn may_spend(caller: &Principal, escrow: &Escrow) -> bool {
    caller.acts_for(escrow.client_id) || caller.acts_for(escrow.provider_id)
}

/// Allows payee `new` on escrow `escrow`: 201 with the payee; a pair
/// allowed before is 409 `PAYEE_ALREADY_ALLOWED`; a closed escrow 409
/// `ESCROW_NOT_ACTIVE`. The escrow is read afresh on every attempt (a
/// release may have closed it); its status changed before the write: again.
pub async fn allow_payee(
    store: &Store,
    caller: &Principal,
    escrow: Id,
    new: &NewPayee,
) -> Result<PayeeView, AppError> {
    let actor = Actor::from(caller);
    // Allocated once, by the first attempt that gets that far.
    let id = OnceLock::new();
    store
        .retry_busy("allow a payee", || {
            allow_pass(store, caller, escrow, new, &actor, &id)
        })
        .await
}

async fn allow_pass(
    store: &Store,
    caller: &Principal,
    escrow: Id,
    new: &NewPayee,
    actor: &Actor,
    id: &OnceLock<Id>,
) -> Result<PayeeView, AppError> {
    let escrow = store.escrow(escrow).await?.ok_or_else(not_found)?;
    AppError::permit(may_allow(caller, &escrow))?;
    if !escrow.status.is_open() {
        return Err(EscrowRefusal::NotActive.into());
    }
    let id = store.reserve_id(id, ids::PAYEE).await?;
    let now = Timestamp::now();
    let payee = UsagePayee {
        id,
        escrow_id: escrow.id,
        payee_ref: new.payee_ref.clone(),
        label: new.label.clone(),
        daily_limit: new.daily_limit,
        total_limit: new.total_limit,
        spent_today: Money::ZERO,
        spent_day: utc_day(now),
        spent_total: Money::ZERO,
        created_at: now,
    };
    let items = store.payee_items(&payee, &escrow, actor, now)?;
    match store.transact(items).await {
        Ok(()) => Ok(payee.view_at(store.clock().now())),
        Err(e) if e.failed_condition(0) => Err(AppError::new(
            ErrorCode::PayeeAlreadyAllowed,
            "This payee is already allowed for this escrow.",
        )),
        // The escrow changed status meanwhile: decide again.
        Err(e) if e.failed_condition(1) => Err(AppError::busy()),
        Err(e) => Err(e.unexpected()),
    }
}

/// Makes (or replays) the spend `request` under idempotency `scope`.
/// Refusals change nothing and are not remembered under the key: a limit
/// reached today may allow the same request tomorrow.
pub async fn spend(
    store: &Store,
    caller: &Principal,
    request: &SpendRequest,
    scope: &Scope,
) -> Result<StoredResponse, AppError> {
    let fingerprint = fingerprint(&request.canonical());
    let actor = Actor::from(caller);
    let busy = || {
        AppError::new(
            ErrorCode::ServiceBusy,
            "The escrow is busy; nothing was spent. Retry with the same Idempotency-Key.",
        )
    };
    store
        .until_settled("spend", busy, || {
            spend_pass(store, caller, request, scope, &fingerprint, &actor)
        })
        .await
}

async fn spend_pass(
    store: &Store,
    caller: &Principal,
    request: &SpendRequest,
    scope: &Scope,
    fingerprint: &str,
    actor: &Actor,
) -> Result<Option<StoredResponse>, AppError> {
    let now = store.clock().now();
    let (escrow, payee) = match store
        .read_for_spend(request, scope, Timestamp::now())
        .await?
    {
        SpendReads::Replay(record) => return record.replay(fingerprint).map(Some),
        SpendReads::Found { escrow, payee } => (escrow.ok_or_else(not_found)?, payee),
    };
    AppError::permit(may_spend(caller, &escrow))?;
    let decision = authorize_spend(&escrow.state(), payee.as_ref(), request.amount, now)?;
    let payee = payee.ok_or_else(|| AppError::internal("a spend authorised without payee"))?;
    let order = decision
        .transition
        .payment
        .ok_or_else(|| AppError::internal("a spend without a payment"))?;
    let mut remarks = Remarks::new();
    if let Some(note) = &request.note {
        remarks.insert("note".into(), note.clone().into());
    }
    let (mut items, payment) = store
        .payment_transaction(
            &escrow,
            &decision.transition,
            order,
            Payee::Ref {
                payee_ref: payee.payee_ref.clone(),
            },
            None,
            &remarks,
            actor,
            now,
        )
        .await?;
    items.push(store.payee_debit(&payee, &decision, request.amount));
    let response = StoredResponse {
        status: 200,
        body: serde_json::to_string(&SpendView {
            payment_id: payment.id,
            escrow_id: escrow.id,
            payee_ref: payee.payee_ref,
            amount: payment.amount,
            status: payment.status,
            psp_ref: payment.psp_ref,
        })
        .map_err(AppError::internal)?,
    };
    let record = IdempotencyRecord::new(scope, fingerprint.to_string(), response.clone(), now);
    items.insert(0, store.idempotency_put(&record, now)?);
    // The escrow's parties, active as the money leaves (docs/api.md: an
    // inactive user cannot be a party to a new spend); last, so their
    // indexes are known.
    let parties = [escrow.client_id, escrow.provider_id];
    let first_party = items.len();
    items.extend(parties.map(|party| store.active_user_check(party)));
    match store.transact(items).await {
        Ok(()) => Ok(Some(response)),
        Err(e) if e.failed_condition(0) => store.replay_taken_key(scope, fingerprint).await,
        Err(e) => match (0..parties.len()).find(|i| e.failed_condition(first_party + i)) {
            Some(i) => Err(AppError::user_inactive(parties[i])),
            // The escrow or the payee changed under us: decide again.
            None if e.is_busy() || matches!(e, TransactError::Cancelled(_)) => Ok(None),
            None => Err(e.unexpected()),
        },
    }
}
