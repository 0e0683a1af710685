// The sweep's future (mandate expiry, then escrow transitions through the
// SDK's orchestrator) is deep enough that computing the layout of this async
// main can pass rustc's default query depth of 128 on a fresh build.
#![recursion_limit = "256"]

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = shared::app::store_for_lambda().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<EventBridgeEvent>| {
        let store = store.clone();
        async move {
            mandate_expiry::handle(&store, event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
