//! Instants as the API exchanges them: RFC 3339 in, UTC with `Z` out.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, SubsecRound, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Canonical text form: fixed width, UTC, always six fractional digits.
const CANONICAL_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Years the canonical form can hold at fixed width (and so sort correctly).
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// An instant in UTC with microsecond precision.
///
/// Its text form (`2026-11-26T19:17:51.123456Z`) is fixed width so that
/// storage can compare timestamps as strings in DynamoDB conditions: lexical
/// order is time order. Sub-microsecond digits are truncated on construction
/// so that text → `Timestamp` → text is lossless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// Why a timestamp was refused. Display follows a field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    /// Not an RFC 3339 date-time, or not a real calendar instant.
    Malformed,
    /// A valid instant whose UTC year is outside 1970..=9999.
    OutOfRange,
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "must be an RFC 3339 timestamp, e.g. 2026-12-31T23:59:59Z",
            Self::OutOfRange => "must be between years 1970 and 9999 (UTC)",
        })
    }
}

impl std::error::Error for TimeError {}

impl Timestamp {
    pub fn now() -> Timestamp {
        Self::from_datetime(Utc::now())
    }

    /// Truncates to microseconds. The year is not checked: callers pass
    /// instants derived from the clock or from parsed timestamps.
    pub fn from_datetime(datetime: DateTime<Utc>) -> Timestamp {
        Timestamp(datetime.trunc_subsecs(6))
    }

    pub fn datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Seconds later (or earlier if negative); saturates at chrono's limits
    /// rather than panicking on absurd inputs.
    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        let moved =
            TimeDelta::try_seconds(seconds).and_then(|delta| self.0.checked_add_signed(delta));
        Timestamp(moved.unwrap_or(if seconds < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        }))
    }

    pub fn unix_seconds(&self) -> i64 {
        self.0.timestamp()
    }

    /// Accepts an RFC 3339 date-time with an offset (`Z`, `+02:00`; converted
    /// to UTC) or without one (read as UTC), fractional seconds optional.
    /// The separator must be `T` (or `t`); the space RFC 3339 tolerates is
    /// refused, as are date-only values, leap seconds and UTC years outside
    /// 1970..=9999. Digits beyond microseconds are truncated.
    pub fn parse(input: &str) -> Result<Timestamp, TimeError> {
        let bytes = input.as_bytes();
        if !input.is_ascii() || bytes.len() < 19 || !matches!(bytes[10], b'T' | b't') {
            return Err(TimeError::Malformed);
        }
        let fraction_end = match bytes[19..].split_first() {
            Some((b'.', rest)) => 20 + rest.iter().take_while(|b| b.is_ascii_digit()).count(),
            _ => 19,
        };
        let with_offset = if fraction_end == bytes.len() {
            format!("{input}Z")
        } else {
            input.to_owned()
        };
        let parsed =
            DateTime::parse_from_rfc3339(&with_offset).map_err(|_| TimeError::Malformed)?;
        if parsed.nanosecond() >= 1_000_000_000 {
            return Err(TimeError::Malformed); // leap second
        }
        let utc = parsed.with_timezone(&Utc);
        if !YEARS.contains(&utc.year()) {
            return Err(TimeError::OutOfRange);
        }
        Ok(Self::from_datetime(utc))
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;

    fn from_str(input: &str) -> Result<Timestamp, TimeError> {
        Self::parse(input)
    }
}

/// The canonical form, e.g. `2026-11-26T19:17:51.123456Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        // Digit by digit into a buffer: chrono's `format` parses its pattern
        // on every call, and `write!`'s padding machinery is most of the
        // rest; a purchase writes a dozen timestamps. Years outside four
        // digits and leap seconds keep chrono's own rendering.
        if !YEARS.contains(&t.year()) || t.nanosecond() >= 1_000_000_000 {
            return write!(f, "{}", t.format(CANONICAL_FORMAT));
        }
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        for (range, value) in [
            (0..4, t.year().unsigned_abs()),
            (5..7, t.month()),
            (8..10, t.day()),
            (11..13, t.hour()),
            (14..16, t.minute()),
            (17..19, t.second()),
            (20..26, t.nanosecond() / 1_000),
        ] {
            decimal_digits(&mut text[range], value);
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// Writes the last `out.len()` decimal digits of `value` into `out`.
fn decimal_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn canonical(input: &str) -> String {
        Timestamp::parse(input).unwrap().to_string()
    }

    #[test]
    fn parses_utc_and_formats_canonically() {
        assert_eq!(
            canonical("2026-12-31T23:59:59Z"),
            "2026-12-31T23:59:59.000000Z"
        );
        assert_eq!(
            canonical("2026-11-26T19:17:51.123456Z"),
            "2026-11-26T19:17:51.123456Z"
        );
        assert_eq!(
            canonical("2026-11-26T19:17:51.1Z"),
            "2026-11-26T19:17:51.100000Z"
        );
        assert_eq!(
            canonical("2026-11-26t19:17:51z"),
            "2026-11-26T19:17:51.000000Z"
        );
        assert_eq!(
            canonical("1970-01-01T00:00:00Z"),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            canonical("9999-12-31T23:59:59.999999Z"),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            canonical("2024-02-29T12:00:00Z"),
            "2024-02-29T12:00:00.000000Z"
        );
    }

    #[test]
    fn converts_offsets_to_utc() {
        assert_eq!(
            canonical("2026-12-01T10:00:00+02:00"),
            "2026-12-01T08:00:00.000000Z"
        );
        assert_eq!(
            canonical("2026-12-01T10:00:00-05:30"),
            "2026-12-01T15:30:00.000000Z"
        );
        assert_eq!(
            canonical("2026-12-31T23:30:00-01:00"),
            "2027-01-01T00:30:00.000000Z"
        );
        assert_eq!(
            canonical("2026-12-01T10:00:00+00:00"),
            "2026-12-01T10:00:00.000000Z"
        );
        assert_eq!(
            canonical("2026-12-01T10:00:00.5-00:00"),
            "2026-12-01T10:00:00.500000Z"
        );
        assert_eq!(
            Timestamp::parse("2026-12-01T10:00:00+02:00"),
            Timestamp::parse("2026-12-01T08:00:00Z")
        );
    }

    #[test]
    fn no_offset_means_utc() {
        assert_eq!(
            canonical("2026-12-01T10:00:00"),
            "2026-12-01T10:00:00.000000Z"
        );
        assert_eq!(
            canonical("2026-12-01T10:00:00.25"),
            "2026-12-01T10:00:00.250000Z"
        );
        assert_eq!(
            canonical("2026-12-01t10:00:00"),
            "2026-12-01T10:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::parse("2026-12-01T10:00:00"),
            Timestamp::parse("2026-12-01T10:00:00Z")
        );
    }

    #[test]
    fn truncates_below_microseconds() {
        assert_eq!(
            canonical("2026-12-01T10:00:00.1234569Z"),
            "2026-12-01T10:00:00.123456Z"
        );
        assert_eq!(
            canonical("2026-12-01T10:00:00.999999999"),
            "2026-12-01T10:00:00.999999Z"
        );
        let precise = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
            + TimeDelta::nanoseconds(123_456_789);
        let timestamp = Timestamp::from_datetime(precise);
        assert_eq!(timestamp.to_string(), "2026-01-02T03:04:05.123456Z");
        assert_eq!(timestamp.datetime().nanosecond(), 123_456_000);
        assert_eq!(Timestamp::now().datetime().nanosecond() % 1_000, 0);
    }

    #[test]
    fn refuses_malformed() {
        for input in [
            "",
            "garbage",
            "2026-12-01",
            "2026-12-01T10:00",
            "2026-12-01 10:00:00Z",
            "2026-12-01 10:00:00",
            " 2026-12-01T10:00:00Z",
            "2026-12-01T10:00:00Z ",
            "2026-12-01T10:00:00.Z",
            "2026-12-01T10:00:00.",
            "2026-12-01T10:00:00+0200",
            "2026-12-01T10:00:00+02",
            "2026-12-01T10:00:00 +02:00",
            "2026-12-01T10:00:00\u{2212}02:00",
            "2026-12-01T10:00:00UTC",
            "2026-13-01T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2025-02-29T10:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:60:00Z",
            "2016-12-31T23:59:60Z",
            "26-12-01T10:00:00Z",
            "+2026-12-01T10:00:00Z",
            "12026-12-01T10:00:00Z",
            "2026/12/01T10:00:00Z",
            "1764583200",
        ] {
            assert_eq!(
                Timestamp::parse(input),
                Err(TimeError::Malformed),
                "{input:?}"
            );
        }
        assert_eq!(
            TimeError::Malformed.to_string(),
            "must be an RFC 3339 timestamp, e.g. 2026-12-31T23:59:59Z"
        );
    }

    #[test]
    fn refuses_years_out_of_range() {
        for input in [
            "1969-12-31T23:59:59.999999Z",
            "0000-01-01T00:00:00Z",
            "1970-01-01T00:30:00+01:00",
            "9999-12-31T23:00:00-02:00",
        ] {
            assert_eq!(
                Timestamp::parse(input),
                Err(TimeError::OutOfRange),
                "{input:?}"
            );
        }
        assert_eq!(
            TimeError::OutOfRange.to_string(),
            "must be between years 1970 and 9999 (UTC)"
        );
    }

    #[test]
    fn arithmetic_and_accessors() {
        let start = Timestamp::parse("2026-12-31T23:59:30Z").unwrap();
        assert_eq!(
            start.plus_seconds(45).to_string(),
            "2027-01-01T00:00:15.000000Z"
        );
        assert_eq!(
            start.plus_seconds(-30).to_string(),
            "2026-12-31T23:59:00.000000Z"
        );
        assert_eq!(start.plus_seconds(0), start);
        assert_eq!(
            start.plus_seconds(i64::MAX).datetime(),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            start.plus_seconds(i64::MIN).datetime(),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(start.unix_seconds(), 1_798_761_570);
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:00Z")
                .unwrap()
                .unix_seconds(),
            0
        );
        assert!(start < start.plus_seconds(1));
        let now = Timestamp::now();
        assert!(now.datetime().year() >= 2024);
    }

    #[test]
    fn serde_round_trip() {
        let timestamp = Timestamp::parse("2026-11-26T21:17:51.123456+02:00").unwrap();
        let json = serde_json::to_value(timestamp).unwrap();
        assert_eq!(json, serde_json::json!("2026-11-26T19:17:51.123456Z"));
        assert_eq!(
            serde_json::from_value::<Timestamp>(json).unwrap(),
            timestamp
        );
        assert_eq!(
            serde_json::from_str::<Timestamp>("\"2026-12-01T10:00:00\"")
                .unwrap()
                .to_string(),
            "2026-12-01T10:00:00.000000Z"
        );
        let error = serde_json::from_str::<Timestamp>("\"2026-12-01\"").unwrap_err();
        assert!(error.to_string().contains("RFC 3339"), "{error}");
        assert!(serde_json::from_str::<Timestamp>("1764583200").is_err());
        assert!(serde_json::from_str::<Timestamp>("null").is_err());
        assert_eq!(
            "2026-12-01T10:00:00Z".parse::<Timestamp>(),
            Timestamp::parse("2026-12-01T10:00:00Z")
        );
    }

    /// Microseconds since the epoch spanning 1970-01-01 to 9999-12-31T23:59:59.999999.
    fn any_timestamp() -> impl Strategy<Value = Timestamp> {
        let last = Utc
            .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
            .unwrap()
            .timestamp_micros()
            + 999_999;
        (0..=last).prop_map(|micros| {
            Timestamp::from_datetime(DateTime::from_timestamp_micros(micros).unwrap())
        })
    }

    proptest! {
        #[test]
        fn lexical_order_is_chronological_order(a in any_timestamp(), b in any_timestamp()) {
            let (text_a, text_b) = (a.to_string(), b.to_string());
            prop_assert_eq!(text_a.len(), 27);
            prop_assert_eq!(text_a.cmp(&text_b), a.cmp(&b));
        }

        #[test]
        fn text_is_the_canonical_format(t in any_timestamp()) {
            prop_assert_eq!(t.to_string(), t.datetime().format(CANONICAL_FORMAT).to_string());
        }

        #[test]
        fn text_round_trip_is_lossless(t in any_timestamp()) {
            prop_assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
        }

        #[test]
        fn nearby_instants_keep_lexical_order(t in any_timestamp(), micros in 1..=2_000_000_i64) {
            let later = t.datetime() + TimeDelta::microseconds(micros);
            prop_assume!(later.year() <= 9999);
            let later = Timestamp::from_datetime(later);
            prop_assert!(t.to_string() < later.to_string());
        }
    }
}
