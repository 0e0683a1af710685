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

/// The standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Logs why a function refuses to start, and returns the reason.
pub fn refuse(reason: String) -> String {
    tracing::error!(%reason, "refusing to start");
    reason
}
