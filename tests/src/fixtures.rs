//! Fixtures made through the API as a client would (users, keys, mandates,
//! escrows, payouts), over HTTP ([`Api`]) or in-process ([`InProcess`]), and
//! [`unique`] names.

use crate::{header_refs, psp_body, psp_headers, Api, InProcess, Reply};
use serde_json::{json, Value};

/// An escrow's money and status as the API answers them:
/// `(funded, available, paid, refunded, status)`.
pub fn escrow_money(escrow: &Value) -> (String, String, String, String, String) {
    let text = |field: &str| escrow[field].as_str().unwrap_or_default().to_string();
    (
        text("amount_funded"),
        text("amount_available"),
        text("amount_paid"),
        text("amount_refunded"),
        text("status"),
    )
}

/// A client, a provider, and a DRAFT escrow between them.
#[derive(Debug, Clone)]
pub struct EscrowSetup {
    pub client: u64,
    pub provider: u64,
    pub escrow: u64,
    pub created: Value,
}

impl EscrowSetup {
    /// An escrow of `total` without milestones.
    pub async fn new(admin: &impl AdminApi, total: &str) -> EscrowSetup {
        EscrowSetup::with(admin, json!({ "amount_total": total })).await
    }

    /// `body` is merged into a valid `POST /escrows` body.
    pub async fn with(admin: &impl AdminApi, body: Value) -> EscrowSetup {
        let client = create_user(admin, "client").await;
        let provider = create_user(admin, "provider").await;
        let mut request = json!({
            "client_id": client,
            "provider_id": provider,
            "amount_total": "100.00",
            "currency": "USD",
            "deadline_at": "2099-12-31T23:59:59Z",
        });
        for (k, v) in body.as_object().unwrap() {
            request[k] = v.clone();
        }
        let created = admin.post_json("/escrows", request).await.expect(201);
        EscrowSetup {
            client,
            provider,
            escrow: created.id(),
            created: created.body,
        }
    }
}

/// A mandate's `(total_amount, total_spent, status)` as the API answers them.
pub async fn mandate_balance(api: &Api, mandate: u64) -> (String, String, String) {
    let m = api
        .get(&format!("/mandates/{mandate}"))
        .await
        .expect(200)
        .body;
    let text = |field: &str| m[field].as_str().unwrap_or_default().to_string();
    (text("total_amount"), text("total_spent"), text("status"))
}

/// A name no other test (or earlier run on the same emulator) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Who fixtures are made through, as the admin: over HTTP or in-process.
pub trait AdminApi {
    fn post_json(&self, path: &str, body: Value)
        -> impl std::future::Future<Output = Reply> + Send;
}

impl AdminApi for Api {
    fn post_json(
        &self,
        path: &str,
        body: Value,
    ) -> impl std::future::Future<Output = Reply> + Send {
        Api::post(self, path, body)
    }
}

impl AdminApi for InProcess {
    fn post_json(
        &self,
        path: &str,
        body: Value,
    ) -> impl std::future::Future<Output = Reply> + Send {
        InProcess::post(self, path, body)
    }
}

pub async fn create_user(admin: &impl AdminApi, prefix: &str) -> u64 {
    let name = unique(prefix);
    admin
        .post_json(
            "/users",
            json!({"username": name, "email": format!("{name}@example.com")}),
        )
        .await
        .expect(201)
        .id()
}

/// A `user` key bound to `user_id`.
pub async fn user_key(admin: &Api, user_id: u64) -> Api {
    let reply = admin
        .post(
            "/apikeys",
            json!({"name": unique("key"), "scope": "user", "user_id": user_id}),
        )
        .await
        .expect(201);
    Api::with_key(Some(reply.body["key"].as_str().unwrap().to_string()))
}

/// A funded mandate and everything around it: sender, beneficiary, a
/// category, a merchant in it that the beneficiary is allowed to use.
#[derive(Debug, Clone)]
pub struct MandateSetup {
    pub sender: u64,
    pub beneficiary: u64,
    pub category: u64,
    pub merchant: u64,
    pub mandate: u64,
}

impl MandateSetup {
    pub async fn new(admin: &impl AdminApi, total: &str) -> MandateSetup {
        MandateSetup::with_terms(admin, total, json!({})).await
    }

    /// `extra` is merged into the `POST /mandates` body.
    pub async fn with_terms(admin: &impl AdminApi, total: &str, extra: Value) -> MandateSetup {
        let sender = create_user(admin, "sender").await;
        let beneficiary = create_user(admin, "beneficiary").await;
        let category = admin
            .post_json(
                "/spend/categories",
                json!({"code": unique("CAT"), "label": "Pharmacy"}),
            )
            .await
            .expect(201)
            .id();
        let merchant = admin
            .post_json(
                "/spend/merchants",
                json!({"name": unique("merchant"), "category_id": category}),
            )
            .await
            .expect(201)
            .id();
        admin
            .post_json(
                "/spend/allow",
                json!({"owner_id": beneficiary, "merchant_id": merchant}),
            )
            .await
            .expect(201);
        let mut body = json!({
            "sender_id": sender,
            "beneficiary_id": beneficiary,
            "total_amount": total,
            "currency": "USD",
            "expires_at": "2099-12-31T23:59:59Z",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let mandate = admin.post_json("/mandates", body).await.expect(201).id();
        MandateSetup {
            sender,
            beneficiary,
            category,
            merchant,
            mandate,
        }
    }

    /// A purchase body spending this mandate.
    pub fn purchase(&self, amount: &str) -> Value {
        json!({
            "sender_id": self.sender,
            "beneficiary_id": self.beneficiary,
            "merchant_id": self.merchant,
            "amount": amount,
            "currency": "USD",
        })
    }
}

impl InProcess {
    /// An escrow of `total`, funded and approved by the client: its one
    /// PAYOUT, PENDING (nothing dispatches it in-process), waits for the PSP.
    pub async fn payout(&self, total: &str) -> Payout {
        let e = EscrowSetup::new(self, total).await;
        self.deposit(e.escrow, &unique("d"), total)
            .await
            .expect(200);
        self.call(
            "POST",
            &format!("/escrows/{}/client-approve", e.escrow),
            &[],
            None,
        )
        .await
        .expect(200);
        let payment = self
            .get(&format!("/payments?escrow_id={}", e.escrow))
            .await
            .expect(200)
            .body["items"][0]
            .clone();
        assert_eq!(payment["status"], "PENDING", "{payment}");
        Payout {
            escrow: e.escrow,
            payment: payment["id"].as_u64().unwrap(),
            psp_ref: payment["psp_ref"].as_str().unwrap().to_string(),
        }
    }

    /// Milestone `idx` of `escrow` paid through the proofs' payout hook (what
    /// an approved proof does), with nothing else in its transaction.
    pub async fn pay_milestone(
        &self,
        escrow: u64,
        idx: u32,
    ) -> shared::domain::escrow::payment::Payment {
        let (_, paid) = shared::ops::payout::pay_milestone(
            &self.state.store,
            shared::domain::ids::Id::new(escrow).unwrap(),
            idx,
            |_, _| Ok(vec![]),
            &shared::store::audit::Actor::System,
        )
        .await
        .expect("the milestone is paid");
        paid
    }

    /// A funded escrow of `total` in two PHOTO milestones of `first` and
    /// `second`, whose first milestone the payout hook paid and the PSP then
    /// failed (consumed): milestone 1 back to APPROVED, its money available.
    pub async fn failed_first_milestone(
        &self,
        total: &str,
        first: &str,
        second: &str,
    ) -> (EscrowSetup, shared::domain::escrow::payment::Payment) {
        let e = EscrowSetup::with(
            self,
            json!({"amount_total": total, "milestones": [
                {"label": "a", "amount": first, "proof_type": "PHOTO"},
                {"label": "b", "amount": second, "proof_type": "PHOTO"}]}),
        )
        .await;
        self.deposit(e.escrow, &unique("d"), total)
            .await
            .expect(200);
        let paid = self.pay_milestone(e.escrow, 1).await;
        let body = psp_body(&unique("evt-ms"), "payment.failed", &paid.psp_ref);
        let headers = psp_headers(&body);
        self.psp_webhook(&header_refs(&headers), &body)
            .await
            .expect(200);
        assert_eq!(self.consume_psp().await, (1, 0));
        (e, paid)
    }
}

/// A payout made by [`InProcess::payout`].
pub struct Payout {
    pub escrow: u64,
    pub payment: u64,
    pub psp_ref: String,
}
