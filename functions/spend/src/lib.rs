//! The spend catalogue (`/spend/categories`, `/spend/merchants`,
//! `/spend/allow`) and purchases (`POST /spend/purchases` 💰,
//! `GET /spend/purchases/{id}`), and escrow-backed payees and spends
//! (`/spend/allowed`, `POST /spend` 💰, in `payees`).

use axum::{
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};
use shared::{
    domain::{
        access::Principal, catalogue::AllowanceTarget, currency::Currency, error::ErrorCode,
        ids::Id, money::Amount, purchase::PurchaseRequest,
    },
    error::AppError,
    http::{
        allowance,
        body::{parse, Fields, JsonBody},
        extract::{IdempotencyKey, PathId},
        json, stored,
    },
    metrics, ops,
    store::idempotency::{Scope, StoredResponse},
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/spend/categories", post(create_category))
        .route("/spend/merchants", post(create_merchant))
        .route("/spend/allow", post(allow))
        .route("/spend/purchases", post(purchase))
        .route("/spend/purchases/{id}", get(read_purchase))
        .route(
            "/spend/allowed",
            post(payees::allow_payee).get(payees::list_payees),
        )
        .route("/spend", post(payees::spend))
        .with_state(state)
}

mod payees;

const PURCHASE_ROUTE: &str = "POST /spend/purchases";

async fn create_category(
    State(state): State<SharedState>,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_admin())?;
    let mut f = Fields::of(&body)?;
    let code = f.required("code", parse::text(1, 64));
    let label = f.required("label", parse::text(1, 255));
    let (code, label) = f.finish(|| Some((code?, label?)))?;
    let category = state
        .store
        .create_category(code, label, &(&caller).into())
        .await?;
    Ok(json(StatusCode::CREATED, &category))
}

async fn create_merchant(
    State(state): State<SharedState>,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_admin())?;
    let mut f = Fields::of(&body)?;
    let name = f.required("name", parse::text(1, 255));
    let category_id = f.optional("category_id", Id::from_json);
    let is_certified = f.optional("is_certified", parse::boolean);
    let (name, category_id, is_certified) =
        f.finish(|| Some((name?, category_id?, is_certified?.unwrap_or(false))))?;
    let merchant = state
        .store
        .create_merchant(name, category_id, is_certified, &(&caller).into())
        .await?;
    Ok(json(StatusCode::CREATED, &merchant))
}

async fn allow(
    State(state): State<SharedState>,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let mut f = Fields::of(&body)?;
    let owner_id = f.required("owner_id", Id::from_json);
    let merchant_id = f.optional("merchant_id", Id::from_json);
    let category_id = f.optional("category_id", Id::from_json);
    let target = match (merchant_id, category_id) {
        (Some(Some(merchant)), Some(None)) => Some(AllowanceTarget::Merchant(merchant)),
        (Some(None), Some(Some(category))) => Some(AllowanceTarget::Category(category)),
        (Some(None), Some(None)) | (Some(Some(_)), Some(Some(_))) => {
            f.error(
                "merchant_id",
                "exactly one of merchant_id or category_id is required",
            );
            f.error(
                "category_id",
                "exactly one of merchant_id or category_id is required",
            );
            None
        }
        _ => None,
    };
    let (owner_id, target) = f.finish(|| Some((owner_id?, target?)))?;
    AppError::permit(caller.acts_for(owner_id))?;
    let outcome = state
        .store
        .allow(owner_id, target, &(&caller).into())
        .await?;
    Ok(allowance(outcome))
}

fn parse_purchase(
    body: &serde_json::Value,
    state: &SharedState,
) -> Result<PurchaseRequest, AppError> {
    let mut f = Fields::of(body)?;
    let sender_id = f.required("sender_id", Id::from_json);
    let beneficiary_id = f.optional("beneficiary_id", Id::from_json);
    let merchant_id = f.required("merchant_id", Id::from_json);
    let amount = f.required("amount", Amount::from_json);
    let currency = f.optional("currency", parse::currency(&state.config.currencies));
    let category_id = f.optional("category_id", Id::from_json);
    f.finish(|| {
        let sender_id = sender_id?;
        Some(PurchaseRequest {
            sender_id,
            // The original clients name only the spender, as `sender_id`.
            beneficiary_id: beneficiary_id?.unwrap_or(sender_id),
            merchant_id: merchant_id?,
            amount: amount?,
            currency: currency?.unwrap_or(Currency::usd()),
            category_id: category_id?,
        })
    })
}

async fn purchase(
    State(state): State<SharedState>,
    caller: Principal,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let request = parse_purchase(&body, &state)?;
    let scope = Scope {
        route: PURCHASE_ROUTE,
        owner: caller.idempotency_owner(),
        key,
    };
    let response = ops::purchase::purchase(&state.store, &caller, &request, &scope).await;
    count_purchase(&response);
    Ok(stored(response?))
}

/// The purchase metrics: one per answer, refusals by error code (a 503 is
/// counted where every 503 is, in `shared::http`).
fn count_purchase(answer: &Result<StoredResponse, AppError>) {
    let code = match answer {
        Ok(response) if response.status == 201 => {
            return metrics::count(metrics::PURCHASES, 1, &[]);
        }
        Ok(response) => serde_json::from_str::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|body| body["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        Err(e) if e.is_busy() => return,
        Err(e) => e.code.as_str().to_owned(),
    };
    metrics::count(metrics::PURCHASE_REFUSALS, 1, &[("code", &code)]);
}

async fn read_purchase(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    let purchase = state
        .store
        .purchase_by_id(id)
        .await?
        .filter(|p| caller.may_read(&[p.sender_id, p.beneficiary_id]))
        .ok_or_else(|| AppError::new(ErrorCode::PurchaseNotFound, "Purchase not found."))?;
    Ok(json(StatusCode::OK, &purchase))
}

// ---------------------------------------------------------------------------
// The API document

/// `POST /spend/categories` body (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CreateCategory {
    #[schema(schema_with = shared::api_doc::text::<1, 64>)]
    code: String,
    #[schema(schema_with = shared::api_doc::text::<1, 255>)]
    label: String,
}

/// `POST /spend/merchants` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CreateMerchant {
    #[schema(schema_with = shared::api_doc::text::<1, 255>)]
    name: String,
    category_id: Option<shared::api_doc::IdInput>,
    is_certified: Option<bool>,
}

/// `POST /spend/allow` body: exactly one of `merchant_id` and `category_id`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct AllowSpend {
    owner_id: shared::api_doc::IdInput,
    merchant_id: Option<shared::api_doc::IdInput>,
    category_id: Option<shared::api_doc::IdInput>,
}

/// `POST /spend/purchases` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CreatePurchase {
    sender_id: shared::api_doc::IdInput,
    /// Defaults to `sender_id`.
    beneficiary_id: Option<shared::api_doc::IdInput>,
    merchant_id: shared::api_doc::IdInput,
    amount: shared::api_doc::MoneyInput,
    /// Default `USD`.
    currency: Option<shared::api_doc::CurrencyInput>,
    category_id: Option<shared::api_doc::IdInput>,
}

/// `POST /spend/allowed` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct AllowPayee {
    escrow_id: shared::api_doc::IdInput,
    #[schema(schema_with = shared::api_doc::text::<2, 120>)]
    payee_ref: String,
    #[schema(schema_with = shared::api_doc::text::<2, 200>)]
    label: String,
    daily_limit: Option<shared::api_doc::MoneyInput>,
    total_limit: Option<shared::api_doc::MoneyInput>,
}

/// `POST /spend` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CreateSpend {
    escrow_id: shared::api_doc::IdInput,
    #[schema(schema_with = shared::api_doc::text::<2, 120>)]
    payee_ref: String,
    amount: shared::api_doc::MoneyInput,
    #[schema(schema_with = shared::api_doc::text::<0, 500>)]
    note: Option<String>,
}

/// This function's routes in the API document.
pub fn api_routes() -> Vec<shared::api_doc::Route> {
    use shared::{
        api_doc::{status_schema, Route},
        domain::{
            catalogue::{Category, Merchant},
            purchase::Purchase,
            spend::PayeeView,
        },
        store::payees::SpendView,
    };
    vec![
        Route::post("/spend/categories", "Create a spend category")
            .body::<CreateCategory>()
            .answer::<Category>(201, "The category.")
            .errors(&[ErrorCode::CategoryExists]),
        Route::post("/spend/merchants", "Create a merchant")
            .body::<CreateMerchant>()
            .answer::<Merchant>(201, "The merchant.")
            .errors(&[ErrorCode::CategoryNotFound, ErrorCode::MerchantExists]),
        Route::post("/spend/allow", "Allow an owner a merchant or a category")
            .body::<AllowSpend>()
            .answer_schema(201, status_schema(&["added"]), "Added.")
            .answer_schema(200, status_schema(&["exists"]), "Already allowed.")
            .errors(&[
                ErrorCode::UserNotFound,
                ErrorCode::MerchantNotFound,
                ErrorCode::CategoryNotFound,
            ]),
        Route::post("/spend/purchases", "Spend a mandate")
            .idempotent()
            .body::<CreatePurchase>()
            .answer::<Purchase>(201, "The purchase.")
            .errors(&[
                ErrorCode::MerchantNotFound,
                ErrorCode::CategoryMismatch,
                ErrorCode::MandateRequired,
                ErrorCode::MandateExpired,
                ErrorCode::MandateMerchantForbidden,
                ErrorCode::MandateCategoryForbidden,
                ErrorCode::MandateBalanceExceeded,
                ErrorCode::UnauthorizedUsage,
            ]),
        Route::get("/spend/purchases/{id}", "Read a purchase")
            .answer::<Purchase>(200, "The purchase.")
            .errors(&[ErrorCode::PurchaseNotFound]),
        Route::post("/spend/allowed", "Allow a payee of an escrow, with limits")
            .body::<AllowPayee>()
            .answer::<PayeeView>(201, "The payee.")
            .errors(&[
                ErrorCode::EscrowNotFound,
                ErrorCode::EscrowNotActive,
                ErrorCode::PayeeAlreadyAllowed,
            ]),
        Route::get("/spend/allowed", "List an escrow's allowed payees")
            .query_id("escrow_id", true)
            .list::<PayeeView>()
            .errors(&[ErrorCode::EscrowNotFound]),
        Route::post("/spend", "Pay an allowed payee from an escrow")
            .idempotent()
            .body::<CreateSpend>()
            .answer::<SpendView>(200, "The payment made.")
            .errors(&[
                ErrorCode::EscrowNotFound,
                ErrorCode::EscrowNotActive,
                ErrorCode::PayeeNotAllowed,
                ErrorCode::DailyLimitReached,
                ErrorCode::TotalLimitReached,
                ErrorCode::InsufficientEscrowBalance,
            ]),
    ]
}
