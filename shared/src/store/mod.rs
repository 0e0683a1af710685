//! The DynamoDB single table: key builders, item mapping (serde_dynamo), one
//! repository per aggregate, idempotency, id counters, and the transaction
//! helpers that decode `CancellationReasons`.

pub mod alerts;
pub mod apikeys;
pub mod audit;
pub mod catalogue;
pub mod escrows;
pub mod idempotency;
pub mod ids;
pub mod items;
pub mod keys;
pub mod list;
pub mod mandates;
pub mod payments;
pub mod proofs;
pub mod purchases;
pub mod read;
pub mod retry;
pub mod schema;
pub mod transact;
pub mod users;

use aws_sdk_dynamodb::Client;
use std::sync::Arc;

/// The table and the client, built once per container and shared by handlers.
#[derive(Clone)]
pub struct Store {
    client: Client,
    table: Arc<str>,
    ids: Arc<ids::IdAllocator>,
}

impl Store {
    pub fn new(client: Client, table: &str, id_block: u64) -> Store {
        Store {
            client,
            table: Arc::from(table),
            ids: Arc::new(ids::IdAllocator::new(id_block)),
        }
    }

    /// The DynamoDB client of every function, from the standard AWS
    /// configuration (region, credentials, `AWS_ENDPOINT_URL` locally).
    pub fn new_client(sdk: &aws_config::SdkConfig) -> Client {
        Client::from_conf(Store::client_config(sdk).build())
    }

    /// The DynamoDB client settings every function uses (tests add their
    /// interceptors to the same): our retry policy on top of `sdk`.
    pub fn client_config(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::config::Builder {
        aws_sdk_dynamodb::config::Builder::from(sdk).retry_config(retry::sdk_retry_config())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
