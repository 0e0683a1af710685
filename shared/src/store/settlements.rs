//! Settlement reconciliation's reads and writes: our payments by the
//! references a PSP report names, our SETTLED payments of a period (by the
//! day they settled, `gsi2`: see `keys`), and
//! the stored result of each report (`SETTLEMENT#{id}`, listed newest
//! first from `gsi3` partition `SETTLEMENTS`).
//!
//! Invariants:
//! - A report's result is written once, whole, with its alerts raised
//!   before it; a report that does not parse writes nothing.
//! - Its `SETTLEMENT_MISMATCH` alerts are `ops::settlement`'s, one per
//!   discrepancy and reference ever (`Store::raise_alert_once`): the same
//!   discrepancy in the next day's report raises none.

use super::{
    items::{key_of, s, to_item},
    keys::{self, Key},
    list::{Page, PageRequest},
    read::take,
    Store,
};
use crate::{
    domain::{
        currency::Currency, escrow::payment::PaymentStatus, ids::Id, money::Amount,
        settlement::OurPayment, time::Timestamp,
    },
    error::AppError,
};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Counter of settlement report ids (`Store::next_id`).
pub const ID_KIND: &str = "SETTLEMENT";

/// Discrepancies a stored result keeps; all are counted and alerted.
pub const MAX_DISCREPANCIES_KEPT: usize = 500;

/// The `gsi3` partition listing every report.
const LIST_PARTITION: &str = "SETTLEMENTS";

/// What one report's reconciliation found, as stored and answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettlementReport {
    pub id: Id,
    /// SHA-256 of the report's bytes, hex.
    pub sha256: String,
    pub uploaded_by: String,
    pub created_at: Timestamp,
    /// The first and last `settled_at` of the report: the period whose
    /// SETTLED payments must all be in it.
    pub period_start: Option<Timestamp>,
    pub period_end: Option<Timestamp>,
    pub lines: u64,
    pub matched: u64,
    pub amount_differs: u64,
    pub status_differs: u64,
    pub unknown_reference: u64,
    pub missing_from_report: u64,
    pub alerts_raised: u64,
    /// The discrepancies, at most [`MAX_DISCREPANCIES_KEPT`].
    #[schema(value_type = Vec<Object>)]
    pub discrepancies: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct ReportRecord {
    pk: String,
    sk: String,
    id: Id,
    /// JSON text of the report.
    report: String,
    gsi3pk: String,
    gsi3sk: String,
}

impl super::list::Listed for ReportRecord {
    fn id(&self) -> Id {
        self.id
    }
}

fn report_key(id: Id) -> Key {
    Key {
        pk: format!("SETTLEMENT#{id}"),
        sk: "SETTLEMENT".into(),
    }
}

/// A payment as reconciliation reads it.
#[derive(Deserialize)]
struct PaymentAmount {
    id: Id,
    amount_cents: i64,
    currency: String,
    psp_ref: String,
    status: PaymentStatus,
}

impl PaymentAmount {
    /// As the PSP's reference `psp_ref` is ours: an earlier attempt's
    /// reference (a retry sends under a new one) failed.
    fn ours_as(&self, psp_ref: &str) -> Result<OurPayment, AppError> {
        Ok(OurPayment {
            id: self.id,
            psp_ref: psp_ref.to_string(),
            amount: Amount::from_minor_units(self.amount_cents)
                .map_err(|_| AppError::internal(format!("payment {}: a bad amount", self.id)))?,
            currency: Currency::from_stored(&self.currency).ok_or_else(|| {
                AppError::internal(format!("payment {}: a bad currency", self.id))
            })?,
            status: if self.psp_ref == psp_ref {
                self.status
            } else {
                PaymentStatus::Error
            },
        })
    }
}

impl Store {
    /// Our payments the references `refs` name (an unknown one is absent),
    /// each with the status our records give that reference.
    pub async fn payments_by_psp_refs(&self, refs: &[String]) -> Result<Vec<OurPayment>, AppError> {
        #[derive(Deserialize)]
        struct Pointer {
            payment_id: Id,
        }
        let mut named: Vec<(String, Id)> = Vec::new();
        for chunk in refs.chunks(100) {
            let keys: Vec<Key> = chunk.iter().map(|r| keys::psp_ref(r)).collect();
            let mut found = self.get_many(&keys).await?;
            for (psp_ref, key) in chunk.iter().zip(&keys) {
                if let Some(pointer) = take::<Pointer>(&mut found, key)? {
                    named.push((psp_ref.clone(), pointer.payment_id));
                }
            }
        }
        let mut payments: HashMap<Id, PaymentAmount> = HashMap::new();
        let ids: Vec<Id> = named.iter().map(|(_, id)| *id).collect();
        for chunk in ids.chunks(100) {
            let keys: Vec<Key> = chunk.iter().map(|&id| keys::payment(id)).collect();
            let mut found = self.get_many(&keys).await?;
            for (&id, key) in chunk.iter().zip(&keys) {
                if let Some(payment) = take::<PaymentAmount>(&mut found, key)? {
                    payments.insert(id, payment);
                }
            }
        }
        named
            .iter()
            .map(|(psp_ref, id)| {
                payments
                    .get(id)
                    .ok_or_else(|| {
                        AppError::internal(format!("reference {psp_ref} points at no payment {id}"))
                    })?
                    .ours_as(psp_ref)
            })
            .collect()
    }

    /// Our payments SETTLED, their settlement recorded within
    /// `from..=to`, oldest id first: the `gsi2` entries of each day of the
    /// period (one Query per day and shard, a page of 1 000 at a time),
    /// then the payments, 100 a batch.
    pub async fn settled_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<OurPayment>, AppError> {
        let mut settled: Vec<Key> = Vec::new();
        for partition in keys::settled_on_partitions(from, to) {
            let mut start = None;
            loop {
                let output = self
                    .retry_busy("read the settled payments", || async {
                        self.client
                            .query()
                            .table_name(self.table())
                            .index_name(keys::GSI_BY_BENEFICIARY.name)
                            .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                            .expression_attribute_names("#pk", keys::GSI_BY_BENEFICIARY.pk)
                            .expression_attribute_names("#sk", keys::GSI_BY_BENEFICIARY.sk)
                            .expression_attribute_values(":pk", s(&partition))
                            .expression_attribute_values(":from", s(from.to_string()))
                            // '~' sorts after the '#id' suffix of every key at `to`.
                            .expression_attribute_values(":to", s(format!("{to}#~")))
                            .limit(1000)
                            .set_exclusive_start_key(start.clone())
                            .send()
                            .await
                            .map_err(super::retry::aws_error)
                    })
                    .await?;
                for item in output.items() {
                    settled.push(key_of(item).ok_or_else(|| {
                        AppError::internal(format!(
                            "a settled entry without its key in {partition}"
                        ))
                    })?);
                }
                start = output.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        let mut payments = Vec::with_capacity(settled.len());
        for chunk in settled.chunks(100) {
            let mut found = self.get_many(chunk).await?;
            for key in chunk {
                let payment = take::<PaymentAmount>(&mut found, key)?
                    .ok_or_else(|| AppError::internal(format!("{} is not stored", key.pk)))?;
                if payment.status == PaymentStatus::Settled {
                    let psp_ref = payment.psp_ref.clone();
                    payments.push(payment.ours_as(&psp_ref)?);
                }
            }
        }
        payments.sort_by_key(|p| p.id);
        Ok(payments)
    }

    pub async fn save_settlement_report(&self, report: &SettlementReport) -> Result<(), AppError> {
        let key = report_key(report.id);
        let record = ReportRecord {
            pk: key.pk,
            sk: key.sk,
            id: report.id,
            report: serde_json::to_string(report).map_err(AppError::internal)?,
            gsi3pk: LIST_PARTITION.into(),
            gsi3sk: keys::id_sort_key(report.id),
        };
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(to_item(&record)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(AppError::internal)?;
        self.transact(vec![TransactWriteItem::builder().put(put).build()])
            .await
            .map_err(|e| {
                if e.is_busy() {
                    AppError::busy()
                } else {
                    e.unexpected()
                }
            })
    }

    pub async fn settlement_report(&self, id: Id) -> Result<Option<SettlementReport>, AppError> {
        let Some(record) = self.get::<ReportRecord>(&report_key(id)).await? else {
            return Ok(None);
        };
        serde_json::from_str(&record.report)
            .map(Some)
            .map_err(|e| AppError::internal(format!("settlement {id}: {e}")))
    }

    /// Reports, newest first.
    pub async fn settlement_reports(
        &self,
        page: PageRequest,
    ) -> Result<Page<SettlementReport>, AppError> {
        let partitions = [(keys::GSI_BY_KIND, LIST_PARTITION.to_string())];
        let page = self
            .list::<ReportRecord>(&partitions, &Vec::new(), page)
            .await?;
        page.try_map(|r| {
            serde_json::from_str(&r.report)
                .map_err(|e| AppError::internal(format!("settlement: {e}")))
        })
    }
}
