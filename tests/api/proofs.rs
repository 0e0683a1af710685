//! Photo proofs over HTTP, as a client does them: `POST /proofs/uploads`,
//! a PUT of the bytes to the presigned URL with exactly the returned headers,
//! `POST /proofs`, `GET /proofs/{id}`, `POST /proofs/{id}/decision`; and what
//! is stored after each (proofs, payments, balances, audit, timeline).
//!
//! The emulator checks neither presigned signatures nor checksums, so a test
//! can PUT other bytes than declared: the server must notice by itself.

use kobatela_tests::{
    escrow_money,
    photos::{photo, put_presigned, sha256_hex, unique_bytes},
    unique, user_key, Api, EscrowSetup, Reply, Table,
};
use serde_json::{json, Value};
use shared::domain::exif::builder::jpeg_without_exif;

/// A milestone site (Dakar).
const SITE: (f64, f64) = (14.6937, -17.4441);

/// A fresh photo at the site, made unique (so its SHA-256 is new).
fn fresh_photo() -> Vec<u8> {
    unique_bytes(photo(30, Some(SITE)))
}

fn sha(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

/// A funded escrow of the given milestones, with its parties' user keys.
struct Site {
    admin: Api,
    setup: EscrowSetup,
    provider: Api,
    client: Api,
    table: Table,
}

impl Site {
    async fn new(milestones: Value, total: &str) -> Site {
        let admin = Api::admin();
        let setup = EscrowSetup::with(
            &admin,
            json!({"amount_total": total, "milestones": milestones}),
        )
        .await;
        admin
            .deposit(setup.escrow, &unique("dep"), total)
            .await
            .expect(200);
        let provider = user_key(&admin, setup.provider).await;
        let client = user_key(&admin, setup.client).await;
        Site {
            admin,
            setup,
            provider,
            client,
            table: Table::new().await,
        }
    }

    /// Two PHOTO milestones, the first geofenced at the site (100 m).
    async fn photo() -> Site {
        Site::new(
            json!([
                {"label": "Foundations", "amount": "100.00", "proof_type": "PHOTO",
                 "geofence": {"lat": SITE.0, "lng": SITE.1, "radius_m": 100}},
                {"label": "Roof", "amount": "50.00", "proof_type": "PHOTO"}
            ]),
            "150.00",
        )
        .await
    }

    fn escrow(&self) -> u64 {
        self.setup.escrow
    }

    async fn upload_as(&self, api: &Api, idx: u32, content_type: &str, bytes: &[u8]) -> Reply {
        api.post(
            "/proofs/uploads",
            json!({"escrow_id": self.escrow(), "milestone_idx": idx, "content_type": content_type,
                   "content_length": bytes.len(), "sha256": sha(bytes)}),
        )
        .await
    }

    /// Upload prepared and PUT; answers the upload_id.
    async fn uploaded(&self, idx: u32, content_type: &str, bytes: &[u8]) -> String {
        let reply = self
            .upload_as(&self.provider, idx, content_type, bytes)
            .await
            .expect(201);
        assert_eq!(put(&reply, bytes.to_vec(), true).await, 200);
        reply.body["upload_id"].as_str().unwrap().to_string()
    }

    async fn submit(&self, idx: u32, upload_id: &str, metadata: Value) -> Reply {
        let mut body = json!({"escrow_id": self.escrow(), "milestone_idx": idx,
                              "type": "PHOTO", "upload_id": upload_id});
        if !metadata.is_null() {
            body["metadata"] = metadata;
        }
        self.provider.post("/proofs", body).await
    }

    async fn escrow_body(&self) -> Value {
        self.admin
            .get(&format!("/escrows/{}", self.escrow()))
            .await
            .expect(200)
            .body
    }

    async fn milestone_status(&self, idx: usize) -> String {
        self.escrow_body().await["milestones"][idx - 1]["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn payments(&self) -> Vec<Value> {
        self.admin
            .get(&format!("/payments?escrow_id={}", self.escrow()))
            .await
            .expect(200)
            .body["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Stored proofs of this escrow.
    async fn proofs_stored(&self) -> usize {
        self.table.count("PROOF#", "escrow_id", self.escrow()).await
    }

    /// Asserts a refusal changed nothing: same footprint, no proof, no
    /// guard of the file.
    async fn assert_nothing_stored(&self, before: &kobatela_tests::EscrowFootprint, bytes: &[u8]) {
        assert_eq!(&self.table.escrow_footprint(self.escrow()).await, before);
        assert_eq!(self.proofs_stored().await, 0);
        assert!(self
            .table
            .partition(&format!("PROOF_HASH#{}", sha(bytes)))
            .await
            .is_empty());
    }
}

async fn put(upload: &Reply, bytes: Vec<u8>, with_length: bool) -> u16 {
    put_presigned(&upload.body, bytes, with_length).await
}

#[tokio::test]
async fn proofs_a_fresh_photo_in_the_fence_is_approved_and_paid() {
    let site = Site::photo().await;
    let bytes = fresh_photo();
    let reply = site
        .upload_as(&site.provider, 1, "image/jpeg", &bytes)
        .await
        .expect(201);
    let url = reply.body["url"].as_str().unwrap();
    assert!(
        url.contains(&format!("/uploads/{}/1/", site.escrow())),
        "{url}"
    );
    assert!(reply.body["expires_at"].as_str().is_some());
    assert_eq!(put(&reply, bytes.clone(), true).await, 200);
    let upload_id = reply.body["upload_id"].as_str().unwrap();

    let proof = site
        .submit(1, upload_id, json!({"source": "camera"}))
        .await
        .expect(201)
        .body;
    assert_eq!(proof["status"], "APPROVED");
    assert_eq!(proof["review_reason"], Value::Null);
    assert_eq!(proof["sha256"], sha(&bytes));
    assert_eq!(proof["size"], bytes.len());
    assert_eq!(proof["content_type"], "image/jpeg");
    assert_eq!(proof["milestone_idx"], 1);
    assert_eq!(
        proof["storage_url"],
        format!("s3://kobatela-proofs-local/proofs/{}", sha(&bytes))
    );
    let distance = proof["evidence"]["distance_m"].as_f64().unwrap();
    assert!(distance < 1.0, "{distance}");
    assert!((proof["evidence"]["gps_lat"].as_f64().unwrap() - SITE.0).abs() < 1e-5);

    let escrow = site.escrow_body().await;
    assert_eq!(
        escrow_money(&escrow),
        (
            "150.00".into(),
            "50.00".into(),
            "100.00".into(),
            "0.00".into(),
            "FUNDED".into()
        )
    );
    assert_eq!(escrow["milestones"][0]["status"], "PAID");
    assert_eq!(escrow["milestones"][1]["status"], "WAITING");
    let payments = site.payments().await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["kind"], "PAYOUT");
    assert_eq!(payments[0]["amount"], "100.00");
    assert_eq!(payments[0]["status"], "PENDING");
    assert_eq!(payments[0]["payee"]["user_id"], site.setup.provider);
    assert_eq!(payments[0]["milestone_id"], proof["milestone_id"]);

    let id = proof["id"].as_u64().unwrap();
    assert_eq!(
        site.table.audit_actions("PROOF", id).await,
        ["SUBMIT_PROOF", "APPROVE_PROOF"]
    );
    let trail = site
        .admin
        .get(&format!("/audit/proof/{id}"))
        .await
        .expect(200);
    let actions: Vec<&str> = trail.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["SUBMIT_PROOF", "APPROVE_PROOF"]);
    let events = site
        .admin
        .get(&format!("/escrows/{}/events", site.escrow()))
        .await
        .expect(200);
    let kinds: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // The proof's events follow the payout's, written in the same instant.
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["PAYMENT_PENDING", "PROOF_SUBMITTED", "PROOF_APPROVED"]
    );
    for kind in ["PROOF_SUBMITTED", "PROOF_APPROVED", "PAYMENT_PENDING"] {
        assert_eq!(
            kinds.iter().filter(|k| **k == kind).count(),
            1,
            "{kind} in {kinds:?}"
        );
    }

    // Parties read it with a download URL that serves the same bytes.
    for reader in [&site.client, &site.provider, &site.admin] {
        let read = reader.get(&format!("/proofs/{id}")).await.expect(200);
        assert_eq!(read.body["status"], "APPROVED");
        let download = read.body["download_url"].as_str().unwrap();
        assert!(download.contains("X-Amz-Expires=300"), "{download}");
        let got = kobatela_tests::http_client()
            .get(download)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.as_ref(), bytes.as_slice());
    }
    let stranger = user_key(
        &site.admin,
        kobatela_tests::create_user(&site.admin, "x").await,
    )
    .await;
    stranger
        .get(&format!("/proofs/{id}"))
        .await
        .expect_error(404, "PROOF_NOT_FOUND");

    // The same file again: refused at upload already.
    site.upload_as(&site.provider, 2, "image/jpeg", &bytes)
        .await
        .expect_error(409, "PROOF_DUPLICATE");
}

#[tokio::test]
async fn proofs_refusals_of_the_file_store_nothing() {
    let site = Site::photo().await;
    let before = site.table.escrow_footprint(site.escrow()).await;
    let far = (SITE.0 + 0.01, SITE.1);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "stale",
            unique_bytes(photo(3 * 3600, Some(SITE))),
            "STALE_TIMESTAMP",
        ),
        (
            "future",
            unique_bytes(photo(-600, Some(SITE))),
            "FUTURE_TIMESTAMP",
        ),
        (
            "no time",
            unique_bytes(jpeg_without_exif()),
            "MISSING_EXIF_TIMESTAMP",
        ),
        (
            "far",
            unique_bytes(photo(30, Some(far))),
            "GEOFENCE_VIOLATION",
        ),
        (
            "not an image",
            format!("not a photo {}", uuid::Uuid::new_v4()).into_bytes(),
            "INVALID_IMAGE",
        ),
    ];
    for (what, bytes, code) in cases {
        let upload_id = site.uploaded(1, "image/jpeg", &bytes).await;
        let reply = site
            .submit(1, &upload_id, Value::Null)
            .await
            .expect_error(422, code);
        if code == "GEOFENCE_VIOLATION" {
            let distance = reply.body["error"]["details"]["distance_m"]
                .as_f64()
                .unwrap();
            assert!(distance > 1000.0 && distance < 1200.0, "{what}: {distance}");
        }
        site.assert_nothing_stored(&before, &bytes).await;
    }

    // No object PUT at all.
    let bytes = fresh_photo();
    let reply = site
        .upload_as(&site.provider, 1, "image/jpeg", &bytes)
        .await
        .expect(201);
    let upload_id = reply.body["upload_id"].as_str().unwrap();
    site.submit(1, upload_id, Value::Null)
        .await
        .expect_error(422, "PROOF_UPLOAD_MISSING");
    site.submit(1, "no-such-upload", Value::Null)
        .await
        .expect_error(422, "PROOF_UPLOAD_MISSING");
    // Other bytes than declared, with the declared headers.
    let other = fresh_photo();
    assert_eq!(put(&reply, other.clone(), false).await, 200);
    site.submit(1, upload_id, Value::Null)
        .await
        .expect_error(422, "PROOF_HASH_MISMATCH");
    // The declared bytes and more after them.
    let mut longer = bytes.clone();
    longer.extend(vec![0u8; 4096]);
    assert_eq!(put(&reply, longer, false).await, 200);
    site.submit(1, upload_id, Value::Null)
        .await
        .expect_error(422, "PROOF_HASH_MISMATCH");
    site.assert_nothing_stored(&before, &bytes).await;
    site.assert_nothing_stored(&before, &other).await;
    // Once the right bytes are there, the same upload goes through.
    assert_eq!(put(&reply, bytes.clone(), true).await, 200);
    site.submit(1, upload_id, Value::Null).await.expect(201);
}

#[tokio::test]
async fn proofs_escrow_and_milestone_refusals() {
    let site = Site::photo().await;
    let bytes = fresh_photo();
    site.upload_as(&site.provider, 2, "image/jpeg", &bytes)
        .await
        .expect_error(422, "SEQUENCE_ERROR");
    site.upload_as(&site.provider, 9, "image/jpeg", &bytes)
        .await
        .expect_error(404, "MILESTONE_NOT_FOUND");
    site.upload_as(&site.client, 1, "image/jpeg", &bytes)
        .await
        .expect_error(403, "FORBIDDEN");
    let reply = site
        .admin
        .post(
            "/proofs/uploads",
            json!({"escrow_id": site.escrow(), "milestone_idx": 1, "content_type": "image/gif",
                   "content_length": 0, "sha256": "ABC"}),
        )
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let fields = reply.body["error"]["details"]["fields"]
        .as_object()
        .unwrap();
    for name in ["content_type", "content_length", "sha256"] {
        assert!(fields.contains_key(name), "{name}: {fields:?}");
    }
    // A DRAFT escrow takes no proof.
    let draft = EscrowSetup::with(
        &site.admin,
        json!({"amount_total": "10.00",
               "milestones": [{"label": "a", "amount": "10.00", "proof_type": "PHOTO"}]}),
    )
    .await;
    site.admin
        .post(
            "/proofs/uploads",
            json!({"escrow_id": draft.escrow, "milestone_idx": 1, "content_type": "image/jpeg",
                   "content_length": 10, "sha256": sha(b"0123456789")}),
        )
        .await
        .expect_error(409, "ESCROW_INVALID_STATE");
    // Another party's upload: a user who is not the provider gets 403.
    let upload_id = site.uploaded(1, "image/jpeg", &bytes).await;
    site.client
        .post(
            "/proofs",
            json!({"escrow_id": site.escrow(), "milestone_idx": 1, "type": "PHOTO",
                   "upload_id": upload_id}),
        )
        .await
        .expect_error(403, "FORBIDDEN");
    // Whatever the upload: who may act is checked first.
    site.client
        .post(
            "/proofs",
            json!({"escrow_id": site.escrow(), "milestone_idx": 1, "type": "PHOTO",
                   "upload_id": "no-such-upload"}),
        )
        .await
        .expect_error(403, "FORBIDDEN");
    assert_eq!(site.proofs_stored().await, 0);
}

/// Submits a proof that goes to review and checks what review means.
async fn reviewed(site: &Site, reply: Reply, reason: &str) -> u64 {
    let proof = reply.expect(201).body;
    assert_eq!(proof["status"], "PENDING", "{proof}");
    assert_eq!(proof["review_reason"], reason);
    assert_eq!(site.milestone_status(1).await, "PENDING_REVIEW");
    assert!(site.payments().await.is_empty());
    let id = proof["id"].as_u64().unwrap();
    assert_eq!(
        site.table.audit_actions("PROOF", id).await,
        ["SUBMIT_PROOF"]
    );
    id
}

#[tokio::test]
async fn proofs_review_paths() {
    // GPS_MISSING: a geofence and no position in the file.
    let site = Site::photo().await;
    let upload_id = site
        .uploaded(1, "image/jpeg", &unique_bytes(photo(30, None)))
        .await;
    let reply = site.submit(1, &upload_id, Value::Null).await;
    reviewed(&site, reply, "GPS_MISSING").await;
    // The milestone waits for a decision: no second proof.
    let bytes = fresh_photo();
    site.upload_as(&site.provider, 1, "image/jpeg", &bytes)
        .await
        .expect_error(409, "MILESTONE_NOT_WAITING");

    // UNTRUSTED_SOURCE: client metadata cannot approve.
    let site = Site::photo().await;
    let upload_id = site.uploaded(1, "image/jpeg", &fresh_photo()).await;
    let reply = site
        .submit(1, &upload_id, json!({"source": "gallery"}))
        .await;
    reviewed(&site, reply, "UNTRUSTED_SOURCE").await;

    // MANUAL_REVIEW: not a PHOTO milestone; a PDF is fine.
    let site = Site::new(
        json!([{"label": "Invoice", "amount": "20.00", "proof_type": "INVOICE"}]),
        "20.00",
    )
    .await;
    let pdf = format!("%PDF-1.4 {}", uuid::Uuid::new_v4()).into_bytes();
    let upload_id = site.uploaded(1, "application/pdf", &pdf).await;
    let reply = site.submit(1, &upload_id, Value::Null).await;
    let id = reviewed(&site, reply, "MANUAL_REVIEW").await;
    let read = site.admin.get(&format!("/proofs/{id}")).await.expect(200);
    let got = kobatela_tests::http_client()
        .get(read.body["download_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), pdf.as_slice());

    // UNVERIFIED_UPLOAD: old clients' body, whatever its metadata says.
    let site = Site::photo().await;
    let hash = sha(uuid::Uuid::new_v4().as_bytes());
    let reply = site
        .provider
        .post(
            "/proofs",
            json!({"escrow_id": site.escrow(), "milestone_idx": 1, "type": "PHOTO",
                   "storage_url": "https://files.example.com/p.jpg", "sha256": hash,
                   "metadata": {"exif_timestamp": "2030-01-01T00:00:00Z", "source": "app",
                                "gps_lat": SITE.0, "gps_lng": SITE.1}}),
        )
        .await;
    let id = reviewed(&site, reply, "UNVERIFIED_UPLOAD").await;
    let read = site.admin.get(&format!("/proofs/{id}")).await.expect(200);
    assert_eq!(read.body["download_url"], Value::Null);
    assert_eq!(read.body["storage_url"], "https://files.example.com/p.jpg");
    // ... and the API document says it may be: `string | null`.
    let document = Api::anonymous().get("/openapi.json").await.expect(200).body;
    let schema = &document["paths"]["/proofs/{id}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"]["$ref"];
    assert_eq!(schema, "#/components/schemas/ProofWithDownload");
    let answer = &document["components"]["schemas"]["ProofWithDownload"]["allOf"][1]["properties"]
        ["download_url"];
    assert_eq!(answer["type"], json!(["string", "null"]), "{answer}");
}

#[tokio::test]
async fn proofs_decisions_approve_reject_same_and_other() {
    // Approve pays; the same again is unchanged; the other is 409.
    let site = Site::photo().await;
    let upload_id = site.uploaded(1, "image/jpeg", &fresh_photo()).await;
    let reply = site.submit(1, &upload_id, json!({"source": "web"})).await;
    let id = reviewed(&site, reply, "UNTRUSTED_SOURCE").await;
    let path = format!("/proofs/{id}/decision");
    site.provider
        .post(&path, json!({"decision": "approved"}))
        .await
        .expect_error(403, "FORBIDDEN");
    site.client
        .post(&path, json!({"decision": "maybe"}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let approved = site
        .client
        .post(
            &path,
            json!({"decision": "APPROVED", "note": "looks right"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(approved["status"], "APPROVED");
    assert_eq!(approved["decision_note"], "looks right");
    assert_eq!(site.milestone_status(1).await, "PAID");
    let again = site
        .client
        .post(&path, json!({"decision": "approved"}))
        .await
        .expect(200)
        .body;
    assert_eq!(again, approved);
    site.client
        .post(&path, json!({"decision": "rejected"}))
        .await
        .expect_error(409, "PROOF_ALREADY_APPROVED");
    let payments = site.payments().await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["amount"], "100.00");
    assert_eq!(
        site.table.audit_actions("PROOF", id).await,
        ["SUBMIT_PROOF", "APPROVE_PROOF"]
    );

    // Reject puts the milestone back to WAITING; a new proof may follow.
    let site = Site::photo().await;
    let upload_id = site.uploaded(1, "image/jpeg", &fresh_photo()).await;
    let reply = site.submit(1, &upload_id, json!({"source": "web"})).await;
    let id = reviewed(&site, reply, "UNTRUSTED_SOURCE").await;
    let path = format!("/proofs/{id}/decision");
    let rejected = site
        .admin
        .post(&path, json!({"decision": "rejected", "note": "blurry"}))
        .await
        .expect(200)
        .body;
    assert_eq!(rejected["status"], "REJECTED");
    assert_eq!(site.milestone_status(1).await, "WAITING");
    site.admin
        .post(&path, json!({"decision": "rejected"}))
        .await
        .expect(200);
    site.admin
        .post(&path, json!({"decision": "approved"}))
        .await
        .expect_error(409, "PROOF_ALREADY_REJECTED");
    assert!(site.payments().await.is_empty());
    assert_eq!(
        site.table.audit_actions("PROOF", id).await,
        ["SUBMIT_PROOF", "REJECT_PROOF"]
    );
    let upload_id = site.uploaded(1, "image/jpeg", &fresh_photo()).await;
    let proof = site
        .submit(1, &upload_id, Value::Null)
        .await
        .expect(201)
        .body;
    assert_eq!(proof["status"], "APPROVED");
    site.admin
        .post(
            "/proofs/999999999/decision",
            json!({"decision": "approved"}),
        )
        .await
        .expect_error(404, "PROOF_NOT_FOUND");
}

/// The review's case over HTTP: milestone 1 auto-approved and paid (P1),
/// milestone 2's proof PENDING review, then P1 fails by webhook (milestone
/// 1 back to APPROVED). The client's approval of proof 2 is 409
/// `EARLIER_MILESTONE_UNPAID` (it was a 500) and changes nothing; after P1
/// is sent again, it pays milestone 2.
#[tokio::test]
async fn proofs_approval_waits_for_an_earlier_failed_payout() {
    let site = Site::new(
        json!([
            {"label": "Foundations", "amount": "60.00", "proof_type": "PHOTO"},
            {"label": "Invoice", "amount": "40.00", "proof_type": "DOC"}
        ]),
        "100.00",
    )
    .await;
    let upload_id = site.uploaded(1, "image/jpeg", &fresh_photo()).await;
    let first = site
        .submit(1, &upload_id, json!({"source": "camera"}))
        .await
        .expect(201)
        .body;
    assert_eq!(first["status"], "APPROVED", "{first}");
    let pdf = format!("%PDF-1.4 {}", uuid::Uuid::new_v4()).into_bytes();
    let upload_id = site.uploaded(2, "application/pdf", &pdf).await;
    let second = site
        .submit(2, &upload_id, Value::Null)
        .await
        .expect(201)
        .body;
    assert_eq!(second["review_reason"], "MANUAL_REVIEW", "{second}");
    let p1 = site.payments().await[0].clone();
    let event = unique("evt");
    kobatela_tests::send_psp_event(&event, "payment.failed", p1["psp_ref"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(
        kobatela_tests::psp_processed(&site.admin, &event).await["status"],
        "APPLIED"
    );
    assert_eq!(site.milestone_status(1).await, "APPROVED");

    let before = site.table.escrow_footprint(site.escrow()).await;
    let path = format!("/proofs/{}/decision", second["id"]);
    let refused = site
        .client
        .post(&path, json!({"decision": "approved"}))
        .await
        .expect_error(409, "EARLIER_MILESTONE_UNPAID");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("earlier milestone"),
        "{}",
        refused.text
    );
    assert_eq!(site.table.escrow_footprint(site.escrow()).await, before);
    let read = site
        .admin
        .get(&format!("/proofs/{}", second["id"]))
        .await
        .expect(200);
    assert_eq!(read.body["status"], "PENDING");
    assert_eq!(site.milestone_status(2).await, "PENDING_REVIEW");

    site.admin
        .post(&format!("/payments/execute/{}", p1["id"]), json!({}))
        .await
        .expect(200);
    let approved = site
        .client
        .post(&path, json!({"decision": "approved"}))
        .await
        .expect(200)
        .body;
    assert_eq!(approved["status"], "APPROVED");
    let escrow = site.escrow_body().await;
    assert_eq!(
        escrow_money(&escrow),
        (
            "100.00".into(),
            "0.00".into(),
            "100.00".into(),
            "0.00".into(),
            "RELEASED".into()
        )
    );
}

#[tokio::test]
async fn proofs_duplicate_files_at_submit() {
    let site = Site::photo().await;
    let other = Site::photo().await;
    let bytes = fresh_photo();
    // Both prepared before either is a proof.
    let first = site.uploaded(1, "image/jpeg", &bytes).await;
    let second = other.uploaded(1, "image/jpeg", &bytes).await;
    site.submit(1, &first, Value::Null).await.expect(201);
    let before = other.table.escrow_footprint(other.escrow()).await;
    other
        .submit(1, &second, Value::Null)
        .await
        .expect_error(409, "PROOF_DUPLICATE");
    assert_eq!(other.table.escrow_footprint(other.escrow()).await, before);
    assert_eq!(other.proofs_stored().await, 0);
}

/// One file submitted at once as the proof of three escrows: exactly one
/// proof (auto-approved and paid), and every other submission a 409
/// `PROOF_DUPLICATE`, even one that passed the duplicate check before the
/// winner wrote (its transaction's file guard fails: final, not a change to
/// decide again on until 503). The losers' escrows are unchanged.
#[tokio::test]
async fn racing_submissions_of_one_file_make_one_proof() {
    const SITES: usize = 3;
    for round in 0..3 {
        let bytes = fresh_photo();
        let mut sites = Vec::new();
        let mut uploads = Vec::new();
        for _ in 0..SITES {
            let site = Site::photo().await;
            uploads.push(site.uploaded(1, "image/jpeg", &bytes).await);
            sites.push(site);
        }
        let mut before = Vec::new();
        for site in &sites {
            before.push(site.table.escrow_footprint(site.escrow()).await);
        }
        let tasks: Vec<_> = sites
            .iter()
            .zip(&uploads)
            .map(|(site, upload)| {
                let (provider, escrow) = (site.provider.clone(), site.escrow());
                let body = json!({"escrow_id": escrow, "milestone_idx": 1, "type": "PHOTO",
                                  "upload_id": upload});
                tokio::spawn(async move { provider.post("/proofs", body).await })
            })
            .collect();
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(task.await.unwrap());
        }
        let mut made = 0;
        for ((site, reply), before) in sites.iter().zip(&replies).zip(&before) {
            let after = site.table.escrow_footprint(site.escrow()).await;
            if reply.status == 201 {
                made += 1;
                assert_eq!(reply.body["status"], "APPROVED", "{}", reply.text);
                assert_eq!(after.paid, before.paid + 10000, "round {round}");
                assert_eq!(site.proofs_stored().await, 1);
            } else {
                reply.clone().expect_error(409, "PROOF_DUPLICATE");
                assert_eq!(&after, before, "round {round}: a loser changed its escrow");
                assert_eq!(site.proofs_stored().await, 0);
            }
        }
        assert_eq!(made, 1, "round {round}: {replies:?}");
    }
}

/// N clients decide one proof (approve and reject mixed) while others
/// submit a second, auto-approvable proof of the same milestone: one
/// decision wins, the milestone is paid at most once, and the escrow's money
/// adds up.
#[tokio::test]
async fn proofs_concurrent_decisions_pay_at_most_once() {
    for round in 0..3 {
        let site = Site::new(
            json!([
                {"label": "one", "amount": "60.00", "proof_type": "PHOTO"},
                {"label": "two", "amount": "40.00", "proof_type": "PHOTO"}
            ]),
            "100.00",
        )
        .await;
        // B: prepared while milestone 1 waits.
        let b = site.uploaded(1, "image/jpeg", &fresh_photo()).await;
        let a = site.uploaded(1, "image/jpeg", &fresh_photo()).await;
        let id = site
            .submit(1, &a, json!({"source": "web"}))
            .await
            .expect(201)
            .id();
        let path = format!("/proofs/{id}/decision");
        let mut tasks = Vec::new();
        for i in 0..12 {
            let api = if i % 2 == 0 {
                site.admin.clone()
            } else {
                site.client.clone()
            };
            let decision = if (i + round) % 3 == 0 {
                "rejected"
            } else {
                "approved"
            };
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                (
                    decision,
                    api.post(&path, json!({"decision": decision})).await,
                )
            }));
        }
        let mut submits = Vec::new();
        for _ in 0..4 {
            let provider = site.provider.clone();
            let body = json!({"escrow_id": site.escrow(), "milestone_idx": 1, "type": "PHOTO",
                              "upload_id": b});
            submits.push(tokio::spawn(
                async move { provider.post("/proofs", body).await },
            ));
        }
        let mut outcome = None;
        for task in tasks {
            let (decision, reply) = task.await.unwrap();
            match reply.status.as_u16() {
                200 => {
                    let status = reply.body["status"].as_str().unwrap().to_string();
                    assert_eq!(
                        status,
                        if decision == "approved" {
                            "APPROVED"
                        } else {
                            "REJECTED"
                        }
                    );
                    assert!(outcome.is_none() || outcome.as_deref() == Some(status.as_str()));
                    outcome = Some(status);
                }
                409 => assert!(
                    ["PROOF_ALREADY_APPROVED", "PROOF_ALREADY_REJECTED"].contains(&reply.code()),
                    "{}",
                    reply.text
                ),
                _ => panic!("unexpected decision reply: {}", reply.text),
            }
        }
        let mut b_approved = 0;
        for task in submits {
            let reply = task.await.unwrap();
            match reply.status.as_u16() {
                201 => b_approved += 1,
                409 | 422 => {}
                _ => panic!("unexpected submit reply: {}", reply.text),
            }
        }
        let outcome = outcome.expect("one decision won");
        let payments = site.payments().await;
        let paid_one: Vec<_> = payments.iter().filter(|p| p["amount"] == "60.00").collect();
        assert!(paid_one.len() <= 1, "round {round}: {payments:?}");
        assert!(b_approved <= 1);
        if outcome == "APPROVED" {
            assert_eq!(paid_one.len(), 1);
            assert_eq!(b_approved, 0, "B cannot be approved after A was");
        } else {
            assert_eq!(paid_one.len(), b_approved);
        }
        let footprint = site.table.escrow_footprint(site.escrow()).await;
        assert_eq!(footprint.paid, 6000 * paid_one.len() as i64);
        assert!(footprint.paid <= 10000);
    }
}
