//! `POST /escrows`, `GET /escrows`, `GET /escrows/{id}`,
//! `GET /escrows/{id}/events`, `POST /escrows/{id}/deposit` 💰 and the
//! transitions `mark-delivered`, `client-approve`, `client-reject`,
//! `check-deadline`.

use axum::{
    extract::{Request, State},
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};
use serde_json::Value;
use shared::{
    domain::{
        access::{Principal, Role},
        currency::Currency,
        escrow::{Escrow, EscrowAction, EscrowStatus, EscrowTerms, Geofence, MilestoneTerms},
        ids::Id,
        money::Amount,
        time::Timestamp,
    },
    error::AppError,
    http::{
        body::{parse, Fields, JsonBody},
        extract::{IdempotencyKey, ListQuery, PathId},
        json, stored, MAX_BODY_BYTES,
    },
    ops,
    store::{
        audit::is_trail_sort_key,
        escrow::{not_found, EscrowFilter, NewEscrow, Remarks},
        idempotency::Scope,
    },
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/escrows", post(create).get(list))
        .route("/escrows/{id}", get(read))
        .route("/escrows/{id}/events", get(events))
        .route("/escrows/{id}/deposit", post(deposit))
        .route("/escrows/{id}/mark-delivered", post(mark_delivered))
        .route("/escrows/{id}/client-approve", post(client_approve))
        .route("/escrows/{id}/client-reject", post(client_reject))
        .route("/escrows/{id}/check-deadline", post(check_deadline))
        .with_state(state)
}

const DEPOSIT_ROUTE: &str = "POST /escrows/{id}/deposit";

/// Longest `note` (and `proof_url`) a transition takes.
const MAX_NOTE_CHARS: usize = 2000;

fn geofence(value: &Value) -> Result<Geofence, String> {
    let object = value
        .as_object()
        .ok_or("must be an object {lat, lng, radius_m}")?;
    let number = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_f64)
            .ok_or(format!("{name} must be a number"))
    };
    Ok(Geofence {
        lat: number("lat")?,
        lng: number("lng")?,
        radius_m: number("radius_m")?,
    })
}

/// Parses `milestones`, naming bad fields `milestones[i].name`.
fn milestones(value: &Value, f: &mut Fields<'_>) -> Option<Vec<MilestoneTerms>> {
    let Some(list) = value.as_array() else {
        f.error("milestones", "must be an array of milestones");
        return None;
    };
    let mut parsed = Vec::new();
    let mut bad = false;
    for (i, item) in list.iter().enumerate() {
        let result = Fields::of(item).and_then(|mut m| {
            let label = m.required("label", parse::text(1, 200));
            let amount = m.required("amount", Amount::from_json);
            let proof_type = m.required("proof_type", parse::text(1, 50));
            let fence = m.optional("geofence", geofence);
            m.finish(|| {
                Some(MilestoneTerms {
                    label: label?,
                    amount: amount?,
                    proof_type: proof_type?,
                    geofence: fence?,
                })
            })
        });
        match result {
            Ok(m) => parsed.push(m),
            Err(e) => {
                bad = true;
                let fields = e
                    .details
                    .as_ref()
                    .and_then(|d| d["fields"].as_object())
                    .cloned()
                    .unwrap_or_default();
                for (name, problem) in fields {
                    let name = if name == "body" {
                        format!("milestones[{i}]")
                    } else {
                        format!("milestones[{i}].{name}")
                    };
                    f.error(&name, problem.as_str().unwrap_or("is not valid"));
                }
            }
        }
    }
    (!bad).then_some(parsed)
}

fn parse_new_escrow(body: &Value, state: &SharedState) -> Result<NewEscrow, AppError> {
    let mut f = Fields::of(body)?;
    let client_id = f.required("client_id", Id::from_json);
    let provider_id = f.required("provider_id", Id::from_json);
    let amount_total = f.required("amount_total", Amount::from_json);
    let currency = f.optional("currency", parse::currency(&state.config.currencies));
    let release_conditions = f.optional("release_conditions", |v: &Value| {
        v.is_object()
            .then(|| v.clone())
            .ok_or("must be a JSON object")
    });
    let deadline_at = f.required("deadline_at", parse::timestamp);
    let milestones = match body.get("milestones").filter(|v| !v.is_null()) {
        None => Some(None),
        Some(value) => milestones(value, &mut f).map(Some),
    };
    f.finish(|| {
        Some(NewEscrow {
            terms: EscrowTerms {
                client_id: client_id?,
                provider_id: provider_id?,
                amount_total: amount_total?,
                deadline_at: deadline_at?,
                milestones: milestones?,
            },
            currency: currency?.unwrap_or(Currency::usd()),
            release_conditions: release_conditions?
                .unwrap_or_else(|| Value::Object(Default::default())),
        })
    })
}

async fn create(
    State(state): State<SharedState>,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let new = parse_new_escrow(&body, &state)?;
    AppError::permit(caller.acts_for(new.terms.client_id))?;
    let escrow = state.store.create_escrow(new, &(&caller).into()).await?;
    Ok(json(StatusCode::CREATED, &escrow))
}

/// The escrow if the caller may read it; others' look absent (404).
async fn readable(state: &SharedState, caller: &Principal, id: Id) -> Result<Escrow, AppError> {
    state
        .store
        .escrow(id)
        .await?
        .filter(|e| caller.may_read(&e.parties()))
        .ok_or_else(not_found)
}

async fn read(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    Ok(json(StatusCode::OK, &readable(&state, &caller, id).await?))
}

/// `limit` and `cursor` of a list, and the other problems of its query.
async fn list(
    State(state): State<SharedState>,
    caller: Principal,
    mut query: ListQuery,
) -> Result<Response, AppError> {
    let filter = EscrowFilter {
        client_id: query.id("client_id"),
        provider_id: query.id("provider_id"),
        status: query.parsed(
            "status",
            EscrowStatus::parse,
            "must be one of DRAFT, FUNDED, RELEASABLE, RELEASED, REFUNDED, CANCELLED",
        ),
        party: caller.party_limit(),
    };
    let page = query.page()?;
    Ok(json(
        StatusCode::OK,
        &state.store.escrows(&filter, page).await?,
    ))
}

async fn events(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
    query: ListQuery,
) -> Result<Response, AppError> {
    let page = query.key_page(is_trail_sort_key)?;
    readable(&state, &caller, id).await?;
    Ok(json(
        StatusCode::OK,
        &state.store.escrow_events(id, &page).await?,
    ))
}

async fn deposit(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let mut f = Fields::of(&body)?;
    let amount = f.required("amount", Amount::from_json);
    let amount = f.finish(|| amount)?;
    let scope = Scope {
        route: DEPOSIT_ROUTE,
        owner: caller.idempotency_owner(),
        key,
    };
    let response = ops::escrow::deposit(&state.store, &caller, id, amount, &scope).await?;
    Ok(stored(response))
}

/// The optional body of a transition: empty is `{}`; else a JSON object
/// whose `note` (and, for delivery, `proof_url`) are short texts.
async fn remarks(request: Request, names: &[&'static str]) -> Result<Remarks, AppError> {
    let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            AppError::new(
                shared::domain::error::ErrorCode::PayloadTooLarge,
                "The request body is larger than 1 MiB.",
            )
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Remarks::new());
    }
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
        AppError::new(
            shared::domain::error::ErrorCode::InvalidJson,
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    let mut f = Fields::of(&body)?;
    let mut found = Vec::new();
    for name in names {
        found.push((*name, f.optional(name, parse::text(0, MAX_NOTE_CHARS))));
    }
    f.finish(|| {
        let mut remarks = Remarks::new();
        for (name, value) in found {
            if let Some(text) = value? {
                remarks.insert(name.to_string(), Value::String(text));
            }
        }
        Some(remarks)
    })
}

async fn act(
    state: &SharedState,
    caller: &Principal,
    id: Id,
    action: EscrowAction,
    remarks: Remarks,
) -> Result<Response, AppError> {
    let asker = ops::Asker::Caller(caller);
    let escrow = ops::escrow::act(&state.store, asker, id, action, &remarks).await?;
    Ok(json(StatusCode::OK, &escrow))
}

async fn mark_delivered(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
    request: Request,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let remarks = remarks(request, &["note", "proof_url"]).await?;
    act(&state, &caller, id, EscrowAction::MarkDelivered, remarks).await
}

async fn client_approve(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
    request: Request,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let remarks = remarks(request, &["note"]).await?;
    act(&state, &caller, id, EscrowAction::ClientApprove, remarks).await
}

async fn client_reject(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
    request: Request,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let remarks = remarks(request, &["note"]).await?;
    act(&state, &caller, id, EscrowAction::ClientReject, remarks).await
}

async fn check_deadline(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    // Staff, or either party (`ops::escrow::may_ask`): what the schedule
    // would do, now.
    let action = EscrowAction::DeadlineCheck {
        now: Timestamp::now(),
    };
    act(&state, &caller, id, action, Remarks::new()).await
}

// ---------------------------------------------------------------------------
// The API document

/// A milestone's geofence as sent (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct GeofenceInput {
    #[schema(minimum = -90.0, maximum = 90.0)]
    lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    lng: f64,
    #[schema(exclusive_minimum = 0.0, maximum = 100000.0)]
    radius_m: f64,
}

/// A milestone as sent.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct MilestoneInput {
    #[schema(schema_with = shared::api_doc::text::<1, 200>)]
    label: String,
    amount: shared::api_doc::MoneyInput,
    #[schema(schema_with = shared::api_doc::text::<1, 50>)]
    proof_type: String,
    geofence: Option<GeofenceInput>,
}

/// `POST /escrows` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CreateEscrow {
    client_id: shared::api_doc::IdInput,
    provider_id: shared::api_doc::IdInput,
    amount_total: shared::api_doc::MoneyInput,
    /// Default `USD`.
    currency: Option<shared::api_doc::CurrencyInput>,
    /// Default `{}`.
    release_conditions: Option<serde_json::Map<String, Value>>,
    /// In the future.
    deadline_at: shared::api_doc::TimestampInput,
    /// 1 to 50; their amounts add up to `amount_total`.
    #[schema(min_items = 1, max_items = 50)]
    milestones: Option<Vec<MilestoneInput>>,
}

/// `POST /escrows/{id}/deposit` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Deposit {
    amount: shared::api_doc::MoneyInput,
}

/// The optional body of `client-approve` and `client-reject`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Remark {
    #[schema(schema_with = shared::api_doc::text::<0, MAX_NOTE_CHARS>)]
    note: Option<String>,
}

/// The optional body of `mark-delivered`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Delivery {
    #[schema(schema_with = shared::api_doc::text::<0, MAX_NOTE_CHARS>)]
    note: Option<String>,
    #[schema(schema_with = shared::api_doc::text::<0, MAX_NOTE_CHARS>)]
    proof_url: Option<String>,
}

/// This function's routes in the API document.
pub fn api_routes() -> Vec<shared::api_doc::Route> {
    use shared::{api_doc::Route, domain::error::ErrorCode, store::escrow::EscrowEvent};
    let transition = [ErrorCode::EscrowNotFound, ErrorCode::EscrowInvalidState];
    vec![
        Route::post("/escrows", "Create an escrow with its milestones")
            .body::<CreateEscrow>()
            .answer::<Escrow>(201, "The escrow, DRAFT.")
            .errors(&[ErrorCode::UserNotFound]),
        Route::get("/escrows", "List escrows")
            .query_id("client_id", false)
            .query_id("provider_id", false)
            .query(
                "status",
                <EscrowStatus as utoipa::PartialSchema>::schema(),
                false,
            )
            .list::<Escrow>(),
        Route::get("/escrows/{id}", "Read an escrow")
            .answer::<Escrow>(200, "The escrow.")
            .errors(&[ErrorCode::EscrowNotFound]),
        Route::get(
            "/escrows/{id}/events",
            "The escrow's timeline, oldest first",
        )
        .list::<EscrowEvent>()
        .errors(&[ErrorCode::EscrowNotFound]),
        Route::post("/escrows/{id}/deposit", "Deposit into a DRAFT escrow")
            .idempotent()
            .body::<Deposit>()
            .answer::<Escrow>(200, "The escrow.")
            .errors(&transition)
            .errors(&[ErrorCode::DepositExceedsTotal]),
        Route::post("/escrows/{id}/mark-delivered", "The provider delivered")
            .optional_body::<Delivery>()
            .answer::<Escrow>(200, "The escrow.")
            .errors(&transition),
        Route::post(
            "/escrows/{id}/client-approve",
            "The client approves: the remainder is paid to the provider",
        )
        .optional_body::<Remark>()
        .answer::<Escrow>(200, "The escrow.")
        .errors(&transition),
        Route::post(
            "/escrows/{id}/client-reject",
            "The client rejects: the remainder is refunded to the client",
        )
        .optional_body::<Remark>()
        .answer::<Escrow>(200, "The escrow.")
        .errors(&transition),
        Route::post(
            "/escrows/{id}/check-deadline",
            "Apply the deadline rule now (no body)",
        )
        .answer::<Escrow>(200, "The escrow, changed or not.")
        .errors(&[ErrorCode::EscrowNotFound]),
    ]
}
