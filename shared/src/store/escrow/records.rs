//! The stored shape of an escrow, its milestones, its timeline entries and
//! its payments (serde_dynamo items), and their conversion to what the
//! domain and the API answer. Bottom of the store's escrow folder: what
//! reads them (`escrows.rs`, `payments.rs`) and what writes them
//! (`transition.rs`) sit above it.

use crate::{
    domain::{
        currency::Currency,
        escrow::{
            deadline_duty,
            milestone::MilestoneStatus,
            payment::{Payee, Payment, PaymentKind, PaymentStatus},
            Escrow, EscrowStatus, Geofence, Milestone,
        },
        ids::Id,
        money::{Amount, Money},
        time::Timestamp,
    },
    error::AppError,
    store::{
        keys::{self},
        list::Listed,
    },
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EscrowRecord {
    pk: String,
    sk: String,
    pub(super) id: Id,
    client_id: Id,
    provider_id: Id,
    /// The client and the provider again, under the party attributes the
    /// list indexes project (see `keys`).
    sender_id: Id,
    beneficiary_id: Id,
    currency: String,
    total_cents: i64,
    funded_cents: i64,
    available_cents: i64,
    paid_cents: i64,
    refunded_cents: i64,
    status: EscrowStatus,
    /// JSON text of the client's object.
    release_conditions: String,
    deadline_at: Timestamp,
    pub(super) milestone_count: u32,
    created_at: Timestamp,
    updated_at: Timestamp,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    gsi3pk: String,
    gsi3sk: String,
    /// Present only while the deadline sweep can act on the escrow
    /// (`deadline_duty`): the sparse deadline index.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expiry_pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expiry_sk: Option<String>,
}

impl EscrowRecord {
    pub(super) fn new(e: &Escrow) -> Result<EscrowRecord, AppError> {
        let key = keys::escrow(e.id);
        let duty = deadline_duty(e.status, false);
        Ok(EscrowRecord {
            pk: key.pk,
            sk: key.sk,
            id: e.id,
            client_id: e.client_id,
            provider_id: e.provider_id,
            sender_id: e.client_id,
            beneficiary_id: e.provider_id,
            currency: e.currency.to_string(),
            total_cents: e.amount_total.minor_units(),
            funded_cents: e.amount_funded.minor_units(),
            available_cents: e.amount_available.minor_units(),
            paid_cents: e.amount_paid.minor_units(),
            refunded_cents: e.amount_refunded.minor_units(),
            status: e.status,
            release_conditions: e.release_conditions.to_string(),
            deadline_at: e.deadline_at,
            milestone_count: u32::try_from(e.milestones.len()).map_err(AppError::internal)?,
            created_at: e.created_at,
            updated_at: e.updated_at,
            gsi1pk: keys::client_partition(e.client_id),
            gsi1sk: keys::id_sort_key(e.id),
            gsi2pk: keys::provider_partition(e.provider_id),
            gsi2sk: keys::id_sort_key(e.id),
            gsi3pk: keys::sharded_partition(keys::KIND_ESCROW, e.id),
            gsi3sk: keys::id_sort_key(e.id),
            expiry_pk: duty.map(|d| keys::sharded_partition(keys::deadline_kind(d), e.id)),
            expiry_sk: duty.map(|_| keys::expiry_sort_key(e.deadline_at, e.id)),
        })
    }

    pub(super) fn into_escrow(self, milestones: Vec<Milestone>) -> Result<Escrow, AppError> {
        let corrupt = |what: &str| {
            AppError::internal(format!("escrow {}: stored {what} is invalid", self.id))
        };
        let money =
            |cents: i64, what: &str| Money::from_minor_units(cents).map_err(|_| corrupt(what));
        Ok(Escrow {
            id: self.id,
            client_id: self.client_id,
            provider_id: self.provider_id,
            currency: Currency::from_stored(&self.currency).ok_or_else(|| corrupt("currency"))?,
            amount_total: Amount::from_minor_units(self.total_cents)
                .map_err(|_| corrupt("total"))?,
            amount_funded: money(self.funded_cents, "funded")?,
            amount_available: money(self.available_cents, "available")?,
            amount_paid: money(self.paid_cents, "paid")?,
            amount_refunded: money(self.refunded_cents, "refunded")?,
            status: self.status,
            release_conditions: serde_json::from_str(&self.release_conditions)
                .map_err(|_| corrupt("release_conditions"))?,
            deadline_at: self.deadline_at,
            milestones,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl Listed for EscrowRecord {
    fn id(&self) -> Id {
        self.id
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MilestoneRecord {
    pk: String,
    sk: String,
    id: Id,
    escrow_id: Id,
    idx: u32,
    label: String,
    amount_cents: i64,
    proof_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    geofence: Option<Geofence>,
    status: MilestoneStatus,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl MilestoneRecord {
    pub(super) fn new(escrow: Id, m: &Milestone, now: Timestamp) -> MilestoneRecord {
        let key = keys::milestone(escrow, m.idx);
        MilestoneRecord {
            pk: key.pk,
            sk: key.sk,
            id: m.id,
            escrow_id: escrow,
            idx: m.idx,
            label: m.label.clone(),
            amount_cents: m.amount.minor_units(),
            proof_type: m.proof_type.clone(),
            geofence: m.geofence,
            status: m.status,
            created_at: now,
            updated_at: now,
        }
    }

    pub(super) fn into_milestone(self) -> Result<Milestone, AppError> {
        Ok(Milestone {
            id: self.id,
            idx: self.idx,
            amount: Amount::from_minor_units(self.amount_cents).map_err(|_| {
                AppError::internal(format!("milestone {}: stored amount is invalid", self.id))
            })?,
            label: self.label,
            proof_type: self.proof_type,
            geofence: self.geofence,
            status: self.status,
        })
    }
}

/// One entry of an escrow's timeline, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EventRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) escrow_id: Id,
    pub(super) kind: String,
    pub(super) at: Timestamp,
    pub(super) actor: String,
    /// JSON text.
    pub(super) data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PaymentRecord {
    pk: String,
    sk: String,
    id: Id,
    escrow_id: Id,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    milestone_id: Option<Id>,
    kind: PaymentKind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    payee_user_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    payee_ref: Option<String>,
    amount_cents: i64,
    currency: String,
    psp_ref: String,
    status: PaymentStatus,
    attempts: u32,
    /// The escrow's parties, who may read the payment.
    client_id: Id,
    provider_id: Id,
    created_at: Timestamp,
    updated_at: Timestamp,
    gsi1pk: String,
    gsi1sk: String,
    gsi3pk: String,
    gsi3sk: String,
    /// Present only while PENDING: the stuck-payout sweep's entry in the
    /// deadline index, sorted by when the payment became PENDING.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expiry_pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    expiry_sk: Option<String>,
}

impl PaymentRecord {
    pub(super) fn new(p: &Payment, escrow: &Escrow) -> PaymentRecord {
        let key = keys::payment(p.id);
        let pending = p.status == PaymentStatus::Pending;
        let (payee_user_id, payee_ref) = match &p.payee {
            Payee::User { user_id } => (Some(*user_id), None),
            Payee::Ref { payee_ref } => (None, Some(payee_ref.clone())),
        };
        PaymentRecord {
            pk: key.pk,
            sk: key.sk,
            id: p.id,
            escrow_id: p.escrow_id,
            milestone_id: p.milestone_id,
            kind: p.kind,
            payee_user_id,
            payee_ref,
            amount_cents: p.amount.minor_units(),
            currency: p.currency.to_string(),
            psp_ref: p.psp_ref.clone(),
            status: p.status,
            attempts: p.attempts,
            client_id: escrow.client_id,
            provider_id: escrow.provider_id,
            created_at: p.created_at,
            updated_at: p.updated_at,
            gsi1pk: keys::escrow_payments_partition(p.escrow_id),
            gsi1sk: keys::id_sort_key(p.id),
            gsi3pk: keys::sharded_partition(keys::KIND_PAYMENT, p.id),
            gsi3sk: keys::id_sort_key(p.id),
            expiry_pk: pending.then(|| keys::sharded_partition(keys::PENDING_PAYMENTS, p.id)),
            expiry_sk: pending.then(|| keys::expiry_sort_key(p.updated_at, p.id)),
        }
    }

    pub(super) fn parties(&self) -> [Id; 2] {
        [self.client_id, self.provider_id]
    }

    pub(super) fn into_payment(self) -> Result<Payment, AppError> {
        let corrupt = |what: &str| {
            AppError::internal(format!("payment {}: stored {what} is invalid", self.id))
        };
        let payee = match (self.payee_user_id, self.payee_ref) {
            (Some(user_id), None) => Payee::User { user_id },
            (None, Some(payee_ref)) => Payee::Ref { payee_ref },
            _ => return Err(corrupt("payee")),
        };
        Ok(Payment {
            id: self.id,
            escrow_id: self.escrow_id,
            milestone_id: self.milestone_id,
            kind: self.kind,
            payee,
            amount: Amount::from_minor_units(self.amount_cents).map_err(|_| corrupt("amount"))?,
            currency: Currency::from_stored(&self.currency).ok_or_else(|| corrupt("currency"))?,
            psp_ref: self.psp_ref,
            status: self.status,
            attempts: self.attempts,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl Listed for PaymentRecord {
    fn id(&self) -> Id {
        self.id
    }
}
