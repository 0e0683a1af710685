//! A decision on a proof (`POST /proofs/{id}/decision`): read the proof with
//! its escrow's parties, check the caller may decide (staff, or the
//! escrow's client), `decide_proof`, then the approval (the milestone's
//! payout, in one transaction with the proof's update) or the rejection.
//! The same decision again answers the proof unchanged; the other, 409.
//! Decided elsewhere meanwhile, or busy: read again, bounded.

use super::Asker;
use crate::{
    domain::{
        access::Principal,
        ids::Id,
        proof_review::{decide_proof, Decision, DecisionOutcome, Proof},
    },
    error::AppError,
    store::{proofs::proof_not_found, retry::Backoff, Store},
};

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
    let mut backoff = Backoff::new(Backoff::ATTEMPTS);
    loop {
        let read = store.proof(id).await?.ok_or_else(proof_not_found)?;
        if let Asker::Caller(caller) = asker {
            AppError::permit(may_decide(caller, &read.parties))?;
        }
        match decide_proof(read.proof.status, decision)? {
            DecisionOutcome::Unchanged => return Ok(read.proof),
            DecisionOutcome::Apply => {}
        }
        let done = match decision {
            Decision::Approve => store.approve(&read.proof, note.clone(), &actor).await,
            Decision::Reject => store.reject(&read.proof, note.clone(), &actor).await,
        };
        match done {
            Ok(Some(proof)) => return Ok(proof),
            // Decided elsewhere meanwhile: read the proof again.
            Ok(None) => {}
            Err(e) if e.is_busy() => {}
            Err(e) => return Err(e),
        }
        if !backoff.wait().await {
            return Err(AppError::busy());
        }
    }
}
