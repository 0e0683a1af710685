//! Usage payees of an escrow (`POST /spend/allowed`, `GET /spend/allowed`)
//! and the spends that pay them (`POST /spend` 💰), out of the escrow in one
//! transaction with the payee's limits (`shared::store::payees`).

use axum::{extract::State, http::StatusCode, response::Response};
use shared::{
    domain::{
        access::Principal,
        ids::Id,
        money::Amount,
        spend::{parse_payee_ref, SpendRequest},
    },
    error::AppError,
    http::{
        body::{parse, Fields, JsonBody},
        extract::{IdempotencyKey, ListQuery},
        json, stored,
    },
    store::{
        escrow::not_found,
        idempotency::{fingerprint, Scope},
        payees::NewPayee,
    },
    SharedState,
};

const SPEND_ROUTE: &str = "POST /spend";

fn payee_ref(value: &serde_json::Value) -> Result<String, &'static str> {
    value
        .as_str()
        .ok_or("must be a string")
        .and_then(parse_payee_ref)
}

pub async fn allow_payee(
    State(state): State<SharedState>,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let mut f = Fields::of(&body)?;
    let escrow_id = f.required("escrow_id", Id::from_json);
    let payee_ref = f.required("payee_ref", payee_ref);
    let label = f.required("label", parse::text(2, 200));
    let daily_limit = f.optional("daily_limit", Amount::from_json);
    let total_limit = f.optional("total_limit", Amount::from_json);
    let (escrow_id, new) = f.finish(|| {
        Some((
            escrow_id?,
            NewPayee {
                payee_ref: payee_ref?,
                label: label?,
                daily_limit: daily_limit?,
                total_limit: total_limit?,
            },
        ))
    })?;
    // Only the client allows payees: acting on another's escrow is 403.
    let payee = state
        .store
        .allow_payee(escrow_id, &new, &(&caller).into(), |escrow| {
            AppError::permit(caller.acts_for(escrow.client_id))
        })
        .await?;
    Ok(json(StatusCode::CREATED, &payee))
}

pub async fn list_payees(
    State(state): State<SharedState>,
    caller: Principal,
    mut query: ListQuery,
) -> Result<Response, AppError> {
    let escrow_id = query.id("escrow_id");
    if escrow_id.is_none() {
        query.required_missing("escrow_id");
    }
    let page = query.page()?;
    let escrow_id = escrow_id.ok_or_else(|| AppError::internal("escrow_id checked above"))?;
    // A user reads only the payees of escrows it is a party to.
    state
        .store
        .escrow(escrow_id)
        .await?
        .filter(|e| caller.may_read(&e.parties()))
        .ok_or_else(not_found)?;
    Ok(json(
        StatusCode::OK,
        &state.store.payees(escrow_id, page).await?,
    ))
}

pub async fn spend(
    State(state): State<SharedState>,
    caller: Principal,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody,
) -> Result<Response, AppError> {
    let mut f = Fields::of(&body)?;
    let escrow_id = f.required("escrow_id", Id::from_json);
    let payee_ref = f.required("payee_ref", payee_ref);
    let amount = f.required("amount", Amount::from_json);
    let note = f.optional("note", parse::text(0, 500));
    let request = f.finish(|| {
        Some(SpendRequest {
            escrow_id: escrow_id?,
            payee_ref: payee_ref?,
            amount: amount?,
            note: note?,
        })
    })?;
    let scope = Scope {
        route: SPEND_ROUTE,
        owner: caller.idempotency_owner(),
        key,
    };
    let response = state
        .store
        .spend(
            &request,
            &scope,
            &fingerprint(&request.canonical()),
            &(&caller).into(),
            // The client or the provider spends.
            |escrow| {
                AppError::permit(
                    caller.acts_for(escrow.client_id) || caller.acts_for(escrow.provider_id),
                )
            },
        )
        .await?;
    Ok(stored(response))
}
