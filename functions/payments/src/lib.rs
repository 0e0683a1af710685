//! `GET /payments/{id}` and `GET /payments?escrow_id=&status=`: the
//! payouts, refunds and spends of escrows (written by the escrow, proof and
//! spend routes, each in the transaction of the change that makes it);
//! `status=ERROR` is the failed-payout queue.
//! `POST /payments/execute/{id}` (staff): an ERROR payment sent again.
//! `GET /psp/events/{event_id}` and `GET /psp/events?status=` (staff): what
//! became of webhook events (here, not in `psp-webhook`, which
//! authenticates no API key).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    Router,
};
use shared::{
    domain::{
        access::Principal,
        error::ErrorCode,
        escrow::payment::{PaymentStatus, PspEventStatus},
    },
    error::AppError,
    http::{
        extract::{ListQuery, PathId},
        json,
    },
    store::{audit::Actor, escrow::not_found, psp_events::is_psp_event_sort_key},
    SharedState,
};

pub fn router(state: SharedState) -> Router {
    shared::api_doc::router(routes(), state)
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

const PAYMENT_STATUS_PROBLEM: &str = "must be one of PENDING, SENT, SETTLED, ERROR";
const EVENT_STATUS_PROBLEM: &str = "must be one of QUEUED, APPLIED, IGNORED, CONFLICT";

async fn list(
    State(state): State<SharedState>,
    caller: Principal,
    mut query: ListQuery,
) -> Result<Response, AppError> {
    let escrow_id = query.id("escrow_id");
    let status = query.parsed("status", PaymentStatus::parse, PAYMENT_STATUS_PROBLEM);
    if escrow_id.is_none() && !caller.is_staff() {
        query.required_missing("escrow_id");
    }
    let page = query.page()?;
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
        &state.store.payments(escrow_id, status, page).await?,
    ))
}

async fn execute(
    State(state): State<SharedState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let payment =
        shared::ops::payout::execute_payment(&state.store, id, &Actor::from(&caller)).await?;
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

async fn psp_events(
    State(state): State<SharedState>,
    caller: Principal,
    mut query: ListQuery,
) -> Result<Response, AppError> {
    AppError::permit(caller.is_staff())?;
    let status = query.parsed("status", PspEventStatus::parse, EVENT_STATUS_PROBLEM);
    let page = query.key_page(is_psp_event_sort_key)?;
    Ok(json(
        StatusCode::OK,
        &state.store.psp_events(status, &page).await?,
    ))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route> {
    use shared::{
        api_doc::{one_of_strings, Route},
        domain::escrow::payment::Payment,
        store::psp_events::PspEventView,
    };
    vec![
        Route::post(
            "/payments/execute/{id}",
            "Send an ERROR payment again (no body); SENT or SETTLED: unchanged",
            execute,
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
            psp_event,
        )
        .path_schema(
            "event_id",
            shared::api_doc::string_schema(None, Some((1, 200))),
        )
        .answer::<PspEventView>(200, "The event.")
        .errors(&[ErrorCode::PspEventNotFound]),
        Route::get(
            "/psp/events",
            "PSP webhook events, newest first",
            psp_events,
        )
        .query(
            "status",
            one_of_strings(&PspEventStatus::ALL.map(PspEventStatus::as_str)),
            false,
        )
        .list::<PspEventView>(),
        Route::get(
            "/payments",
            "List payments, newest first; status=ERROR is the failed-payout queue",
            list,
        )
        .query_id("escrow_id", false)
        .query(
            "status",
            one_of_strings(&PaymentStatus::ALL.map(PaymentStatus::as_str)),
            false,
        )
        .list::<Payment>()
        .errors(&[ErrorCode::EscrowNotFound]),
        Route::get("/payments/{id}", "Read a payment", read)
            .answer::<Payment>(200, "The payment.")
            .errors(&[ErrorCode::PaymentNotFound]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_problems_name_every_status() {
        for status in PaymentStatus::ALL {
            assert!(PAYMENT_STATUS_PROBLEM.contains(status.as_str()));
        }
        for status in PspEventStatus::ALL {
            assert!(EVENT_STATUS_PROBLEM.contains(status.as_str()));
        }
    }
}
