//! What every handler shares, built once per cold start: configuration, the
//! store (with its DynamoDB client) and the API key authenticator.

use crate::{auth::Authenticator, config::Config, config::Secret, secrets, store::Store};
use std::sync::Arc;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub auth: Authenticator,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// `pepper` is the API key pepper (`secrets::API_KEY_PEPPER`).
    pub fn new(config: Config, pepper: Secret, client: aws_sdk_dynamodb::Client) -> SharedState {
        let store = Store::new(client, &config.table, config.id_block);
        let auth = Authenticator::new(pepper, config.key_cache_ttl);
        Arc::new(AppState {
            config,
            store,
            auth,
        })
    }

    /// From the environment: settings, then the pepper (its variable locally,
    /// its SSM parameter on Lambda). An error names what is missing or
    /// unreadable (never a secret).
    pub async fn from_env() -> Result<SharedState, String> {
        let config = Config::from_env()?;
        let sdk = sdk_config().await;
        let pepper = secrets::from_env(&secrets::API_KEY_PEPPER, &sdk).await?;
        Ok(AppState::new(config, pepper, Store::new_client(&sdk)))
    }

    /// A Lambda function's start: logging, then the state, or the logged
    /// reason it refuses to start (returned, so `main` exits non-zero).
    pub async fn for_lambda() -> Result<SharedState, String> {
        crate::telemetry::init();
        AppState::from_env().await.map_err(refuse)
    }
}

/// The start of a function that does not authenticate (the scheduled sweep):
/// settings and the store, no pepper.
pub async fn store_for_lambda() -> Result<Store, String> {
    crate::telemetry::init();
    let config = Config::from_env().map_err(refuse)?;
    let client = Store::new_client(&sdk_config().await);
    Ok(Store::new(client, &config.table, config.id_block))
}

/// The AWS configuration every SDK client of a function is made from: the
/// region, credentials and endpoint that Lambda (or the local stack) puts in
/// the environment (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL`), the SDK's default connect
/// timeout, and [`https_client`]. Not `aws_config::defaults`: its provider
/// chains (profile files, SSO, web identity through STS, ECS, IMDS, a
/// credentials process) never apply on Lambda, which hands every function
/// its credentials and region as variables, and they were most of the
/// 0.78 MB `users` lost with this and one sha2/hmac/rand (docs/performance.md,
/// "Weight budgets").
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_from(|name| std::env::var(name).ok())
}

/// [`sdk_config`] over any source of variables (tests pass their own).
pub fn sdk_config_from(var: impl Fn(&str) -> Option<String>) -> aws_config::SdkConfig {
    use aws_config::{
        environment::EnvironmentVariableCredentialsProvider, timeout::TimeoutConfig,
        BehaviorVersion, Region,
    };
    use aws_sdk_dynamodb::config::SharedCredentialsProvider;
    let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
    let mut config = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.map(Region::new))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(SDK_CONNECT_TIMEOUT)
                .build(),
        )
        .http_client(https_client());
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    config.build()
}

/// The connect timeout `aws_config::defaults` sets (its
/// `SDK_DEFAULT_CONNECT_TIMEOUT`).
const SDK_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(3100);

/// The SDK's own default HTTPS client (hyper, rustls, the system's roots,
/// the proxy from the environment, the SDK's timeouts per client) on the
/// ring provider instead of aws-lc: the process's one crypto library, which
/// the PSP adapter's TLS uses too (`crate::psp::tls_config`), and about a
/// megabyte lighter than aws-lc in every binary. The cost: no post-quantum
/// hybrid key exchange, which rustls offers only on aws-lc.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::{proxy::ProxyConfig, tls, Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Logs why a function refuses to start, and returns the reason.
pub fn refuse(reason: String) -> String {
    tracing::error!(%reason, "refusing to start");
    reason
}

#[cfg(test)]
mod tests {
    use super::sdk_config_from;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> aws_config::SdkConfig {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        sdk_config_from(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_region_and_endpoint_come_from_the_environment() {
        let sdk = config(&[
            ("AWS_REGION", "eu-west-3"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5005"),
        ]);
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-3"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:5005"));
        assert!(sdk.credentials_provider().is_some());
        assert!(sdk.http_client().is_some());
        assert_eq!(
            sdk.timeout_config().and_then(|t| t.connect_timeout()),
            Some(super::SDK_CONNECT_TIMEOUT)
        );
    }

    #[test]
    fn aws_default_region_stands_in_and_blank_variables_count_as_unset() {
        let sdk = config(&[
            ("AWS_REGION", " "),
            ("AWS_DEFAULT_REGION", "af-south-1"),
            ("AWS_ENDPOINT_URL", ""),
        ]);
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("af-south-1"));
        assert_eq!(sdk.endpoint_url(), None);
        assert_eq!(config(&[]).region(), None);
    }
}
