//! [`InProcess`]: the whole API in the test's process, on a table of its own.

use crate::{env, psp_previous_secret, psp_secret, unique, Reply};
use serde_json::{json, Value};

/// The whole API in this process, on a fresh table of its own, with no
/// expiry schedule running: for tests that need to control when the sweep
/// runs, or to see every DynamoDB call.
pub struct InProcess {
    pub state: shared::SharedState,
    /// The proof bucket of the local stack (its `bytes_read` counts reads).
    pub blob: shared::blob::Blob,
    pub table: String,
    pub admin_key: String,
    /// The PSP webhook's state: its own queue (`table`'s name) in the
    /// emulator, which no background consumer reads: `consume_psp` does.
    pub webhook: psp_webhook::WebhookState,
    app: axum::Router,
}

impl InProcess {
    /// A fresh table `prefix-<uuid>` and an admin key (id 1) on it.
    pub async fn new(prefix: &str) -> InProcess {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        InProcess::with_client(prefix, shared::store::Store::new_client(&config), &[]).await
    }

    /// Same, with a client of the caller's (interceptors) and extra settings.
    pub async fn with_client(
        prefix: &str,
        client: aws_sdk_dynamodb::Client,
        settings: &[(&str, &str)],
    ) -> InProcess {
        InProcess::with_clients(prefix, client, None, settings).await
    }

    /// Same, with an SQS client of the caller's too (interceptors).
    pub async fn with_clients(
        prefix: &str,
        client: aws_sdk_dynamodb::Client,
        sqs: Option<aws_sdk_sqs::Client>,
        settings: &[(&str, &str)],
    ) -> InProcess {
        let blob = kobatela_local::local_blob().await;
        InProcess::with_all_clients(prefix, client, sqs, blob, settings).await
    }

    /// Same, with the proof bucket's S3 client of the caller's too
    /// (interceptors), on the local stack's bucket.
    pub async fn with_s3(
        prefix: &str,
        client: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        s3: aws_sdk_s3::Client,
        settings: &[(&str, &str)],
    ) -> InProcess {
        let bucket = std::env::var(shared::blob::BUCKET_VARIABLE)
            .ok()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| kobatela_local::LOCAL_PROOF_BUCKET.to_string());
        let blob = shared::blob::Blob::new(s3, &bucket);
        InProcess::with_all_clients(prefix, client, Some(sqs), blob, settings).await
    }

    async fn with_all_clients(
        prefix: &str,
        client: aws_sdk_dynamodb::Client,
        sqs: Option<aws_sdk_sqs::Client>,
        blob: shared::blob::Blob,
        settings: &[(&str, &str)],
    ) -> InProcess {
        let table = unique(prefix);
        shared::store::schema::ensure_table(&client, &table)
            .await
            .expect("table created");
        let pepper = env("KOBATELA_API_KEY_PEPPER");
        let config = shared::config::Config::from_lookup(|name| match name {
            "KOBATELA_TABLE" => Some(table.clone()),
            other => settings
                .iter()
                .find(|(k, _)| *k == other)
                .map(|(_, v)| v.to_string()),
        })
        .expect("valid config");
        let state = shared::AppState::new(config, shared::config::Secret::new(pepper), client);
        let admin_key = shared::auth::generate_secret();
        let new = shared::store::apikeys::NewApiKey {
            name: "in-process-admin".into(),
            scope: shared::domain::access::Role::Admin,
            user_id: None,
            expires_at: None,
            hash: state.auth.hash(&admin_key),
            prefix: shared::auth::visible_prefix(&admin_key),
        };
        state
            .store
            .create_api_key(new, &shared::store::audit::Actor::System)
            .await
            .expect("admin key created");
        let sqs = match sqs {
            Some(sqs) => sqs,
            None => shared::queue::Queue::new_client(
                &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
            ),
        };
        let url = sqs
            .create_queue()
            .queue_name(&table)
            .send()
            .await
            .expect("queue created")
            .queue_url
            .expect("a queue URL");
        let webhook = psp_webhook::Webhook::new(
            state.store.clone(),
            shared::queue::Queue::new(sqs, &url),
            psp_webhook::webhook_secrets(
                &shared::config::Secret::new(psp_secret()),
                psp_previous_secret()
                    .map(shared::config::Secret::new)
                    .as_ref(),
            ),
        );
        let app = shared::http::app(
            kobatela_local::all_routes(&state, &blob).merge(psp_webhook::router(webhook.clone())),
        );
        InProcess {
            state,
            blob,
            table,
            admin_key,
            webhook,
            app,
        }
    }

    /// One request through the real router, as the admin.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let auth = format!("Bearer {}", self.admin_key);
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        self.send(method, path, &all, body).await
    }

    /// One request through the real router with another API key.
    pub async fn call_as(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {key}");
        self.send(method, path, &[("authorization", auth.as_str())], body)
            .await
    }

    /// One request through the real router with another API key and
    /// extra headers (`Idempotency-Key`).
    pub async fn call_with(
        &self,
        key: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let auth = format!("Bearer {key}");
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        self.send(method, path, &all, body).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        use tower::ServiceExt;
        let mut request = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = request
            .body(axum::body::Body::from(body))
            .expect("request builds");
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        Reply::read(response).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, &[], Some(body)).await
    }

    /// Serves this API on a free loopback port, for callers that speak
    /// HTTP to it (the PSP sandbox's webhook events); answers its address.
    pub async fn serve_on_loopback(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let app = self.app.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// `POST /psp/webhook` with these headers and this raw body, no API key.
    pub async fn psp_webhook(&self, headers: &[(&str, &str)], body: &str) -> Reply {
        use tower::ServiceExt;
        let mut request = http::Request::builder().method("POST").uri("/psp/webhook");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(axum::body::Body::from(body.to_string()))
            .expect("request builds");
        Reply::read(
            self.app
                .clone()
                .oneshot(request)
                .await
                .expect("router answers"),
        )
        .await
    }

    /// Runs the consumer (`psp_events::handle`, as kobatela-local does) over
    /// this API's queue until a receive comes back empty: `(received, failed)`.
    pub async fn consume_psp(&self) -> (usize, usize) {
        let (mut received, mut failed) = (0, 0);
        loop {
            let (r, f) = kobatela_local::psp::poll_once(&self.webhook.queue, &self.state.store, 0)
                .await
                .expect("the queue answers");
            if r == 0 {
                return (received, failed);
            }
            received += r;
            failed += f;
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, &[], None).await
    }

    /// `POST /escrows/{id}/{action}` with no body.
    pub async fn escrow_action(&self, escrow: u64, action: &str) -> Reply {
        self.call("POST", &format!("/escrows/{escrow}/{action}"), &[], None)
            .await
    }

    /// The alerts of `alert_type` (`GET /alerts?type=`), newest first, at
    /// most 100.
    pub async fn alerts(&self, alert_type: &str) -> Vec<Value> {
        let page = self
            .get(&format!("/alerts?type={alert_type}&limit=100"))
            .await
            .expect(200)
            .body;
        page["items"].as_array().expect("a page of alerts").clone()
    }

    /// `POST /spend/purchases` with an `Idempotency-Key`.
    pub async fn purchase(&self, key: &str, body: Value) -> Reply {
        self.call(
            "POST",
            "/spend/purchases",
            &[("idempotency-key", key)],
            Some(body),
        )
        .await
    }

    /// A mandate's balance and spent total, as the store reads them.
    pub async fn mandate_money(&self, mandate: u64) -> (String, String) {
        let id = shared::domain::ids::Id::new(mandate).expect("a mandate id");
        let found = self
            .state
            .store
            .mandate(id)
            .await
            .expect("the store reads")
            .expect("the mandate is stored");
        (found.balance.to_string(), found.spent.to_string())
    }
}

impl InProcess {
    /// `POST /escrows/{id}/deposit` with an `Idempotency-Key`, as the admin.
    pub async fn deposit(&self, escrow: u64, key: &str, amount: &str) -> Reply {
        self.call(
            "POST",
            &format!("/escrows/{escrow}/deposit"),
            &[("idempotency-key", key)],
            Some(json!({ "amount": amount })),
        )
        .await
    }
}
