//! Every response carries `x-request-id`: API Gateway's request id on Lambda,
//! a generated one locally. Logs of the request carry it too.

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};
use lambda_http::{request::RequestContext, RequestExt};
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

fn request_id(request: &Request) -> String {
    let from_gateway = match request.extensions().request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
        _ => None,
    };
    from_gateway
        .or_else(|| {
            request
                .extensions()
                .lambda_context_ref()
                .map(|c| c.request_id.clone())
        })
        .filter(|id| HeaderValue::from_str(id).is_ok())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

pub async fn middleware(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    async move {
        let mut response = next.run(request).await;
        tracing::info!(status = response.status().as_u16(), "answered");
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(HEADER, value);
        }
        response
    }
    .instrument(span)
    .await
}
