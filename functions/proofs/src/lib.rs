//! `POST /proofs/uploads`, `POST /proofs`, `GET /proofs/{id}`,
//! `GET /proofs` (the review queue and other lists) and
//! `POST /proofs/{id}/decision`: photo (and other) proofs of milestones,
//! their files in S3.
//!
//! The server, not the client, reads the file: `POST /proofs` reads the
//! uploaded object itself (at most the declared length + 1 bytes), hashes
//! it, reads its EXIF block for PHOTO milestones, and lets
//! `shared::domain::proof::judge_photo` decide: refuse (422, nothing
//! stored), review, or approve and pay (one transaction, through
//! `ops::payout::pay_milestone`). The accepted file is copied to
//! `proofs/{sha256}`, which the bucket keeps; uploads that never become a
//! proof expire with their prefix after a day.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::Response,
    Router,
};
use serde_json::Value;
use shared::{
    blob::{upload_missing, Blob, Read},
    config::Config,
    domain::{
        access::{Principal, Role},
        error::ErrorCode,
        escrow::{
            milestone::{check_proof_target, ProofTargetRefusal},
            Escrow, Milestone, MAX_PROOF_TYPE_CHARS,
        },
        exif, geo,
        ids::Id,
        proof::{
            judge_photo, Evidence, FileEvidence, PhotoEvidence, PhotoTerms, ReviewReason, Verdict,
        },
        proof_review::{Decision, Proof, ProofStatus},
        time::Timestamp,
        upload,
    },
    error::AppError,
    http::{
        body::{parse, Body, Fields, RequestBody, MAX_NOTE_CHARS},
        extract::{ListQuery, PathId},
        json,
    },
    store::{
        audit::Actor,
        escrow::not_found,
        list::Page,
        proofs::{duplicate, proof_not_found, Judged, NewProof, ProofFilter, ProofRead, Upload},
    },
    AppState, SharedState,
};
use std::time::Duration;

/// The proofs function's state: the shared one and the proof bucket (no
/// other function needs S3).
#[derive(Clone)]
pub struct ProofsState {
    pub app: SharedState,
    pub blob: Blob,
}

impl FromRef<ProofsState> for SharedState {
    fn from_ref(state: &ProofsState) -> SharedState {
        state.app.clone()
    }
}

impl ProofsState {
    /// A Lambda's start: the shared state, then the bucket
    /// (`KOBATELA_PROOF_BUCKET`); refuses to start without it.
    pub async fn for_lambda() -> Result<ProofsState, String> {
        let app = AppState::for_lambda().await?;
        let sdk = shared::app::sdk_config().await;
        let blob = Blob::from_env(&sdk).inspect_err(|reason| {
            tracing::error!(%reason, "refusing to start");
        })?;
        Ok(ProofsState { app, blob })
    }
}

pub fn router(state: ProofsState) -> Router {
    shared::api_doc::router(routes(), state)
}

fn milestone_idx(value: &Value) -> Result<u32, &'static str> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or("must be a whole number from 0 to 4294967295")
}

/// Longest `upload_id`, `storage_url` and `sha256` (an old client's) taken.
const MAX_UPLOAD_ID_CHARS: usize = 100;
const MAX_STORAGE_URL_CHARS: usize = 1024;
const MAX_OLD_SHA256_CHARS: usize = 128;

fn object(value: &Value) -> Result<Value, &'static str> {
    if value.is_object() {
        Ok(value.clone())
    } else {
        Err("must be a JSON object")
    }
}

/// The escrow a proof or an upload is for, if the caller may act as its
/// provider: unknown → 404 `MILESTONE_NOT_FOUND`; another's → 403.
fn provider_escrow(caller: &Principal, escrow: Option<Escrow>) -> Result<Escrow, AppError> {
    let escrow = escrow.ok_or_else(|| AppError::from(ProofTargetRefusal::MilestoneNotFound))?;
    AppError::permit(caller.acts_for(escrow.provider_id))?;
    Ok(escrow)
}

/// The escrow, read again while DynamoDB is busy (bounded, then 503).
async fn read_escrow(store: &shared::store::Store, id: Id) -> Result<Option<Escrow>, AppError> {
    store.retry_busy("read escrow", || store.escrow(id)).await
}

fn milestone_of(escrow: &Escrow, idx: u32) -> Result<&Milestone, AppError> {
    escrow
        .milestones
        .iter()
        .find(|m| m.idx == idx)
        .ok_or_else(|| AppError::from(ProofTargetRefusal::MilestoneNotFound))
}

async fn prepare_upload(
    State(state): State<ProofsState>,
    caller: Principal,
    body: Body<PrepareUpload>,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let PrepareUpload {
        escrow_id,
        milestone_idx: idx,
        content_type,
        content_length: length,
        sha256,
    } = body.parse(&state.app.config)?;

    let store = &state.app.store;
    let (escrow, taken) = tokio::join!(
        read_escrow(store, escrow_id),
        store.proof_hash_taken(&sha256)
    );
    let escrow = provider_escrow(&caller, escrow?)?;
    check_proof_target(escrow.status, &escrow.slots(), idx)?;
    if taken? {
        return Err(duplicate());
    }

    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    let key = upload::upload_key(escrow_id, idx, &upload_id);
    let valid = Duration::from_secs(upload::PUT_VALID_SECONDS);
    let presigned = state
        .blob
        .presign_put(
            &key,
            content_type,
            length,
            &upload::checksum_base64(&sha256),
            valid,
        )
        .await?;
    let now = Timestamp::now();
    let record = Upload {
        upload_id: upload_id.clone(),
        escrow_id,
        milestone_idx: idx,
        content_type: content_type.to_string(),
        content_length: length,
        sha256,
        object_key: key,
        uploader: Actor::from(&caller).to_string(),
        created_at: now,
    };
    store.put_upload(&record).await?;
    Ok(json(
        StatusCode::CREATED,
        &PreparedUpload {
            upload_id,
            method: presigned.method,
            url: presigned.url,
            headers: presigned.headers.into_iter().collect(),
            expires_at: now.plus_seconds(upload::PUT_VALID_SECONDS as i64),
        },
    ))
}

/// The milestone's terms for `judge_photo`.
fn terms(milestone: &Milestone) -> PhotoTerms<'_> {
    PhotoTerms {
        proof_type: &milestone.proof_type,
        geofence: milestone
            .geofence
            .and_then(|g| geo::Geofence::parse(g.lat, g.lng, g.radius_m).ok()),
    }
}

fn judged(verdict: Verdict) -> Result<Judged, AppError> {
    let value = |e: PhotoEvidence| serde_json::to_value(e).map_err(AppError::internal);
    match verdict {
        Verdict::Refuse(refusal) => Err(refusal.into()),
        Verdict::Approve(evidence) => Ok(Judged::Approve {
            evidence: value(evidence)?,
        }),
        Verdict::Review { reason, evidence } => Ok(Judged::Review {
            reason: reason.as_str(),
            evidence: evidence.map(value).transpose()?,
        }),
    }
}

async fn submit(
    State(state): State<ProofsState>,
    caller: Principal,
    body: Body<SubmitProof>,
) -> Result<Response, AppError> {
    AppError::permit(caller.role != Role::Support)?;
    let SubmitProof {
        escrow_id,
        milestone_idx: idx,
        kind,
        metadata,
        upload_id,
        storage_url,
        sha256,
    } = body.parse(&state.app.config)?;
    let proof = if let Some(upload_id) = upload_id {
        submit_upload(&state, &caller, escrow_id, idx, kind, metadata, &upload_id).await?
    } else {
        let (Some(storage_url), Some(sha256)) = (storage_url, sha256) else {
            return Err(AppError::internal("read requires the old fields"));
        };
        let sha256 = sha256.trim().to_ascii_lowercase();
        let store = &state.app.store;
        let (escrow, taken) = tokio::join!(
            read_escrow(store, escrow_id),
            store.proof_hash_taken(&sha256)
        );
        let escrow = provider_escrow(&caller, escrow?)?;
        check_proof_target(escrow.status, &escrow.slots(), idx)?;
        if taken? {
            return Err(duplicate());
        }
        let milestone = milestone_of(&escrow, idx)?;
        // Old clients' body: the server never read the file; always review.
        let verdict = judge_photo(
            &terms(milestone),
            FileEvidence::Unverified,
            metadata.as_ref(),
            Timestamp::now(),
        );
        let new = NewProof {
            escrow_id,
            milestone_idx: idx,
            kind,
            storage_url,
            sha256,
            content_type: None,
            size: None,
            metadata,
            object_key: None,
            judged: judged(verdict)?,
        };
        shared::ops::proof::submit(store, new, &(&caller).into()).await?
    };
    Ok(json(StatusCode::CREATED, &proof))
}

async fn submit_upload(
    state: &ProofsState,
    caller: &Principal,
    escrow_id: Id,
    idx: u32,
    kind: String,
    metadata: Option<Value>,
    upload_id: &str,
) -> Result<shared::domain::proof_review::Proof, AppError> {
    let store = &state.app.store;
    // Who may act comes first (docs/api.md: not the provider → 403, whatever
    // the upload); the upload and the escrow are read together.
    let (upload, escrow) = tokio::join!(store.upload(upload_id), read_escrow(store, escrow_id));
    let escrow = provider_escrow(caller, escrow?)?;
    let upload = upload?.ok_or_else(|| {
        AppError::new(
            ErrorCode::ProofUploadMissing,
            "No upload with this upload_id (or it is more than a day old): prepare one with POST /proofs/uploads.",
        )
    })?;
    if upload.escrow_id != escrow_id || upload.milestone_idx != idx {
        return Err(AppError::field(
            "upload_id",
            "was prepared for another escrow or milestone",
        ));
    }
    check_proof_target(escrow.status, &escrow.slots(), idx)?;
    if store.proof_hash_taken(&upload.sha256).await? {
        return Err(duplicate());
    }
    let milestone = milestone_of(&escrow, idx)?;

    // The server reads the file itself: never more than declared + 1 bytes.
    let limit = upload::read_limit(upload.content_length);
    let bytes = match state.blob.read_bounded(&upload.object_key, limit).await? {
        Read::Missing => return Err(upload_missing()),
        Read::Bytes(bytes) => bytes,
    };
    upload::check_bytes(upload.content_length, &upload.sha256, &bytes)?;
    let terms = terms(milestone);
    let file = if terms.is_photo() {
        FileEvidence::Read(exif::read_evidence_as(&upload.content_type, &bytes))
    } else {
        FileEvidence::Read(Ok(Evidence::default()))
    };
    let verdict = judge_photo(&terms, file, metadata.as_ref(), Timestamp::now());
    let judged = judged(verdict)?;

    // The proof's own copy, kept for good (the upload prefix expires).
    let key = upload::proof_key(&upload.sha256);
    state
        .blob
        .put(
            &key,
            bytes,
            &upload.content_type,
            &upload::checksum_base64(&upload.sha256),
        )
        .await?;
    let new = NewProof {
        escrow_id,
        milestone_idx: idx,
        kind,
        storage_url: state.blob.url_of(&key),
        sha256: upload.sha256,
        content_type: Some(upload.content_type),
        size: Some(upload.content_length),
        metadata,
        object_key: Some(key),
        judged,
    };
    shared::ops::proof::submit(store, new, &caller.into()).await
}

/// A proof as read: with a short-lived link to its file.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProofWithDownload {
    #[serde(flatten)]
    pub proof: Proof,
    /// A presigned GET valid 5 minutes; null for an old client's file.
    #[schema(required = true)]
    pub download_url: Option<String>,
}

impl ProofsState {
    /// `read` as answered: the presigned GET is signed here, no request.
    async fn with_download(&self, read: ProofRead) -> Result<ProofWithDownload, AppError> {
        let download_url = match &read.object_key {
            Some(key) => Some(
                self.blob
                    .presign_get(key, Duration::from_secs(upload::GET_VALID_SECONDS))
                    .await?,
            ),
            None => None,
        };
        Ok(ProofWithDownload {
            proof: read.proof,
            download_url,
        })
    }
}

async fn read(
    State(state): State<ProofsState>,
    caller: Principal,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    let read = state
        .app
        .store
        .proof(id)
        .await?
        .filter(|p| caller.may_read(&p.parties))
        .ok_or_else(proof_not_found)?;
    Ok(json(StatusCode::OK, &state.with_download(read).await?))
}

const STATUS_PROBLEM: &str = "must be one of PENDING, APPROVED, REJECTED";
const REASON_PROBLEM: &str =
    "must be one of GPS_MISSING, UNTRUSTED_SOURCE, MANUAL_REVIEW, UNVERIFIED_UPLOAD";

/// `GET /proofs`: staff see every proof; a `user` key names an escrow it is
/// a party to. `status=PENDING` is the review queue, oldest first.
async fn list(
    State(state): State<ProofsState>,
    caller: Principal,
    mut query: ListQuery,
) -> Result<Response, AppError> {
    let filter = ProofFilter {
        escrow_id: query.id("escrow_id"),
        status: query.parsed("status", ProofStatus::parse, STATUS_PROBLEM),
        review_reason: query.parsed("review_reason", ReviewReason::parse, REASON_PROBLEM),
    };
    if filter.escrow_id.is_none() && !caller.is_staff() {
        query.required_missing("escrow_id");
    }
    let page = query.page()?;
    let store = &state.app.store;
    if let Some(escrow) = filter.escrow_id.filter(|_| !caller.is_staff()) {
        // A user lists only the proofs of escrows it is a party to; the
        // escrow of another looks absent.
        store
            .escrow(escrow)
            .await?
            .filter(|e| caller.may_read(&e.parties()))
            .ok_or_else(not_found)?;
    }
    let found = store.proofs(&filter, page).await?;
    let mut items = Vec::with_capacity(found.items.len());
    for read in found.items {
        items.push(state.with_download(read).await?);
    }
    let page = Page {
        items,
        next_cursor: found.next_cursor,
    };
    Ok(json(StatusCode::OK, &page))
}

async fn decide(
    State(state): State<ProofsState>,
    caller: Principal,
    PathId(id): PathId,
    body: Body<DecisionBody>,
) -> Result<Response, AppError> {
    let DecisionBody { decision, note } = body.parse(&state.app.config)?;
    // Staff, or the escrow's client (`ops::proof::may_decide`): acting on
    // another's proof is 403.
    let asker = shared::ops::Asker::Caller(&caller);
    let proof = shared::ops::proof::decide(&state.app.store, asker, id, decision, note).await?;
    Ok(json(StatusCode::OK, &proof))
}

// ---------------------------------------------------------------------------
// The routes: the router and the API document

/// `POST /proofs/uploads` body.
#[derive(utoipa::ToSchema)]
struct PrepareUpload {
    escrow_id: Id,
    #[schema(value_type = u64, minimum = 0, maximum = 4294967295_u64)]
    milestone_idx: u32,
    #[schema(schema_with = upload_content_types)]
    content_type: &'static str,
    // `MAX_PROOF_BYTES` (a literal here; a test below checks they agree).
    #[schema(minimum = 1, maximum = 10485760)]
    content_length: u64,
    /// 64 lower-case hex characters.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    sha256: String,
}

impl RequestBody for PrepareUpload {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<PrepareUpload> {
        let escrow_id = f.required("escrow_id", Id::from_json);
        let idx = f.required("milestone_idx", milestone_idx);
        let content_type = f.required("content_type", |v: &Value| {
            upload::content_type(v.as_str().unwrap_or_default())
        });
        let length = f.required("content_length", parse::upload_length);
        let sha256 = f.required("sha256", parse::sha256);
        Some(PrepareUpload {
            escrow_id: escrow_id?,
            milestone_idx: idx?,
            content_type: content_type?,
            content_length: length?,
            sha256: sha256?,
        })
    }
}

fn upload_content_types() -> utoipa::openapi::ObjectBuilder {
    shared::api_doc::one_of_strings(&upload::CONTENT_TYPES)
}

/// The answer of `POST /proofs/uploads`: a presigned PUT.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PreparedUpload {
    upload_id: String,
    /// `PUT`.
    method: String,
    url: String,
    /// Send exactly these headers with the bytes.
    headers: std::collections::BTreeMap<String, String>,
    expires_at: Timestamp,
}

/// `POST /proofs` body: an `upload_id` (the file is read by the server),
/// or, for old clients, `storage_url` and `sha256` (always reviewed).
#[derive(utoipa::ToSchema)]
struct SubmitProof {
    escrow_id: Id,
    #[schema(value_type = u64, minimum = 0, maximum = 4294967295_u64)]
    milestone_idx: u32,
    #[schema(rename = "type", schema_with = shared::api_doc::text::<1, MAX_PROOF_TYPE_CHARS>)]
    kind: String,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    #[schema(schema_with = shared::api_doc::text::<1, MAX_UPLOAD_ID_CHARS>)]
    upload_id: Option<String>,
    #[schema(schema_with = shared::api_doc::text::<1, MAX_STORAGE_URL_CHARS>)]
    storage_url: Option<String>,
    #[schema(schema_with = shared::api_doc::text::<1, MAX_OLD_SHA256_CHARS>)]
    sha256: Option<String>,
}

/// With `upload_id`, the old clients' `storage_url` and `sha256` are not read.
impl RequestBody for SubmitProof {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<SubmitProof> {
        let escrow_id = f.required("escrow_id", Id::from_json);
        let idx = f.required("milestone_idx", milestone_idx);
        let kind = f.required("type", parse::text(1, MAX_PROOF_TYPE_CHARS));
        let metadata = f.optional("metadata", object);
        let (upload_id, storage_url, sha256) = if f.value("upload_id").is_some() {
            let upload_id = f.required("upload_id", parse::text(1, MAX_UPLOAD_ID_CHARS));
            (upload_id.map(Some), Some(None), Some(None))
        } else {
            let storage_url = f.required("storage_url", parse::text(1, MAX_STORAGE_URL_CHARS));
            let sha256 = f.required("sha256", parse::text(1, MAX_OLD_SHA256_CHARS));
            (Some(None), storage_url.map(Some), sha256.map(Some))
        };
        Some(SubmitProof {
            escrow_id: escrow_id?,
            milestone_idx: idx?,
            kind: kind?,
            metadata: metadata?,
            upload_id: upload_id?,
            storage_url: storage_url?,
            sha256: sha256?,
        })
    }
}

/// `POST /proofs/{id}/decision` body.
#[derive(utoipa::ToSchema)]
struct DecisionBody {
    /// `approved` or `rejected`, any case.
    #[schema(value_type = String)]
    decision: Decision,
    #[schema(schema_with = shared::api_doc::text::<0, MAX_NOTE_CHARS>)]
    note: Option<String>,
}

impl RequestBody for DecisionBody {
    fn read(f: &mut Fields<'_>, _: &Config) -> Option<DecisionBody> {
        let decision = f.required("decision", |v: &Value| {
            Decision::parse(v.as_str().unwrap_or_default()).ok_or("must be approved or rejected")
        });
        let note = f.optional("note", parse::text(0, MAX_NOTE_CHARS));
        Some(DecisionBody {
            decision: decision?,
            note: note?,
        })
    }
}

/// This function's routes: each one's handler and its API document entry.
pub fn routes() -> Vec<shared::api_doc::Route<ProofsState>> {
    use shared::{
        api_doc::{one_of_strings, Route},
        domain::proof_review::Proof,
    };
    let target = [
        ErrorCode::MilestoneNotFound,
        ErrorCode::EscrowInvalidState,
        ErrorCode::NoOpenMilestone,
        ErrorCode::SequenceError,
        ErrorCode::MilestoneNotWaiting,
        ErrorCode::ProofDuplicate,
    ];
    vec![
        Route::post(
            "/proofs/uploads",
            "Presign a PUT of a proof file",
            prepare_upload,
        )
        .body::<PrepareUpload>()
        .answer::<PreparedUpload>(201, "The presigned PUT, valid 15 minutes.")
        .errors(&target),
        Route::post(
            "/proofs",
            "Submit a proof; the server reads the stored file",
            submit,
        )
        .body::<SubmitProof>()
        .answer::<Proof>(201, "The proof: APPROVED (and paid) or PENDING review.")
        .errors(&target)
        .errors(&[
            ErrorCode::ProofUploadMissing,
            ErrorCode::ProofHashMismatch,
            ErrorCode::MissingExifTimestamp,
            ErrorCode::StaleTimestamp,
            ErrorCode::FutureTimestamp,
            ErrorCode::GeofenceViolation,
            ErrorCode::InvalidImage,
            ErrorCode::InsufficientEscrowBalance,
            ErrorCode::EarlierMilestoneUnpaid,
        ]),
        Route::get(
            "/proofs/{id}",
            "Read a proof, with a short-lived download URL",
            read,
        )
        .answer::<ProofWithDownload>(200, "The proof.")
        .errors(&[ErrorCode::ProofNotFound]),
        Route::get(
            "/proofs",
            "List proofs; status=PENDING is the review queue, oldest first",
            list,
        )
        .query(
            "status",
            one_of_strings(&ProofStatus::ALL.map(ProofStatus::as_str)),
            false,
        )
        .query_id("escrow_id", false)
        .query(
            "review_reason",
            one_of_strings(&ReviewReason::ALL.map(ReviewReason::as_str)),
            false,
        )
        .list::<ProofWithDownload>()
        .errors(&[ErrorCode::EscrowNotFound]),
        Route::post(
            "/proofs/{id}/decision",
            "Approve (pays the milestone) or reject",
            decide,
        )
        .body::<DecisionBody>()
        .answer::<Proof>(200, "The proof.")
        .errors(&[
            ErrorCode::ProofNotFound,
            ErrorCode::ProofAlreadyApproved,
            ErrorCode::ProofAlreadyRejected,
            ErrorCode::InsufficientEscrowBalance,
            ErrorCode::EarlierMilestoneUnpaid,
            ErrorCode::MilestoneNotWaiting,
        ]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_problems_name_every_value() {
        for status in ProofStatus::ALL {
            assert!(STATUS_PROBLEM.contains(status.as_str()));
        }
        for reason in ReviewReason::ALL {
            assert!(REASON_PROBLEM.contains(reason.as_str()));
        }
    }

    /// The upload's size limit written as a literal in the schema
    /// attribute is the domain's constant.
    #[test]
    fn schema_size_limit_is_the_domains() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(PrepareUpload::schema()).unwrap();
        let maximum = &schema["properties"]["content_length"]["maximum"];
        assert_eq!(maximum.as_u64(), Some(upload::MAX_PROOF_BYTES));
    }
}
