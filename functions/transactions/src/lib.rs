//! Restricted transfers: `POST /allowlist`, `POST /certified`,
//! `POST /transactions` (💰), `GET /transactions/{id}`, `GET /transactions`.
//! A transfer is allowed iff the sender allowlisted the receiver or the
//! receiver is certified; a refusal raises one alert (`shared::store::transfers`).

use axum::{extract::State, http::StatusCode, response::Response, Router};
use shared::{
    api_doc::{CurrencyInput, MoneyInput},
    config::Config,
    domain::{
        access::Principal,
        currency::Currency,
        error::ErrorCode,
        ids::Id,
        money::Amount,
        transfer::{CertificationLevel, Counterparties, TransferRequest},
    },
    error::AppError,
    http::{
        allowance,
        body::{parse, Body, Fields, RequestBody},
        extract::{IdempotencyKey, ListQuery, PathId},
        json, outcome, stored,
    },
    store::{
        idempotency::Scope,
        transfers::{CertifyOutcome, TransactionFilter},
    },
    SharedState,
};

/// The idempotency scope's route of `POST /transactions`.
const TRANSFER_ROUTE: &str = "POST /transactions";

pub fn router(state: SharedState) -> Router {
    shared::api_doc::router(routes(), state)
}

/// Two different users named by `from` and `to`; the same one twice is a
/// problem of `to`.
fn counterparties(f: &mut Fields, from: &'static str, to: &'static str) -> Option<Counterparties> {
    let (first, second) = (
        f.required(from, Id::from_json),
        f.required(to, Id::from_json),
    );
    let parties = Counterparties::new(first?, second?);
    if parties.is_none() {
        f.error(to, format!("must differ from {from}"));
    }
    parties
}

/// Parties that `counterparties` accepted when the body was read.
fn checked(parties: Option<Counterparties>) -> Result<Counterparties, AppError> {
    parties.ok_or_else(|| AppError::internal("read checks that the parties differ"))
}

async fn allowlist(
    State(state): State<SharedState>,
    caller: Principal,
    body: Body<AllowlistEntry>,
) -> Result<Response, AppError> {
    let entry = body.parse(&state.config)?;
    let parties = checked(Counterparties::new(entry.owner_id, entry.recipient_id))?;
    AppError::permit(caller.acts_for(parties.from))?;
    let outcome = state
        .store
        .add_to_allowlist(parties, &(&caller).into())
        .await?;
    Ok(allowance(outcome))
}

async fn certify(
    State(state): State<SharedState>,
    caller: Principal,
    body: Body<Certification>,
) -> Result<Response, AppError> {
    let Certification { user_id, level } = body.parse(&state.config)?;
    AppError::permit(caller.is_admin())?;
    Ok(
        match state
            .store
            .certify(user_id, level, &(&caller).into())
            .await?
        {
            CertifyOutcome::Created => outcome(StatusCode::CREATED, "created"),
            CertifyOutcome::Updated => outcome(StatusCode::OK, "updated"),
        },
    )
}

async fn transfer(
    State(state): State<SharedState>,
    caller: Principal,
    IdempotencyKey(key): IdempotencyKey,
    body: Body<CreateTransaction>,
) -> Result<Response, AppError> {
    let body = body.parse(&state.config)?;
    let request = TransferRequest {
        parties: checked(Counterparties::new(body.sender_id, body.receiver_id))?,
        amount: body.amount,
        currency: body.currency,
    };
    let scope = Scope {
        route: TRANSFER_ROUTE,
        owner: caller.idempotency_owner(),
        key,
    };
    let response = shared::ops::transfer::transfer(&state.store, &caller, &request, &scope).await?;
    Ok(stored(response))
}

async fn read(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    let transfer = state
        .store
        .transaction(id)
        .await?
        .filter(|t| caller.may_read(&t.parties()))
        .ok_or_else(|| AppError::new(ErrorCode::TransactionNotFound, "Transaction not found."))?;
    Ok(json(StatusCode::OK, &transfer))
}

async fn list(
    State(state): State<SharedState>,
    caller: Principal,
    mut query: ListQuery,
) -> Result<Response, AppError> {
    let filter = TransactionFilter {
        sender_id: query.id("sender_id"),
        receiver_id: query.id("receiver_id"),
        party: caller.party_limit(),
    };
    let page = query.page()?;
    Ok(json(
        StatusCode::OK,
        &state.store.transactions(&filter, page).await?,
    ))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// `POST /allowlist` body.
#[derive(utoipa::ToSchema)]
struct AllowlistEntry {
    owner_id: Id,
    recipient_id: Id,
}

impl RequestBody for AllowlistEntry {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<AllowlistEntry> {
        let parties = counterparties(f, "owner_id", "recipient_id")?;
        Some(AllowlistEntry {
            owner_id: parties.from,
            recipient_id: parties.to,
        })
    }
}

/// `POST /certified` body.
#[derive(utoipa::ToSchema)]
struct Certification {
    user_id: Id,
    /// BASIC or GOLD, any case.
    #[schema(value_type = String, pattern = "^([Bb][Aa][Ss][Ii][Cc]|[Gg][Oo][Ll][Dd])$")]
    level: CertificationLevel,
}

impl RequestBody for Certification {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<Certification> {
        let user_id = f.required("user_id", Id::from_json);
        let level = f.required("level", CertificationLevel::from_json);
        Some(Certification {
            user_id: user_id?,
            level: level?,
        })
    }
}

/// `POST /transactions` body.
#[derive(utoipa::ToSchema)]
struct CreateTransaction {
    sender_id: Id,
    receiver_id: Id,
    #[schema(value_type = MoneyInput)]
    amount: Amount,
    /// Default `USD`.
    #[schema(value_type = Option<CurrencyInput>)]
    currency: Currency,
}

impl RequestBody for CreateTransaction {
    fn read(f: &mut Fields<'_>, config: &Config) -> Option<CreateTransaction> {
        let parties = counterparties(f, "sender_id", "receiver_id");
        let amount = f.required("amount", Amount::from_json);
        let currency = f.optional("currency", parse::currency(&config.currencies));
        let parties = parties?;
        Some(CreateTransaction {
            sender_id: parties.from,
            receiver_id: parties.to,
            amount: amount?,
            currency: currency?.unwrap_or(Currency::usd()),
        })
    }
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route> {
    use shared::{
        api_doc::{status_schema, Route},
        domain::transfer::Transfer,
    };
    vec![
        Route::post("/allowlist", "Allowlist a transfer recipient", allowlist)
            .body::<AllowlistEntry>()
            .answer_schema(201, status_schema(&["added"]), "Added.")
            .answer_schema(200, status_schema(&["exists"]), "Already there.")
            .errors(&[ErrorCode::UserNotFound]),
        Route::post("/certified", "Certify a user", certify)
            .body::<Certification>()
            .answer_schema(201, status_schema(&["created"]), "Certified.")
            .answer_schema(200, status_schema(&["updated"]), "Level updated.")
            .errors(&[ErrorCode::UserNotFound]),
        Route::post("/transactions", "A restricted transfer", transfer)
            .idempotent()
            .body::<CreateTransaction>()
            .answer::<Transfer>(201, "The transfer.")
            .errors(&[ErrorCode::UserNotFound, ErrorCode::UnauthorizedTransfer]),
        Route::get("/transactions", "List transfers, newest first", list)
            .query_id("sender_id", false)
            .query_id("receiver_id", false)
            .list::<Transfer>(),
        Route::get("/transactions/{id}", "Read a transfer", read)
            .answer::<Transfer>(200, "The transfer.")
            .errors(&[ErrorCode::TransactionNotFound]),
    ]
}
