//! Start-up chores: the table exists, and an admin key exists. There is no
//! built-in key: one is generated (and shown once), or taken from
//! `KOBATELA_ADMIN_KEY` for scripts and tests.

use shared::{
    auth::{generate_secret, visible_prefix},
    domain::access::Role,
    store::{apikeys::NewApiKey, audit::Actor, schema::ensure_table},
    AppState, SharedState,
};

/// State from the environment, with the table created if it is missing.
pub async fn state_with_table() -> Result<SharedState, String> {
    let state = AppState::from_env().await?;
    ensure_table(state.store.client(), state.store.table()).await?;
    Ok(state)
}

/// Shortest secret accepted from `KOBATELA_ADMIN_KEY`.
const MIN_ADMIN_KEY_LEN: usize = 16;

pub async fn ensure_admin_key(state: &SharedState) -> Result<(), String> {
    let secret = match std::env::var("KOBATELA_ADMIN_KEY") {
        Ok(secret) if !secret.trim().is_empty() => secret.trim().to_string(),
        _ => {
            let secret = new_admin_key(state, "local-admin", None).await?;
            println!("admin key (shown once): {secret}");
            return Ok(());
        }
    };
    if secret.len() < MIN_ADMIN_KEY_LEN || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "KOBATELA_ADMIN_KEY must be at least {MIN_ADMIN_KEY_LEN} visible ASCII characters"
        ));
    }
    match state
        .store
        .api_key_by_hash(&state.auth.hash(&secret))
        .await
        .map_err(|e| e.to_string())?
    {
        Some(key) if key.scope == Role::Admin && key.revoked_at.is_none() => Ok(()),
        Some(_) => Err("KOBATELA_ADMIN_KEY names a key that is revoked or not an admin key".into()),
        None => new_admin_key(state, "local-admin", Some(secret))
            .await
            .map(|_| ()),
    }
}

/// Creates an admin key (with `secret`, or a generated one); answers the secret.
async fn new_admin_key(
    state: &SharedState,
    name: &str,
    secret: Option<String>,
) -> Result<String, String> {
    let secret = secret.unwrap_or_else(generate_secret);
    let new = NewApiKey {
        name: name.to_string(),
        scope: Role::Admin,
        user_id: None,
        expires_at: None,
        hash: state.auth.hash(&secret),
        prefix: visible_prefix(&secret),
    };
    state
        .store
        .create_api_key(new, &Actor::System)
        .await
        .map_err(|e| e.to_string())?;
    Ok(secret)
}

/// `kobatela-local create-admin-key NAME`: the first admin key of a deployment
/// (run with the deployment's KOBATELA_TABLE, AWS credentials and its pepper:
/// KOBATELA_API_KEY_PEPPER_PARAM names the SSM parameter). Prints the key once.
pub async fn create(name: &str) -> Result<(), String> {
    let state = AppState::from_env().await?;
    let secret = new_admin_key(&state, name, None).await?;
    println!("{secret}");
    Ok(())
}
