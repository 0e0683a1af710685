//! The money of one escrow and how a payment moves it. `funded = available +
//! paid + refunded` always: every change goes through
//! [`EscrowBalances::apply`] (or a deposit), which refuses to break it or to
//! go below zero. Bottom of the escrow's folder: it knows money, not
//! payments (a payment's delta is [`BalanceDelta::of`], in `payment.rs`).

use crate::domain::money::{Amount, Money};

/// The money of one escrow. `amount_paid` counts PAYOUT and USAGE_SPEND
/// payments that are SENT or SETTLED, `amount_refunded` REFUND payments in
/// those states; a failed payment gives its amount back to `available`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowBalances {
    pub funded: Money,
    pub available: Money,
    pub paid: Money,
    pub refunded: Money,
}

impl EscrowBalances {
    /// A new escrow: nothing deposited.
    pub const ZERO: EscrowBalances = EscrowBalances {
        funded: Money::ZERO,
        available: Money::ZERO,
        paid: Money::ZERO,
        refunded: Money::ZERO,
    };

    /// `funded = available + paid + refunded`, the contract's money invariant.
    pub fn is_consistent(&self) -> bool {
        self.funded.minor_units()
            == self.available.minor_units() + self.paid.minor_units() + self.refunded.minor_units()
    }

    /// The balances after a payment transition, or `None` if any would go
    /// below zero (for a debit: not enough available) or above `Money::MAX`.
    pub fn apply(&self, delta: BalanceDelta) -> Option<EscrowBalances> {
        fn shift(money: Money, by: i64) -> Option<Money> {
            Money::from_minor_units(money.minor_units().checked_add(by)?).ok()
        }
        Some(EscrowBalances {
            funded: self.funded,
            available: shift(self.available, delta.available)?,
            paid: shift(self.paid, delta.paid)?,
            refunded: shift(self.refunded, delta.refunded)?,
        })
    }

    /// A deposit: it is both funded and available.
    pub(super) fn deposit(&self, amount: Amount) -> Option<EscrowBalances> {
        Some(EscrowBalances {
            funded: self.funded.checked_add(amount)?,
            available: self.available.checked_add(amount)?,
            ..*self
        })
    }
}

/// How a payment transition moves the escrow's balances, in minor units.
/// `funded` never moves: only deposits change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BalanceDelta {
    pub available: i64,
    pub paid: i64,
    pub refunded: i64,
}
