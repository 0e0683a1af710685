//! Money amounts as the wire contract defines them: decimals with at most two
//! places, never negative, never above [`Money::MAX`].
//!
//! Parsing is exact: a value with more than two significant decimal places is
//! refused, never rounded, so a caller is never charged something other than
//! what they sent.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest amount in minor units (cents): 999999999999999.99.
const MAX_MINOR_UNITS: i64 = 99_999_999_999_999_999;

/// Builds a scale-2 decimal from non-negative cents at compile time.
const fn cents(minor_units: u64) -> Decimal {
    // The 96-bit mantissa is (hi, mid, lo); cents fit in the lower 64 bits.
    Decimal::from_parts(minor_units as u32, (minor_units >> 32) as u32, 0, false, 2)
}

/// Why a value is not acceptable as an amount. Display is phrased to follow a
/// field name ("amount must be greater than 0").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyError {
    NotANumber,
    TooManyDecimals,
    NotPositive,
    Negative,
    TooLarge,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotANumber => "must be a decimal number (JSON number or string)",
            Self::TooManyDecimals => "must have at most 2 decimal places",
            Self::NotPositive => "must be greater than 0",
            Self::Negative => "must not be negative",
            Self::TooLarge => "must be at most 999999999999999.99",
        })
    }
}

impl std::error::Error for MoneyError {}

/// A non-negative amount with exactly two decimal places, at most
/// [`Money::MAX`]. Balances use it because they may legitimately be `0.00`.
///
/// The inner decimal always has scale 2, so equality, hashing and display
/// never depend on how the value was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

impl Money {
    /// `0.00`.
    pub const ZERO: Money = Money(cents(0));
    /// `999999999999999.99`, the largest amount the contract allows.
    pub const MAX: Money = Money(cents(MAX_MINOR_UNITS as u64));

    /// Accepts a decimal with at most 2 significant decimal places (`10.100`
    /// is `10.10`; `10.001` is refused), between 0 and [`Money::MAX`].
    pub fn parse(value: Decimal) -> Result<Money, MoneyError> {
        let mut value = value.normalize();
        if value.scale() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        if value < Decimal::ZERO {
            return Err(MoneyError::Negative);
        }
        if value > Self::MAX.0 {
            return Err(MoneyError::TooLarge);
        }
        value.rescale(2);
        // A negative zero would otherwise display as "-0.00".
        value.set_sign_positive(true);
        Ok(Money(value))
    }

    /// Reads an amount from a JSON request body: a JSON number or a JSON
    /// string holding a decimal (see [`FromStr`] for the accepted text).
    /// Anything else (boolean, null, object, array) is `NotANumber`.
    pub fn from_json(value: &serde_json::Value) -> Result<Money, MoneyError> {
        match value {
            serde_json::Value::Number(number) => Self::from_text(&number.to_string()),
            serde_json::Value::String(text) => text.parse(),
            _ => Err(MoneyError::NotANumber),
        }
    }

    /// Storage keeps integer cents so that DynamoDB arithmetic and conditions
    /// are exact; this is the way back.
    pub fn from_minor_units(minor_units: i64) -> Result<Money, MoneyError> {
        if minor_units < 0 {
            Err(MoneyError::Negative)
        } else if minor_units > MAX_MINOR_UNITS {
            Err(MoneyError::TooLarge)
        } else {
            Ok(Money(Decimal::new(minor_units, 2)))
        }
    }

    /// The amount in cents, for storage.
    pub fn minor_units(&self) -> i64 {
        i64::try_from(self.0.mantissa()).expect("Money is at most MAX, which fits in i64 cents")
    }

    /// The amount as a decimal with scale 2.
    pub fn decimal(&self) -> Decimal {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Debits `amount`; `None` if the balance would go below zero.
    pub fn checked_sub(self, amount: Amount) -> Option<Money> {
        Self::from_minor_units(self.minor_units() - amount.minor_units()).ok()
    }

    /// Credits `amount`; `None` if the result would exceed [`Money::MAX`].
    pub fn checked_add(self, amount: Amount) -> Option<Money> {
        // Both sides are at most MAX (< 10^17), so the sum cannot overflow i64.
        Self::from_minor_units(self.minor_units() + amount.minor_units()).ok()
    }

    fn from_text(text: &str) -> Result<Money, MoneyError> {
        Self::from_minor_units(text_to_minor_units(text)?)
    }
}

/// Parses the text of a JSON string amount. Surrounding whitespace is trimmed
/// (`" 10 "` is `10.00`) because it cannot change the meaning. The text must
/// be a plain decimal (`10`, `10.5`, `-1`) optionally followed by an exponent
/// (`1e2`, `1.5E-1`); `NaN`, `Infinity`, hex, `+1`, `.5`, `5.` and `1_000` are
/// `NotANumber`.
impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Money, MoneyError> {
        Self::from_text(text.trim())
    }
}

/// Always two decimal places: `10.00`, `0.00`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Serialized as the two-place string, never a float, so clients cannot lose
/// precision.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        deserializer
            .deserialize_any(AmountText)?
            .parse()
            .map_err(de::Error::custom)
    }
}

impl From<Amount> for Money {
    fn from(amount: Amount) -> Money {
        amount.0
    }
}

/// A strictly positive [`Money`]: what a caller sends as a purchase amount or
/// a mandate total, where zero makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Money);

impl Amount {
    /// As [`Money::parse`], and the value must be greater than zero. Any value
    /// that is not above zero, negative ones included, is `NotPositive`.
    pub fn parse(value: Decimal) -> Result<Amount, MoneyError> {
        Money::parse(value).map_err(not_positive)?.try_into()
    }

    /// As [`Money::from_json`], and the value must be greater than zero.
    pub fn from_json(value: &serde_json::Value) -> Result<Amount, MoneyError> {
        Money::from_json(value).map_err(not_positive)?.try_into()
    }

    /// As [`Money::from_minor_units`]; zero and below are `NotPositive`.
    pub fn from_minor_units(minor_units: i64) -> Result<Amount, MoneyError> {
        Money::from_minor_units(minor_units)
            .map_err(not_positive)?
            .try_into()
    }

    pub fn minor_units(&self) -> i64 {
        self.0.minor_units()
    }

    pub fn money(self) -> Money {
        self.0
    }

    pub fn decimal(&self) -> Decimal {
        self.0.decimal()
    }
}

/// An amount refused for its sign reads better as "must be greater than 0".
fn not_positive(error: MoneyError) -> MoneyError {
    match error {
        MoneyError::Negative => MoneyError::NotPositive,
        other => other,
    }
}

impl TryFrom<Money> for Amount {
    type Error = MoneyError;

    fn try_from(money: Money) -> Result<Amount, MoneyError> {
        if money.is_zero() {
            Err(MoneyError::NotPositive)
        } else {
            Ok(Amount(money))
        }
    }
}

/// Same text rules as [`Money`]'s `FromStr`, and greater than zero.
impl FromStr for Amount {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Amount, MoneyError> {
        text.parse::<Money>().map_err(not_positive)?.try_into()
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Amount, D::Error> {
        deserializer
            .deserialize_any(AmountText)?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// Turns a number or string from any serde format into text for the exact
/// decimal parser, so `Deserialize` follows the same rules as `from_json`.
struct AmountText;

impl<'de> Visitor<'de> for AmountText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal number (JSON number or string)")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_owned())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<String, E> {
        Ok(value.to_string())
    }

    /// serde_json (with `arbitrary_precision`) calls this only when the
    /// number's own text is exactly the shortest text of this `f64`, so that
    /// text comes back unchanged; any other number arrives as its text,
    /// through `visit_map` below.
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<String, E> {
        if value.is_finite() {
            Ok(value.to_string())
        } else {
            Err(E::custom(MoneyError::NotANumber))
        }
    }

    /// serde_json (with `arbitrary_precision`) hands a number over as a
    /// one-entry map holding the number's own text: read that text, so the
    /// amount never passes through `f64`.
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        match map.next_key::<String>()? {
            Some(key) if key == JSON_NUMBER_TOKEN => {
                let text: String = map.next_value()?;
                Ok(text)
            }
            _ => Err(de::Error::custom(MoneyError::NotANumber)),
        }
    }
}

/// The key under which serde_json's `arbitrary_precision` passes a number's text.
const JSON_NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Exact conversion of decimal text to cents, without a fixed-precision type
/// in between: `Decimal::from_str` silently rounds beyond 28 digits, which
/// would let `10.00000000000000000000000000001` through as `10.00`.
///
/// Grammar: `-`? digits (`.` digits)? ([eE] [+-]? digits)?
fn text_to_minor_units(text: &str) -> Result<i64, MoneyError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, parse_exponent(exponent)?),
        None => (unsigned, 0),
    };
    let (integer, fraction) = match mantissa.split_once('.') {
        Some((_, "")) => return Err(MoneyError::NotANumber),
        Some((integer, fraction)) => (integer, fraction),
        None => (mantissa, ""),
    };
    if !is_digits(integer) || !(fraction.is_empty() || is_digits(fraction)) {
        return Err(MoneyError::NotANumber);
    }

    // value = digits × 10^-places
    let digits = format!("{integer}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0); // zero, whatever its sign or exponent
    }
    let significant = digits.trim_end_matches('0');
    let trailing_zeros = to_i64(digits.len() - significant.len());
    let places = to_i64(fraction.len())
        .saturating_sub(exponent)
        .saturating_sub(trailing_zeros);
    if places > 2 {
        return Err(MoneyError::TooManyDecimals);
    }
    if negative {
        return Err(MoneyError::Negative);
    }
    // In cents the value is significant × 10^(2 - places); MAX has 17 digits.
    let scale_up = 2_i64.saturating_sub(places);
    if to_i64(significant.len()).saturating_add(scale_up) > 17 {
        return Err(MoneyError::TooLarge);
    }
    let significant: i64 = significant.parse().map_err(|_| MoneyError::TooLarge)?;
    let factor = 10_i64.pow(u32::try_from(scale_up).map_err(|_| MoneyError::TooLarge)?);
    match significant.checked_mul(factor) {
        Some(minor_units) if minor_units <= MAX_MINOR_UNITS => Ok(minor_units),
        _ => Err(MoneyError::TooLarge),
    }
}

/// Exponent digits, saturating: `1e99999999999999999999` is simply too large.
fn parse_exponent(text: &str) -> Result<i64, MoneyError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if !is_digits(digits) {
        return Err(MoneyError::NotANumber);
    }
    let magnitude = digits.bytes().fold(0_i64, |acc, digit| {
        acc.saturating_mul(10)
            .saturating_add(i64::from(digit - b'0'))
    });
    Ok(if negative { -magnitude } else { magnitude })
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

fn to_i64(length: usize) -> i64 {
    i64::try_from(length).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn money(text: &str) -> Money {
        text.parse().unwrap()
    }

    fn amount(text: &str) -> Amount {
        text.parse().unwrap()
    }

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn constants() {
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(Money::MAX.to_string(), "999999999999999.99");
        assert_eq!(Money::MAX.minor_units(), 99_999_999_999_999_999);
        assert!(Money::ZERO.is_zero());
        assert!(!Money::MAX.is_zero());
    }

    #[test]
    fn parse_decimal_normalises_to_two_places() {
        assert_eq!(Money::parse(dec("10")).unwrap().to_string(), "10.00");
        assert_eq!(Money::parse(dec("10.5")).unwrap().to_string(), "10.50");
        assert_eq!(Money::parse(dec("10.100")).unwrap().to_string(), "10.10");
        assert_eq!(Money::parse(dec("0")).unwrap(), Money::ZERO);
        assert_eq!(Money::parse(dec("0.00")).unwrap(), Money::ZERO);
        assert_eq!(Money::parse(dec("-0.00")).unwrap().to_string(), "0.00");
        assert_eq!(Money::parse(dec("999999999999999.99")).unwrap(), Money::MAX);
        assert_eq!(Money::parse(dec("10.10")), Money::parse(dec("10.1")));
    }

    #[test]
    fn parse_decimal_refusals() {
        assert_eq!(Money::parse(dec("0.001")), Err(MoneyError::TooManyDecimals));
        assert_eq!(
            Money::parse(dec("10.001")),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(Money::parse(dec("-1")), Err(MoneyError::Negative));
        assert_eq!(Money::parse(dec("-0.01")), Err(MoneyError::Negative));
        assert_eq!(
            Money::parse(dec("1000000000000000.00")),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn amount_parse_decimal_requires_positive() {
        assert_eq!(Amount::parse(dec("0.01")).unwrap().to_string(), "0.01");
        assert_eq!(Amount::parse(dec("0")), Err(MoneyError::NotPositive));
        assert_eq!(Amount::parse(dec("0.00")), Err(MoneyError::NotPositive));
        assert_eq!(Amount::parse(dec("-1")), Err(MoneyError::NotPositive));
        assert_eq!(
            Amount::parse(dec("10.001")),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(
            Amount::parse(dec("1000000000000000")),
            Err(MoneyError::TooLarge)
        );
    }

    /// Numbers as a client sends them, parsed from text: their own digits
    /// decide, never an `f64` approximation of them.
    #[test]
    fn json_number_text_is_exact() {
        let from_text = |body: &str| {
            let value: serde_json::Value = serde_json::from_str(body).unwrap();
            Money::from_json(&value["amount"]).map(|m| m.to_string())
        };
        // f64 would read this as 99999999999999.984375.
        assert_eq!(
            from_text(r#"{"amount": 99999999999999.99}"#),
            Ok("99999999999999.99".into())
        );
        assert_eq!(
            from_text(r#"{"amount": 999999999999999.99}"#),
            Ok("999999999999999.99".into())
        );
        assert_eq!(
            from_text(r#"{"amount": "999999999999999.99"}"#),
            Ok("999999999999999.99".into())
        );
        // f64 would read this as 10.0 and let it through.
        assert_eq!(
            from_text(r#"{"amount": 10.0000000000000001}"#),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(
            from_text(r#"{"amount": "10.0000000000000001"}"#),
            Err(MoneyError::TooManyDecimals)
        );
        // f64 would round this to 1e15 - 0.125, or to 1e15 exactly.
        assert_eq!(
            from_text(r#"{"amount": 999999999999999.999}"#),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(
            from_text(r#"{"amount": 1000000000000000.00}"#),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(from_text(r#"{"amount": 0.01}"#), Ok("0.01".into()));
        assert_eq!(
            from_text(r#"{"amount": 1.00000000000000000000000000001e1}"#),
            Err(MoneyError::TooManyDecimals)
        );
        // Amount's Deserialize reads the same text.
        let amount: Amount = serde_json::from_str("99999999999999.99").unwrap();
        assert_eq!(amount.minor_units(), 9_999_999_999_999_999);
        assert!(serde_json::from_str::<Amount>("10.0000000000000001").is_err());
        assert!(serde_json::from_str::<Amount>("0").is_err());
    }

    #[test]
    fn json_numbers() {
        let ok = |value: serde_json::Value| Money::from_json(&value).map(|m| m.to_string());
        assert_eq!(ok(json!(0)), Ok("0.00".into()));
        assert_eq!(ok(json!(0.0)), Ok("0.00".into()));
        assert_eq!(ok(json!(10)), Ok("10.00".into()));
        assert_eq!(ok(json!(10.5)), Ok("10.50".into()));
        assert_eq!(ok(json!(0.29)), Ok("0.29".into()));
        assert_eq!(ok(json!(1e2)), Ok("100.00".into()));
        assert_eq!(ok(json!(-1)), Err(MoneyError::Negative));
        assert_eq!(ok(json!(-0.5)), Err(MoneyError::Negative));
        assert_eq!(ok(json!(0.001)), Err(MoneyError::TooManyDecimals));
        assert_eq!(ok(json!(10.001)), Err(MoneyError::TooManyDecimals));
        assert_eq!(ok(json!(1e-7)), Err(MoneyError::TooManyDecimals));
        assert_eq!(ok(json!(1e15)), Err(MoneyError::TooLarge));
        assert_eq!(ok(json!(1e300)), Err(MoneyError::TooLarge));
        assert_eq!(ok(json!(u64::MAX)), Err(MoneyError::TooLarge));
        assert_eq!(ok(json!(i64::MIN)), Err(MoneyError::Negative));
    }

    #[test]
    fn json_numbers_from_request_text() {
        // Exponent forms as they arrive in a request body.
        let parsed = |body: &str| Money::from_json(&serde_json::from_str(body).unwrap());
        assert_eq!(parsed("1e2").unwrap().to_string(), "100.00");
        assert_eq!(parsed("1E2").unwrap().to_string(), "100.00");
        assert_eq!(parsed("1.5e1").unwrap().to_string(), "15.00");
        assert_eq!(parsed("10.100").unwrap().to_string(), "10.10");
        assert_eq!(parsed("123456789.12").unwrap().to_string(), "123456789.12");
        assert_eq!(parsed("0.001"), Err(MoneyError::TooManyDecimals));
    }

    #[test]
    fn json_strings() {
        let ok = |value: serde_json::Value| Money::from_json(&value).map(|m| m.to_string());
        assert_eq!(ok(json!("0")), Ok("0.00".into()));
        assert_eq!(ok(json!("0.00")), Ok("0.00".into()));
        assert_eq!(ok(json!("-0")), Ok("0.00".into()));
        assert_eq!(ok(json!("10.5")), Ok("10.50".into()));
        assert_eq!(ok(json!("10.100")), Ok("10.10".into()));
        assert_eq!(ok(json!("007.10")), Ok("7.10".into()));
        assert_eq!(ok(json!("1e2")), Ok("100.00".into()));
        assert_eq!(ok(json!("1E+2")), Ok("100.00".into()));
        assert_eq!(ok(json!("1234e-2")), Ok("12.34".into()));
        assert_eq!(ok(json!("0.5e1")), Ok("5.00".into()));
        assert_eq!(ok(json!(" 10 ")), Ok("10.00".into()));
        assert_eq!(ok(json!("\t10.5\n")), Ok("10.50".into()));
        assert_eq!(
            ok(json!("999999999999999.99")),
            Ok("999999999999999.99".into())
        );
        assert_eq!(
            ok(json!("999999999999999.990000")),
            Ok("999999999999999.99".into())
        );
        assert_eq!(ok(json!("-1")), Err(MoneyError::Negative));
        assert_eq!(ok(json!("0.001")), Err(MoneyError::TooManyDecimals));
        assert_eq!(ok(json!("10.001")), Err(MoneyError::TooManyDecimals));
        assert_eq!(ok(json!("1e-3")), Err(MoneyError::TooManyDecimals));
        assert_eq!(
            ok(json!("1e-99999999999999999999")),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(ok(json!("1000000000000000")), Err(MoneyError::TooLarge));
        assert_eq!(ok(json!("1000000000000000.00")), Err(MoneyError::TooLarge));
        assert_eq!(ok(json!("1e15")), Err(MoneyError::TooLarge));
        assert_eq!(
            ok(json!("1e99999999999999999999")),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(
            ok(json!("99999999999999999999999999999999")),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn never_rounds_beyond_decimal_precision() {
        let tiny = "10.00000000000000000000000000000000001";
        assert_eq!(tiny.parse::<Money>(), Err(MoneyError::TooManyDecimals));
        assert_eq!(
            "0.000000000000000000000000000000000000000000000000000001".parse::<Amount>(),
            Err(MoneyError::TooManyDecimals)
        );
        // Trailing zeros are not extra precision, however many there are.
        assert_eq!(
            money("10.1000000000000000000000000000000000"),
            money("10.10")
        );
    }

    #[test]
    fn not_a_number() {
        for value in [
            json!(true),
            json!(false),
            json!(null),
            json!(""),
            json!("   "),
            json!("abc"),
            json!("NaN"),
            json!("nan"),
            json!("Infinity"),
            json!("-Infinity"),
            json!("inf"),
            json!("0x10"),
            json!("+10"),
            json!(".5"),
            json!("5."),
            json!("1_000"),
            json!("1,000.00"),
            json!("10 USD"),
            json!("1 0"),
            json!("--1"),
            json!("-"),
            json!("e2"),
            json!("1e"),
            json!("1e+"),
            json!("1e2.5"),
            json!("١٠"),
            json!([]),
            json!([10]),
            json!({}),
            json!({"amount": 10}),
            json!({"amount": {"value": "10.00"}}),
        ] {
            assert_eq!(
                Money::from_json(&value),
                Err(MoneyError::NotANumber),
                "{value}"
            );
            assert_eq!(
                Amount::from_json(&value),
                Err(MoneyError::NotANumber),
                "{value}"
            );
        }
    }

    #[test]
    fn amount_from_json() {
        let ok = |value: serde_json::Value| Amount::from_json(&value).map(|a| a.to_string());
        assert_eq!(ok(json!("10.5")), Ok("10.50".into()));
        assert_eq!(ok(json!(10.5)), Ok("10.50".into()));
        assert_eq!(ok(json!(0.01)), Ok("0.01".into()));
        assert_eq!(
            ok(json!("999999999999999.99")),
            Ok("999999999999999.99".into())
        );
        assert_eq!(ok(json!(0)), Err(MoneyError::NotPositive));
        assert_eq!(ok(json!("0.00")), Err(MoneyError::NotPositive));
        assert_eq!(ok(json!("-0")), Err(MoneyError::NotPositive));
        assert_eq!(ok(json!(-1)), Err(MoneyError::NotPositive));
        assert_eq!(ok(json!("-0.001")), Err(MoneyError::TooManyDecimals));
        assert_eq!(ok(json!("1000000000000000.00")), Err(MoneyError::TooLarge));
    }

    #[test]
    fn minor_units() {
        assert_eq!(Money::from_minor_units(0), Ok(Money::ZERO));
        assert_eq!(Money::from_minor_units(1050).unwrap().to_string(), "10.50");
        assert_eq!(
            Money::from_minor_units(99_999_999_999_999_999),
            Ok(Money::MAX)
        );
        assert_eq!(
            Money::from_minor_units(100_000_000_000_000_000),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(Money::from_minor_units(i64::MAX), Err(MoneyError::TooLarge));
        assert_eq!(Money::from_minor_units(-1), Err(MoneyError::Negative));
        assert_eq!(money("10.5").minor_units(), 1050);
        assert_eq!(Amount::from_minor_units(1).unwrap().to_string(), "0.01");
        assert_eq!(Amount::from_minor_units(0), Err(MoneyError::NotPositive));
        assert_eq!(Amount::from_minor_units(-5), Err(MoneyError::NotPositive));
        assert_eq!(
            Amount::from_minor_units(i64::MAX),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(amount("12.34").minor_units(), 1234);
    }

    #[test]
    fn arithmetic() {
        let balance = money("10.00");
        assert_eq!(balance.checked_sub(amount("10.00")), Some(Money::ZERO));
        assert_eq!(balance.checked_sub(amount("10.01")), None);
        assert_eq!(balance.checked_sub(amount("0.01")), Some(money("9.99")));
        assert_eq!(Money::ZERO.checked_sub(amount("0.01")), None);
        assert_eq!(balance.checked_add(amount("0.50")), Some(money("10.50")));
        assert_eq!(Money::MAX.checked_add(amount("0.01")), None);
        assert_eq!(
            money("999999999999999.98").checked_add(amount("0.01")),
            Some(Money::MAX)
        );
        assert_eq!(
            Money::MAX.checked_sub(Amount::try_from(Money::MAX).unwrap()),
            Some(Money::ZERO)
        );
    }

    #[test]
    fn conversions() {
        let a = amount("3.10");
        assert_eq!(a.money(), money("3.1"));
        assert_eq!(Money::from(a), money("3.10"));
        assert_eq!(Amount::try_from(Money::ZERO), Err(MoneyError::NotPositive));
        assert_eq!(a.decimal(), dec("3.10"));
        assert_eq!(a.decimal().scale(), 2);
        assert!(amount("2") < amount("10"));
        assert!(money("0.99") < money("1"));
    }

    #[test]
    fn display_and_serialize_as_two_place_strings() {
        assert_eq!(money("0").to_string(), "0.00");
        assert_eq!(money("10").to_string(), "10.00");
        assert_eq!(amount("1e2").to_string(), "100.00");
        assert_eq!(serde_json::to_value(money("10.5")).unwrap(), json!("10.50"));
        assert_eq!(serde_json::to_value(Money::ZERO).unwrap(), json!("0.00"));
        assert_eq!(serde_json::to_value(amount("7")).unwrap(), json!("7.00"));
        assert_eq!(
            serde_json::to_value(Money::MAX).unwrap(),
            json!("999999999999999.99")
        );
    }

    #[test]
    fn deserialize_follows_the_same_rules() {
        let money_from = |body: &str| serde_json::from_str::<Money>(body);
        let amount_from = |body: &str| serde_json::from_str::<Amount>(body);
        assert_eq!(money_from("10.5").unwrap(), money("10.50"));
        assert_eq!(money_from("\"10.5\"").unwrap(), money("10.50"));
        assert_eq!(money_from("1e2").unwrap(), money("100"));
        assert_eq!(money_from("\"1e2\"").unwrap(), money("100"));
        assert_eq!(money_from("0").unwrap(), Money::ZERO);
        assert_eq!(money_from("\" 10 \"").unwrap(), money("10"));
        assert_eq!(amount_from("12").unwrap(), amount("12"));
        assert_eq!(
            amount_from("-3").unwrap_err().to_string(),
            "must be greater than 0"
        );
        assert_eq!(
            amount_from("0").unwrap_err().to_string(),
            "must be greater than 0"
        );
        assert_eq!(
            money_from("10.001").unwrap_err().to_string(),
            "must have at most 2 decimal places"
        );
        assert_eq!(
            money_from("\"1000000000000000\"").unwrap_err().to_string(),
            "must be at most 999999999999999.99"
        );
        for body in [
            "true",
            "null",
            "\"\"",
            "\"abc\"",
            "\"NaN\"",
            "[]",
            "{}",
            "{\"a\":1}",
        ] {
            assert!(money_from(body).is_err(), "{body}");
            assert!(amount_from(body).is_err(), "{body}");
        }
        assert!(money_from("\"NaN\"")
            .unwrap_err()
            .to_string()
            .contains("decimal number"));
        assert!(money_from("true")
            .unwrap_err()
            .to_string()
            .contains("decimal number"));

        #[derive(Deserialize, Serialize, Debug, PartialEq)]
        struct Purchase {
            amount: Amount,
            balance: Money,
        }
        let purchase: Purchase =
            serde_json::from_value(json!({"amount": 10.5, "balance": "0"})).unwrap();
        assert_eq!(purchase.amount, amount("10.50"));
        assert_eq!(
            serde_json::to_value(&purchase).unwrap(),
            json!({"amount": "10.50", "balance": "0.00"})
        );
        let back: Purchase =
            serde_json::from_value(serde_json::to_value(&purchase).unwrap()).unwrap();
        assert_eq!(back, purchase);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            MoneyError::NotANumber.to_string(),
            "must be a decimal number (JSON number or string)"
        );
        assert_eq!(
            MoneyError::TooManyDecimals.to_string(),
            "must have at most 2 decimal places"
        );
        assert_eq!(
            MoneyError::NotPositive.to_string(),
            "must be greater than 0"
        );
        assert_eq!(MoneyError::Negative.to_string(), "must not be negative");
        assert_eq!(
            MoneyError::TooLarge.to_string(),
            "must be at most 999999999999999.99"
        );
    }

    fn any_money() -> impl Strategy<Value = Money> {
        prop_oneof![0..=10_000_i64, 0..=MAX_MINOR_UNITS]
            .prop_map(|cents| Money::from_minor_units(cents).unwrap())
    }

    fn any_amount() -> impl Strategy<Value = Amount> {
        prop_oneof![1..=10_000_i64, 1..=MAX_MINOR_UNITS]
            .prop_map(|cents| Amount::from_minor_units(cents).unwrap())
    }

    proptest! {
        #[test]
        fn checked_sub_is_some_iff_amount_fits(m in any_money(), a in any_amount()) {
            match m.checked_sub(a) {
                Some(rest) => {
                    prop_assert!(a.money() <= m);
                    prop_assert_eq!(rest.checked_add(a), Some(m));
                }
                None => prop_assert!(a.money() > m),
            }
        }

        #[test]
        fn checked_add_is_some_iff_within_max(m in any_money(), a in any_amount()) {
            let sum = m.minor_units() + a.minor_units();
            prop_assert_eq!(m.checked_add(a).is_some(), sum <= MAX_MINOR_UNITS);
        }

        #[test]
        fn minor_units_round_trip(cents in 0..=MAX_MINOR_UNITS) {
            let m = Money::from_minor_units(cents).unwrap();
            prop_assert_eq!(m.minor_units(), cents);
            prop_assert_eq!(Money::from_minor_units(m.minor_units()), Ok(m));
        }

        #[test]
        fn display_parse_round_trip(m in any_money(), a in any_amount()) {
            prop_assert_eq!(m.to_string().parse::<Money>(), Ok(m));
            prop_assert_eq!(a.to_string().parse::<Amount>(), Ok(a));
            prop_assert_eq!(Money::parse(m.decimal()), Ok(m));
            prop_assert_eq!(
                serde_json::from_value::<Money>(serde_json::to_value(m).unwrap()).unwrap(),
                m
            );
            let text = m.to_string();
            let (_, fraction) = text.split_once('.').unwrap();
            prop_assert_eq!(fraction.len(), 2);
        }

        #[test]
        fn debits_never_exceed_starting_balance(
            start in any_money(),
            debits in proptest::collection::vec(any_amount(), 0..50),
        ) {
            let mut balance = start;
            let mut applied = 0_i64;
            for debit in debits {
                if let Some(rest) = balance.checked_sub(debit) {
                    balance = rest;
                    applied += debit.minor_units();
                }
            }
            prop_assert!(balance >= Money::ZERO);
            prop_assert_eq!(applied + balance.minor_units(), start.minor_units());
        }
    }
}
