//! `llmops-vectors`: the vector store under RAG and the semantic cache.
//!
//! One [`VectorStore`] over two engines that run the same Qdrant engine:
//! - **edge**: `qdrant-edge`, Qdrant's engine in-process, one shard per
//!   collection under the data directory (the embedded default);
//! - **server**: a Qdrant server or cluster over gRPC (`qdrant-client`),
//!   when `qdrant_url` is configured.
//!
//! Callers never see the engine. They name a collection by its
//! [`CollectionSpec`] (one collection per embedding model and purpose, as
//! Qdrant recommends for multitenancy), and reach its points only through a
//! [`TenantScope`], which takes a [`TenantCtx`]: every search, scroll, count,
//! facet and delete gets the `must` condition `tenant_id = <ctx's tenant>`
//! and every upserted point gets that `tenant_id`, here and nowhere else.
//! `tenant_id` has a keyword payload index with `is_tenant: true`, so Qdrant
//! lays out each tenant's points together.
//!
//! Its own crate, so that RAG (`llmops-rag`) and the gateway's semantic
//! cache share it without depending on each other.

mod edge;
mod error;
pub mod filter;
mod lexical;
mod server;
mod spec;

pub use error::VectorError;
pub use filter::{Cond, Filter, Value};
pub use lexical::Lexical;
pub use spec::{CollectionSpec, PayloadField};

use async_trait::async_trait;
use llmops_core::TenantCtx;
use llmops_core::ids::TenantId;
use serde_json::Map;
use std::path::PathBuf;
use std::sync::Arc;

/// The payload key every point carries its tenant under.
pub const TENANT_KEY: &str = "tenant_id";

/// A sparse vector: term ids and their weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sparse {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

/// A point to store: a UUID id, its dense vector, its lexical (sparse)
/// vector and a JSON payload.
#[derive(Debug, Clone)]
pub struct Point {
    pub id: u128,
    pub dense: Vec<f32>,
    pub sparse: Sparse,
    pub payload: Map<String, serde_json::Value>,
}

/// How a query ranks points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// Nearest dense vectors.
    Dense,
    /// Highest lexical (BM25 with Qdrant's IDF) scores.
    Sparse,
    /// Both: two prefetches fused by [`Fusion`] in Qdrant's query API.
    Hybrid,
}

/// How a hybrid query fuses its dense and lexical candidates (both in
/// Qdrant's query API, on both engines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// Reciprocal rank fusion, k = [`RRF_K`].
    Rrf,
    /// Distribution-based score fusion: each list's scores normalised by
    /// their mean and three standard deviations, then summed.
    Dbsf,
}

/// RRF's k, set explicitly so both engines fuse alike (Qdrant's default).
pub const RRF_K: usize = 2;

/// A query.
#[derive(Debug, Clone)]
pub struct Query {
    pub dense: Vec<f32>,
    pub sparse: Sparse,
    pub ranking: Ranking,
    /// For [`Ranking::Hybrid`].
    pub fusion: Fusion,
    /// Conditions on top of the tenant's.
    pub filter: Filter,
    pub limit: usize,
    /// How many candidates each prefetch of a hybrid query takes.
    pub prefetch: usize,
    /// Least cosine similarity of a dense match: the final score's floor
    /// for [`Ranking::Dense`], the dense prefetch's for [`Ranking::Hybrid`]
    /// (lexical candidates need a shared term instead); unused by
    /// [`Ranking::Sparse`].
    pub score_threshold: Option<f32>,
}

/// A point found, with its score and payload.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: u128,
    pub score: f32,
    pub payload: Map<String, serde_json::Value>,
}

/// A page of points (no vectors) in id order.
#[derive(Debug, Clone)]
pub struct Page {
    pub points: Vec<(u128, Map<String, serde_json::Value>)>,
    pub next: Option<u128>,
}

/// What each engine does, unscoped. Private to this crate: callers go
/// through [`TenantScope`], which adds the tenant.
#[async_trait]
trait Engine: Send + Sync {
    fn name(&self) -> &'static str;
    /// Creates the collection, or checks that the existing one has the
    /// spec's schema; creates missing payload indexes.
    async fn ensure(&self, spec: &CollectionSpec) -> Result<(), VectorError>;
    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), VectorError>;
    async fn delete(&self, collection: &str, filter: Filter) -> Result<(), VectorError>;
    async fn query(&self, collection: &str, query: Query) -> Result<Vec<Hit>, VectorError>;
    async fn count(&self, collection: &str, filter: Filter) -> Result<u64, VectorError>;
    async fn scroll(
        &self,
        collection: &str,
        filter: Filter,
        limit: usize,
        from: Option<u128>,
    ) -> Result<Page, VectorError>;
    async fn facet(
        &self,
        collection: &str,
        key: &str,
        filter: Filter,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, VectorError>;
    /// Reachable and answering.
    async fn health(&self) -> Result<(), VectorError>;
}

/// Where vectors live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// qdrant-edge shards under this directory.
    Edge(PathBuf),
    /// A Qdrant server: gRPC URL and optional API key.
    Server {
        url: String,
        api_key: Option<String>,
    },
}

/// The vector store: cheap to clone.
#[derive(Clone)]
pub struct VectorStore {
    engine: Arc<dyn Engine>,
}

impl std::fmt::Debug for VectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VectorStore({})", self.engine.name())
    }
}

impl VectorStore {
    pub fn open(backend: &Backend) -> Result<Self, VectorError> {
        let engine: Arc<dyn Engine> = match backend {
            Backend::Edge(dir) => Arc::new(edge::EdgeEngine::new(dir.clone())?),
            Backend::Server { url, api_key } => {
                Arc::new(server::ServerEngine::new(url, api_key.as_deref())?)
            }
        };
        Ok(Self { engine })
    }

    /// `edge` or `server`.
    pub fn engine(&self) -> &'static str {
        self.engine.name()
    }

    /// Creates or checks a collection (at start-up) and returns its handle.
    /// A collection that exists with another schema (another vector size,
    /// distance, no sparse vector, a missing tenant index that cannot be
    /// made) is a [`VectorError::Schema`].
    pub async fn collection(&self, spec: CollectionSpec) -> Result<Collection, VectorError> {
        self.engine.ensure(&spec).await?;
        Ok(Collection {
            engine: self.engine.clone(),
            spec: Arc::new(spec),
        })
    }

    /// Reachable and answering.
    pub async fn health(&self) -> Result<(), VectorError> {
        self.engine.health().await
    }
}

/// One collection. Its points are reachable only through
/// [`Collection::scoped`].
#[derive(Clone)]
pub struct Collection {
    engine: Arc<dyn Engine>,
    spec: Arc<CollectionSpec>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Collection({})", self.spec.name)
    }
}

impl Collection {
    pub fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    /// The tenant's view of the collection.
    pub fn scoped(&self, ctx: &TenantCtx) -> TenantScope<'_> {
        self.tenant(ctx.tenant_id())
    }

    /// The tenant's view for work the platform does for a tenant without a
    /// request (deleting a tenant's data, metering its storage). Named apart
    /// so that reviews can find every use.
    pub fn for_tenant_maintenance(&self, tenant: TenantId) -> TenantScope<'_> {
        self.tenant(tenant)
    }

    fn tenant(&self, tenant: TenantId) -> TenantScope<'_> {
        TenantScope {
            collection: self,
            tenant: tenant.to_string(),
        }
    }

    /// Points per tenant, the largest first (for the `vector_storage`
    /// meter): a facet over the tenant index.
    pub async fn points_per_tenant(&self, limit: usize) -> Result<Vec<(String, u64)>, VectorError> {
        self.engine
            .facet(&self.spec.name, TENANT_KEY, Filter::default(), limit)
            .await
    }
}

/// A point id (a UUID, version 8) derived from `parts`: the same parts,
/// the same id.
pub fn hashed_id(parts: &[&[u8]]) -> u128 {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for p in parts {
        hasher.update(p);
    }
    let h = hasher.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    // RFC 9562 variant, version 8 (custom).
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    u128::from_be_bytes(b)
}

/// A point id's text form (`xxxxxxxx-xxxx-…`).
pub fn id_text(id: u128) -> String {
    qdrant_edge::external::uuid::Uuid::from_u128(id).to_string()
}

/// The stored id of a tenant's point `id`, so tenants cannot address each
/// other's points by id.
fn scoped_id(tenant: &str, id: u128) -> u128 {
    hashed_id(&[tenant.as_bytes(), &id.to_be_bytes()])
}

/// A collection seen by one tenant: every call carries the tenant's
/// condition, which no caller's filter can widen (the caller's filter is
/// one more `must` beside it).
#[derive(Debug)]
pub struct TenantScope<'a> {
    collection: &'a Collection,
    tenant: String,
}

impl TenantScope<'_> {
    fn name(&self) -> &str {
        &self.collection.spec.name
    }

    fn engine(&self) -> &dyn Engine {
        self.collection.engine.as_ref()
    }

    /// `filter` and the tenant's condition.
    fn guard(&self, filter: Filter) -> Filter {
        let mut must = vec![Cond::Match {
            key: TENANT_KEY.into(),
            value: Value::Keyword(self.tenant.clone()),
        }];
        if !filter.is_empty() {
            must.push(Cond::Nested(filter));
        }
        Filter {
            must,
            ..Filter::default()
        }
    }

    /// Inserts or replaces points, stamped with the tenant. A point's id is
    /// the tenant's own: it is stored (and returned by queries and
    /// scrolls) as [`scoped_id`] of the tenant and the id given.
    pub async fn upsert(&self, mut points: Vec<Point>) -> Result<(), VectorError> {
        if points.is_empty() {
            return Ok(());
        }
        let size = self.collection.spec.dense_size;
        for p in &mut points {
            if p.dense.len() != size {
                return Err(VectorError::Dimensions(format!(
                    "a vector of {} dimensions for a collection of {size}",
                    p.dense.len()
                )));
            }
            // Ids are the tenant's own: another tenant's point of the same
            // id is another point.
            p.id = scoped_id(&self.tenant, p.id);
            p.payload.insert(
                TENANT_KEY.into(),
                serde_json::Value::String(self.tenant.clone()),
            );
        }
        self.engine().upsert(self.name(), points).await
    }

    pub async fn query(&self, mut query: Query) -> Result<Vec<Hit>, VectorError> {
        if query.dense.len() != self.collection.spec.dense_size && query.ranking != Ranking::Sparse
        {
            return Err(VectorError::Dimensions(format!(
                "a query vector of {} dimensions for a collection of {}",
                query.dense.len(),
                self.collection.spec.dense_size
            )));
        }
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        query.filter = self.guard(std::mem::take(&mut query.filter));
        query.prefetch = query.prefetch.max(query.limit);
        self.engine().query(self.name(), query).await
    }

    pub async fn count(&self, filter: Filter) -> Result<u64, VectorError> {
        self.engine().count(self.name(), self.guard(filter)).await
    }

    /// Deletes the tenant's points that match `filter` (all of the tenant's
    /// points in this collection for an empty filter).
    pub async fn delete(&self, filter: Filter) -> Result<(), VectorError> {
        self.engine().delete(self.name(), self.guard(filter)).await
    }

    pub async fn scroll(
        &self,
        filter: Filter,
        limit: usize,
        from: Option<u128>,
    ) -> Result<Page, VectorError> {
        self.engine()
            .scroll(self.name(), self.guard(filter), limit.max(1), from)
            .await
    }

    /// Values of a payload key among the tenant's points, with counts.
    pub async fn facet(
        &self,
        key: &str,
        filter: Filter,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, VectorError> {
        self.engine()
            .facet(self.name(), key, self.guard(filter), limit.max(1))
            .await
    }
}

#[cfg(test)]
mod tests;
