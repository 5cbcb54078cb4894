//! The list prices of the operator's training pools (`/admin/v1/gpu_pools`:
//! a price per device-hour and its currency) price a plan's training time
//! when the plan does not: each attempt's metered time carries its pool
//! (the `pool` dimension), so a plan without a `gpu_milliseconds` (or
//! `cpu_milliseconds`) component bills each pool's time at that pool's
//! price. A plan that prices the meter itself (by `gpu_type`, `pool` or
//! not at all) is what applies; pools in another currency than the plan's
//! are not used.

use crate::invoices::Billing;
use crate::rating::{PriceComponent, Pricing, Rate, Tier, TierMode};
use llmops_core::ApiResult;
use sea_orm::{ConnectionTrait, Statement};
use std::collections::BTreeMap;

/// Milliseconds an hour.
const HOUR_MS: u64 = 3_600_000;

impl Billing {
    /// `pricing` with the pools' list prices for the training meters it
    /// does not price.
    pub(crate) async fn with_pool_prices(&self, mut pricing: Pricing) -> ApiResult<Pricing> {
        let priced = |p: &Pricing, meter: &str| p.components.iter().any(|c| c.meter == meter);
        let open: Vec<&str> = ["gpu_milliseconds", "cpu_milliseconds"]
            .into_iter()
            .filter(|m| !priced(&pricing, m))
            .collect();
        if open.is_empty() {
            return Ok(pricing);
        }
        let db = self.db();
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT id, gpu_type, spot, price_per_gpu_hour_minor, currency FROM gpu_pools ORDER BY id",
            ))
            .await?;
        let currency = String::from(pricing.currency.clone());
        for r in rows {
            let id: String = r.try_get("", "id")?;
            let gpu_type: String = r.try_get("", "gpu_type")?;
            let spot: bool = r.try_get("", "spot")?;
            let price: i64 = r.try_get("", "price_per_gpu_hour_minor")?;
            let pool_currency: String = r.try_get("", "currency")?;
            let meter = if gpu_type == "cpu" {
                "cpu_milliseconds"
            } else {
                "gpu_milliseconds"
            };
            if price <= 0 || pool_currency != currency || !open.contains(&meter) {
                continue;
            }
            pricing.components.push(PriceComponent {
                meter: meter.to_string(),
                when: BTreeMap::from([("pool".to_string(), id.clone())]),
                included: 0,
                mode: TierMode::Graduated,
                tiers: vec![Tier {
                    up_to: None,
                    rate: Rate {
                        amount_minor: price,
                        per: HOUR_MS,
                    },
                    flat_minor: 0,
                }],
                description: format!(
                    "Training on pool {id} ({gpu_type}{}), per device-hour",
                    if spot { ", spot" } else { "" }
                ),
            });
        }
        Ok(pricing)
    }
}
