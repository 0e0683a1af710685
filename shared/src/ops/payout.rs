//! Payments out of an escrow that no escrow route asks for: a milestone
//! paid (a proof approved, automatically or by a decision: the hook the
//! proofs plug into), a failed payment sent again (`POST
//! /payments/execute/{id}`), and the PSP's answer to a payout recorded (the
//! payout dispatcher). Each is read → decide → items (the store's builders)
//! → ONE transaction → on a lost race or contention, again from a fresh read
//! (bounded; then 503 `SERVICE_BUSY`, nothing written).

use crate::{
    domain::{
        error::ErrorCode,
        escrow::{
            decide,
            milestone::plan_payout,
            payment::{
                apply_psp_answer, psp_answer_alert, retry_payment, Payment, PaymentState,
                PaymentStatus, PaymentTransition, PspAnswer, RetryOutcome, RetryRefusal,
            },
            Escrow, EscrowAction, EscrowOutcome,
        },
        ids::Id,
        spend::check_total_limit,
        time::Timestamp,
    },
    error::AppError,
    store::{
        audit::Actor,
        escrow::transition::{applied, not_found, payee_of, Remarks},
        transact::TransactError,
        Store,
    },
};
use aws_sdk_dynamodb::types::TransactWriteItem;

/// An `extra` item of a milestone payout (its index among them) whose failed
/// condition is final, and the error that answers it.
pub type ExtraRefusal = (usize, fn() -> AppError);

/// Pays milestone `idx` of escrow `id` (an auto-approved proof, or an
/// approval decision): PAYOUT of its amount to the provider, the milestone
/// PAID, and, when it is the last one, the escrow RELEASED (event
/// `CLOSED`). Not enough available → 409 `INSUFFICIENT_ESCROW_BALANCE`,
/// nothing changes. `extra` items (the proof's own update) join the same
/// transaction. The hook the proofs plug into.
pub async fn pay_milestone(
    store: &Store,
    id: Id,
    idx: u32,
    extra: impl Fn(&Escrow, Timestamp) -> Result<Vec<TransactWriteItem>, AppError>,
    actor: &Actor,
) -> Result<(Escrow, Payment), AppError> {
    pay_milestone_with(store, id, idx, extra, &[], actor).await
}

/// [`pay_milestone`], where the failed condition of an `extra` item named
/// in `refusals` is final, answered with its error, instead of a change of
/// the escrow to decide again on (a proof's file guard: another proof took
/// the file meanwhile).
pub async fn pay_milestone_with(
    store: &Store,
    id: Id,
    idx: u32,
    extra: impl Fn(&Escrow, Timestamp) -> Result<Vec<TransactWriteItem>, AppError>,
    refusals: &[ExtraRefusal],
    actor: &Actor,
) -> Result<(Escrow, Payment), AppError> {
    store
        .until_settled("pay a milestone", AppError::busy, || {
            pay_milestone_pass(store, id, idx, &extra, refusals, actor)
        })
        .await
}

async fn pay_milestone_pass(
    store: &Store,
    id: Id,
    idx: u32,
    extra: &impl Fn(&Escrow, Timestamp) -> Result<Vec<TransactWriteItem>, AppError>,
    refusals: &[ExtraRefusal],
    actor: &Actor,
) -> Result<Option<(Escrow, Payment)>, AppError> {
    let escrow = store.escrow(id).await?.ok_or_else(not_found)?;
    let plan = plan_payout(&escrow.slots(), idx)?;
    let milestone = escrow
        .milestones
        .iter()
        .find(|m| m.idx == idx)
        .cloned()
        .ok_or_else(|| AppError::internal("a planned milestone is not read"))?;
    let action = EscrowAction::PayMilestone {
        amount: milestone.amount,
        last: plan.last,
    };
    let transition = match decide(&escrow.state(), action)? {
        EscrowOutcome::Changed(t) => t,
        other => {
            return Err(AppError::internal(format!(
                "milestone payout decided {other:?}"
            )))
        }
    };
    let order = transition
        .payment
        .ok_or_else(|| AppError::internal("a milestone payout without a payment"))?;
    let now = Timestamp::now();
    let payee = payee_of(&escrow, order.kind)?;
    let (mut items, payment) = store
        .payment_transaction(
            &escrow,
            &transition,
            order,
            payee,
            Some(&milestone),
            &Remarks::new(),
            actor,
            now,
        )
        .await?;
    // The other milestones as the plan read them: earlier ones PAID,
    // and what makes the closing decision hold (see `plan_payout`).
    items.extend(
        plan.checks
            .iter()
            .map(|(&other, &must)| store.milestone_check(id, other, must)),
    );
    let first_extra = items.len();
    items.extend(extra(&escrow, now)?);
    let written = store.transact(items).await;
    if let Err(e) = &written {
        if let Some((_, refusal)) = refusals
            .iter()
            .find(|(i, _)| e.failed_condition(first_extra + i))
        {
            return Err(refusal());
        }
    }
    match written {
        Ok(()) => Ok(Some((applied(&escrow, &transition, now), payment))),
        Err(e) if e.failed_condition(0) => {
            // The escrow changed: perhaps now short of money, decided again.
            Ok(None)
        }
        Err(e) if e.is_busy() => Ok(None),
        Err(e) if matches!(&e, TransactError::Cancelled(_)) => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}

/// `POST /payments/execute/{id}`: an ERROR payment is sent again (new
/// `psp_ref` and pointer, attempts + 1, PENDING for the dispatcher, the
/// amount out of `available` again, its milestone PAID), in one transaction
/// conditional on the payment still being that ERROR attempt and on the
/// money being there; a usage spend also takes its amount back into its
/// payee's total under the total limit (409 `TOTAL_LIMIT_REACHED` when it
/// no longer fits). PENDING, SENT or SETTLED: answered unchanged. Racing
/// executes: one wins, the others read PENDING and answer it unchanged.
pub async fn execute_payment(store: &Store, id: Id, actor: &Actor) -> Result<Payment, AppError> {
    store
        .until_settled("execute a payment", AppError::busy, || {
            execute_pass(store, id, actor)
        })
        .await
}

fn payment_not_found() -> AppError {
    AppError::new(ErrorCode::PaymentNotFound, "Payment not found.")
}

async fn execute_pass(store: &Store, id: Id, actor: &Actor) -> Result<Option<Payment>, AppError> {
    let payment = store
        .payment(id)
        .await?
        .ok_or_else(payment_not_found)?
        .payment;
    if payment.status != PaymentStatus::Error {
        return Ok(Some(payment));
    }
    let (escrow, payee) = tokio::try_join!(
        store.escrow(payment.escrow_id),
        store.payee_of_spend(&payment)
    )?;
    let escrow = escrow.ok_or_else(|| AppError::internal("a payment's escrow is not stored"))?;
    let state = PaymentState {
        kind: payment.kind,
        status: payment.status,
        amount: payment.amount,
        attempts: payment.attempts,
    };
    // A spend's total limit first, as for a new spend, then the money.
    let decided = match &payee {
        Some(payee) => {
            check_total_limit(payee, payment.amount).map_err(|_| RetryRefusal::TotalLimitReached)
        }
        None => Ok(()),
    }
    .and_then(|()| retry_payment(&state, &escrow.balances()));
    let attempts = match decided {
        Ok(RetryOutcome::Unchanged) => return Ok(Some(payment)),
        Ok(RetryOutcome::Resend { attempts, .. }) => attempts,
        Err(refusal) => {
            // A racing execute may have sent it (taking the money)
            // between the two reads: then it is PENDING, answered as is.
            if let Some(again) = store.payment(id).await? {
                if again.payment.status != PaymentStatus::Error {
                    return Ok(Some(again.payment));
                }
            }
            return Err(refusal.into());
        }
    };
    let now = Timestamp::now();
    let (items, pending) =
        store.resend_items(payment, &escrow, payee.as_ref(), attempts, actor, now)?;
    match store.transact(items).await {
        Ok(()) => Ok(Some(pending)),
        // Retried by someone else, the money moved, a spend took the
        // payee's room, or the milestone changed: decide again on a fresh
        // read.
        Err(e) if e.is_busy() || matches!(e, TransactError::Cancelled(_)) => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}

/// What recording the PSP's answer to a payout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerRecorded {
    /// The payment went through this transition (SENT, or ERROR with its
    /// money back and one `PAYMENT_FAILED` alert).
    Applied(PaymentTransition),
    /// The payment was no longer PENDING at that attempt (the PSP's webhook
    /// or a retry got there first, or this answer was recorded already):
    /// nothing written.
    Moot,
}

/// The payout dispatcher's write: the PSP's `answer` to attempt `attempt`
/// of payment `id`, per `domain::escrow::payment::apply_psp_answer`, in ONE
/// transaction. Accepted: SENT, audit `*_SENT`, event `PAYMENT_SENT`.
/// Refused: ERROR exactly as a webhook's `payment.failed` (the money back,
/// the milestone APPROVED, a spend's total given back) and one
/// `PAYMENT_FAILED` alert, whose cause (`dispatch:{id}:{attempt}`) is raised
/// once however often the answer is recorded. `detail` (the PSP's payout id
/// or reason) joins the audit entry. A lost race decides again on a fresh
/// read; contention that lasts answers `SERVICE_BUSY`, nothing written (the
/// stream record is delivered again).
pub async fn record_psp_answer(
    store: &Store,
    id: Id,
    attempt: u32,
    answer: PspAnswer,
    detail: serde_json::Value,
) -> Result<AnswerRecorded, AppError> {
    store
        .until_settled("record a PSP answer", AppError::busy, || {
            answer_pass(store, id, attempt, answer, &detail)
        })
        .await
}

async fn answer_pass(
    store: &Store,
    id: Id,
    attempt: u32,
    answer: PspAnswer,
    detail: &serde_json::Value,
) -> Result<Option<AnswerRecorded>, AppError> {
    let payment = store
        .payment(id)
        .await?
        .ok_or_else(|| AppError::internal(format!("dispatched payment {id} is not stored")))?
        .payment;
    let Some(transition) = apply_psp_answer(payment.status, payment.attempts, attempt, answer)
    else {
        return Ok(Some(AnswerRecorded::Moot));
    };
    let now = Timestamp::now();
    let cause = serde_json::json!({ "dispatch": { "attempt": attempt, "psp": detail } });
    let mut items = store
        .psp_payment_items(&payment, transition, cause, now)
        .await?;
    let alert_index = items.len();
    if let Some(alert_type) = psp_answer_alert(transition) {
        items.push(
            store
                .dispatch_alert(&payment, attempt, alert_type, now)
                .await?,
        );
    }
    match store.transact(items).await {
        Ok(()) => Ok(Some(AnswerRecorded::Applied(transition))),
        // This cause's alert exists: this refusal was recorded already.
        Err(e) if e.failed_condition(alert_index) => Ok(Some(AnswerRecorded::Moot)),
        // The payment or its escrow changed under us: decide again.
        Err(e) if e.is_busy() || matches!(e, TransactError::Cancelled(_)) => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}
