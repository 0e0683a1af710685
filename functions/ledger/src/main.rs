#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = ledger::LedgerState::for_lambda().await?;
    lambda_http::run(shared::http::app(ledger::router(state))).await
}
