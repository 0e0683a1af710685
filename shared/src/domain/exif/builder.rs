//! A tiny EXIF writer for tests: a JPEG (SOI, APP1 "Exif\0\0" holding a
//! little-endian TIFF, EOI) whose IFD0, Exif IFD and GPS IFD hold the entries
//! a test chooses, including broken ones. Shared by the reader's unit tests and
//! by `tests/exif_fuzz.rs` (through `#[path]`), so it uses nothing of the crate.

#![allow(dead_code)]

/// TIFF field types.
pub const ASCII: u16 = 2;
pub const SHORT: u16 = 3;
pub const LONG: u16 = 4;
pub const RATIONAL: u16 = 5;

/// Where the TIFF header starts in `jpeg()`'s output: SOI (2), APP1 marker
/// (2), segment length (2), "Exif\0\0" (6).
pub const TIFF_START: usize = 12;
/// Where IFD0 starts inside the TIFF.
pub const IFD0: u32 = 8;

pub const TAG_EXIF_IFD: u16 = 0x8769;
pub const TAG_GPS_IFD: u16 = 0x8825;
pub const TAG_DATE_TIME_ORIGINAL: u16 = 0x9003;
pub const TAG_OFFSET_TIME_ORIGINAL: u16 = 0x9011;
pub const TAG_GPS_LATITUDE_REF: u16 = 0x1;
pub const TAG_GPS_LATITUDE: u16 = 0x2;
pub const TAG_GPS_LONGITUDE_REF: u16 = 0x3;
pub const TAG_GPS_LONGITUDE: u16 = 0x4;
pub const TAG_GPS_TIME_STAMP: u16 = 0x7;
pub const TAG_GPS_DATE_STAMP: u16 = 0x1d;

/// One IFD entry: a tag, a type, a count and the value's bytes (written inline
/// when they fit in 4 bytes, else out of line). `raw` writes `count` and the
/// 4-byte value/offset field as given, whatever they claim.
#[derive(Debug, Clone)]
pub struct Entry {
    pub tag: u16,
    pub typ: u16,
    pub count: u32,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    Bytes(Vec<u8>),
    /// The value/offset field verbatim (for lies about counts and offsets).
    Field([u8; 4]),
}

impl Entry {
    pub fn ascii(tag: u16, text: &str) -> Entry {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        Entry {
            tag,
            typ: ASCII,
            count: bytes.len() as u32,
            value: Value::Bytes(bytes),
        }
    }

    pub fn rationals(tag: u16, values: &[(u32, u32)]) -> Entry {
        let bytes = values
            .iter()
            .flat_map(|&(num, den)| num.to_le_bytes().into_iter().chain(den.to_le_bytes()))
            .collect();
        Entry {
            tag,
            typ: RATIONAL,
            count: values.len() as u32,
            value: Value::Bytes(bytes),
        }
    }

    pub fn shorts(tag: u16, values: &[u16]) -> Entry {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Entry {
            tag,
            typ: SHORT,
            count: values.len() as u32,
            value: Value::Bytes(bytes),
        }
    }

    pub fn raw(tag: u16, typ: u16, count: u32, field: u32) -> Entry {
        Entry {
            tag,
            typ,
            count,
            value: Value::Field(field.to_le_bytes()),
        }
    }

    /// Degrees, minutes and seconds as whole numbers and hundredths of a second.
    pub fn dms(tag: u16, degrees: u32, minutes: u32, centiseconds: u32) -> Entry {
        Entry::rationals(tag, &[(degrees, 1), (minutes, 1), (centiseconds, 100)])
    }
}

/// The three IFDs. The Exif and GPS pointers are added to IFD0 when their IFD
/// has entries (unless `no_pointers`); IFD0's next-IFD offset is `ifd0_next`.
#[derive(Debug, Clone, Default)]
pub struct Exif {
    pub ifd0: Vec<Entry>,
    pub exif: Vec<Entry>,
    pub gps: Vec<Entry>,
    pub ifd0_next: u32,
    /// The next-IFD offset written after the Exif and GPS IFDs (0 by the spec).
    pub sub_ifd_next: u32,
    pub no_pointers: bool,
}

fn ifd_len(entries: usize) -> u32 {
    2 + 12 * entries as u32 + 4
}

impl Exif {
    /// The TIFF block: header, IFD0, Exif IFD, GPS IFD, then out-of-line values.
    pub fn tiff(&self) -> Vec<u8> {
        let with_pointers = !self.no_pointers;
        let mut ifd0 = self.ifd0.clone();
        let n0 = ifd0.len()
            + usize::from(with_pointers && !self.exif.is_empty())
            + usize::from(with_pointers && !self.gps.is_empty());
        let exif_at = IFD0 + ifd_len(n0);
        let gps_at = exif_at
            + if self.exif.is_empty() {
                0
            } else {
                ifd_len(self.exif.len())
            };
        let data_at = gps_at
            + if self.gps.is_empty() {
                0
            } else {
                ifd_len(self.gps.len())
            };
        if with_pointers && !self.exif.is_empty() {
            ifd0.push(Entry::raw(TAG_EXIF_IFD, LONG, 1, exif_at));
        }
        if with_pointers && !self.gps.is_empty() {
            ifd0.push(Entry::raw(TAG_GPS_IFD, LONG, 1, gps_at));
        }

        let mut out = b"II\x2a\x00".to_vec();
        out.extend(IFD0.to_le_bytes());
        let mut data = Vec::new();
        let ifds = [
            (&ifd0, self.ifd0_next),
            (&self.exif, self.sub_ifd_next),
            (&self.gps, self.sub_ifd_next),
        ];
        for (entries, next) in ifds {
            if entries.is_empty() && out.len() > 8 {
                continue;
            }
            out.extend((entries.len() as u16).to_le_bytes());
            for entry in entries {
                out.extend(entry.tag.to_le_bytes());
                out.extend(entry.typ.to_le_bytes());
                out.extend(entry.count.to_le_bytes());
                match &entry.value {
                    Value::Field(field) => out.extend(field),
                    Value::Bytes(bytes) if bytes.len() <= 4 => {
                        let mut field = [0u8; 4];
                        field[..bytes.len()].copy_from_slice(bytes);
                        out.extend(field);
                    }
                    Value::Bytes(bytes) => {
                        out.extend((data_at + data.len() as u32).to_le_bytes());
                        data.extend(bytes);
                        if data.len() % 2 == 1 {
                            data.push(0); // values start on word boundaries
                        }
                    }
                }
            }
            out.extend(next.to_le_bytes());
        }
        assert_eq!(out.len() as u32, data_at, "layout");
        out.extend(data);
        out
    }

    pub fn jpeg(&self) -> Vec<u8> {
        jpeg_with_app1(&self.tiff())
    }
}

/// SOI, APP1 "Exif\0\0" + `tiff`, a comment segment standing for the image
/// data, EOI.
pub fn jpeg_with_app1(tiff: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    out.extend(b"Exif\0\0");
    out.extend(tiff);
    out.extend(plain_jpeg_body());
    out
}

/// A JPEG with no APP1 at all.
pub fn jpeg_without_exif() -> Vec<u8> {
    let mut out = vec![0xff, 0xd8];
    out.extend(plain_jpeg_body());
    out
}

fn plain_jpeg_body() -> Vec<u8> {
    let mut out = vec![0xff, 0xfe, 0x00, 0x06];
    out.extend(b"test");
    out.extend([0xff, 0xd9]);
    out
}

/// A JPEG as a phone camera writes it: GPS date and time stamp (UTC) and,
/// if given, the position in decimal degrees (written as degrees, minutes
/// and hundredths of seconds). `date` is `YYYY:MM:DD`, `time` (h, m, s).
pub fn gps_photo(date: &str, time: (u32, u32, u32), position: Option<(f64, f64)>) -> Vec<u8> {
    let mut gps = vec![
        Entry::rationals(TAG_GPS_TIME_STAMP, &[(time.0, 1), (time.1, 1), (time.2, 1)]),
        Entry::ascii(TAG_GPS_DATE_STAMP, date),
    ];
    if let Some((lat, lng)) = position {
        let dms = |tag: u16, degrees: f64| {
            let centiseconds = (degrees.abs() * 360_000.0).round() as u64;
            let d = (centiseconds / 360_000) as u32;
            let m = ((centiseconds % 360_000) / 6_000) as u32;
            Entry::dms(tag, d, m, (centiseconds % 6_000) as u32)
        };
        gps.push(Entry::ascii(
            TAG_GPS_LATITUDE_REF,
            if lat < 0.0 { "S" } else { "N" },
        ));
        gps.push(dms(TAG_GPS_LATITUDE, lat));
        gps.push(Entry::ascii(
            TAG_GPS_LONGITUDE_REF,
            if lng < 0.0 { "W" } else { "E" },
        ));
        gps.push(dms(TAG_GPS_LONGITUDE, lng));
    }
    Exif {
        gps,
        ..Exif::default()
    }
    .jpeg()
}
