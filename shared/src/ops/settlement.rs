//! Settlement reconciliation: the PSP's report (`domain::settlement`) held
//! against our payments, its discrepancies alerted (`SETTLEMENT_MISMATCH`,
//! once per discrepancy and reference) and its result stored.
//!
//! A report that does not parse is refused whole, naming its first bad
//! line, and nothing is read, alerted or stored.

use crate::{
    domain::alert::AlertType,
    domain::settlement::{parse_report, period, reconcile, Finding, ReportProblem},
    error::AppError,
    store::{
        alerts::Raised,
        settlements::{SettlementReport, ID_KIND, MAX_DISCREPANCIES_KEPT},
        Store,
    },
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Reconciles the report `bytes`: `Ok(Err(problem))` when it does not parse.
pub async fn reconcile_report(
    store: &Store,
    bytes: &[u8],
    uploaded_by: String,
) -> Result<Result<SettlementReport, ReportProblem>, AppError> {
    let lines = match parse_report(bytes) {
        Ok(lines) => lines,
        Err(problem) => return Ok(Err(problem)),
    };
    let refs: Vec<String> = lines.iter().map(|l| l.psp_ref.clone()).collect();
    let named = store.payments_by_psp_refs(&refs).await?;
    let span = period(&lines);
    let settled = match span {
        Some((from, to)) => store.settled_between(from, to).await?,
        None => Vec::new(),
    };
    let findings = reconcile(&lines, &named, &settled);
    let now = crate::domain::time::Timestamp::now();
    let mut report = SettlementReport {
        id: store.next_id(ID_KIND).await?,
        sha256: hex::encode(Sha256::digest(bytes)),
        uploaded_by,
        created_at: now,
        period_start: span.map(|(from, _)| from),
        period_end: span.map(|(_, to)| to),
        lines: lines.len() as u64,
        matched: 0,
        amount_differs: 0,
        status_differs: 0,
        unknown_reference: 0,
        missing_from_report: 0,
        alerts_raised: 0,
        discrepancies: Vec::new(),
    };
    for finding in &findings {
        let count = match finding {
            Finding::Matched { .. } => &mut report.matched,
            Finding::AmountDiffers { .. } => &mut report.amount_differs,
            Finding::StatusDiffers { .. } => &mut report.status_differs,
            Finding::UnknownReference { .. } => &mut report.unknown_reference,
            Finding::MissingFromReport { .. } => &mut report.missing_from_report,
        };
        *count += 1;
        if !finding.is_discrepancy() {
            continue;
        }
        let (psp_ref, payload) = describe(finding, &lines);
        let cause = format!("settlement:{}:{psp_ref}", finding.kind());
        let message = format!(
            "Settlement report {}: {} for {psp_ref}.",
            report.id,
            finding.kind()
        );
        let mut alert_payload = payload.clone();
        alert_payload["report_id"] = json!(report.id);
        let raised = store
            .retry_busy("settlement alert", || {
                store.raise_alert_once(
                    AlertType::SettlementMismatch,
                    cause.clone(),
                    message.clone(),
                    alert_payload.clone(),
                    now,
                )
            })
            .await?;
        if raised == Raised::Now {
            report.alerts_raised += 1;
        }
        if report.discrepancies.len() < MAX_DISCREPANCIES_KEPT {
            report.discrepancies.push(payload);
        }
    }
    store
        .retry_busy("settlement report", || {
            store.save_settlement_report(&report)
        })
        .await?;
    Ok(Ok(report))
}

/// A discrepancy's reference and what a reader needs of it.
fn describe(finding: &Finding, lines: &[crate::domain::settlement::ReportLine]) -> (String, Value) {
    let reference = |line: u64| {
        lines
            .iter()
            .find(|l| l.line == line)
            .map(|l| l.psp_ref.clone())
            .unwrap_or_default()
    };
    match finding {
        Finding::Matched { line, payment_id } => (
            reference(*line),
            json!({"kind": finding.kind(), "line": line, "payment_id": payment_id}),
        ),
        Finding::AmountDiffers {
            line,
            payment_id,
            ours,
            theirs,
        } => (
            reference(*line),
            json!({"kind": finding.kind(), "line": line, "psp_ref": reference(*line),
                   "payment_id": payment_id,
                   "ours": {"amount": ours.0, "currency": ours.1},
                   "theirs": {"amount": theirs.0, "currency": theirs.1}}),
        ),
        Finding::StatusDiffers {
            line,
            payment_id,
            ours,
            theirs,
        } => (
            reference(*line),
            json!({"kind": finding.kind(), "line": line, "psp_ref": reference(*line),
                   "payment_id": payment_id, "ours": ours, "theirs": theirs.as_str()}),
        ),
        Finding::UnknownReference { line, psp_ref } => (
            psp_ref.clone(),
            json!({"kind": finding.kind(), "line": line, "psp_ref": psp_ref}),
        ),
        Finding::MissingFromReport {
            payment_id,
            psp_ref,
        } => (
            psp_ref.clone(),
            json!({"kind": finding.kind(), "psp_ref": psp_ref, "payment_id": payment_id}),
        ),
    }
}
