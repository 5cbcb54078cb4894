//! Billing routes: the tenant's invoices; the operator's prices and period close.

use crate::invoices::{Billing, DraftInvoice, InvoiceView, render_html};
use crate::rating::Pricing;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use llmops_core::error::Problem;
use llmops_core::http::Json;
use llmops_core::http::Tenant;
use llmops_core::ids::TenantId;
use llmops_core::pagination::{ListParams, Page};
use llmops_core::tenancy::store;
use llmops_core::{ApiError, ApiResult, Scope};
use serde::Deserialize;

/// Under `/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/invoices").route(web::get().to(list_invoices)))
        // Before `/invoices/{id}`, which would take `upcoming` for an id.
        .service(web::resource("/invoices/upcoming").route(web::get().to(upcoming_invoice)))
        .service(web::resource("/invoices/{id}").route(web::get().to(get_invoice)))
        .service(web::resource("/invoices/{id}/html").route(web::get().to(invoice_html)))
        .service(web::resource("/billing/stripe/webhook").route(web::post().to(stripe_webhook)))
        .service(
            web::resource("/billing/budget")
                .route(web::put().to(put_budget))
                .route(web::get().to(get_budget)),
        );
}

/// Under `/admin/v1`.
pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/plans/{plan_id}/pricing")
            .route(web::put().to(put_pricing))
            .route(web::get().to(get_pricing)),
    )
    .service(web::resource("/billing/close-period").route(web::post().to(close_period)))
    .service(web::resource("/invoices/{id}/void").route(web::post().to(void_invoice)))
    .service(web::resource("/invoices/{id}/stripe/retry").route(web::post().to(retry_stripe_push)));
}

#[utoipa::path(get, path = "/v1/invoices", tag = "billing", security(("bearer" = [])), params(("limit" = Option<u64>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("after" = Option<llmops_core::ids::InvoiceId>, Query, description = "The `last_id` of the previous page")),
    responses((status = 200, description = "A page of invoices", body = inline(Page<InvoiceView>))))]
pub async fn list_invoices(
    b: web::Data<Billing>,
    Tenant(ctx): Tenant,
    params: web::Query<ListParams>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::BillingRead)?;
    Ok(HttpResponse::Ok().json(b.list_invoices(ctx.scoped(), &params).await?))
}

/// The open period's invoice as it stands (a draft preview, not stored).
#[utoipa::path(get, path = "/v1/invoices/upcoming", tag = "billing", security(("bearer" = [])),
    responses((status = 200, description = "The draft of the open period", body = DraftInvoice),
        (status = 404, description = "The current period is already invoiced", body = Problem, content_type = "application/problem+json")))]
pub async fn upcoming_invoice(
    b: web::Data<Billing>,
    Tenant(ctx): Tenant,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::BillingRead)?;
    Ok(HttpResponse::Ok().json(b.upcoming(ctx.scoped()).await?))
}

#[utoipa::path(get, path = "/v1/invoices/{id}", tag = "billing", security(("bearer" = [])),
    params(("id" = llmops_core::ids::InvoiceId, Path, description = "Invoice id")),
    responses((status = 200, description = "The invoice", body = InvoiceView),
        (status = 404, description = "No such invoice", body = Problem, content_type = "application/problem+json")))]
pub async fn get_invoice(
    b: web::Data<Billing>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::BillingRead)?;
    Ok(HttpResponse::Ok().json(b.get_invoice(ctx.scoped(), &path).await?))
}

/// A printable rendering.
#[utoipa::path(get, path = "/v1/invoices/{id}/html", tag = "billing", security(("bearer" = [])),
    params(("id" = llmops_core::ids::InvoiceId, Path, description = "Invoice id")),
    responses((status = 200, description = "HTML", body = String, content_type = "text/html"),
        (status = 404, description = "No such invoice", body = Problem, content_type = "application/problem+json")))]
pub async fn invoice_html(
    b: web::Data<Billing>,
    Tenant(ctx): Tenant,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    ctx.require(Scope::BillingRead)?;
    let inv = b.get_invoice(ctx.scoped(), &path).await?;
    let name = b.tenant_name(ctx.tenant_id()).await?;
    // Served on the dashboard's origin: no script may run in it, whatever
    // a tenant's texts contain, and nothing keeps a copy.
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox allow-modals; frame-ancestors 'none'",
        ))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("cache-control", "no-store, private"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(render_html(&inv, &name)))
}

/// Sets a plan's prices (tiers, included units, base fee, currency).
#[utoipa::path(put, path = "/admin/v1/plans/{plan_id}/pricing", tag = "admin", security(("operator" = [])),
    params(("plan_id" = String, Path, description = "Plan id", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")), request_body = Pricing,
    responses((status = 200, description = "The prices", body = Pricing),
        (status = 422, description = "Invalid prices", body = Problem, content_type = "application/problem+json")))]
pub async fn put_pricing(
    b: web::Data<Billing>,
    path: web::Path<String>,
    body: Json<Pricing>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(b.set_pricing(&path, body.into_inner()).await?))
}

#[utoipa::path(get, path = "/admin/v1/plans/{plan_id}/pricing", tag = "admin", security(("operator" = [])),
    params(("plan_id" = String, Path, description = "Plan id", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "The prices", body = Pricing),
        (status = 404, description = "No prices set", body = Problem, content_type = "application/problem+json")))]
pub async fn get_pricing(
    b: web::Data<Billing>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let p = b
        .pricing(&path)
        .await?
        .ok_or_else(|| ApiError::not_found("pricing"))?;
    Ok(HttpResponse::Ok().json(p))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosePeriod {
    /// One tenant; every tenant when absent.
    pub tenant_id: Option<TenantId>,
    /// Default: the start of the previous billing period (calendar month
    /// unless `billing_period_secs` is set).
    pub period_start: Option<DateTime<Utc>>,
    /// Default: the start of the current billing period.
    pub period_end: Option<DateTime<Utc>>,
}

/// Closes a billing period: one finalized invoice per tenant (idempotent;
/// safe on several replicas at once).
#[utoipa::path(post, path = "/admin/v1/billing/close-period", tag = "admin", security(("operator" = [])),
    request_body = ClosePeriod,
    responses((status = 200, description = "The invoices of the period", body = Vec<InvoiceView>),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The period is earlier than, or overlaps, one already closed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid period", body = Problem, content_type = "application/problem+json")))]
pub async fn close_period(
    b: web::Data<Billing>,
    body: Json<ClosePeriod>,
) -> ApiResult<HttpResponse> {
    let (d_start, d_end) = b.period().previous(Utc::now());
    let start = body.period_start.unwrap_or(d_start);
    let end = body.period_end.unwrap_or(d_end);
    let tenants = match body.tenant_id {
        Some(t) => {
            store::get_tenant(b.db(), t).await?;
            vec![t]
        }
        None => b.tenants().await?,
    };
    let mut out = Vec::with_capacity(tenants.len());
    for t in tenants {
        out.push(b.close_period(t, start, end).await?);
    }
    Ok(HttpResponse::Ok().json(out))
}

/// Sets the tenant's monthly spend limit (scope `admin`); inference answers
/// 402 once the month's rated usage reaches it.
#[utoipa::path(put, path = "/v1/billing/budget", tag = "billing", security(("bearer" = [])),
    request_body = crate::budgets::Budget,
    responses((status = 200, description = "The budget and current spend", body = crate::budgets::BudgetView),
        (status = 422, description = "Invalid budget", body = Problem, content_type = "application/problem+json")))]
pub async fn put_budget(
    b: web::Data<Billing>,
    Tenant(ctx): Tenant,
    body: Json<crate::budgets::Budget>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(b.set_budget(&ctx, body.into_inner()).await?))
}

#[utoipa::path(get, path = "/v1/billing/budget", tag = "billing", security(("bearer" = [])),
    responses((status = 200, description = "The budget and current spend", body = crate::budgets::BudgetView),
        (status = 404, description = "No budget set", body = Problem, content_type = "application/problem+json")))]
pub async fn get_budget(b: web::Data<Billing>, Tenant(ctx): Tenant) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(b.get_budget(&ctx).await?))
}

/// Voids an unpaid invoice (its usage stays in the ledger).
#[utoipa::path(post, path = "/admin/v1/invoices/{id}/void", tag = "admin", security(("operator" = [])),
    params(("id" = llmops_core::ids::InvoiceId, Path, description = "Invoice id")),
    responses((status = 200, description = "The voided invoice", body = InvoiceView),
        (status = 404, description = "No such invoice", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The invoice is paid (here or at Stripe), or being pushed to Stripe right now", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe, where the invoice was pushed, cannot be reached", body = Problem, content_type = "application/problem+json")))]
pub async fn void_invoice(
    b: web::Data<Billing>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(b.void_invoice(&path).await?))
}

#[utoipa::path(post, path = "/admin/v1/invoices/{id}/stripe/retry", tag = "admin", security(("operator" = [])),
    params(("id" = llmops_core::ids::InvoiceId, Path, description = "Invoice id")),
    responses((status = 200, description = "The invoice; its push is queued again (a pushed one is left alone)", body = InvoiceView),
        (status = 404, description = "No such invoice", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The invoice is void, or Stripe is not configured on this server (`not_configured`)", body = Problem, content_type = "application/problem+json")))]
pub async fn retry_stripe_push(
    b: web::Data<Billing>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(b.retry_push(&path).await?))
}

/// Stripe's signed events (no bearer credential: the signature is the
/// authentication). `invoice.paid` / `invoice.payment_failed` with
/// `metadata.llmops_invoice_id` update our invoice.
#[utoipa::path(post, path = "/v1/billing/stripe/webhook", tag = "billing",
    request_body(content = String, content_type = "application/json"),
    responses((status = 200, description = "Received"),
        (status = 400, description = "Missing or invalid signature, stale timestamp", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Webhooks are not configured on this server (`not_configured`)", body = Problem, content_type = "application/problem+json")))]
pub async fn stripe_webhook(
    b: web::Data<Billing>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    Ok(HttpResponse::Ok().json(b.stripe_webhook(header, &body).await?))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_invoices, upcoming_invoice, get_invoice, invoice_html, put_pricing, get_pricing, close_period, put_budget, get_budget, stripe_webhook, void_invoice, retry_stripe_push),
    tags((name = "billing", description = "Invoices"))
)]
pub struct BillingDoc;
