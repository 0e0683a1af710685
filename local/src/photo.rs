//! `kobatela-local photo [--lat L --lng G] [--taken-at T] --out FILE`: a
//! JPEG whose EXIF says it was taken at T (RFC 3339; default now), at (L, G)
//! if given, for trying `POST /proofs` by hand (a PHOTO milestone accepts
//! photos up to 120 minutes old; older ones are refused, not reviewed). The
//! EXIF writer is the tests' (`shared::domain::exif::builder`); the picture
//! after it is a real one (`photo.jpg`, 160×120), so a browser shows it.

use chrono::{DateTime, Datelike, Timelike, Utc};
use shared::domain::exif::builder::gps_photo;

/// The pixels every photo carries: a small baseline JPEG, no metadata.
const PICTURE: &[u8] = include_bytes!("photo.jpg");

pub fn write(args: &[&str]) -> Result<(), String> {
    let mut lat = None;
    let mut lng = None;
    let mut out = None;
    let mut taken_at = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match *flag {
            "--lat" => lat = Some(degrees(value, 90.0, "--lat")?),
            "--lng" => lng = Some(degrees(value, 180.0, "--lng")?),
            "--out" => out = Some(value.to_string()),
            "--taken-at" => taken_at = Some(moment(value)?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let out = out.ok_or("--out FILE is required")?;
    let position = match (lat, lng) {
        (Some(lat), Some(lng)) => Some((lat, lng)),
        (None, None) => None,
        _ => return Err("give both --lat and --lng, or neither".into()),
    };
    let at = taken_at.unwrap_or_else(Utc::now);
    let date = format!("{:04}:{:02}:{:02}", at.year(), at.month(), at.day());
    let exif = gps_photo(&date, (at.hour(), at.minute(), at.second()), position);
    let bytes = with_picture(&exif)?;
    std::fs::write(&out, &bytes).map_err(|e| format!("cannot write {out}: {e}"))?;
    println!(
        "{out}: {} bytes, taken {}",
        bytes.len(),
        at.format("%Y-%m-%dT%H:%M:%SZ")
    );
    Ok(())
}

/// The writer's SOI and APP1 (its EXIF), then the picture's own segments
/// but its SOI and JFIF APP0: one JPEG with real pixels and that EXIF.
fn with_picture(exif: &[u8]) -> Result<Vec<u8>, String> {
    let app1_end = match exif {
        [0xff, 0xd8, 0xff, 0xe1, hi, lo, ..] => 4 + usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => return Err("the EXIF writer did not start with SOI, APP1".into()),
    };
    let mut bytes = exif[..app1_end].to_vec();
    let mut at = 2;
    while PICTURE.get(at..at + 2) == Some(&[0xff, 0xe0]) {
        at += 2 + usize::from(u16::from_be_bytes([PICTURE[at + 2], PICTURE[at + 3]]));
    }
    bytes.extend_from_slice(&PICTURE[at..]);
    Ok(bytes)
}

fn moment(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("--taken-at must be an RFC 3339 time, got {text}"))
}

fn degrees(text: &str, limit: f64, flag: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && d.abs() <= limit)
        .ok_or_else(|| format!("{flag} must be a number from -{limit} to {limit}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::exif::read_evidence;

    #[test]
    fn the_photo_is_a_real_picture_with_the_exif_asked_for() {
        let exif = gps_photo("2026:01:15", (9, 30, 5), Some((14.6928, -17.4467)));
        let bytes = with_picture(&exif).unwrap();
        // One SOI, then APP1 first; the picture's frame and scan follow.
        assert_eq!(&bytes[..4], &[0xff, 0xd8, 0xff, 0xe1]);
        assert_eq!(bytes.windows(2).filter(|w| w == &[0xff, 0xd8]).count(), 1);
        assert!(bytes.windows(2).any(|w| w == [0xff, 0xc0]), "a frame");
        assert!(bytes.windows(2).any(|w| w == [0xff, 0xda]), "a scan");
        assert!(!bytes.windows(2).any(|w| w == [0xff, 0xe0]), "no JFIF");
        assert_eq!(&bytes[bytes.len() - 2..], &[0xff, 0xd9]);
        let evidence = read_evidence(&bytes).expect("the server reads it");
        assert_eq!(
            evidence.taken_at.unwrap().to_string(),
            "2026-01-15T09:30:05.000000Z"
        );
        let position = evidence.position.unwrap();
        assert!((position.lat() - 14.6928).abs() < 1e-5);
    }

    #[test]
    fn taken_at_is_rfc_3339() {
        assert_eq!(
            moment("2026-01-15T10:30:05+01:00").unwrap().to_rfc3339(),
            "2026-01-15T09:30:05+00:00"
        );
        assert!(moment("yesterday").is_err());
    }
}
