//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::routes;
use llmops_core::error::{FieldError, PROBLEM_JSON, Problem};
use std::collections::BTreeMap;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response};
use utoipa::{IntoResponses, Modify, OpenApi};

fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .into()
}

fn responses(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(code, desc)| ((*code).to_string(), problem(desc)))
        .collect()
}

/// 401, 403 and 429 of authenticated tenant routes.
pub struct AuthErrors;
impl IntoResponses for AuthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            ("401", "Missing, malformed, expired or revoked credentials"),
            ("403", "Missing scope, or tenant suspended"),
            (
                "429",
                "Rate or concurrency limit reached; see `retry-after` and `x-ratelimit-*`",
            ),
        ])
    }
}

/// 401/403 of operator routes.
pub struct OperatorErrors;
impl IntoResponses for OperatorErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            ("401", "Missing or wrong operator token"),
            (
                "403",
                "The operator API is disabled (no operator token configured)",
            ),
        ])
    }
}

/// 400, 413, 415, 422.
pub struct InputErrors;
impl IntoResponses for InputErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            ("400", "Malformed JSON"),
            ("413", "Body larger than the limit"),
            ("415", "Body is not JSON"),
            (
                "422",
                "Invalid fields, unknown fields or an invalid id (see `errors`)",
            ),
        ])
    }
}

pub struct NotFound;
impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[(
            "404",
            "No such object for this tenant (objects of other tenants are not found either)",
        )])
    }
}

/// 500 and 503 (with `retry-after`).
pub struct Retryable;
impl IntoResponses for Retryable {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            ("500", "Internal error; the body names the request id"),
            (
                "503",
                "A dependency is down; retry after `retry-after` seconds",
            ),
        ])
    }
}

struct Security;
impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`sk-llmops-…`) or a JWT from `POST /v1/auth/login`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The operator token from the configuration"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "llmops",
        description = "Multi-tenant LLMOps platform API. Errors are RFC 9457 `application/problem+json`; authenticated responses carry OpenAI's `x-ratelimit-*` headers.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
        routes::auth::login,
        routes::tenant::get_tenant,
        routes::api_keys::create_key,
        routes::api_keys::list_keys,
        routes::api_keys::get_key,
        routes::api_keys::revoke_key,
        routes::admin_tenants::create_tenant,
        routes::admin_tenants::list_tenants,
        routes::admin_tenants::get_tenant,
        routes::admin_tenants::update_tenant,
        routes::admin_tenants::suspend_tenant,
        routes::admin_tenants::reactivate_tenant,
        routes::admin_tenants::create_key,
        routes::admin_plans::create_plan,
        routes::admin_plans::list_plans,
        routes::admin_plans::get_plan,
        routes::admin_plans::update_plan,
        routes::admin_usage::ingest,
        routes::usage::usage,
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&Security),
    tags(
        (name = "tenant", description = "The caller's tenant"),
        (name = "api_keys", description = "API keys of the tenant"),
        (name = "auth", description = "Dashboard login"),
        (name = "admin", description = "Operator API"),
        (name = "usage", description = "Metered usage"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

/// The whole document: the gateway's routes and every service's.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(llmops_registry::openapi::RegistryDoc::openapi());
    doc.merge(llmops_serving::routes::ServingDoc::openapi());
    doc.merge(llmops_billing::routes::BillingDoc::openapi());
    doc
}

/// The document as pretty JSON with a trailing newline, as checked in.
pub fn document_json() -> String {
    let doc = document();
    let mut s = doc.to_pretty_json().unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}
