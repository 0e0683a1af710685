//! Helpers for the black-box tests: an HTTP client for the running
//! `kobatela-local`, fixtures made through the API as a client would, and
//! read-only checks of the stored state in the emulator (balances, audit
//! entries, stray items).
//!
//! Environment (set by `local/integration.sh`): `KOBATELA_BASE_URL`,
//! `KOBATELA_ADMIN_KEY`, `KOBATELA_TABLE`, `KOBATELA_API_KEY_PEPPER`,
//! `AWS_ENDPOINT_URL` and the dummy AWS credentials.

pub mod event_schema;
pub mod faults;
pub mod photos;

use aws_sdk_dynamodb::{operation::scan::builders::ScanFluentBuilder, types::AttributeValue};
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with `make test`"))
}

/// A client of the API with one key.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    /// Reads a response of an in-process router whole.
    pub async fn read(response: axum::response::Response) -> Reply {
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        let mut headers = HeaderMap::new();
        for (name, value) in response.headers() {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
                reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.insert(name, value);
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8(bytes.to_vec()).expect("utf-8 body");
        Reply::new(status, headers, text)
    }

    /// A reply whose body is `text` (JSON, or `Null` if it is not).
    fn new(status: StatusCode, headers: HeaderMap, text: String) -> Reply {
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    /// The error code of an error reply ("" if none).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn id(&self) -> u64 {
        self.body["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no id in {} {}", self.status, self.text))
    }

    /// Asserts the status, showing the body if it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected reply: {}",
            self.text
        );
        self
    }

    /// Asserts an error reply: status, code, and the contract's shape.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Reply {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected reply: {}",
            self.text
        );
        assert_eq!(self.code(), code, "unexpected reply: {}", self.text);
        assert!(self.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        self
    }
}

impl Api {
    pub fn admin() -> Api {
        Api::with_key(Some(env("KOBATELA_ADMIN_KEY")))
    }

    pub fn anonymous() -> Api {
        Api::with_key(None)
    }

    pub fn with_key(key: Option<String>) -> Api {
        Api {
            http: http_client(),
            base: env("KOBATELA_BASE_URL"),
            key,
        }
    }

    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("kobatela-local answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body reads");
        Reply::new(status, headers, text)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, &[], Some(body.to_string()))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, &[], None).await
    }

    /// `POST /spend/purchases` with an `Idempotency-Key`.
    pub async fn purchase(&self, key: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            "/spend/purchases",
            &[("idempotency-key", key)],
            Some(body.to_string()),
        )
        .await
    }
}

impl Api {
    /// `POST /escrows/{id}/deposit` with an `Idempotency-Key`.
    pub async fn deposit(&self, escrow: u64, key: &str, amount: &str) -> Reply {
        self.send(
            Method::POST,
            &format!("/escrows/{escrow}/deposit"),
            &[("idempotency-key", key)],
            Some(json!({ "amount": amount }).to_string()),
        )
        .await
    }

    /// `POST /escrows/{id}/{action}` with no body.
    pub async fn escrow_action(&self, escrow: u64, action: &str) -> Reply {
        self.send(
            Method::POST,
            &format!("/escrows/{escrow}/{action}"),
            &[],
            None,
        )
        .await
    }

    /// `PATCH /users/{id}` `{is_active}`.
    pub async fn set_user_active(&self, user: u64, active: bool) -> Reply {
        self.send(
            Method::PATCH,
            &format!("/users/{user}"),
            &[],
            Some(json!({ "is_active": active }).to_string()),
        )
        .await
    }
}

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

/// Direct, read-only access to the emulator's table, to check stored state.
pub struct Table {
    client: aws_sdk_dynamodb::Client,
    name: String,
}

impl Table {
    pub async fn new() -> Table {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Table {
            client: aws_sdk_dynamodb::Client::new(&config),
            name: env("KOBATELA_TABLE"),
        }
    }

    /// Every item that `filter` (a scan with its filter set) keeps, all pages.
    async fn scan_all(
        &self,
        filter: impl Fn(ScanFluentBuilder) -> ScanFluentBuilder,
    ) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = filter(self.client.scan().table_name(&self.name))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan works");
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    /// Every item whose `attribute` equals `value` (a number), all pages.
    pub async fn items_where(
        &self,
        attribute: &str,
        value: u64,
    ) -> Vec<HashMap<String, AttributeValue>> {
        self.scan_all(|scan| {
            scan.filter_expression("#a = :v")
                .expression_attribute_names("#a", attribute)
                .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
        })
        .await
    }

    /// Every item whose partition key starts with `pk_prefix` (`PURCHASE#`,
    /// `IDEMPOTENCY#`…), all pages.
    pub async fn items_with_prefix(&self, pk_prefix: &str) -> Vec<HashMap<String, AttributeValue>> {
        self.scan_all(|scan| {
            scan.filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(pk_prefix.into()))
        })
        .await
    }

    /// The item stored under `key` (consistent read), if any.
    pub async fn item(
        &self,
        key: HashMap<String, AttributeValue>,
    ) -> Option<HashMap<String, AttributeValue>> {
        self.client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .expect("get_item works")
            .item
    }

    /// Items of one partition key prefix (`PURCHASE#`, `AUDIT#USAGE_MANDATE#7`…)
    /// whose `attribute` is `value`.
    pub async fn count(&self, pk_prefix: &str, attribute: &str, value: u64) -> usize {
        self.items_where(attribute, value)
            .await
            .iter()
            .filter(|item| item["pk"].as_s().is_ok_and(|pk| pk.starts_with(pk_prefix)))
            .count()
    }

    /// The purchases of one mandate.
    pub async fn purchases_of(&self, mandate: u64) -> Vec<HashMap<String, AttributeValue>> {
        self.items_where("mandate_id", mandate)
            .await
            .into_iter()
            .filter(|item| {
                item["pk"]
                    .as_s()
                    .is_ok_and(|pk| pk.starts_with("PURCHASE#"))
            })
            .collect()
    }

    /// The audit actions recorded for one entity, oldest first.
    pub async fn audit_actions(&self, entity: &str, id: u64) -> Vec<String> {
        let page = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("AUDIT#{entity}#{id}")))
            .consistent_read(true)
            .send()
            .await
            .expect("query works");
        page.items()
            .iter()
            .map(|item| item["action"].as_s().unwrap().clone())
            .collect()
    }

    /// Every item in the table (for "nothing else was written" checks).
    pub async fn item_count(&self) -> usize {
        let mut count = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.name)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan works");
            count += page.count as usize;
            start = page.last_evaluated_key;
            if start.is_none() {
                return count;
            }
        }
    }
}

/// What is stored about one escrow (see [`Table::escrow_footprint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowFootprint {
    pub status: String,
    pub funded: i64,
    pub available: i64,
    pub paid: i64,
    pub refunded: i64,
    /// The escrow and its milestones.
    pub items: usize,
    pub events: usize,
    pub payments: usize,
    pub audit: usize,
}

/// Sum of the `amount` fields (cents) of purchase items.
pub fn cents_of(items: &[HashMap<String, AttributeValue>]) -> i64 {
    items
        .iter()
        .map(|item| item["amount_cents"].as_n().unwrap().parse::<i64>().unwrap())
        .sum()
}

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
        let blob = kobatela_local::local_blob().await;
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

/// A moment long past: what tests backdate deadlines and entries to, as the
/// API refuses past dates and tests must not wait for real time.
pub const PAST: &str = "2020-01-01T00:00:00.000000Z";

/// The deadline index sort key of `id` at [`PAST`] (`keys::expiry_sort_key`).
fn past_entry(id: u64) -> String {
    format!("{PAST}#{id:020}")
}

impl Table {
    /// The table of an in-process API.
    pub async fn named(name: &str) -> Table {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Table {
            client: aws_sdk_dynamodb::Client::new(&config),
            name: name.to_string(),
        }
    }

    /// Writes an item of string attributes as given (for tests that need
    /// what the API never writes, such as a corrupt index entry).
    pub async fn put(&self, item: Value) {
        let item = item
            .as_object()
            .expect("an object")
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    AttributeValue::S(v.as_str().expect("strings").to_string()),
                )
            })
            .collect();
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .expect("put_item works");
    }

    /// The items of one partition key, exactly (consistent).
    pub async fn partition(&self, pk: &str) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("query works");
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    /// The payments of one escrow, as stored.
    pub async fn payments_of(&self, escrow: u64) -> Vec<HashMap<String, AttributeValue>> {
        self.items_where("escrow_id", escrow)
            .await
            .into_iter()
            .filter(|item| item["pk"].as_s().is_ok_and(|pk| pk.starts_with("PAYMENT#")))
            .collect()
    }

    /// Everything stored about one escrow: its balances and status as
    /// stored, and how many milestones, timeline events, payments and audit
    /// entries (escrow and its payments') it has. Two equal footprints: the
    /// escrow did not change.
    pub async fn escrow_footprint(&self, escrow: u64) -> EscrowFootprint {
        let own = self.partition(&format!("ESCROW#{escrow}")).await;
        let record = own
            .iter()
            .find(|i| i["sk"].as_s().is_ok_and(|sk| sk == "ESCROW"))
            .expect("the escrow is stored");
        let cents = |name: &str| record[name].as_n().unwrap().parse::<i64>().unwrap();
        let payments = self.payments_of(escrow).await;
        let mut audit = self.audit_actions("ESCROW", escrow).await.len();
        for payment in &payments {
            let id: u64 = payment["id"].as_n().unwrap().parse().unwrap();
            audit += self.audit_actions("PAYMENT", id).await.len();
        }
        let footprint = EscrowFootprint {
            status: record["status"].as_s().unwrap().clone(),
            funded: cents("funded_cents"),
            available: cents("available_cents"),
            paid: cents("paid_cents"),
            refunded: cents("refunded_cents"),
            items: own.len(),
            events: self
                .partition(&format!("ESCROW_EVENTS#{escrow}"))
                .await
                .len(),
            payments: payments.len(),
            audit,
        };
        assert_eq!(
            footprint.funded,
            footprint.available + footprint.paid + footprint.refunded,
            "escrow {escrow}: the money invariant is broken: {footprint:?}"
        );
        footprint
    }

    /// Moves an open escrow's deadline into the past (the API refuses past
    /// deadlines, and tests must not wait for real time).
    pub async fn backdate_escrow(&self, escrow: u64) {
        let update = |expression: &str, condition: &str, value: String| {
            self.client
                .update_item()
                .table_name(&self.name)
                .key("pk", AttributeValue::S(format!("ESCROW#{escrow}")))
                .key("sk", AttributeValue::S("ESCROW".into()))
                .update_expression(expression)
                .condition_expression(condition)
                .expression_attribute_values(":v", AttributeValue::S(value))
                .send()
        };
        update("SET deadline_at = :v", "attribute_exists(pk)", PAST.into())
            .await
            .expect("an escrow to backdate");
        // Its deadline index entry, if it has one (a DRAFT has none).
        let entry = update(
            "SET expiry_sk = :v",
            "attribute_exists(expiry_pk)",
            past_entry(escrow),
        )
        .await;
        if let Err(e) = entry {
            let e = e.into_service_error();
            assert!(e.is_conditional_check_failed_exception(), "{e:?}");
        }
    }

    /// Writes `count` escrow items from id `first` on, in `status`, each
    /// with a deadline index entry past due under `OPEN_ESCROW`: what the
    /// index held before it kept only what a sweep can act on (every open
    /// escrow, alerted or not). Items the API never reads as escrows.
    pub async fn put_legacy_deadline_entries(&self, first: u64, count: u64, status: &str) {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        use shared::{domain::ids::Id, store::keys};
        let ids: Vec<u64> = (first..first + count).collect();
        for chunk in ids.chunks(25) {
            let mut writes = Vec::new();
            for &id in chunk {
                let item = HashMap::from([
                    ("pk".to_string(), AttributeValue::S(format!("ESCROW#{id}"))),
                    ("sk".to_string(), AttributeValue::S("ESCROW".into())),
                    ("status".to_string(), AttributeValue::S(status.into())),
                    (
                        "expiry_pk".to_string(),
                        AttributeValue::S(keys::sharded_partition(
                            keys::OPEN_ESCROWS,
                            Id::new(id).unwrap(),
                        )),
                    ),
                    ("expiry_sk".to_string(), AttributeValue::S(past_entry(id))),
                ]);
                let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
                writes.push(WriteRequest::builder().put_request(put).build());
            }
            let mut pending = Some(HashMap::from([(self.name.clone(), writes)]));
            while let Some(request) = pending.take() {
                let out = self
                    .client
                    .batch_write_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .expect("the emulator takes the batch");
                pending = out.unprocessed_items.filter(|u| !u.is_empty());
            }
        }
    }

    /// Puts an escrow back in the deadline index under `OPEN_ESCROW`, past
    /// due, as the index kept every open escrow before.
    pub async fn put_legacy_deadline_entry(&self, escrow: u64) {
        use shared::{domain::ids::Id, store::keys};
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(format!("ESCROW#{escrow}")))
            .key("sk", AttributeValue::S("ESCROW".into()))
            .update_expression("SET expiry_pk = :pk, expiry_sk = :sk")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(keys::sharded_partition(
                    keys::OPEN_ESCROWS,
                    Id::new(escrow).unwrap(),
                )),
            )
            .expression_attribute_values(":sk", AttributeValue::S(past_entry(escrow)))
            .send()
            .await
            .expect("an escrow to index");
    }

    /// Moves a PENDING payment's entry in the stuck-payout index into the
    /// past, as if it had waited long: tests must not wait 15 minutes.
    pub async fn backdate_pending_payment(&self, payment: u64) {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(format!("PAYMENT#{payment}")))
            .key("sk", AttributeValue::S("PAYMENT".into()))
            .update_expression("SET expiry_sk = :sk")
            .condition_expression("attribute_exists(expiry_pk)")
            .expression_attribute_values(":sk", AttributeValue::S(past_entry(payment)))
            .send()
            .await
            .expect("a PENDING payment to backdate");
    }

    /// How many entries the deadline index holds under `kind`'s shards.
    pub async fn deadline_entries(&self, kind: &str) -> usize {
        let mut total = 0;
        for shard in shared::store::keys::all_shards(kind) {
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.name)
                    .index_name("active_by_expiry")
                    .key_condition_expression("expiry_pk = :pk")
                    .expression_attribute_values(":pk", AttributeValue::S(shard.clone()))
                    .select(aws_sdk_dynamodb::types::Select::Count)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .expect("the index answers");
                total += usize::try_from(page.count).unwrap();
                start = page.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        total
    }

    /// The deadline index partition an escrow is in, if any.
    pub async fn deadline_entry(&self, escrow: u64) -> Option<String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(format!("ESCROW#{escrow}")))
            .key("sk", AttributeValue::S("ESCROW".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("the table answers")
            .item
            .expect("the escrow is stored");
        item.get("expiry_pk").map(|v| v.as_s().unwrap().clone())
    }

    /// Raises `alert` the way write paths do: its Put (from the store's
    /// builder) in a transaction. `Err` when the transaction is refused (the
    /// cause already raised it).
    pub async fn raise_alert(&self, alert: &shared::store::alerts::NewAlert) -> Result<(), String> {
        let put = shared::store::alerts::alert_put(&self.name, alert).expect("the alert builds");
        self.client
            .transact_write_items()
            .transact_items(put)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
    }

    /// Moves a mandate's expiry into the past, as if its date had come:
    /// the API refuses past dates, and tests must not wait for real time.
    pub async fn backdate_mandate(&self, mandate: u64) {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(format!("MANDATE#{mandate}")))
            .key("sk", AttributeValue::S("MANDATE".into()))
            .update_expression("SET expires_at = :past, expiry_sk = :sk")
            .condition_expression("attribute_exists(expiry_pk)")
            .expression_attribute_values(":past", AttributeValue::S(PAST.into()))
            .expression_attribute_values(":sk", AttributeValue::S(past_entry(mandate)))
            .send()
            .await
            .expect("an ACTIVE mandate to backdate");
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
}

impl InProcess {
    /// Milestone `idx` of `escrow` paid through the proofs' payout hook (what
    /// an approved proof does), with nothing else in its transaction.
    pub async fn pay_milestone(&self, escrow: u64, idx: u32) -> shared::domain::payment::Payment {
        let (_, paid) = self
            .state
            .store
            .pay_milestone(
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
    ) -> (EscrowSetup, shared::domain::payment::Payment) {
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

/// An HTTP client for the tests: reqwest's rustls comes without a crypto
/// provider in this workspace (the PSP adapter hands it the AWS SDK's), so
/// it is built with the same TLS setup.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(shared::psp::tls_config(false).expect("a TLS setup"))
        .build()
        .expect("an HTTP client")
}

/// The PSP webhook secret the running service and in-process APIs trust.
pub fn psp_secret() -> String {
    env("KOBATELA_PSP_WEBHOOK_SECRET")
}

/// The previous secret, still accepted (rotation), if the run sets one.
pub fn psp_previous_secret() -> Option<String> {
    std::env::var("KOBATELA_PSP_WEBHOOK_SECRET_PREVIOUS")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// The PSP's signature of `timestamp.body` under `secret`, computed here
/// independently of the service's code: lower-case hex HMAC-SHA256.
pub fn psp_sign(secret: &str, timestamp: &str, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Now, in unix seconds, as the PSP writes `X-PSP-Timestamp`.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A PSP event body: `{"id", "type", "psp_ref"}`.
pub fn psp_body(event_id: &str, kind: &str, psp_ref: &str) -> String {
    json!({"id": event_id, "type": kind, "psp_ref": psp_ref}).to_string()
}

/// The headers of a correctly signed webhook (current secret, now).
pub fn psp_headers(body: &str) -> Vec<(String, String)> {
    let ts = unix_now().to_string();
    let sig = psp_sign(&psp_secret(), &ts, body);
    vec![
        ("x-psp-timestamp".to_string(), ts),
        ("x-psp-signature".to_string(), sig),
    ]
}

/// Borrowed form of headers, for `send`.
pub fn header_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A correctly signed PSP event `kind` for `psp_ref`, sent as the PSP does.
pub async fn send_psp_event(event_id: &str, kind: &str, psp_ref: &str) -> Reply {
    let body = psp_body(event_id, kind, psp_ref);
    let headers = psp_headers(&body);
    Api::anonymous()
        .psp_webhook(&header_refs(&headers), &body)
        .await
}

/// `GET /psp/events/{id}` until the local consumer has processed the event
/// (bounded: 30 s), as a client would wait for it.
pub async fn psp_processed(admin: &Api, event_id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = admin
            .get(&format!("/psp/events/{event_id}"))
            .await
            .expect(200);
        if reply.body["status"] != "QUEUED" {
            return reply.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "event {event_id} not processed within 30 s: {}",
            reply.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl Api {
    /// `POST /psp/webhook` as the PSP sends it (no API key).
    pub async fn psp_webhook(&self, headers: &[(&str, &str)], body: &str) -> Reply {
        Api::anonymous()
            .send(
                Method::POST,
                "/psp/webhook",
                headers,
                Some(body.to_string()),
            )
            .await
    }
}

/// A PSP that accepts every payout, in-process: for tests of what the
/// payout dispatcher writes, without the sandbox's HTTP.
pub struct AcceptingPsp;

impl shared::psp::Psp for AcceptingPsp {
    fn submit_payout<'a>(
        &'a self,
        payout: &'a shared::psp::PayoutRequest,
    ) -> shared::psp::PayoutFuture<'a> {
        Box::pin(async move {
            shared::psp::PayoutAnswer::Accepted {
                psp_payout_id: format!("po_{}", payout.idempotency_key()),
            }
        })
    }
}
