use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = shared::app::store_for_lambda().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<EventBridgeEvent>| {
        let store = store.clone();
        async move {
            ledger_check::handle(&store, event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
