//! `POST /users`, `GET /users/{id}`, `PATCH /users/{id}` (deactivate or
//! reactivate).

use axum::{extract::State, http::StatusCode, response::Response, Router};
use shared::{
    domain::{access::Principal, error::ErrorCode, user},
    error::AppError,
    http::{
        body::{parse, Fields, JsonBody},
        extract::PathId,
        json,
    },
    store::users::NewUser,
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    shared::api_doc::router(routes(), state)
}

async fn create(
    State(state): State<SharedState>,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let mut f = Fields::of(&body)?;
    let username = f.required("username", |v| {
        v.as_str()
            .ok_or("must be a string")
            .and_then(user::parse_username)
    });
    let email = f.required("email", |v| {
        v.as_str()
            .ok_or("must be a string")
            .and_then(user::parse_email)
    });
    let is_active = f.optional("is_active", parse::boolean);
    let new = f.finish(|| {
        Some(NewUser {
            username: username?,
            email: email?,
            is_active: is_active?.unwrap_or(true),
        })
    })?;
    let user = state.store.create_user(new, &(&caller).into()).await?;
    Ok(json(StatusCode::CREATED, &user))
}

async fn read(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    let not_found = || AppError::new(ErrorCode::UserNotFound, "User not found.");
    if !caller.may_read(&[id]) {
        return Err(not_found());
    }
    let user = state.store.user(id).await?.ok_or_else(not_found)?;
    Ok(json(StatusCode::OK, &user))
}

/// `{is_active}`: staff deactivate or reactivate a user. The user's keys
/// stop (or start) working at once in this container, within the key cache
/// TTL (at most 60 s) everywhere.
async fn set_active(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let mut f = Fields::of(&body)?;
    let is_active = f.required("is_active", parse::boolean);
    let is_active = f.finish(|| is_active)?;
    let user = state
        .store
        .set_user_active(id, is_active, &(&caller).into())
        .await?;
    state.auth.forget_user(id);
    Ok(json(StatusCode::OK, &user))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// `POST /users` body (documentation only: the handler reads fields by hand).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CreateUser {
    #[schema(schema_with = shared::api_doc::text::<1, 100>)]
    username: String,
    #[schema(schema_with = shared::api_doc::email)]
    email: String,
    is_active: Option<bool>,
}

/// `PATCH /users/{id}` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct SetActive {
    is_active: bool,
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route> {
    use shared::{api_doc::Route, domain::user::User};
    vec![
        Route::post("/users", "Create a user", create)
            .body::<CreateUser>()
            .answer::<User>(201, "The user.")
            .errors(&[ErrorCode::UserExists]),
        Route::get("/users/{id}", "Read a user", read)
            .answer::<User>(200, "The user.")
            .errors(&[ErrorCode::UserNotFound]),
        Route::patch("/users/{id}", "Deactivate or reactivate a user", set_active)
            .body::<SetActive>()
            .answer::<User>(200, "The user.")
            .errors(&[ErrorCode::UserNotFound]),
    ]
}
