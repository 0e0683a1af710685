//! The DynamoDB client every function uses: the standard AWS configuration,
//! our retry policy, an endpoint resolver that remembers its answers and one
//! fixed user-agent (the SDK's own work per call is most of a purchase's
//! cost: docs/performance.md, "A purchase's instructions").

use super::{retry, Store};
use aws_runtime::user_agent::UserAgentInterceptor;
use aws_sdk_dynamodb::{
    config::{
        endpoint::{DefaultResolver, Endpoint, EndpointFuture, Params, ResolveEndpoint},
        Builder,
    },
    Client,
};
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{
            context::{
                BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
            },
            disable_interceptor, Intercept,
        },
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::Mutex;

impl Store {
    /// The DynamoDB client of every function, from the standard AWS
    /// configuration (region, credentials, `AWS_ENDPOINT_URL` locally).
    pub fn new_client(sdk: &aws_config::SdkConfig) -> Client {
        Client::from_conf(Store::client_config(sdk).build())
    }

    /// The DynamoDB client settings every function uses (tests add their
    /// interceptors to the same): our retry policy, [`Endpoints`] and
    /// [`FixedUserAgent`] on top of `sdk`.
    pub fn client_config(sdk: &aws_config::SdkConfig) -> Builder {
        Builder::from(sdk)
            .retry_config(retry::sdk_retry_config())
            .endpoint_resolver(Endpoints::default())
            .interceptor(FixedUserAgent)
    }
}

/// The `user-agent` every DynamoDB request carries (CloudTrail shows it).
pub const USER_AGENT: &str = concat!("kobatela/", env!("CARGO_PKG_VERSION"));

/// One fixed `user-agent` header in place of the SDK's two. The SDK builds
/// `user-agent` and `x-amz-user-agent` anew on every call (its version, the
/// OS, the features the call used: telemetry for AWS, nothing DynamoDB acts
/// on), and SigV4 signs the second, so SHA-256 runs over it too: about 60 k
/// of a purchase's instructions. `user-agent` itself is never signed.
#[derive(Debug)]
pub struct FixedUserAgent;

impl Intercept for FixedUserAgent {
    fn name(&self) -> &'static str {
        "FixedUserAgent"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(disable_interceptor::<UserAgentInterceptor>(
                "kobatela sends one fixed user-agent",
            ));
        Ok(())
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("user-agent", USER_AGENT);
        Ok(())
    }
}

/// Most endpoints resolved so far.
const REMEMBERED: usize = 8;

/// The SDK's endpoint resolver, remembering its last few answers. The SDK's
/// own resolver remembers one, but a purchase alternates two operations whose
/// endpoint parameters differ, so it ran the endpoint rules and parsed the
/// URL on every call (2 % of the process's CPU samples under perf).
#[derive(Debug, Default)]
pub struct Endpoints {
    rules: DefaultResolver,
    resolved: Mutex<Vec<(Params, Endpoint)>>,
}

impl Endpoints {
    fn remembered(&self, params: &Params) -> Option<Endpoint> {
        let resolved = self.resolved.lock().ok()?;
        resolved
            .iter()
            .find(|(known, _)| known == params)
            .map(|(_, endpoint)| endpoint.clone())
    }

    fn remember(&self, params: &Params, endpoint: &Endpoint) {
        if let Ok(mut resolved) = self.resolved.lock() {
            if resolved.len() >= REMEMBERED {
                resolved.remove(0);
            }
            resolved.push((params.clone(), endpoint.clone()));
        }
    }
}

impl ResolveEndpoint for Endpoints {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> EndpointFuture<'a> {
        if let Some(endpoint) = self.remembered(params) {
            return EndpointFuture::ready(Ok(endpoint));
        }
        EndpointFuture::new(async move {
            let endpoint = self.rules.resolve_endpoint(params).await?;
            self.remember(params, &endpoint);
            Ok(endpoint)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(endpoint: &str, fips: bool) -> Params {
        Params::builder()
            .region("eu-west-1")
            .use_fips(fips)
            .use_dual_stack(false)
            .endpoint(endpoint)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn answers_what_the_sdk_rules_answer_and_remembers_it() {
        let endpoints = Endpoints::default();
        for url in ["http://127.0.0.1:4566", "http://localhost:8000"] {
            let p = params(url, false);
            assert!(endpoints.remembered(&p).is_none());
            let resolved = endpoints.resolve_endpoint(&p).await.unwrap();
            let by_rules = DefaultResolver::new().resolve_endpoint(&p).await.unwrap();
            assert_eq!(resolved, by_rules);
            assert_eq!(resolved.url(), url);
            assert_eq!(endpoints.remembered(&p), Some(by_rules));
        }
        // Both stay: the two operations of a purchase no longer evict each other.
        assert!(endpoints
            .remembered(&params("http://127.0.0.1:4566", false))
            .is_some());
        assert_eq!(endpoints.resolved.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn errors_are_not_remembered() {
        let endpoints = Endpoints::default();
        let p = params("http://127.0.0.1:4566", true);
        let error = endpoints.resolve_endpoint(&p).await.unwrap_err();
        assert!(error.to_string().contains("FIPS"), "{error}");
        assert!(endpoints.resolved.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn remembers_a_bounded_number() {
        let endpoints = Endpoints::default();
        for port in 0..(REMEMBERED + 3) {
            let p = params(&format!("http://127.0.0.1:{}", 5000 + port), false);
            endpoints.resolve_endpoint(&p).await.unwrap();
        }
        let resolved = endpoints.resolved.lock().unwrap();
        assert_eq!(resolved.len(), REMEMBERED);
        // The oldest went first.
        assert_eq!(resolved[0].1.url(), "http://127.0.0.1:5003");
    }
}
