//! Escrows: creation with their milestones, reads, lists, the timeline,
//! deposits and the state transitions of `domain::escrow::decide`.
//!
//! Items: the escrow (`ESCROW#{id}`/`ESCROW`), one item per milestone in
//! the same partition (`MILESTONE#{idx:03}`), so one consistent Query reads
//! an escrow whole, and its timeline in a partition of its own. Money is
//! integer cents. Every transition is ONE transaction: the escrow's update,
//! conditional on the status (and the balances) it was decided on, with its
//! audit entries and timeline events, and the payment it makes (built in
//! `transition.rs`, with the stored items of `records.rs`). A lost race decides again from a fresh read, bounded;
//! then 503 `SERVICE_BUSY`, nothing changed.
//!
//! While the deadline sweep can act on it (`domain::escrow::deadline_duty`:
//! RELEASABLE, or FUNDED and not yet alerted) an escrow carries
//! `expiry_pk`/`expiry_sk`: the sparse deadline index that the sweep reads
//! (`store/deadlines.rs`). Every status change sets or removes it; the alert
//! removes it.

use super::{
    records::{EscrowRecord, EventRecord, MilestoneRecord},
    transition::{BalanceGuard, Trail},
};
use crate::{
    domain::{
        alert::AlertType,
        currency::Currency,
        error::ErrorCode,
        escrow::{
            check_escrow_terms, milestone::MilestoneStatus, Escrow, EscrowAudit, EscrowEventKind,
            EscrowStatus, EscrowTerms, EscrowTransition, Milestone,
        },
        ids::Id,
        money::{Amount, Money},
        time::Timestamp,
        user::first_inactive,
    },
    error::AppError,
    store::{
        alerts::{self, NewAlert},
        audit::{entity, Actor},
        ids,
        items::{from_item, key_item, n, s, to_item, values, Item},
        keys::{self, Key},
        list::{KeyPageRequest, Page, PageRequest, PartyList},
        users::take_user,
        Store,
    },
};
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::Serialize;

/// Longest `release_conditions`, as JSON text: an item holds at most 400 KB.
pub const MAX_RELEASE_CONDITIONS_BYTES: usize = 16 * 1024;

/// One entry of `GET /escrows/{id}/events`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EscrowEvent {
    pub kind: String,
    pub at: Timestamp,
    pub actor: String,
    pub data: serde_json::Value,
}

/// What `POST /escrows` asks for, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEscrow {
    pub terms: EscrowTerms,
    pub currency: Currency,
    pub release_conditions: serde_json::Value,
}

/// Which escrows `GET /escrows` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EscrowFilter {
    pub client_id: Option<Id>,
    pub provider_id: Option<Id>,
    pub status: Option<EscrowStatus>,
    /// For a `user` key: only escrows this user is a party to.
    pub party: Option<Id>,
}

impl Store {
    /// Creates an escrow and its milestones, DRAFT and WAITING: one
    /// transaction with the audit entry and the `CREATED` event.
    pub async fn create_escrow(&self, new: NewEscrow, actor: &Actor) -> Result<Escrow, AppError> {
        if let Err(problems) = check_escrow_terms(&new.terms, Timestamp::now()) {
            return Err(AppError::validation(
                problems
                    .into_iter()
                    .map(|p| (p.field, serde_json::Value::String(p.problem.into())))
                    .collect(),
            ));
        }
        if new.release_conditions.to_string().len() > MAX_RELEASE_CONDITIONS_BYTES {
            return Err(AppError::field(
                "release_conditions",
                "must be at most 16 KiB of JSON",
            ));
        }
        self.retry_busy("check escrow parties", || {
            self.check_escrow_parties(&new.terms)
        })
        .await?;
        let id = self
            .retry_busy("allocate escrow id", || self.next_id(ids::ESCROW))
            .await?;
        let terms = new.terms.milestones.clone().unwrap_or_default();
        let mut milestones = Vec::with_capacity(terms.len());
        for (i, m) in terms.into_iter().enumerate() {
            let milestone_id = self
                .retry_busy("allocate milestone id", || self.next_id(ids::MILESTONE))
                .await?;
            milestones.push(Milestone {
                id: milestone_id,
                idx: u32::try_from(i + 1).map_err(AppError::internal)?,
                label: m.label,
                amount: m.amount,
                proof_type: m.proof_type,
                geofence: m.geofence,
                status: MilestoneStatus::Waiting,
            });
        }
        self.retry_busy("create escrow", || async {
            let now = Timestamp::now();
            let escrow = Escrow {
                id,
                client_id: new.terms.client_id,
                provider_id: new.terms.provider_id,
                currency: new.currency,
                amount_total: new.terms.amount_total,
                amount_funded: Money::ZERO,
                amount_available: Money::ZERO,
                amount_paid: Money::ZERO,
                amount_refunded: Money::ZERO,
                status: EscrowStatus::Draft,
                release_conditions: new.release_conditions.clone(),
                deadline_at: new.terms.deadline_at,
                milestones: milestones.clone(),
                created_at: now,
                updated_at: now,
            };
            let mut items = vec![self.put_new(to_item(&EscrowRecord::new(&escrow)?)?)];
            for m in &escrow.milestones {
                items.push(self.put_new(to_item(&MilestoneRecord::new(id, m, now))?));
            }
            let mut trail = Trail::new(id, actor, now);
            let data = serde_json::json!({
                "client_id": escrow.client_id,
                "provider_id": escrow.provider_id,
                "amount_total": escrow.amount_total,
                "currency": escrow.currency,
                "deadline_at": escrow.deadline_at,
                "milestones": escrow.milestones.len(),
            });
            items.push(trail.audit(
                self,
                EscrowAudit::Created.as_str(),
                (entity::ESCROW, id),
                data.clone(),
            )?);
            items.push(trail.event(self, EscrowEventKind::Created, data)?);
            self.transact(items).await.map_err(|e| e.unexpected())?;
            Ok(escrow)
        })
        .await
    }

    /// Client and provider exist and are active.
    async fn check_escrow_parties(&self, terms: &EscrowTerms) -> Result<(), AppError> {
        let mut found = self
            .get_many(&[keys::user(terms.client_id), keys::user(terms.provider_id)])
            .await?;
        let Some(client) = take_user(&mut found, terms.client_id)? else {
            return Err(AppError::new(
                ErrorCode::UserNotFound,
                "Client user does not exist.",
            ));
        };
        let Some(provider) = take_user(&mut found, terms.provider_id)? else {
            return Err(AppError::new(
                ErrorCode::UserNotFound,
                "Provider user does not exist.",
            ));
        };
        if let Some(inactive) = first_inactive([&client, &provider]) {
            return Err(AppError::user_inactive(inactive));
        }
        Ok(())
    }

    /// One escrow with its milestones (in `idx` order), read consistently in
    /// one Query.
    pub async fn escrow(&self, id: Id) -> Result<Option<Escrow>, AppError> {
        let mut record = None;
        let mut milestones = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk")
                .set_expression_attribute_values(Some(values([(
                    ":pk",
                    s(keys::escrow_partition(id)),
                )])))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(crate::store::retry::aws_error)?;
            for item in page.items.unwrap_or_default() {
                let sk = item.get(keys::SK).and_then(|v| v.as_s().ok()).cloned();
                match sk.as_deref() {
                    Some("ESCROW") => record = Some(from_item::<EscrowRecord>(item)?),
                    Some(sk) if sk.starts_with("MILESTONE#") => {
                        milestones.push(from_item::<MilestoneRecord>(item)?.into_milestone()?)
                    }
                    _ => {}
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        milestones.sort_by_key(|m| m.idx);
        record.map(|r| r.into_escrow(milestones)).transpose()
    }

    /// Escrows matching `filter`, newest first, each with its milestones.
    pub async fn escrows(
        &self,
        filter: &EscrowFilter,
        page: PageRequest,
    ) -> Result<Page<Escrow>, AppError> {
        let parties = PartyList {
            first: filter.client_id,
            second: filter.provider_id,
            party: filter.party,
            first_partition: keys::client_partition,
            second_partition: keys::provider_partition,
            kind: keys::KIND_ESCROW,
            status: filter.status.map(|s| s.as_str()),
        };
        let page = self.list_between::<EscrowRecord>(&parties, page).await?;
        // The page's milestones, in batches of at most 100 keys.
        let wanted: Vec<Key> = page
            .items
            .iter()
            .flat_map(|r| (1..=r.milestone_count).map(move |idx| keys::milestone(r.id, idx)))
            .collect();
        let mut found = std::collections::HashMap::new();
        for chunk in wanted.chunks(100) {
            found.extend(self.get_many(chunk).await?);
        }
        let mut escrows = Vec::with_capacity(page.items.len());
        for record in page.items {
            let mut milestones = Vec::new();
            for idx in 1..=record.milestone_count {
                if let Some(item) = found.remove(&keys::milestone(record.id, idx)) {
                    milestones.push(from_item::<MilestoneRecord>(item)?.into_milestone()?);
                }
            }
            escrows.push(record.into_escrow(milestones)?);
        }
        Ok(Page {
            items: escrows,
            next_cursor: page.next_cursor,
        })
    }

    /// A page of an escrow's timeline, oldest first.
    pub async fn escrow_events(
        &self,
        escrow: Id,
        page: &KeyPageRequest,
    ) -> Result<Page<EscrowEvent>, AppError> {
        let page = self
            .trail_page::<EventRecord>(keys::escrow_events_partition(escrow), page, |r| &r.sk)
            .await?;
        Ok(page.map(|r| EscrowEvent {
            data: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::Null),
            kind: r.kind,
            at: r.at,
            actor: r.actor,
        }))
    }

    /// The items of a deposit after its idempotency record: the escrow's
    /// update (first), guarded on what is funded, then its audit entries and
    /// events. `after`: the escrow as the transaction leaves it.
    pub(crate) fn deposit_items(
        &self,
        escrow: &Escrow,
        transition: &EscrowTransition,
        amount: Amount,
        after: &Escrow,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        let guard = BalanceGuard::Deposit {
            amount,
            funds: transition.status == EscrowStatus::Funded,
        };
        let mut items = vec![self.escrow_update(escrow, transition, &guard, now)];
        let data = serde_json::json!({
            "amount": amount,
            "amount_funded": after.amount_funded,
            "status": after.status,
        });
        let mut trail = Trail::new(escrow.id, actor, now);
        for audit in &transition.audit {
            items.push(trail.audit(
                self,
                audit.as_str(),
                (entity::ESCROW, escrow.id),
                data.clone(),
            )?);
        }
        for kind in &transition.events {
            items.push(trail.event(self, *kind, data.clone())?);
        }
        Ok(items)
    }

    /// A FUNDED escrow past its deadline: one `ESCROW_DEADLINE_MISSED` alert
    /// and one `DEADLINE_MISSED` event, guarded so that they are written once
    /// per escrow however many checks and sweeps see it. The escrow is
    /// answered unchanged.
    pub(crate) async fn deadline_missed(
        &self,
        escrow: &Escrow,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Escrow, AppError> {
        let guard = keys::deadline_missed(escrow.id);
        if self.get::<serde_json::Value>(&guard).await?.is_some() {
            return Ok(escrow.clone());
        }
        let payload =
            serde_json::json!({"escrow_id": escrow.id, "deadline_at": escrow.deadline_at});
        let alert = self.alert_put(&NewAlert {
            id: self.next_id(alerts::ID_KIND).await?,
            alert_type: AlertType::EscrowDeadlineMissed,
            cause: format!("escrow {} missed its deadline", escrow.id),
            message: format!(
                "Escrow {} passed its deadline without delivery; nobody was paid.",
                escrow.id
            ),
            actor_user_id: None,
            payload: payload.clone(),
            created_at: now,
        })?;
        let mut guard_item: Item = key_item(&guard);
        guard_item.insert("escrow_id".into(), n(escrow.id));
        // When it was missed: the `escrow.deadline_missed` event's time.
        guard_item.insert("created_at".into(), s(now.to_string()));
        let mut trail = Trail::new(escrow.id, actor, now);
        let items = vec![
            self.put_new(guard_item),
            // Still FUNDED (a delivery or a refund meanwhile ends the miss);
            // alerted, it leaves the deadline index: no run has more to do.
            self.leave_deadline_index(escrow.id, escrow.status),
            alert,
            trail.event(self, EscrowEventKind::DeadlineMissed, payload)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(escrow.clone()),
            // The guard, or the alert of this cause: raised already.
            Err(e) if e.failed_condition(0) || e.failed_condition(2) => Ok(escrow.clone()),
            Err(e) if e.failed_condition(1) => Err(AppError::busy()),
            Err(e) => Err(e.unexpected()),
        }
    }
}
