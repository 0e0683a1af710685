//! Extractors for what handlers need from a request: the authenticated caller,
//! an id from the path, query values, the `Idempotency-Key`.

use crate::{
    app::SharedState,
    domain::{access::Principal, error::ErrorCode, ids::Id},
    error::AppError,
    http::body::query_errors,
    store::{
        idempotency::valid_key,
        list::{KeyPageRequest, PageRequest},
    },
};
use axum::{
    extract::{FromRef, FromRequestParts, Path, Query},
    http::{header, request::Parts},
};
use std::collections::HashMap;

/// Any router state that holds the shared state (the proofs function's
/// carries its S3 adapter too) authenticates the same way.
impl<S> FromRequestParts<S> for Principal
where
    SharedState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Principal, AppError> {
        let state = SharedState::from_ref(state);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        state.auth.authenticate(&state.store, header).await
    }
}

/// The `{id}` of a route, as a positive integer.
pub struct PathId(pub Id);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathId, AppError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::field("id", "must be a positive integer id"))?;
        Id::parse(&text)
            .map(PathId)
            .map_err(|problem| AppError::field("id", problem))
    }
}

/// The query string as name → value (the last one wins).
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<QueryMap, AppError> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::field("query", "is not a valid query string"))?;
        Ok(QueryMap(map))
    }
}

/// A list route's query string, read filter by filter: every bad value is
/// collected, and [`ListQuery::page`] answers one 422 naming each of them
/// (the page's `limit` and `cursor` included).
pub struct ListQuery {
    values: HashMap<String, String>,
    problems: Vec<(&'static str, &'static str)>,
}

impl ListQuery {
    pub fn new(values: HashMap<String, String>) -> ListQuery {
        ListQuery {
            values,
            problems: Vec::new(),
        }
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// An optional id filter.
    pub fn id(&mut self, name: &'static str) -> Option<Id> {
        self.parsed(
            name,
            |text| Id::parse(text).ok(),
            "must be a positive integer id",
        )
    }

    /// An optional filter read by `parse`; `problem` names what it accepts.
    pub fn parsed<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
        problem: &'static str,
    ) -> Option<T> {
        let value = self.value(name)?;
        let parsed = parse(value);
        if parsed.is_none() {
            self.problems.push((name, problem));
        }
        parsed
    }

    /// Records that `name` is missing where the caller must give it.
    pub fn required_missing(&mut self, name: &'static str) {
        self.problems.push((name, "is required"));
    }

    /// The page (`limit`, `cursor` by id), or the 422 naming every bad value.
    pub fn page(self) -> Result<PageRequest, AppError> {
        let page = PageRequest::parse(self.value("limit"), self.value("cursor"));
        self.finish(page)
    }

    /// The page of a list sorted by a text key; `valid` checks a cursor.
    pub fn key_page(self, valid: fn(&str) -> bool) -> Result<KeyPageRequest, AppError> {
        let page = KeyPageRequest::parse(self.value("limit"), self.value("cursor"), valid);
        self.finish(page)
    }

    fn finish<P>(
        mut self,
        page: Result<P, Vec<(&'static str, &'static str)>>,
    ) -> Result<P, AppError> {
        match page {
            Ok(page) if self.problems.is_empty() => Ok(page),
            Ok(_) => Err(query_errors(self.problems)),
            Err(more) => {
                self.problems.extend(more);
                Err(query_errors(self.problems))
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ListQuery, AppError> {
        let QueryMap(values) = QueryMap::from_request_parts(parts, state).await?;
        Ok(ListQuery::new(values))
    }
}

/// The `Idempotency-Key` header, required on money-moving routes.
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<IdempotencyKey, AppError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Err(AppError::new(
                ErrorCode::IdempotencyKeyRequired,
                "This route moves money: send an Idempotency-Key header.",
            ));
        };
        match value.to_str() {
            Ok(key) if valid_key(key) => Ok(IdempotencyKey(key.to_string())),
            _ => Err(AppError::field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )),
        }
    }
}
