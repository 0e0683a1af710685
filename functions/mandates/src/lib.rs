//! `POST /mandates`, `GET /mandates/{id}`, `GET /mandates`,
//! `POST /mandates/cleanup` (runs the same expiry as the schedule).

use axum::{extract::State, http::StatusCode, response::Response, Router};
use shared::{
    api_doc::{CurrencyInput, MoneyInput, TimestampInput},
    config::Config,
    domain::{
        access::{Principal, Role},
        currency::Currency,
        error::ErrorCode,
        ids::Id,
        mandate::{MandateStatus, MandateTerms},
        money::Amount,
        time::Timestamp,
    },
    error::AppError,
    http::{
        body::{parse, Body, Fields, RequestBody},
        extract::{ListQuery, PathId},
        json,
    },
    ops,
    store::{deadlines::SweepBudget, mandates::MandateFilter},
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    shared::api_doc::router(routes(), state)
}

async fn create(
    State(state): State<SharedState>,
    caller: Principal,
    body: Body<CreateMandate>,
) -> Result<Response, AppError> {
    // Support creates no mandate: say so before looking at the body.
    AppError::permit(caller.role != Role::Support)?;
    let body = body.parse(&state.config)?;
    let terms = MandateTerms {
        sender_id: body.sender_id,
        beneficiary_id: body.beneficiary_id,
        total_amount: body.total_amount,
        currency: body.currency,
        allowed_category_id: body.allowed_category_id,
        allowed_merchant_id: body.allowed_merchant_id,
        expires_at: body.expires_at,
    };
    let mandate = ops::mandate::create(&state.store, &caller, terms).await?;
    Ok(json(StatusCode::CREATED, &mandate))
}

async fn read(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    let mandate = state
        .store
        .mandate(id)
        .await?
        .filter(|m| caller.may_read(&[m.sender_id, m.beneficiary_id]))
        .ok_or_else(|| AppError::new(ErrorCode::MandateNotFound, "Mandate not found."))?;
    Ok(json(StatusCode::OK, &mandate))
}

async fn list(
    State(state): State<SharedState>,
    caller: Principal,
    mut query: ListQuery,
) -> Result<Response, AppError> {
    let filter = MandateFilter {
        sender_id: query.id("sender_id"),
        beneficiary_id: query.id("beneficiary_id"),
        status: query.parsed(
            "status",
            MandateStatus::parse,
            "must be one of ACTIVE, CONSUMED, EXPIRED",
        ),
        party: caller.party_limit(),
    };
    let page = query.page()?;
    Ok(json(
        StatusCode::OK,
        &state.store.mandates(&filter, page).await?,
    ))
}

async fn cleanup(
    State(state): State<SharedState>,
    caller: Principal,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let sweep = ops::mandate::expire_overdue(
        &state.store,
        Timestamp::now(),
        &(&caller).into(),
        &SweepBudget::for_request(),
    )
    .await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &Cleanup {
            expired: sweep.expired,
            skipped: sweep.skipped,
        },
    ))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// `POST /mandates` body.
#[derive(utoipa::ToSchema)]
struct CreateMandate {
    sender_id: Id,
    beneficiary_id: Id,
    #[schema(value_type = MoneyInput)]
    total_amount: Amount,
    /// Default `USD`.
    #[schema(value_type = Option<CurrencyInput>)]
    currency: Currency,
    allowed_category_id: Option<Id>,
    allowed_merchant_id: Option<Id>,
    #[schema(value_type = TimestampInput)]
    expires_at: Timestamp,
}
impl RequestBody for CreateMandate {
    fn read(f: &mut Fields<'_>, config: &Config) -> Option<CreateMandate> {
        let sender_id = f.required("sender_id", Id::from_json);
        let beneficiary_id = f.required("beneficiary_id", Id::from_json);
        let total_amount = f.required("total_amount", Amount::from_json);
        let currency = f.optional("currency", parse::currency(&config.currencies));
        let allowed_category_id = f.optional("allowed_category_id", Id::from_json);
        let allowed_merchant_id = f.optional("allowed_merchant_id", Id::from_json);
        let expires_at = f.required("expires_at", parse::timestamp);
        Some(CreateMandate {
            sender_id: sender_id?,
            beneficiary_id: beneficiary_id?,
            total_amount: total_amount?,
            currency: currency?.unwrap_or(Currency::usd()),
            allowed_category_id: allowed_category_id?,
            allowed_merchant_id: allowed_merchant_id?,
            expires_at: expires_at?,
        })
    }
}

// The answer of `POST /mandates/cleanup` (inline in the document).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Cleanup {
    #[schema(schema_with = count)]
    expired: u32,
    #[schema(schema_with = count)]
    skipped: u32,
}

fn count() -> utoipa::openapi::ObjectBuilder {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Integer)
        .minimum(Some(0))
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route> {
    use shared::{api_doc::Route, domain::mandate::Mandate};
    vec![
        Route::post("/mandates", "Create a usage mandate", create)
            .body::<CreateMandate>()
            .answer::<Mandate>(201, "The mandate.")
            .errors(&[
                ErrorCode::UserNotFound,
                ErrorCode::CategoryNotFound,
                ErrorCode::MerchantNotFound,
                ErrorCode::MandateExpiresInPast,
                ErrorCode::MandateConflict,
            ]),
        Route::get("/mandates", "List mandates", list)
            .query_id("sender_id", false)
            .query_id("beneficiary_id", false)
            .query(
                "status",
                <shared::domain::mandate::MandateStatus as utoipa::PartialSchema>::schema(),
                false,
            )
            .list::<Mandate>(),
        Route::get("/mandates/{id}", "Read a mandate", read)
            .answer::<Mandate>(200, "The mandate.")
            .errors(&[ErrorCode::MandateNotFound]),
        Route::post("/mandates/cleanup", "Expire overdue mandates now", cleanup).answer_schema(
            202,
            <Cleanup as utoipa::PartialSchema>::schema(),
            "How many mandates were expired (and skipped, busy).",
        ),
    ]
}
