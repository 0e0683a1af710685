//! The spend catalogue (`/spend/categories`, `/spend/merchants`,
//! `/spend/allow`) and purchases (`POST /spend/purchases` 💰,
//! `GET /spend/purchases/{id}`), and escrow-backed payees and spends
//! (`/spend/allowed`, `POST /spend` 💰, in `payees`).

use axum::{extract::State, http::StatusCode, response::Response, Router};
use shared::{
    api_doc::{CurrencyInput, MoneyInput},
    config::Config,
    domain::{
        access::Principal, catalogue::AllowanceTarget, currency::Currency, error::ErrorCode,
        ids::Id, money::Amount, purchase::PurchaseRequest,
    },
    error::AppError,
    http::{
        allowance,
        body::{parse, Body, Fields, RequestBody},
        extract::{IdempotencyKey, PathId},
        json, stored,
    },
    metrics, ops,
    store::idempotency::{Scope, StoredResponse},
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    shared::api_doc::router(routes(), state)
}

mod payees;

const PURCHASE_ROUTE: &str = "POST /spend/purchases";

async fn create_category(
    State(state): State<SharedState>,
    caller: Principal,
    body: Body<CreateCategory>,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_admin())?;
    let CreateCategory { code, label } = body.parse(&state.config)?;
    let category = state
        .store
        .create_category(code, label, &(&caller).into())
        .await?;
    Ok(json(StatusCode::CREATED, &category))
}

async fn create_merchant(
    State(state): State<SharedState>,
    caller: Principal,
    body: Body<CreateMerchant>,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_admin())?;
    let CreateMerchant {
        name,
        category_id,
        is_certified,
    } = body.parse(&state.config)?;
    let merchant = state
        .store
        .create_merchant(
            name,
            category_id,
            is_certified.unwrap_or(false),
            &(&caller).into(),
        )
        .await?;
    Ok(json(StatusCode::CREATED, &merchant))
}

async fn allow(
    State(state): State<SharedState>,
    caller: Principal,
    body: Body<AllowSpend>,
) -> Result<Response, AppError> {
    let body = body.parse(&state.config)?;
    let owner_id = body.owner_id;
    let target = body
        .target()
        .ok_or_else(|| AppError::internal("read checks the target"))?;
    AppError::permit(caller.acts_for(owner_id))?;
    let outcome = state
        .store
        .allow(owner_id, target, &(&caller).into())
        .await?;
    Ok(allowance(outcome))
}

async fn purchase(
    State(state): State<SharedState>,
    caller: Principal,
    IdempotencyKey(key): IdempotencyKey,
    body: Body<CreatePurchase>,
) -> Result<Response, AppError> {
    let body = body.parse(&state.config)?;
    let request = PurchaseRequest {
        sender_id: body.sender_id,
        beneficiary_id: body.beneficiary_id,
        merchant_id: body.merchant_id,
        amount: body.amount,
        currency: body.currency,
        category_id: body.category_id,
    };
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
// The routes: the router and the API document

/// Longest category code.
const MAX_CODE_CHARS: usize = 64;
/// Longest category label and merchant name.
const MAX_NAME_CHARS: usize = 255;

/// `POST /spend/categories` body.
#[derive(utoipa::ToSchema)]
struct CreateCategory {
    #[schema(schema_with = shared::api_doc::text::<1, MAX_CODE_CHARS>)]
    code: String,
    #[schema(schema_with = shared::api_doc::text::<1, MAX_NAME_CHARS>)]
    label: String,
}

impl RequestBody for CreateCategory {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<CreateCategory> {
        let code = f.required("code", parse::text(1, MAX_CODE_CHARS));
        let label = f.required("label", parse::text(1, MAX_NAME_CHARS));
        Some(CreateCategory {
            code: code?,
            label: label?,
        })
    }
}

/// `POST /spend/merchants` body.
#[derive(utoipa::ToSchema)]
struct CreateMerchant {
    #[schema(schema_with = shared::api_doc::text::<1, MAX_NAME_CHARS>)]
    name: String,
    category_id: Option<Id>,
    is_certified: Option<bool>,
}

impl RequestBody for CreateMerchant {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<CreateMerchant> {
        let name = f.required("name", parse::text(1, MAX_NAME_CHARS));
        let category_id = f.optional("category_id", Id::from_json);
        let is_certified = f.optional("is_certified", parse::boolean);
        Some(CreateMerchant {
            name: name?,
            category_id: category_id?,
            is_certified: is_certified?,
        })
    }
}

/// `POST /spend/allow` body: exactly one of `merchant_id` and `category_id`.
#[derive(utoipa::ToSchema)]
struct AllowSpend {
    owner_id: Id,
    merchant_id: Option<Id>,
    category_id: Option<Id>,
}

impl AllowSpend {
    /// The merchant or the category, when exactly one is named.
    fn target(&self) -> Option<AllowanceTarget> {
        match (self.merchant_id, self.category_id) {
            (Some(merchant), None) => Some(AllowanceTarget::Merchant(merchant)),
            (None, Some(category)) => Some(AllowanceTarget::Category(category)),
            _ => None,
        }
    }
}

impl RequestBody for AllowSpend {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<AllowSpend> {
        let owner_id = f.required("owner_id", Id::from_json);
        let merchant_id = f.optional("merchant_id", Id::from_json);
        let category_id = f.optional("category_id", Id::from_json);
        if let (Some(merchant), Some(category)) = (merchant_id, category_id) {
            if merchant.is_some() == category.is_some() {
                let problem = "exactly one of merchant_id or category_id is required";
                f.error("merchant_id", problem);
                f.error("category_id", problem);
            }
        }
        Some(AllowSpend {
            owner_id: owner_id?,
            merchant_id: merchant_id?,
            category_id: category_id?,
        })
    }
}

/// `POST /spend/purchases` body.
#[derive(utoipa::ToSchema)]
struct CreatePurchase {
    sender_id: Id,
    /// Defaults to `sender_id`.
    #[schema(value_type = Option<Id>)]
    beneficiary_id: Id,
    merchant_id: Id,
    #[schema(value_type = MoneyInput)]
    amount: Amount,
    /// Default `USD`.
    #[schema(value_type = Option<CurrencyInput>)]
    currency: Currency,
    category_id: Option<Id>,
}

impl RequestBody for CreatePurchase {
    fn read(f: &mut Fields<'_>, config: &Config) -> Option<CreatePurchase> {
        let sender_id = f.required("sender_id", Id::from_json);
        let beneficiary_id = f.optional("beneficiary_id", Id::from_json);
        let merchant_id = f.required("merchant_id", Id::from_json);
        let amount = f.required("amount", Amount::from_json);
        let currency = f.optional("currency", parse::currency(&config.currencies));
        let category_id = f.optional("category_id", Id::from_json);
        let sender_id = sender_id?;
        Some(CreatePurchase {
            sender_id,
            // The original clients name only the spender, as `sender_id`.
            beneficiary_id: beneficiary_id?.unwrap_or(sender_id),
            merchant_id: merchant_id?,
            amount: amount?,
            currency: currency?.unwrap_or(Currency::usd()),
            category_id: category_id?,
        })
    }
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route> {
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
        Route::post(
            "/spend/categories",
            "Create a spend category",
            create_category,
        )
        .body::<CreateCategory>()
        .answer::<Category>(201, "The category.")
        .errors(&[ErrorCode::CategoryExists]),
        Route::post("/spend/merchants", "Create a merchant", create_merchant)
            .body::<CreateMerchant>()
            .answer::<Merchant>(201, "The merchant.")
            .errors(&[ErrorCode::CategoryNotFound, ErrorCode::MerchantExists]),
        Route::post(
            "/spend/allow",
            "Allow an owner a merchant or a category",
            allow,
        )
        .body::<AllowSpend>()
        .answer_schema(201, status_schema(&["added"]), "Added.")
        .answer_schema(200, status_schema(&["exists"]), "Already allowed.")
        .errors(&[
            ErrorCode::UserNotFound,
            ErrorCode::MerchantNotFound,
            ErrorCode::CategoryNotFound,
        ]),
        Route::post("/spend/purchases", "Spend a mandate", purchase)
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
        Route::get("/spend/purchases/{id}", "Read a purchase", read_purchase)
            .answer::<Purchase>(200, "The purchase.")
            .errors(&[ErrorCode::PurchaseNotFound]),
        Route::post(
            "/spend/allowed",
            "Allow a payee of an escrow, with limits",
            payees::allow_payee,
        )
        .body::<payees::AllowPayee>()
        .answer::<PayeeView>(201, "The payee.")
        .errors(&[
            ErrorCode::EscrowNotFound,
            ErrorCode::EscrowNotActive,
            ErrorCode::PayeeAlreadyAllowed,
        ]),
        Route::get(
            "/spend/allowed",
            "List an escrow's allowed payees",
            payees::list_payees,
        )
        .query_id("escrow_id", true)
        .list::<PayeeView>()
        .errors(&[ErrorCode::EscrowNotFound]),
        Route::post(
            "/spend",
            "Pay an allowed payee from an escrow",
            payees::spend,
        )
        .idempotent()
        .body::<payees::CreateSpend>()
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
