//! The server's own reading of a photo's EXIF block (kamadak-exif): capture
//! time and GPS position, from bytes only (no I/O). Whatever a file holds, the
//! answer is `Ok(Evidence)` or `Err(InvalidImage)`, never a panic.
//!
//! Containers: JPEG (`FF D8 FF`), PNG (its 8-byte signature) and HEIC/HEIF
//! (an ISO-BMFF `ftyp` box with a HEIF brand) are read; anything else (PDF,
//! TIFF, WebP, GIF, text) is not an image of an accepted type → `InvalidImage`.
//! `read_evidence_as` also requires the bytes to be of the declared content
//! type. Only the container structure up to the EXIF block is checked; pixels
//! are not decoded. A container without EXIF (or cut before it is found: a
//! truncated JPEG is `InvalidImage`) reads as `Evidence` with nothing.
//!
//! Capture time, first found wins:
//! 1. `GPSDateStamp` + `GPSTimeStamp` (UTC), when both are present;
//! 2. `DateTimeOriginal` with `OffsetTimeOriginal`;
//! 3. `DateTimeOriginal` read as UTC.
//!
//! Position: `GPSLatitude`/`GPSLatitudeRef` and `GPSLongitude`/`GPSLongitudeRef`
//! (three RATIONALs each, degrees/minutes/seconds; refs N/S and E/W). All four
//! are needed: a GPS block with a time and no position, or with only some of
//! the four, has no position.
//!
//! Every one of these fields that is present must be well formed, or the file
//! is `InvalidImage`: wrong type or count, zero denominators, out-of-range
//! values (hour ≥ 24, minutes or seconds ≥ 60, latitude > 90, a date that does
//! not exist, a year outside 1970..=9999), refs other than N/S/E/W. Blank
//! values (spaces, empty, the EXIF "unknown" pattern) count as absent. The
//! TIFF structure must be whole too, with one tolerance: the Exif or GPS IFD
//! may be followed by a non-zero next-IFD offset (piexif omits that offset;
//! the offset is ignored, never followed).
//! `SubSecTimeOriginal` is not read: a second is precise enough for
//! 120-minute freshness. Only the primary image's IFDs (not the thumbnail's)
//! are read.

use std::io::Cursor;

use chrono::{
    Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc,
};
use exif::{In, Rational, Tag, Value};

use super::{
    geo::GeoPoint,
    proof::{Evidence, InvalidImage},
    time::Timestamp,
};

/// The image containers a proof may be uploaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Heic,
}

impl ImageKind {
    /// The kind a declared content type names (`image/jpeg`, `image/png`,
    /// `image/heic`; any case, parameters ignored). None for the others, such
    /// as `application/pdf`.
    pub fn from_content_type(content_type: &str) -> Option<ImageKind> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        [
            ("image/jpeg", ImageKind::Jpeg),
            ("image/png", ImageKind::Png),
            ("image/heic", ImageKind::Heic),
        ]
        .into_iter()
        .find(|(name, _)| essence.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind)
    }

    /// The kind the bytes' signature says, if any.
    pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
        if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(ImageKind::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageKind::Png)
        } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
            Some(ImageKind::Heic) // the reader checks for a HEIF brand
        } else {
            None
        }
    }
}

/// Reads the evidence of a file uploaded as `content_type`: the bytes must be
/// an image of that type (a PDF, or a PNG sent as `image/jpeg`, is refused).
pub fn read_evidence_as(content_type: &str, bytes: &[u8]) -> Result<Evidence, InvalidImage> {
    let declared = ImageKind::from_content_type(content_type)
        .ok_or(InvalidImage::new("content type is not an image type"))?;
    if ImageKind::sniff(bytes) != Some(declared) {
        return Err(InvalidImage::new(
            "bytes are not of the declared image type",
        ));
    }
    read_evidence(bytes)
}

/// Reads the capture time and position of a JPEG, PNG or HEIC file; see the
/// module documentation for the rules.
pub fn read_evidence(bytes: &[u8]) -> Result<Evidence, InvalidImage> {
    if ImageKind::sniff(bytes).is_none() {
        return Err(InvalidImage::new("not a JPEG, PNG or HEIC file"));
    }
    let read = exif::Reader::new()
        .continue_on_error(true)
        .read_from_container(&mut Cursor::new(bytes));
    let exif = match read {
        Ok(exif) => exif,
        Err(exif::Error::NotFound(_)) => return Ok(Evidence::default()),
        Err(exif::Error::PartialResult(partial)) => {
            let (exif, errors) = partial.into_inner();
            if let Some(error) = errors.iter().find(|e| !is_tolerated(e)) {
                return Err(invalid(error));
            }
            exif
        }
        Err(error) => return Err(invalid(&error)),
    };
    let field = |tag: Tag| exif.get_field(tag, In::PRIMARY).map(|f| &f.value);

    let gps_date = field(Tag::GPSDateStamp)
        .map(gps_date)
        .transpose()?
        .flatten();
    let gps_time = field(Tag::GPSTimeStamp).map(gps_time).transpose()?;
    let gps_time = gps_date
        .zip(gps_time)
        .map(|(date, time)| date.and_time(NaiveTime::MIN).and_utc() + time);
    let original = field(Tag::DateTimeOriginal)
        .map(date_time)
        .transpose()?
        .flatten();
    let offset = field(Tag::OffsetTimeOriginal)
        .map(offset)
        .transpose()?
        .flatten();
    let taken_at = match (gps_time, original) {
        (Some(utc), _) => Some(utc),
        (None, Some(local)) => Some(match offset {
            Some(offset) => offset
                .from_local_datetime(&local)
                .single()
                .ok_or(InvalidImage::new("DateTimeOriginal out of range"))?
                .with_timezone(&Utc),
            None => local.and_utc(),
        }),
        (None, None) => None,
    };
    let taken_at = taken_at.map(timestamp).transpose()?;

    let latitude = coordinate(
        field(Tag::GPSLatitude),
        field(Tag::GPSLatitudeRef),
        b'N',
        b'S',
        90.0,
    )?;
    let longitude = coordinate(
        field(Tag::GPSLongitude),
        field(Tag::GPSLongitudeRef),
        b'E',
        b'W',
        180.0,
    )?;
    let position = match (latitude, longitude) {
        (Some(lat), Some(lng)) => Some(
            GeoPoint::new(lat, lng).map_err(|_| InvalidImage::new("GPS position out of range"))?,
        ),
        _ => None,
    };
    Ok(Evidence { taken_at, position })
}

/// The one structural defect accepted: a sub-IFD (Exif, GPS) followed by a
/// non-zero next-IFD offset. piexif, a common writer, leaves that offset out,
/// so the reader sees the bytes after the IFD there; the entries themselves
/// were read whole, and the "next" IFD is never followed.
fn is_tolerated(error: &exif::Error) -> bool {
    matches!(error, exif::Error::InvalidFormat("Unexpected next IFD"))
}

fn invalid(error: &exif::Error) -> InvalidImage {
    match error {
        exif::Error::InvalidFormat(reason) => InvalidImage::new(reason),
        _ => InvalidImage::new("unreadable image or EXIF block"),
    }
}

fn malformed(what: &'static str) -> InvalidImage {
    InvalidImage::new(what)
}

/// The single string of an ASCII field; None if blank (empty, spaces, or
/// the EXIF "unknown" pattern of spaces and colons).
fn text<'a>(value: &'a Value, what: &'static str) -> Result<Option<&'a [u8]>, InvalidImage> {
    let Value::Ascii(strings) = value else {
        return Err(malformed(what));
    };
    match strings.as_slice() {
        [] => Ok(None),
        [one] if one.iter().all(|&b| b == b' ' || b == b':') => Ok(None),
        [one] => Ok(Some(one.as_slice())),
        _ => Err(malformed(what)),
    }
}

/// Digits only, as a number.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `YYYY:MM:DD`, a real calendar date.
fn date(bytes: &[u8]) -> Option<NaiveDate> {
    if bytes.len() != 10 || bytes[4] != b':' || bytes[7] != b':' {
        return None;
    }
    let year = i32::try_from(number(&bytes[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&bytes[5..7])?, number(&bytes[8..10])?)
}

fn gps_date(value: &Value) -> Result<Option<NaiveDate>, InvalidImage> {
    const WHAT: &str = "malformed GPSDateStamp";
    match text(value, WHAT)? {
        None => Ok(None),
        Some(bytes) => date(bytes).map(Some).ok_or(malformed(WHAT)),
    }
}

/// A rational as whole microunits (exact integer arithmetic), refusing a zero
/// denominator.
fn micro_units(r: &Rational) -> Option<u64> {
    if r.denom == 0 {
        return None;
    }
    Some(u64::from(r.num) * 1_000_000 / u64::from(r.denom))
}

/// Three RATIONALs: hours < 24, minutes < 60, seconds < 60.
fn gps_time(value: &Value) -> Result<TimeDelta, InvalidImage> {
    const WHAT: &str = "malformed GPSTimeStamp";
    let Value::Rational(parts) = value else {
        return Err(malformed(WHAT));
    };
    let [h, m, s] = parts.as_slice() else {
        return Err(malformed(WHAT));
    };
    let (h, m, s) = (
        micro_units(h).filter(|&h| h < 24_000_000),
        micro_units(m).filter(|&m| m < 60_000_000),
        micro_units(s).filter(|&s| s < 60_000_000),
    );
    let (Some(h), Some(m), Some(s)) = (h, m, s) else {
        return Err(malformed(WHAT));
    };
    let micros = h * 3600 + m * 60 + s;
    if micros >= 86_400_000_000 {
        return Err(malformed(WHAT)); // fractional hours past midnight
    }
    Ok(TimeDelta::microseconds(micros as i64))
}

/// `YYYY:MM:DD HH:MM:SS`, a real local date and time.
fn date_time(value: &Value) -> Result<Option<NaiveDateTime>, InvalidImage> {
    const WHAT: &str = "malformed DateTimeOriginal";
    let Some(bytes) = text(value, WHAT)? else {
        return Ok(None);
    };
    local_date_time(bytes).map(Some).ok_or(malformed(WHAT))
}

fn local_date_time(bytes: &[u8]) -> Option<NaiveDateTime> {
    if bytes.len() != 19 || bytes[10] != b' ' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let time = NaiveTime::from_hms_opt(
        number(&bytes[11..13])?,
        number(&bytes[14..16])?,
        number(&bytes[17..19])?,
    )?;
    Some(date(&bytes[..10])?.and_time(time))
}

/// `+HH:MM` or `-HH:MM`, within ±14:00.
fn offset(value: &Value) -> Result<Option<FixedOffset>, InvalidImage> {
    const WHAT: &str = "malformed OffsetTimeOriginal";
    let Some(bytes) = text(value, WHAT)? else {
        return Ok(None);
    };
    fixed_offset(bytes).map(Some).ok_or(malformed(WHAT))
}

fn fixed_offset(bytes: &[u8]) -> Option<FixedOffset> {
    let [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] = *bytes else {
        return None;
    };
    let (hours, minutes) = (number(&[h1, h2])?, number(&[m1, m2])?);
    if hours > 14 || minutes >= 60 || (hours == 14 && minutes > 0) {
        return None;
    }
    let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
    FixedOffset::east_opt(if sign == b'-' { -seconds } else { seconds })
}

fn timestamp(instant: chrono::DateTime<Utc>) -> Result<Timestamp, InvalidImage> {
    // Timestamp's own range; an unset camera clock (year 0) is malformed.
    if !(1970..=9999).contains(&instant.year()) {
        return Err(malformed("capture time out of range"));
    }
    Ok(Timestamp::from_datetime(instant))
}

/// One coordinate from its DMS value and its ref; None unless both present.
fn coordinate(
    dms: Option<&Value>,
    reference: Option<&Value>,
    positive: u8,
    negative: u8,
    max_degrees: f64,
) -> Result<Option<f64>, InvalidImage> {
    const WHAT: &str = "malformed GPS coordinate";
    let magnitude = match dms {
        None => None,
        Some(Value::Rational(parts)) => {
            let [d, m, s] = parts.as_slice() else {
                return Err(malformed(WHAT));
            };
            let part = |r: &Rational| (r.denom != 0).then(|| r.to_f64());
            let (Some(d), Some(m), Some(s)) = (part(d), part(m), part(s)) else {
                return Err(malformed(WHAT));
            };
            let total = d + m / 60.0 + s / 3600.0;
            if d > max_degrees || m >= 60.0 || s >= 60.0 || total > max_degrees {
                return Err(malformed(WHAT));
            }
            Some(total)
        }
        Some(_) => return Err(malformed(WHAT)),
    };
    let sign = match reference.map(|r| text(r, WHAT)).transpose()?.flatten() {
        None => None,
        Some(bytes) => match bytes.trim_ascii() {
            [b] if b.eq_ignore_ascii_case(&positive) => Some(1.0),
            [b] if b.eq_ignore_ascii_case(&negative) => Some(-1.0),
            _ => return Err(malformed(WHAT)),
        },
    };
    Ok(magnitude
        .zip(sign)
        .map(|(magnitude, sign)| sign * magnitude))
}

/// The tiny EXIF writer of the tests (and of `kobatela-local photo`).
#[cfg(any(test, feature = "test-support"))]
pub mod builder;

#[cfg(test)]
mod tests {
    use super::builder::*;
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    /// A GPS block with a time and a position (Kinshasa, 4°19'18.12"S
    /// 15°18'45.00"E), and a DateTimeOriginal that must lose to it.
    fn full() -> Exif {
        Exif {
            exif: vec![
                Entry::ascii(TAG_DATE_TIME_ORIGINAL, "2029:06:01 13:00:00"),
                Entry::ascii(TAG_OFFSET_TIME_ORIGINAL, "+01:00"),
            ],
            gps: vec![
                Entry::ascii(TAG_GPS_LATITUDE_REF, "S"),
                Entry::dms(TAG_GPS_LATITUDE, 4, 19, 1812),
                Entry::ascii(TAG_GPS_LONGITUDE_REF, "E"),
                Entry::dms(TAG_GPS_LONGITUDE, 15, 18, 4500),
                Entry::rationals(TAG_GPS_TIME_STAMP, &[(11, 1), (58, 1), (3050, 100)]),
                Entry::ascii(TAG_GPS_DATE_STAMP, "2029:06:01"),
            ],
            ..Exif::default()
        }
    }

    fn read(exif: &Exif) -> Result<Evidence, InvalidImage> {
        read_evidence(&exif.jpeg())
    }

    fn without(mut exif: Exif, tag: u16) -> Exif {
        exif.gps.retain(|e| e.tag != tag);
        exif.exif.retain(|e| e.tag != tag);
        exif
    }

    fn with(mut exif: Exif, entry: Entry) -> Exif {
        let tag = entry.tag;
        exif = without(exif, tag);
        if (TAG_GPS_LATITUDE_REF..=TAG_GPS_DATE_STAMP).contains(&tag) {
            exif.gps.push(entry);
        } else {
            exif.exif.push(entry);
        }
        exif
    }

    fn close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-9, "{actual} vs {expected}");
    }

    #[test]
    fn the_gps_photo_writer_round_trips() {
        let bytes = gps_photo("2029:06:01", (11, 58, 30), Some((14.6937, -17.4441)));
        let evidence = read_evidence_as("image/jpeg", &bytes).unwrap();
        assert_eq!(evidence.taken_at, Some(at("2029-06-01T11:58:30Z")));
        let position = evidence.position.unwrap();
        assert!(
            (position.lat() - 14.6937).abs() < 1e-5,
            "{}",
            position.lat()
        );
        assert!(
            (position.lng() + 17.4441).abs() < 1e-5,
            "{}",
            position.lng()
        );
        let without = read_evidence(&gps_photo("2029:06:01", (0, 0, 0), None)).unwrap();
        assert_eq!(without.position, None);
    }

    #[test]
    fn gps_time_and_position_are_read() {
        let evidence = read(&full()).unwrap();
        assert_eq!(evidence.taken_at, Some(at("2029-06-01T11:58:30.5Z")));
        let position = evidence.position.unwrap();
        close(position.lat(), -(4.0 + 19.0 / 60.0 + 18.12 / 3600.0));
        close(position.lng(), 15.0 + 18.0 / 60.0 + 45.0 / 3600.0);
    }

    #[test]
    fn refs_give_the_hemisphere() {
        for (lat_ref, lng_ref, lat_sign, lng_sign) in [
            ("N", "E", 1.0, 1.0),
            ("S", "W", -1.0, -1.0),
            ("n", "w", 1.0, -1.0),
        ] {
            let exif = with(
                with(full(), Entry::ascii(TAG_GPS_LATITUDE_REF, lat_ref)),
                Entry::ascii(TAG_GPS_LONGITUDE_REF, lng_ref),
            );
            let position = read(&exif).unwrap().position.unwrap();
            assert_eq!(position.lat().signum(), lat_sign);
            assert_eq!(position.lng().signum(), lng_sign);
        }
    }

    #[test]
    fn decimal_degrees_in_the_degrees_part_are_read() {
        let exif = with(
            full(),
            Entry::rationals(TAG_GPS_LATITUDE, &[(488_566, 10_000), (0, 1), (0, 1)]),
        );
        close(read(&exif).unwrap().position.unwrap().lat(), -48.8566);
        let edge = with(
            full(),
            Entry::rationals(TAG_GPS_LONGITUDE, &[(180, 1), (0, 1), (0, 1)]),
        );
        close(read(&edge).unwrap().position.unwrap().lng(), 180.0);
    }

    #[test]
    fn without_gps_time_date_time_original_and_its_offset_are_used() {
        let exif = without(without(full(), TAG_GPS_TIME_STAMP), TAG_GPS_DATE_STAMP);
        assert_eq!(
            read(&exif).unwrap().taken_at,
            Some(at("2029-06-01T12:00:00Z"))
        );
        let negative = with(
            exif.clone(),
            Entry::ascii(TAG_OFFSET_TIME_ORIGINAL, "-05:30"),
        );
        assert_eq!(
            read(&negative).unwrap().taken_at,
            Some(at("2029-06-01T18:30:00Z"))
        );
        let utc = without(exif.clone(), TAG_OFFSET_TIME_ORIGINAL);
        assert_eq!(
            read(&utc).unwrap().taken_at,
            Some(at("2029-06-01T13:00:00Z"))
        );
        let blank_offset = with(exif, Entry::ascii(TAG_OFFSET_TIME_ORIGINAL, "   :  "));
        assert_eq!(
            read(&blank_offset).unwrap().taken_at,
            Some(at("2029-06-01T13:00:00Z"))
        );
    }

    #[test]
    fn half_a_gps_time_is_no_gps_time() {
        let no_date = without(full(), TAG_GPS_DATE_STAMP);
        assert_eq!(
            read(&no_date).unwrap().taken_at,
            Some(at("2029-06-01T12:00:00Z"))
        );
        let no_time = without(full(), TAG_GPS_TIME_STAMP);
        assert_eq!(
            read(&no_time).unwrap().taken_at,
            Some(at("2029-06-01T12:00:00Z"))
        );
        let only_date = without(
            without(no_time, TAG_DATE_TIME_ORIGINAL),
            TAG_OFFSET_TIME_ORIGINAL,
        );
        assert_eq!(read(&only_date).unwrap().taken_at, None);
    }

    #[test]
    fn a_gps_block_with_a_time_and_no_position_has_no_position() {
        let mut exif = full();
        exif.gps.retain(|e| e.tag >= TAG_GPS_TIME_STAMP);
        exif.exif.clear();
        let evidence = read(&exif).unwrap();
        assert_eq!(evidence.taken_at, Some(at("2029-06-01T11:58:30.5Z")));
        assert_eq!(evidence.position, None);
        // Any one of the four missing: no position either.
        for tag in [
            TAG_GPS_LATITUDE_REF,
            TAG_GPS_LATITUDE,
            TAG_GPS_LONGITUDE_REF,
            TAG_GPS_LONGITUDE,
        ] {
            assert_eq!(read(&without(full(), tag)).unwrap().position, None, "{tag}");
        }
    }

    #[test]
    fn files_without_exif_or_without_the_fields_have_no_evidence() {
        assert_eq!(read_evidence(&jpeg_without_exif()), Ok(Evidence::default()));
        assert_eq!(read(&Exif::default()), Ok(Evidence::default()));
        let blank = Exif {
            exif: vec![Entry::ascii(TAG_DATE_TIME_ORIGINAL, "    :  :     :  :  ")],
            ..Exif::default()
        };
        assert_eq!(read(&blank), Ok(Evidence::default()));
        let empty = Exif {
            exif: vec![Entry::ascii(TAG_DATE_TIME_ORIGINAL, "")],
            ..Exif::default()
        };
        assert_eq!(read(&empty), Ok(Evidence::default()));
        // A PNG without an eXIf chunk.
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\0IEND\xae\x42\x60\x82";
        assert_eq!(read_evidence(png), Ok(Evidence::default()));
    }

    #[test]
    fn a_png_with_an_exif_chunk_is_read() {
        let tiff = full().tiff();
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend((tiff.len() as u32).to_be_bytes());
        png.extend(b"eXIf");
        png.extend(&tiff);
        png.extend([0, 0, 0, 0]); // CRC, not checked
        png.extend(b"\0\0\0\0IEND\xae\x42\x60\x82");
        assert_eq!(read_evidence(&png), read(&full()));
        assert_eq!(read_evidence_as("image/png", &png), read(&full()));
    }

    #[test]
    fn non_images_and_mismatched_types_are_invalid() {
        for bytes in [
            &b""[..],
            b"%PDF-1.7\n",
            b"II\x2a\x00\x08\x00\x00\x00\x00\x00",
            b"RIFF\x00\x00\x00\x00WEBPVP8 ",
            b"GIF89a",
            b"\xff\xd8",
            b"\0\0\0\x14ftypmp41\0\0\0\0mp41",
        ] {
            assert!(read_evidence(bytes).is_err(), "{bytes:?}");
        }
        let jpeg = full().jpeg();
        assert!(read_evidence_as("image/jpeg", &jpeg).is_ok());
        assert!(read_evidence_as("IMAGE/JPEG; charset=x", &jpeg).is_ok());
        assert!(read_evidence_as("image/png", &jpeg).is_err());
        assert!(read_evidence_as("image/heic", &jpeg).is_err());
        assert!(read_evidence_as("application/pdf", &jpeg).is_err());
        assert_eq!(
            ImageKind::from_content_type("image/heic"),
            Some(ImageKind::Heic)
        );
        assert_eq!(ImageKind::from_content_type("application/pdf"), None);
    }

    #[test]
    fn a_truncated_jpeg_or_an_empty_exif_block_is_invalid() {
        let jpeg = full().jpeg();
        for len in [3, 4, 6, 12, 20, 40, jpeg.len() / 2] {
            assert!(read_evidence(&jpeg[..len]).is_err(), "{len}");
        }
        assert!(read_evidence(&jpeg_with_app1(b"")).is_err());
        assert!(read_evidence(&jpeg_with_app1(b"MM\x00\x2a")).is_err());
    }

    fn invalid(exif: Exif) {
        let result = read(&exif);
        assert!(result.is_err(), "{exif:?} read as {result:?}");
    }

    #[test]
    fn malformed_gps_time_stamps_are_invalid() {
        for parts in [
            &[(11, 1), (58, 1), (30, 0)][..],
            &[(24, 1), (0, 1), (0, 1)],
            &[(11, 1), (60, 1), (0, 1)],
            &[(11, 1), (0, 1), (60, 1)],
            &[(47, 2), (59, 1), (0, 1)],
            &[(11, 1), (58, 1)],
            &[(11, 1), (58, 1), (0, 1), (0, 1)],
            &[],
        ] {
            invalid(with(full(), Entry::rationals(TAG_GPS_TIME_STAMP, parts)));
        }
        let edge = Entry::rationals(TAG_GPS_TIME_STAMP, &[(23, 1), (59, 1), (5999, 100)]);
        assert_eq!(
            read(&with(full(), edge)).unwrap().taken_at,
            Some(at("2029-06-01T23:59:59.99Z"))
        );
        let fractional = Entry::rationals(TAG_GPS_TIME_STAMP, &[(21, 2), (1, 2), (0, 1)]);
        assert_eq!(
            read(&with(full(), fractional)).unwrap().taken_at,
            Some(at("2029-06-01T10:30:30Z"))
        );
        invalid(with(full(), Entry::ascii(TAG_GPS_TIME_STAMP, "11:58:30")));
        invalid(with(
            full(),
            Entry::shorts(TAG_GPS_TIME_STAMP, &[11, 58, 30]),
        ));
    }

    #[test]
    fn malformed_dates_are_invalid() {
        for text in [
            "2029-06-01",
            "2029:02:30",
            "2029:13:01",
            "0000:00:00",
            "1969:12:31",
            "29:06:01",
            "2029:06:1x",
        ] {
            invalid(with(full(), Entry::ascii(TAG_GPS_DATE_STAMP, text)));
        }
        invalid(with(
            full(),
            Entry::rationals(TAG_GPS_DATE_STAMP, &[(2029, 1)]),
        ));
        let two_strings = Entry::ascii(TAG_GPS_DATE_STAMP, "2029:06:01\x002029:06:02");
        invalid(with(full(), two_strings));
        for text in [
            "2029:06:01 24:00:00",
            "2029:06:01 12:60:00",
            "2029:06:01 12:00:60",
            "2029:06:31 12:00:00",
            "2029-06-01T12:00:00",
            "2029:06:01 12:00",
            "2029:06:01 12:00:00Z",
            "0000:00:00 00:00:00",
            "2029:06:01 +2:00:00",
        ] {
            let exif = without(full(), TAG_GPS_DATE_STAMP);
            invalid(with(exif, Entry::ascii(TAG_DATE_TIME_ORIGINAL, text)));
        }
        // Even when the GPS time wins, a malformed DateTimeOriginal is malformed EXIF.
        invalid(with(
            full(),
            Entry::ascii(TAG_DATE_TIME_ORIGINAL, "yesterday noon"),
        ));
    }

    #[test]
    fn malformed_offsets_are_invalid() {
        for text in [
            "+1:00",
            "01:00",
            "+01:60",
            "+15:00",
            "+14:01",
            "Z",
            "+01:00:00",
            "+0100",
        ] {
            invalid(with(full(), Entry::ascii(TAG_OFFSET_TIME_ORIGINAL, text)));
        }
        let edge = without(full(), TAG_GPS_DATE_STAMP);
        let edge = with(edge, Entry::ascii(TAG_OFFSET_TIME_ORIGINAL, "-14:00"));
        let edge = with(
            edge,
            Entry::ascii(TAG_DATE_TIME_ORIGINAL, "2029:06:01 13:00:00"),
        );
        assert_eq!(
            read(&edge).unwrap().taken_at,
            Some(at("2029-06-02T03:00:00Z"))
        );
    }

    #[test]
    fn malformed_coordinates_are_invalid() {
        for (tag, parts) in [
            (TAG_GPS_LATITUDE, &[(4, 0), (19, 1), (0, 1)][..]),
            (TAG_GPS_LATITUDE, &[(4, 1), (19, 1), (0, 0)]),
            (TAG_GPS_LATITUDE, &[(91, 1), (0, 1), (0, 1)]),
            (TAG_GPS_LATITUDE, &[(90, 1), (0, 1), (1, 1)]),
            (TAG_GPS_LATITUDE, &[(89, 1), (60, 1), (0, 1)]),
            (TAG_GPS_LATITUDE, &[(89, 1), (59, 1), (60, 1)]),
            (TAG_GPS_LATITUDE, &[(4, 1), (19, 1)]),
            (TAG_GPS_LATITUDE, &[(4, 1), (19, 1), (0, 1), (0, 1)]),
            (TAG_GPS_LONGITUDE, &[(181, 1), (0, 1), (0, 1)]),
            (TAG_GPS_LONGITUDE, &[(180, 1), (0, 1), (1, 100)]),
            (TAG_GPS_LONGITUDE, &[(0, 0), (0, 0), (0, 0)]),
        ] {
            invalid(with(full(), Entry::rationals(tag, parts)));
        }
        for (tag, text) in [
            (TAG_GPS_LATITUDE_REF, "E"),
            (TAG_GPS_LATITUDE_REF, "North"),
            (TAG_GPS_LONGITUDE_REF, "N"),
            (TAG_GPS_LONGITUDE_REF, "X"),
        ] {
            invalid(with(full(), Entry::ascii(tag, text)));
        }
        invalid(with(full(), Entry::shorts(TAG_GPS_LATITUDE, &[4, 19, 18])));
        invalid(with(full(), Entry::shorts(TAG_GPS_LATITUDE_REF, &[78])));
        // Even without its ref, a present coordinate must be well formed.
        let lone = without(full(), TAG_GPS_LATITUDE_REF);
        invalid(with(
            lone,
            Entry::rationals(TAG_GPS_LATITUDE, &[(95, 1), (0, 1), (0, 1)]),
        ));
    }

    #[test]
    fn a_non_zero_next_offset_after_a_sub_ifd_is_ignored() {
        let piexif_style = Exif {
            sub_ifd_next: 0x3132_3334,
            ..full()
        };
        assert_eq!(read(&piexif_style), read(&full()));
        // Not after IFD0, where it would name a thumbnail IFD that is not there.
        invalid(Exif {
            ifd0_next: 0x3132_3334,
            ..full()
        });
    }

    #[test]
    fn structural_lies_are_invalid_not_panics() {
        // A value said to be out of line, past the end of the data.
        invalid(with(
            full(),
            Entry::raw(TAG_GPS_LATITUDE, RATIONAL, 3, 0xffff_fff0),
        ));
        // A huge component count.
        invalid(with(
            full(),
            Entry::raw(TAG_GPS_LATITUDE, RATIONAL, u32::MAX, 40),
        ));
        // An IFD whose next pointer is itself.
        invalid(Exif {
            ifd0_next: IFD0,
            ..full()
        });
        // The GPS pointer pointing back at IFD0.
        let mut looped = full();
        looped.no_pointers = true;
        looped.ifd0.push(Entry::raw(TAG_GPS_IFD, LONG, 1, IFD0));
        invalid(looped);
        // A pointer into nowhere.
        let mut dangling = full();
        dangling.no_pointers = true;
        dangling
            .ifd0
            .push(Entry::raw(TAG_EXIF_IFD, LONG, 1, 0x7fff_0000));
        invalid(dangling);
        // IFD0 claiming far more entries than there are bytes.
        let mut jpeg = full().jpeg();
        let count_at = TIFF_START + IFD0 as usize;
        jpeg[count_at..count_at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(read_evidence(&jpeg).is_err());
    }
}
