//! The HTTP client of the running `kobatela-local`: [`Api`] (one API key)
//! and the [`Reply`] it reads whole; [`env`] for the settings
//! `local/integration.sh` exports.

use reqwest::{header::HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with `make test`"))
}

/// A client of the API with one key.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    /// Reads a response of an in-process router whole.
    pub async fn read(response: axum::response::Response) -> Reply {
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        let mut headers = HeaderMap::new();
        for (name, value) in response.headers() {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
                reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.insert(name, value);
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8(bytes.to_vec()).expect("utf-8 body");
        Reply::new(status, headers, text)
    }

    /// A reply whose body is `text` (JSON, or `Null` if it is not).
    fn new(status: StatusCode, headers: HeaderMap, text: String) -> Reply {
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    /// The error code of an error reply ("" if none).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn id(&self) -> u64 {
        self.body["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no id in {} {}", self.status, self.text))
    }

    /// Asserts the status, showing the body if it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected reply: {}",
            self.text
        );
        self
    }

    /// Asserts an error reply: status, code, and the contract's shape.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Reply {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected reply: {}",
            self.text
        );
        assert_eq!(self.code(), code, "unexpected reply: {}", self.text);
        assert!(self.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        self
    }
}

impl Api {
    pub fn admin() -> Api {
        Api::with_key(Some(env("KOBATELA_ADMIN_KEY")))
    }

    pub fn anonymous() -> Api {
        Api::with_key(None)
    }

    pub fn with_key(key: Option<String>) -> Api {
        Api {
            http: http_client(),
            base: env("KOBATELA_BASE_URL"),
            key,
        }
    }

    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("kobatela-local answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body reads");
        Reply::new(status, headers, text)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, &[], Some(body.to_string()))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, &[], None).await
    }

    /// `POST /spend/purchases` with an `Idempotency-Key`.
    pub async fn purchase(&self, key: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            "/spend/purchases",
            &[("idempotency-key", key)],
            Some(body.to_string()),
        )
        .await
    }
}

impl Api {
    /// `POST /escrows/{id}/deposit` with an `Idempotency-Key`.
    pub async fn deposit(&self, escrow: u64, key: &str, amount: &str) -> Reply {
        self.send(
            Method::POST,
            &format!("/escrows/{escrow}/deposit"),
            &[("idempotency-key", key)],
            Some(json!({ "amount": amount }).to_string()),
        )
        .await
    }

    /// `POST /escrows/{id}/{action}` with no body.
    pub async fn escrow_action(&self, escrow: u64, action: &str) -> Reply {
        self.send(
            Method::POST,
            &format!("/escrows/{escrow}/{action}"),
            &[],
            None,
        )
        .await
    }

    /// `PATCH /users/{id}` `{is_active}`.
    pub async fn set_user_active(&self, user: u64, active: bool) -> Reply {
        self.send(
            Method::PATCH,
            &format!("/users/{user}"),
            &[],
            Some(json!({ "is_active": active }).to_string()),
        )
        .await
    }
}

/// An HTTP client for the tests: reqwest's rustls comes without a crypto
/// provider in this workspace (the PSP adapter hands it the AWS SDK's), so
/// it is built with the same TLS setup.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(shared::psp::tls_config(false).expect("a TLS setup"))
        .build()
        .expect("an HTTP client")
}
