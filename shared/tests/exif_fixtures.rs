//! Golden files written by an independent EXIF writer (piexif and Pillow, see
//! `fixtures/make_fixtures.py`): the reader must find exactly the time and the
//! position the script wrote.

use shared::domain::{
    error::ErrorCode,
    exif::{read_evidence, read_evidence_as},
    geo::Geofence,
    proof::{judge_photo, Evidence, FileEvidence, PhotoTerms, ProofRefusal, ReviewReason, Verdict},
    time::Timestamp,
};

const GPS_TIME_AND_POSITION: &[u8] = include_bytes!("fixtures/gps_time_and_position.jpg");
const GPS_TIME_AND_POSITION_PNG: &[u8] = include_bytes!("fixtures/gps_time_and_position.png");
const DATE_TIME_ORIGINAL_WITH_OFFSET: &[u8] =
    include_bytes!("fixtures/date_time_original_with_offset.jpg");
const NO_EXIF: &[u8] = include_bytes!("fixtures/no_exif.jpg");
const GPS_TIME_WITHOUT_POSITION: &[u8] = include_bytes!("fixtures/gps_time_without_position.jpg");

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

const KINSHASA_LAT: f64 = -(4.0 + 19.0 / 60.0 + 18.12 / 3600.0);
const KINSHASA_LNG: f64 = 15.0 + 18.0 / 60.0 + 45.0 / 3600.0;

fn assert_kinshasa(evidence: Evidence) {
    assert_eq!(evidence.taken_at, Some(at("2029-06-01T11:58:30.25Z")));
    let position = evidence.position.expect("a position");
    assert!(
        (position.lat() - KINSHASA_LAT).abs() < 1e-12,
        "{}",
        position.lat()
    );
    assert!(
        (position.lng() - KINSHASA_LNG).abs() < 1e-12,
        "{}",
        position.lng()
    );
}

#[test]
fn gps_time_and_position_win_over_date_time_original() {
    assert_kinshasa(read_evidence(GPS_TIME_AND_POSITION).unwrap());
    assert_kinshasa(read_evidence_as("image/jpeg", GPS_TIME_AND_POSITION).unwrap());
}

#[test]
fn a_png_exif_chunk_is_read_too() {
    assert_kinshasa(read_evidence_as("image/png", GPS_TIME_AND_POSITION_PNG).unwrap());
    assert!(read_evidence_as("image/jpeg", GPS_TIME_AND_POSITION_PNG).is_err());
}

#[test]
fn date_time_original_is_read_with_its_offset() {
    let evidence = read_evidence(DATE_TIME_ORIGINAL_WITH_OFFSET).unwrap();
    assert_eq!(
        evidence,
        Evidence {
            taken_at: Some(at("2029-06-01T19:15:10Z")),
            position: None
        }
    );
}

#[test]
fn a_jpeg_without_exif_has_no_evidence() {
    assert_eq!(read_evidence(NO_EXIF), Ok(Evidence::default()));
}

#[test]
fn a_gps_time_without_a_position_is_no_position() {
    let evidence = read_evidence(GPS_TIME_WITHOUT_POSITION).unwrap();
    assert_eq!(
        evidence,
        Evidence {
            taken_at: Some(at("2029-06-01T23:59:59Z")),
            position: None
        }
    );
}

#[test]
fn the_fixtures_through_the_rules() {
    let fence = Geofence::parse(-4.3217, 15.3125, 200.0).unwrap();
    let terms = PhotoTerms {
        proof_type: "photo",
        geofence: Some(fence),
    };
    let judge = |bytes: &[u8], now: &str| {
        judge_photo(
            &terms,
            FileEvidence::Read(read_evidence(bytes)),
            None,
            at(now),
        )
    };

    let Verdict::Approve(evidence) = judge(GPS_TIME_AND_POSITION, "2029-06-01T12:30:00Z") else {
        panic!("expected an approval");
    };
    assert!(evidence.distance_m.unwrap() < 200.0);
    assert_eq!(
        judge(GPS_TIME_AND_POSITION, "2029-06-01T14:00:00Z"),
        Verdict::Refuse(ProofRefusal::StaleTimestamp {
            taken_at: at("2029-06-01T11:58:30.25Z")
        })
    );
    let Verdict::Refuse(refusal) = judge(NO_EXIF, "2029-06-01T12:00:00Z") else {
        panic!("expected a refusal");
    };
    assert_eq!(refusal.code(), ErrorCode::MissingExifTimestamp);
    let Verdict::Review { reason, .. } = judge(GPS_TIME_WITHOUT_POSITION, "2029-06-02T00:00:00Z")
    else {
        panic!("expected a review");
    };
    assert_eq!(reason, ReviewReason::GpsMissing);
}
