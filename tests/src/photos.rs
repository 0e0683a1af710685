//! Proof files for the tests: JPEGs with a chosen capture time and place
//! (the EXIF writer of `shared::domain::exif::builder`), and the client's
//! side of a presigned PUT.

use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::domain::exif::builder::gps_photo;

/// A JPEG taken `ago` seconds before now (negative: in the future), at
/// `position`.
pub fn photo(ago: i64, position: Option<(f64, f64)>) -> Vec<u8> {
    use chrono::{Datelike, Timelike};
    let at = chrono::Utc::now() - chrono::TimeDelta::seconds(ago);
    let date = format!("{:04}:{:02}:{:02}", at.year(), at.month(), at.day());
    gps_photo(&date, (at.hour(), at.minute(), at.second()), position)
}

/// `jpeg` with a random comment segment before its EOI: same EXIF, a new
/// SHA-256.
pub fn unique_bytes(mut jpeg: Vec<u8>) -> Vec<u8> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let eoi = jpeg.split_off(jpeg.len() - 2);
    jpeg.extend([0xff, 0xfe]);
    jpeg.extend(((tag.len() + 2) as u16).to_be_bytes());
    jpeg.extend(tag.as_bytes());
    jpeg.extend(eoi);
    jpeg
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The body of `POST /proofs/uploads` for `bytes`.
pub fn upload_body(escrow: u64, idx: u32, content_type: &str, bytes: &[u8]) -> Value {
    serde_json::json!({"escrow_id": escrow, "milestone_idx": idx, "content_type": content_type,
                       "content_length": bytes.len(), "sha256": sha256_hex(bytes)})
}

/// PUTs `bytes` to the presigned URL of an upload answer with the returned
/// headers (all of them, or all but content-length, to send another length
/// than declared); answers the status.
pub async fn put_presigned(upload: &Value, bytes: Vec<u8>, with_length: bool) -> u16 {
    assert_eq!(upload["method"], "PUT");
    let mut request = crate::http_client().put(upload["url"].as_str().expect("a url"));
    for (name, value) in upload["headers"].as_object().expect("headers") {
        if !with_length && name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        request = request.header(name.as_str(), value.as_str().expect("a text"));
    }
    request
        .body(bytes)
        .send()
        .await
        .expect("the emulator answers")
        .status()
        .as_u16()
}
