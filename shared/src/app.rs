//! What every handler shares, built once per cold start: configuration, the
//! store (with its DynamoDB client) and the API key authenticator.

use crate::{auth::Authenticator, config::Config, store::Store};
use std::sync::Arc;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub auth: Authenticator,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(config: Config, client: aws_sdk_dynamodb::Client) -> SharedState {
        let store = Store::new(client, &config.table, config.id_block);
        let auth = Authenticator::new(config.api_key_pepper.clone(), config.key_cache_ttl);
        Arc::new(AppState {
            config,
            store,
            auth,
        })
    }

    /// From the environment; an error names what is missing (never a secret).
    pub async fn from_env() -> Result<SharedState, String> {
        let config = Config::from_env()?;
        Ok(AppState::new(config, Store::client_from_env().await))
    }

    /// A Lambda function's start: logging, then the state, or the logged
    /// reason it refuses to start (returned, so `main` exits non-zero).
    pub async fn for_lambda() -> Result<SharedState, String> {
        crate::telemetry::init();
        AppState::from_env().await.map_err(|reason| {
            tracing::error!(%reason, "refusing to start");
            reason
        })
    }
}
