//! The API document (`GET /openapi.json`): OpenAPI 3.1, built from the code.
//!
//! Answer types derive (or implement once, where they serialise by hand)
//! `utoipa::ToSchema`; so does each request body's type, whose parser is
//! beside it (`crate::http::body::RequestBody`). Every
//! function crate declares each route once, as a [`Route`] that carries its
//! handler, in a `pub fn routes()`: [`router`] builds the function's axum
//! router from that list, and the `openapi` tool merges every list into the
//! document with [`document`]. A route's error statuses come from the
//! [`ErrorCode`]s it lists, so the statuses the document promises are the
//! ones the code maps those codes to.

use crate::domain::error::ErrorCode;
use axum::{
    handler::Handler,
    routing::{on, MethodFilter, MethodRouter},
    Router,
};
use std::collections::BTreeMap;
use utoipa::openapi::{
    content::ContentBuilder,
    header::HeaderBuilder,
    path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem},
    request_body::RequestBodyBuilder,
    response::{Response, ResponseBuilder},
    schema::{
        AllOfBuilder, ArrayBuilder, ComponentsBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
        Schema, SchemaFormat, Type,
    },
    security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required,
};
use utoipa::ToSchema;

/// Name of the bearer security scheme.
pub const BEARER: &str = "bearer";
/// Name of the error envelope schema.
pub const ERROR_SCHEMA: &str = "Error";
/// Name of the schema of money inputs (a number or a string).
pub const MONEY_INPUT: &str = "MoneyInput";

// ---------------------------------------------------------------------------
// Leaf schemas, shared by the manual `ToSchema` impls of the domain types

/// A positive integer id.
pub fn id_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(crate::domain::ids::MAX_ID as f64))
}

/// A string, optionally with a pattern and a length range.
pub fn string_schema(pattern: Option<&str>, length: Option<(usize, usize)>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(pattern)
        .min_length(length.map(|l| l.0))
        .max_length(length.map(|l| l.1))
}

/// Money as answered: a decimal string with exactly two places.
pub fn money_answer_schema(pattern: &str) -> ObjectBuilder {
    string_schema(Some(pattern), None).examples(["10.00"])
}

/// An RFC 3339 timestamp.
pub fn timestamp_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

/// Money as accepted: a JSON number or a string, > 0, at most 2 places.
fn money_input_schema() -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(0))
                // 999999999999999.99 is no f64 (it rounds to 1e15, which is
                // refused); below 1e15 in cents says the same exactly.
                .exclusive_maximum(Some(1e15))
                .multiple_of(Some(0.01)),
        )
        .item(string_schema(
            // A sub-unit amount has its leading zero: ".5" is refused.
            Some(r"^(0*[1-9][0-9]{0,14}(\.[0-9]{1,2})?|0+\.(0[1-9]|[1-9][0-9]?))$"),
            None,
        ))
        .description(Some(
            "A decimal > 0 with at most 2 places, at most 999999999999999.99: a JSON number or a string.",
        ))
        .into()
}

/// Documentation type of a money input field (`amount`, limits, …).
pub struct MoneyInput;

impl utoipa::PartialSchema for MoneyInput {
    fn schema() -> RefOr<Schema> {
        money_input_schema().into()
    }
}
impl ToSchema for MoneyInput {}

/// Documentation type of an id input field (a positive integer).
pub type IdInput = crate::domain::ids::Id;

/// Documentation type of a timestamp input: RFC 3339, an offset is optional
/// (UTC if absent).
pub struct TimestampInput;

impl utoipa::PartialSchema for TimestampInput {
    fn schema() -> RefOr<Schema> {
        string_schema(None, Some((1, 64)))
            .description(Some("RFC 3339; without an offset, UTC."))
            .examples(["2030-01-01T00:00:00Z"])
            .into()
    }
}
impl ToSchema for TimestampInput {}

/// Documentation type of a currency input: ISO-4217, any case.
pub struct CurrencyInput;

impl utoipa::PartialSchema for CurrencyInput {
    fn schema() -> RefOr<Schema> {
        string_schema(Some("^[A-Za-z]{3}$"), None)
            .description(Some(
                "An ISO-4217 code of the configured list (default USD, EUR); lower case is accepted.",
            ))
            .examples(["USD"])
            .into()
    }
}
impl ToSchema for CurrencyInput {}

/// `{"items": [T], "next_cursor": string | null}`.
pub fn page_schema(item: RefOr<Schema>) -> Schema {
    ObjectBuilder::new()
        .property("items", ArrayBuilder::new().items(item))
        .required("items")
        .property(
            "next_cursor",
            ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ])),
        )
        .required("next_cursor")
        .into()
}

/// The error envelope `{"error": {"code", "message", "details"?}}`.
fn error_schema() -> Schema {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    ObjectBuilder::new()
        .property(
            "error",
            ObjectBuilder::new()
                .property(
                    "code",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(codes)),
                )
                .required("code")
                .property("message", ObjectBuilder::new().schema_type(Type::String))
                .required("message")
                .property(
                    "details",
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .description(Some("For VALIDATION_ERROR, `fields` names each bad field.")),
                ),
        )
        .required("error")
        .into()
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// The schema of `T` in an answer or a body: a reference, with `T` (and
/// what it refers to) added to `schemas`.
fn collect<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    T::schemas(schemas);
    let name = T::name().to_string();
    schemas.push((name.clone(), T::schema()));
    schema_ref(&name)
}

// ---------------------------------------------------------------------------
// The route table

/// What a route answers on success.
enum Answer {
    Json(u16, Box<RefOr<Schema>>, &'static str),
    Empty(u16, &'static str),
}

/// One route: method, path, what it reads, what it answers, and the handler
/// that serves it in a router whose state is `S`.
pub struct Route<S = crate::SharedState> {
    handler: MethodRouter<S>,
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    authenticated: bool,
    idempotent: bool,
    body: Option<RefOr<Schema>>,
    body_required: bool,
    parameters: Vec<utoipa::openapi::path::Parameter>,
    answers: Vec<Answer>,
    errors: Vec<ErrorCode>,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl<S: Clone + Send + Sync + 'static> Route<S> {
    fn new<H: Handler<T, S>, T: 'static>(
        method: HttpMethod,
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Route<S> {
        let filter = match method {
            HttpMethod::Get => MethodFilter::GET,
            HttpMethod::Post => MethodFilter::POST,
            HttpMethod::Patch => MethodFilter::PATCH,
            HttpMethod::Delete => MethodFilter::DELETE,
            HttpMethod::Put => MethodFilter::PUT,
            HttpMethod::Head => MethodFilter::HEAD,
            HttpMethod::Options => MethodFilter::OPTIONS,
            HttpMethod::Trace => MethodFilter::TRACE,
        };
        let mut route = Route {
            handler: on(filter, handler),
            method,
            path,
            summary,
            authenticated: true,
            idempotent: false,
            body: None,
            body_required: false,
            parameters: Vec::new(),
            answers: Vec::new(),
            errors: Vec::new(),
            schemas: Vec::new(),
        };
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                route = route.path_param(name);
            }
        }
        route
    }

    pub fn get<H: Handler<T, S>, T: 'static>(
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Route<S> {
        Route::new(HttpMethod::Get, path, summary, handler)
    }

    pub fn post<H: Handler<T, S>, T: 'static>(
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Route<S> {
        Route::new(HttpMethod::Post, path, summary, handler)
    }

    pub fn patch<H: Handler<T, S>, T: 'static>(
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Route<S> {
        Route::new(HttpMethod::Patch, path, summary, handler)
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(
        path: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Route<S> {
        Route::new(HttpMethod::Delete, path, summary, handler)
    }

    pub fn method(&self) -> &'static str {
        match self.method {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Head => "HEAD",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Trace => "TRACE",
        }
    }

    pub fn path(&self) -> &'static str {
        self.path
    }

    /// No API key (`GET /health`, `GET /openapi.json`, the PSP webhook).
    pub fn public(mut self) -> Route<S> {
        self.authenticated = false;
        self
    }

    /// A money-moving POST: `Idempotency-Key` required.
    pub fn idempotent(mut self) -> Route<S> {
        self.idempotent = true;
        self.errors.extend([
            ErrorCode::IdempotencyKeyRequired,
            ErrorCode::IdempotencyKeyReused,
        ]);
        self.parameters.push(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(
                    "1–255 visible ASCII characters; the same key and body replay the first answer.",
                ))
                .schema(Some(string_schema(Some("^[\\x21-\\x7E]{1,255}$"), Some((1, 255)))))
                .build(),
        );
        self
    }

    /// A request header (the PSP webhook's signature headers).
    pub fn header(
        mut self,
        name: &str,
        required: bool,
        description: &str,
        schema: impl Into<RefOr<Schema>>,
    ) -> Route<S> {
        self.parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(if required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(description))
                .schema(Some(schema))
                .build(),
        );
        self
    }

    /// A JSON body described by `T` (required).
    pub fn body<T: ToSchema>(mut self) -> Route<S> {
        self.body = Some(collect::<T>(&mut self.schemas));
        self.body_required = true;
        self.errors.extend([
            ErrorCode::InvalidJson,
            ErrorCode::PayloadTooLarge,
            ErrorCode::ValidationError,
        ]);
        self
    }

    /// A JSON body described by `T` that may be left out.
    pub fn optional_body<T: ToSchema>(self) -> Route<S> {
        let mut route = self.body::<T>();
        route.body_required = false;
        route
    }

    fn path_param(mut self, name: &str) -> Route<S> {
        // `{id}` segments are positive integer ids; other names are text.
        let schema: Schema = if name == "id" {
            id_schema().into()
        } else {
            string_schema(None, Some((1, 200))).into()
        };
        self.parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(schema))
                .build(),
        );
        if !self.errors.contains(&ErrorCode::ValidationError) {
            self.errors.push(ErrorCode::ValidationError);
        }
        self
    }

    /// Replaces the schema of the path parameter `name` (text by default).
    pub fn path_schema(mut self, name: &str, schema: impl Into<RefOr<Schema>>) -> Route<S> {
        let schema = schema.into();
        for parameter in &mut self.parameters {
            if parameter.name == name && parameter.parameter_in == ParameterIn::Path {
                parameter.schema = Some(schema.clone());
            }
        }
        self
    }

    /// A query parameter.
    pub fn query(
        mut self,
        name: &str,
        schema: impl Into<RefOr<Schema>>,
        required: bool,
    ) -> Route<S> {
        self.parameters.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(if required {
                    Required::True
                } else {
                    Required::False
                })
                .schema(Some(schema))
                .build(),
        );
        if !self.errors.contains(&ErrorCode::ValidationError) {
            self.errors.push(ErrorCode::ValidationError);
        }
        self
    }

    /// An id filter in the query string.
    pub fn query_id(self, name: &str, required: bool) -> Route<S> {
        self.query(name, id_schema(), required)
    }

    /// A list: `limit` (1–100) and `cursor`; answers `{items: [T], next_cursor}`.
    pub fn list<T: ToSchema>(self) -> Route<S> {
        let mut route = self
            .query(
                "limit",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(crate::store::list::MAX_LIMIT as f64)),
                false,
            )
            .query("cursor", string_schema(None, Some((1, 200))), false);
        let item = collect::<T>(&mut route.schemas);
        route.answers.push(Answer::Json(
            200,
            Box::new(page_schema(item).into()),
            "One page, and the cursor of the next.",
        ));
        route
    }

    /// Answers `status` with a `T`.
    pub fn answer<T: ToSchema>(mut self, status: u16, description: &'static str) -> Route<S> {
        let schema = collect::<T>(&mut self.schemas);
        self.answers
            .push(Answer::Json(status, Box::new(schema), description));
        self
    }

    /// Answers `status` with an inline schema.
    pub fn answer_schema(
        mut self,
        status: u16,
        schema: impl Into<RefOr<Schema>>,
        description: &'static str,
    ) -> Route<S> {
        self.answers
            .push(Answer::Json(status, Box::new(schema.into()), description));
        self
    }

    /// Answers `status` with no body.
    pub fn empty(mut self, status: u16, description: &'static str) -> Route<S> {
        self.answers.push(Answer::Empty(status, description));
        self
    }

    /// The domain refusals this route can answer (besides those of auth,
    /// bodies, idempotency and a busy store, which the builder adds).
    pub fn errors(mut self, codes: &[ErrorCode]) -> Route<S> {
        self.errors.extend_from_slice(codes);
        self
    }

    /// The route's entry in the document, without its handler: the
    /// document needs no state, so the routes of functions whose routers
    /// hold different states merge into one list.
    pub fn entry(self) -> Route<()> {
        Route {
            handler: MethodRouter::new(),
            method: self.method,
            path: self.path,
            summary: self.summary,
            authenticated: self.authenticated,
            idempotent: self.idempotent,
            body: self.body,
            body_required: self.body_required,
            parameters: self.parameters,
            answers: self.answers,
            errors: self.errors,
            schemas: self.schemas,
        }
    }

    fn operation(&self) -> Operation {
        let mut errors = self.errors.clone();
        if self.authenticated {
            errors.extend([
                ErrorCode::Unauthorized,
                ErrorCode::Forbidden,
                ErrorCode::UserInactive,
                ErrorCode::ServiceBusy,
            ]);
        }
        // Status → codes, in status order.
        let mut by_status: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
        for code in errors {
            let codes = by_status.entry(code.status()).or_default();
            if !codes.contains(&code.as_str()) {
                codes.push(code.as_str());
            }
        }
        let mut responses = utoipa::openapi::ResponsesBuilder::new();
        for answer in &self.answers {
            responses = match answer {
                Answer::Json(status, schema, description) => responses.response(
                    status.to_string(),
                    json_response(description, (**schema).clone()),
                ),
                Answer::Empty(status, description) => responses.response(
                    status.to_string(),
                    ResponseBuilder::new().description(*description).build(),
                ),
            };
        }
        for (status, codes) in by_status {
            let description = format!("Error codes: {}.", codes.join(", "));
            let mut response = ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(schema_ref(ERROR_SCHEMA)))
                    .build(),
            );
            if status == 503 {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(string_schema(Some("^[0-9]+$"), None))
                        .description(Some("Seconds to wait before retrying."))
                        .build(),
                );
            }
            responses = responses.response(status.to_string(), response.build());
        }
        let mut operation = OperationBuilder::new()
            .summary(Some(self.summary))
            .parameters(Some(self.parameters.clone()))
            .responses(responses.build());
        if let Some(body) = &self.body {
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(body.clone())).build(),
                    )
                    .required(Some(if self.body_required {
                        Required::True
                    } else {
                        Required::False
                    }))
                    .build(),
            ));
        }
        operation = if self.authenticated {
            operation.security(SecurityRequirement::new::<_, _, String>(BEARER, []))
        } else {
            // An empty requirement list: no authentication.
            operation.securities(Some(Vec::<SecurityRequirement>::new()))
        };
        operation.build()
    }
}

fn json_response(description: &str, schema: RefOr<Schema>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

/// A `{status: <one of values>}` answer (`/spend/allow`, `/allowlist`, …).
pub fn status_schema(values: &[&str]) -> Schema {
    ObjectBuilder::new()
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values.iter().copied())),
        )
        .required("status")
        .into()
}

/// An object schema with the given required properties.
pub fn object(properties: &[(&str, RefOr<Schema>)]) -> Schema {
    let mut object = ObjectBuilder::new();
    for (name, schema) in properties {
        object = object.property(*name, schema.clone()).required(*name);
    }
    object.into()
}

/// `T`, with extra required properties (e.g. the key secret on creation).
pub fn extended<T: ToSchema>(extra: &[(&str, RefOr<Schema>)]) -> Schema {
    AllOfBuilder::new()
        .item(schema_ref(&T::name()))
        .item(object(extra))
        .into()
}

/// A function's axum router from its routes (routes on one path share it).
pub fn router<S: Clone + Send + Sync + 'static>(routes: Vec<Route<S>>, state: S) -> Router {
    routes
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.handler)
        })
        .with_state(state)
}

/// The whole document from every function's routes.
pub fn document<S: Clone + Send + Sync + 'static>(
    routes: impl IntoIterator<Item = Route<S>>,
) -> OpenApi {
    let mut paths: BTreeMap<&'static str, Vec<(HttpMethod, Operation)>> = BTreeMap::new();
    let mut schemas: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    for route in routes {
        for (name, schema) in &route.schemas {
            schemas.insert(name.clone(), schema.clone());
        }
        paths
            .entry(route.path)
            .or_default()
            .push((route.method.clone(), route.operation()));
    }
    let mut builder = PathsBuilder::new();
    for (path, operations) in paths {
        let mut operations = operations.into_iter();
        let (method, first) = operations.next().expect("a path has an operation");
        let mut item = PathItem::new(method, first);
        for (method, operation) in operations {
            item.merge_operations(PathItem::new(method, operation));
        }
        builder = builder.path(path, item);
    }
    schemas.insert(ERROR_SCHEMA.to_string(), error_schema().into());
    let mut components = ComponentsBuilder::new().security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("`Authorization: Bearer <api key>`"))
                .build(),
        ),
    );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Kobatela API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The wire contract of the Kobatela payments API (see docs/api.md). \
                     Money is answered as a string with 2 places and accepted as a number or a string.",
                ))
                .build(),
        )
        .paths(builder.build())
        .components(Some(components.build()))
        .build()
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn to_json(document: &OpenApi) -> String {
    let mut text = document.to_pretty_json().expect("the document serialises");
    text.push('\n');
    text
}

/// Text of `MIN` to `MAX` characters, not blank (when `MIN > 0`), without
/// control characters: what `body::parse::text` accepts.
pub fn text<const MIN: usize, const MAX: usize>() -> ObjectBuilder {
    let pattern = if MIN > 0 {
        r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    } else {
        r"^[^\x00-\x1f\x7f-\x9f]*$"
    };
    string_schema(Some(pattern), Some((MIN, MAX)))
}

/// An e-mail address as `user::parse_email` accepts it.
pub fn email() -> ObjectBuilder {
    string_schema(
        Some(
            r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        ),
        Some((3, crate::domain::user::MAX_EMAIL_CHARS)),
    )
}

/// A string enum.
pub fn one_of_strings(values: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
}

// ---------------------------------------------------------------------------
// The domain's value types in the document. Their schemas live here, with
// the document, so that the domain imports nothing above it.

/// In the API document: an upper-case ISO-4217 code (answers).
impl utoipa::PartialSchema for crate::domain::currency::Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(Some("^[A-Z]{3}$"), None).into()
    }
}
impl utoipa::ToSchema for crate::domain::currency::Currency {}

/// In the API document: answered as a string with exactly 2 places.
impl utoipa::PartialSchema for crate::domain::money::Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        money_answer_schema(r"^-?[0-9]+\.[0-9]{2}$").into()
    }
}
impl utoipa::ToSchema for crate::domain::money::Money {}

/// In the API document: answered as a positive string with exactly 2 places.
impl utoipa::PartialSchema for crate::domain::money::Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        money_answer_schema(r"^[0-9]+\.[0-9]{2}$").into()
    }
}
impl utoipa::ToSchema for crate::domain::money::Amount {}

/// In the API document: RFC 3339 text.
impl utoipa::PartialSchema for crate::domain::time::Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        timestamp_schema().into()
    }
}
impl utoipa::ToSchema for crate::domain::time::Timestamp {}

/// In the API document: a positive integer.
impl utoipa::PartialSchema for crate::domain::ids::Id {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        id_schema().into()
    }
}
impl utoipa::ToSchema for crate::domain::ids::Id {}
