//! Proofs as use cases. A new proof (`POST /proofs`, once the handler has
//! read and judged its file): to review (one transaction, the milestone
//! PENDING_REVIEW) or approved and paid (the milestone's payout, the proof
//! in the same transaction). A decision on a proof (`POST
//! /proofs/{id}/decision`): read the proof with its escrow's parties, check
//! the caller may decide (staff, or the escrow's client), `decide_proof`,
//! then the approval (the milestone's payout, in one transaction with the
//! proof's update) or the rejection. The same decision again answers the
//! proof unchanged; the other, 409. Decided elsewhere meanwhile, or busy:
//! read again, bounded.

use super::{payout, Asker};
use crate::{
    domain::{
        access::Principal,
        escrow::{
            milestone::{check_proof_target, MilestoneStatus, ProofTargetRefusal},
            Escrow,
        },
        ids::Id,
        proof_review::{decide_proof, Decision, DecisionOutcome, Proof, ProofStatus},
        time::Timestamp,
    },
    error::AppError,
    store::{
        audit::Actor,
        escrow::transition::not_found,
        ids,
        proofs::{
            decided, duplicate, new_proof, proof_not_found, Judged, NewProof, PROOF_GUARD_INDEX,
        },
        transact::TransactError,
        Store,
    },
};
use serde_json::Value;
use std::sync::Mutex;

/// Stores a new proof as judged: to review, or approved and its milestone
/// paid. The milestone must still take it (`check_proof_target`, on every
/// fresh read); the file must be no other proof's (409 `PROOF_DUPLICATE`).
pub async fn submit(store: &Store, new: NewProof, actor: &Actor) -> Result<Proof, AppError> {
    let id = store
        .retry_busy("proof id", || store.next_id(ids::PROOF))
        .await?;
    match new.judged.clone() {
        Judged::Approve { evidence } => submit_approved(store, id, &new, evidence, actor).await,
        Judged::Review { reason, evidence } => {
            store
                .until_settled("submit a proof", AppError::busy, || {
                    review_pass(store, id, &new, reason, &evidence, actor)
                })
                .await
        }
    }
}

async fn review_pass(
    store: &Store,
    id: Id,
    new: &NewProof,
    reason: &'static str,
    evidence: &Option<Value>,
    actor: &Actor,
) -> Result<Option<Proof>, AppError> {
    let escrow = store.escrow(new.escrow_id).await?.ok_or_else(not_found)?;
    check_proof_target(escrow.status, &escrow.slots(), new.milestone_idx)?;
    let now = Timestamp::now();
    let proof = new_proof(
        id,
        new,
        &escrow,
        ProofStatus::Pending,
        Some(reason),
        evidence.clone(),
        now,
    )?;
    let items = store.review_items(&proof, new, &escrow, actor, now)?;
    match store.transact(items).await {
        Ok(()) => Ok(Some(proof)),
        Err(e) if e.failed_condition(PROOF_GUARD_INDEX) => Err(duplicate()),
        Err(e) if e.is_busy() => Ok(None),
        // The escrow or a milestone changed: decide again on a fresh read.
        Err(TransactError::Cancelled(_)) => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}

async fn submit_approved(
    store: &Store,
    id: Id,
    new: &NewProof,
    evidence: Value,
    actor: &Actor,
) -> Result<Proof, AppError> {
    let made: Mutex<Option<Proof>> = Mutex::new(None);
    let extra = |escrow: &Escrow, now: Timestamp| {
        check_proof_target(escrow.status, &escrow.slots(), new.milestone_idx)?;
        let proof = new_proof(
            id,
            new,
            escrow,
            ProofStatus::Approved,
            None,
            Some(evidence.clone()),
            now,
        )?;
        let items = store.approved_proof_items(&proof, new, escrow, actor, now)?;
        *made.lock().expect("not poisoned") = Some(proof);
        Ok(items)
    };
    // The file's guard failing means another proof took the file: final.
    payout::pay_milestone_with(
        store,
        new.escrow_id,
        new.milestone_idx,
        extra,
        &[(PROOF_GUARD_INDEX, duplicate)],
        actor,
    )
    .await?;
    made.into_inner()
        .expect("not poisoned")
        .ok_or_else(|| AppError::internal("an approved proof was not built"))
}

/// Whether `caller` may decide on a proof of an escrow with these
/// `parties` (client, provider): staff, or the client.
pub fn may_decide(caller: &Principal, parties: &[Id; 2]) -> bool {
    caller.is_staff() || caller.acts_for(parties[0])
}

pub async fn decide(
    store: &Store,
    asker: Asker<'_>,
    id: Id,
    decision: Decision,
    note: Option<String>,
) -> Result<Proof, AppError> {
    let actor = asker.actor();
    store
        .until_settled("decide on a proof", AppError::busy, || {
            decide_pass(store, asker, id, decision, &note, &actor)
        })
        .await
}

/// One read-decide-write pass; `None`: decided elsewhere meanwhile, read
/// the proof again.
async fn decide_pass(
    store: &Store,
    asker: Asker<'_>,
    id: Id,
    decision: Decision,
    note: &Option<String>,
    actor: &Actor,
) -> Result<Option<Proof>, AppError> {
    let read = store.proof(id).await?.ok_or_else(proof_not_found)?;
    if let Asker::Caller(caller) = asker {
        AppError::permit(may_decide(caller, &read.parties))?;
    }
    match decide_proof(read.proof.status, decision)? {
        DecisionOutcome::Unchanged => return Ok(Some(read.proof)),
        DecisionOutcome::Apply => {}
    }
    match decision {
        Decision::Approve => approve(store, &read.proof, note.clone(), actor).await,
        Decision::Reject => reject(store, &read.proof, note.clone(), actor).await,
    }
}

/// The approval: the milestone's payout with the proof's update. Ok(None):
/// the proof or its milestone changed meanwhile.
async fn approve(
    store: &Store,
    proof: &Proof,
    note: Option<String>,
    actor: &Actor,
) -> Result<Option<Proof>, AppError> {
    let made: Mutex<Option<Proof>> = Mutex::new(None);
    let extra = |escrow: &Escrow, now: Timestamp| {
        let milestone = escrow
            .milestones
            .iter()
            .find(|m| m.idx == proof.milestone_idx)
            .ok_or(ProofTargetRefusal::MilestoneNotFound)?;
        if milestone.status != MilestoneStatus::PendingReview {
            return Err(ProofTargetRefusal::NotWaiting.into());
        }
        let items = store.approval_items(proof, &note, actor, now)?;
        *made.lock().expect("not poisoned") = Some(decided(
            proof,
            ProofStatus::Approved,
            note.clone(),
            actor,
            now,
        ));
        Ok(items)
    };
    match payout::pay_milestone(store, proof.escrow_id, proof.milestone_idx, extra, actor).await {
        Ok(_) => Ok(made.into_inner().expect("not poisoned")),
        // Paid, or back to WAITING: another decision won; read again.
        Err(e) if e.code == crate::domain::error::ErrorCode::MilestoneNotWaiting => {
            let now = store.proof(proof.id).await?.ok_or_else(proof_not_found)?;
            if now.proof.status == ProofStatus::Pending {
                Err(e)
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(e),
    }
}

/// The rejection, in one transaction. Ok(None): the proof or its milestone
/// changed meanwhile.
async fn reject(
    store: &Store,
    proof: &Proof,
    note: Option<String>,
    actor: &Actor,
) -> Result<Option<Proof>, AppError> {
    let now = Timestamp::now();
    let items = store.rejection_items(proof, &note, actor, now)?;
    match store.transact(items).await {
        Ok(()) => Ok(Some(decided(
            proof,
            ProofStatus::Rejected,
            note,
            actor,
            now,
        ))),
        Err(e) if e.is_busy() => Err(AppError::busy()),
        Err(TransactError::Cancelled(_)) => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}
