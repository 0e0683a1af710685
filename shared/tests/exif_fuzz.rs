//! Robustness of the EXIF reader: tens of thousands of mutated images go
//! through `read_evidence`; none may panic and each must be answered quickly.
//! The mutations are deterministic (a seeded xorshift), so a failure names a
//! case that reproduces.

#[path = "../src/domain/exif/builder.rs"]
mod builder;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use builder::*;
use shared::domain::exif::read_evidence;

const PER_FILE_LIMIT: Duration = Duration::from_millis(50);
const TOTAL_LIMIT: Duration = Duration::from_secs(30);

/// xorshift64*: small, seeded, good enough to pick bytes and bits.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Default)]
struct Run {
    count: usize,
    ok: usize,
    total: Duration,
    slowest: (Duration, String),
}

impl Run {
    fn feed(&mut self, case: impl Fn() -> String, bytes: &[u8]) {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| read_evidence(bytes)));
        let took = started.elapsed();
        let Ok(result) = result else {
            panic!(
                "read_evidence panicked on {} ({} bytes)",
                case(),
                bytes.len()
            );
        };
        // A wall-clock limit also catches the machine's other load: a file
        // over it is timed again, and only one slow every time fails.
        let took = if took < PER_FILE_LIMIT {
            took
        } else {
            (0..3)
                .map(|_| {
                    let started = Instant::now();
                    let _ = read_evidence(bytes);
                    started.elapsed()
                })
                .min()
                .unwrap_or(took)
        };
        assert!(took < PER_FILE_LIMIT, "{} took {took:?}", case());
        self.count += 1;
        self.ok += usize::from(result.is_ok());
        self.total += took;
        if took > self.slowest.0 {
            self.slowest = (took, case());
        }
    }
}

/// A GPS time and position, a DateTimeOriginal with its offset, and a thumbnail
/// IFD pointer target: every field the reader looks at.
fn full() -> Exif {
    Exif {
        ifd0: vec![Entry::ascii(0x010f, "Kobatela")],
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

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("built", full().jpeg()),
        (
            "piexif-gps",
            include_bytes!("fixtures/gps_time_and_position.jpg").to_vec(),
        ),
        (
            "piexif-offset",
            include_bytes!("fixtures/date_time_original_with_offset.jpg").to_vec(),
        ),
        (
            "pillow-png",
            include_bytes!("fixtures/gps_time_and_position.png").to_vec(),
        ),
        ("no-exif", include_bytes!("fixtures/no_exif.jpg").to_vec()),
    ]
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// The built JPEG's IFDs: (offset of the IFD's count in the JPEG, entries).
fn ifds(jpeg: &[u8]) -> Vec<(usize, usize)> {
    let ifd0 = TIFF_START + IFD0 as usize;
    let mut found = vec![(ifd0, u16_at(jpeg, ifd0) as usize)];
    for i in 0..found[0].1 {
        let entry = ifd0 + 2 + 12 * i;
        if matches!(u16_at(jpeg, entry), TAG_EXIF_IFD | TAG_GPS_IFD) {
            let at = TIFF_START + u32_at(jpeg, entry + 8) as usize;
            found.push((at, u16_at(jpeg, at) as usize));
        }
    }
    found
}

/// Four bytes to write at an offset of the JPEG.
type Patch = (usize, [u8; 4]);

fn patch(jpeg: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    out[at..at + bytes.len()].copy_from_slice(bytes);
    out
}

#[test]
fn mutated_images_never_panic_and_are_answered_quickly() {
    let started = Instant::now();
    let mut run = Run::default();
    let seeds = seeds();
    for (name, seed) in &seeds {
        assert!(read_evidence(seed).is_ok(), "seed {name} must read");
    }

    // 1. Every truncation of every seed.
    for (name, seed) in &seeds {
        for len in 0..seed.len() {
            run.feed(|| format!("{name} cut at {len}"), &seed[..len]);
        }
    }

    // 2. Random bit flips, mostly in the EXIF block at the front.
    let mut rng = Rng(0x6b6f_6261_7465_6c61);
    for (name, seed) in &seeds {
        let front = seed.len().min(400);
        for round in 0..3_000 {
            let state = rng.0;
            let mut bytes = seed.clone();
            for _ in 0..1 + rng.below(8) {
                let at = if rng.below(4) == 0 {
                    rng.below(seed.len())
                } else {
                    rng.below(front)
                };
                bytes[at] ^= 1 << rng.below(8);
            }
            run.feed(
                || format!("{name} flip round {round} (rng state {state:#x})"),
                &bytes,
            );
        }
    }

    // 3. Random words overwritten with boundary values in the TIFF block.
    let values = [
        0u32,
        1,
        2,
        7,
        8,
        0xff,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
    ];
    for (name, seed) in &seeds {
        let end = seed.len().min(400);
        for round in 0..400 {
            let state = rng.0;
            let at = TIFF_START + rng.below(end.saturating_sub(TIFF_START + 4).max(1));
            let value = values[rng.below(values.len())].to_le_bytes();
            let width = [1, 2, 4][rng.below(3)];
            let bytes = patch(seed, at.min(seed.len() - width), &value[..width]);
            run.feed(
                || format!("{name} word round {round} (rng state {state:#x})"),
                &bytes,
            );
        }
    }

    // 4. Structural lies in the built file: every entry's type, count and
    //    value/offset field, and every IFD's entry count.
    let jpeg = full().jpeg();
    let tiff_len = (jpeg.len() - TIFF_START) as u32;
    for (ifd, entries) in ifds(&jpeg) {
        for count in [0u16, 1, entries as u16 + 1, 0x100, 0x7fff, 0x8000, u16::MAX] {
            run.feed(
                || format!("IFD at {ifd} with {count} entries"),
                &patch(&jpeg, ifd, &count.to_le_bytes()),
            );
        }
        for i in 0..entries {
            let entry = ifd + 2 + 12 * i;
            for typ in (0u16..=13).chain([0x7fff, u16::MAX]) {
                run.feed(
                    || format!("entry {entry} type {typ}"),
                    &patch(&jpeg, entry + 2, &typ.to_le_bytes()),
                );
            }
            for count in [
                0u32,
                1,
                2,
                3,
                4,
                0x100,
                0x1000_0001,
                0x4000_0000,
                0x7fff_ffff,
                u32::MAX,
            ] {
                run.feed(
                    || format!("entry {entry} count {count}"),
                    &patch(&jpeg, entry + 4, &count.to_le_bytes()),
                );
            }
            for field in [
                0u32,
                IFD0,
                tiff_len - 1,
                tiff_len,
                tiff_len + 1,
                0x7fff_ffff,
                u32::MAX - 3,
                u32::MAX,
            ] {
                run.feed(
                    || format!("entry {entry} field {field}"),
                    &patch(&jpeg, entry + 8, &field.to_le_bytes()),
                );
            }
        }
    }

    // 5. IFD offsets that loop: to themselves, to each other, next-IFD chains.
    //    A followed loop is refused; a sub-IFD's next offset is never followed
    //    (the tolerance for piexif), so the file reads as if it were 0.
    let [(ifd0, _), (exif_ifd, _), (gps_ifd, _)] = ifds(&jpeg)[..] else {
        panic!("the built file has three IFDs");
    };
    let to_tiff = |at: usize| ((at - TIFF_START) as u32).to_le_bytes();
    let pointer_field = |ifd: usize, tag: u16| {
        (0..u16_at(&jpeg, ifd) as usize)
            .map(|i| ifd + 2 + 12 * i)
            .find(|&e| u16_at(&jpeg, e) == tag)
            .map(|e| e + 8)
            .unwrap()
    };
    let next_field = |ifd: usize| ifd + 2 + 12 * u16_at(&jpeg, ifd) as usize;
    let exif_pointer = pointer_field(ifd0, TAG_EXIF_IFD);
    let gps_pointer = pointer_field(ifd0, TAG_GPS_IFD);
    let loops: Vec<(&str, Vec<Patch>)> = vec![
        (
            "IFD0 next is itself",
            vec![(next_field(ifd0), to_tiff(ifd0))],
        ),
        ("Exif pointer to IFD0", vec![(exif_pointer, to_tiff(ifd0))]),
        ("GPS pointer to IFD0", vec![(gps_pointer, to_tiff(ifd0))]),
        (
            "both pointers to the Exif IFD",
            vec![(gps_pointer, to_tiff(exif_ifd))],
        ),
        (
            "Exif next is itself",
            vec![(next_field(exif_ifd), to_tiff(exif_ifd))],
        ),
        (
            "GPS next is itself",
            vec![(next_field(gps_ifd), to_tiff(gps_ifd))],
        ),
        (
            "Exif and GPS next to each other",
            vec![
                (next_field(exif_ifd), to_tiff(gps_ifd)),
                (next_field(gps_ifd), to_tiff(exif_ifd)),
            ],
        ),
        (
            "IFD0 next to the GPS IFD",
            vec![(next_field(ifd0), to_tiff(gps_ifd))],
        ),
        (
            "IFD0 next to the Exif IFD whose next is IFD0",
            vec![
                (next_field(ifd0), to_tiff(exif_ifd)),
                (next_field(exif_ifd), to_tiff(ifd0)),
            ],
        ),
    ];
    for (name, patches) in &loops {
        let mut bytes = jpeg.clone();
        for (at, value) in patches {
            bytes[*at..*at + 4].copy_from_slice(value);
        }
        run.feed(|| name.to_string(), &bytes);
        let sub_ifd_next_only = patches
            .iter()
            .all(|(at, _)| [next_field(exif_ifd), next_field(gps_ifd)].contains(at));
        if sub_ifd_next_only {
            assert_eq!(read_evidence(&bytes), read_evidence(&jpeg), "{name}");
        } else {
            assert!(read_evidence(&bytes).is_err(), "{name} must be refused");
        }
    }

    // 6. Built files whose entries claim huge counts at every offset.
    for count in [0x1000_0000u32, 0x4000_0000, 0x8000_0000, u32::MAX] {
        for typ in [ASCII, SHORT, LONG, RATIONAL, 7, 12] {
            for tag in [
                TAG_GPS_LATITUDE,
                TAG_GPS_TIME_STAMP,
                TAG_GPS_DATE_STAMP,
                TAG_DATE_TIME_ORIGINAL,
            ] {
                let mut exif = full();
                exif.gps.retain(|e| e.tag != tag);
                exif.exif.retain(|e| e.tag != tag);
                let lie = Entry::raw(tag, typ, count, 40);
                if tag == TAG_DATE_TIME_ORIGINAL {
                    exif.exif.push(lie)
                } else {
                    exif.gps.push(lie)
                }
                run.feed(
                    || format!("tag {tag:#x} type {typ} count {count}"),
                    &exif.jpeg(),
                );
            }
        }
    }

    // 7. HEIF: a valid ftyp box, then random boxes of the kinds the reader
    //    walks to find the Exif item, with random (often lying) sizes.
    let kinds: [&[u8; 4]; 9] = [
        b"meta", b"hdlr", b"pitm", b"iinf", b"infe", b"iloc", b"iref", b"Exif", b"mdat",
    ];
    for round in 0..2_000 {
        let state = rng.0;
        let mut bytes = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
        for _ in 0..1 + rng.below(6) {
            let body_len = rng.below(40);
            let size = match rng.below(4) {
                0 => rng.next() as u32,
                1 => 1, // a 64-bit size follows
                _ => (8 + body_len) as u32,
            };
            bytes.extend(size.to_be_bytes());
            bytes.extend(kinds[rng.below(kinds.len())]);
            if size == 1 {
                bytes.extend(rng.next().to_be_bytes());
            }
            bytes.extend((0..body_len).map(|_| {
                if rng.below(3) == 0 {
                    0
                } else {
                    rng.next() as u8
                }
            }));
        }
        run.feed(
            || format!("heif round {round} (rng state {state:#x})"),
            &bytes,
        );
    }

    let elapsed = started.elapsed();
    println!(
        "exif fuzz: {} files ({} read, {} refused) in {:?} (reader time {:?}); slowest {:?}: {}",
        run.count,
        run.ok,
        run.count - run.ok,
        elapsed,
        run.total,
        run.slowest.0,
        run.slowest.1
    );
    assert!(run.count >= 10_000, "only {} cases", run.count);
    assert!(elapsed < TOTAL_LIMIT, "the run took {elapsed:?}");
}
