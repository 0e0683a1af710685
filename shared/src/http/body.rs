//! Request bodies: read (at most 1 MiB), parsed as JSON, and validated field by
//! field so that a 422 names every bad field at once.
//!
//! Each body is one type: it derives `utoipa::ToSchema` (its entry in the
//! API document) and implements [`RequestBody`] (its parser), side by side,
//! with the limits of both taken from the same constants. A handler takes a
//! [`Body<T>`] and parses it after its permission checks, so a caller who may
//! not act learns nothing from the body's problems.

use super::MAX_BODY_BYTES;
use crate::{config::Config, domain::error::ErrorCode, error::AppError};
use axum::{
    extract::{FromRequest, Request},
    http::header,
};
use serde_json::{Map, Value};
use std::{fmt::Display, marker::PhantomData};

/// A JSON request body. Any `Content-Type` is read as JSON.
pub struct JsonBody(pub Value);

fn too_large() -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        "The request body is larger than 1 MiB.",
    )
}

fn invalid_json(e: serde_json::Error) -> AppError {
    AppError::new(
        ErrorCode::InvalidJson,
        format!("The request body is not valid JSON: {e}."),
    )
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = AppError;

    async fn from_request(request: Request, _state: &S) -> Result<JsonBody, AppError> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| too_large())?;
        if bytes.is_empty() {
            return Err(AppError::new(
                ErrorCode::InvalidJson,
                "The request body must be a JSON object.",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(invalid_json)
    }
}

/// A request body type: its schema is derived, its parser is [`RequestBody::read`].
pub trait RequestBody: utoipa::ToSchema + Sized {
    /// Reads every field, recording each problem in `f`; `None` when one is
    /// bad (then `f` holds its problem).
    fn read(f: &mut Fields<'_>, config: &Config) -> Option<Self>;
}

/// A request body of type `T`, read as JSON by the extractor (as [`JsonBody`]:
/// 413 when too large, 400 when not JSON) and parsed by [`Body::parse`].
pub struct Body<T> {
    json: Value,
    kind: PhantomData<fn() -> T>,
}

impl<S: Send + Sync, T> FromRequest<S> for Body<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, AppError> {
        let JsonBody(json) = JsonBody::from_request(request, state).await?;
        Ok(Body {
            json,
            kind: PhantomData,
        })
    }
}

impl<T: RequestBody> Body<T> {
    /// The body's fields as `T`, or a 422 naming every bad one.
    pub fn parse(&self, config: &Config) -> Result<T, AppError> {
        from_json(&self.json, config)
    }
}

/// Longest free-text `note` a body takes (an escrow transition's, a proof
/// decision's), and a delivery's `proof_url`.
pub const MAX_NOTE_CHARS: usize = 2000;

/// A body that may be left out (the escrow transitions'): its bytes are read
/// only by [`OptionalBody::parse`], after the handler's permission checks. No
/// bytes, or only white space, read as `{}`.
pub struct OptionalBody<T> {
    body: axum::body::Body,
    kind: PhantomData<fn() -> T>,
}

impl<S: Send + Sync, T> FromRequest<S> for OptionalBody<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, _state: &S) -> Result<OptionalBody<T>, AppError> {
        Ok(OptionalBody {
            body: request.into_body(),
            kind: PhantomData,
        })
    }
}

impl<T: RequestBody> OptionalBody<T> {
    /// The body's fields as `T` (413 when too large, 400 when not JSON), or a
    /// 422 naming every bad one.
    pub async fn parse(self, config: &Config) -> Result<T, AppError> {
        let bytes = axum::body::to_bytes(self.body, MAX_BODY_BYTES)
            .await
            .map_err(|_| too_large())?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return from_json(&Value::Object(Map::new()), config);
        }
        let json = serde_json::from_slice(&bytes).map_err(invalid_json)?;
        from_json(&json, config)
    }
}

/// `json` (a body, or an object inside one) as `T`, or a 422 naming every
/// bad field.
pub fn from_json<T: RequestBody>(json: &Value, config: &Config) -> Result<T, AppError> {
    let mut f = Fields::of(json)?;
    let parsed = T::read(&mut f, config);
    f.finish(|| parsed)
}

/// Reads the fields of a JSON object, collecting every problem.
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    errors: Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub fn of(body: &'a Value) -> Result<Fields<'a>, AppError> {
        match body {
            Value::Object(object) => Ok(Fields {
                object,
                errors: Map::new(),
            }),
            _ => Err(AppError::field("body", "must be a JSON object")),
        }
    }

    /// The field's value; absent and `null` are the same.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|v| !v.is_null())
    }

    pub fn error(&mut self, name: &str, problem: impl Display) {
        self.errors
            .insert(name.to_string(), Value::String(problem.to_string()));
    }

    /// A required field: None (and an error recorded) if missing or bad.
    pub fn required<T, E: Display>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&Value) -> Result<T, E>,
    ) -> Option<T> {
        match self.value(name) {
            None => {
                self.error(name, "is required");
                None
            }
            Some(value) => self.parse(name, value, parse),
        }
    }

    /// An optional field: `Some(None)` if absent, None (and an error) if bad.
    pub fn optional<T, E: Display>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&Value) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match self.value(name) {
            None => Some(None),
            Some(value) => self.parse(name, value, parse).map(Some),
        }
    }

    fn parse<T, E: Display>(
        &mut self,
        name: &str,
        value: &Value,
        parse: impl FnOnce(&Value) -> Result<T, E>,
    ) -> Option<T> {
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(problem) => {
                self.error(name, problem);
                None
            }
        }
    }

    /// The command built from the parsed fields, or a 422 naming every bad one.
    /// `build` sees every field parsed (each `?` on them succeeds).
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, AppError> {
        if !self.errors.is_empty() {
            return Err(AppError::validation(self.errors));
        }
        build().ok_or_else(|| AppError::internal("validated fields did not build"))
    }
}

/// A 422 for bad query values, as `(name, problem)` pairs.
pub fn query_errors(problems: Vec<(&'static str, &'static str)>) -> AppError {
    AppError::validation(
        problems
            .into_iter()
            .map(|(name, problem)| (name.to_string(), Value::String(problem.to_string())))
            .collect(),
    )
}

/// Field parsers shared by the functions.
pub mod parse {
    use crate::domain::{
        currency::{Currency, CurrencyList},
        time::Timestamp,
    };
    use serde_json::Value;

    /// A string of `min..=max` characters (not blank when `min > 0`).
    pub fn text(min: usize, max: usize) -> impl Fn(&Value) -> Result<String, String> {
        move |value| {
            let text = value.as_str().ok_or("must be a string")?;
            let count = text.chars().count();
            if count < min || count > max || (min > 0 && text.trim().is_empty()) {
                return Err(format!("must be {min} to {max} characters, not blank"));
            }
            if text.chars().any(char::is_control) {
                return Err("must not contain control characters".into());
            }
            Ok(text.to_string())
        }
    }

    pub fn boolean(value: &Value) -> Result<bool, &'static str> {
        value.as_bool().ok_or("must be true or false")
    }

    pub fn timestamp(value: &Value) -> Result<Timestamp, String> {
        let text = value
            .as_str()
            .ok_or("must be an RFC 3339 timestamp string")?;
        Timestamp::parse(text).map_err(|e| e.to_string())
    }

    /// An upload's declared length (`domain::upload::content_length`).
    pub fn upload_length(value: &Value) -> Result<u64, &'static str> {
        value
            .as_u64()
            .ok_or("must be a whole number of bytes from 1 to 10485760")
            .and_then(crate::domain::upload::content_length)
    }

    /// An upload's declared SHA-256 (`domain::upload::sha256_hex`).
    pub fn sha256(value: &Value) -> Result<String, &'static str> {
        crate::domain::upload::sha256_hex(value.as_str().unwrap_or_default())
    }

    pub fn currency(accepted: &CurrencyList) -> impl Fn(&Value) -> Result<Currency, String> + '_ {
        move |value| {
            let text = value.as_str().ok_or("must be a currency code string")?;
            Currency::parse(text, accepted).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Id;
    use serde_json::json;

    #[test]
    fn collects_every_bad_field() {
        let body = json!({"a": "x", "b": null, "c": 3});
        let mut f = Fields::of(&body).unwrap();
        let a = f.required("a", Id::from_json);
        let b = f.required("b", Id::from_json);
        let c = f.required("c", Id::from_json);
        let d = f.optional("d", Id::from_json);
        assert!(a.is_none() && b.is_none());
        assert_eq!(c, Id::new(3));
        assert_eq!(d, Some(None));
        let err = f.finish(|| Some(())).unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError);
        let fields = &err.details.unwrap()["fields"];
        assert_eq!(fields["a"], "must be a positive integer id");
        assert_eq!(fields["b"], "is required");
        assert!(fields.get("c").is_none());
    }

    #[test]
    fn builds_when_all_fields_parse() {
        let body = json!({"id": 4, "name": "amina"});
        let mut f = Fields::of(&body).unwrap();
        let id = f.required("id", Id::from_json);
        let name = f.required("name", parse::text(1, 10));
        let built = f.finish(|| Some((id?, name?))).unwrap();
        assert_eq!(built, (Id::new(4).unwrap(), "amina".to_string()));
    }

    #[test]
    fn body_must_be_an_object() {
        for body in [json!([]), json!("x"), json!(1), json!(null)] {
            let err = Fields::of(&body).err().unwrap();
            assert_eq!(
                err.details.unwrap()["fields"]["body"],
                "must be a JSON object"
            );
        }
    }

    #[test]
    fn text_bounds() {
        let t = parse::text(1, 3);
        assert!(t(&json!("abc")).is_ok());
        assert!(t(&json!("")).is_err());
        assert!(t(&json!("  ")).is_err());
        assert!(t(&json!("abcd")).is_err());
        assert!(t(&json!(5)).is_err());
        assert!(t(&json!("a\nb")).is_err());
    }
}
