//! Restricted transfers: allowlist entries, certifications and transactions
//! (`/allowlist`, `/certified`, `/transactions`).
//!
//! A transfer (the use case: `ops::transfer`) follows the purchase: one
//! pass reads the idempotency record, both users and the two grants;
//! `domain::transfer::authorize_transfer` decides; one transaction writes the idempotency record (first item, so a
//! concurrent duplicate fails there and replays the winner's answer) with
//! either the transaction and its audit entry, or the refusal's alert. The
//! alert's cause is the idempotency scope, so a retried or raced refusal
//! raises exactly one alert.

use super::{
    audit::{action, entity, Actor, AuditEntry},
    catalogue::AllowOutcome,
    idempotency::{IdempotencyRecord, Scope},
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
            CertificationLevel, Counterparties, Transfer, TransferGrants, TransferRequest,
            TransferStatus,
        },
        user::User,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::{Deserialize, Serialize};

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

/// What a transfer's one batched read found: the idempotency record in
/// force, or the two users and the grants between them.
pub(crate) enum TransferReads {
    Replay(IdempotencyRecord),
    Found {
        sender: Option<User>,
        receiver: Option<User>,
        grants: TransferGrants,
    },
}

pub(crate) fn user_not_found(which: &str) -> AppError {
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

    /// The items of an allowed transfer: the transaction and its
    /// `CREATE_TRANSACTION` audit entry.
    pub(crate) fn transfer_items(
        &self,
        transfer: &Transfer,
        request: &TransferRequest,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let audit = AuditEntry::new(
            actor,
            action::CREATE_TRANSACTION,
            entity::TRANSACTION,
            transfer.id,
            request.canonical(),
            now,
        );
        Ok(vec![
            self.put_new(to_item(&TransactionRecord::new(transfer))?),
            self.audit(&audit)?,
        ])
    }

    /// One batched, consistent read: the idempotency record, both users,
    /// the allowlist entry and the receiver's certification.
    pub(crate) async fn read_for_transfer(
        &self,
        request: &TransferRequest,
        scope: &Scope,
    ) -> Result<TransferReads, AppError> {
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
                return Ok(TransferReads::Replay(record));
            }
        }
        Ok(TransferReads::Found {
            sender: take_user(&mut found, request.sender_id())?,
            receiver: take_user(&mut found, request.receiver_id())?,
            grants: TransferGrants {
                allowlisted: found.contains_key(&allowlisted),
                receiver_certified: found.contains_key(&certified),
            },
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
