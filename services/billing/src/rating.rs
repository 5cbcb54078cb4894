//! Rating: price plans applied to aggregated usage, in integer money.
//!
//! Prices are rationals, `amount_minor` per `per` units of a meter (15 cents
//! per 1,000,000 tokens; 250 cents per 3,600,000 GPU-milliseconds), so no
//! float ever touches money. Each line's exact amount is carried in
//! billionths of a minor unit and rounded half-up to a minor unit once, at
//! the end of the line.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An ISO 4217 code, upper-case (`USD`, `EUR`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[A-Z]{3}$")]
pub struct Currency(String);

impl TryFrom<String> for Currency {
    type Error = RatingError;
    fn try_from(s: String) -> Result<Self, RatingError> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(s))
        } else {
            Err(RatingError::Invalid(format!(
                "currency `{}` is not an ISO 4217 code",
                s.chars().take(8).collect::<String>()
            )))
        }
    }
}

impl Currency {
    pub fn usd() -> Self {
        Currency("USD".into())
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

/// `amount_minor` per `per` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    #[schema(minimum = 0)]
    pub amount_minor: i64,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub per: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Upper bound (inclusive) of billable units in this tier; `null` for the last.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub up_to: Option<u64>,
    pub rate: Rate,
    /// A flat fee when usage reaches this tier (minor units).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub flat_minor: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TierMode {
    /// Each tier prices the units that fall in it.
    Graduated,
    /// The tier the total falls in prices all units.
    Volume,
}

/// The price of one meter (optionally only for some dimension values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceComponent {
    pub meter: String,
    /// Dimension values usage must have (e.g. `{"model": "smollm2-135m-instruct"}`).
    #[serde(default)]
    pub when: BTreeMap<String, String>,
    /// Free units before any tier.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub included: u64,
    pub mode: TierMode,
    /// Ascending `up_to`; only the last is unbounded.
    #[schema(min_items = 1)]
    pub tiers: Vec<Tier>,
    /// How the line reads on the invoice.
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    pub currency: Currency,
    /// Monthly base fee (minor units).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub base_fee_minor: i64,
    pub components: Vec<PriceComponent>,
}

/// Usage summed per meter and dimension values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    pub meter: String,
    pub dimensions: BTreeMap<String, String>,
    pub quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Line {
    pub description: String,
    pub meter: Option<String>,
    pub quantity: u64,
    /// Quantity after included units.
    pub billable: u64,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rated {
    pub currency: Currency,
    pub lines: Vec<Line>,
    pub subtotal_minor: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RatingError {
    #[error("invalid price plan: {0}")]
    Invalid(String),
    #[error("amount overflows")]
    Overflow,
}

/// Billionths of a minor unit.
const NANO: i128 = 1_000_000_000;

fn nano(units: u64, rate: Rate) -> i128 {
    // units * amount / per, in billionths (exact to 1e-9 of a minor unit).
    i128::from(units) * i128::from(rate.amount_minor) * NANO / i128::from(rate.per.max(1))
}

/// Rounds billionths half-up (away from zero) to minor units.
fn round_minor(n: i128) -> Result<i64, RatingError> {
    let half = NANO / 2;
    let r = if n >= 0 {
        (n + half) / NANO
    } else {
        (n - half) / NANO
    };
    i64::try_from(r).map_err(|_| RatingError::Overflow)
}

impl Pricing {
    pub fn validate(&self) -> Result<(), RatingError> {
        // Quantities are stored and summed as signed 64-bit integers.
        let fits = |v: u64| i64::try_from(v).is_ok();
        for c in &self.components {
            if !fits(c.included)
                || c.tiers
                    .iter()
                    .any(|t| !fits(t.rate.per) || t.up_to.is_some_and(|u| !fits(u)))
            {
                return Err(RatingError::Invalid(format!(
                    "`{}`: unit counts are at most 2^63 - 1",
                    c.description
                )));
            }
            if c.tiers.is_empty() {
                return Err(RatingError::Invalid(format!(
                    "`{}` has no tiers",
                    c.description
                )));
            }
            let mut last = 0;
            for (i, t) in c.tiers.iter().enumerate() {
                if t.rate.per == 0 || t.rate.amount_minor < 0 || t.flat_minor < 0 {
                    return Err(RatingError::Invalid(format!(
                        "`{}`: rates are non-negative amounts per a positive number of units",
                        c.description
                    )));
                }
                match t.up_to {
                    Some(u) if u <= last && i > 0 => {
                        return Err(RatingError::Invalid(format!(
                            "`{}`: tiers must ascend",
                            c.description
                        )));
                    }
                    Some(u) => last = u,
                    None if i + 1 != c.tiers.len() => {
                        return Err(RatingError::Invalid(format!(
                            "`{}`: only the last tier is unbounded",
                            c.description
                        )));
                    }
                    None => {}
                }
            }
            if c.tiers.last().is_some_and(|t| t.up_to.is_some()) {
                return Err(RatingError::Invalid(format!(
                    "`{}`: the last tier must be unbounded",
                    c.description
                )));
            }
        }
        if self.base_fee_minor < 0 {
            return Err(RatingError::Invalid(
                "the base fee must not be negative".into(),
            ));
        }
        Ok(())
    }

    /// Prices one billable quantity under a component, in billionths.
    fn component_nano(c: &PriceComponent, billable: u64) -> i128 {
        if billable == 0 {
            return 0;
        }
        match c.mode {
            TierMode::Graduated => {
                let mut total = 0;
                let mut floor = 0u64;
                for t in &c.tiers {
                    let ceil = t.up_to.unwrap_or(u64::MAX);
                    if billable <= floor {
                        break;
                    }
                    let units = billable.min(ceil) - floor;
                    total += nano(units, t.rate) + i128::from(t.flat_minor) * NANO;
                    floor = ceil;
                }
                total
            }
            TierMode::Volume => {
                let tier = c
                    .tiers
                    .iter()
                    .find(|t| t.up_to.is_none_or(|u| billable <= u))
                    .or(c.tiers.last());
                tier.map_or(0, |t| {
                    nano(billable, t.rate) + i128::from(t.flat_minor) * NANO
                })
            }
        }
    }

    /// The list price of `usage` (meter, quantity) with `dimensions`: each
    /// meter's first matching component at its first tier's rate, before
    /// included units and tiers (what one request adds at the margin of a
    /// fresh period), in billionths of a minor unit; `None` when no
    /// component prices any of it.
    pub fn list_price_nano(
        &self,
        dimensions: &BTreeMap<String, String>,
        usage: &[(&str, u64)],
    ) -> Option<i128> {
        let mut total = None;
        for (meter, quantity) in usage {
            let c = self.components.iter().find(|c| {
                c.meter == *meter && c.when.iter().all(|(k, v)| dimensions.get(k) == Some(v))
            });
            if let Some(rate) = c.and_then(|c| c.tiers.first()).map(|t| t.rate) {
                *total.get_or_insert(0) += nano(*quantity, rate);
            }
        }
        total
    }

    /// Rates a period's usage: the base fee, then one line per component
    /// that matched usage. Usage no component prices is not billed.
    pub fn rate(&self, usage: &[UsageTotal]) -> Result<Rated, RatingError> {
        self.validate()?;
        let mut lines = Vec::new();
        if self.base_fee_minor > 0 {
            lines.push(Line {
                description: "Base fee".into(),
                meter: None,
                quantity: 1,
                billable: 1,
                amount_minor: self.base_fee_minor,
            });
        }
        for c in &self.components {
            let quantity: u64 = usage
                .iter()
                .filter(|u| {
                    u.meter == c.meter && c.when.iter().all(|(k, v)| u.dimensions.get(k) == Some(v))
                })
                .map(|u| u.quantity)
                .fold(0u64, u64::saturating_add);
            if quantity == 0 {
                continue;
            }
            let billable = quantity.saturating_sub(c.included);
            lines.push(Line {
                description: c.description.clone(),
                meter: Some(c.meter.clone()),
                quantity,
                billable,
                amount_minor: round_minor(Self::component_nano(c, billable))?,
            });
        }
        let subtotal = lines
            .iter()
            .try_fold(0i64, |acc, l| acc.checked_add(l.amount_minor))
            .ok_or(RatingError::Overflow)?;
        Ok(Rated {
            currency: self.currency.clone(),
            lines,
            subtotal_minor: subtotal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MILLION: u64 = 1_000_000;

    fn usd() -> Currency {
        Currency::try_from("USD".to_string()).unwrap()
    }

    fn rate(amount_minor: i64, per: u64) -> Rate {
        Rate { amount_minor, per }
    }

    fn tokens(model: &str, meter: &str, quantity: u64) -> UsageTotal {
        UsageTotal {
            meter: meter.into(),
            dimensions: BTreeMap::from([("model".to_string(), model.to_string())]),
            quantity,
        }
    }

    fn component(meter: &str, mode: TierMode, included: u64, tiers: Vec<Tier>) -> PriceComponent {
        PriceComponent {
            meter: meter.into(),
            when: BTreeMap::new(),
            included,
            mode,
            tiers,
            description: meter.to_string(),
        }
    }

    #[test]
    fn graduated_tiers_after_included_units() {
        // 1M free; the next 9M at $0.50 per 1M; beyond at $0.25 per 1M.
        // 25M used: 24M billable = 9M × 0.50 + 15M × 0.25 = $4.50 + $3.75 = $8.25.
        let p = Pricing {
            currency: usd(),
            base_fee_minor: 0,
            components: vec![component(
                "input_tokens",
                TierMode::Graduated,
                MILLION,
                vec![
                    Tier {
                        up_to: Some(9 * MILLION),
                        rate: rate(50, MILLION),
                        flat_minor: 0,
                    },
                    Tier {
                        up_to: None,
                        rate: rate(25, MILLION),
                        flat_minor: 0,
                    },
                ],
            )],
        };
        let r = p
            .rate(&[tokens("m", "input_tokens", 25 * MILLION)])
            .unwrap();
        assert_eq!(r.lines[0].billable, 24 * MILLION);
        assert_eq!(r.lines[0].amount_minor, 825);
        assert_eq!(r.subtotal_minor, 825);
        // Within the free units: a zero line.
        let r = p.rate(&[tokens("m", "input_tokens", MILLION)]).unwrap();
        assert_eq!(r.lines[0].amount_minor, 0);
    }

    #[test]
    fn volume_prices_every_unit_at_the_reached_tier() {
        // Up to 10M at $0.50 per 1M, beyond at $0.30 per 1M; 12M → 12 × 30 = 360 cents.
        let p = Pricing {
            currency: usd(),
            base_fee_minor: 0,
            components: vec![component(
                "output_tokens",
                TierMode::Volume,
                0,
                vec![
                    Tier {
                        up_to: Some(10 * MILLION),
                        rate: rate(50, MILLION),
                        flat_minor: 0,
                    },
                    Tier {
                        up_to: None,
                        rate: rate(30, MILLION),
                        flat_minor: 100,
                    },
                ],
            )],
        };
        let r = p
            .rate(&[tokens("m", "output_tokens", 12 * MILLION)])
            .unwrap();
        assert_eq!(
            r.lines[0].amount_minor,
            360 + 100,
            "plus the tier's flat fee"
        );
        let r = p
            .rate(&[tokens("m", "output_tokens", 10 * MILLION)])
            .unwrap();
        assert_eq!(
            r.lines[0].amount_minor, 500,
            "the boundary belongs to the lower tier"
        );
    }

    #[test]
    fn rounding_is_half_up_once_per_line() {
        let p = |q: u64| {
            Pricing {
                currency: usd(),
                base_fee_minor: 0,
                components: vec![component(
                    "input_tokens",
                    TierMode::Graduated,
                    0,
                    vec![Tier {
                        up_to: None,
                        rate: rate(15, MILLION),
                        flat_minor: 0,
                    }],
                )],
            }
            .rate(&[tokens("m", "input_tokens", q)])
            .unwrap()
            .subtotal_minor
        };
        assert_eq!(p(1_234), 0, "0.0185 cents");
        assert_eq!(p(3_400_000), 51, "exactly 51 cents");
        assert_eq!(p(3_333_333), 50, "49.999995 cents");
        assert_eq!(p(100_000), 2, "1.5 cents rounds half up");
        // $0.075 per 1M = 75 per 10M: 7.5 cents per million.
        let fine = Pricing {
            currency: usd(),
            base_fee_minor: 0,
            components: vec![component(
                "input_tokens",
                TierMode::Graduated,
                0,
                vec![Tier {
                    up_to: None,
                    rate: rate(75, 10 * MILLION),
                    flat_minor: 0,
                }],
            )],
        };
        assert_eq!(
            fine.rate(&[tokens("m", "input_tokens", 2 * MILLION)])
                .unwrap()
                .subtotal_minor,
            15
        );
    }

    #[test]
    fn gpu_hours_by_gpu_type_and_models_by_filter() {
        let mut gpu = component(
            "gpu_milliseconds",
            TierMode::Graduated,
            0,
            vec![Tier {
                up_to: None,
                rate: rate(250, 3_600_000),
                flat_minor: 0,
            }],
        );
        gpu.when = BTreeMap::from([("gpu_type".to_string(), "a10g".to_string())]);
        let mut smol = component(
            "input_tokens",
            TierMode::Graduated,
            0,
            vec![Tier {
                up_to: None,
                rate: rate(10, MILLION),
                flat_minor: 0,
            }],
        );
        smol.when = BTreeMap::from([("model".to_string(), "smol".to_string())]);
        let p = Pricing {
            currency: usd(),
            base_fee_minor: 2_000,
            components: vec![gpu, smol],
        };
        let usage = vec![
            UsageTotal {
                meter: "gpu_milliseconds".into(),
                dimensions: BTreeMap::from([("gpu_type".to_string(), "a10g".to_string())]),
                quantity: 5_400_000,
            },
            UsageTotal {
                meter: "gpu_milliseconds".into(),
                dimensions: BTreeMap::from([("gpu_type".to_string(), "h100".to_string())]),
                quantity: 99_000_000,
            },
            tokens("smol", "input_tokens", 3 * MILLION),
            tokens("other", "input_tokens", 50 * MILLION),
        ];
        let r = p.rate(&usage).unwrap();
        let amounts: Vec<i64> = r.lines.iter().map(|l| l.amount_minor).collect();
        // base $20; 1.5 GPU-hours × $2.50 = $3.75; 3M × $0.10/1M = $0.30.
        assert_eq!(amounts, vec![2_000, 375, 30]);
        assert_eq!(r.subtotal_minor, 2_405);
    }

    #[test]
    fn invalid_plans_are_refused() {
        assert!(Currency::try_from("usd".to_string()).is_err());
        assert!(Currency::try_from("DOLLAR".to_string()).is_err());
        let bad = |tiers: Vec<Tier>| Pricing {
            currency: usd(),
            base_fee_minor: 0,
            components: vec![component("m", TierMode::Graduated, 0, tiers)],
        };
        assert!(bad(vec![]).validate().is_err());
        assert!(
            bad(vec![Tier {
                up_to: Some(5),
                rate: rate(1, 1),
                flat_minor: 0
            }])
            .validate()
            .is_err()
        );
        assert!(
            bad(vec![
                Tier {
                    up_to: None,
                    rate: rate(1, 1),
                    flat_minor: 0
                },
                Tier {
                    up_to: None,
                    rate: rate(1, 1),
                    flat_minor: 0
                }
            ])
            .validate()
            .is_err()
        );
        assert!(
            bad(vec![Tier {
                up_to: None,
                rate: rate(1, 0),
                flat_minor: 0
            }])
            .validate()
            .is_err()
        );
        assert!(
            bad(vec![
                Tier {
                    up_to: Some(10),
                    rate: rate(1, 1),
                    flat_minor: 0
                },
                Tier {
                    up_to: Some(5),
                    rate: rate(1, 1),
                    flat_minor: 0
                },
                Tier {
                    up_to: None,
                    rate: rate(1, 1),
                    flat_minor: 0
                }
            ])
            .validate()
            .is_err()
        );
    }
}
