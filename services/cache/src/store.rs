//! Where cached responses live: in this process (the embedded default),
//! or in Redis (shared by every gateway replica). Keys are the tenant's id
//! and the request's [`crate::key::Keys::exact`]
//! (`<model hash>:<namespace hash>:<hash>`), so a tenant's entries, a
//! model's or a namespace's can be found and removed.

use crate::CacheError;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What invalidation removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub model_hash: Option<String>,
    pub namespace_hash: Option<String>,
}

impl Selector {
    fn matches(&self, key: &str) -> bool {
        let mut parts = key.splitn(3, ':');
        let (m, n) = (parts.next(), parts.next());
        self.model_hash.as_deref().is_none_or(|h| Some(h) == m)
            && self.namespace_hash.as_deref().is_none_or(|h| Some(h) == n)
    }
}

#[async_trait]
pub trait EntryStore: Send + Sync {
    fn name(&self) -> &'static str;
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Bytes>, CacheError>;
    /// Stores `value` for `ttl`; returns the `(tenant, key)`s evicted to
    /// make room (their vectors are then removed too).
    async fn put(
        &self,
        tenant: &str,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Vec<(String, String)>, CacheError>;
    async fn remove(&self, tenant: &str, key: &str) -> Result<(), CacheError>;
    /// Removes the tenant's entries the selector matches; returns how many.
    async fn remove_matching(&self, tenant: &str, which: &Selector) -> Result<u64, CacheError>;
    /// Removes expired entries (Redis expires its own).
    async fn sweep(&self) -> u64;
}

struct Slot {
    value: Bytes,
    expires: Instant,
    seq: u64,
}

#[derive(Default)]
struct Memory {
    slots: HashMap<(String, String), Slot>,
    /// Eviction order: soonest expiry first, then oldest.
    order: BTreeMap<(Instant, u64), (String, String)>,
    bytes: usize,
    seq: u64,
}

impl Memory {
    fn take(&mut self, k: &(String, String)) -> bool {
        match self.slots.remove(k) {
            Some(s) => {
                self.order.remove(&(s.expires, s.seq));
                self.bytes = self
                    .bytes
                    .saturating_sub(s.value.len() + k.0.len() + k.1.len());
                true
            }
            None => false,
        }
    }
}

/// The in-process store: bounded in bytes; entries that would not fit
/// evict the ones expiring soonest.
pub struct MemoryStore {
    capacity: usize,
    inner: Mutex<Memory>,
}

impl MemoryStore {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity: capacity_bytes,
            inner: Mutex::new(Memory::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries and bytes held (for tests and metrics).
    pub fn usage(&self) -> (usize, usize) {
        let m = self.lock();
        (m.slots.len(), m.bytes)
    }
}

#[async_trait]
impl EntryStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Bytes>, CacheError> {
        let mut m = self.lock();
        let k = (tenant.to_string(), key.to_string());
        match m.slots.get(&k) {
            Some(s) if s.expires > Instant::now() => Ok(Some(s.value.clone())),
            Some(_) => {
                m.take(&k);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        tenant: &str,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Vec<(String, String)>, CacheError> {
        let size = value.len() + tenant.len() + key.len();
        if size > self.capacity {
            return Err(CacheError::TooLarge);
        }
        let mut m = self.lock();
        let k = (tenant.to_string(), key.to_string());
        m.take(&k);
        let mut evicted = Vec::new();
        while m.bytes + size > self.capacity {
            let Some((_, victim)) = m.order.pop_first() else {
                break;
            };
            m.take(&victim);
            evicted.push(victim);
        }
        m.seq += 1;
        let (seq, expires) = (m.seq, Instant::now() + ttl);
        m.order.insert((expires, seq), k.clone());
        m.slots.insert(
            k,
            Slot {
                value,
                expires,
                seq,
            },
        );
        m.bytes += size;
        Ok(evicted)
    }

    async fn remove(&self, tenant: &str, key: &str) -> Result<(), CacheError> {
        self.lock().take(&(tenant.to_string(), key.to_string()));
        Ok(())
    }

    async fn remove_matching(&self, tenant: &str, which: &Selector) -> Result<u64, CacheError> {
        let mut m = self.lock();
        let victims: Vec<(String, String)> = m
            .slots
            .keys()
            .filter(|(t, k)| t == tenant && which.matches(k))
            .cloned()
            .collect();
        let mut n = 0;
        for v in &victims {
            n += u64::from(m.take(v));
        }
        Ok(n)
    }

    async fn sweep(&self) -> u64 {
        let mut m = self.lock();
        let now = Instant::now();
        let mut n = 0;
        while let Some(((expires, _), _)) = m.order.first_key_value() {
            if *expires > now {
                break;
            }
            if let Some((_, k)) = m.order.pop_first() {
                n += u64::from(m.take(&k));
            }
        }
        n
    }
}

/// Redis: `SET … PX` per entry under `llmops:cache:<tenant>:<key>`; Redis
/// expires entries itself and its `maxmemory` policy bounds the total.
pub struct RedisStore {
    conn: redis::aio::ConnectionManager,
}

impl RedisStore {
    pub fn new(conn: redis::aio::ConnectionManager) -> Self {
        Self { conn }
    }

    fn key(tenant: &str, key: &str) -> String {
        format!("llmops:cache:{tenant}:{key}")
    }
}

fn redis_err(e: redis::RedisError) -> CacheError {
    CacheError::Unavailable(format!("redis: {e}"))
}

#[async_trait]
impl EntryStore for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Bytes>, CacheError> {
        let mut c = self.conn.clone();
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg(Self::key(tenant, key))
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(v.map(Bytes::from))
    }

    async fn put(
        &self,
        tenant: &str,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Vec<(String, String)>, CacheError> {
        let mut c = self.conn.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let () = redis::cmd("SET")
            .arg(Self::key(tenant, key))
            .arg(value.as_ref())
            .arg("PX")
            .arg(ms)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(Vec::new())
    }

    async fn remove(&self, tenant: &str, key: &str) -> Result<(), CacheError> {
        let mut c = self.conn.clone();
        let _: i64 = redis::cmd("UNLINK")
            .arg(Self::key(tenant, key))
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn remove_matching(&self, tenant: &str, which: &Selector) -> Result<u64, CacheError> {
        let pattern = format!(
            "llmops:cache:{tenant}:{}:{}:*",
            which.model_hash.as_deref().unwrap_or("*"),
            which.namespace_hash.as_deref().unwrap_or("*")
        );
        let mut c = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut removed = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .map_err(redis_err)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut c)
                    .await
                    .map_err(redis_err)?;
                removed += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(removed)
    }

    async fn sweep(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_expires_bounds_and_selects() {
        let s = MemoryStore::new(100);
        let ttl = Duration::from_secs(60);
        s.put("t1", "m1:n1:a", Bytes::from(vec![1u8; 20]), ttl)
            .await
            .unwrap();
        s.put("t1", "m2:n1:b", Bytes::from(vec![2u8; 20]), ttl)
            .await
            .unwrap();
        s.put("t2", "m1:n1:a", Bytes::from(vec![3u8; 20]), ttl)
            .await
            .unwrap();
        // Tenants do not see each other's entries under the same key.
        assert_eq!(s.get("t2", "m1:n1:a").await.unwrap().unwrap()[0], 3);
        assert_eq!(s.get("t1", "m1:n1:a").await.unwrap().unwrap()[0], 1);
        // Full: the next entry evicts the one expiring soonest.
        let evicted = s
            .put("t1", "m1:n2:c", Bytes::from(vec![4u8; 20]), ttl)
            .await
            .unwrap();
        assert_eq!(evicted, vec![("t1".to_string(), "m1:n1:a".to_string())]);
        assert!(s.get("t1", "m1:n1:a").await.unwrap().is_none());
        assert!(s.usage().1 <= 100);
        // Invalidation by model, then namespace, only the tenant's.
        let by_model = Selector {
            model_hash: Some("m1".into()),
            namespace_hash: None,
        };
        assert_eq!(s.remove_matching("t1", &by_model).await.unwrap(), 1);
        assert!(s.get("t2", "m1:n1:a").await.unwrap().is_some());
        assert!(s.get("t1", "m2:n1:b").await.unwrap().is_some());
        // Expired entries are gone on read and on sweep.
        s.put(
            "t1",
            "m3:n1:d",
            Bytes::from_static(b"x"),
            Duration::from_millis(1),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(s.sweep().await, 1);
        assert!(s.get("t1", "m3:n1:d").await.unwrap().is_none());
        assert!(matches!(
            s.put("t1", "big", Bytes::from(vec![0u8; 200]), ttl).await,
            Err(CacheError::TooLarge)
        ));
    }
}
