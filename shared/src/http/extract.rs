//! Extractors for what handlers need from a request: the authenticated caller,
//! an id from the path, query values, the `Idempotency-Key`.

use crate::{
    app::SharedState,
    domain::{access::Principal, error::ErrorCode, ids::Id},
    error::AppError,
    store::idempotency::valid_key,
};
use axum::{
    extract::{FromRef, FromRequestParts, Path, Query},
    http::{header, request::Parts},
};
use std::collections::HashMap;

/// Any router state that holds the shared state (the proofs function's
/// carries its S3 adapter too) authenticates the same way.
impl<S> FromRequestParts<S> for Principal
where
    SharedState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Principal, AppError> {
        let state = SharedState::from_ref(state);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        state.auth.authenticate(&state.store, header).await
    }
}

/// The `{id}` of a route, as a positive integer.
pub struct PathId(pub Id);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathId, AppError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::field("id", "must be a positive integer id"))?;
        Id::parse(&text)
            .map(PathId)
            .map_err(|problem| AppError::field("id", problem))
    }
}

/// The query string as name → value (the last one wins).
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<QueryMap, AppError> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::field("query", "is not a valid query string"))?;
        Ok(QueryMap(map))
    }
}

/// The `Idempotency-Key` header, required on money-moving routes.
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<IdempotencyKey, AppError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Err(AppError::new(
                ErrorCode::IdempotencyKeyRequired,
                "This route moves money: send an Idempotency-Key header.",
            ));
        };
        match value.to_str() {
            Ok(key) if valid_key(key) => Ok(IdempotencyKey(key.to_string())),
            _ => Err(AppError::field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )),
        }
    }
}
