//! Usage payees and spends (`/spend/allowed`, `/spend`): an escrow's client
//! names payees (a school, a pharmacy) that may be paid out of the escrow,
//! each with an optional daily and total limit. `authorize_spend` runs the
//! contract's checks in order; the store writes the limits, the balance,
//! the payment and the counters in one transaction with the same conditions.
//! `check_total_limit` also holds a failed spend sent again to the total
//! limit. A payee's day only moves forward: a clock slightly behind at
//! midnight never restarts a daily counter.

use super::{
    error::ErrorCode,
    escrow::{decide, EscrowAction, EscrowOutcome, EscrowRefusal, EscrowState, EscrowTransition},
    ids::Id,
    money::{Amount, Money},
    time::Timestamp,
};
use serde::Serialize;

/// Longest payee reference.
pub const MAX_PAYEE_REF_CHARS: usize = 120;

/// A payee reference: 2–120 characters, no control characters, not blank.
pub fn parse_payee_ref(text: &str) -> Result<String, &'static str> {
    let n = text.chars().count();
    if !(2..=MAX_PAYEE_REF_CHARS).contains(&n)
        || text.trim().is_empty()
        || text.chars().any(char::is_control)
    {
        return Err("must be 2 to 120 characters, without control characters");
    }
    Ok(text.to_string())
}

/// The UTC day of an instant (`2026-11-27`): the day of a daily limit.
pub fn utc_day(at: Timestamp) -> String {
    at.datetime().format("%Y-%m-%d").to_string()
}

/// A payee as stored, with its counters as of `spent_day`.
#[derive(Debug, Clone, PartialEq)]
pub struct UsagePayee {
    pub id: Id,
    pub escrow_id: Id,
    pub payee_ref: String,
    pub label: String,
    pub daily_limit: Option<Amount>,
    pub total_limit: Option<Amount>,
    /// Spent on `spent_day` (UTC); a later day starts from zero.
    pub spent_today: Money,
    pub spent_day: String,
    pub spent_total: Money,
    pub created_at: Timestamp,
}

impl UsagePayee {
    /// The day a spend at `now` counts on: its UTC date, but never a day
    /// before the counters' (a container whose clock lags at midnight must
    /// not restart a counter another one already moved to the new day).
    pub fn counting_day(&self, now: Timestamp) -> String {
        let day = utc_day(now);
        // `YYYY-MM-DD` sorts as it reads.
        if day < self.spent_day {
            self.spent_day.clone()
        } else {
            day
        }
    }

    /// What was spent on `day`: nothing if the counters are of another day.
    pub fn spent_on(&self, day: &str) -> Money {
        if self.spent_day == day {
            self.spent_today
        } else {
            Money::ZERO
        }
    }

    /// The payee as the API shows it at `now`.
    pub fn view_at(&self, now: Timestamp) -> PayeeView {
        self.view(&self.counting_day(now))
    }

    /// The payee as the API shows it on `day`.
    pub fn view(&self, day: &str) -> PayeeView {
        PayeeView {
            id: self.id,
            escrow_id: self.escrow_id,
            payee_ref: self.payee_ref.clone(),
            label: self.label.clone(),
            daily_limit: self.daily_limit,
            total_limit: self.total_limit,
            spent_today: self.spent_on(day),
            spent_total: self.spent_total,
            created_at: self.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PayeeView {
    pub id: Id,
    pub escrow_id: Id,
    pub payee_ref: String,
    pub label: String,
    pub daily_limit: Option<Amount>,
    pub total_limit: Option<Amount>,
    pub spent_today: Money,
    pub spent_total: Money,
    pub created_at: Timestamp,
}

/// A spend as the caller asks for it, already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRequest {
    pub escrow_id: Id,
    pub payee_ref: String,
    pub amount: Amount,
    pub note: Option<String>,
}

impl SpendRequest {
    /// The request in canonical form, for idempotency fingerprints.
    pub fn canonical(&self) -> serde_json::Value {
        serde_json::json!({
            "escrow_id": self.escrow_id,
            "payee_ref": self.payee_ref,
            "amount": self.amount,
            "note": self.note,
        })
    }
}

/// An authorised spend: the escrow's transition (one USAGE_SPEND payment)
/// and the payee's counters, with what the store re-checks when it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendDecision {
    pub transition: EscrowTransition,
    /// The first spend of `day`: the daily counter restarts at the amount.
    pub new_day: bool,
    pub day: String,
}

/// Why a spend is refused. Answered by `From<SpendRefusal> for AppError` in
/// `error.rs`; the escrow's own refusals as `decide` answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendRefusal {
    /// The escrow refuses: closed (`NotActive`) or short of money.
    Escrow(EscrowRefusal),
    /// No such payee on this escrow.
    PayeeNotAllowed,
    DailyLimitReached,
    TotalLimitReached,
}

impl SpendRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            SpendRefusal::Escrow(refusal) => refusal.code(),
            SpendRefusal::PayeeNotAllowed => ErrorCode::PayeeNotAllowed,
            SpendRefusal::DailyLimitReached => ErrorCode::DailyLimitReached,
            SpendRefusal::TotalLimitReached => ErrorCode::TotalLimitReached,
        }
    }
}

/// The contract's checks, in order: escrow known (the caller's 404), escrow
/// not RELEASED, REFUNDED or CANCELLED; payee allowed; daily limit; total
/// limit; the escrow's available balance. A refusal changes nothing.
pub fn authorize_spend(
    escrow: &EscrowState,
    payee: Option<&UsagePayee>,
    amount: Amount,
    now: Timestamp,
) -> Result<SpendDecision, SpendRefusal> {
    if !escrow.status.is_open() {
        return Err(SpendRefusal::Escrow(EscrowRefusal::NotActive));
    }
    let payee = payee.ok_or(SpendRefusal::PayeeNotAllowed)?;
    let day = payee.counting_day(now);
    if !within(payee.spent_on(&day), payee.daily_limit, amount) {
        return Err(SpendRefusal::DailyLimitReached);
    }
    check_total_limit(payee, amount)?;
    match decide(escrow, EscrowAction::Spend { amount }).map_err(SpendRefusal::Escrow)? {
        EscrowOutcome::Changed(transition) => Ok(SpendDecision {
            transition,
            new_day: day > payee.spent_day,
            day,
        }),
        // `decide` answers a spend with a change or a refusal: never here.
        _ => Err(SpendRefusal::Escrow(EscrowRefusal::InvalidState)),
    }
}

/// The total limit, for a spend or for a failed one sent again
/// (`POST /payments/execute/{id}`): a failure gave its amount back to the
/// total, so sending it again takes it out again and must fit, as a new
/// spend would. (The day's counter kept the failed amount: nothing to check.)
pub fn check_total_limit(payee: &UsagePayee, amount: Amount) -> Result<(), SpendRefusal> {
    if within(payee.spent_total, payee.total_limit, amount) {
        Ok(())
    } else {
        Err(SpendRefusal::TotalLimitReached)
    }
}

/// `spent + amount` stays within `limit` (inclusive); no limit, always.
fn within(spent: Money, limit: Option<Amount>, amount: Amount) -> bool {
    limit.is_none_or(|limit| spent.minor_units() + amount.minor_units() <= limit.minor_units())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        escrow::payment::PaymentKind,
        escrow::{EscrowAudit, EscrowBalances, EscrowEventKind, EscrowStatus},
    };

    fn amount(text: &str) -> Amount {
        text.parse().unwrap()
    }

    fn money(text: &str) -> Money {
        text.parse().unwrap()
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn escrow(status: EscrowStatus, available: &str) -> EscrowState {
        let funded = money("100.00");
        let available = money(available);
        EscrowState {
            status,
            total: amount("100.00"),
            deadline_at: at("2030-01-01T00:00:00Z"),
            balances: EscrowBalances {
                funded,
                available,
                paid: Money::from_minor_units(funded.minor_units() - available.minor_units())
                    .unwrap(),
                refunded: Money::ZERO,
            },
        }
    }

    fn payee(daily: Option<&str>, total: Option<&str>, today: &str, spent: &str) -> UsagePayee {
        UsagePayee {
            id: Id::new(1).unwrap(),
            escrow_id: Id::new(2).unwrap(),
            payee_ref: "school".into(),
            label: "School".into(),
            daily_limit: daily.map(amount),
            total_limit: total.map(amount),
            spent_today: money(today),
            spent_day: "2026-11-27".into(),
            spent_total: money(spent),
            created_at: at("2026-11-01T00:00:00Z"),
        }
    }

    const NOON: &str = "2026-11-27T12:00:00Z";

    #[test]
    fn payee_refs_are_2_to_120_visible_characters() {
        for good in ["ab", "école-42", &"x".repeat(120), "a b"] {
            assert_eq!(parse_payee_ref(good).as_deref(), Ok(good), "{good:?}");
        }
        for bad in ["", "a", "  ", &"x".repeat(121), "a\u{0}b", "ab\n"] {
            assert!(parse_payee_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_checks_run_in_the_contract_order() {
        let p = payee(Some("10.00"), Some("50.00"), "9.00", "49.50");
        // Closed escrow first, whatever else is wrong.
        for status in [
            EscrowStatus::Released,
            EscrowStatus::Refunded,
            EscrowStatus::Cancelled,
        ] {
            assert_eq!(
                authorize_spend(&escrow(status, "0.50"), None, amount("5.00"), at(NOON)),
                Err(SpendRefusal::Escrow(EscrowRefusal::NotActive))
            );
        }
        let open = escrow(EscrowStatus::Funded, "0.50");
        assert_eq!(
            authorize_spend(&open, None, amount("5.00"), at(NOON)),
            Err(SpendRefusal::PayeeNotAllowed)
        );
        // Daily before total before balance.
        assert_eq!(
            authorize_spend(&open, Some(&p), amount("5.00"), at(NOON)),
            Err(SpendRefusal::DailyLimitReached)
        );
        assert_eq!(
            authorize_spend(&open, Some(&p), amount("1.00"), at(NOON)),
            Err(SpendRefusal::TotalLimitReached)
        );
        let p = payee(Some("10.00"), Some("50.00"), "0.00", "0.00");
        assert_eq!(
            authorize_spend(&open, Some(&p), amount("1.00"), at(NOON)),
            Err(SpendRefusal::Escrow(EscrowRefusal::InsufficientBalance))
        );
    }

    #[test]
    fn limits_are_inclusive_and_optional() {
        let open = escrow(EscrowStatus::Funded, "100.00");
        let p = payee(Some("10.00"), Some("50.00"), "9.00", "40.00");
        assert!(authorize_spend(&open, Some(&p), amount("1.00"), at(NOON)).is_ok());
        assert_eq!(
            authorize_spend(&open, Some(&p), amount("1.01"), at(NOON)),
            Err(SpendRefusal::DailyLimitReached)
        );
        let p = payee(None, Some("50.00"), "9.00", "40.00");
        assert!(authorize_spend(&open, Some(&p), amount("10.00"), at(NOON)).is_ok());
        assert_eq!(
            authorize_spend(&open, Some(&p), amount("10.01"), at(NOON)),
            Err(SpendRefusal::TotalLimitReached)
        );
        let p = payee(None, None, "90.00", "90.00");
        assert!(authorize_spend(&open, Some(&p), amount("100.00"), at(NOON)).is_ok());
    }

    #[test]
    fn the_first_spend_of_a_new_utc_day_starts_from_zero() {
        let open = escrow(EscrowStatus::Releasable, "100.00");
        let p = payee(Some("10.00"), None, "10.00", "10.00");
        assert_eq!(
            authorize_spend(
                &open,
                Some(&p),
                amount("0.01"),
                at("2026-11-27T23:59:59.999999Z")
            ),
            Err(SpendRefusal::DailyLimitReached)
        );
        let next =
            authorize_spend(&open, Some(&p), amount("10.00"), at("2026-11-28T00:00:00Z")).unwrap();
        assert!(next.new_day);
        assert_eq!(next.day, "2026-11-28");
        // An offset is only a way of writing UTC: 01:00+02:00 is the 27th.
        let same = authorize_spend(
            &open,
            Some(&p),
            amount("0.01"),
            at("2026-11-28T01:00:00+02:00"),
        );
        assert_eq!(same, Err(SpendRefusal::DailyLimitReached));
        let view = p.view("2026-11-28");
        assert_eq!(view.spent_today, Money::ZERO);
        assert_eq!(view.spent_total, money("10.00"));
    }

    #[test]
    fn a_payee_day_never_moves_backwards() {
        let open = escrow(EscrowStatus::Funded, "100.00");
        // Counters already on the 28th (another container passed midnight).
        let mut p = payee(Some("10.00"), None, "6.00", "6.00");
        p.spent_day = "2026-11-28".into();
        let lagging = at("2026-11-27T23:59:59.900Z");
        assert_eq!(p.counting_day(lagging), "2026-11-28");
        assert_eq!(
            authorize_spend(&open, Some(&p), amount("4.01"), lagging),
            Err(SpendRefusal::DailyLimitReached)
        );
        let fits = authorize_spend(&open, Some(&p), amount("4.00"), lagging).unwrap();
        assert_eq!((fits.new_day, fits.day.as_str()), (false, "2026-11-28"));
        // Same day, and any later one, count as themselves.
        for (now, day, new_day) in [
            ("2026-11-28T10:00:00Z", "2026-11-28", false),
            ("2026-11-29T00:00:00Z", "2026-11-29", true),
            ("2027-01-01T00:00:00Z", "2027-01-01", true),
        ] {
            assert_eq!(p.counting_day(at(now)), day, "{now}");
            let d = authorize_spend(&open, Some(&p), amount("1.00"), at(now)).unwrap();
            assert_eq!((d.new_day, d.day.as_str()), (new_day, day), "{now}");
        }
    }

    #[test]
    fn a_spend_sent_again_must_fit_the_total_limit() {
        // 50.00 limit, 50.00 spent by another spend after this one failed.
        let full = payee(None, Some("50.00"), "50.00", "50.00");
        assert_eq!(
            check_total_limit(&full, amount("50.00")),
            Err(SpendRefusal::TotalLimitReached)
        );
        assert_eq!(
            check_total_limit(&full, amount("0.01")),
            Err(SpendRefusal::TotalLimitReached)
        );
        let room = payee(None, Some("50.00"), "50.00", "49.99");
        assert_eq!(check_total_limit(&room, amount("0.01")), Ok(()));
        assert_eq!(
            check_total_limit(&room, amount("0.02")),
            Err(SpendRefusal::TotalLimitReached)
        );
        // The daily limit is not the retry's business: the day kept it.
        let daily_full = payee(Some("10.00"), None, "10.00", "0.00");
        assert_eq!(check_total_limit(&daily_full, amount("10.00")), Ok(()));
        let unlimited = payee(None, None, "0.00", "999.00");
        assert_eq!(check_total_limit(&unlimited, amount("1.00")), Ok(()));
    }

    #[test]
    fn an_authorised_spend_pays_one_usage_spend_and_keeps_the_status() {
        for status in [
            EscrowStatus::Draft,
            EscrowStatus::Funded,
            EscrowStatus::Releasable,
        ] {
            let p = payee(None, None, "0.00", "0.00");
            let decision = authorize_spend(
                &escrow(status, "30.00"),
                Some(&p),
                amount("12.50"),
                at(NOON),
            )
            .unwrap();
            let t = decision.transition;
            assert_eq!(t.status, status);
            let order = t.payment.unwrap();
            assert_eq!(
                (order.kind, order.amount),
                (PaymentKind::UsageSpend, amount("12.50"))
            );
            assert_eq!(t.balances.available, money("17.50"));
            assert_eq!(t.balances.paid, money("82.50"));
            assert!(t.balances.is_consistent());
            assert_eq!(t.audit, vec![EscrowAudit::UsageSpend]);
            assert_eq!(t.events, vec![EscrowEventKind::PaymentPending]);
            assert!(!decision.new_day);
        }
    }
}
