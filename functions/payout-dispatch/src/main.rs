use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let dispatcher = payout_dispatch::Dispatcher::for_lambda().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Event>| {
        let dispatcher = dispatcher.clone();
        async move { Ok::<_, lambda_runtime::Error>(dispatcher.handle(event.payload).await) }
    }))
    .await
}
