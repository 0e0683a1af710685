//! The page's Content-Security-Policy. Everything comes from the console's
//! own origin, except proof photos: `GET /proofs` hands out presigned URLs of
//! the proof bucket, so `img-src` names that bucket's origin, derived here
//! from the same settings the S3 client of `shared::blob` is built from
//! (the console does not link the S3 SDK to ask it):
//!
//! - `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`: no custom endpoint at all;
//! - else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (the local emulator);
//!   path-style when `AWS_ENDPOINT_URL` is set (`Blob::new_client` forces it
//!   then), so the origin is the endpoint's; otherwise virtual-hosted, the
//!   bucket's name before the endpoint's host;
//! - no endpoint: AWS itself, `https://{bucket}.s3.{region}.amazonaws.com`.
//!
//! `kobatela-local`'s tests check this against URLs the real presigner makes.

/// The bucket variable, as `shared::blob::BUCKET_VARIABLE` names it.
const BUCKET_VARIABLE: &str = "KOBATELA_PROOF_BUCKET";

/// The headers every console answer carries, the CSP built once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    csp: String,
}

impl Policy {
    /// From the environment; an error names the missing or bad setting.
    pub fn from_env() -> Result<Policy, String> {
        Policy::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Policy, String> {
        Ok(Policy::for_image_origin(&proof_origin(lookup)?))
    }

    /// The policy when proof photos come from `origin` (scheme://host[:port]).
    pub fn for_image_origin(origin: &str) -> Policy {
        let csp = [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            &format!("img-src 'self' {origin}"),
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
        .join("; ");
        Policy { csp }
    }

    pub fn content_security_policy(&self) -> &str {
        &self.csp
    }
}

/// The origin presigned proof URLs point at (see the module documentation).
pub fn proof_origin(lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let var = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let bucket = var(BUCKET_VARIABLE).ok_or(format!(
        "{BUCKET_VARIABLE} is not set: the console's CSP names the proof bucket"
    ))?;
    let ignore_endpoints =
        var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let global = var("AWS_ENDPOINT_URL").filter(|_| !ignore_endpoints);
    let s3 = var("AWS_ENDPOINT_URL_S3").filter(|_| !ignore_endpoints);
    let origin = match (s3.or(global.clone()), global.is_some()) {
        (Some(endpoint), true) => {
            origin_of(&endpoint).ok_or(format!("AWS endpoint {endpoint} is not a URL"))?
        }
        (Some(endpoint), false) => {
            let (scheme, authority) = origin_of(&endpoint)
                .and_then(|o| {
                    o.split_once("://")
                        .map(|(s, a)| (s.to_string(), a.to_string()))
                })
                .ok_or(format!("AWS_ENDPOINT_URL_S3={endpoint} is not a URL"))?;
            format!("{scheme}://{bucket}.{authority}")
        }
        (None, _) => {
            let region = var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .ok_or("AWS_REGION is not set: the proof bucket's address needs it")?;
            format!("https://{bucket}.s3.{region}.amazonaws.com")
        }
    };
    // The origin goes into a header: nothing that could end a CSP directive.
    let safe = origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:/[]".contains(&b));
    if safe {
        Ok(origin)
    } else {
        Err(format!(
            "the proof bucket's origin {origin:?} is not a plain origin"
        ))
    }
}

/// `scheme://authority` of an http(s) URL, lower case, without path or
/// trailing slash.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let web = scheme == "http" || scheme == "https";
    (web && !authority.is_empty() && !authority.contains('@'))
        .then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn origin(vars: &[(&str, &str)]) -> Result<String, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        proof_origin(|name| vars.get(name).cloned())
    }

    #[test]
    fn aws_buckets_are_virtual_hosted_in_the_region() {
        let o = origin(&[
            ("KOBATELA_PROOF_BUCKET", "proofs-1"),
            ("AWS_REGION", "eu-west-3"),
        ]);
        assert_eq!(o.unwrap(), "https://proofs-1.s3.eu-west-3.amazonaws.com");
        let o = origin(&[
            ("KOBATELA_PROOF_BUCKET", "b"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ]);
        assert_eq!(o.unwrap(), "https://b.s3.us-east-1.amazonaws.com");
    }

    #[test]
    fn the_emulator_is_path_style_on_its_own_origin() {
        let o = origin(&[
            ("KOBATELA_PROOF_BUCKET", "b"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5005/"),
            ("AWS_REGION", "us-east-1"),
        ]);
        assert_eq!(o.unwrap(), "http://127.0.0.1:5005");
        // The S3 endpoint wins over the global one, still path-style.
        let o = origin(&[
            ("KOBATELA_PROOF_BUCKET", "b"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5005"),
            ("AWS_ENDPOINT_URL_S3", "HTTP://Localhost:9000/x"),
        ]);
        assert_eq!(o.unwrap(), "http://localhost:9000");
        // An S3 endpoint alone: virtual-hosted on it.
        let o = origin(&[
            ("KOBATELA_PROOF_BUCKET", "b"),
            ("AWS_ENDPOINT_URL_S3", "https://s3.example.net"),
        ]);
        assert_eq!(o.unwrap(), "https://b.s3.example.net");
        let o = origin(&[
            ("KOBATELA_PROOF_BUCKET", "b"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5005"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ("AWS_REGION", "eu-west-1"),
        ]);
        assert_eq!(o.unwrap(), "https://b.s3.eu-west-1.amazonaws.com");
    }

    #[test]
    fn missing_or_strange_settings_refuse_the_start() {
        assert!(origin(&[("AWS_REGION", "eu-west-3")])
            .unwrap_err()
            .contains("KOBATELA_PROOF_BUCKET"));
        assert!(origin(&[("KOBATELA_PROOF_BUCKET", "b")])
            .unwrap_err()
            .contains("AWS_REGION"));
        for endpoint in ["127.0.0.1:5005", "ftp://x", "http://user@host", "http:///"] {
            assert!(
                origin(&[
                    ("KOBATELA_PROOF_BUCKET", "b"),
                    ("AWS_ENDPOINT_URL", endpoint)
                ])
                .is_err(),
                "{endpoint}"
            );
        }
        // Nothing that would end the directive or add another.
        assert!(origin(&[
            ("KOBATELA_PROOF_BUCKET", "b; script-src *"),
            ("AWS_REGION", "eu-west-3")
        ])
        .is_err());
    }

    #[test]
    fn the_policy_allows_only_the_console_and_the_bucket() {
        let policy = Policy::for_image_origin("https://b.s3.eu-west-3.amazonaws.com");
        assert_eq!(
            policy.content_security_policy(),
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' https://b.s3.eu-west-3.amazonaws.com; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'self'"
        );
        assert!(!policy.content_security_policy().contains("unsafe"));
    }
}
