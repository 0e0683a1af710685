//! Proof uploads: what `POST /proofs/uploads` accepts, where the file goes,
//! and the check of the bytes the server reads back. Pure: no I/O.
//!
//! The client declares the type, the length and the SHA-256 of its file; the
//! server pins all three in a presigned PUT, remembers them for a day, and on
//! `POST /proofs` reads the object itself, at most `length + 1` bytes, and
//! hashes what it read. Only bytes of exactly the declared length and hash
//! are a proof (an emulator, or a client that bypasses the presigned URL,
//! may store anything).

use sha2::{Digest, Sha256};

use super::{error::ErrorCode, ids::Id};

/// Largest proof file: 10 MiB.
pub const MAX_PROOF_BYTES: u64 = 10 * 1024 * 1024;

/// The content types a proof may be uploaded as.
pub const CONTENT_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/heic", "application/pdf"];

/// How long a presigned PUT is valid: 15 minutes.
pub const PUT_VALID_SECONDS: u64 = 15 * 60;

/// How long a presigned GET (`download_url`) is valid: 5 minutes.
pub const GET_VALID_SECONDS: u64 = 5 * 60;

/// How long an upload is remembered (and its object kept, by the bucket's
/// lifecycle rule) if it never becomes a proof: one day.
pub const UPLOAD_TTL_SECONDS: i64 = 24 * 3600;

/// Where uploads land; the bucket expires this prefix after a day.
pub const UPLOAD_PREFIX: &str = "uploads/";

/// Where the files of proofs are kept (content-addressed, never expired).
pub const PROOF_PREFIX: &str = "proofs/";

/// The declared content type, as one of [`CONTENT_TYPES`] (any case in).
pub fn content_type(text: &str) -> Result<&'static str, &'static str> {
    CONTENT_TYPES
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(text.trim()))
        .ok_or("must be one of image/jpeg, image/png, image/heic, application/pdf")
}

/// The declared length: 1 … 10485760 bytes.
pub fn content_length(length: u64) -> Result<u64, &'static str> {
    if (1..=MAX_PROOF_BYTES).contains(&length) {
        Ok(length)
    } else {
        Err("must be a whole number of bytes from 1 to 10485760")
    }
}

/// The declared SHA-256: exactly 64 lower-case hex digits.
pub fn sha256_hex(text: &str) -> Result<String, &'static str> {
    if text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(text.to_string())
    } else {
        Err("must be 64 lower-case hexadecimal digits")
    }
}

/// The `x-amz-checksum-sha256` value of a hex SHA-256: base64 of its bytes.
pub fn checksum_base64(sha256_hex: &str) -> String {
    let bytes = hex::decode(sha256_hex).unwrap_or_default();
    base64(&bytes)
}

/// The object key of an upload, chosen by the server.
pub fn upload_key(escrow: Id, milestone_idx: u32, upload_id: &str) -> String {
    format!("{UPLOAD_PREFIX}{escrow}/{milestone_idx}/{upload_id}")
}

/// The object key of a proof's file: its hash, so one file is kept once.
pub fn proof_key(sha256_hex: &str) -> String {
    format!("{PROOF_PREFIX}{sha256_hex}")
}

/// How many bytes the server reads at most: one more than declared, to see
/// that an object is too long without reading all of it.
pub fn read_limit(declared_length: u64) -> u64 {
    declared_length + 1
}

/// Why the bytes read back are not the declared file. Both are 422
/// `PROOF_HASH_MISMATCH`, answered by `From<BytesRefusal> for AppError` in
/// `error.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesRefusal {
    LengthDiffers,
    HashDiffers,
}

impl BytesRefusal {
    pub fn code(self) -> ErrorCode {
        ErrorCode::ProofHashMismatch
    }
}

/// Checks the bytes read back against the declaration: the exact length and
/// the SHA-256 computed here (a stored checksum is never trusted). Anything
/// else is refused.
pub fn check_bytes(
    declared_length: u64,
    declared_sha256: &str,
    bytes: &[u8],
) -> Result<(), BytesRefusal> {
    if bytes.len() as u64 != declared_length {
        return Err(BytesRefusal::LengthDiffers);
    }
    if hex::encode(Sha256::digest(bytes)) != declared_sha256 {
        return Err(BytesRefusal::HashDiffers);
    }
    Ok(())
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_fields_are_checked() {
        assert_eq!(content_type("IMAGE/JPEG"), Ok("image/jpeg"));
        assert_eq!(content_type("application/pdf"), Ok("application/pdf"));
        assert!(content_type("image/gif").is_err());
        assert!(content_type("").is_err());
        assert_eq!(content_length(1), Ok(1));
        assert_eq!(content_length(MAX_PROOF_BYTES), Ok(MAX_PROOF_BYTES));
        assert!(content_length(0).is_err());
        assert!(content_length(MAX_PROOF_BYTES + 1).is_err());
        let hash = "a".repeat(64);
        assert_eq!(sha256_hex(&hash), Ok(hash.clone()));
        assert!(sha256_hex(&"A".repeat(64)).is_err());
        assert!(sha256_hex(&"a".repeat(63)).is_err());
        assert!(sha256_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn checksum_is_base64_of_the_digest() {
        // SHA-256 of "abc".
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(
            checksum_base64(hex),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn keys_are_under_their_prefixes() {
        let escrow = Id::new(7).unwrap();
        assert_eq!(upload_key(escrow, 2, "u1"), "uploads/7/2/u1");
        assert!(upload_key(escrow, 2, "u1").starts_with(UPLOAD_PREFIX));
        assert_eq!(proof_key("ab"), "proofs/ab");
    }

    #[test]
    fn bytes_must_be_exactly_what_was_declared() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(check_bytes(3, hex, b"abc"), Ok(()));
        assert_eq!(check_bytes(3, hex, b"abd"), Err(BytesRefusal::HashDiffers));
        assert_eq!(
            check_bytes(3, hex, b"abcd"),
            Err(BytesRefusal::LengthDiffers)
        );
        assert_eq!(
            check_bytes(4, hex, b"abc"),
            Err(BytesRefusal::LengthDiffers)
        );
        assert_eq!(read_limit(3), 4);
    }
}
