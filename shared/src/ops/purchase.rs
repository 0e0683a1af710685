//! A purchase (💰, `POST /spend/purchases`): the caller must act for the
//! beneficiary; one batched read (`Store::read_for_purchase`);
//! `authorize_purchase` decides; ONE transaction writes the idempotency
//! record, the mandate's conditional debit, the purchase and the audit
//! entries, or, for a refusal, the idempotency record with the refusal (and
//! the expiry of a mandate found expired). A lost race decides again from a
//! fresh read, with the same purchase id.

use crate::{
    domain::{
        access::Principal,
        error::ErrorCode,
        ids::Id,
        mandate::Mandate,
        purchase::{authorize_purchase, Debit, PurchaseRefusal, PurchaseRequest},
        time::Timestamp,
    },
    error::AppError,
    store::{
        audit::Actor,
        idempotency::{fingerprint, IdempotencyRecord, Scope, StoredResponse},
        ids,
        purchases::PurchaseReads,
        Store,
    },
};
use std::sync::OnceLock;

/// Makes (or replays) the purchase `request` under idempotency `scope`.
/// Answers the response to send: 201 with the purchase, or the refusal.
/// A lost race or a throttled call decides again from a fresh read, with
/// bounded backoff; then 503 `SERVICE_BUSY`, nothing debited.
pub async fn purchase(
    store: &Store,
    caller: &Principal,
    request: &PurchaseRequest,
    scope: &Scope,
) -> Result<StoredResponse, AppError> {
    AppError::permit(caller.acts_for(request.beneficiary_id))?;
    let fingerprint = fingerprint(&request.canonical());
    let actor = Actor::from(caller);
    let purchase_id = OnceLock::new();
    let busy = || {
        AppError::new(
            ErrorCode::ServiceBusy,
            "The mandate is busy; nothing was debited. Retry with the same Idempotency-Key.",
        )
    };
    store
        .until_settled("purchase", busy, || {
            pass(store, request, scope, &fingerprint, &actor, &purchase_id)
        })
        .await
}

/// What one pass decided on what it read.
enum Decision {
    /// The key was used before: answer what was stored.
    Replay(IdempotencyRecord),
    Authorised {
        debit: Debit,
        mandate: Mandate,
    },
    Refused {
        refusal: PurchaseRefusal,
        mandate: Option<Mandate>,
    },
}

/// One read-decide-write pass. `None`: the mandate changed under us
/// (another purchase, the sweep): decide again.
async fn pass(
    store: &Store,
    request: &PurchaseRequest,
    scope: &Scope,
    fingerprint: &str,
    actor: &Actor,
    purchase_id: &OnceLock<Id>,
) -> Result<Option<StoredResponse>, AppError> {
    let read_at = Timestamp::now();
    let decision = match store.read_for_purchase(request, scope, read_at).await? {
        PurchaseReads::Replay(record) => Decision::Replay(record),
        PurchaseReads::Found {
            merchant,
            mandate,
            grants,
        } => match authorize_purchase(
            request,
            merchant.as_ref(),
            mandate.as_ref(),
            grants,
            read_at,
        ) {
            Ok(debit) => Decision::Authorised {
                debit,
                mandate: mandate
                    .ok_or_else(|| AppError::internal("authorised without a mandate"))?,
            },
            Err(refusal) => Decision::Refused { refusal, mandate },
        },
    };
    let id = match decision {
        Decision::Authorised { .. } => Some(store.reserve_id(purchase_id, ids::PURCHASE).await?),
        _ => purchase_id.get().copied(),
    };
    // Taken just before the transaction is sent: the debit's `expires_at >
    // now` condition must not use the time of the reads.
    let now = Timestamp::now();
    // `retry_index`: the item whose failed condition means "decide again".
    let (response, items, retry_index) = match decision {
        Decision::Replay(record) => return record.replay(fingerprint).map(Some),
        Decision::Authorised { debit, mandate } => {
            let id = id.ok_or_else(|| AppError::internal("purchase without an id"))?;
            let purchase = debit.purchase(id, request, now);
            let response = StoredResponse {
                status: 201,
                body: serde_json::to_string(&purchase).map_err(AppError::internal)?,
            };
            let record =
                IdempotencyRecord::new(scope, fingerprint.to_string(), response.clone(), now);
            let mut items = vec![
                store.idempotency_put(&record, now)?,
                store.debit(&mandate, &debit, now),
                store.purchase_put(&purchase)?,
            ];
            items.extend(store.debit_audit(&mandate, &purchase, &debit, actor, now)?);
            (response, items, Some(1))
        }
        Decision::Refused { refusal, mandate } => {
            let response = StoredResponse {
                status: refusal.code().status(),
                body: AppError::from(refusal).body().to_string(),
            };
            let record =
                IdempotencyRecord::new(scope, fingerprint.to_string(), response.clone(), now);
            let mut items = vec![store.idempotency_put(&record, now)?];
            let mut expiry_index = None;
            if let (PurchaseRefusal::MandateExpired { .. }, Some(mandate)) = (refusal, &mandate) {
                expiry_index = Some(items.len());
                items.extend(store.expiry_items(mandate, actor, now)?);
            }
            (response, items, expiry_index)
        }
    };
    match store.transact(items).await {
        Ok(()) => Ok(Some(response)),
        // The same key was used meanwhile: answer what was stored.
        Err(e) if e.failed_condition(0) => store.replay_taken_key(scope, fingerprint).await,
        Err(e) if e.is_busy() || retry_index.is_some_and(|i| e.failed_condition(i)) => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}
