//! Settlement reconciliation: the PSP's report of what it paid, read and
//! held against our payments.
//!
//! - A report is CSV with exactly the header `psp_ref,amount,currency,status,settled_at`
//!   of at most [`MAX_REPORT_BYTES`], covering at most [`MAX_PERIOD_DAYS`]
//!   from its first `settled_at` to its last. One bad line (a field missing or
//!   malformed, a `psp_ref` seen twice) refuses the whole report, naming
//!   the line, so nothing half-read is ever reconciled.
//! - Each line is exactly one finding: matched, amount differs, status
//!   differs, or unknown reference. The other way, each of our SETTLED
//!   payments of the report's period that the report does not name is
//!   missing from the report.
//! - An amount is compared with its currency: `10.00 USD` is not `10.00 EUR`.

use super::{
    currency::Currency,
    escrow::payment::PaymentStatus,
    ids::Id,
    money::{Amount, Money},
    time::Timestamp,
};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The largest report accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 10 * 1024 * 1024;

/// The report's columns, in order.
pub const HEADER: [&str; 5] = ["psp_ref", "amount", "currency", "status", "settled_at"];

/// The longest period a report may cover, first to last `settled_at`: a
/// quarter. Our SETTLED payments of the period are read day by day.
pub const MAX_PERIOD_DAYS: i64 = 93;

/// The longest `psp_ref` read (ours are `PSP-` and a UUID, 40 characters).
pub const MAX_PSP_REF_CHARS: usize = 200;

/// What the PSP says became of a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportStatus {
    Settled,
    Failed,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Settled => "SETTLED",
            ReportStatus::Failed => "FAILED",
        }
    }

    fn parse(text: &str) -> Option<ReportStatus> {
        [ReportStatus::Settled, ReportStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Our payment statuses that agree with this one: a settled payout is
    /// SETTLED here; a failed one is ERROR (or PENDING again, retried).
    fn agrees_with(self, ours: PaymentStatus) -> bool {
        match self {
            ReportStatus::Settled => ours == PaymentStatus::Settled,
            ReportStatus::Failed => matches!(ours, PaymentStatus::Error | PaymentStatus::Pending),
        }
    }
}

/// One line of the report; `line` counts from 1, the header being line 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    pub line: u64,
    pub psp_ref: String,
    pub amount: Amount,
    pub currency: Currency,
    pub status: ReportStatus,
    pub settled_at: Timestamp,
}

/// Why a report is refused: the line and, for a bad field, which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportProblem {
    pub line: u64,
    pub field: Option<&'static str>,
    pub problem: String,
}

impl ReportProblem {
    fn new(line: u64, field: Option<&'static str>, problem: impl Into<String>) -> ReportProblem {
        ReportProblem {
            line,
            field,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ReportProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "line {}: {field} {}", self.line, self.problem),
            None => write!(f, "line {}: {}", self.line, self.problem),
        }
    }
}

/// Reads a whole report, or says what is wrong with its first bad line.
pub fn parse_report(bytes: &[u8]) -> Result<Vec<ReportLine>, ReportProblem> {
    if bytes.len() > MAX_REPORT_BYTES {
        return Err(ReportProblem::new(
            0,
            None,
            format!("the report is over {MAX_REPORT_BYTES} bytes"),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.records();
    let header = records
        .next()
        .ok_or_else(|| ReportProblem::new(1, None, "the report is empty: no header"))?
        .map_err(|e| csv_problem(1, &e))?;
    if header.iter().ne(HEADER) {
        return Err(ReportProblem::new(
            1,
            None,
            format!("the header must be {}", HEADER.join(",")),
        ));
    }
    let mut lines = Vec::new();
    let mut first_seen: HashMap<String, u64> = HashMap::new();
    for (n, record) in records.enumerate() {
        let line = n as u64 + 2;
        let record = record.map_err(|e| csv_problem(line, &e))?;
        let parsed = parse_line(line, &record)?;
        if let Some(first) = first_seen.insert(parsed.psp_ref.clone(), line) {
            return Err(ReportProblem::new(
                line,
                Some("psp_ref"),
                format!("repeats line {first}"),
            ));
        }
        lines.push(parsed);
    }
    check_period(&lines)?;
    Ok(lines)
}

/// A report covers at most [`MAX_PERIOD_DAYS`]: else the first line that
/// settled last is named, against the first that settled first.
fn check_period(lines: &[ReportLine]) -> Result<(), ReportProblem> {
    let first = lines.iter().min_by_key(|l| (l.settled_at, l.line));
    let last = lines
        .iter()
        .max_by_key(|l| (l.settled_at, std::cmp::Reverse(l.line)));
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(());
    };
    let seconds = last.settled_at.unix_seconds() - first.settled_at.unix_seconds();
    if seconds <= MAX_PERIOD_DAYS * 24 * 3600 {
        return Ok(());
    }
    Err(ReportProblem::new(
        last.line,
        Some("settled_at"),
        format!(
            "is {} days after line {}'s: a report covers at most {MAX_PERIOD_DAYS} days",
            seconds / (24 * 3600),
            first.line
        ),
    ))
}

fn csv_problem(line: u64, error: &csv::Error) -> ReportProblem {
    let problem = match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "is not UTF-8".to_owned(),
        _ => "is not CSV".to_owned(),
    };
    ReportProblem::new(error.position().map_or(line, |p| p.line()), None, problem)
}

fn parse_line(line: u64, record: &csv::StringRecord) -> Result<ReportLine, ReportProblem> {
    if record.len() != HEADER.len() {
        return Err(ReportProblem::new(
            line,
            None,
            format!("has {} fields, not {}", record.len(), HEADER.len()),
        ));
    }
    let field = |i: usize| &record[i];
    let bad = |name: &'static str, problem: &str| ReportProblem::new(line, Some(name), problem);
    let psp_ref = field(0);
    if psp_ref.is_empty()
        || psp_ref.chars().count() > MAX_PSP_REF_CHARS
        || psp_ref.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("psp_ref", "must be 1 to 200 characters without spaces"));
    }
    let amount = field(1)
        .parse::<Money>()
        .and_then(Amount::try_from)
        .map_err(|e| bad("amount", &e.to_string()))?;
    let currency = Currency::from_stored(field(2))
        .ok_or_else(|| bad("currency", "must be 3 capital letters"))?;
    let status =
        ReportStatus::parse(field(3)).ok_or_else(|| bad("status", "must be SETTLED or FAILED"))?;
    let settled_at = Timestamp::parse(field(4))
        .map_err(|_| bad("settled_at", "must be an RFC 3339 timestamp"))?;
    Ok(ReportLine {
        line,
        psp_ref: psp_ref.to_owned(),
        amount,
        currency,
        status,
        settled_at,
    })
}

/// The period a report covers: from its first `settled_at` to its last.
pub fn period(lines: &[ReportLine]) -> Option<(Timestamp, Timestamp)> {
    let first = lines.iter().map(|l| l.settled_at).min()?;
    let last = lines.iter().map(|l| l.settled_at).max()?;
    Some((first, last))
}

/// One of our payments, as reconciliation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurPayment {
    pub id: Id,
    pub psp_ref: String,
    pub amount: Amount,
    pub currency: Currency,
    pub status: PaymentStatus,
}

/// What reconciliation found, per report line and per missing payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Matched {
        line: u64,
        payment_id: Id,
    },
    AmountDiffers {
        line: u64,
        payment_id: Id,
        ours: (Amount, Currency),
        theirs: (Amount, Currency),
    },
    StatusDiffers {
        line: u64,
        payment_id: Id,
        ours: PaymentStatus,
        theirs: ReportStatus,
    },
    UnknownReference {
        line: u64,
        psp_ref: String,
    },
    MissingFromReport {
        payment_id: Id,
        psp_ref: String,
    },
}

impl Finding {
    /// Everything but a match is a discrepancy, raised as an alert.
    pub fn is_discrepancy(&self) -> bool {
        !matches!(self, Finding::Matched { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Matched { .. } => "MATCHED",
            Finding::AmountDiffers { .. } => "AMOUNT_DIFFERS",
            Finding::StatusDiffers { .. } => "STATUS_DIFFERS",
            Finding::UnknownReference { .. } => "UNKNOWN_REFERENCE",
            Finding::MissingFromReport { .. } => "MISSING_FROM_REPORT",
        }
    }
}

/// Holds the report against our payments: `named` are ours whose
/// `psp_ref` the report names (found by reference), each with the status
/// our records give that reference: an earlier attempt of a retried
/// payment (a retry sends under a new reference) is ERROR, so a report
/// that says it settled is a payout made twice. `settled_in_period` are
/// ours that settled within the report's period. Findings come in the
/// report's order, then the missing ones in `settled_in_period`'s order.
pub fn reconcile(
    lines: &[ReportLine],
    named: &[OurPayment],
    settled_in_period: &[OurPayment],
) -> Vec<Finding> {
    let by_ref: HashMap<&str, &OurPayment> =
        named.iter().map(|p| (p.psp_ref.as_str(), p)).collect();
    let mut findings: Vec<Finding> = lines
        .iter()
        .map(|l| match by_ref.get(l.psp_ref.as_str()) {
            None => Finding::UnknownReference {
                line: l.line,
                psp_ref: l.psp_ref.clone(),
            },
            Some(p) if (p.amount, p.currency) != (l.amount, l.currency) => Finding::AmountDiffers {
                line: l.line,
                payment_id: p.id,
                ours: (p.amount, p.currency),
                theirs: (l.amount, l.currency),
            },
            Some(p) if !l.status.agrees_with(p.status) => Finding::StatusDiffers {
                line: l.line,
                payment_id: p.id,
                ours: p.status,
                theirs: l.status,
            },
            Some(p) => Finding::Matched {
                line: l.line,
                payment_id: p.id,
            },
        })
        .collect();
    let reported: HashSet<&str> = lines.iter().map(|l| l.psp_ref.as_str()).collect();
    findings.extend(
        settled_in_period
            .iter()
            .filter(|p| !reported.contains(p.psp_ref.as_str()))
            .map(|p| Finding::MissingFromReport {
                payment_id: p.id,
                psp_ref: p.psp_ref.clone(),
            }),
    );
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "psp_ref,amount,currency,status,settled_at\n\
        PSP-1,10.50,USD,SETTLED,2026-12-01T10:00:00Z\n\
        PSP-2,3,EUR,FAILED,2026-12-01T11:00:00.5Z\n";

    fn problem(report: &str) -> ReportProblem {
        parse_report(report.as_bytes()).expect_err(report)
    }

    #[test]
    fn a_report_covers_at_most_a_quarter() {
        let report = |last: &str| {
            format!(
                "psp_ref,amount,currency,status,settled_at\n\
                 PSP-1,1.00,USD,SETTLED,2026-10-01T00:00:00Z\n\
                 PSP-2,1.00,USD,SETTLED,{last}\n\
                 PSP-3,1.00,USD,SETTLED,2026-09-30T12:00:00Z\n"
            )
        };
        // 2026-09-30T12:00 + 93 days = 2027-01-01T12:00.
        assert!(parse_report(report("2027-01-01T12:00:00Z").as_bytes()).is_ok());
        let refused = problem(&report("2027-01-01T12:00:01Z"));
        assert_eq!((refused.line, refused.field), (3, Some("settled_at")));
        assert_eq!(
            refused.to_string(),
            "line 3: settled_at is 93 days after line 4's: a report covers at most 93 days"
        );
    }

    #[test]
    fn a_good_report_is_read_line_by_line() {
        let lines = parse_report(GOOD.as_bytes()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, 2);
        assert_eq!(lines[0].psp_ref, "PSP-1");
        assert_eq!(lines[0].amount.to_string(), "10.50");
        assert_eq!(lines[0].currency, Currency::usd());
        assert_eq!(lines[0].status, ReportStatus::Settled);
        assert_eq!(lines[1].line, 3);
        assert_eq!(lines[1].amount.to_string(), "3.00");
        assert_eq!(lines[1].status, ReportStatus::Failed);
        let (from, to) = period(&lines).unwrap();
        assert_eq!(from, lines[0].settled_at);
        assert_eq!(to, lines[1].settled_at);
        // A header alone is an empty report, and no trailing newline is fine.
        assert_eq!(parse_report(HEADER.join(",").as_bytes()).unwrap(), vec![]);
        assert_eq!(period(&[]), None);
        // Quoted fields are CSV too.
        let quoted = "psp_ref,amount,currency,status,settled_at\n\"PSP-9\",\"1.00\",USD,SETTLED,2026-12-01T10:00:00Z";
        assert_eq!(parse_report(quoted.as_bytes()).unwrap()[0].psp_ref, "PSP-9");
    }

    #[test]
    fn a_wrong_header_is_line_1() {
        for report in [
            "",
            "psp_ref,amount,currency,status\n",
            "psp_ref,currency,amount,status,settled_at\n",
            "PSP_REF,amount,currency,status,settled_at\n",
            "psp_ref,amount,currency,status,settled_at,extra\n",
        ] {
            let p = problem(report);
            assert_eq!((p.line, p.field), (1, None), "{report:?}");
        }
        assert!(problem("a,b\n")
            .to_string()
            .starts_with("line 1: the header must be psp_ref,amount,currency,status,settled_at"));
    }

    #[test]
    fn each_bad_field_names_its_line_and_field() {
        let head = "psp_ref,amount,currency,status,settled_at\nPSP-1,1.00,USD,SETTLED,2026-12-01T10:00:00Z\n";
        for (line, field) in [
            (",1.00,USD,SETTLED,2026-12-01T10:00:00Z", "psp_ref"),
            ("PSP 2,1.00,USD,SETTLED,2026-12-01T10:00:00Z", "psp_ref"),
            ("PSP-2,abc,USD,SETTLED,2026-12-01T10:00:00Z", "amount"),
            ("PSP-2,1.001,USD,SETTLED,2026-12-01T10:00:00Z", "amount"),
            ("PSP-2,0,USD,SETTLED,2026-12-01T10:00:00Z", "amount"),
            ("PSP-2,-1,USD,SETTLED,2026-12-01T10:00:00Z", "amount"),
            ("PSP-2,1.00,usd,SETTLED,2026-12-01T10:00:00Z", "currency"),
            ("PSP-2,1.00,US,SETTLED,2026-12-01T10:00:00Z", "currency"),
            ("PSP-2,1.00,USD,PAID,2026-12-01T10:00:00Z", "status"),
            ("PSP-2,1.00,USD,SETTLED,yesterday", "settled_at"),
            ("PSP-1,1.00,USD,SETTLED,2026-12-01T10:00:00Z", "psp_ref"),
        ] {
            let p = problem(&format!("{head}{line}\n"));
            assert_eq!((p.line, p.field), (3, Some(field)), "{line}: {p}");
        }
        let long = format!(
            "{head}{},1.00,USD,SETTLED,2026-12-01T10:00:00Z\n",
            "P".repeat(201)
        );
        assert_eq!(problem(&long).field, Some("psp_ref"));
        let repeated = problem(&format!(
            "{head}PSP-1,2.00,USD,SETTLED,2026-12-01T10:00:00Z\n"
        ));
        assert_eq!(repeated.to_string(), "line 3: psp_ref repeats line 2");
        let short = problem(&format!("{head}PSP-2,1.00,USD\n"));
        assert_eq!((short.line, short.field), (3, None));
        assert_eq!(short.to_string(), "line 3: has 3 fields, not 5");
    }

    #[test]
    fn bytes_that_are_not_text_or_too_many_are_refused() {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes.extend_from_slice(b"PSP-3,1.00,USD,SETTLED,\xff\n");
        let p = parse_report(&bytes).unwrap_err();
        assert_eq!(p.line, 4);
        assert_eq!(p.problem, "is not UTF-8");
        let huge = vec![b'a'; MAX_REPORT_BYTES + 1];
        assert_eq!(parse_report(&huge).unwrap_err().line, 0);
    }

    fn ours(id: u64, psp_ref: &str, cents: i64, status: PaymentStatus) -> OurPayment {
        OurPayment {
            id: Id::new(id).unwrap(),
            psp_ref: psp_ref.into(),
            amount: Amount::from_minor_units(cents).unwrap(),
            currency: Currency::usd(),
            status,
        }
    }

    #[test]
    fn each_line_is_one_finding_and_missing_payments_follow() {
        use PaymentStatus::*;
        let report = "psp_ref,amount,currency,status,settled_at\n\
            PSP-A,10.00,USD,SETTLED,2026-12-01T10:00:00Z\n\
            PSP-B,10.00,USD,SETTLED,2026-12-01T10:00:00Z\n\
            PSP-C,10.00,EUR,SETTLED,2026-12-01T10:00:00Z\n\
            PSP-D,10.00,USD,SETTLED,2026-12-01T10:00:00Z\n\
            PSP-X,10.00,USD,SETTLED,2026-12-01T10:00:00Z\n\
            PSP-F,10.00,USD,FAILED,2026-12-01T10:00:00Z\n";
        let lines = parse_report(report.as_bytes()).unwrap();
        let named = [
            ours(1, "PSP-A", 1_000, Settled),
            ours(2, "PSP-B", 1_001, Settled),
            ours(3, "PSP-C", 1_000, Settled),
            ours(4, "PSP-D", 1_000, Error),
            ours(6, "PSP-F", 1_000, Error),
        ];
        let settled = [named[0].clone(), ours(7, "PSP-G", 500, Settled)];
        let found = reconcile(&lines, &named, &settled);
        let kinds: Vec<_> = found.iter().map(Finding::kind).collect();
        assert_eq!(
            kinds,
            [
                "MATCHED",
                "AMOUNT_DIFFERS",
                "AMOUNT_DIFFERS",
                "STATUS_DIFFERS",
                "UNKNOWN_REFERENCE",
                "MATCHED",
                "MISSING_FROM_REPORT"
            ]
        );
        assert_eq!(
            found[2],
            Finding::AmountDiffers {
                line: 4,
                payment_id: Id::new(3).unwrap(),
                ours: (Amount::from_minor_units(1_000).unwrap(), Currency::usd()),
                theirs: (Amount::from_minor_units(1_000).unwrap(), Currency::eur()),
            }
        );
        assert_eq!(
            found[6],
            Finding::MissingFromReport {
                payment_id: Id::new(7).unwrap(),
                psp_ref: "PSP-G".into()
            }
        );
        assert_eq!(found.iter().filter(|f| f.is_discrepancy()).count(), 5);
    }

    #[test]
    fn statuses_agree_only_where_the_money_agrees() {
        for ours in PaymentStatus::ALL {
            assert_eq!(
                ReportStatus::Settled.agrees_with(ours),
                ours == PaymentStatus::Settled
            );
            assert_eq!(
                ReportStatus::Failed.agrees_with(ours),
                matches!(ours, PaymentStatus::Error | PaymentStatus::Pending),
                "{ours:?}"
            );
        }
    }
}
