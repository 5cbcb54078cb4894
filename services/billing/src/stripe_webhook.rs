//! `POST /v1/billing/stripe/webhook`: Stripe's signed events mark invoices
//! paid, failed or void.
//!
//! The `Stripe-Signature` header carries `t=<unix time>` and one or more
//! `v1=<hex HMAC-SHA256 of "<t>.<raw body>" under the endpoint's secret>`.
//! An event is accepted only with a matching signature and a timestamp
//! within five minutes; each event id is applied once (a redelivery is
//! acknowledged without effect).

use crate::invoices::Billing;
use chrono::Utc;
use hmac::{Hmac, Mac};
use llmops_core::{ApiError, ApiResult};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Seconds a signed event stays acceptable.
pub const TOLERANCE_SECS: i64 = 300;

/// Checks a `Stripe-Signature` header; returns the signed timestamp.
pub fn verify(secret: &[u8], header: &str, payload: &[u8], now: i64) -> Result<i64, String> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or("no timestamp in Stripe-Signature")?;
    if sigs.is_empty() {
        return Err("no v1 signature in Stripe-Signature".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "bad secret")?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let expected = mac.finalize().into_bytes();
    let expected_hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    let ok = sigs.iter().any(|s| {
        s.len() == expected_hex.len() && bool::from(s.as_bytes().ct_eq(expected_hex.as_bytes()))
    });
    if !ok {
        return Err("signature does not match".into());
    }
    if (now - t).abs() > TOLERANCE_SECS {
        return Err("timestamp outside the tolerance (replayed or delayed event)".into());
    }
    Ok(t)
}

/// What an event did.
#[derive(Debug, serde::Serialize)]
pub struct WebhookOutcome {
    pub received: bool,
    /// `applied`, `duplicate` or `ignored`.
    pub result: &'static str,
}

impl Billing {
    pub async fn stripe_webhook(
        &self,
        header: Option<&str>,
        payload: &[u8],
    ) -> ApiResult<WebhookOutcome> {
        let secret = self.stripe_secret().ok_or_else(|| {
            ApiError::NotConfigured(
                "Stripe webhooks are not configured on this server (set stripe_webhook_secret)"
                    .into(),
            )
        })?;
        let header =
            header.ok_or_else(|| ApiError::BadRequest("missing Stripe-Signature header".into()))?;
        verify(secret, header, payload, Utc::now().timestamp())
            .map_err(|e| ApiError::BadRequest(format!("invalid Stripe signature: {e}")))?;
        let event: serde_json::Value = serde_json::from_slice(payload)
            .map_err(|e| ApiError::BadRequest(format!("event is not JSON: {e}")))?;
        let id = event["id"].as_str().unwrap_or_default().to_string();
        let kind = event["type"].as_str().unwrap_or_default().to_string();
        if id.is_empty() || id.len() > 255 || kind.is_empty() {
            return Err(ApiError::validation("id", "an event has an id and a type"));
        }
        // Each event applies once: the insert is the lock.
        let db = self.db();
        let backend = db.get_database_backend();
        let inserted = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "INSERT INTO stripe_events (id, kind, received_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                [id.clone().into(), kind.clone().into(), Utc::now().into()],
            ))
            .await?
            .rows_affected();
        if inserted == 0 {
            return Ok(WebhookOutcome {
                received: true,
                result: "duplicate",
            });
        }
        let status = match kind.as_str() {
            "invoice.paid" | "invoice.payment_succeeded" => "paid",
            "invoice.payment_failed" => "payment_failed",
            "invoice.voided" => "void",
            _ => {
                return Ok(WebhookOutcome {
                    received: true,
                    result: "ignored",
                });
            }
        };
        // Ours by metadata, or by the Stripe invoice a push created.
        let object = &event["data"]["object"];
        let ours = match object["metadata"]["llmops_invoice_id"].as_str() {
            Some(id) => Some(id.to_string()),
            None => match object["id"].as_str() {
                Some(sid) => crate::entities::stripe_push::Entity::find()
                    .filter(crate::entities::stripe_push::Column::StripeInvoiceId.eq(sid))
                    .one(self.db())
                    .await?
                    .map(|p| p.invoice_id),
                None => None,
            },
        };
        let Some(ours) = ours else {
            return Ok(WebhookOutcome {
                received: true,
                result: "ignored",
            });
        };
        let ours = ours.as_str();
        let changed = self.settle_unpaid(ours, status).await?;
        tracing::info!(event = %id, kind = %kind, invoice = ours, changed, "stripe webhook");
        Ok(WebhookOutcome {
            received: true,
            result: if changed == 1 { "applied" } else { "ignored" },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("t={t},v1={hex}")
    }

    #[test]
    fn signatures_are_checked_with_a_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign(b"whsec_test", 1_000, body);
        assert_eq!(verify(b"whsec_test", &h, body, 1_100), Ok(1_000));
        assert!(verify(b"whsec_other", &h, body, 1_100).is_err());
        assert!(verify(b"whsec_test", &h, br#"{"id":"evt_2"}"#, 1_100).is_err());
        assert!(verify(b"whsec_test", &h, body, 1_000 + TOLERANCE_SECS + 1).is_err());
        assert!(verify(b"whsec_test", "t=1000", body, 1_000).is_err());
        // Several v1 signatures (secret rotation): one match is enough.
        let two = format!("{},v1=00ff", h);
        assert!(verify(b"whsec_test", &two, body, 1_000).is_ok());
    }
}
