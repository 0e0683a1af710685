#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let policy = console::Policy::from_env().map_err(shared::app::refuse)?;
    lambda_http::run(shared::http::app(console::router(policy))).await
}
