use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let publisher = domain_events::Publisher::for_lambda().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Event>| {
        let publisher = publisher.clone();
        async move {
            Ok::<_, lambda_runtime::Error>(domain_events::handle(&publisher, event.payload).await)
        }
    }))
    .await
}
