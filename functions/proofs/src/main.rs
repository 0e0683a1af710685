#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = proofs::ProofsState::for_lambda().await?;
    lambda_http::run(shared::http::app(proofs::router(state))).await
}
