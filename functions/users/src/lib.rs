//! `POST /users`, `GET /users/{id}`, `PATCH /users/{id}` (deactivate or
//! reactivate).

use axum::{extract::State, http::StatusCode, response::Response, Router};
use shared::{
    config::Config,
    domain::{
        access::Principal,
        error::ErrorCode,
        user::{self, MAX_USERNAME_CHARS},
    },
    error::AppError,
    http::{
        body::{parse, Body, Fields, RequestBody},
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
    body: Body<CreateUser>,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let body = body.parse(&state.config)?;
    let new = NewUser {
        username: body.username,
        email: body.email,
        is_active: body.is_active.unwrap_or(true),
    };
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
    body: Body<SetActive>,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let SetActive { is_active } = body.parse(&state.config)?;
    let user = state
        .store
        .set_user_active(id, is_active, &(&caller).into())
        .await?;
    state.auth.forget_user(id);
    Ok(json(StatusCode::OK, &user))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// `POST /users` body.
#[derive(utoipa::ToSchema)]
struct CreateUser {
    #[schema(schema_with = shared::api_doc::text::<1, MAX_USERNAME_CHARS>)]
    username: String,
    #[schema(schema_with = shared::api_doc::email)]
    email: String,
    is_active: Option<bool>,
}

impl RequestBody for CreateUser {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<CreateUser> {
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
        Some(CreateUser {
            username: username?,
            email: email?,
            is_active: is_active?,
        })
    }
}

/// `PATCH /users/{id}` body.
#[derive(utoipa::ToSchema)]
struct SetActive {
    is_active: bool,
}

impl RequestBody for SetActive {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<SetActive> {
        let is_active = f.required("is_active", parse::boolean);
        Some(SetActive {
            is_active: is_active?,
        })
    }
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
