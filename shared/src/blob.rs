//! The proof bucket (S3): presigned PUTs and GETs, and the server's own
//! bounded read of an uploaded object. Only the proofs function uses it
//! (cargo feature `blob`), so no other function links the S3 client.
//!
//! Locally the client points at the emulator (`AWS_ENDPOINT_URL`) with
//! path-style addressing, so presigned URLs work on 127.0.0.1.

use crate::{domain::error::ErrorCode, error::AppError};
use aws_sdk_s3::{
    error::{ProvideErrorMetadata, SdkError},
    operation::get_object::GetObjectError,
    presigning::PresigningConfig,
    primitives::ByteStream,
    Client,
};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

/// The variable naming the proof bucket.
pub const BUCKET_VARIABLE: &str = "KOBATELA_PROOF_BUCKET";

/// The bucket and its client, built once per container.
#[derive(Clone)]
pub struct Blob {
    client: Client,
    bucket: Arc<str>,
    /// Bytes of object bodies received so far (for the round-trip tests).
    bytes_read: Arc<AtomicU64>,
}

/// A presigned request: send `method` to `url` with exactly `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// What a bounded read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// No object under the key.
    Missing,
    /// The object's first bytes, at most the limit asked for.
    Bytes(Vec<u8>),
}

impl Blob {
    pub fn new(client: Client, bucket: &str) -> Blob {
        Blob {
            client,
            bucket: Arc::from(bucket),
            bytes_read: Arc::default(),
        }
    }

    /// The S3 client of the service: path-style when an endpoint is set
    /// (the local emulator), virtual-hosted on AWS.
    pub fn new_client(sdk: &aws_config::SdkConfig) -> Client {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Client::from_conf(config)
    }

    /// From the environment: `KOBATELA_PROOF_BUCKET` is required.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Blob, String> {
        Blob::from_lookup(sdk, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        sdk: &aws_config::SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Blob, String> {
        let bucket = lookup(BUCKET_VARIABLE)
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .ok_or(format!(
                "{BUCKET_VARIABLE} is not set: the proof bucket is required"
            ))?;
        Ok(Blob::new(Blob::new_client(sdk), &bucket))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `s3://bucket/key`, a proof's `storage_url`.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Body bytes received by bounded reads so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::SeqCst)
    }

    /// A presigned PUT of `key` that signs the content type, the length and
    /// the SHA-256 checksum (base64): S3 refuses any other bytes.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        checksum_sha256_base64: &str,
        valid_for: Duration,
    ) -> Result<Presigned, AppError> {
        let config = PresigningConfig::expires_in(valid_for).map_err(AppError::internal)?;
        let request = self
            .client
            .put_object()
            .bucket(self.bucket.as_ref())
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(content_length).map_err(AppError::internal)?)
            .checksum_sha256(checksum_sha256_base64)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign put", e))?;
        Ok(Presigned {
            method: request.method().to_string(),
            url: request.uri().to_string(),
            headers: request
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    /// A presigned GET of `key`.
    pub async fn presign_get(&self, key: &str, valid_for: Duration) -> Result<String, AppError> {
        let config = PresigningConfig::expires_in(valid_for).map_err(AppError::internal)?;
        let request = self
            .client
            .get_object()
            .bucket(self.bucket.as_ref())
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign get", e))?;
        Ok(request.uri().to_string())
    }

    /// Reads at most `limit` bytes of `key` (a ranged GET, and the body is
    /// cut at `limit` whatever the server sends).
    pub async fn read_bounded(&self, key: &str, limit: u64) -> Result<Read, AppError> {
        let result = self
            .client
            .get_object()
            .bucket(self.bucket.as_ref())
            .key(key)
            .range(format!("bytes=0-{}", limit.saturating_sub(1)))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(SdkError::ServiceError(e)) => {
                let err = e.into_err();
                return match err {
                    GetObjectError::NoSuchKey(_) => Ok(Read::Missing),
                    // An empty object has no byte 0: nothing to read.
                    other if other.code() == Some("InvalidRange") => Ok(Read::Bytes(Vec::new())),
                    other if other.code() == Some("NoSuchKey") => Ok(Read::Missing),
                    other => Err(s3_error("get object", other)),
                };
            }
            Err(other) => return Err(s3_error("get object", other)),
        };
        let mut body = output.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| s3_error("read object", e))?
        {
            let room = (limit as usize).saturating_sub(bytes.len());
            let take = chunk.len().min(room);
            bytes.extend_from_slice(&chunk[..take]);
            self.bytes_read.fetch_add(take as u64, Ordering::SeqCst);
            if bytes.len() as u64 >= limit {
                break;
            }
        }
        Ok(Read::Bytes(bytes))
    }

    /// Stores `bytes` under `key` (the proof's own copy, kept for good).
    pub async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        checksum_sha256_base64: &str,
    ) -> Result<(), AppError> {
        self.client
            .put_object()
            .bucket(self.bucket.as_ref())
            .key(key)
            .content_type(content_type)
            .checksum_sha256(checksum_sha256_base64)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| s3_error("put object", e))?;
        Ok(())
    }
}

/// An S3 failure: throttling (`SlowDown`, 503) is `SERVICE_BUSY`, anything
/// else internal (logged, never shown).
fn s3_error(what: &'static str, error: impl std::fmt::Debug + std::fmt::Display) -> AppError {
    let text = format!("{error:?}");
    if text.contains("SlowDown") || text.contains("ServiceUnavailable") {
        tracing::warn!(what, "S3 busy");
        return AppError::busy();
    }
    AppError::internal(format!("S3 {what}: {error}"))
}

/// Refusals of the object itself are the client's: no object → 422.
pub fn upload_missing() -> AppError {
    AppError::new(
        ErrorCode::ProofUploadMissing,
        "No file was uploaded for this upload_id: PUT it to the presigned URL first.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_blob() -> Blob {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIDEXAMPLE",
                "not-a-secret",
                None,
                None,
                "test",
            ))
            .endpoint_url("http://127.0.0.1:5005")
            .force_path_style(true)
            .build();
        Blob::new(Client::from_conf(config), "kobatela-proofs-local")
    }

    fn query(url: &str, name: &str) -> Option<String> {
        let (_, query) = url.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.replace("%3B", ";").replace("%3b", ";"))
        })
    }

    #[tokio::test]
    async fn a_presigned_put_signs_type_length_and_checksum() {
        let blob = offline_blob();
        let checksum = crate::domain::upload::checksum_base64(&"ab".repeat(32));
        let put = blob
            .presign_put(
                "uploads/1/1/u",
                "image/jpeg",
                1234,
                &checksum,
                Duration::from_secs(900),
            )
            .await
            .unwrap();
        assert_eq!(put.method, "PUT");
        assert!(
            put.url
                .starts_with("http://127.0.0.1:5005/kobatela-proofs-local/uploads/1/1/u?"),
            "path-style on the endpoint: {}",
            put.url
        );
        let signed = query(&put.url, "X-Amz-SignedHeaders").expect("signed headers");
        let signed: Vec<&str> = signed.split(';').collect();
        for header in [
            "content-length",
            "content-type",
            "host",
            "x-amz-checksum-sha256",
        ] {
            assert!(signed.contains(&header), "{header} not in {signed:?}");
        }
        assert_eq!(query(&put.url, "X-Amz-Expires").as_deref(), Some("900"));
        let header = |name: &str| {
            put.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("content-type"), Some("image/jpeg"));
        assert_eq!(header("content-length"), Some("1234"));
        assert_eq!(header("x-amz-checksum-sha256"), Some(checksum.as_str()));
    }

    #[tokio::test]
    async fn a_presigned_get_expires_in_five_minutes() {
        let url = offline_blob()
            .presign_get("proofs/ab", Duration::from_secs(300))
            .await
            .unwrap();
        assert_eq!(query(&url, "X-Amz-Expires").as_deref(), Some("300"));
    }

    #[test]
    fn the_bucket_is_required() {
        let sdk = aws_config::SdkConfig::builder().build();
        assert!(Blob::from_lookup(&sdk, |_| None).is_err());
        assert!(Blob::from_lookup(&sdk, |_| Some(" ".into())).is_err());
        let blob = Blob::from_lookup(&sdk, |_| Some("b".into())).unwrap();
        assert_eq!(blob.url_of("proofs/x"), "s3://b/proofs/x");
    }
}
