#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::http::run_on_lambda(transactions::router).await
}
