//! Secrets, read once per cold start: from an environment variable locally,
//! from an SSM `SecureString` parameter on Lambda. A secret is never an
//! environment variable on Lambda (it would sit in the function's
//! configuration, readable by anyone who may read that): the function gets
//! only the parameter's name in `<VARIABLE>_PARAM`, and IAM lets it read
//! exactly that parameter.
//!
//! Errors name the variable or the parameter, never the value.

use crate::config::Secret;
use std::{future::Future, time::Duration};

/// A secret a function may need, by the variable that holds it locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretName {
    /// The variable holding the value itself (local runs, tests).
    pub env: &'static str,
    /// What it is, for messages.
    pub what: &'static str,
    /// Shortest value accepted: a short secret is as good as none.
    pub min_len: usize,
}

/// HMAC pepper for API keys: every function that authenticates needs it.
pub const API_KEY_PEPPER: SecretName = SecretName {
    env: "KOBATELA_API_KEY_PEPPER",
    what: "the API key pepper",
    min_len: 32,
};

/// The PSP webhook signing secret (for the webhook function, a later issue).
pub const PSP_WEBHOOK_SECRET: SecretName = SecretName {
    env: "KOBATELA_PSP_WEBHOOK_SECRET",
    what: "the PSP webhook secret",
    min_len: 32,
};

/// The previous PSP webhook secret, accepted while a rotation is under way.
pub const PSP_WEBHOOK_SECRET_PREVIOUS: SecretName = SecretName {
    env: "KOBATELA_PSP_WEBHOOK_SECRET_PREVIOUS",
    what: "the previous PSP webhook secret",
    min_len: 32,
};

/// The key our PSP account authenticates with (`Authorization: Bearer`), for
/// the functions that ask the PSP to pay (`shared::psp`).
pub const PSP_API_KEY: SecretName = SecretName {
    env: "KOBATELA_PSP_API_KEY",
    what: "the PSP API key",
    min_len: 16,
};

/// Longest a cold start waits for SSM before refusing to start.
const SSM_TIMEOUT: Duration = Duration::from_secs(5);

impl SecretName {
    /// The variable holding the SSM parameter's name (on Lambda).
    pub fn param_var(&self) -> String {
        format!("{}_PARAM", self.env)
    }

    /// Why a function refuses to start without this secret.
    pub fn missing(&self) -> String {
        format!(
            "{} is not set: refusing to start without {} (on Lambda, set {} to the name of its SSM SecureString parameter)",
            self.env,
            self.what,
            self.param_var()
        )
    }
}

/// Where a secret comes from, as the environment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The value itself, from the variable (local runs).
    Env(String),
    /// The name of an SSM SecureString parameter.
    Ssm(String),
}

fn non_empty(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The source of `name`: its variable, or its `_PARAM`; `None` if neither is
/// set. Both set is refused: which one wins would be a guess.
pub fn source(
    name: &SecretName,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Source>, String> {
    let param_var = name.param_var();
    match (
        non_empty(&lookup, name.env),
        non_empty(&lookup, &param_var),
    ) {
        (Some(_), Some(_)) => Err(format!(
            "both {} and {param_var} are set: set the value (local runs) or the SSM parameter name (Lambda), not both",
            name.env
        )),
        (Some(value), None) => Ok(Some(Source::Env(value))),
        (None, Some(param)) => Ok(Some(Source::Ssm(param))),
        (None, None) => Ok(None),
    }
}

/// Resolves `name` from the environment (`lookup`), reading an SSM parameter
/// through `fetch` (name → decrypted value, or why not). Absent → `None`.
pub async fn resolve_optional<F, Fut>(
    name: &SecretName,
    lookup: impl Fn(&str) -> Option<String>,
    fetch: F,
) -> Result<Option<Secret>, String>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let (value, origin) = match source(name, lookup)? {
        None => return Ok(None),
        Some(Source::Env(value)) => (value, name.env.to_string()),
        Some(Source::Ssm(param)) => {
            let origin = format!("SSM parameter {param} ({})", name.param_var());
            let value = fetch(param)
                .await
                .map_err(|why| format!("cannot read {} from {origin}: {why}", name.what))?;
            (value.trim().to_string(), origin)
        }
    };
    if value.len() < name.min_len {
        return Err(format!(
            "{origin} is too short: at least {} characters are required",
            name.min_len
        ));
    }
    Ok(Some(Secret::new(value)))
}

/// Same as `resolve_optional`, refusing a missing secret.
pub async fn resolve<F, Fut>(
    name: &SecretName,
    lookup: impl Fn(&str) -> Option<String>,
    fetch: F,
) -> Result<Secret, String>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    resolve_optional(name, lookup, fetch)
        .await?
        .ok_or_else(|| name.missing())
}

/// `name` from the process environment; SSM through the standard AWS
/// configuration (`sdk`), called only if the environment names a parameter.
/// Absent → `None` (for optional secrets such as the previous webhook secret).
pub async fn optional_from_env(
    name: &SecretName,
    sdk: &aws_config::SdkConfig,
) -> Result<Option<Secret>, String> {
    resolve_optional(
        name,
        |v| std::env::var(v).ok(),
        |param| async move { read_parameter(&ssm_client(sdk), &param).await },
    )
    .await
}

/// Same as `optional_from_env`, refusing a missing secret.
pub async fn from_env(name: &SecretName, sdk: &aws_config::SdkConfig) -> Result<Secret, String> {
    optional_from_env(name, sdk)
        .await?
        .ok_or_else(|| name.missing())
}

/// An SSM client whose calls give up after a few seconds: a cold start that
/// cannot reach SSM should fail fast and say so.
pub fn ssm_client(sdk: &aws_config::SdkConfig) -> aws_sdk_ssm::Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(SSM_TIMEOUT)
        .build();
    let config = aws_sdk_ssm::config::Builder::from(sdk)
        .timeout_config(timeouts)
        .build();
    aws_sdk_ssm::Client::from_conf(config)
}

/// The decrypted value of one SSM parameter. The error says why (not found,
/// access denied, unreachable) and never carries a value.
pub async fn read_parameter(client: &aws_sdk_ssm::Client, name: &str) -> Result<String, String> {
    use aws_sdk_ssm::error::SdkError;
    let output = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| match &e {
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = aws_sdk_ssm::error::ProvideErrorMetadata::code(err).unwrap_or("error");
                match aws_sdk_ssm::error::ProvideErrorMetadata::message(err) {
                    Some(message) => format!("{code}: {message}"),
                    None => code.to_string(),
                }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                "SSM could not be reached".to_string()
            }
            other => format!(
                "SSM call failed: {}",
                aws_sdk_ssm::error::DisplayErrorContext(other)
            ),
        })?;
    output
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| "the parameter has no value".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const VALUE: &str = "0123456789abcdef0123456789abcdef";

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    async fn never(_: String) -> Result<String, String> {
        panic!("SSM must not be called")
    }

    #[tokio::test]
    async fn local_runs_read_the_variable_and_never_call_ssm() {
        let secret = resolve(
            &API_KEY_PEPPER,
            env(&[("KOBATELA_API_KEY_PEPPER", VALUE)]),
            never,
        )
        .await
        .unwrap();
        assert_eq!(secret.expose(), VALUE);
    }

    #[tokio::test]
    async fn lambda_reads_the_named_parameter() {
        let secret = resolve(
            &API_KEY_PEPPER,
            env(&[(
                "KOBATELA_API_KEY_PEPPER_PARAM",
                " /kobatela/dev/api-key-pepper ",
            )]),
            |param| async move {
                assert_eq!(param, "/kobatela/dev/api-key-pepper");
                Ok(VALUE.to_string())
            },
        )
        .await
        .unwrap();
        assert_eq!(secret.expose(), VALUE);
    }

    #[tokio::test]
    async fn an_unreadable_parameter_is_named_in_the_refusal() {
        let err = resolve(
            &PSP_WEBHOOK_SECRET,
            env(&[("KOBATELA_PSP_WEBHOOK_SECRET_PARAM", "/kobatela/dev/psp")]),
            |_| async { Err("ParameterNotFound".to_string()) },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            "cannot read the PSP webhook secret from SSM parameter /kobatela/dev/psp \
             (KOBATELA_PSP_WEBHOOK_SECRET_PARAM): ParameterNotFound"
        );
    }

    #[tokio::test]
    async fn short_values_are_refused_without_being_echoed() {
        let err = resolve(
            &API_KEY_PEPPER,
            env(&[("KOBATELA_API_KEY_PEPPER_PARAM", "/p")]),
            |_| async { Ok("hunter2".to_string()) },
        )
        .await
        .unwrap_err();
        assert!(err.contains("/p") && err.contains("too short"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = resolve(
            &API_KEY_PEPPER,
            env(&[("KOBATELA_API_KEY_PEPPER", "hunter2")]),
            never,
        )
        .await
        .unwrap_err();
        assert!(
            err.contains("KOBATELA_API_KEY_PEPPER is too short"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn missing_and_ambiguous_sources_are_refused() {
        for vars in [vec![], vec![("KOBATELA_API_KEY_PEPPER", "  ")]] {
            let err = resolve(&API_KEY_PEPPER, env(&vars), never)
                .await
                .unwrap_err();
            assert!(err.contains("KOBATELA_API_KEY_PEPPER is not set"), "{err}");
            assert!(err.contains("KOBATELA_API_KEY_PEPPER_PARAM"), "{err}");
        }
        let both = env(&[
            ("KOBATELA_API_KEY_PEPPER", VALUE),
            ("KOBATELA_API_KEY_PEPPER_PARAM", "/p"),
        ]);
        let err = resolve(&API_KEY_PEPPER, both, never).await.unwrap_err();
        assert!(err.contains("both"), "{err}");
        assert!(!err.contains(VALUE), "{err}");
        // An optional secret (the previous webhook secret) may be absent.
        assert!(
            resolve_optional(&PSP_WEBHOOK_SECRET_PREVIOUS, env(&[]), never)
                .await
                .unwrap()
                .is_none()
        );
    }
}
