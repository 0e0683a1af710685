//! Proofs: the uploads prepared for them, the proofs themselves and their
//! decisions.
//!
//! Items: `UPLOAD#{upload_id}` (what the client declared, expired by TTL after
//! a day), `PROOF#{id}` and the guard `PROOF_HASH#{sha256}` (one proof per
//! file, ever), written with `attribute_not_exists(pk)` in the transaction
//! of the proof.
//!
//! Every change is ONE `TransactWriteItems`:
//! - a proof that goes to review: the proof, its guard, the milestone
//!   WAITING → PENDING_REVIEW (conditional on WAITING), the escrow's status as
//!   read, the milestones before it still PAID, the audit entry
//!   `SUBMIT_PROOF` and the event `PROOF_SUBMITTED`;
//! - an auto-approved proof and an approval: `ops::payout::pay_milestone`, whose
//!   `extra` items are the proof's (the proof APPROVED, its guard, audit
//!   `SUBMIT_PROOF`/`APPROVE_PROOF`, events `PROOF_SUBMITTED`/
//!   `PROOF_APPROVED`), so the payout and the proof stand or fall together;
//!   the hook checks the earlier milestones are still PAID (409
//!   `EARLIER_MILESTONE_UNPAID` if one's payout failed meanwhile);
//! - a rejection: the proof REJECTED (conditional on PENDING), the milestone
//!   back to WAITING (conditional on PENDING_REVIEW), audit `REJECT_PROOF`,
//!   event `PROOF_REJECTED`.
//!
//! The store builds these items; `ops::proof` reads, decides, sends them
//! and, on a lost race, decides again from a fresh read, bounded; then 503
//! `SERVICE_BUSY`, nothing changed.

use super::{
    audit::{entity, Actor},
    escrow::transition::Trail,
    items::{key_item, s, to_item, values},
    keys::{self, Index},
    list::{Filters, Order, Page, PageRequest},
    Store,
};
use crate::{
    domain::{
        error::ErrorCode,
        escrow::milestone::{MilestoneStatus, ProofTargetRefusal},
        escrow::{Escrow, EscrowEventKind},
        ids::Id,
        proof::ReviewReason,
        proof_review::{Proof, ProofStatus},
        time::Timestamp,
        upload::UPLOAD_TTL_SECONDS,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A payout writes at most this many audit entries and events (its trail
/// numbers them from 1): a proof's entries in the same transaction come after.
const PAYOUT_ENTRIES: u8 = 10;

/// What `POST /proofs/uploads` prepared, remembered for `POST /proofs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub upload_id: String,
    pub escrow_id: Id,
    pub milestone_idx: u32,
    pub content_type: String,
    pub content_length: u64,
    pub sha256: String,
    /// The object key the presigned PUT writes.
    pub object_key: String,
    /// Who prepared it (`apikey:{id}`).
    pub uploader: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadRecord {
    pk: String,
    sk: String,
    upload_id: String,
    escrow_id: Id,
    milestone_idx: u32,
    content_type: String,
    content_length: u64,
    sha256: String,
    object_key: String,
    uploader: String,
    created_at: Timestamp,
    /// Epoch seconds: DynamoDB deletes the item after this.
    ttl: i64,
}

impl UploadRecord {
    fn into_upload(self) -> Upload {
        Upload {
            upload_id: self.upload_id,
            escrow_id: self.escrow_id,
            milestone_idx: self.milestone_idx,
            content_type: self.content_type,
            content_length: self.content_length,
            sha256: self.sha256,
            object_key: self.object_key,
            uploader: self.uploader,
            created_at: self.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProofRecord {
    pk: String,
    sk: String,
    id: Id,
    escrow_id: Id,
    milestone_id: Id,
    milestone_idx: u32,
    #[serde(rename = "type")]
    kind: String,
    storage_url: String,
    sha256: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    size: Option<u64>,
    /// JSON text of the client's metadata.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    metadata: Option<String>,
    /// JSON text of the evidence the server read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    evidence: Option<String>,
    status: ProofStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    review_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    decision_note: Option<String>,
    /// The proof's own copy of its file, if the server read one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    object_key: Option<String>,
    /// The escrow's parties, who may read the proof.
    client_id: Id,
    provider_id: Id,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// The lists (`GET /proofs`): by escrow in `gsi1`, all in `gsi3`.
    /// Proofs stored before the lists existed have none and are not listed.
    #[serde(default)]
    gsi1pk: String,
    #[serde(default)]
    gsi1sk: String,
    #[serde(default)]
    gsi3pk: String,
    #[serde(default)]
    gsi3sk: String,
}

impl super::list::Listed for ProofRecord {
    fn id(&self) -> Id {
        self.id
    }
}

impl ProofRecord {
    fn new(p: &Proof, object_key: Option<String>, escrow: &Escrow) -> ProofRecord {
        let key = keys::proof(p.id);
        ProofRecord {
            pk: key.pk,
            sk: key.sk,
            id: p.id,
            escrow_id: p.escrow_id,
            milestone_id: p.milestone_id,
            milestone_idx: p.milestone_idx,
            kind: p.kind.clone(),
            storage_url: p.storage_url.clone(),
            sha256: p.sha256.clone(),
            content_type: p.content_type.clone(),
            size: p.size,
            metadata: p.metadata.as_ref().map(Value::to_string),
            evidence: p.evidence.as_ref().map(Value::to_string),
            status: p.status,
            review_reason: p.review_reason.clone(),
            decided_by: p.decided_by.clone(),
            decision_note: p.decision_note.clone(),
            object_key,
            client_id: escrow.client_id,
            provider_id: escrow.provider_id,
            created_at: p.created_at,
            updated_at: p.updated_at,
            gsi1pk: keys::escrow_proofs_partition(p.escrow_id),
            gsi1sk: keys::id_sort_key(p.id),
            gsi3pk: keys::sharded_partition(keys::KIND_PROOF, p.id),
            gsi3sk: keys::id_sort_key(p.id),
        }
    }

    fn into_read(self) -> Result<ProofRead, AppError> {
        let json = |text: Option<String>| -> Result<Option<Value>, AppError> {
            text.map(|t| serde_json::from_str(&t).map_err(AppError::internal))
                .transpose()
        };
        Ok(ProofRead {
            parties: [self.client_id, self.provider_id],
            object_key: self.object_key,
            proof: Proof {
                id: self.id,
                escrow_id: self.escrow_id,
                milestone_id: self.milestone_id,
                milestone_idx: self.milestone_idx,
                kind: self.kind,
                storage_url: self.storage_url,
                sha256: self.sha256,
                content_type: self.content_type,
                size: self.size,
                metadata: json(self.metadata)?,
                evidence: json(self.evidence)?,
                status: self.status,
                review_reason: self.review_reason,
                decided_by: self.decided_by,
                decision_note: self.decision_note,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
        })
    }
}

/// A proof read with the parties of its escrow and its file's key.
#[derive(Debug, Clone, PartialEq)]
pub struct ProofRead {
    pub proof: Proof,
    pub parties: [Id; 2],
    pub object_key: Option<String>,
}

/// What `GET /proofs` lists: every filter given must match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProofFilter {
    pub escrow_id: Option<Id>,
    pub status: Option<ProofStatus>,
    pub review_reason: Option<ReviewReason>,
}

/// What the judge said about a new proof, as the store writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Judged {
    /// Proof APPROVED, milestone PAID, PAYOUT: one transaction.
    Approve { evidence: Value },
    /// Proof PENDING, milestone PENDING_REVIEW.
    Review {
        reason: &'static str,
        evidence: Option<Value>,
    },
}

/// A proof to store: what the client sent and the server read.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProof {
    pub escrow_id: Id,
    pub milestone_idx: u32,
    pub kind: String,
    pub storage_url: String,
    pub sha256: String,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    pub metadata: Option<Value>,
    pub object_key: Option<String>,
    pub judged: Judged,
}

pub fn proof_not_found() -> AppError {
    AppError::new(ErrorCode::ProofNotFound, "Proof not found.")
}

/// Where the file's guard is among a proof's items (`proof_items`).
pub(crate) const PROOF_GUARD_INDEX: usize = 1;

pub fn duplicate() -> AppError {
    AppError::new(
        ErrorCode::ProofDuplicate,
        "This file (same SHA-256) is already the file of a proof.",
    )
}

impl Store {
    /// Remembers an upload for a day (a new `upload_id` each time).
    pub async fn put_upload(&self, upload: &Upload) -> Result<(), AppError> {
        let key = keys::upload(&upload.upload_id);
        let record = UploadRecord {
            pk: key.pk,
            sk: key.sk,
            upload_id: upload.upload_id.clone(),
            escrow_id: upload.escrow_id,
            milestone_idx: upload.milestone_idx,
            content_type: upload.content_type.clone(),
            content_length: upload.content_length,
            sha256: upload.sha256.clone(),
            object_key: upload.object_key.clone(),
            uploader: upload.uploader.clone(),
            created_at: upload.created_at,
            ttl: upload.created_at.unix_seconds() + UPLOAD_TTL_SECONDS,
        };
        let item = to_item(&record)?;
        self.retry_busy("put upload", || async {
            self.client
                .put_item()
                .table_name(self.table())
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
                .map(|_| ())
                .map_err(super::retry::aws_error)
        })
        .await
    }

    /// The upload `upload_id`, unless unknown or past its day.
    pub async fn upload(&self, upload_id: &str) -> Result<Option<Upload>, AppError> {
        let key = keys::upload(upload_id);
        let record: Option<UploadRecord> =
            self.retry_busy("read upload", || self.get(&key)).await?;
        // DynamoDB deletes expired items lazily: an expired one is gone.
        Ok(record
            .filter(|r| r.ttl > Timestamp::now().unix_seconds())
            .map(UploadRecord::into_upload))
    }

    /// True if some proof already has this file.
    pub async fn proof_hash_taken(&self, sha256: &str) -> Result<bool, AppError> {
        let guard: Option<Value> = self
            .retry_busy("read proof hash", || async {
                let output = self
                    .client
                    .get_item()
                    .table_name(self.table())
                    .set_key(Some(key_item(&keys::proof_hash(sha256))))
                    .projection_expression("pk")
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(super::retry::aws_error)?;
                Ok(output.item.map(|_| Value::Null))
            })
            .await?;
        Ok(guard.is_some())
    }

    /// One page of proofs matching `filter`: a pending queue oldest first
    /// (the one waiting longest on top), any other list newest first. By
    /// escrow it reads that escrow's partition; otherwise every shard of the
    /// kind index. The status is filtered in the index, the review reason
    /// (not projected) on the items.
    pub async fn proofs(
        &self,
        filter: &ProofFilter,
        page: PageRequest,
    ) -> Result<Page<ProofRead>, AppError> {
        let partitions: Vec<(Index, String)> = match filter.escrow_id {
            Some(escrow) => vec![(keys::GSI_BY_SENDER, keys::escrow_proofs_partition(escrow))],
            None => keys::all_shards(keys::KIND_PROOF)
                .into_iter()
                .map(|p| (keys::GSI_BY_KIND, p))
                .collect(),
        };
        let mut filters: Filters = Vec::new();
        if let Some(status) = filter.status {
            filters.push(("status", s(status.as_str())));
        }
        if let Some(reason) = filter.review_reason {
            filters.push(("review_reason", s(reason.as_str())));
        }
        let order = match filter.status {
            Some(ProofStatus::Pending) => Order::OldestFirst,
            _ => Order::NewestFirst,
        };
        self.list_in_order::<ProofRecord>(&partitions, &filters, page, order)
            .await?
            .try_map(ProofRecord::into_read)
    }

    /// One proof, with its escrow's parties.
    pub async fn proof(&self, id: Id) -> Result<Option<ProofRead>, AppError> {
        let key = keys::proof(id);
        let record: Option<ProofRecord> = self.retry_busy("read proof", || self.get(&key)).await?;
        record.map(ProofRecord::into_read).transpose()
    }

    /// The proof, its file's guard, and the `SUBMIT_PROOF` audit entry and
    /// `PROOF_SUBMITTED` event; `approved` adds `APPROVE_PROOF` and
    /// `PROOF_APPROVED`. Guard at [`PROOF_GUARD_INDEX`].
    pub(crate) fn proof_items(
        &self,
        proof: &Proof,
        new: &NewProof,
        escrow: &Escrow,
        trail: &mut Trail<'_>,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let record = ProofRecord::new(proof, new.object_key.clone(), escrow);
        let mut guard = key_item(&keys::proof_hash(&proof.sha256));
        guard.insert("owner_id".into(), super::items::n(proof.id));
        let submitted = serde_json::json!({
            "proof_id": proof.id,
            "escrow_id": proof.escrow_id,
            "milestone_idx": proof.milestone_idx,
            "type": proof.kind,
            "storage_url": proof.storage_url,
            "sha256": proof.sha256,
            "metadata": proof.metadata,
            "status": proof.status,
            "review_reason": proof.review_reason,
        });
        let on = (entity::PROOF, proof.id);
        let mut items = vec![
            self.put_new(to_item(&record)?),
            self.put_new(guard),
            trail.audit(self, "SUBMIT_PROOF", on, submitted.clone())?,
            trail.event(self, EscrowEventKind::ProofSubmitted, submitted)?,
        ];
        if proof.status == ProofStatus::Approved {
            let approved = serde_json::json!({"proof_id": proof.id, "note": null, "auto": true});
            items.push(trail.audit(self, "APPROVE_PROOF", on, approved.clone())?);
            items.push(trail.event(self, EscrowEventKind::ProofApproved, approved)?);
        }
        Ok(items)
    }

    /// The milestones before `idx` are still PAID (a failed payout may put
    /// one back): the sequence rule holds at the commit, not only at the read.
    fn earlier_paid(&self, escrow: &Escrow, idx: u32) -> Vec<TransactWriteItem> {
        escrow
            .milestones
            .iter()
            .filter(|m| m.idx < idx)
            .map(|m| self.milestone_is(escrow.id, m.idx, MilestoneStatus::Paid))
            .collect()
    }

    fn milestone_is(&self, escrow: Id, idx: u32, status: MilestoneStatus) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::milestone(escrow, idx))))
            .condition_expression("#status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .build()
            .expect("table, key and condition are set");
        TransactWriteItem::builder().condition_check(check).build()
    }

    fn escrow_is(&self, escrow: &Escrow) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::escrow(escrow.id))))
            .condition_expression("#status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(escrow.status.as_str()))
            .build()
            .expect("table, key and condition are set");
        TransactWriteItem::builder().condition_check(check).build()
    }

    fn milestone_move(
        &self,
        escrow: Id,
        idx: u32,
        from: MilestoneStatus,
        to: MilestoneStatus,
        now: Timestamp,
    ) -> TransactWriteItem {
        let update = Update::builder()
            .set_key(Some(key_item(&keys::milestone(escrow, idx))))
            .update_expression("SET #status = :to, updated_at = :now")
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values([
                (":to", s(to.as_str())),
                (":from", s(from.as_str())),
                (":now", s(now.to_string())),
            ])));
        self.update(update)
    }

    /// The items of a proof that goes to review: the proof and its guard
    /// (at [`PROOF_GUARD_INDEX`]), audit and event, the milestone WAITING →
    /// PENDING_REVIEW, the escrow's status as read, the milestones before it
    /// still PAID.
    pub(crate) fn review_items(
        &self,
        proof: &Proof,
        new: &NewProof,
        escrow: &Escrow,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let mut trail = Trail::new(escrow.id, actor, now);
        let mut items = self.proof_items(proof, new, escrow, &mut trail)?;
        items.push(self.milestone_move(
            escrow.id,
            new.milestone_idx,
            MilestoneStatus::Waiting,
            MilestoneStatus::PendingReview,
            now,
        ));
        items.push(self.escrow_is(escrow));
        items.extend(self.earlier_paid(escrow, new.milestone_idx));
        Ok(items)
    }

    /// The items an approved new proof adds to its milestone's payout: the
    /// proof and its guard (at [`PROOF_GUARD_INDEX`] among them), audit and
    /// events, after the payout's own entries. The payout checks the
    /// earlier milestones are still PAID.
    pub(crate) fn approved_proof_items(
        &self,
        proof: &Proof,
        new: &NewProof,
        escrow: &Escrow,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let mut trail = Trail::new(escrow.id, actor, now).after(PAYOUT_ENTRIES);
        self.proof_items(proof, new, escrow, &mut trail)
    }

    fn decided_update(
        &self,
        proof: &Proof,
        to: ProofStatus,
        note: &Option<String>,
        actor: &Actor,
        now: Timestamp,
    ) -> TransactWriteItem {
        let mut vals = values([
            (":to", s(to.as_str())),
            (":pending", s(ProofStatus::Pending.as_str())),
            (":by", s(actor.to_string())),
            (":now", s(now.to_string())),
        ]);
        let mut set = "SET #status = :to, decided_by = :by, updated_at = :now".to_string();
        if let Some(note) = note {
            set.push_str(", decision_note = :note");
            vals.insert(":note".into(), s(note.clone()));
        }
        let update = Update::builder()
            .set_key(Some(key_item(&keys::proof(proof.id))))
            .update_expression(set)
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(vals));
        self.update(update)
    }

    /// The items a decided approval of `proof` adds to its milestone's
    /// payout: the proof APPROVED (conditional on PENDING), audit and event,
    /// after the payout's own entries.
    pub(crate) fn approval_items(
        &self,
        proof: &Proof,
        note: &Option<String>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let data = serde_json::json!({"proof_id": proof.id, "note": note, "auto": false});
        let mut trail = Trail::new(proof.escrow_id, actor, now).after(PAYOUT_ENTRIES);
        Ok(vec![
            self.decided_update(proof, ProofStatus::Approved, note, actor, now),
            trail.audit(
                self,
                "APPROVE_PROOF",
                (entity::PROOF, proof.id),
                data.clone(),
            )?,
            trail.event(self, EscrowEventKind::ProofApproved, data)?,
        ])
    }

    /// The transaction of a rejection: the proof REJECTED (conditional on
    /// PENDING), the milestone back to WAITING (conditional on
    /// PENDING_REVIEW), audit `REJECT_PROOF`, event `PROOF_REJECTED`.
    pub(crate) fn rejection_items(
        &self,
        proof: &Proof,
        note: &Option<String>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let data = serde_json::json!({"proof_id": proof.id, "note": note});
        let mut trail = Trail::new(proof.escrow_id, actor, now);
        Ok(vec![
            self.decided_update(proof, ProofStatus::Rejected, note, actor, now),
            self.milestone_move(
                proof.escrow_id,
                proof.milestone_idx,
                MilestoneStatus::PendingReview,
                MilestoneStatus::Waiting,
                now,
            ),
            trail.audit(
                self,
                "REJECT_PROOF",
                (entity::PROOF, proof.id),
                data.clone(),
            )?,
            trail.event(self, EscrowEventKind::ProofRejected, data)?,
        ])
    }
}

/// `proof` as decided (`to`) by `actor`.
pub(crate) fn decided(
    proof: &Proof,
    to: ProofStatus,
    note: Option<String>,
    actor: &Actor,
    now: Timestamp,
) -> Proof {
    Proof {
        status: to,
        decided_by: Some(actor.to_string()),
        decision_note: note,
        updated_at: now,
        ..proof.clone()
    }
}

/// A new proof of `new` (to store), for the milestone of `escrow` it names.
pub(crate) fn new_proof(
    id: Id,
    new: &NewProof,
    escrow: &Escrow,
    status: ProofStatus,
    review_reason: Option<&str>,
    evidence: Option<Value>,
    now: Timestamp,
) -> Result<Proof, AppError> {
    let milestone = escrow
        .milestones
        .iter()
        .find(|m| m.idx == new.milestone_idx)
        .ok_or_else(|| AppError::from(ProofTargetRefusal::MilestoneNotFound))?;
    Ok(Proof {
        id,
        escrow_id: escrow.id,
        milestone_id: milestone.id,
        milestone_idx: milestone.idx,
        kind: new.kind.clone(),
        storage_url: new.storage_url.clone(),
        sha256: new.sha256.clone(),
        content_type: new.content_type.clone(),
        size: new.size,
        metadata: new.metadata.clone(),
        evidence,
        status,
        review_reason: review_reason.map(str::to_string),
        decided_by: (status == ProofStatus::Approved).then(|| Actor::System.to_string()),
        decision_note: None,
        created_at: now,
        updated_at: now,
    })
}
