//! A restricted transfer (💰, `POST /transactions`, under an
//! `Idempotency-Key`): the caller must act for the sender; one batched read
//! (`Store::read_for_transfer`); both users known and active;
//! `authorize_transfer` decides; ONE transaction writes the idempotency
//! record (first item, so a concurrent duplicate fails there and replays
//! the winner's answer) with either the transaction and its audit entry, or
//! the refusal's alert, whose cause is the idempotency scope (a retried or
//! raced refusal raises exactly one alert). A lost race decides again,
//! bounded; then 503 `SERVICE_BUSY`, nothing recorded.

use crate::{
    domain::{
        access::Principal,
        error::ErrorCode,
        ids::Id,
        time::Timestamp,
        transfer::{authorize_transfer, TransferRefusal, TransferRequest},
        user::first_inactive,
    },
    error::AppError,
    store::{
        alerts::{self, NewAlert},
        audit::Actor,
        idempotency::{fingerprint, IdempotencyRecord, Scope, StoredResponse},
        ids,
        transfers::{user_not_found, TransferReads},
        Store,
    },
};
use std::sync::OnceLock;

/// Makes (or replays) the transfer `request` under idempotency `scope`:
/// 201 with the transaction, or the 403 refusal (remembered under the key
/// with its one alert). Users missing or inactive are answered without
/// being remembered, so the same request works once fixed.
pub async fn transfer(
    store: &Store,
    caller: &Principal,
    request: &TransferRequest,
    scope: &Scope,
) -> Result<StoredResponse, AppError> {
    AppError::permit(caller.acts_for(request.sender_id()))?;
    let fingerprint = fingerprint(&request.canonical());
    let actor = Actor::from(caller);
    let reserved = OnceLock::new();
    let busy = || {
        AppError::new(
            ErrorCode::ServiceBusy,
            "The service is busy; nothing was recorded. Retry with the same Idempotency-Key.",
        )
    };
    store
        .until_settled("transfer", busy, || {
            pass(store, request, scope, &fingerprint, &actor, &reserved)
        })
        .await
}

/// What one pass decided on what it read.
enum Decision {
    Replay(IdempotencyRecord),
    Allowed,
    Refused(TransferRefusal),
}

/// One read-decide-write pass; `None`: decide again. `reserved` keeps the
/// id allocated by an earlier pass (transaction or alert id).
async fn pass(
    store: &Store,
    request: &TransferRequest,
    scope: &Scope,
    fingerprint: &str,
    actor: &Actor,
    reserved: &OnceLock<Id>,
) -> Result<Option<StoredResponse>, AppError> {
    let decision = match store.read_for_transfer(request, scope).await? {
        TransferReads::Replay(record) => Decision::Replay(record),
        TransferReads::Found {
            sender,
            receiver,
            grants,
        } => {
            let sender = sender.ok_or_else(|| user_not_found("Sender"))?;
            let receiver = receiver.ok_or_else(|| user_not_found("Receiver"))?;
            if let Some(inactive) = first_inactive([&sender, &receiver]) {
                return Err(AppError::user_inactive(inactive));
            }
            match authorize_transfer(request, grants) {
                Ok(()) => Decision::Allowed,
                Err(refusal) => Decision::Refused(refusal),
            }
        }
    };
    let now = Timestamp::now();
    let (response, mut items) = match decision {
        Decision::Replay(record) => return record.replay(fingerprint).map(Some),
        Decision::Allowed => {
            let id = store.reserve_id(reserved, ids::TRANSACTION).await?;
            let transfer = request.record(id, now);
            let response = StoredResponse {
                status: 201,
                body: serde_json::to_string(&transfer).map_err(AppError::internal)?,
            };
            let items = store.transfer_items(&transfer, request, actor, now)?;
            (response, items)
        }
        Decision::Refused(refusal) => {
            let id = store.reserve_id(reserved, alerts::ID_KIND).await?;
            let response = StoredResponse {
                status: refusal.code().status(),
                body: AppError::new(refusal.code(), TransferRefusal::MESSAGE)
                    .body()
                    .to_string(),
            };
            let alert = NewAlert {
                id,
                alert_type: TransferRefusal::ALERT,
                cause: format!("transfer:{}", scope.storage_key().pk),
                message: TransferRefusal::MESSAGE.to_string(),
                actor_user_id: Some(refusal.sender_id),
                payload: refusal.alert_payload(),
                created_at: now,
            };
            (response, vec![store.alert_put(&alert)?])
        }
    };
    let record = IdempotencyRecord::new(scope, fingerprint.to_string(), response.clone(), now);
    items.insert(0, store.idempotency_put(&record, now)?);
    match store.transact(items.clone()).await {
        Ok(()) => Ok(Some(response)),
        // The same key was used meanwhile: answer what was stored.
        Err(e) if e.failed_condition(0) => store.replay_taken_key(scope, fingerprint).await,
        // The alert of this cause outlived its idempotency record (kept
        // 48 h): the refusal is remembered again, the alert not raised twice.
        Err(e) if response.status != 201 && e.failed_condition(1) => {
            items.truncate(1);
            match store.transact(items).await {
                Ok(()) => Ok(Some(response)),
                Err(e) if e.failed_condition(0) || e.is_busy() => Ok(None),
                Err(e) => Err(e.unexpected()),
            }
        }
        Err(e) if e.is_busy() => Ok(None),
        Err(e) => Err(e.unexpected()),
    }
}
