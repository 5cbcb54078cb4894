//! Alert webhooks: queued per event, signed as Stripe signs, sent by a
//! task of their own with backoff, to public addresses only (checked when
//! a rule is made and again, pinned, when each POST is sent).

use crate::entities::{alert, alert_rule, delivery};
use chrono::{TimeDelta, Utc};
use hmac::{Hmac, Mac};
use llmops_core::ids::DeliveryId;
use llmops_core::{ApiError, ApiResult};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sha2::Sha256;
use std::time::Duration;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, as Stripe signs.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut hex = String::new();
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        for b in mac.finalize().into_bytes() {
            hex.push_str(&format!("{b:02x}"));
        }
    }
    format!("t={t},v1={hex}")
}

/// A webhook URL: http(s), and not a private, loopback or link-local
/// address unless the operator allows it (tests, private deployments).
pub(crate) fn check_webhook(url: &str, allow_private: bool) -> ApiResult<()> {
    let bad = |why: &str| ApiError::validation("webhook_url", why);
    let u = reqwest::Url::parse(url).map_err(|e| bad(&format!("not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("must be http or https"));
    }
    if !allow_private {
        let private = match u.host() {
            Some(url::Host::Ipv4(ip)) => !public(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => !public(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost") || !d.contains('.')
            }
            None => true,
        };
        if private {
            return Err(bad("private and loopback addresses are not allowed"));
        }
    }
    Ok(())
}

/// Is `ip` a public unicast address (not private, loopback, link-local,
/// shared, documentation, multicast or unspecified; IPv4-mapped IPv6
/// judged as IPv4)?
pub fn public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            !(v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
                || v.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)))
        }
        IpAddr::V6(v) => {
            if let Some(v4) = v.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            let seg = v.segments();
            !(v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

/// Queues the webhook of an event (unless the rule is silenced).
pub(crate) async fn notify(
    db: &DatabaseConnection,
    rule: &alert_rule::Model,
    a: &alert::Model,
    event: &str,
) -> Result<(), DbErr> {
    let Some(url) = &rule.webhook_url else {
        return Ok(());
    };
    let now = Utc::now();
    if rule.silenced_until.is_some_and(|t| t > now) {
        return Ok(());
    }
    let payload = serde_json::json!({
        "type": event,
        "created": now.timestamp(),
        "data": {
            "alert_id": a.id, "rule_id": rule.id, "rule_name": rule.name, "tenant_id": a.tenant_id,
            "metric": a.metric, "model": a.model, "status": a.status, "value": a.value,
            "threshold": a.threshold, "started_at": a.started_at, "resolved_at": a.resolved_at,
            "details": serde_json::from_str::<serde_json::Value>(&a.details).unwrap_or_default(),
        }
    });
    delivery::Entity::insert(delivery::ActiveModel {
        id: Set(DeliveryId::new().to_string()),
        tenant_id: Set(a.tenant_id.clone()),
        alert_id: Set(a.id.clone()),
        event: Set(event.to_string()),
        url: Set(url.clone()),
        payload: Set(payload.to_string()),
        attempts: Set(0),
        status: Set("pending".into()),
        next_attempt_at: Set(now),
        last_status: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
    })
    .exec(db)
    .await?;
    Ok(())
}

/// Most attempts of a delivery before it is `failed`.
pub const MAX_ATTEMPTS: i32 = 8;

/// How long a claimed delivery belongs to the replica sending it (the
/// send's own timeout is 10 s).
const LEASE: TimeDelta = TimeDelta::seconds(60);
/// The send's timeout.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends due deliveries: each is claimed (its next attempt pushed out by
/// the lease, from the moment of the claim) before it is sent, and its
/// outcome is written only while the claim holds, so replicas do not send
/// it twice.
async fn deliver_due(
    db: &DatabaseConnection,
    allow_private: bool,
    backoff: Duration,
) -> Result<(), DbErr> {
    let due = delivery::Entity::find()
        .filter(delivery::Column::Status.eq("pending"))
        .filter(delivery::Column::NextAttemptAt.lte(Utc::now()))
        .order_by_asc(delivery::Column::NextAttemptAt)
        .limit(50)
        .all(db)
        .await?;
    for d in due {
        let lease = Utc::now() + LEASE;
        let claimed = delivery::Entity::update_many()
            .col_expr(delivery::Column::NextAttemptAt, lease.into())
            .filter(delivery::Column::Id.eq(d.id.as_str()))
            .filter(delivery::Column::NextAttemptAt.eq(d.next_attempt_at))
            .filter(delivery::Column::Status.eq("pending"))
            .exec(db)
            .await?
            .rows_affected
            == 1;
        if !claimed {
            continue;
        }
        // The lease as stored (the database may round it).
        let Some(d) = delivery::Entity::find_by_id(d.id.clone()).one(db).await? else {
            continue;
        };
        let secret = crate::entities::alert_rule::Entity::find()
            .filter(
                alert_rule::Column::Id.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(alert::Column::RuleId)
                        .from(alert::Entity)
                        .and_where(alert::Column::Id.eq(d.alert_id.as_str()))
                        .to_owned(),
                ),
            )
            .one(db)
            .await?
            .and_then(|r| r.webhook_secret)
            .unwrap_or_default();
        let t = Utc::now().timestamp();
        let sent = match client_for(&d.url, allow_private).await {
            Ok(http) => http
                .post(&d.url)
                .header("content-type", "application/json")
                .header("llmops-signature", sign(&secret, t, d.payload.as_bytes()))
                .header("llmops-delivery", d.id.as_str())
                .body(d.payload.clone())
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        "connection failed".to_string()
                    }
                }),
            Err(e) => Err(e),
        };
        let attempts = d.attempts + 1;
        let (status, error) = match &sent {
            Ok(r) => (Some(i32::from(r.status().as_u16())), None),
            Err(e) => (None, Some(e.clone())),
        };
        let held = d.next_attempt_at;
        let id = d.id.clone();
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        let mut am: delivery::ActiveModel = d.into();
        am.attempts = Set(attempts);
        am.last_status = Set(status);
        am.last_error = Set(error);
        if ok {
            am.status = Set("delivered".into());
            am.delivered_at = Set(Some(Utc::now()));
        } else if attempts >= MAX_ATTEMPTS {
            am.status = Set("failed".into());
        } else {
            // Exponential backoff: base, 2×base, 4×base, … (at most an hour).
            let wait = backoff
                .saturating_mul(1u32 << (attempts - 1).clamp(0, 16))
                .min(Duration::from_secs(3600));
            am.next_attempt_at =
                Set(Utc::now() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::hours(1)));
        }
        // Written only while this replica's claim holds.
        delivery::Entity::update_many()
            .set(am)
            .filter(delivery::Column::Id.eq(id.as_str()))
            .filter(delivery::Column::NextAttemptAt.eq(held))
            .exec(db)
            .await?;
        metrics::counter!("llmops_monitoring_webhooks_total", "outcome" => if ok { "delivered" } else { "failed" })
            .increment(1);
    }
    Ok(())
}

/// A client that connects only to the address checked here: the host is
/// resolved once, every address must be public (unless allowed), and the
/// connection is pinned to it (no second lookup to rebind).
async fn client_for(url: &str, allow_private: bool) -> Result<reqwest::Client, String> {
    let u = reqwest::Url::parse(url).map_err(|_| "invalid URL".to_string())?;
    let host = u.host_str().ok_or("no host")?.to_string();
    let port = u.port_or_known_default().ok_or("no port")?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let lookup = tokio::time::timeout(SEND_TIMEOUT, tokio::net::lookup_host((bare.as_str(), port)))
        .await
        .map_err(|_| "name resolution timed out".to_string())?
        .map_err(|_| "name resolution failed".to_string())?;
    let addrs: Vec<std::net::SocketAddr> = lookup.collect();
    let Some(first) = addrs.first().copied() else {
        return Err("name resolution failed".into());
    };
    if !allow_private && addrs.iter().any(|a| !public(a.ip())) {
        return Err("the host resolves to a private address".into());
    }
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&bare, first)
        .build()
        .map_err(|_| "client".to_string())
}

/// Sends due webhooks every `every`, until `stop` (apart from evaluation:
/// slow receivers do not hold alerts back).
pub(crate) async fn run_deliveries(
    db: DatabaseConnection,
    every: Duration,
    backoff: Duration,
    allow_private: bool,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick_at = tokio::time::interval(every);
    tick_at.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick_at.tick() => {}
            _ = stop.cancelled() => return,
        }
        tokio::select! {
            r = deliver_due(&db, allow_private, backoff) => if let Err(e) = r {
                tracing::warn!(error = %e, "webhook deliveries failed");
            },
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_as_stripe_does() {
        let sig = sign("whsec_test", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("t=1700000000,v1="));
        assert_eq!(sig.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(sig, sign("whsec_other", 1_700_000_000, b"{\"a\":1}"));
        assert_ne!(sig, sign("whsec_test", 1_700_000_001, b"{\"a\":1}"));
    }

    #[test]
    fn webhooks_to_private_addresses_need_the_operator() {
        assert!(check_webhook("https://hooks.example.com/x", false).is_ok());
        for bad in [
            "http://127.0.0.1:9/x",
            "http://10.0.0.2/",
            "http://localhost/",
            "ftp://example.com/",
            "nope",
        ] {
            assert!(check_webhook(bad, false).is_err(), "{bad}");
        }
        assert!(check_webhook("http://127.0.0.1:9/x", true).is_ok());
    }

    #[test]
    fn only_public_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "192.168.1.1",
        ] {
            assert!(!public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            assert!(public(ip.parse().unwrap()), "{ip}");
        }
        assert!(check_webhook("http://localhost./x", false).is_err());
        assert!(check_webhook("http://intranet/x", false).is_err());
        assert!(check_webhook("http://[::ffff:127.0.0.1]/x", false).is_err());
    }
}
