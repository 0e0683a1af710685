//! Usage payees of an escrow (`POST /spend/allowed`, `GET /spend/allowed`)
//! and the spends that pay them (`POST /spend` 💰), out of the escrow in one
//! transaction with the payee's limits (`shared::ops::spend`).

use axum::{extract::State, http::StatusCode, response::Response};
use shared::{
    api_doc::MoneyInput,
    config::Config,
    domain::{
        access::Principal,
        ids::Id,
        money::Amount,
        spend::{parse_payee_ref, SpendRequest, MAX_PAYEE_REF_CHARS},
    },
    error::AppError,
    http::{
        body::{parse, Body, Fields, RequestBody},
        extract::{IdempotencyKey, ListQuery},
        json, stored,
    },
    ops,
    store::{escrow::not_found, idempotency::Scope, payees::NewPayee},
    SharedState,
};

const SPEND_ROUTE: &str = "POST /spend";

fn payee_ref(value: &serde_json::Value) -> Result<String, &'static str> {
    value
        .as_str()
        .ok_or("must be a string")
        .and_then(parse_payee_ref)
}

/// Longest payee label.
const MAX_LABEL_CHARS: usize = 200;
/// Longest spend note.
const MAX_NOTE_CHARS: usize = 500;

/// `POST /spend/allowed` body.
#[derive(utoipa::ToSchema)]
pub(crate) struct AllowPayee {
    escrow_id: Id,
    #[schema(schema_with = shared::api_doc::text::<2, MAX_PAYEE_REF_CHARS>)]
    payee_ref: String,
    #[schema(schema_with = shared::api_doc::text::<2, MAX_LABEL_CHARS>)]
    label: String,
    #[schema(value_type = Option<MoneyInput>)]
    daily_limit: Option<Amount>,
    #[schema(value_type = Option<MoneyInput>)]
    total_limit: Option<Amount>,
}

impl RequestBody for AllowPayee {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<AllowPayee> {
        let escrow_id = f.required("escrow_id", Id::from_json);
        let payee_ref = f.required("payee_ref", payee_ref);
        let label = f.required("label", parse::text(2, MAX_LABEL_CHARS));
        let daily_limit = f.optional("daily_limit", Amount::from_json);
        let total_limit = f.optional("total_limit", Amount::from_json);
        Some(AllowPayee {
            escrow_id: escrow_id?,
            payee_ref: payee_ref?,
            label: label?,
            daily_limit: daily_limit?,
            total_limit: total_limit?,
        })
    }
}

/// `POST /spend` body.
#[derive(utoipa::ToSchema)]
pub(crate) struct CreateSpend {
    escrow_id: Id,
    #[schema(schema_with = shared::api_doc::text::<2, MAX_PAYEE_REF_CHARS>)]
    payee_ref: String,
    #[schema(value_type = MoneyInput)]
    amount: Amount,
    #[schema(schema_with = shared::api_doc::text::<0, MAX_NOTE_CHARS>)]
    note: Option<String>,
}

impl RequestBody for CreateSpend {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<CreateSpend> {
        let escrow_id = f.required("escrow_id", Id::from_json);
        let payee_ref = f.required("payee_ref", payee_ref);
        let amount = f.required("amount", Amount::from_json);
        let note = f.optional("note", parse::text(0, MAX_NOTE_CHARS));
        Some(CreateSpend {
            escrow_id: escrow_id?,
            payee_ref: payee_ref?,
            amount: amount?,
            note: note?,
        })
    }
}

pub async fn allow_payee(
    State(state): State<SharedState>,
    caller: Principal,
    body: Body<AllowPayee>,
) -> Result<Response, AppError> {
    let body = body.parse(&state.config)?;
    let escrow_id = body.escrow_id;
    let new = NewPayee {
        payee_ref: body.payee_ref,
        label: body.label,
        daily_limit: body.daily_limit,
        total_limit: body.total_limit,
    };
    // Only the client allows payees: acting on another's escrow is 403.
    let payee = ops::spend::allow_payee(&state.store, &caller, escrow_id, &new).await?;
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
    body: Body<CreateSpend>,
) -> Result<Response, AppError> {
    let body = body.parse(&state.config)?;
    let request = SpendRequest {
        escrow_id: body.escrow_id,
        payee_ref: body.payee_ref,
        amount: body.amount,
        note: body.note,
    };
    let scope = Scope {
        route: SPEND_ROUTE,
        owner: caller.idempotency_owner(),
        key,
    };
    // The client or the provider spends.
    let response = ops::spend::spend(&state.store, &caller, &request, &scope).await?;
    Ok(stored(response))
}
