//! Does every cent reconcile? Admins only:
//! - `POST /ledger/checks` starts a ledger check (`shared::ops::ledger`),
//!   202 with the run; while one is RUNNING, 200 with that one. The
//!   schedule (functions/ledger-check) runs it; `GET /ledger/checks/{id}`
//!   answers where it stands and, once DONE, what it found.
//! - `POST /ledger/settlements/uploads` presigns the PUT of a PSP
//!   settlement report (CSV, at most 10 MiB) under `settlements/{sha256}`;
//!   `POST /ledger/settlements` reads it back, checks its SHA-256 (the
//!   server checks what it reads: the emulator checks no checksum),
//!   reconciles it (`shared::ops::settlement`) and answers 201 with the
//!   result, or 422 naming the report's first bad line, storing nothing.
//!   `GET /ledger/settlements` and `GET /ledger/settlements/{id}` list
//!   and read the results.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::Response,
    Router,
};
use sha2::{Digest, Sha256};
use shared::{
    api_doc::Route,
    blob::{Blob, Read},
    config::Config,
    domain::{
        access::{Principal, Role},
        error::ErrorCode,
        settlement::MAX_REPORT_BYTES,
        time::Timestamp,
        upload,
    },
    error::AppError,
    http::{
        body::{parse, Body, Fields, RequestBody},
        extract::{ListQuery, PathId},
        json,
    },
    ops,
    store::{audit::Actor, ledger::LedgerRunView, settlements::SettlementReport},
    AppState, SharedState,
};
use std::time::Duration;

/// The API's state and the bucket the reports are uploaded to.
#[derive(Clone)]
pub struct LedgerState {
    pub app: SharedState,
    pub blob: Blob,
}

impl FromRef<LedgerState> for SharedState {
    fn from_ref(state: &LedgerState) -> SharedState {
        state.app.clone()
    }
}

impl LedgerState {
    pub async fn for_lambda() -> Result<LedgerState, String> {
        let app = AppState::for_lambda().await?;
        let blob = Blob::from_env(&shared::app::sdk_config().await).inspect_err(|reason| {
            tracing::error!(%reason, "refusing to start");
        })?;
        Ok(LedgerState { app, blob })
    }
}

pub fn router(state: LedgerState) -> Router {
    shared::api_doc::router(routes(), state)
}

/// How long a presigned PUT of a report is valid.
const PUT_VALID_SECONDS: u64 = 15 * 60;

/// Where a report with this SHA-256 is uploaded.
fn report_key(sha256: &str) -> String {
    format!("settlements/{sha256}")
}

fn admin(caller: &Principal) -> Result<(), AppError> {
    AppError::permit(caller.role == Role::Admin)
}

async fn start_check(
    State(state): State<LedgerState>,
    caller: Principal,
) -> Result<Response, AppError> {
    admin(&caller)?;
    let requested_by = Actor::from(&caller).to_string();
    let store = &state.app.store;
    Ok(
        match ops::ledger::start(store, requested_by, ops::ledger::DEFAULT_SEGMENTS).await? {
            Ok(run) => json(StatusCode::ACCEPTED, &LedgerRunView::from(run)),
            Err(running) => json(StatusCode::OK, &LedgerRunView::from(running)),
        },
    )
}

async fn read_check(
    State(state): State<LedgerState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    admin(&caller)?;
    let run =
        state.app.store.ledger_run(id).await?.ok_or_else(|| {
            AppError::new(ErrorCode::LedgerCheckNotFound, "Ledger check not found.")
        })?;
    Ok(json(StatusCode::OK, &LedgerRunView::from(run)))
}

async fn prepare_upload(
    State(state): State<LedgerState>,
    caller: Principal,
    body: Body<PrepareReport>,
) -> Result<Response, AppError> {
    admin(&caller)?;
    let PrepareReport {
        content_length,
        sha256,
    } = body.parse(&state.app.config)?;
    let presigned = state
        .blob
        .presign_put(
            &report_key(&sha256),
            "text/csv",
            content_length,
            &upload::checksum_base64(&sha256),
            Duration::from_secs(PUT_VALID_SECONDS),
        )
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &PreparedReport {
            upload_id: sha256,
            method: presigned.method,
            url: presigned.url,
            headers: presigned.headers.into_iter().collect(),
            expires_at: Timestamp::now().plus_seconds(PUT_VALID_SECONDS as i64),
        },
    ))
}

async fn reconcile(
    State(state): State<LedgerState>,
    caller: Principal,
    body: Body<SubmitReport>,
) -> Result<Response, AppError> {
    admin(&caller)?;
    let SubmitReport { upload_id } = body.parse(&state.app.config)?;
    let limit = MAX_REPORT_BYTES as u64 + 1;
    let bytes = match state.blob.read_bounded(&report_key(&upload_id), limit).await? {
        Read::Missing => {
            return Err(AppError::field(
                "upload_id",
                "no report is uploaded under this upload_id: prepare one with POST /ledger/settlements/uploads",
            ))
        }
        Read::Bytes(bytes) => bytes,
    };
    if hex::encode(Sha256::digest(&bytes)) != upload_id {
        return Err(AppError::field(
            "upload_id",
            "the uploaded bytes do not have this SHA-256",
        ));
    }
    let uploaded_by = Actor::from(&caller).to_string();
    match ops::settlement::reconcile_report(&state.app.store, &bytes, uploaded_by).await? {
        Ok(report) => Ok(json(StatusCode::CREATED, &report)),
        Err(problem) => Err(AppError::field("report", &problem.to_string())),
    }
}

async fn list_reports(
    State(state): State<LedgerState>,
    caller: Principal,
    query: ListQuery,
) -> Result<Response, AppError> {
    admin(&caller)?;
    let page = query.page()?;
    Ok(json(
        StatusCode::OK,
        &state.app.store.settlement_reports(page).await?,
    ))
}

async fn read_report(
    State(state): State<LedgerState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    admin(&caller)?;
    let report = state
        .app
        .store
        .settlement_report(id)
        .await?
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::SettlementNotFound,
                "Settlement report not found.",
            )
        })?;
    Ok(json(StatusCode::OK, &report))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// `POST /ledger/settlements/uploads` body.
#[derive(utoipa::ToSchema)]
struct PrepareReport {
    // `MAX_REPORT_BYTES` (a literal here; a test below checks they agree).
    #[schema(minimum = 1, maximum = 10485760)]
    content_length: u64,
    /// The report's SHA-256: 64 lower-case hex characters.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    sha256: String,
}

impl RequestBody for PrepareReport {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<PrepareReport> {
        let length = f.required("content_length", parse::upload_length);
        let sha256 = f.required("sha256", parse::sha256);
        Some(PrepareReport {
            content_length: length?,
            sha256: sha256?,
        })
    }
}

/// The answer of `POST /ledger/settlements/uploads`: a presigned PUT.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PreparedReport {
    /// The report's SHA-256, which `POST /ledger/settlements` names.
    upload_id: String,
    /// `PUT`.
    method: String,
    url: String,
    /// Send exactly these headers with the bytes.
    headers: std::collections::BTreeMap<String, String>,
    expires_at: Timestamp,
}

/// `POST /ledger/settlements` body.
#[derive(utoipa::ToSchema)]
struct SubmitReport {
    /// What `POST /ledger/settlements/uploads` answered.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    upload_id: String,
}

impl RequestBody for SubmitReport {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<SubmitReport> {
        let upload_id = f.required("upload_id", parse::sha256);
        Some(SubmitReport {
            upload_id: upload_id?,
        })
    }
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<Route<LedgerState>> {
    vec![
        Route::post("/ledger/checks", "Start a ledger check", start_check)
            .answer::<LedgerRunView>(202, "The run started.")
            .answer::<LedgerRunView>(200, "The run already RUNNING (one at a time)."),
        Route::get("/ledger/checks/{id}", "Read a ledger check", read_check)
            .answer::<LedgerRunView>(200, "The run: where it stands, what it found.")
            .errors(&[ErrorCode::LedgerCheckNotFound]),
        Route::post(
            "/ledger/settlements/uploads",
            "Presign the PUT of a PSP settlement report",
            prepare_upload,
        )
        .body::<PrepareReport>()
        .answer::<PreparedReport>(201, "The presigned PUT, valid 15 minutes."),
        Route::post(
            "/ledger/settlements",
            "Reconcile an uploaded settlement report",
            reconcile,
        )
        .body::<SubmitReport>()
        .answer::<SettlementReport>(201, "The reconciliation's result, stored."),
        Route::get(
            "/ledger/settlements",
            "List settlement reports",
            list_reports,
        )
        .list::<SettlementReport>(),
        Route::get(
            "/ledger/settlements/{id}",
            "Read a settlement report",
            read_report,
        )
        .answer::<SettlementReport>(200, "The reconciliation's result.")
        .errors(&[ErrorCode::SettlementNotFound]),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_report_size_is_the_domains() {
        assert_eq!(shared::domain::settlement::MAX_REPORT_BYTES, 10_485_760);
        assert_eq!(
            shared::domain::upload::MAX_PROOF_BYTES as usize,
            shared::domain::settlement::MAX_REPORT_BYTES,
            "the report's length is checked by upload::content_length"
        );
    }
}
