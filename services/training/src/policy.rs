//! Which claimable job runs next: weighted fair sharing between tenants
//! (the tenant holding the smallest share of a GPU type, divided by its
//! weight, goes first, as in Kueue's fair sharing within a cohort), the
//! tenant's own priorities, then age; per-tenant quotas on concurrent
//! devices per GPU type. Pure functions over what the queue read, so the
//! rules are tested without a database.

use std::collections::BTreeMap;

/// A claimable job as the policy sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub tenant_id: String,
    /// `queued`, or `running` with an expired lease.
    pub status: String,
    pub priority: i32,
    pub gpu_type: String,
    pub gpus: u32,
    pub attempt: i32,
    pub max_attempts: i32,
}

/// Devices held by live attempts, per (tenant, GPU type).
#[derive(Debug, Clone, Default)]
pub struct RunningShare(BTreeMap<(String, String), u32>);

impl RunningShare {
    pub fn add(&mut self, tenant: &str, gpu_type: &str, n: u32) {
        let e = self
            .0
            .entry((tenant.to_string(), gpu_type.to_string()))
            .or_default();
        *e = e.saturating_add(n);
    }

    pub fn of(&self, tenant: &str, gpu_type: &str) -> u32 {
        self.0
            .get(&(tenant.to_string(), gpu_type.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

/// Per-tenant limits and weights.
pub trait Quotas: Send + Sync {
    /// Most devices of `gpu_type` the tenant may hold at once (`None`: no
    /// limit beyond capacity).
    fn max_gpus(&self, tenant: &str, gpu_type: &str) -> Option<u32>;
    /// The tenant's weight in fair sharing (at least 1).
    fn weight(&self, _tenant: &str) -> u32 {
        1
    }
    /// Why the tenant may start no job now (`budget`: its spending limit
    /// is reached), if so.
    fn blocked(&self, _tenant: &str) -> Option<&'static str> {
        None
    }
}

/// No quotas, equal weights.
pub struct Unlimited;

impl Quotas for Unlimited {
    fn max_gpus(&self, _: &str, _: &str) -> Option<u32> {
        None
    }
}

/// Quotas and weights from tables (`None` entries mean no limit, weight 1).
#[derive(Debug, Clone, Default)]
pub struct StaticQuotas {
    /// (tenant, GPU type) → most devices at once.
    pub max: BTreeMap<(String, String), u32>,
    pub weights: BTreeMap<String, u32>,
    /// Tenants that may start nothing, and why.
    pub blocked: BTreeMap<String, &'static str>,
}

impl Quotas for StaticQuotas {
    fn max_gpus(&self, tenant: &str, gpu_type: &str) -> Option<u32> {
        self.max
            .get(&(tenant.to_string(), gpu_type.to_string()))
            .copied()
    }

    fn weight(&self, tenant: &str) -> u32 {
        self.weights.get(tenant).copied().unwrap_or(1).max(1)
    }

    fn blocked(&self, tenant: &str) -> Option<&'static str> {
        self.blocked.get(tenant).copied()
    }
}

/// The order in which to try `candidates` (indexes into it): smallest
/// weighted share first, then higher priority, then the order given (age).
pub fn order(candidates: &[Candidate], running: &RunningShare, quotas: &dyn Quotas) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..candidates.len()).collect();
    // Share as a fraction compared by cross-multiplying: held_a / w_a
    // against held_b / w_b, exactly, in integers.
    let key = |i: usize| {
        let c = &candidates[i];
        (
            u64::from(running.of(&c.tenant_id, &c.gpu_type)),
            u64::from(quotas.weight(&c.tenant_id).max(1)),
        )
    };
    idx.sort_by(|&a, &b| {
        let ((ha, wa), (hb, wb)) = (key(a), key(b));
        (ha * wb)
            .cmp(&(hb * wa))
            .then(candidates[b].priority.cmp(&candidates[a].priority))
            .then(a.cmp(&b))
    });
    idx
}

/// Would starting `c` keep its tenant within its quota?
pub fn within_quota(c: &Candidate, running: &RunningShare, quotas: &dyn Quotas) -> bool {
    match quotas.max_gpus(&c.tenant_id, &c.gpu_type) {
        None => true,
        Some(max) => running.of(&c.tenant_id, &c.gpu_type).saturating_add(c.gpus) <= max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, tenant: &str, priority: i32, gpus: u32) -> Candidate {
        Candidate {
            id: id.into(),
            tenant_id: tenant.into(),
            status: "queued".into(),
            priority,
            gpu_type: "a100".into(),
            gpus,
            attempt: 0,
            max_attempts: 3,
        }
    }

    fn ids(c: &[Candidate], order: Vec<usize>) -> Vec<&str> {
        order.into_iter().map(|i| c[i].id.as_str()).collect()
    }

    #[test]
    fn the_tenant_holding_less_goes_first_then_priority_then_age() {
        let c = vec![
            cand("a1", "a", 0, 1),
            cand("a2", "a", 5, 1),
            cand("b1", "b", 0, 1),
            cand("b2", "b", 0, 1),
        ];
        let mut running = RunningShare::default();
        // Nobody runs anything: priority, then age, across tenants.
        assert_eq!(
            ids(&c, order(&c, &running, &Unlimited)),
            ["a2", "a1", "b1", "b2"]
        );
        running.add("a", "a100", 2);
        assert_eq!(
            ids(&c, order(&c, &running, &Unlimited)),
            ["b1", "b2", "a2", "a1"]
        );
    }

    #[test]
    fn weights_scale_the_share() {
        let c = vec![cand("a1", "a", 0, 1), cand("b1", "b", 0, 1)];
        let mut running = RunningShare::default();
        running.add("a", "a100", 3);
        running.add("b", "a100", 2);
        let mut q = StaticQuotas::default();
        assert_eq!(ids(&c, order(&c, &running, &q)), ["b1", "a1"]);
        // a weighs 2: 3/2 < 2/1.
        q.weights.insert("a".into(), 2);
        assert_eq!(ids(&c, order(&c, &running, &q)), ["a1", "b1"]);
    }

    #[test]
    fn quotas_count_what_runs_and_what_would_start() {
        let mut q = StaticQuotas::default();
        q.max.insert(("a".into(), "a100".into()), 4);
        let mut running = RunningShare::default();
        assert!(within_quota(&cand("x", "a", 0, 4), &running, &q));
        assert!(!within_quota(&cand("x", "a", 0, 5), &running, &q));
        running.add("a", "a100", 3);
        assert!(within_quota(&cand("x", "a", 0, 1), &running, &q));
        assert!(!within_quota(&cand("x", "a", 0, 2), &running, &q));
        // Other tenants and types are not limited.
        assert!(within_quota(&cand("x", "b", 0, 64), &running, &q));
    }
}
