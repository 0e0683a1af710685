#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let state = psp_webhook::Webhook::from_env()
        .await
        .map_err(shared::app::refuse)?;
    lambda_http::run(shared::http::app(psp_webhook::router(state))).await
}
