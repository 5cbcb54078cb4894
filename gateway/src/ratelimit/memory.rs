//! Limit state kept in this process: one lock over the GCRA arrival times
//! and the in-flight counts, so every decision about one request is taken
//! at once.

use super::{Concurrency, LimitCheck, LimitState, Outcome, Verdict, gcra};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this many arrival times, the ones already past are dropped (they
/// mean the same as absent ones), so the map stays bounded.
const PRUNE_ABOVE: usize = 50_000;

#[derive(Default)]
struct State {
    tats: HashMap<String, u64>,
    /// Requests in flight per concurrency key; an entry leaves at zero.
    in_flight: HashMap<String, u32>,
}

pub struct MemoryStore {
    epoch: Instant,
    state: Mutex<State>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }
}

impl MemoryStore {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // (every update is a single insert), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides a request: its concurrency slot and its limits together.
    /// Nothing is spent unless everything fits.
    pub fn admit(&self, checks: &[LimitCheck], concurrency: Option<&Concurrency>) -> Outcome {
        let now = self.now_us();
        let mut st = self.lock();
        if st.tats.len() > PRUNE_ABOVE {
            st.tats.retain(|_, tat| *tat > now);
        }
        let full =
            concurrency.is_some_and(|c| st.in_flight.get(&c.key).copied().unwrap_or(0) >= c.limit);
        let mut verdict = if full {
            Verdict::Concurrency
        } else {
            Verdict::Allowed
        };
        let mut next = Vec::with_capacity(checks.len());
        for c in checks {
            let tat = st.tats.get(&c.key).copied().unwrap_or(0);
            let (fits, new_tat, retry) = gcra(now, tat, c.emission_us(), c.cost);
            if c.cost > 0 && !fits {
                verdict = verdict.refused_for_requests(Duration::from_micros(retry));
            }
            next.push((tat.max(now), new_tat));
        }
        let allowed = verdict == Verdict::Allowed;
        let states = checks
            .iter()
            .zip(next)
            .map(|(c, (old, new))| {
                let tat = if allowed && c.cost > 0 {
                    st.tats.insert(c.key.clone(), new);
                    new
                } else {
                    old
                };
                LimitState {
                    tat_ahead_us: tat - now,
                }
            })
            .collect();
        if allowed && let Some(c) = concurrency {
            *st.in_flight.entry(c.key.clone()).or_insert(0) += 1;
        }
        Outcome { verdict, states }
    }

    /// Frees one slot of `key`.
    pub fn release(&self, key: &str) {
        let mut st = self.lock();
        if let Some(n) = st.in_flight.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.in_flight.remove(key);
            }
        }
    }

    /// Requests in flight under `key` (tests, metrics).
    pub fn in_flight(&self, key: &str) -> u32 {
        self.lock().in_flight.get(key).copied().unwrap_or(0)
    }

    /// Spends `check.cost` units if they fit; when they do not, gives back
    /// one unit of each of `give_back` (the request this spending belonged
    /// to is refused, so it must not count), under the same lock.
    pub fn reserve(&self, check: &LimitCheck, give_back: &[LimitCheck]) -> Outcome {
        let now = self.now_us();
        let mut st = self.lock();
        let tat = st.tats.get(&check.key).copied().unwrap_or(0);
        let (fits, new_tat, retry) = gcra(now, tat, check.emission_us(), check.cost);
        if fits {
            st.tats.insert(check.key.clone(), new_tat);
            return Outcome {
                verdict: Verdict::Allowed,
                states: vec![LimitState {
                    tat_ahead_us: new_tat - now,
                }],
            };
        }
        for g in give_back {
            if let Some(t) = st.tats.get_mut(&g.key) {
                *t = t.saturating_sub(g.emission_us()).max(now);
            }
        }
        Outcome {
            verdict: Verdict::Requests {
                retry_after: Duration::from_micros(retry),
            },
            states: vec![LimitState {
                tat_ahead_us: tat.max(now) - now,
            }],
        }
    }

    /// Spends `check.cost` units whether or not they fit (usage that already
    /// happened).
    pub fn charge(&self, check: &LimitCheck) {
        let now = self.now_us();
        let mut st = self.lock();
        let tat = st.tats.entry(check.key.clone()).or_insert(0);
        *tat = (*tat)
            .max(now)
            .saturating_add(check.emission_us().saturating_mul(u64::from(check.cost)));
    }

    /// Moves a limit's arrival time back by `check.cost` units (never before now).
    pub fn refund(&self, check: &LimitCheck) {
        let now = self.now_us();
        let mut st = self.lock();
        if let Some(tat) = st.tats.get_mut(&check.key) {
            *tat = tat
                .saturating_sub(check.emission_us().saturating_mul(u64::from(check.cost)))
                .max(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::headers_for;

    fn check(key: &str, limit: u32, cost: u32) -> LimitCheck {
        LimitCheck {
            key: key.into(),
            limit,
            cost,
        }
    }

    fn remaining(store: &MemoryStore, c: &LimitCheck) -> u64 {
        let peek = store.admit(
            &[LimitCheck {
                cost: 0,
                ..c.clone()
            }],
            None,
        );
        headers_for(c, peek.states[0], "requests").remaining
    }

    #[test]
    fn a_request_refused_by_one_limit_spends_no_other() {
        let store = MemoryStore::default();
        let tenant = check("tenant", 100, 1);
        let key = check("key", 2, 1);
        let both = [tenant.clone(), key];
        assert!(store.admit(&both, None).verdict == Verdict::Allowed);
        assert!(store.admit(&both, None).verdict == Verdict::Allowed);
        assert!(matches!(
            store.admit(&both, None).verdict,
            Verdict::Requests { .. }
        ));
        assert_eq!(remaining(&store, &tenant), 98);
    }

    #[test]
    fn concurrency_refusals_spend_no_requests_and_slots_come_back() {
        let store = MemoryStore::default();
        let req = check("req", 60, 1);
        let cc = Concurrency {
            key: "cc".into(),
            limit: 4,
        };
        for _ in 0..4 {
            assert!(store.admit(std::slice::from_ref(&req), Some(&cc)).verdict == Verdict::Allowed);
        }
        for _ in 0..96 {
            assert!(
                store.admit(std::slice::from_ref(&req), Some(&cc)).verdict == Verdict::Concurrency
            );
        }
        assert_eq!(remaining(&store, &req), 56, "only the 4 admitted count");
        assert_eq!(store.in_flight("cc"), 4);
        store.release("cc");
        assert_eq!(store.in_flight("cc"), 3);
        assert!(store.admit(std::slice::from_ref(&req), Some(&cc)).verdict == Verdict::Allowed);
        for _ in 0..4 {
            store.release("cc");
        }
        assert_eq!(store.in_flight("cc"), 0);
        assert!(store.lock().in_flight.is_empty(), "idle keys leave the map");
    }

    #[test]
    fn a_request_over_its_budget_takes_no_slot() {
        let store = MemoryStore::default();
        let req = check("req", 1, 1);
        let cc = Concurrency {
            key: "cc".into(),
            limit: 10,
        };
        assert!(store.admit(std::slice::from_ref(&req), Some(&cc)).verdict == Verdict::Allowed);
        assert!(matches!(
            store.admit(std::slice::from_ref(&req), Some(&cc)).verdict,
            Verdict::Requests { .. }
        ));
        assert_eq!(store.in_flight("cc"), 1);
    }

    #[test]
    fn a_refused_token_reservation_gives_the_request_back() {
        let store = MemoryStore::default();
        let req = check("req", 10, 1);
        let tok = check("tok", 100, 80);
        assert!(store.admit(std::slice::from_ref(&req), None).verdict == Verdict::Allowed);
        assert!(store.reserve(&tok, std::slice::from_ref(&req)).verdict == Verdict::Allowed);
        assert_eq!(remaining(&store, &req), 9);
        assert!(store.admit(std::slice::from_ref(&req), None).verdict == Verdict::Allowed);
        assert_eq!(remaining(&store, &req), 8);
        // 80 more tokens do not fit in the 20 left: refused, request given back.
        assert!(matches!(
            store.reserve(&tok, std::slice::from_ref(&req)).verdict,
            Verdict::Requests { .. }
        ));
        assert_eq!(remaining(&store, &req), 9);
    }

    #[test]
    fn charges_go_past_the_limit_and_refunds_stop_at_now() {
        let store = MemoryStore::default();
        let tok = check("tok", 100, 150);
        store.charge(&tok);
        assert!(matches!(
            store.reserve(&check("tok", 100, 1), &[]).verdict,
            Verdict::Requests { .. }
        ));
        store.refund(&check("tok", 100, 1_000));
        assert!(store.reserve(&check("tok", 100, 100), &[]).verdict == Verdict::Allowed);
    }
}
