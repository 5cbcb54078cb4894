//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::routes;
use llmops_core::error::{FieldError, PROBLEM_JSON, Problem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "llmops_session",
                "The dashboard's session cookie from `POST /v1/auth/sessions` (`__Host-llmops_session` over HTTPS); every request that changes something also sends the session's `csrf_token` in `x-csrf-token`",
            ))),
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
        routes::auth::sign_in,
        routes::auth::get_session,
        routes::auth::sign_out,
        routes::auth::accept_invitation,
        routes::users::list_users,
        routes::users::get_user,
        routes::users::update_user,
        routes::users::remove_user,
        routes::users::invite,
        routes::users::list_invitations,
        routes::users::revoke_invitation,
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
        (name = "auth", description = "Signing in: tokens and dashboard sessions"),
        (name = "users", description = "The tenant's dashboard users, roles and invitations"),
        (name = "admin", description = "Operator API"),
        (name = "usage", description = "Metered usage"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

/// The whole document: the gateway's routes and every service's, with the
/// answers every route of a kind can give added to each (see [`complete`]).
/// As JSON: utoipa cannot read its own 3.1 output back, and nothing needs
/// the typed form after this point.
pub fn document() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.merge(llmops_registry::openapi::RegistryDoc::openapi());
    doc.merge(llmops_serving::routes::ServingDoc::openapi());
    doc.merge(llmops_billing::routes::BillingDoc::openapi());
    doc.merge(llmops_training::routes::TrainingDoc::openapi());
    doc.merge(llmops_training::admin::TrainingAdminDoc::openapi());
    doc.merge(llmops_rag::routes::RagDoc::openapi());
    doc.merge(llmops_cache::routes::CacheDoc::openapi());
    doc.merge(llmops_monitoring::routes::MonitoringDoc::openapi());
    doc.merge(llmops_monitoring::alert_routes::AlertsDoc::openapi());
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    complete(&mut value);
    value
}

/// The document as pretty JSON with a trailing newline, as checked in.
pub fn document_json() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// Adds to every operation the answers that come from the layers it goes
/// through rather than from its handler, so that the document lists every
/// status a route can return:
/// - every route: 500; every route that reads the database: 503 (with
///   `retry-after`);
/// - tenant routes (`bearer`): 401, 403 (scope, suspended tenant), 429
///   (with `retry-after` and `x-ratelimit-*`); operator routes: 401, 403;
/// - a JSON body: 400 (malformed), 413 (too large), 415 (not JSON), 422
///   (invalid fields);
/// - path parameters: 404, 422 (an id of the wrong shape), and 400 for an
///   integer that is not one; query parameters: 422.
///
/// Answers a handler documents itself are kept as they are.
pub fn complete(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        })
    };
    let retry_after = json!({
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0}
    });
    let mut limit_headers = serde_json::Map::new();
    limit_headers.insert("retry-after".into(), retry_after.clone());
    for what in ["limit", "remaining"] {
        for dim in ["requests", "tokens"] {
            limit_headers.insert(
                format!("x-ratelimit-{what}-{dim}"),
                json!({"description": format!("The {dim} {what} of the current minute"), "schema": {"type": "integer", "minimum": 0}}),
            );
        }
    }
    for dim in ["requests", "tokens"] {
        limit_headers.insert(
            format!("x-ratelimit-reset-{dim}"),
            json!({"description": format!("Until the {dim} budget is full again (`1s`, `6m0s`, `120ms`)"), "schema": {"type": "string"}}),
        );
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let schemes: Vec<String> = op
                .get("security")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|o| o.keys().cloned())
                .collect();
            let params: Vec<Value> = op
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let in_ = |p: &Value, place: &str| p["in"] == place;
            let json_body = op
                .get("requestBody")
                .and_then(|b| b["content"].as_object())
                .is_some_and(|c| c.contains_key("application/json"));
            let mut add: Vec<(&str, Value)> = vec![(
                "500",
                problem("Internal error; the body names the request id"),
            )];
            if path != "/healthz" && path != "/metrics" {
                add.push((
                    "503",
                    problem("A dependency (the database, a backend) is down; retry after `retry-after` seconds"),
                ));
            }
            if schemes.iter().any(|s| s == "bearer") {
                // Whatever takes a bearer credential takes the dashboard's
                // session cookie as well.
                if let Some(security) = op.get_mut("security").and_then(Value::as_array_mut) {
                    security.push(json!({"session": []}));
                }
                add.push((
                    "401",
                    problem("Missing, malformed, expired or revoked credentials"),
                ));
                add.push((
                    "403",
                    problem("Missing scope, tenant suspended, a read-only user's change, or a session's change without its CSRF token"),
                ));
                add.push((
                    "429",
                    problem(
                        "Rate or concurrency limit reached; see `retry-after` and `x-ratelimit-*`",
                    ),
                ));
            }
            if schemes.iter().any(|s| s == "operator") {
                add.push(("401", problem("Missing or wrong operator token")));
                add.push((
                    "403",
                    problem("The operator API is disabled (no operator token configured)"),
                ));
            }
            if json_body {
                add.push(("400", problem("Malformed JSON")));
                add.push(("413", problem("Body larger than the limit")));
                add.push(("415", problem("Body is not JSON")));
                add.push(("422", problem("Invalid or unknown fields (see `errors`)")));
            }
            if params.iter().any(|p| in_(p, "path")) {
                add.push(("404", problem("No such object for this tenant (objects of other tenants are not found either)")));
                add.push(("422", problem("A path parameter of the wrong shape")));
            }
            if params
                .iter()
                .any(|p| in_(p, "path") && p["schema"]["type"] == "integer")
            {
                add.push(("400", problem("A path parameter that is not a number")));
            }
            if params.iter().any(|p| in_(p, "query")) {
                add.push(("422", problem("Invalid query parameters")));
            }
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut();
            let Some(responses) = responses else { continue };
            for (status, response) in add {
                responses.entry(status).or_insert(response);
            }
            for (status, headers) in [
                ("429", Value::Object(limit_headers.clone())),
                ("503", json!({"retry-after": retry_after})),
            ] {
                if let Some(r) = responses.get_mut(status).and_then(Value::as_object_mut) {
                    let have = r.entry("headers").or_insert_with(|| json!({}));
                    if let (Some(have), Some(add)) = (have.as_object_mut(), headers.as_object()) {
                        for (k, v) in add {
                            have.entry(k.clone()).or_insert(v.clone());
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn operation_ids_are_unique() {
        let doc = super::document();
        let mut seen = std::collections::BTreeMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let id = op["operationId"].as_str().unwrap_or_default().to_string();
                assert!(!id.is_empty(), "{method} {path} has no operation id");
                if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
                    panic!("operation id {id} of {method} {path} is also {other}");
                }
            }
        }
    }

    #[test]
    fn tenant_routes_document_auth_limits_and_server_errors() {
        let doc = super::document();
        let op = &doc["paths"]["/v1/api_keys/{key_id}"]["get"]["responses"];
        for status in ["200", "401", "403", "404", "422", "429", "500", "503"] {
            assert!(
                op.get(status).is_some(),
                "GET /v1/api_keys/{{key_id}} lacks {status}"
            );
        }
        assert!(op["429"]["headers"]["retry-after"].is_object());
        assert!(op.get("413").is_none(), "no body, no 413");
    }
}
