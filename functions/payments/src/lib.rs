//! `GET /payments/{id}` and `GET /payments?escrow_id=`: the payouts,
//! refunds and spends of escrows (written by the escrow, proof and spend
//! routes, each in the transaction of the change that makes it).
//! `POST /payments/execute/{id}` (staff): an ERROR payment sent again.
//! `GET /psp/events/{event_id}` (staff): what became of one webhook event
//! (here, not in `psp-webhook`, which authenticates no API key).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};
use shared::{
    domain::{access::Principal, error::ErrorCode, ids::Id},
    error::AppError,
    http::{
        body::query_errors,
        extract::{PathId, QueryMap},
        json,
    },
    store::{audit::Actor, escrows::not_found, list::PageRequest},
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/payments", get(list))
        .route("/payments/{id}", get(read))
        .route("/payments/execute/{id}", post(execute))
        .route("/psp/events/{event_id}", get(psp_event))
        .with_state(state)
}

async fn read(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    let payment = state
        .store
        .payment(id)
        .await?
        .filter(|p| caller.may_read(&p.parties))
        .ok_or_else(|| AppError::new(ErrorCode::PaymentNotFound, "Payment not found."))?;
    Ok(json(StatusCode::OK, &payment.payment))
}

async fn list(
    State(state): State<SharedState>,
    caller: Principal,
    QueryMap(query): QueryMap,
) -> Result<Response, AppError> {
    let value = |name: &str| query.get(name).map(String::as_str);
    let mut problems = Vec::new();
    let escrow_id = match value("escrow_id").map(Id::parse) {
        Some(Ok(id)) => Some(id),
        Some(Err(problem)) => {
            problems.push(("escrow_id", problem));
            None
        }
        None if !caller.is_staff() => {
            problems.push(("escrow_id", "is required"));
            None
        }
        None => None,
    };
    let page = match PageRequest::parse(value("limit"), value("cursor")) {
        Ok(page) if problems.is_empty() => page,
        Ok(_) => return Err(query_errors(problems)),
        Err(more) => return Err(query_errors(problems.into_iter().chain(more).collect())),
    };
    if let Some(escrow) = escrow_id {
        // A user reads only the payments of escrows it is a party to; the
        // escrow of another looks absent.
        if !caller.is_staff() {
            state
                .store
                .escrow(escrow)
                .await?
                .filter(|e| caller.may_read(&e.parties()))
                .ok_or_else(not_found)?;
        }
    }
    Ok(json(
        StatusCode::OK,
        &state.store.payments(escrow_id, page).await?,
    ))
}

async fn execute(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let payment = state
        .store
        .execute_payment(id, &Actor::from(&caller))
        .await?;
    Ok(json(StatusCode::OK, &payment))
}

async fn psp_event(
    State(state): State<SharedState>,
    caller: Principal,
    Path(event_id): Path<String>,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let event = state
        .store
        .psp_event(&event_id)
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::PspEventNotFound, "PSP event not found."))?;
    Ok(json(StatusCode::OK, &event))
}

// ---------------------------------------------------------------------------
// The API document

/// This function's routes in the API document.
pub fn api_routes() -> Vec<shared::api_doc::Route> {
    use shared::{api_doc::Route, domain::payment::Payment, store::psp_events::PspEventView};
    vec![
        Route::post(
            "/payments/execute/{id}",
            "Send an ERROR payment again (no body); SENT or SETTLED: unchanged",
        )
        .answer::<Payment>(200, "The payment.")
        .errors(&[
            ErrorCode::PaymentNotFound,
            ErrorCode::InsufficientEscrowBalance,
            ErrorCode::TotalLimitReached,
        ]),
        Route::get(
            "/psp/events/{event_id}",
            "What became of one PSP webhook event",
        )
        .path_schema(
            "event_id",
            shared::api_doc::string_schema(None, Some((1, 200))),
        )
        .answer::<PspEventView>(200, "The event.")
        .errors(&[ErrorCode::PspEventNotFound]),
        Route::get("/payments", "List payments")
            .query_id("escrow_id", false)
            .list::<Payment>()
            .errors(&[ErrorCode::EscrowNotFound]),
        Route::get("/payments/{id}", "Read a payment")
            .answer::<Payment>(200, "The payment.")
            .errors(&[ErrorCode::PaymentNotFound]),
    ]
}
