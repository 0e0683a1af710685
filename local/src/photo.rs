//! `kobatela-local photo --lat L --lng G --out FILE`: a JPEG whose EXIF says
//! it was taken now, at (L, G), for trying `POST /proofs` by hand (a PHOTO
//! milestone accepts photos up to 120 minutes old). The writer is the tests'
//! (`shared::domain::exif::builder`).

use chrono::{Datelike, Timelike, Utc};
use shared::domain::exif::builder::gps_photo;

pub fn write(args: &[&str]) -> Result<(), String> {
    let mut lat = None;
    let mut lng = None;
    let mut out = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match *flag {
            "--lat" => lat = Some(degrees(value, 90.0, "--lat")?),
            "--lng" => lng = Some(degrees(value, 180.0, "--lng")?),
            "--out" => out = Some(value.to_string()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let out = out.ok_or("--out FILE is required")?;
    let position = match (lat, lng) {
        (Some(lat), Some(lng)) => Some((lat, lng)),
        (None, None) => None,
        _ => return Err("give both --lat and --lng, or neither".into()),
    };
    let now = Utc::now();
    let date = format!("{:04}:{:02}:{:02}", now.year(), now.month(), now.day());
    let bytes = gps_photo(&date, (now.hour(), now.minute(), now.second()), position);
    std::fs::write(&out, &bytes).map_err(|e| format!("cannot write {out}: {e}"))?;
    println!(
        "{out}: {} bytes, taken {}",
        bytes.len(),
        now.format("%Y-%m-%dT%H:%M:%SZ")
    );
    Ok(())
}

fn degrees(text: &str, limit: f64, flag: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && d.abs() <= limit)
        .ok_or_else(|| format!("{flag} must be a number from -{limit} to {limit}"))
}
