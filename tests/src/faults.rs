//! Fault injection for DynamoDB, through the SDK's interceptor: what real
//! DynamoDB answers under contention or throttling, and the emulator never
//! does. A chosen request is sent to a tiny local server instead of the
//! emulator, which answers exactly DynamoDB's error for the chosen fault, so
//! a faulted request writes nothing.
//!
//! ```ignore
//! let faults = Faults::start().await;
//! let client = faults.client().await;           // production settings + the injector
//! faults.inject(Fault::ALL[0], 3);              // the next 3 matching attempts fail
//! faults.inject_forever(Fault::ALL[3]);         // every matching attempt fails
//! faults.clear();
//! ```

use aws_sdk_dynamodb::{operation::transact_write_items::TransactWriteItemsInput, Client};
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{
            context::{
                BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
            },
            Intercept,
        },
        orchestrator::Metadata,
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use axum::{
    body::Bytes,
    extract::Path,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use serde_json::{json, Value};
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

/// The service's DynamoDB client settings (`Store::client_config`), with a
/// retry quota of its own. The SDK's standard retries draw on one token
/// bucket per partition, and by default every DynamoDB client of a process
/// shares it: the faults one test injects would spend the retries another
/// counts on (a lost answer that should be retried would come back as 500).
pub fn store_client_config(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    use aws_sdk_dynamodb::config::retry::RetryPartition;
    shared::store::Store::client_config(sdk)
        .retry_partition(RetryPartition::new(crate::unique("kobatela-tests")))
}

/// One way DynamoDB says "not now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `TransactWriteItems` cancelled with this reason on its Update items
    /// (on its first item if it has none), `None` on the others.
    Cancelled(&'static str),
    /// `TransactWriteItems` cancelled with this reason on item `index` only.
    CancelledAt(&'static str, usize),
    /// Any call refused whole with this error.
    Refused(&'static str),
}

impl Fault {
    /// Every contention and throttling answer the service must survive.
    pub const ALL: [Fault; 6] = [
        Fault::Cancelled("TransactionConflict"),
        Fault::Cancelled("ThrottlingError"),
        Fault::Cancelled("ProvisionedThroughputExceeded"),
        Fault::Refused("ThrottlingException"),
        Fault::Refused("ProvisionedThroughputExceededException"),
        Fault::Refused("RequestLimitExceeded"),
    ];

    fn path(&self) -> String {
        match self {
            Fault::Cancelled(code) => format!("/cancel/{code}/updates"),
            Fault::CancelledAt(code, index) => format!("/cancel/{code}/{index}"),
            Fault::Refused(code) => format!("/refuse/{code}"),
        }
    }

    fn applies_to(&self, operation: &str) -> bool {
        match self {
            Fault::Cancelled(_) | Fault::CancelledAt(..) => operation == "TransactWriteItems",
            Fault::Refused(_) => true,
        }
    }
}

/// Which requests a fault hits.
#[derive(Debug, Clone)]
struct Plan {
    fault: Fault,
    /// Only transactions writing an item whose `pk` is this.
    touching: Option<String>,
    /// Attempts still to fail (`u64::MAX`: all).
    remaining: u64,
}

#[derive(Debug, Default)]
struct Inner {
    server: Mutex<String>,
    plan: Mutex<Option<Plan>>,
    injected: AtomicU64,
    /// Calls (not attempts) by operation name, since the last reset.
    executions: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// The injector: an SDK interceptor plus the server answering for DynamoDB.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Inner>);

/// Marks one execution as chosen by the plan (kept across its attempts).
#[derive(Debug, Clone)]
struct Chosen(String);

impl Storable for Chosen {
    type Storer = StoreReplace<Self>;
}

impl Faults {
    /// Starts the fault server on a free loopback port.
    pub async fn start() -> Faults {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let address = listener.local_addr().expect("bound");
        let app = Router::new()
            .route("/cancel/{code}/{at}", post(cancel))
            .route("/refuse/{code}", post(refuse))
            .route("/replayed", post(replayed));
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fault server runs");
        });
        let faults = Faults::default();
        *faults.0.server.lock().unwrap() = format!("http://{address}");
        faults
    }

    /// A DynamoDB client with the service's own settings and this injector.
    pub async fn client(&self) -> Client {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Client::from_conf(store_client_config(&sdk).interceptor(self.clone()).build())
    }

    /// The next `times` attempts of matching calls fail with `fault`.
    pub fn inject(&self, fault: Fault, times: u64) {
        self.plan(fault, None, times);
    }

    /// Every attempt of a matching call fails with `fault`, until `clear`.
    pub fn inject_forever(&self, fault: Fault) {
        self.plan(fault, None, u64::MAX);
    }

    /// Every attempt of a transaction writing the item with this `pk` fails.
    pub fn inject_touching(&self, fault: Fault, pk: &str) {
        self.plan(fault, Some(pk.to_string()), u64::MAX);
    }

    /// The next `times` attempts of transactions writing the item with this
    /// `pk` fail.
    pub fn inject_touching_times(&self, fault: Fault, pk: &str, times: u64) {
        self.plan(fault, Some(pk.to_string()), times);
    }

    fn plan(&self, fault: Fault, touching: Option<String>, remaining: u64) {
        *self.0.plan.lock().unwrap() = Some(Plan {
            fault,
            touching,
            remaining,
        });
    }

    pub fn clear(&self) {
        *self.0.plan.lock().unwrap() = None;
    }

    /// Calls of `operation` (`Query`, `BatchGetItem`…) since `reset_counts`.
    pub fn executions(&self, operation: &str) -> u64 {
        self.0
            .executions
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset_counts(&self) {
        self.0.executions.lock().unwrap().clear();
    }

    /// Attempts answered by the fault server so far; resets the count.
    pub fn take_injected(&self) -> u64 {
        self.0.injected.swap(0, Ordering::SeqCst)
    }
}

/// The DynamoDB operation (`Query`, `TransactWriteItems`…) of the call an
/// interceptor hook is looking at; for every interceptor of the tests.
pub fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| m.name().to_string())
        .unwrap_or_default()
}

/// The partition keys a transaction writes.
fn written_pks(input: &TransactWriteItemsInput) -> Vec<String> {
    let pk = |item: Option<
        &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    >| {
        item.and_then(|i| i.get("pk"))
            .and_then(|v| v.as_s().ok())
            .cloned()
    };
    input
        .transact_items()
        .iter()
        .filter_map(|item| {
            pk(item.put().map(|p| p.item()))
                .or_else(|| pk(item.update().map(|u| u.key())))
                .or_else(|| pk(item.delete().map(|d| d.key())))
                .or_else(|| pk(item.condition_check().map(|c| c.key())))
        })
        .collect()
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "kobatela-tests faults"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        *self
            .0
            .executions
            .lock()
            .unwrap()
            .entry(operation(cfg))
            .or_default() += 1;
        let Some(plan) = self.0.plan.lock().unwrap().clone() else {
            return Ok(());
        };
        if !plan.fault.applies_to(&operation(cfg)) {
            return Ok(());
        }
        if let Some(pk) = &plan.touching {
            let touches = context
                .input()
                .downcast_ref::<TransactWriteItemsInput>()
                .is_some_and(|input| written_pks(input).contains(pk));
            if !touches {
                return Ok(());
            }
        }
        cfg.interceptor_state().store_put(Chosen(plan.fault.path()));
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Chosen(path)) = cfg.load::<Chosen>().cloned() else {
            return Ok(());
        };
        {
            let mut plan = self.0.plan.lock().unwrap();
            match plan.as_mut() {
                Some(p) if p.remaining > 0 => {
                    if p.remaining != u64::MAX {
                        p.remaining -= 1;
                    }
                }
                _ => return Ok(()),
            }
        }
        let server = self.0.server.lock().unwrap().clone();
        context.request_mut().set_uri(format!("{server}{path}"))?;
        self.0.injected.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn dynamodb_error(type_name: &str, body: Value) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            ("x-amzn-errortype", type_name.to_string()),
            ("content-type", "application/x-amz-json-1.0".to_string()),
        ],
        body.to_string(),
    )
        .into_response()
}

/// A transaction cancelled as DynamoDB cancels it: one reason per item.
async fn cancel(Path((code, at)): Path<(String, String)>, request: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&request).unwrap_or(Value::Null);
    let items = request["TransactItems"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let hit = |index: usize, item: &Value| match at.as_str() {
        "updates" => {
            item.get("Update").is_some()
                || (index == 0 && !items.iter().any(|i| i.get("Update").is_some()))
        }
        n => n.parse::<usize>().ok() == Some(index),
    };
    let codes: Vec<&str> = items
        .iter()
        .enumerate()
        .map(|(i, item)| if hit(i, item) { code.as_str() } else { "None" })
        .collect();
    let reasons: Vec<Value> = codes
        .iter()
        .map(|c| match *c {
            "None" => json!({"Code": "None"}),
            c => json!({"Code": c, "Message": "injected by kobatela-tests"}),
        })
        .collect();
    dynamodb_error(
        "TransactionCanceledException",
        json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                codes.join(", ")
            ),
            "CancellationReasons": reasons,
        }),
    )
}

/// What DynamoDB answers a `TransactWriteItems` whose client request token
/// it has seen succeed: success, and nothing written again.
async fn replayed() -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.0")],
        "{}",
    )
        .into_response()
}

/// A whole call refused with `code`.
async fn refuse(Path(code): Path<String>) -> Response {
    dynamodb_error(
        &code,
        json!({
            "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
            "message": "injected by kobatela-tests",
        }),
    )
}

/// Failures on the wire that the fault server cannot stage, for any SDK
/// client (DynamoDB, SQS or S3), by operation name:
/// - a refused call (`refuse_calls`): the interceptor fails it before it is
///   sent, as an unreachable or failing service would: nothing lands;
/// - a lost answer (`lose_answers`): the request lands, then its answer is
///   replaced by a 500, as a timeout after the write would look. The SDK
///   retries it like any 5xx, so the request lands again; except a
///   `TransactWriteItems` that succeeded, when the wire knows the fault
///   server (`dynamodb_client` with `Faults`): DynamoDB answers a retry
///   under the same client request token with success and writes nothing
///   (within 10 minutes), and the emulator ignores the token, so the wire
///   plays DynamoDB's part and sends the retry to the fault server's
///   `/replayed` instead.
///
/// Also counts calls by operation name.
#[derive(Debug, Clone, Default)]
pub struct Wire(Arc<WireInner>);

#[derive(Debug, Default)]
struct WireInner {
    refuse: Mutex<std::collections::BTreeMap<String, u64>>,
    lose: Mutex<std::collections::BTreeMap<String, u64>>,
    calls: Mutex<std::collections::BTreeMap<String, u64>>,
    lost: AtomicU64,
    /// Calls refused and answers lost so far, by operation name.
    refused_by_op: Mutex<std::collections::BTreeMap<String, u64>>,
    lost_by_op: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Client request tokens of transactions that landed with their
    /// answer lost, and the fault server that answers their retries.
    landed: Mutex<std::collections::BTreeSet<String>>,
    replay_server: Mutex<Option<String>>,
    replayed: AtomicU64,
}

/// The client request token of the transaction in flight.
#[derive(Debug, Clone)]
struct Token(String);

impl Storable for Token {
    type Storer = StoreReplace<Self>;
}

impl Wire {
    /// The next `times` calls of `operation` (e.g. `SendMessage`) fail.
    pub fn refuse_calls(&self, operation: &str, times: u64) {
        self.0
            .refuse
            .lock()
            .unwrap()
            .insert(operation.to_string(), times);
    }

    /// The answers of the next `times` attempts of `operation` are lost
    /// after the request landed.
    pub fn lose_answers(&self, operation: &str, times: u64) {
        self.0
            .lose
            .lock()
            .unwrap()
            .insert(operation.to_string(), times);
    }

    /// Calls of `operation` since the last `reset_counts`.
    pub fn calls(&self, operation: &str) -> u64 {
        self.0
            .calls
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset_counts(&self) {
        self.0.calls.lock().unwrap().clear();
    }

    /// Answers lost so far.
    pub fn lost(&self) -> u64 {
        self.0.lost.load(Ordering::SeqCst)
    }

    /// Calls of `operation` refused so far (not reset by `reset_counts`).
    pub fn refused_of(&self, operation: &str) -> u64 {
        Wire::count(&self.0.refused_by_op, operation)
    }

    /// Answers of `operation` lost so far (not reset by `reset_counts`).
    pub fn lost_of(&self, operation: &str) -> u64 {
        Wire::count(&self.0.lost_by_op, operation)
    }

    /// Retries of landed transactions answered as DynamoDB does (success,
    /// nothing written again).
    pub fn replayed(&self) -> u64 {
        self.0.replayed.load(Ordering::SeqCst)
    }

    /// Forgets every refusal and loss still armed.
    pub fn clear(&self) {
        self.0.refuse.lock().unwrap().clear();
        self.0.lose.lock().unwrap().clear();
    }

    fn count(map: &Mutex<std::collections::BTreeMap<String, u64>>, operation: &str) -> u64 {
        map.lock().unwrap().get(operation).copied().unwrap_or(0)
    }

    /// An S3 client with the service's own settings (`Blob::new_client`:
    /// path-style on the emulator) and this interceptor. Presigning runs the
    /// interceptor's hooks before transmit too, so a refusal armed for
    /// `PutObject` may hit the presigned PUT of `POST /proofs/uploads` as
    /// well as the proof's own copy.
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(sdk.endpoint_url().is_some())
                .interceptor(self.clone())
                .build(),
        )
    }

    /// An SQS client with the service's own settings and this interceptor.
    pub async fn sqs_client(&self) -> aws_sdk_sqs::Client {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        aws_sdk_sqs::Client::from_conf(
            shared::queue::Queue::client_config(&sdk)
                .interceptor(self.clone())
                .build(),
        )
    }

    /// A DynamoDB client with the service's own settings, this interceptor
    /// and, if given, the fault injector too.
    pub async fn dynamodb_client(&self, faults: Option<&Faults>) -> Client {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let mut config = store_client_config(&sdk).interceptor(self.clone());
        if let Some(faults) = faults {
            *self.0.replay_server.lock().unwrap() = Some(faults.0.server.lock().unwrap().clone());
            config = config.interceptor(faults.clone());
        }
        Client::from_conf(config.build())
    }

    fn take(map: &Mutex<std::collections::BTreeMap<String, u64>>, operation: &str) -> bool {
        let mut map = map.lock().unwrap();
        match map.get_mut(operation) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

impl Intercept for Wire {
    fn name(&self) -> &'static str {
        "kobatela-tests wire"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        if let Some(token) = context
            .input()
            .downcast_ref::<TransactWriteItemsInput>()
            .and_then(|input| input.client_request_token())
        {
            cfg.interceptor_state().store_put(Token(token.to_string()));
        }
        *self.0.calls.lock().unwrap().entry(op.clone()).or_default() += 1;
        if Wire::take(&self.0.refuse, &op) {
            *self
                .0
                .refused_by_op
                .lock()
                .unwrap()
                .entry(op.clone())
                .or_default() += 1;
            return Err(format!("{op} refused by kobatela-tests").into());
        }
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Token(token)) = cfg.load::<Token>() else {
            return Ok(());
        };
        if !self.0.landed.lock().unwrap().contains(token) {
            return Ok(());
        }
        let Some(server) = self.0.replay_server.lock().unwrap().clone() else {
            return Ok(());
        };
        context
            .request_mut()
            .set_uri(format!("{server}/replayed"))?;
        self.0.replayed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        if !Wire::take(&self.0.lose, &op) {
            return Ok(());
        }
        if let Some(Token(token)) = cfg.load::<Token>() {
            if context.response().status().is_success() {
                self.0.landed.lock().unwrap().insert(token.clone());
            }
        }
        self.0.lost.fetch_add(1, Ordering::SeqCst);
        *self.0.lost_by_op.lock().unwrap().entry(op).or_default() += 1;
        let mut response = aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(500u16).expect("a status"),
            aws_smithy_types::body::SdkBody::from(
                r#"{"__type":"InternalFailure","message":"answer lost by kobatela-tests"}"#,
            ),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        *context.response_mut() = response;
        Ok(())
    }
}
