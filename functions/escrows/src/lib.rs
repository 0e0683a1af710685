//! `POST /escrows`, `GET /escrows`, `GET /escrows/{id}`,
//! `GET /escrows/{id}/events`, `POST /escrows/{id}/deposit` 💰 and the
//! transitions `mark-delivered`, `client-approve`, `client-reject`,
//! `check-deadline`.

use axum::{extract::State, http::StatusCode, response::Response, Router};
use serde_json::Value;
use shared::{
    api_doc::{CurrencyInput, MoneyInput, TimestampInput},
    config::Config,
    domain::{
        access::{Principal, Role},
        currency::Currency,
        escrow::{
            Escrow, EscrowAction, EscrowStatus, EscrowTerms, Geofence, MilestoneTerms,
            MAX_LABEL_CHARS, MAX_PROOF_TYPE_CHARS,
        },
        ids::Id,
        money::Amount,
        time::Timestamp,
    },
    error::AppError,
    http::{
        body::{from_json, parse, Body, Fields, OptionalBody, RequestBody, MAX_NOTE_CHARS},
        extract::{IdempotencyKey, ListQuery, PathId},
        json, stored,
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
    shared::api_doc::router(routes(), state)
}

const DEPOSIT_ROUTE: &str = "POST /escrows/{id}/deposit";

async fn create(
    State(state): State<SharedState>,
    caller: Principal,
    body: Body<CreateEscrow>,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let new = body.parse(&state.config)?.new_escrow();
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
    body: Body<Deposit>,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let Deposit { amount } = body.parse(&state.config)?;
    let scope = Scope {
        route: DEPOSIT_ROUTE,
        owner: caller.idempotency_owner(),
        key,
    };
    let response = ops::escrow::deposit(&state.store, &caller, id, amount, &scope).await?;
    Ok(stored(response))
}

/// A transition's remarks: the texts given, by name.
fn remarks<'a>(texts: impl IntoIterator<Item = (&'a str, Option<String>)>) -> Remarks {
    let mut remarks = Remarks::new();
    for (name, text) in texts {
        if let Some(text) = text {
            remarks.insert(name.to_string(), Value::String(text));
        }
    }
    remarks
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
    body: OptionalBody<Delivery>,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let Delivery { note, proof_url } = body.parse(&state.config).await?;
    let remarks = remarks([("note", note), ("proof_url", proof_url)]);
    act(&state, &caller, id, EscrowAction::MarkDelivered, remarks).await
}

async fn client_approve(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
    body: OptionalBody<Remark>,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let Remark { note } = body.parse(&state.config).await?;
    let remarks = remarks([("note", note)]);
    act(&state, &caller, id, EscrowAction::ClientApprove, remarks).await
}

async fn client_reject(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
    body: OptionalBody<Remark>,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let Remark { note } = body.parse(&state.config).await?;
    let remarks = remarks([("note", note)]);
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
// The routes: the router and the API document

/// A milestone's geofence as sent.
#[derive(utoipa::ToSchema)]
struct GeofenceInput {
    #[schema(minimum = -90.0, maximum = 90.0)]
    lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    lng: f64,
    // `MAX_RADIUS_M` (a schema attribute takes only a literal; a test below
    // checks that they agree).
    #[schema(exclusive_minimum = 0.0, maximum = 100000.0)]
    radius_m: f64,
}

/// Reads the numbers; their ranges are the domain's to check.
fn geofence(value: &Value) -> Result<GeofenceInput, String> {
    let object = value
        .as_object()
        .ok_or("must be an object {lat, lng, radius_m}")?;
    let number = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_f64)
            .ok_or(format!("{name} must be a number"))
    };
    Ok(GeofenceInput {
        lat: number("lat")?,
        lng: number("lng")?,
        radius_m: number("radius_m")?,
    })
}

/// A milestone as sent.
#[derive(utoipa::ToSchema)]
struct MilestoneInput {
    #[schema(schema_with = shared::api_doc::text::<1, MAX_LABEL_CHARS>)]
    label: String,
    #[schema(value_type = MoneyInput)]
    amount: Amount,
    #[schema(schema_with = shared::api_doc::text::<1, MAX_PROOF_TYPE_CHARS>)]
    proof_type: String,
    geofence: Option<GeofenceInput>,
}

impl RequestBody for MilestoneInput {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<MilestoneInput> {
        let label = f.required("label", parse::text(1, MAX_LABEL_CHARS));
        let amount = f.required("amount", Amount::from_json);
        let proof_type = f.required("proof_type", parse::text(1, MAX_PROOF_TYPE_CHARS));
        let geofence = f.optional("geofence", geofence);
        Some(MilestoneInput {
            label: label?,
            amount: amount?,
            proof_type: proof_type?,
            geofence: geofence?,
        })
    }
}

impl MilestoneInput {
    fn terms(self) -> MilestoneTerms {
        MilestoneTerms {
            label: self.label,
            amount: self.amount,
            proof_type: self.proof_type,
            geofence: self.geofence.map(|g| Geofence {
                lat: g.lat,
                lng: g.lng,
                radius_m: g.radius_m,
            }),
        }
    }
}

/// Parses `milestones`, naming bad fields `milestones[i].name`.
fn milestones(value: &Value, f: &mut Fields<'_>, config: &Config) -> Option<Vec<MilestoneInput>> {
    let Some(list) = value.as_array() else {
        f.error("milestones", "must be an array of milestones");
        return None;
    };
    let mut parsed = Vec::new();
    let mut bad = false;
    for (i, item) in list.iter().enumerate() {
        match from_json::<MilestoneInput>(item, config) {
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

/// `POST /escrows` body.
#[derive(utoipa::ToSchema)]
struct CreateEscrow {
    client_id: Id,
    provider_id: Id,
    #[schema(value_type = MoneyInput)]
    amount_total: Amount,
    /// Default `USD`.
    #[schema(value_type = Option<CurrencyInput>)]
    currency: Currency,
    /// Default `{}`.
    release_conditions: Option<serde_json::Map<String, Value>>,
    /// In the future.
    #[schema(value_type = TimestampInput)]
    deadline_at: Timestamp,
    /// 1 to 50; their amounts add up to `amount_total`.
    // `MAX_MILESTONES` (a literal here; a test below checks they agree).
    #[schema(min_items = 1, max_items = 50)]
    milestones: Option<Vec<MilestoneInput>>,
}

impl RequestBody for CreateEscrow {
    fn read(f: &mut Fields<'_>, config: &Config) -> Option<CreateEscrow> {
        let client_id = f.required("client_id", Id::from_json);
        let provider_id = f.required("provider_id", Id::from_json);
        let amount_total = f.required("amount_total", Amount::from_json);
        let currency = f.optional("currency", parse::currency(&config.currencies));
        let release_conditions = f.optional("release_conditions", |v: &Value| {
            v.as_object().cloned().ok_or("must be a JSON object")
        });
        let deadline_at = f.required("deadline_at", parse::timestamp);
        let milestones = match f.value("milestones") {
            None => Some(None),
            Some(value) => milestones(value, f, config).map(Some),
        };
        Some(CreateEscrow {
            client_id: client_id?,
            provider_id: provider_id?,
            amount_total: amount_total?,
            currency: currency?.unwrap_or(Currency::usd()),
            release_conditions: release_conditions?,
            deadline_at: deadline_at?,
            milestones: milestones?,
        })
    }
}

impl CreateEscrow {
    fn new_escrow(self) -> NewEscrow {
        NewEscrow {
            terms: EscrowTerms {
                client_id: self.client_id,
                provider_id: self.provider_id,
                amount_total: self.amount_total,
                deadline_at: self.deadline_at,
                milestones: self
                    .milestones
                    .map(|list| list.into_iter().map(MilestoneInput::terms).collect()),
            },
            currency: self.currency,
            release_conditions: Value::Object(self.release_conditions.unwrap_or_default()),
        }
    }
}

/// `POST /escrows/{id}/deposit` body.
#[derive(utoipa::ToSchema)]
struct Deposit {
    #[schema(value_type = MoneyInput)]
    amount: Amount,
}

impl RequestBody for Deposit {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<Deposit> {
        let amount = f.required("amount", Amount::from_json);
        Some(Deposit { amount: amount? })
    }
}

/// The optional body of `client-approve` and `client-reject`.
#[derive(utoipa::ToSchema)]
struct Remark {
    #[schema(schema_with = shared::api_doc::text::<0, MAX_NOTE_CHARS>)]
    note: Option<String>,
}

impl RequestBody for Remark {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<Remark> {
        let note = f.optional("note", parse::text(0, MAX_NOTE_CHARS));
        Some(Remark { note: note? })
    }
}

/// The optional body of `mark-delivered`.
#[derive(utoipa::ToSchema)]
struct Delivery {
    #[schema(schema_with = shared::api_doc::text::<0, MAX_NOTE_CHARS>)]
    note: Option<String>,
    #[schema(schema_with = shared::api_doc::text::<0, MAX_NOTE_CHARS>)]
    proof_url: Option<String>,
}

impl RequestBody for Delivery {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<Delivery> {
        let note = f.optional("note", parse::text(0, MAX_NOTE_CHARS));
        let proof_url = f.optional("proof_url", parse::text(0, MAX_NOTE_CHARS));
        Some(Delivery {
            note: note?,
            proof_url: proof_url?,
        })
    }
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route> {
    use shared::{api_doc::Route, domain::error::ErrorCode, store::escrow::EscrowEvent};
    let transition = [ErrorCode::EscrowNotFound, ErrorCode::EscrowInvalidState];
    vec![
        Route::post("/escrows", "Create an escrow with its milestones", create)
            .body::<CreateEscrow>()
            .answer::<Escrow>(201, "The escrow, DRAFT.")
            .errors(&[ErrorCode::UserNotFound]),
        Route::get("/escrows", "List escrows", list)
            .query_id("client_id", false)
            .query_id("provider_id", false)
            .query(
                "status",
                <EscrowStatus as utoipa::PartialSchema>::schema(),
                false,
            )
            .list::<Escrow>(),
        Route::get("/escrows/{id}", "Read an escrow", read)
            .answer::<Escrow>(200, "The escrow.")
            .errors(&[ErrorCode::EscrowNotFound]),
        Route::get(
            "/escrows/{id}/events",
            "The escrow's timeline, oldest first",
            events,
        )
        .list::<EscrowEvent>()
        .errors(&[ErrorCode::EscrowNotFound]),
        Route::post(
            "/escrows/{id}/deposit",
            "Deposit into a DRAFT escrow",
            deposit,
        )
        .idempotent()
        .body::<Deposit>()
        .answer::<Escrow>(200, "The escrow.")
        .errors(&transition)
        .errors(&[ErrorCode::DepositExceedsTotal]),
        Route::post(
            "/escrows/{id}/mark-delivered",
            "The provider delivered",
            mark_delivered,
        )
        .optional_body::<Delivery>()
        .answer::<Escrow>(200, "The escrow.")
        .errors(&transition),
        Route::post(
            "/escrows/{id}/client-approve",
            "The client approves: the remainder is paid to the provider",
            client_approve,
        )
        .optional_body::<Remark>()
        .answer::<Escrow>(200, "The escrow.")
        .errors(&transition),
        Route::post(
            "/escrows/{id}/client-reject",
            "The client rejects: the remainder is refunded to the client",
            client_reject,
        )
        .optional_body::<Remark>()
        .answer::<Escrow>(200, "The escrow.")
        .errors(&transition),
        Route::post(
            "/escrows/{id}/check-deadline",
            "Apply the deadline rule now (no body)",
            check_deadline,
        )
        .answer::<Escrow>(200, "The escrow, changed or not.")
        .errors(&[ErrorCode::EscrowNotFound]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::{schema::Schema, RefOr};

    fn property(schema: RefOr<Schema>, name: &str) -> serde_json::Value {
        serde_json::to_value(schema).unwrap()["properties"][name].clone()
    }

    /// The limits written as literals in the schema attributes are the
    /// domain's constants.
    #[test]
    fn schema_limits_are_the_domains() {
        use shared::domain::{escrow::MAX_MILESTONES, geo::MAX_RADIUS_M};
        use utoipa::PartialSchema;
        let milestones = property(CreateEscrow::schema(), "milestones");
        assert_eq!(milestones["maxItems"], MAX_MILESTONES);
        let radius = property(GeofenceInput::schema(), "radius_m");
        assert_eq!(radius["maximum"].as_f64(), Some(MAX_RADIUS_M));
    }
}
