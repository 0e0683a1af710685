//! `POST /mandates`, `GET /mandates/{id}`, `GET /mandates`,
//! `POST /mandates/cleanup` (runs the same expiry as the schedule).

use axum::{extract::State, http::StatusCode, response::Response, Router};
use shared::{
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
        body::{parse, Fields, JsonBody},
        extract::{ListQuery, PathId},
        json,
    },
    store::{deadlines::SweepBudget, mandates::MandateFilter},
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    shared::api_doc::router(routes(), state)
}

fn parse_terms(body: &serde_json::Value, state: &SharedState) -> Result<MandateTerms, AppError> {
    let mut f = Fields::of(body)?;
    let sender_id = f.required("sender_id", Id::from_json);
    let beneficiary_id = f.required("beneficiary_id", Id::from_json);
    let total_amount = f.required("total_amount", Amount::from_json);
    let currency = f.optional("currency", parse::currency(&state.config.currencies));
    let allowed_category_id = f.optional("allowed_category_id", Id::from_json);
    let allowed_merchant_id = f.optional("allowed_merchant_id", Id::from_json);
    let expires_at = f.required("expires_at", parse::timestamp);
    f.finish(|| {
        Some(MandateTerms {
            sender_id: sender_id?,
            beneficiary_id: beneficiary_id?,
            total_amount: total_amount?,
            currency: currency?.unwrap_or(Currency::usd()),
            allowed_category_id: allowed_category_id?,
            allowed_merchant_id: allowed_merchant_id?,
            expires_at: expires_at?,
        })
    })
}

async fn create(
    State(state): State<SharedState>,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    // Support creates no mandate: say so before looking at the body.
    AppError::permit(caller.role != Role::Support)?;
    let terms = parse_terms(&body, &state)?;
    AppError::permit(caller.acts_for(terms.sender_id))?;
    let mandate = state.store.create_mandate(terms, &(&caller).into()).await?;
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
    let sweep = state
        .store
        .expire_overdue(
            Timestamp::now(),
            &(&caller).into(),
            &SweepBudget::for_request(),
        )
        .await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "expired": sweep.expired, "skipped": sweep.skipped }),
    ))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// `POST /mandates` body (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CreateMandate {
    sender_id: shared::api_doc::IdInput,
    beneficiary_id: shared::api_doc::IdInput,
    total_amount: shared::api_doc::MoneyInput,
    /// Default `USD`.
    currency: Option<shared::api_doc::CurrencyInput>,
    allowed_category_id: Option<shared::api_doc::IdInput>,
    allowed_merchant_id: Option<shared::api_doc::IdInput>,
    expires_at: shared::api_doc::TimestampInput,
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route> {
    use shared::{
        api_doc::{object, Route},
        domain::mandate::Mandate,
    };
    let count = || {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .minimum(Some(0))
            .into()
    };
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
            object(&[("expired", count()), ("skipped", count())]),
            "How many mandates were expired (and skipped, busy).",
        ),
    ]
}
