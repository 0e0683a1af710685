//! Proof rules: what the server read from an uploaded file (`Evidence`), judged
//! against the milestone's terms. `judge_photo` decides approve, review or
//! refuse; the handler persists what it says.
//!
//! The server, not the client, is the source of the capture time and place:
//! client `metadata` is read for one key only, `source`, and it can send a
//! proof to review, never approve it nor change a refusal. (The prototype
//! trusted client-typed `exif_timestamp`/`gps_lat`/`gps_lng`; nothing here
//! looks at those keys.)
//!
//! Order of the checks, first match wins:
//! 1. old clients' body, no server-read upload → review `UNVERIFIED_UPLOAD`
//!    (whatever the milestone's type);
//! 2. milestone not PHOTO (case-insensitive) → review `MANUAL_REVIEW`; the
//!    file's EXIF is not consulted, so a PDF or an image without EXIF is fine;
//! 3. refusals, about the file: unreadable image or malformed EXIF →
//!    `INVALID_IMAGE`; no capture time → `MISSING_EXIF_TIMESTAMP`; older than
//!    120 minutes → `STALE_TIMESTAMP`; more than 2 minutes ahead →
//!    `FUTURE_TIMESTAMP`; a geofence and a position outside it →
//!    `GEOFENCE_VIOLATION`;
//! 4. reviews: a geofence and no position in the file → `GPS_MISSING`; then
//!    client `metadata.source` present and not `app`/`camera` →
//!    `UNTRUSTED_SOURCE`;
//! 5. otherwise approve.
//!
//! Refusals come before reviews: a reviewer should never be asked to look at a
//! photo the rules already refuse. Bounds are inclusive: exactly 120 minutes
//! old, exactly 2 minutes ahead and exactly on the radius all pass.

use std::fmt;

use chrono::TimeDelta;
use serde::Serialize;
use serde_json::Value;

use super::{
    error::ErrorCode,
    geo::{GeoPoint, Geofence},
    time::Timestamp,
};

/// The `proof_type` (compared case-insensitively) whose proofs are checked.
pub const PHOTO: &str = "PHOTO";

/// The oldest a photo may be: 120 minutes (inclusive).
pub const MAX_AGE: TimeDelta = TimeDelta::minutes(120);

/// How far ahead of the server's clock a capture time may be: 2 minutes
/// (inclusive), for clock skew.
pub const MAX_AHEAD: TimeDelta = TimeDelta::minutes(2);

/// What the server itself read from the file's EXIF block. Either part may be
/// missing; whether that matters is for `judge_photo` to say.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evidence {
    /// The capture time, in UTC.
    pub taken_at: Option<Timestamp>,
    /// Where the camera was, from the GPS block.
    pub position: Option<GeoPoint>,
}

/// The file is not a readable image of the declared kind, or its EXIF block is
/// malformed. `reason` is for logs, never for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidImage {
    reason: &'static str,
}

impl InvalidImage {
    pub fn new(reason: &'static str) -> InvalidImage {
        InvalidImage { reason }
    }

    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid image: {}", self.reason)
    }
}

impl std::error::Error for InvalidImage {}

/// What a milestone asks of its proof.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotoTerms<'a> {
    pub proof_type: &'a str,
    pub geofence: Option<Geofence>,
}

impl PhotoTerms<'_> {
    /// PHOTO milestones (`proof_type` "PHOTO", any case) have their file's
    /// EXIF checked; the others always go to a person.
    pub fn is_photo(&self) -> bool {
        self.proof_type.eq_ignore_ascii_case(PHOTO)
    }
}

/// What the server knows about the proof's file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FileEvidence {
    /// Old clients' body (`storage_url`, no `upload_id`): the server never
    /// read the file, so nothing in it can be trusted.
    Unverified,
    /// The server read the uploaded bytes (`exif::read_evidence`). Only
    /// consulted for PHOTO milestones: for the others a handler that did not
    /// look may pass `Read(Ok(Evidence::default()))`.
    Read(Result<Evidence, InvalidImage>),
}

/// The proof's `evidence` on the wire: `{taken_at, gps_lat, gps_lng, distance_m}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PhotoEvidence {
    pub taken_at: Timestamp,
    pub gps_lat: Option<f64>,
    pub gps_lng: Option<f64>,
    /// Distance from the geofence's centre, in metres; null without a
    /// geofence or without a position.
    pub distance_m: Option<f64>,
}

/// Why a proof goes to a person instead of being approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReviewReason {
    /// The milestone has a geofence and the file has no GPS position.
    GpsMissing,
    /// Client `metadata.source` is present and not `app` or `camera`.
    UntrustedSource,
    /// The milestone is not PHOTO: a person judges the file.
    ManualReview,
    /// Old clients' body: the server never read the file.
    UnverifiedUpload,
}

impl ReviewReason {
    pub const ALL: [ReviewReason; 4] = [
        ReviewReason::GpsMissing,
        ReviewReason::UntrustedSource,
        ReviewReason::ManualReview,
        ReviewReason::UnverifiedUpload,
    ];

    pub fn parse(text: &str) -> Option<ReviewReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewReason::GpsMissing => "GPS_MISSING",
            ReviewReason::UntrustedSource => "UNTRUSTED_SOURCE",
            ReviewReason::ManualReview => "MANUAL_REVIEW",
            ReviewReason::UnverifiedUpload => "UNVERIFIED_UPLOAD",
        }
    }
}

impl fmt::Display for ReviewReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a photo proof is refused (422). A refusal stores nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProofRefusal {
    InvalidImage,
    MissingExifTimestamp,
    StaleTimestamp { taken_at: Timestamp },
    FutureTimestamp { taken_at: Timestamp },
    GeofenceViolation { distance_m: f64, radius_m: f64 },
}

impl ProofRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            ProofRefusal::InvalidImage => ErrorCode::InvalidImage,
            ProofRefusal::MissingExifTimestamp => ErrorCode::MissingExifTimestamp,
            ProofRefusal::StaleTimestamp { .. } => ErrorCode::StaleTimestamp,
            ProofRefusal::FutureTimestamp { .. } => ErrorCode::FutureTimestamp,
            ProofRefusal::GeofenceViolation { .. } => ErrorCode::GeofenceViolation,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ProofRefusal::InvalidImage => {
                "The file is not a readable image, or its EXIF data is malformed."
            }
            ProofRefusal::MissingExifTimestamp => {
                "The photo's EXIF data has no capture time (GPS time stamp or DateTimeOriginal)."
            }
            ProofRefusal::StaleTimestamp { .. } => "The photo was taken more than 120 minutes ago.",
            ProofRefusal::FutureTimestamp { .. } => {
                "The photo's capture time is more than 2 minutes in the future."
            }
            ProofRefusal::GeofenceViolation { .. } => {
                "The photo was taken outside the milestone's geofence."
            }
        }
    }

    /// `details` of the error body: the capture time for the time refusals,
    /// the distance and the radius (metres) for a geofence violation.
    pub fn details(self) -> Option<Value> {
        match self {
            ProofRefusal::InvalidImage | ProofRefusal::MissingExifTimestamp => None,
            ProofRefusal::StaleTimestamp { taken_at }
            | ProofRefusal::FutureTimestamp { taken_at } => {
                Some(serde_json::json!({ "taken_at": taken_at }))
            }
            ProofRefusal::GeofenceViolation {
                distance_m,
                radius_m,
            } => Some(serde_json::json!({ "distance_m": distance_m, "radius_m": radius_m })),
        }
    }
}

/// The decision on a submitted proof.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Every rule passed: proof APPROVED, milestone paid.
    Approve(PhotoEvidence),
    /// Proof PENDING, milestone PENDING_REVIEW. `evidence` is what the server
    /// read, when it read a capture time.
    Review {
        reason: ReviewReason,
        evidence: Option<PhotoEvidence>,
    },
    /// 422; nothing is stored.
    Refuse(ProofRefusal),
}

/// Judges a submitted proof; see the module documentation for the order of
/// the checks. `metadata` is the client's `metadata` object, if any: only its
/// `source` key is read.
pub fn judge_photo(
    terms: &PhotoTerms<'_>,
    file: FileEvidence,
    metadata: Option<&Value>,
    now: Timestamp,
) -> Verdict {
    let read = match file {
        FileEvidence::Unverified => return review(ReviewReason::UnverifiedUpload, None),
        FileEvidence::Read(_) if !terms.is_photo() => {
            return review(ReviewReason::ManualReview, None)
        }
        FileEvidence::Read(read) => read,
    };

    // Refusals: each is about the file itself.
    let Ok(evidence) = read else {
        return Verdict::Refuse(ProofRefusal::InvalidImage);
    };
    let Some(taken_at) = evidence.taken_at else {
        return Verdict::Refuse(ProofRefusal::MissingExifTimestamp);
    };
    let age = now.datetime().signed_duration_since(taken_at.datetime());
    if age > MAX_AGE {
        return Verdict::Refuse(ProofRefusal::StaleTimestamp { taken_at });
    }
    if -age > MAX_AHEAD {
        return Verdict::Refuse(ProofRefusal::FutureTimestamp { taken_at });
    }
    let distance_m = match (terms.geofence, evidence.position) {
        (Some(fence), Some(position)) => {
            let (distance_m, inside) = fence.locate(position);
            if !inside {
                return Verdict::Refuse(ProofRefusal::GeofenceViolation {
                    distance_m,
                    radius_m: fence.radius_m(),
                });
            }
            Some(distance_m)
        }
        _ => None,
    };
    let summary = PhotoEvidence {
        taken_at,
        gps_lat: evidence.position.map(|p| p.lat()),
        gps_lng: evidence.position.map(|p| p.lng()),
        distance_m,
    };

    // Reviews: the file is acceptable but something is not proven.
    if terms.geofence.is_some() && evidence.position.is_none() {
        return review(ReviewReason::GpsMissing, Some(summary));
    }
    if untrusted_source(metadata) {
        return review(ReviewReason::UntrustedSource, Some(summary));
    }
    Verdict::Approve(summary)
}

fn review(reason: ReviewReason, evidence: Option<PhotoEvidence>) -> Verdict {
    Verdict::Review { reason, evidence }
}

/// `metadata.source` is present and is not `app` or `camera` (trimmed, any
/// case). JSON null counts as absent; any other non-string (a number, an
/// object), or an empty string, is present and untrusted.
fn untrusted_source(metadata: Option<&Value>) -> bool {
    match metadata.and_then(|m| m.get("source")) {
        None | Some(Value::Null) => false,
        Some(Value::String(source)) => {
            let source = source.trim();
            !(source.eq_ignore_ascii_case("app") || source.eq_ignore_ascii_case("camera"))
        }
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2029-06-01T12:00:00Z";

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn now() -> Timestamp {
        at(NOW)
    }

    /// `seconds` before NOW (after it if negative).
    fn ago(seconds: i64) -> Timestamp {
        now().plus_seconds(-seconds)
    }

    fn point(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    const SITE: (f64, f64) = (-4.3217, 15.3125);

    fn fence(radius_m: f64) -> Geofence {
        Geofence::parse(SITE.0, SITE.1, radius_m).unwrap()
    }

    fn photo(geofence: Option<Geofence>) -> PhotoTerms<'static> {
        PhotoTerms {
            proof_type: "PHOTO",
            geofence,
        }
    }

    fn read(taken_at: Option<Timestamp>, position: Option<GeoPoint>) -> FileEvidence {
        FileEvidence::Read(Ok(Evidence { taken_at, position }))
    }

    fn judge(terms: PhotoTerms<'_>, file: FileEvidence) -> Verdict {
        judge_photo(&terms, file, None, now())
    }

    fn refusal(verdict: Verdict) -> ErrorCode {
        match verdict {
            Verdict::Refuse(refusal) => refusal.code(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn reason(verdict: Verdict) -> ReviewReason {
        match verdict {
            Verdict::Review { reason, .. } => reason,
            other => panic!("expected a review, got {other:?}"),
        }
    }

    fn approved(verdict: Verdict) -> PhotoEvidence {
        match verdict {
            Verdict::Approve(evidence) => evidence,
            other => panic!("expected an approval, got {other:?}"),
        }
    }

    #[test]
    fn a_fresh_photo_inside_the_fence_is_approved_with_its_evidence() {
        let here = point(-4.3216, 15.3126);
        let evidence = approved(judge(
            photo(Some(fence(100.0))),
            read(Some(ago(60)), Some(here)),
        ));
        assert_eq!(evidence.taken_at, ago(60));
        assert_eq!(evidence.gps_lat, Some(-4.3216));
        assert_eq!(evidence.gps_lng, Some(15.3126));
        let distance = evidence.distance_m.unwrap();
        assert!(distance > 0.0 && distance < 100.0, "{distance}");
        assert_eq!(
            serde_json::to_value(evidence).unwrap(),
            json!({
                "taken_at": "2029-06-01T11:59:00.000000Z",
                "gps_lat": -4.3216,
                "gps_lng": 15.3126,
                "distance_m": distance,
            })
        );
    }

    #[test]
    fn without_a_fence_position_is_optional_and_has_no_distance() {
        let evidence = approved(judge(photo(None), read(Some(ago(0)), None)));
        assert_eq!(
            (evidence.gps_lat, evidence.gps_lng, evidence.distance_m),
            (None, None, None)
        );
        let evidence = approved(judge(
            photo(None),
            read(Some(ago(0)), Some(point(1.0, 2.0))),
        ));
        assert_eq!((evidence.gps_lat, evidence.gps_lng), (Some(1.0), Some(2.0)));
        assert_eq!(evidence.distance_m, None);
    }

    #[test]
    fn photo_is_case_insensitive_and_exact() {
        for proof_type in ["PHOTO", "photo", "Photo", "pHoTo"] {
            let terms = PhotoTerms {
                proof_type,
                geofence: None,
            };
            assert!(terms.is_photo(), "{proof_type}");
            approved(judge(terms, read(Some(ago(1)), None)));
        }
        for proof_type in ["PHOTOS", " PHOTO", "PHOTO ", "PDF", "", "PHÖTO"] {
            let terms = PhotoTerms {
                proof_type,
                geofence: None,
            };
            assert!(!terms.is_photo(), "{proof_type}");
        }
    }

    #[test]
    fn non_photo_milestones_go_to_manual_review_without_exif() {
        let terms = PhotoTerms {
            proof_type: "INVOICE",
            geofence: Some(fence(10.0)),
        };
        for file in [
            read(None, None),
            FileEvidence::Read(Err(InvalidImage::new("a PDF"))),
            read(Some(ago(10 * 3600)), Some(point(50.0, 50.0))),
        ] {
            let verdict = judge_photo(&terms, file, Some(&json!({"source": "scanner"})), now());
            assert_eq!(
                verdict,
                Verdict::Review {
                    reason: ReviewReason::ManualReview,
                    evidence: None
                }
            );
        }
    }

    #[test]
    fn unverified_uploads_always_go_to_review_whatever_the_type_or_metadata() {
        let metadata =
            json!({"exif_timestamp": NOW, "gps_lat": SITE.0, "gps_lng": SITE.1, "source": "app"});
        for proof_type in ["PHOTO", "photo", "INVOICE"] {
            let terms = PhotoTerms {
                proof_type,
                geofence: Some(fence(100.0)),
            };
            let verdict = judge_photo(&terms, FileEvidence::Unverified, Some(&metadata), now());
            assert_eq!(
                verdict,
                Verdict::Review {
                    reason: ReviewReason::UnverifiedUpload,
                    evidence: None
                }
            );
        }
    }

    #[test]
    fn malformed_exif_is_an_invalid_image() {
        let verdict = judge(
            photo(None),
            FileEvidence::Read(Err(InvalidImage::new("bad IFD"))),
        );
        assert_eq!(refusal(verdict), ErrorCode::InvalidImage);
    }

    #[test]
    fn no_capture_time_is_refused_even_with_a_position_or_client_metadata() {
        assert_eq!(
            refusal(judge(photo(None), read(None, None))),
            ErrorCode::MissingExifTimestamp
        );
        let inside = point(SITE.0, SITE.1);
        assert_eq!(
            refusal(judge(photo(Some(fence(50.0))), read(None, Some(inside)))),
            ErrorCode::MissingExifTimestamp
        );
        // The prototype's trusted keys change nothing.
        let metadata = json!({"exif_timestamp": NOW, "source": "camera"});
        let verdict = judge_photo(&photo(None), read(None, None), Some(&metadata), now());
        assert_eq!(refusal(verdict), ErrorCode::MissingExifTimestamp);
    }

    #[test]
    fn freshness_bounds_are_inclusive() {
        let terms = photo(None);
        approved(judge(terms, read(Some(ago(120 * 60)), None)));
        assert_eq!(
            judge(terms, read(Some(ago(120 * 60 + 1)), None)),
            Verdict::Refuse(ProofRefusal::StaleTimestamp {
                taken_at: ago(120 * 60 + 1)
            })
        );
        // A microsecond past the bound is already too old.
        let just_stale = at("2029-06-01T09:59:59.999999Z");
        assert_eq!(
            refusal(judge(terms, read(Some(just_stale), None))),
            ErrorCode::StaleTimestamp
        );
        approved(judge(terms, read(Some(ago(-120)), None)));
        assert_eq!(
            judge(terms, read(Some(ago(-121)), None)),
            Verdict::Refuse(ProofRefusal::FutureTimestamp {
                taken_at: ago(-121)
            })
        );
        let just_ahead = at("2029-06-01T12:02:00.000001Z");
        assert_eq!(
            refusal(judge(terms, read(Some(just_ahead), None))),
            ErrorCode::FutureTimestamp
        );
        assert_eq!(
            refusal(judge(terms, read(Some(ago(10 * 365 * 86400)), None))),
            ErrorCode::StaleTimestamp
        );
        assert_eq!(
            refusal(judge(terms, read(Some(ago(-86400)), None))),
            ErrorCode::FutureTimestamp
        );
    }

    #[test]
    fn time_refusals_come_before_the_geofence() {
        let far = point(48.8566, 2.3522);
        let terms = photo(Some(fence(100.0)));
        assert_eq!(
            refusal(judge(terms, read(Some(ago(121 * 60)), Some(far)))),
            ErrorCode::StaleTimestamp
        );
        assert_eq!(
            refusal(judge(terms, read(Some(ago(-300)), Some(far)))),
            ErrorCode::FutureTimestamp
        );
    }

    #[test]
    fn geofence_violation_reports_the_distance_and_the_edge_is_inside() {
        let center = point(SITE.0, SITE.1);
        let edge = point(-4.3200, 15.3140);
        let exact = crate::domain::geo::haversine_m(center, edge);
        let on_the_circle = Geofence::new(center, exact).unwrap();
        let evidence = approved(judge(
            photo(Some(on_the_circle)),
            read(Some(ago(5)), Some(edge)),
        ));
        assert_eq!(evidence.distance_m, Some(exact));

        let smaller = Geofence::new(center, exact - 0.01).unwrap();
        let verdict = judge(photo(Some(smaller)), read(Some(ago(5)), Some(edge)));
        assert_eq!(
            verdict,
            Verdict::Refuse(ProofRefusal::GeofenceViolation {
                distance_m: exact,
                radius_m: exact - 0.01
            })
        );
        let Verdict::Refuse(refused) = verdict else {
            unreachable!()
        };
        assert_eq!(refused.code(), ErrorCode::GeofenceViolation);
        assert_eq!(
            refused.details().unwrap()["distance_m"].as_f64(),
            Some(exact)
        );
        assert_eq!(
            refused.details().unwrap()["radius_m"].as_f64(),
            Some(exact - 0.01)
        );
    }

    #[test]
    fn a_fence_without_a_position_goes_to_review_with_the_time() {
        let verdict = judge(photo(Some(fence(100.0))), read(Some(ago(30)), None));
        assert_eq!(
            verdict,
            Verdict::Review {
                reason: ReviewReason::GpsMissing,
                evidence: Some(PhotoEvidence {
                    taken_at: ago(30),
                    gps_lat: None,
                    gps_lng: None,
                    distance_m: None
                })
            }
        );
        // Client-typed coordinates do not stand in for the file's.
        let metadata = json!({"gps_lat": SITE.0, "gps_lng": SITE.1, "source": "app"});
        let verdict = judge_photo(
            &photo(Some(fence(100.0))),
            read(Some(ago(30)), None),
            Some(&metadata),
            now(),
        );
        assert_eq!(reason(verdict), ReviewReason::GpsMissing);
    }

    #[test]
    fn untrusted_sources_go_to_review_trusted_ones_pass() {
        let terms = photo(Some(fence(100.0)));
        let inside = read(Some(ago(30)), Some(point(SITE.0, SITE.1)));
        let with = |metadata: Value| judge_photo(&terms, inside, Some(&metadata), now());
        for trusted in [
            json!({}),
            json!({"source": null}),
            json!({"source": "app"}),
            json!({"source": "camera"}),
            json!({"source": " Camera "}),
            json!({"source": "APP"}),
            json!({"other": "thing"}),
            json!(["source", "web"]),
        ] {
            approved(with(trusted.clone()));
        }
        for untrusted in [
            json!({"source": "gallery"}),
            json!({"source": ""}),
            json!({"source": "app2"}),
            json!({"source": 5}),
            json!({"source": true}),
            json!({"source": {"name": "app"}}),
            json!({"source": ["app"]}),
        ] {
            let verdict = with(untrusted.clone());
            assert_eq!(
                reason(verdict),
                ReviewReason::UntrustedSource,
                "{untrusted}"
            );
            let Verdict::Review { evidence, .. } = verdict else {
                unreachable!()
            };
            assert_eq!(evidence.unwrap().distance_m, Some(0.0));
        }
        approved(judge_photo(&terms, inside, None, now()));
    }

    #[test]
    fn refusals_beat_reviews_and_gps_missing_beats_an_untrusted_source() {
        let metadata = json!({"source": "web"});
        let far = point(0.0, 0.0);
        let terms = photo(Some(fence(100.0)));
        let judge_with = |file| judge_photo(&terms, file, Some(&metadata), now());
        assert_eq!(
            refusal(judge_with(read(Some(ago(1)), Some(far)))),
            ErrorCode::GeofenceViolation
        );
        assert_eq!(
            refusal(judge_with(read(None, None))),
            ErrorCode::MissingExifTimestamp
        );
        assert_eq!(
            refusal(judge_with(FileEvidence::Read(Err(InvalidImage::new("x"))))),
            ErrorCode::InvalidImage
        );
        assert_eq!(
            reason(judge_with(read(Some(ago(1)), None))),
            ReviewReason::GpsMissing
        );
    }

    #[test]
    fn refusals_carry_contract_codes_messages_and_details() {
        let taken_at = ago(3 * 3600);
        let stale = ProofRefusal::StaleTimestamp { taken_at };
        assert_eq!(stale.code().status(), 422);
        assert_eq!(
            stale.details(),
            Some(json!({"taken_at": "2029-06-01T09:00:00.000000Z"}))
        );
        assert_eq!(ProofRefusal::InvalidImage.details(), None);
        assert_eq!(ProofRefusal::MissingExifTimestamp.details(), None);
        for refusal in [
            ProofRefusal::InvalidImage,
            ProofRefusal::MissingExifTimestamp,
            stale,
            ProofRefusal::FutureTimestamp { taken_at },
            ProofRefusal::GeofenceViolation {
                distance_m: 1.0,
                radius_m: 0.5,
            },
        ] {
            assert_eq!(refusal.code().status(), 422);
            assert!(refusal.message().ends_with('.'));
        }
    }

    #[test]
    fn review_reasons_have_their_wire_names() {
        for reason in ReviewReason::ALL {
            assert_eq!(ReviewReason::parse(reason.as_str()), Some(reason));
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                json!(reason.as_str())
            );
            assert_eq!(reason.to_string(), reason.as_str());
        }
    }
}
