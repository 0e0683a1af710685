//! The DynamoDB single table: key builders, item mapping (serde_dynamo), one
//! repository per aggregate, idempotency, id counters, and the transaction
//! helpers that decode `CancellationReasons`.

pub mod alerts;
pub mod apikeys;
pub mod audit;
pub mod catalogue;
pub mod client;
pub mod deadlines;
pub mod escrow;
pub mod facts;
pub mod idempotency;
pub mod ids;
pub mod items;
pub mod keys;
pub mod ledger;
pub mod list;
pub mod mandates;
pub mod payees;
pub mod proofs;
pub mod psp_events;
pub mod purchases;
pub mod read;
pub mod retry;
pub mod schema;
pub mod settlements;
pub mod transact;
pub mod transfers;
pub mod users;

use crate::domain::time::Timestamp;
use aws_sdk_dynamodb::Client;
use std::sync::Arc;

/// The table and the client, built once per container and shared by handlers.
#[derive(Clone)]
pub struct Store {
    client: Client,
    table: Arc<str>,
    ids: Arc<ids::IdAllocator>,
    purchase_memory: Arc<purchases::PurchaseMemory>,
    clock: Clock,
}

/// The time the store decides with: the system clock, or an instant pinned
/// by a test (a spend across midnight UTC). Only day-bound rules read it.
#[derive(Clone, Default)]
pub struct Clock(Arc<std::sync::Mutex<Option<Timestamp>>>);

impl Clock {
    pub fn now(&self) -> Timestamp {
        self.0
            .lock()
            .map(|pinned| pinned.unwrap_or_else(Timestamp::now))
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// Pins the clock at `at` (`None`: the system clock again).
    pub fn pin(&self, at: Option<Timestamp>) {
        if let Ok(mut pinned) = self.0.lock() {
            *pinned = at;
        }
    }
}

impl Store {
    pub fn new(client: Client, table: &str, id_block: u64) -> Store {
        Store {
            client,
            table: Arc::from(table),
            ids: Arc::new(ids::IdAllocator::new(id_block)),
            purchase_memory: Arc::default(),
            clock: Clock::default(),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
