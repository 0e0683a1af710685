//! The ledger check's rules: every stored balance is rebuilt from the
//! records that moved it, and each disagreement is one [`Mismatch`] naming
//! the invariant and both sides.
//!
//! - A mandate: `initial = remaining + Σ purchases`, `spent = Σ purchases`,
//!   and its `USAGE_MANDATE_DEBITED` audit entries sum to the same.
//! - An escrow: `funded = available + paid + refunded`, `funded = Σ deposits`,
//!   `paid = Σ PAYOUT and USAGE_SPEND payments not ERROR`, `refunded = Σ REFUND
//!   payments not ERROR`, and a milestone is PAID exactly when a payout of it
//!   is not ERROR.
//! - A payee: `spent_total = Σ its USAGE_SPEND payments not ERROR`.
//!
//! Sums are taken in `i128` minor units, so no list of records, however
//! long or corrupt, overflows: a sum that no `Money` can hold is a mismatch
//! like any other.

use super::{
    escrow::{
        milestone::MilestoneStatus,
        payment::{PaymentKind, PaymentStatus},
        EscrowBalances,
    },
    ids::Id,
    money::{Amount, Money},
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One invariant of the ledger; its name is what an alert shows.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Invariant {
    /// `initial = remaining + Σ purchases`.
    MandateRemaining,
    /// `spent = Σ purchases`.
    MandateSpent,
    /// `Σ USAGE_MANDATE_DEBITED = Σ purchases`.
    MandateDebits,
    /// `funded = available + paid + refunded`.
    EscrowBalances,
    /// `funded = Σ deposits`.
    EscrowFunded,
    /// `paid = Σ PAYOUT and USAGE_SPEND payments not ERROR`.
    EscrowPaid,
    /// `refunded = Σ REFUND payments not ERROR`.
    EscrowRefunded,
    /// A milestone is PAID ⇔ a payout of it is not ERROR.
    MilestonePaid,
    /// `spent_total = Σ USAGE_SPEND payments to the payee not ERROR`.
    PayeeSpentTotal,
}

impl Invariant {
    pub const ALL: [Invariant; 9] = [
        Invariant::MandateRemaining,
        Invariant::MandateSpent,
        Invariant::MandateDebits,
        Invariant::EscrowBalances,
        Invariant::EscrowFunded,
        Invariant::EscrowPaid,
        Invariant::EscrowRefunded,
        Invariant::MilestonePaid,
        Invariant::PayeeSpentTotal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Invariant::MandateRemaining => "MANDATE_REMAINING",
            Invariant::MandateSpent => "MANDATE_SPENT",
            Invariant::MandateDebits => "MANDATE_DEBITS",
            Invariant::EscrowBalances => "ESCROW_BALANCES",
            Invariant::EscrowFunded => "ESCROW_FUNDED",
            Invariant::EscrowPaid => "ESCROW_PAID",
            Invariant::EscrowRefunded => "ESCROW_REFUNDED",
            Invariant::MilestonePaid => "MILESTONE_PAID",
            Invariant::PayeeSpentTotal => "PAYEE_SPENT_TOTAL",
        }
    }

    /// The rule in words, for the alert and the run's report.
    pub fn rule(self) -> &'static str {
        match self {
            Invariant::MandateRemaining => "initial = remaining + sum of purchases",
            Invariant::MandateSpent => "spent = sum of purchases",
            Invariant::MandateDebits => "sum of USAGE_MANDATE_DEBITED = sum of purchases",
            Invariant::EscrowBalances => "funded = available + paid + refunded",
            Invariant::EscrowFunded => "funded = sum of deposits",
            Invariant::EscrowPaid => "paid = sum of PAYOUT and USAGE_SPEND payments not ERROR",
            Invariant::EscrowRefunded => "refunded = sum of REFUND payments not ERROR",
            Invariant::MilestonePaid => "milestone PAID = a payout of it not ERROR",
            Invariant::PayeeSpentTotal => "spent_total = sum of its spends not ERROR",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sum of minor units, wide enough for any number of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Cents(pub i128);

impl Cents {
    fn of(money: Money) -> Cents {
        Cents(i128::from(money.minor_units()))
    }

    fn sum<'a>(amounts: impl IntoIterator<Item = &'a Amount>) -> Cents {
        Cents(
            amounts
                .into_iter()
                .map(|a| i128::from(a.minor_units()))
                .sum(),
        )
    }
}

impl std::ops::Add for Cents {
    type Output = Cents;
    fn add(self, other: Cents) -> Cents {
        Cents(self.0 + other.0)
    }
}

/// As money is written on the wire: `-12.05`, `0.00`.
impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let units = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", units / 100, units % 100)
    }
}

/// What one side of an invariant says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    Money(Cents),
    /// A milestone's status, or whether a live payout of it exists.
    Text(&'static str),
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Side::Money(cents) => cents.fmt(f),
            Side::Text(text) => f.write_str(text),
        }
    }
}

/// One broken invariant: what the stored item says against what its
/// records add up to. `part` names a milestone when the invariant is one
/// of the escrow's milestones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub invariant: Invariant,
    pub part: Option<Id>,
    pub stored: Side,
    pub derived: Side,
}

impl Mismatch {
    fn money(invariant: Invariant, stored: Cents, derived: Cents) -> Option<Mismatch> {
        (stored != derived).then_some(Mismatch {
            invariant,
            part: None,
            stored: Side::Money(stored),
            derived: Side::Money(derived),
        })
    }
}

/// A mandate and the records that moved it. `initial` is the amount of its
/// `USAGE_MANDATE_CREATED` audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MandateLedger {
    pub initial: Amount,
    pub remaining: Money,
    pub spent: Money,
    pub purchases: Vec<Amount>,
    pub debits: Vec<Amount>,
}

pub fn check_mandate(mandate: &MandateLedger) -> Vec<Mismatch> {
    let purchases = Cents::sum(&mandate.purchases);
    [
        Mismatch::money(
            Invariant::MandateRemaining,
            Cents::of(mandate.initial.money()),
            Cents::of(mandate.remaining) + purchases,
        ),
        Mismatch::money(Invariant::MandateSpent, Cents::of(mandate.spent), purchases),
        Mismatch::money(
            Invariant::MandateDebits,
            Cents::sum(&mandate.debits),
            purchases,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A payment as the check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentLine {
    pub kind: PaymentKind,
    pub status: PaymentStatus,
    pub amount: Amount,
    pub milestone_id: Option<Id>,
}

/// An escrow and the records that moved it.
#[derive(Debug, Clone, PartialEq)]
pub struct EscrowLedger {
    pub balances: EscrowBalances,
    pub deposits: Vec<Amount>,
    pub payments: Vec<PaymentLine>,
    pub milestones: Vec<(Id, MilestoneStatus)>,
}

pub fn check_escrow(escrow: &EscrowLedger) -> Vec<Mismatch> {
    let b = &escrow.balances;
    let live = |kinds: &[PaymentKind]| {
        Cents::sum(
            escrow
                .payments
                .iter()
                .filter(|p| kinds.contains(&p.kind) && p.status.holds_money())
                .map(|p| &p.amount),
        )
    };
    let mut found: Vec<Mismatch> = [
        Mismatch::money(
            Invariant::EscrowBalances,
            Cents::of(b.funded),
            Cents::of(b.available) + Cents::of(b.paid) + Cents::of(b.refunded),
        ),
        Mismatch::money(
            Invariant::EscrowFunded,
            Cents::of(b.funded),
            Cents::sum(&escrow.deposits),
        ),
        Mismatch::money(
            Invariant::EscrowPaid,
            Cents::of(b.paid),
            live(&[PaymentKind::Payout, PaymentKind::UsageSpend]),
        ),
        Mismatch::money(
            Invariant::EscrowRefunded,
            Cents::of(b.refunded),
            live(&[PaymentKind::Refund]),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    for &(id, status) in &escrow.milestones {
        let paid_out = escrow.payments.iter().any(|p| {
            p.kind == PaymentKind::Payout && p.milestone_id == Some(id) && p.status.holds_money()
        });
        if (status == MilestoneStatus::Paid) != paid_out {
            found.push(Mismatch {
                invariant: Invariant::MilestonePaid,
                part: Some(id),
                stored: Side::Text(status.as_str()),
                derived: Side::Text(if paid_out {
                    "a payout not ERROR"
                } else {
                    "no payout not ERROR"
                }),
            });
        }
    }
    found
}

/// An allowed payee's running total and its spends.
#[derive(Debug, Clone, PartialEq)]
pub struct PayeeLedger {
    pub spent_total: Money,
    pub spends: Vec<(PaymentStatus, Amount)>,
}

pub fn check_payee(payee: &PayeeLedger) -> Vec<Mismatch> {
    let live = payee
        .spends
        .iter()
        .filter(|(status, _)| status.holds_money())
        .map(|(_, amount)| amount);
    Mismatch::money(
        Invariant::PayeeSpentTotal,
        Cents::of(payee.spent_total),
        Cents::sum(live),
    )
    .into_iter()
    .collect()
}

// ---------------------------------------------------------------------------
// A run of the check

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "entity", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Entity {
    Mandate {
        id: Id,
    },
    Escrow {
        id: Id,
    },
    /// An allowed payee of an escrow, known by its reference.
    Payee {
        escrow_id: Id,
        payee_ref: String,
    },
}

impl Entity {
    /// How an alert's cause names it: one alert per entity and invariant.
    fn cause_name(&self) -> String {
        match self {
            Entity::Mandate { id } => format!("mandate:{id}"),
            Entity::Escrow { id } => format!("escrow:{id}"),
            Entity::Payee {
                escrow_id,
                payee_ref,
            } => format!("payee:{escrow_id}:{payee_ref}"),
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entity::Mandate { id } => write!(f, "mandate {id}"),
            Entity::Escrow { id } => write!(f, "escrow {id}"),
            Entity::Payee {
                escrow_id,
                payee_ref,
            } => write!(f, "payee {payee_ref} of escrow {escrow_id}"),
        }
    }
}

/// A mismatch of one entity, as a run reports it and an alert carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    #[serde(flatten)]
    pub entity: Entity,
    pub invariant: Invariant,
    /// The milestone, for `MILESTONE_PAID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone_id: Option<Id>,
    pub stored: String,
    pub derived: String,
}

impl Finding {
    pub fn of(entity: &Entity, mismatch: &Mismatch) -> Finding {
        Finding {
            entity: entity.clone(),
            invariant: mismatch.invariant,
            milestone_id: mismatch.part,
            stored: mismatch.stored.to_string(),
            derived: mismatch.derived.to_string(),
        }
    }

    /// The alert's cause: the same entity, invariant (and milestone) raise
    /// one alert, however many runs find it.
    pub fn cause(&self) -> String {
        let part = self
            .milestone_id
            .map(|m| format!(":{m}"))
            .unwrap_or_default();
        format!(
            "ledger:{}:{}{part}",
            self.entity.cause_name(),
            self.invariant.as_str()
        )
    }

    pub fn message(&self) -> String {
        let part = self
            .milestone_id
            .map(|m| format!(" (milestone {m})"))
            .unwrap_or_default();
        format!(
            "Ledger mismatch on {}{part}: {} does not hold: stored {}, records give {}.",
            self.entity,
            self.invariant.rule(),
            self.stored,
            self.derived
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Done,
}

/// What a run has checked and found so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunCounts {
    pub mandates: u64,
    pub escrows: u64,
    pub payees: u64,
    /// Broken invariants found (each also an alert, once ever).
    pub mismatches: u64,
    /// Alerts this run raised: mismatches not alerted by an earlier run.
    pub alerts_raised: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(cents: i64) -> Amount {
        Amount::from_minor_units(cents).unwrap()
    }

    fn money(cents: i64) -> Money {
        Money::from_minor_units(cents).unwrap()
    }

    fn id(n: u64) -> Id {
        Id::new(n).unwrap()
    }

    fn invariants(found: &[Mismatch]) -> Vec<Invariant> {
        found.iter().map(|m| m.invariant).collect()
    }

    #[test]
    fn names_are_distinct_and_shouting() {
        let names: std::collections::BTreeSet<_> =
            Invariant::ALL.iter().map(|i| i.as_str()).collect();
        assert_eq!(names.len(), Invariant::ALL.len());
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_')));
    }

    #[test]
    fn cents_print_as_money() {
        assert_eq!(Cents(0).to_string(), "0.00");
        assert_eq!(Cents(1205).to_string(), "12.05");
        assert_eq!(Cents(-7).to_string(), "-0.07");
        assert_eq!(Cents(i128::MIN + 1).to_string().len(), 41);
    }

    fn mandate() -> MandateLedger {
        MandateLedger {
            initial: amount(10_000),
            remaining: money(6_500),
            spent: money(3_500),
            purchases: vec![amount(1_000), amount(2_500)],
            debits: vec![amount(2_500), amount(1_000)],
        }
    }

    #[test]
    fn a_consistent_mandate_has_no_mismatch() {
        assert_eq!(check_mandate(&mandate()), vec![]);
        let untouched = MandateLedger {
            initial: amount(500),
            remaining: money(500),
            spent: money(0),
            purchases: vec![],
            debits: vec![],
        };
        assert_eq!(check_mandate(&untouched), vec![]);
    }

    #[test]
    fn each_mandate_invariant_is_reported_with_both_sides() {
        let corrupt = MandateLedger {
            remaining: money(6_600),
            ..mandate()
        };
        assert_eq!(
            check_mandate(&corrupt),
            vec![Mismatch {
                invariant: Invariant::MandateRemaining,
                part: None,
                stored: Side::Money(Cents(10_000)),
                derived: Side::Money(Cents(10_100)),
            }]
        );

        let spent = MandateLedger {
            spent: money(3_400),
            ..mandate()
        };
        assert_eq!(
            invariants(&check_mandate(&spent)),
            [Invariant::MandateSpent]
        );

        let lost_audit = MandateLedger {
            debits: vec![amount(1_000)],
            ..mandate()
        };
        let found = check_mandate(&lost_audit);
        assert_eq!(invariants(&found), [Invariant::MandateDebits]);
        assert_eq!(found[0].stored.to_string(), "10.00");
        assert_eq!(found[0].derived.to_string(), "35.00");

        // A purchase without its debit or balance change breaks all three.
        let stray = MandateLedger {
            purchases: vec![amount(1_000), amount(2_500), amount(1)],
            ..mandate()
        };
        assert_eq!(
            invariants(&check_mandate(&stray)),
            [
                Invariant::MandateRemaining,
                Invariant::MandateSpent,
                Invariant::MandateDebits
            ]
        );
    }

    fn payment(
        kind: PaymentKind,
        status: PaymentStatus,
        cents: i64,
        m: Option<u64>,
    ) -> PaymentLine {
        PaymentLine {
            kind,
            status,
            amount: amount(cents),
            milestone_id: m.map(id),
        }
    }

    /// Funded 100.00 by two deposits; milestone 1 paid 30.00 (after one
    /// failed attempt), a spend of 5.00 pending, a refund of 10.00 settled,
    /// milestone 2 waiting.
    fn escrow() -> EscrowLedger {
        use PaymentKind::*;
        use PaymentStatus::*;
        EscrowLedger {
            balances: EscrowBalances {
                funded: money(10_000),
                available: money(5_500),
                paid: money(3_500),
                refunded: money(1_000),
            },
            deposits: vec![amount(4_000), amount(6_000)],
            payments: vec![
                payment(Payout, Error, 3_000, Some(1)),
                payment(Payout, Settled, 3_000, Some(1)),
                payment(UsageSpend, Pending, 500, None),
                payment(Refund, Sent, 1_000, None),
                payment(Refund, Error, 700, None),
            ],
            milestones: vec![
                (id(1), MilestoneStatus::Paid),
                (id(2), MilestoneStatus::Waiting),
            ],
        }
    }

    #[test]
    fn a_consistent_escrow_has_no_mismatch() {
        assert_eq!(check_escrow(&escrow()), vec![]);
    }

    #[test]
    fn every_payment_status_counts_but_error() {
        for status in PaymentStatus::ALL {
            let mut e = escrow();
            e.payments
                .push(payment(PaymentKind::UsageSpend, status, 1, None));
            let found = invariants(&check_escrow(&e));
            if status == PaymentStatus::Error {
                assert_eq!(found, [], "{status:?}");
            } else {
                assert_eq!(found, [Invariant::EscrowPaid], "{status:?}");
            }
        }
    }

    #[test]
    fn each_escrow_invariant_is_reported() {
        let mut e = escrow();
        e.balances.available = money(5_501);
        assert_eq!(invariants(&check_escrow(&e)), [Invariant::EscrowBalances]);

        let mut e = escrow();
        e.deposits.pop();
        let found = check_escrow(&e);
        assert_eq!(invariants(&found), [Invariant::EscrowFunded]);
        assert_eq!(
            (found[0].stored.to_string(), found[0].derived.to_string()),
            ("100.00".into(), "40.00".into())
        );

        // Paid moved to refunded: the sum holds, both sides do not.
        let mut e = escrow();
        e.balances.paid = money(3_000);
        e.balances.refunded = money(1_500);
        assert_eq!(
            invariants(&check_escrow(&e)),
            [Invariant::EscrowPaid, Invariant::EscrowRefunded]
        );
    }

    #[test]
    fn a_milestone_is_paid_exactly_when_a_live_payout_of_it_exists() {
        use MilestoneStatus::*;
        for status in MilestoneStatus::ALL {
            for payout in [None, Some(PaymentStatus::Error), Some(PaymentStatus::Sent)] {
                let mut e = escrow();
                e.milestones[1].1 = status;
                if let Some(p) = payout {
                    e.payments.push(payment(PaymentKind::Payout, p, 1, Some(2)));
                }
                let live = payout.is_some_and(|p| p.holds_money());
                let found = milestone_mismatches(&e);
                if (status == Paid) == live {
                    assert_eq!(found, vec![], "{status:?} {payout:?}");
                } else {
                    assert_eq!(invariants(&found), [Invariant::MilestonePaid]);
                    assert_eq!(found[0].part, Some(id(2)));
                    assert_eq!(found[0].stored, Side::Text(status.as_str()));
                }
            }
        }
        // A spend or refund naming a milestone does not pay it.
        let mut e = escrow();
        e.milestones[1].1 = Paid;
        e.payments.push(payment(
            PaymentKind::Refund,
            PaymentStatus::Sent,
            1,
            Some(2),
        ));
        assert_eq!(
            invariants(&milestone_mismatches(&e)),
            [Invariant::MilestonePaid]
        );
    }

    /// The milestone rule alone: the extra payment of the cases above also
    /// breaks a money invariant, checked by the other tests.
    fn milestone_mismatches(e: &EscrowLedger) -> Vec<Mismatch> {
        check_escrow(e)
            .into_iter()
            .filter(|m| m.invariant == Invariant::MilestonePaid)
            .collect()
    }

    #[test]
    fn payee_totals_count_live_spends() {
        let payee = PayeeLedger {
            spent_total: money(700),
            spends: vec![
                (PaymentStatus::Settled, amount(500)),
                (PaymentStatus::Error, amount(900)),
                (PaymentStatus::Pending, amount(200)),
            ],
        };
        assert_eq!(check_payee(&payee), vec![]);
        let corrupt = PayeeLedger {
            spent_total: money(1_600),
            ..payee
        };
        assert_eq!(
            check_payee(&corrupt),
            vec![Mismatch {
                invariant: Invariant::PayeeSpentTotal,
                part: None,
                stored: Side::Money(Cents(1_600)),
                derived: Side::Money(Cents(700)),
            }]
        );
    }

    #[test]
    fn a_finding_names_its_entity_invariant_and_both_sides() {
        let entity = Entity::Payee {
            escrow_id: id(4),
            payee_ref: "shop-1".into(),
        };
        let mismatch = Mismatch {
            invariant: Invariant::PayeeSpentTotal,
            part: None,
            stored: Side::Money(Cents(1_600)),
            derived: Side::Money(Cents(700)),
        };
        let finding = Finding::of(&entity, &mismatch);
        assert_eq!(finding.cause(), "ledger:payee:4:shop-1:PAYEE_SPENT_TOTAL");
        assert_eq!(
            finding.message(),
            "Ledger mismatch on payee shop-1 of escrow 4: spent_total = sum of its spends \
             not ERROR does not hold: stored 16.00, records give 7.00."
        );
        let json = serde_json::to_value(&finding).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"entity": "PAYEE", "escrow_id": 4, "payee_ref": "shop-1",
                "invariant": "PAYEE_SPENT_TOTAL", "stored": "16.00", "derived": "7.00"})
        );
        assert_eq!(serde_json::from_value::<Finding>(json).unwrap(), finding);

        let milestone = Finding {
            entity: Entity::Escrow { id: id(4) },
            invariant: Invariant::MilestonePaid,
            milestone_id: Some(id(9)),
            stored: "PAID".into(),
            derived: "no payout not ERROR".into(),
        };
        assert_eq!(milestone.cause(), "ledger:escrow:4:MILESTONE_PAID:9");
        assert!(milestone
            .message()
            .starts_with("Ledger mismatch on escrow 4 (milestone 9): "));
        // Each invariant's name is its wire name.
        for invariant in Invariant::ALL {
            assert_eq!(
                serde_json::to_value(invariant).unwrap(),
                serde_json::json!(invariant.as_str())
            );
        }
    }

    #[test]
    fn sums_beyond_money_do_not_overflow() {
        let huge = MandateLedger {
            initial: amount(Money::MAX.minor_units()),
            remaining: Money::MAX,
            spent: money(0),
            purchases: vec![amount(Money::MAX.minor_units()); 3],
            debits: vec![],
        };
        let found = check_mandate(&huge);
        assert_eq!(found.len(), 3);
        assert_eq!(
            found[0].derived,
            Side::Money(Cents(4 * i128::from(Money::MAX.minor_units())))
        );
    }
}
