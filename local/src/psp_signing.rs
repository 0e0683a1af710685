//! How the PSP signs a webhook, for the local stand-ins of the PSP (the
//! `psp-event` command and the PSP sandbox): one signing path, so both sign
//! exactly as docs/api.md's "PSP webhook" says and as `shared::domain::webhook`
//! verifies: `X-PSP-Timestamp` (unix seconds) and `X-PSP-Signature`, the
//! lower-case hex HMAC-SHA256 of `<timestamp>.<raw body>`.

use shared::domain::webhook::WebhookSecret;

/// Where `make dev` keeps the generated local webhook secret.
pub const LOCAL_SECRET_FILE: &str = ".local-state/psp-webhook-secret";

/// The local webhook secret: `KOBATELA_PSP_WEBHOOK_SECRET`, else the file
/// `make dev` keeps. The error names where it looked, never a value.
pub fn local_webhook_secret() -> Result<WebhookSecret, String> {
    let value = match std::env::var("KOBATELA_PSP_WEBHOOK_SECRET") {
        Ok(secret) if !secret.trim().is_empty() => secret.trim().to_string(),
        _ => std::fs::read_to_string(LOCAL_SECRET_FILE)
            .map(|s| s.trim().to_string())
            .map_err(|_| {
                "no webhook secret: set KOBATELA_PSP_WEBHOOK_SECRET or run from the repository after `make dev`"
                    .to_string()
            })?,
    };
    WebhookSecret::new(value.into_bytes()).ok_or_else(|| "the webhook secret is empty".into())
}

/// The two headers that make `body` a genuine PSP webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `X-PSP-Timestamp`.
    pub timestamp: String,
    /// `X-PSP-Signature`.
    pub signature: String,
}

/// Signs `body` as sent now.
pub fn sign(secret: &WebhookSecret, body: &[u8]) -> Signed {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    sign_at(secret, now, body)
}

/// Signs `body` as sent at `unix_seconds`.
pub fn sign_at(secret: &WebhookSecret, unix_seconds: u64, body: &[u8]) -> Signed {
    let timestamp = unix_seconds.to_string();
    let signature = secret.signature_hex(timestamp.as_bytes(), body);
    Signed {
        timestamp,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::{
        time::Timestamp,
        webhook::{verify_signature, WebhookSecrets},
    };

    #[test]
    fn what_is_signed_is_what_the_webhook_verifies() {
        let secret = WebhookSecret::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        let body = br#"{"id":"evt_1","type":"payment.settled","psp_ref":"PSP-1"}"#;
        let signed = sign(&secret, body);
        let secrets = WebhookSecrets {
            current: secret,
            previous: None,
        };
        let verify = |body: &[u8]| {
            verify_signature(
                Some(signed.timestamp.as_bytes()),
                Some(signed.signature.as_bytes()),
                body,
                &secrets,
                Timestamp::now(),
            )
        };
        assert_eq!(verify(body), Ok(()));
        assert!(verify(b"{}").is_err());
    }
}
