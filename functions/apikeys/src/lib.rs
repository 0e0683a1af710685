//! `POST /apikeys`, `GET /apikeys`, `DELETE /apikeys/{id}`: admin only. The
//! secret is shown once, at creation; the table keeps only its HMAC.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    Router,
};
use shared::{
    auth::{generate_secret, visible_prefix},
    config::Config,
    domain::{
        access::{ApiKey, Principal, Role},
        ids::Id,
        time::Timestamp,
    },
    error::AppError,
    http::{
        body::{parse, Body, Fields, RequestBody},
        extract::{PathId, QueryMap},
        json,
    },
    store::{apikeys::NewApiKey, list::PageRequest},
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    shared::api_doc::router(routes(), state)
}

async fn create(
    State(state): State<SharedState>,
    caller: Principal,
    body: Body<CreateApiKey>,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_admin())?;
    let request = body.parse(&state.config)?;
    let secret = generate_secret();
    let new = NewApiKey {
        name: request.name,
        scope: request.scope,
        user_id: request.user_id,
        expires_at: request.expires_at,
        hash: state.auth.hash(&secret),
        prefix: visible_prefix(&secret),
    };
    let key = state.store.create_api_key(new, &(&caller).into()).await?;
    Ok(json(StatusCode::CREATED, &CreatedApiKey { key, secret }))
}

async fn list(
    State(state): State<SharedState>,
    caller: Principal,
    QueryMap(query): QueryMap,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_admin())?;
    let page = PageRequest::parse(
        query.get("limit").map(String::as_str),
        query.get("cursor").map(String::as_str),
    )
    .map_err(shared::http::body::query_errors)?;
    Ok(json(StatusCode::OK, &state.store.api_keys(page).await?))
}

async fn revoke(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_admin())?;
    let hash = state.store.revoke_api_key(id, &(&caller).into()).await?;
    state.auth.forget(&hash);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// Longest key name.
const MAX_NAME_CHARS: usize = 100;

/// `POST /apikeys` body.
#[derive(utoipa::ToSchema)]
struct CreateApiKey {
    #[schema(schema_with = shared::api_doc::text::<1, MAX_NAME_CHARS>)]
    name: String,
    scope: Role,
    /// Required for a `user` key, refused otherwise.
    user_id: Option<Id>,
    #[schema(value_type = Option<shared::api_doc::TimestampInput>)]
    expires_at: Option<Timestamp>,
}

/// `user_id` is required for `user` keys and refused for the others; an
/// expiry must be in the future.
impl RequestBody for CreateApiKey {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<CreateApiKey> {
        let name = f.required("name", parse::text(1, MAX_NAME_CHARS));
        let scope = f.required("scope", |v| {
            v.as_str()
                .and_then(Role::parse)
                .ok_or("must be one of admin, support, user")
        });
        let user_id = f.optional("user_id", Id::from_json);
        let expires_at = f.optional("expires_at", parse::timestamp);
        match (scope, user_id) {
            (Some(Role::User), Some(None)) => f.error("user_id", "is required for a user key"),
            (Some(Role::Admin | Role::Support), Some(Some(_))) => {
                f.error("user_id", "is only for user keys")
            }
            _ => {}
        }
        if let Some(Some(at)) = expires_at {
            if at <= Timestamp::now() {
                f.error("expires_at", "must be in the future");
            }
        }
        Some(CreateApiKey {
            name: name?,
            scope: scope?,
            user_id: user_id?,
            expires_at: expires_at?,
        })
    }
}

/// The answer of `POST /apikeys`: the key, with its secret as `key`.
#[derive(serde::Serialize)]
struct CreatedApiKey {
    #[serde(flatten)]
    key: ApiKey,
    #[serde(rename = "key")]
    secret: String,
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route> {
    use shared::{
        api_doc::{extended, string_schema, Route},
        domain::error::ErrorCode,
    };
    // `ApiKey` goes to the components through the list; the creation adds `key`.
    let created = extended::<ApiKey>(&[("key", string_schema(None, None).into())]);
    vec![
        Route::post(
            "/apikeys",
            "Create an API key; the secret is returned once",
            create,
        )
        .body::<CreateApiKey>()
        .answer_schema(
            201,
            created,
            "The key, with its secret `key` (shown only here).",
        )
        .errors(&[ErrorCode::UserNotFound]),
        Route::get("/apikeys", "List API keys (never the secret)", list).list::<ApiKey>(),
        Route::delete("/apikeys/{id}", "Revoke an API key", revoke)
            .empty(204, "Revoked.")
            .errors(&[ErrorCode::ApiKeyNotFound]),
    ]
}
