//! Restricted transfers: allowlist entries, certifications and transactions
//! (`/allowlist`, `/certified`, `/transactions`).
//!
//! A transfer follows the purchase: one pass reads the idempotency record,
//! both users and the two grants; `domain::transfer::authorize_transfer`
//! decides; one transaction writes the idempotency record (first item, so a
//! concurrent duplicate fails there and replays the winner's answer) with
//! either the transaction and its audit entry, or the refusal's alert. The
//! alert's cause is the idempotency scope, so a retried or raced refusal
//! raises exactly one alert.

use super::{
    audit::{action, entity, Actor, AuditEntry},
    catalogue::AllowOutcome,
    idempotency::{IdempotencyRecord, Scope, StoredResponse},
    ids,
    items::to_item,
    keys,
    list::{Listed, Page, PageRequest, PartyList},
    users::take_user,
    Store,
};
use crate::{
    domain::{
        currency::Currency,
        error::ErrorCode,
        ids::Id,
        money::Amount,
        time::Timestamp,
        transfer::{
            authorize_transfer, CertificationLevel, Counterparties, Transfer, TransferGrants,
            TransferRefusal, TransferRequest, TransferStatus,
        },
        user::first_inactive,
    },
    error::AppError,
    store::alerts::{self, NewAlert},
};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

#[derive(Debug, Serialize)]
struct AllowlistRecord {
    pk: String,
    sk: String,
    owner_id: Id,
    recipient_id: Id,
    created_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize)]
struct CertificationRecord {
    pk: String,
    sk: String,
    user_id: Id,
    level: String,
    certified_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TransactionRecord {
    pk: String,
    sk: String,
    id: Id,
    sender_id: Id,
    /// The receiver, under the party attribute the list indexes project.
    beneficiary_id: Id,
    amount_cents: i64,
    currency: String,
    created_at: Timestamp,
    updated_at: Timestamp,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    gsi3pk: String,
    gsi3sk: String,
}

impl TransactionRecord {
    fn new(t: &Transfer) -> TransactionRecord {
        let key = keys::transaction(t.id);
        TransactionRecord {
            pk: key.pk,
            sk: key.sk,
            id: t.id,
            sender_id: t.sender_id,
            beneficiary_id: t.receiver_id,
            amount_cents: t.amount.minor_units(),
            currency: t.currency.to_string(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            gsi1pk: keys::transfer_sender_partition(t.sender_id),
            gsi1sk: keys::id_sort_key(t.id),
            gsi2pk: keys::transfer_receiver_partition(t.receiver_id),
            gsi2sk: keys::id_sort_key(t.id),
            gsi3pk: keys::sharded_partition(keys::KIND_TRANSACTION, t.id),
            gsi3sk: keys::id_sort_key(t.id),
        }
    }

    fn into_transfer(self) -> Result<Transfer, AppError> {
        let corrupt = |what: &str| {
            AppError::internal(format!("transaction {}: stored {what} is invalid", self.id))
        };
        Ok(Transfer {
            id: self.id,
            sender_id: self.sender_id,
            receiver_id: self.beneficiary_id,
            amount: Amount::from_minor_units(self.amount_cents).map_err(|_| corrupt("amount"))?,
            currency: Currency::from_stored(&self.currency).ok_or_else(|| corrupt("currency"))?,
            status: TransferStatus::Completed,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl Listed for TransactionRecord {
    fn id(&self) -> Id {
        self.id
    }
}

/// What `POST /certified` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertifyOutcome {
    Created,
    Updated,
}

/// `GET /transactions` filters; `party` limits a `user` caller to its own.
#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    pub sender_id: Option<Id>,
    pub receiver_id: Option<Id>,
    pub party: Option<Id>,
}

/// What one pass of reads found, and the decision on it.
enum Snapshot {
    Replay(IdempotencyRecord),
    Allowed,
    Refused(TransferRefusal),
}

fn user_not_found(which: &str) -> AppError {
    AppError::new(ErrorCode::UserNotFound, format!("{which} user not found."))
}

impl Store {
    /// Lets `parties.from` send to `parties.to`. Both users must exist;
    /// adding twice is not an error.
    pub async fn add_to_allowlist(
        &self,
        parties: Counterparties,
        actor: &Actor,
    ) -> Result<AllowOutcome, AppError> {
        self.retry_busy("allowlist", || self.try_add_to_allowlist(parties, actor))
            .await
    }

    async fn try_add_to_allowlist(
        &self,
        parties: Counterparties,
        actor: &Actor,
    ) -> Result<AllowOutcome, AppError> {
        let (owner, recipient) = (keys::user(parties.from), keys::user(parties.to));
        let found = self.get_many(&[owner.clone(), recipient.clone()]).await?;
        if !found.contains_key(&owner) {
            return Err(user_not_found("Owner"));
        }
        if !found.contains_key(&recipient) {
            return Err(user_not_found("Recipient"));
        }
        let now = Timestamp::now();
        let key = keys::allowlisted(parties.from, parties.to);
        let record = AllowlistRecord {
            pk: key.pk,
            sk: key.sk,
            owner_id: parties.from,
            recipient_id: parties.to,
            created_at: now,
        };
        let audit = AuditEntry::new(
            actor,
            action::ALLOWLIST_ADDED,
            entity::USER,
            parties.from,
            serde_json::json!({"recipient_id": parties.to}),
            now,
        );
        match self
            .transact(vec![self.put_new(to_item(&record)?), self.audit(&audit)?])
            .await
        {
            Ok(()) => Ok(AllowOutcome::Added),
            Err(e) if e.failed_condition(0) => Ok(AllowOutcome::AlreadyAllowed),
            Err(e) => Err(e.unexpected()),
        }
    }

    /// Certifies `user` at `level`: created the first time, then updated
    /// (level and `certified_at`), each with its audit entry.
    pub async fn certify(
        &self,
        user: Id,
        level: CertificationLevel,
        actor: &Actor,
    ) -> Result<CertifyOutcome, AppError> {
        self.retry_busy("certify", || self.try_certify(user, level, actor))
            .await
    }

    async fn try_certify(
        &self,
        user: Id,
        level: CertificationLevel,
        actor: &Actor,
    ) -> Result<CertifyOutcome, AppError> {
        let (user_key, key) = (keys::user(user), keys::certification(user));
        let found = self.get_many(&[user_key.clone(), key.clone()]).await?;
        if !found.contains_key(&user_key) {
            return Err(user_not_found("The"));
        }
        let (outcome, condition) = match found.contains_key(&key) {
            false => (CertifyOutcome::Created, "attribute_not_exists(pk)"),
            true => (CertifyOutcome::Updated, "attribute_exists(pk)"),
        };
        let now = Timestamp::now();
        let record = CertificationRecord {
            pk: key.pk,
            sk: key.sk,
            user_id: user,
            level: level.as_str().to_string(),
            certified_at: now,
        };
        let audit = AuditEntry::new(
            actor,
            action::CERTIFIED,
            entity::USER,
            user,
            serde_json::json!({"level": level, "created": outcome == CertifyOutcome::Created}),
            now,
        );
        match self
            .transact(vec![
                self.put_if(to_item(&record)?, condition),
                self.audit(&audit)?,
            ])
            .await
        {
            Ok(()) => Ok(outcome),
            // A concurrent first certification landed between the read and
            // the write: decide again from a fresh read, as for contention.
            Err(e) if e.failed_condition(0) => Err(AppError::busy()),
            Err(e) => Err(e.unexpected()),
        }
    }

    /// Makes (or replays) the transfer `request` under idempotency `scope`:
    /// 201 with the transaction, or the 403 refusal (remembered under the
    /// key with its one alert). Users missing or inactive are answered
    /// without being remembered, so the same request works once fixed.
    pub async fn transfer(
        &self,
        request: &TransferRequest,
        scope: &Scope,
        fingerprint: &str,
        actor: &Actor,
    ) -> Result<StoredResponse, AppError> {
        let reserved = OnceLock::new();
        let busy = || {
            AppError::new(
                ErrorCode::ServiceBusy,
                "The service is busy; nothing was recorded. Retry with the same Idempotency-Key.",
            )
        };
        self.until_settled("transfer", busy, || {
            self.try_transfer(request, scope, fingerprint, actor, &reserved)
        })
        .await
    }

    /// One read-decide-write pass; `None`: decide again. `reserved` keeps
    /// the id allocated by an earlier pass (transaction or alert id).
    async fn try_transfer(
        &self,
        request: &TransferRequest,
        scope: &Scope,
        fingerprint: &str,
        actor: &Actor,
        reserved: &OnceLock<Id>,
    ) -> Result<Option<StoredResponse>, AppError> {
        let snapshot = self.read_for_transfer(request, scope).await?;
        let now = Timestamp::now();
        let (response, mut items) = match snapshot {
            Snapshot::Replay(record) => return record.replay(fingerprint).map(Some),
            Snapshot::Allowed => {
                let id = self.reserve_id(reserved, ids::TRANSACTION).await?;
                let transfer = request.record(id, now);
                let response = StoredResponse {
                    status: 201,
                    body: serde_json::to_string(&transfer).map_err(AppError::internal)?,
                };
                let audit = AuditEntry::new(
                    actor,
                    action::CREATE_TRANSACTION,
                    entity::TRANSACTION,
                    transfer.id,
                    request.canonical(),
                    now,
                );
                let items = vec![
                    self.put_new(to_item(&TransactionRecord::new(&transfer))?),
                    self.audit(&audit)?,
                ];
                (response, items)
            }
            Snapshot::Refused(refusal) => {
                let id = self.reserve_id(reserved, alerts::ID_KIND).await?;
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
                (response, vec![self.alert_put(&alert)?])
            }
        };
        let record = IdempotencyRecord::new(scope, fingerprint.to_string(), response.clone(), now);
        items.insert(0, self.idempotency_put(&record, now)?);
        match self.transact(items.clone()).await {
            Ok(()) => Ok(Some(response)),
            // The same key was used meanwhile: answer what was stored.
            Err(e) if e.failed_condition(0) => match self.idempotency_record(scope, now).await? {
                Some(record) => record.replay(fingerprint).map(Some),
                None => Ok(None),
            },
            // The alert of this cause outlived its idempotency record (kept
            // 48 h): the refusal is remembered again, the alert not raised twice.
            Err(e) if response.status != 201 && e.failed_condition(1) => {
                items.truncate(1);
                match self.transact(items).await {
                    Ok(()) => Ok(Some(response)),
                    Err(e) if e.failed_condition(0) || e.is_busy() => Ok(None),
                    Err(e) => Err(e.unexpected()),
                }
            }
            Err(e) if e.is_busy() => Ok(None),
            Err(e) => Err(e.unexpected()),
        }
    }

    /// One batched, consistent read: the idempotency record, both users,
    /// the allowlist entry and the receiver's certification.
    async fn read_for_transfer(
        &self,
        request: &TransferRequest,
        scope: &Scope,
    ) -> Result<Snapshot, AppError> {
        let now = Timestamp::now();
        let idempotency_key = scope.storage_key();
        let allowlisted = keys::allowlisted(request.sender_id(), request.receiver_id());
        let certified = keys::certification(request.receiver_id());
        let mut found = self
            .get_many(&[
                idempotency_key.clone(),
                keys::user(request.sender_id()),
                keys::user(request.receiver_id()),
                allowlisted.clone(),
                certified.clone(),
            ])
            .await?;
        if let Some(item) = found.remove(&idempotency_key) {
            if let Some(record) = IdempotencyRecord::from_live_item(item, now)? {
                return Ok(Snapshot::Replay(record));
            }
        }
        let sender =
            take_user(&mut found, request.sender_id())?.ok_or_else(|| user_not_found("Sender"))?;
        let receiver = take_user(&mut found, request.receiver_id())?
            .ok_or_else(|| user_not_found("Receiver"))?;
        if let Some(inactive) = first_inactive([&sender, &receiver]) {
            return Err(AppError::user_inactive(inactive));
        }
        let grants = TransferGrants {
            allowlisted: found.contains_key(&allowlisted),
            receiver_certified: found.contains_key(&certified),
        };
        Ok(match authorize_transfer(request, grants) {
            Ok(()) => Snapshot::Allowed,
            Err(refusal) => Snapshot::Refused(refusal),
        })
    }

    pub async fn transaction(&self, id: Id) -> Result<Option<Transfer>, AppError> {
        self.get::<TransactionRecord>(&keys::transaction(id))
            .await?
            .map(TransactionRecord::into_transfer)
            .transpose()
    }

    /// One page of transactions, newest first.
    pub async fn transactions(
        &self,
        filter: &TransactionFilter,
        page: PageRequest,
    ) -> Result<Page<Transfer>, AppError> {
        let parties = PartyList {
            first: filter.sender_id,
            second: filter.receiver_id,
            party: filter.party,
            first_partition: keys::transfer_sender_partition,
            second_partition: keys::transfer_receiver_partition,
            kind: keys::KIND_TRANSACTION,
            status: None,
        };
        let page = self
            .list_between::<TransactionRecord>(&parties, page)
            .await?;
        page.try_map(TransactionRecord::into_transfer)
    }
}
