use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let store = shared::app::store_for_lambda().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let store = store.clone();
        async move { Ok::<_, lambda_runtime::Error>(psp_events::handle(&store, event.payload).await) }
    }))
    .await
}
