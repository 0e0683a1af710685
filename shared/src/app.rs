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

/// The standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL`),
/// with [`https_client`]. Every SDK client of a function is made from it:
/// the SDK crates are built without a default HTTP client.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

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
