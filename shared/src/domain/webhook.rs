//! The PSP webhook's signature and the identity of its events.
//!
//! A request is genuine when `X-PSP-Signature` holds, among its
//! comma-separated values, the lower-case hex HMAC-SHA256 of
//! `<X-PSP-Timestamp text>.<raw body>` under the current or the previous
//! secret (rotation), and the timestamp is within 300 s of now either way
//! (replays of old captures fail). Checks run in the order of the reasons:
//! signature header, timestamp header, timestamp form, skew, HMAC.
//!
//! Upper-case hex is refused, as in the contract ("lower-case hex"): the
//! PSP sends lower case, and one spelling per value keeps the comparison a
//! plain byte comparison.
//!
//! The signature covers the timestamp and the body, not the other headers:
//! so the signed body's `id` and `psp_ref` are the truth. An `X-PSP-Event-Id`
//! or `X-PSP-Ref` that disagrees with them is refused (`header-mismatch`:
//! otherwise a captured `payment.failed` replayed with another payout's
//! reference would fail that payout), and one the body does not back is
//! ignored.

use super::{error::ErrorCode, time::Timestamp};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::{Choice, ConstantTimeEq};

/// Largest accepted |now − timestamp|, in seconds (inclusive).
pub const MAX_SKEW_SECONDS: i64 = 300;

/// A webhook signing secret. Its Debug never shows the value, so it can sit
/// in structs that are logged.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// `None` for an empty secret: it would sign nothing worth trusting.
    pub fn new(value: impl Into<Vec<u8>>) -> Option<WebhookSecret> {
        let value = value.into();
        (!value.is_empty()).then_some(WebhookSecret(value))
    }

    /// The lower-case hex signature of `timestamp.body`, as the PSP sends
    /// it (for the local `psp-event` command and tests).
    pub fn signature_hex(&self, timestamp: &[u8], body: &[u8]) -> String {
        hex::encode(self.sign(timestamp, body))
    }

    fn sign(&self, timestamp: &[u8], body: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(timestamp);
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// The secrets a signature may be made with: during a rotation the PSP may
/// still sign with the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecrets {
    pub current: WebhookSecret,
    pub previous: Option<WebhookSecret>,
}

/// Why a webhook request is refused (401 `INVALID_SIGNATURE`, nothing stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureRefusal {
    SignatureMissing,
    TimestampMissing,
    /// Not digits only.
    TimestampInvalid,
    /// More than 300 s from now, in the past or the future.
    TimestampSkew,
    /// No signature matches any secret (malformed values included).
    HmacMismatch,
    /// `X-PSP-Event-Id` or `X-PSP-Ref` differs from the signed body's field.
    HeaderMismatch,
}

impl SignatureRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureRefusal::SignatureMissing => "signature-missing",
            SignatureRefusal::TimestampMissing => "timestamp-missing",
            SignatureRefusal::TimestampInvalid => "timestamp-invalid",
            SignatureRefusal::TimestampSkew => "timestamp-skew",
            SignatureRefusal::HmacMismatch => "hmac-mismatch",
            SignatureRefusal::HeaderMismatch => "header-mismatch",
        }
    }

    pub fn code(self) -> ErrorCode {
        ErrorCode::InvalidSignature
    }

    /// The error message of the contract; names the reason, nothing else.
    pub fn message(self) -> String {
        format!("invalid signature: {}", self.as_str())
    }
}

impl fmt::Display for SignatureRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a webhook request. `timestamp` and `signature` are the raw header
/// values (absent → `None`; an empty value counts as absent); `body` the raw
/// bytes exactly as received.
pub fn verify_signature(
    timestamp: Option<&[u8]>,
    signature: Option<&[u8]>,
    body: &[u8],
    secrets: &WebhookSecrets,
    now: Timestamp,
) -> Result<(), SignatureRefusal> {
    let signature = signature
        .filter(|s| !s.is_empty())
        .ok_or(SignatureRefusal::SignatureMissing)?;
    let timestamp = timestamp
        .filter(|t| !t.is_empty())
        .ok_or(SignatureRefusal::TimestampMissing)?;
    if !timestamp.iter().all(u8::is_ascii_digit) {
        return Err(SignatureRefusal::TimestampInvalid);
    }
    // Digits only, so the only parse failure is a number too large for u64:
    // certainly more than 300 s away.
    let seconds = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or(SignatureRefusal::TimestampSkew)?;
    let skew = i128::from(now.unix_seconds()) - i128::from(seconds);
    if skew.abs() > i128::from(MAX_SKEW_SECONDS) {
        return Err(SignatureRefusal::TimestampSkew);
    }

    let expected: Vec<[u8; 32]> = std::iter::once(&secrets.current)
        .chain(secrets.previous.as_ref())
        .map(|secret| secret.sign(timestamp, body))
        .collect();
    // Every candidate against every secret, without stopping early: the
    // time taken says nothing about which part matched.
    let mut matched = Choice::from(0);
    for candidate in signature.split(|&b| b == b',') {
        let Some(candidate) = decode_lower_hex(candidate.trim_ascii()) else {
            continue;
        };
        for mac in &expected {
            matched |= candidate.ct_eq(mac);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureRefusal::HmacMismatch)
    }
}

/// 64 lower-case hex digits → 32 bytes; anything else → `None`.
fn decode_lower_hex(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

/// Who an event is and what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIdentity {
    pub event_id: String,
    pub psp_ref: Option<String>,
    /// `None` when the body names no type: recorded, then ignored.
    pub event_type: Option<String>,
}

/// Reads an event's identity from the signed body:
/// - event id: body `id`, else `event_id`, else the SHA-256 hex of the raw
///   body (a PSP resending the same bytes is then still recognised as a
///   duplicate);
/// - psp_ref: body `psp_ref`, else `payment_reference`;
/// - type: body `type`, else `event`.
///
/// The headers `X-PSP-Event-Id` and `X-PSP-Ref` are not signed: one that
/// differs from the body's value is refused (`HeaderMismatch`); one the
/// body has no value for is not trusted, and ignored. Empty values are
/// skipped as if absent. Body ids may be JSON strings or integers (PSPs use
/// both); refs and types must be strings.
pub fn identify_event(
    event_id_header: Option<&str>,
    psp_ref_header: Option<&str>,
    body: &Map<String, Value>,
    raw_body: &[u8],
) -> Result<EventIdentity, SignatureRefusal> {
    let id_field = |name: &str| match body.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        Some(Value::Number(number)) if number.is_u64() || number.is_i64() => {
            Some(number.to_string())
        }
        _ => None,
    };
    let text_field = |name: &str| match body.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        _ => None,
    };
    let body_id = id_field("id").or_else(|| id_field("event_id"));
    let psp_ref = text_field("psp_ref").or_else(|| text_field("payment_reference"));
    backed_by_body(event_id_header, body_id.as_deref())?;
    backed_by_body(psp_ref_header, psp_ref.as_deref())?;
    Ok(EventIdentity {
        event_id: body_id.unwrap_or_else(|| hex::encode(Sha256::digest(raw_body))),
        psp_ref,
        event_type: text_field("type").or_else(|| text_field("event")),
    })
}

/// An unsigned header may repeat the signed body's value, never change it.
fn backed_by_body(header: Option<&str>, body: Option<&str>) -> Result<(), SignatureRefusal> {
    match (header.filter(|h| !h.is_empty()), body) {
        (Some(header), Some(body)) if header != body => Err(SignatureRefusal::HeaderMismatch),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CURRENT: &str = "whsec_current_0123456789abcdef0123456789";
    const PREVIOUS: &str = "whsec_previous_0123456789abcdef012345678";
    const NOW: i64 = 1_900_000_000;
    const BODY: &[u8] = br#"{"type":"payment.settled","psp_ref":"PSP-1"}"#;

    fn now() -> Timestamp {
        Timestamp::parse("2030-03-17T17:46:40Z").unwrap()
    }

    fn secrets(previous: bool) -> WebhookSecrets {
        WebhookSecrets {
            current: WebhookSecret::new(CURRENT).unwrap(),
            previous: previous.then(|| WebhookSecret::new(PREVIOUS).unwrap()),
        }
    }

    /// An independent signer, as the PSP computes it.
    fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(
        ts: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
        previous: bool,
    ) -> Result<(), SignatureRefusal> {
        verify_signature(
            ts.map(str::as_bytes),
            sig.map(str::as_bytes),
            body,
            &secrets(previous),
            now(),
        )
    }

    #[test]
    fn the_test_clock_is_where_we_think() {
        assert_eq!(now().unix_seconds(), NOW);
    }

    #[test]
    fn a_current_signature_passes() {
        let ts = NOW.to_string();
        let sig = sign(CURRENT, &ts, BODY);
        assert_eq!(verify(Some(&ts), Some(&sig), BODY, false), Ok(()));
        assert_eq!(verify(Some(&ts), Some(&sig), BODY, true), Ok(()));
    }

    #[test]
    fn the_previous_secret_passes_only_while_configured() {
        let ts = NOW.to_string();
        let old = sign(PREVIOUS, &ts, BODY);
        assert_eq!(verify(Some(&ts), Some(&old), BODY, true), Ok(()));
        assert_eq!(
            verify(Some(&ts), Some(&old), BODY, false),
            Err(SignatureRefusal::HmacMismatch)
        );
    }

    #[test]
    fn any_one_of_several_signatures_may_match() {
        let ts = NOW.to_string();
        let good = sign(CURRENT, &ts, BODY);
        let stale = sign("some-retired-secret", &ts, BODY);
        for header in [
            format!("{stale},{good}"),
            format!("{good},{stale}"),
            format!("{stale}, {good}"),
            format!("junk,{good},"),
            format!("{},{good}", good.to_uppercase()),
        ] {
            assert_eq!(
                verify(Some(&ts), Some(&header), BODY, false),
                Ok(()),
                "{header}"
            );
        }
        // During a rotation the PSP may send both.
        let both = format!("{},{}", sign(PREVIOUS, &ts, BODY), good);
        assert_eq!(verify(Some(&ts), Some(&both), BODY, true), Ok(()));
        assert_eq!(
            verify(Some(&ts), Some(&format!("{stale},{stale}")), BODY, false),
            Err(SignatureRefusal::HmacMismatch)
        );
    }

    #[test]
    fn anything_else_signed_is_a_mismatch() {
        let ts = NOW.to_string();
        let sig = sign(CURRENT, &ts, BODY);
        let cases = [
            // Another body.
            (
                ts.clone(),
                sig.clone(),
                br#"{"type":"payment.failed"}"#.as_slice(),
            ),
            // The same instant, other text: the signed string is the header's.
            (format!("0{ts}"), sig.clone(), BODY),
            (ts.clone(), sig.to_uppercase(), BODY),
            (ts.clone(), sig[..63].to_string(), BODY),
            (ts.clone(), format!("{sig}0"), BODY),
            (ts.clone(), format!("sha256={sig}"), BODY),
            (ts.clone(), ",".into(), BODY),
            (ts.clone(), "zz".into(), BODY),
            (
                ts.clone(),
                sign(CURRENT, &(NOW - 1).to_string(), BODY),
                BODY,
            ),
        ];
        for (ts, sig, body) in cases {
            assert_eq!(
                verify(Some(&ts), Some(&sig), body, true),
                Err(SignatureRefusal::HmacMismatch),
                "{ts} {sig}"
            );
        }
    }

    #[test]
    fn missing_headers_come_first_signature_before_timestamp() {
        let ts = NOW.to_string();
        let sig = sign(CURRENT, &ts, BODY);
        let cases = [
            (None, None, SignatureRefusal::SignatureMissing),
            (Some("abc"), None, SignatureRefusal::SignatureMissing),
            (
                Some(ts.as_str()),
                Some(""),
                SignatureRefusal::SignatureMissing,
            ),
            (None, Some(sig.as_str()), SignatureRefusal::TimestampMissing),
            (
                Some(""),
                Some(sig.as_str()),
                SignatureRefusal::TimestampMissing,
            ),
            (
                Some("abc"),
                Some("nonsense"),
                SignatureRefusal::TimestampInvalid,
            ),
        ];
        for (ts, sig, reason) in cases {
            assert_eq!(verify(ts, sig, BODY, false), Err(reason), "{ts:?} {sig:?}");
        }
    }

    #[test]
    fn timestamps_are_digits_only() {
        for ts in [
            " 1900000000",
            "1900000000 ",
            "+1900000000",
            "-1900000000",
            "1900000000.0",
            "1.9e9",
            "1_900_000_000",
            "0x713FB300",
            "nan",
            "inf",
            "１９",
        ] {
            let sig = sign(CURRENT, ts, BODY);
            assert_eq!(
                verify(Some(ts), Some(&sig), BODY, false),
                Err(SignatureRefusal::TimestampInvalid),
                "{ts:?}"
            );
        }
        let not_utf8 = verify_signature(Some(b"19\xff"), Some(b"00"), BODY, &secrets(false), now());
        assert_eq!(not_utf8, Err(SignatureRefusal::TimestampInvalid));
    }

    #[test]
    fn skew_is_300_seconds_either_way_inclusive() {
        for (offset, ok) in [
            (0, true),
            (300, true),
            (-300, true),
            (301, false),
            (-301, false),
            (86_400, false),
        ] {
            let ts = (NOW + offset).to_string();
            let sig = sign(CURRENT, &ts, BODY);
            let expected = if ok {
                Ok(())
            } else {
                Err(SignatureRefusal::TimestampSkew)
            };
            assert_eq!(
                verify(Some(&ts), Some(&sig), BODY, false),
                expected,
                "{offset}"
            );
        }
        for ts in ["0", "99999999999999999999999999", "18446744073709551615"] {
            let sig = sign(CURRENT, ts, BODY);
            assert_eq!(
                verify(Some(ts), Some(&sig), BODY, false),
                Err(SignatureRefusal::TimestampSkew),
                "{ts}"
            );
        }
        // Skew is checked before the HMAC: a stale capture says so.
        let old = (NOW - 301).to_string();
        assert_eq!(
            verify(Some(&old), Some("bad"), BODY, false),
            Err(SignatureRefusal::TimestampSkew)
        );
    }

    #[test]
    fn leading_zeros_are_the_same_instant_but_signed_as_sent() {
        let ts = format!("00{NOW}");
        let sig = sign(CURRENT, &ts, BODY);
        assert_eq!(verify(Some(&ts), Some(&sig), BODY, false), Ok(()));
    }

    #[test]
    fn reasons_have_the_contract_texts() {
        let cases = [
            (SignatureRefusal::SignatureMissing, "signature-missing"),
            (SignatureRefusal::TimestampMissing, "timestamp-missing"),
            (SignatureRefusal::TimestampInvalid, "timestamp-invalid"),
            (SignatureRefusal::TimestampSkew, "timestamp-skew"),
            (SignatureRefusal::HmacMismatch, "hmac-mismatch"),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.as_str(), text);
            assert_eq!(reason.to_string(), text);
            assert_eq!(reason.message(), format!("invalid signature: {text}"));
            assert_eq!(reason.code(), ErrorCode::InvalidSignature);
            assert_eq!(reason.code().status(), 401);
        }
    }

    #[test]
    fn signature_hex_is_what_the_psp_sends() {
        let ts = NOW.to_string();
        let secret = WebhookSecret::new(CURRENT).unwrap();
        let sig = secret.signature_hex(ts.as_bytes(), BODY);
        assert_eq!(sig, sign(CURRENT, &ts, BODY));
        assert_eq!(verify(Some(&ts), Some(&sig), BODY, false), Ok(()));
    }

    #[test]
    fn secrets_never_show() {
        let all = secrets(true);
        let debug = format!("{all:?} {:#?}", all.current);
        assert!(!debug.contains(CURRENT), "{debug}");
        assert!(!debug.contains(PREVIOUS), "{debug}");
        assert!(!debug.contains("whsec"), "{debug}");
        assert!(debug.contains("WebhookSecret(***)"));
        assert_eq!(WebhookSecret::new(""), None);
        assert_eq!(WebhookSecret::new(Vec::new()), None);
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn event_id_is_the_body_id_then_event_id_then_body_hash() {
        let raw = br#"{"anything":1}"#;
        let full = object(json!({"id": "evt_body", "event_id": "evt_alt"}));
        let cases = [
            // A header that repeats the body's id changes nothing.
            (Some("evt_body"), full.clone(), "evt_body"),
            (Some(""), full.clone(), "evt_body"),
            (None, full, "evt_body"),
            (
                None,
                object(json!({"id": "", "event_id": "evt_alt"})),
                "evt_alt",
            ),
            (
                Some("evt_alt"),
                object(json!({"event_id": "evt_alt"})),
                "evt_alt",
            ),
            (None, object(json!({"id": 42})), "42"),
            (Some("42"), object(json!({"id": 42})), "42"),
            (None, object(json!({"id": null, "event_id": 7})), "7"),
            (None, object(json!({"id": 1.5, "event_id": true})), "hash"),
            (None, object(json!({})), "hash"),
            // A header alone is not signed: not trusted, ignored.
            (Some("evt_header"), object(json!({})), "hash"),
        ];
        let hash = hex::encode(Sha256::digest(raw));
        assert_eq!(hash.len(), 64);
        for (header, body, expected) in cases {
            let expected = if expected == "hash" {
                hash.as_str()
            } else {
                expected
            };
            let identity = identify_event(header, None, &body, raw).unwrap();
            assert_eq!(identity.event_id, expected, "{header:?} {body:?}");
        }
    }

    #[test]
    fn a_header_that_differs_from_the_signed_body_is_refused() {
        let body = object(json!({"id": "evt_1", "psp_ref": "PSP-mine", "type": "payment.failed"}));
        for (event_id, psp_ref) in [
            (Some("evt_fresh"), None),
            (None, Some("PSP-someone-else")),
            (Some("evt_fresh"), Some("PSP-someone-else")),
            (Some("evt_1"), Some("PSP-someone-else")),
            (Some("EVT_1"), Some("PSP-mine")),
        ] {
            assert_eq!(
                identify_event(event_id, psp_ref, &body, b"{}"),
                Err(SignatureRefusal::HeaderMismatch),
                "{event_id:?} {psp_ref:?}"
            );
        }
        let alt = object(json!({"event_id": 9, "payment_reference": "PSP-alt"}));
        assert_eq!(
            identify_event(Some("10"), None, &alt, b"{}"),
            Err(SignatureRefusal::HeaderMismatch)
        );
        assert_eq!(
            identify_event(None, Some("PSP-body"), &alt, b"{}"),
            Err(SignatureRefusal::HeaderMismatch)
        );
        let refusal = SignatureRefusal::HeaderMismatch;
        assert_eq!(refusal.message(), "invalid signature: header-mismatch");
        assert_eq!(refusal.code(), ErrorCode::InvalidSignature);
    }

    #[test]
    fn psp_ref_and_type_have_their_fallbacks() {
        let body = object(json!({
            "psp_ref": "PSP-body",
            "payment_reference": "PSP-alt",
            "type": "payment.failed",
            "event": "payment.settled",
        }));
        let identity = identify_event(None, Some("PSP-body"), &body, b"").unwrap();
        assert_eq!(identity.psp_ref.as_deref(), Some("PSP-body"));
        assert_eq!(identity.event_type.as_deref(), Some("payment.failed"));

        let identity = identify_event(None, Some(""), &body, b"").unwrap();
        assert_eq!(identity.psp_ref.as_deref(), Some("PSP-body"));

        let body = object(
            json!({"psp_ref": 12, "payment_reference": "PSP-alt", "event": "payment_failed"}),
        );
        let identity = identify_event(None, None, &body, b"").unwrap();
        assert_eq!(identity.psp_ref.as_deref(), Some("PSP-alt"));
        assert_eq!(identity.event_type.as_deref(), Some("payment_failed"));

        // A reference only in the header is not signed: no reference.
        let identity =
            identify_event(None, Some("PSP-header"), &object(json!({"type": ""})), b"").unwrap();
        assert_eq!(identity.psp_ref, None);
        assert_eq!(identity.event_type, None);
    }
}
