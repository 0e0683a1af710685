//! The console's CSP lets proof photos load from the origin `console`
//! derives from the settings; here that origin is compared with the URLs the
//! real S3 presigner of `shared::blob` makes from the same settings (offline:
//! presigning calls nothing).

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use shared::blob::Blob;
use std::time::Duration;

fn sdk(region: &str, endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "not-a-secret",
            None,
            None,
            "test",
        )));
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    builder.build()
}

/// `scheme://authority` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").expect("a URL") + 3;
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

async fn presigned_origin(region: &str, endpoint: Option<&str>, bucket: &str) -> String {
    let blob = Blob::new(Blob::new_client(&sdk(region, endpoint)), bucket);
    let url = blob
        .presign_get("proofs/abc", Duration::from_secs(300))
        .await
        .expect("presigning is offline");
    origin_of(&url).to_string()
}

fn console_origin(region: &str, endpoint: Option<&str>, bucket: &str) -> String {
    console::proof_origin(|name| match name {
        "KOBATELA_PROOF_BUCKET" => Some(bucket.to_string()),
        "AWS_REGION" => Some(region.to_string()),
        "AWS_ENDPOINT_URL" => endpoint.map(str::to_string),
        _ => None,
    })
    .expect("settings are complete")
}

#[tokio::test]
async fn the_csp_names_the_origin_presigned_urls_point_at() {
    for (region, endpoint, bucket) in [
        (
            "us-east-1",
            Some("http://127.0.0.1:5005"),
            "kobatela-proofs-local",
        ),
        ("eu-west-3", Some("http://localhost:4566/"), "b"),
        ("eu-west-3", None, "kobatela-proofbucket-1a2b3c"),
        ("us-east-1", None, "proofs"),
    ] {
        assert_eq!(
            console_origin(region, endpoint, bucket),
            presigned_origin(region, endpoint, bucket).await,
            "{region} {endpoint:?} {bucket}"
        );
    }
}
