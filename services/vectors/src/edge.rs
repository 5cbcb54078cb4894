//! The embedded engine: `qdrant-edge` shards, one directory per collection.
//!
//! qdrant-edge is synchronous, so every call runs on tokio's blocking pool.
//! It does not replay its write-ahead log on load: a write is durable once
//! the shard is flushed, so every write here is followed by a flush before
//! it returns. Writes, flushes and optimizations of a shard are serialized
//! (a flush must not run beside an update); reads run beside them.
//! The optimizer (HNSW indexing, merging, vacuum) is ours to run: after a
//! write that leaves enough unindexed points.

use crate::spec::PayloadField;
use crate::{
    CollectionSpec, Engine, Filter, Hit, Page, Point, Query, Ranking, Sparse, VectorError,
};
use async_trait::async_trait;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::external::uuid::Uuid;
use qdrant_edge::{
    CountRequest, Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams, EdgeVectorParams,
    FacetRequest, FacetValue, Fusion, Modifier, NamedQuery, PointId, PointInsertOperations,
    PointOperations, PointStructPersisted, Prefetch, QueryEnum, QueryRequest, ScoringQuery,
    ScrollRequest, UpdateOperation, VectorInternal, VectorPersisted, VectorStructPersisted,
    WithPayloadInterface, WithVector,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// Points written since the last optimization that trigger the next one.
const OPTIMIZE_AFTER: usize = 20_000;

struct Shard {
    shard: EdgeShard,
    /// Serializes update + flush + optimize; counts unoptimized writes.
    writes: Mutex<usize>,
}

pub(crate) struct EdgeEngine {
    dir: PathBuf,
    shards: RwLock<HashMap<String, Arc<Shard>>>,
    /// Opening a shard is one at a time (two opens of one directory would
    /// be two engines on the same files).
    opening: tokio::sync::Mutex<()>,
    /// Held for the process's life: one process owns the directory.
    _lock: Option<std::fs::File>,
    /// Another process holds the directory: every call is unavailable.
    held_elsewhere: bool,
}

fn engine_err(e: impl std::fmt::Display) -> VectorError {
    VectorError::Engine(e.to_string())
}

impl EdgeEngine {
    pub(crate) fn new(dir: PathBuf) -> Result<Self, VectorError> {
        let io = |e: std::io::Error| VectorError::Unavailable(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".llmops.lock"))
            .map_err(io)?;
        let (lock, held_elsewhere) = match file.try_lock() {
            Ok(()) => (Some(file), false),
            Err(std::fs::TryLockError::WouldBlock) => (None, true),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        };
        Ok(Self {
            dir,
            shards: RwLock::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
            _lock: lock,
            held_elsewhere,
        })
    }

    fn held(&self) -> VectorError {
        VectorError::Unavailable(format!(
            "the embedded vector store at {} belongs to another process (one `llmops serve` owns it; set qdrant_url to share vectors between replicas)",
            self.dir.display()
        ))
    }

    fn shard(&self, collection: &str) -> Result<Arc<Shard>, VectorError> {
        if self.held_elsewhere {
            return Err(self.held());
        }
        self.shards
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(collection)
            .cloned()
            .ok_or_else(|| VectorError::Engine(format!("collection `{collection}` is not open")))
    }

    /// Runs `f` on the shard in the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        collection: &str,
        f: impl FnOnce(&Shard) -> Result<T, VectorError> + Send + 'static,
    ) -> Result<T, VectorError> {
        let shard = self.shard(collection)?;
        tokio::task::spawn_blocking(move || f(&shard))
            .await
            .map_err(engine_err)?
    }
}

fn config(spec: &CollectionSpec) -> EdgeConfig {
    EdgeConfig::builder()
        .vector(
            CollectionSpec::DENSE,
            EdgeVectorParams::builder(spec.dense_size, Distance::Cosine).build(),
        )
        // No IDF modifier: the engine would compute IDF over the whole
        // collection, every tenant's chunks, and scores would tell one
        // tenant about another's texts. Callers weight query terms by
        // their own statistics instead.
        .sparse_vector(
            CollectionSpec::SPARSE,
            EdgeSparseVectorParams::builder().build(),
        )
        .build()
}

/// Differences between the stored schema and the spec's, in words.
fn mismatch(stored: &EdgeConfig, spec: &CollectionSpec) -> Option<String> {
    let Some(dense) = stored.vectors.get(CollectionSpec::DENSE) else {
        return Some("it has no `dense` vector".into());
    };
    if dense.size != spec.dense_size {
        return Some(format!(
            "its vectors have {} dimensions, the configured embedding model has {}",
            dense.size, spec.dense_size
        ));
    }
    if dense.distance != Distance::Cosine {
        return Some(format!(
            "its distance is {:?}, cosine is needed",
            dense.distance
        ));
    }
    match stored.sparse_vectors.get(CollectionSpec::SPARSE) {
        None => Some("it has no `sparse` vector".into()),
        Some(s) if s.modifier.is_some_and(|m| m != Modifier::None) => Some(
            "its sparse vector has a modifier (collection-wide IDF would leak between tenants)"
                .into(),
        ),
        Some(_) => None,
    }
}

fn index_op(field: &str, schema: serde_json::Value) -> Result<UpdateOperation, VectorError> {
    let op: qdrant_edge::CreateIndex = serde_json::from_value(serde_json::json!({
        "field_name": field,
        "field_schema": schema,
    }))
    .map_err(engine_err)?;
    Ok(UpdateOperation::FieldIndexOperation(
        qdrant_edge::FieldIndexOperations::CreateIndex(op),
    ))
}

fn filter(f: &Filter) -> Result<Option<qdrant_edge::Filter>, VectorError> {
    if f.is_empty() {
        return Ok(None);
    }
    serde_json::from_value(f.to_qdrant_json())
        .map(Some)
        .map_err(|e| VectorError::Invalid(format!("filter: {e}")))
}

fn id_of(id: &PointId) -> u128 {
    match id {
        PointId::Uuid(u) => u.as_u128(),
        PointId::NumId(n) => u128::from(*n),
    }
}

fn sparse(s: Sparse) -> qdrant_edge::SparseVector {
    qdrant_edge::SparseVector {
        indices: s.indices,
        values: s.values,
    }
}

fn payload(p: Option<qdrant_edge::Payload>) -> serde_json::Map<String, serde_json::Value> {
    p.map(|p| p.0).unwrap_or_default()
}

fn nearest(using: &str, v: VectorInternal) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
        query: v,
        using: Some(using.into()),
    }))
}

#[async_trait]
impl Engine for EdgeEngine {
    fn name(&self) -> &'static str {
        "edge"
    }

    async fn ensure(&self, spec: &CollectionSpec) -> Result<(), VectorError> {
        if self.held_elsewhere {
            return Err(self.held());
        }
        let _opening = self.opening.lock().await;
        let open = self
            .shards
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&spec.name)
            .cloned();
        if let Some(open) = open {
            return match mismatch(&open.shard.config(), spec) {
                None => Ok(()),
                Some(detail) => Err(VectorError::Schema {
                    collection: spec.name.clone(),
                    detail,
                }),
            };
        }
        let path = self.dir.join(&spec.name);
        let spec2 = spec.clone();
        let shard = tokio::task::spawn_blocking(move || -> Result<EdgeShard, VectorError> {
            let schema_err = |detail: String| VectorError::Schema {
                collection: spec2.name.clone(),
                detail,
            };
            let shard = if path.join("edge_config.json").exists() {
                let shard = EdgeShard::load(&path, None).map_err(|e| schema_err(e.to_string()))?;
                if let Some(m) = mismatch(&shard.config(), &spec2) {
                    return Err(schema_err(m));
                }
                shard
            } else {
                std::fs::create_dir_all(&path).map_err(engine_err)?;
                EdgeShard::new(&path, config(&spec2)).map_err(engine_err)?
            };
            // Indexes: creating an existing one is a no-op.
            shard
                .update(index_op(
                    crate::TENANT_KEY,
                    serde_json::json!({"type": "keyword", "is_tenant": true}),
                )?)
                .map_err(engine_err)?;
            for f in &spec2.fields {
                let op = match f {
                    PayloadField::Keyword(k) => index_op(k, serde_json::json!("keyword"))?,
                    PayloadField::Integer(k) => index_op(k, serde_json::json!("integer"))?,
                };
                shard.update(op).map_err(engine_err)?;
            }
            shard.flush();
            Ok(shard)
        })
        .await
        .map_err(engine_err)??;
        self.shards
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                spec.name.clone(),
                Arc::new(Shard {
                    shard,
                    writes: Mutex::new(0),
                }),
            );
        Ok(())
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), VectorError> {
        self.blocking(collection, move |s| {
            let n = points.len();
            let list = points
                .into_iter()
                .map(|p| PointStructPersisted {
                    id: PointId::Uuid(Uuid::from_u128(p.id)),
                    vector: VectorStructPersisted::Named(HashMap::from([
                        (
                            CollectionSpec::DENSE.into(),
                            VectorPersisted::Dense(p.dense),
                        ),
                        (
                            CollectionSpec::SPARSE.into(),
                            VectorPersisted::Sparse(sparse(p.sparse)),
                        ),
                    ])),
                    payload: Some(qdrant_edge::Payload(p.payload)),
                })
                .collect();
            // A write that panicked (a failed flush) leaves the lock
            // poisoned: the next write takes it over.
            let mut writes = s
                .writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)),
                ))
                .map_err(engine_err)?;
            s.shard.flush();
            *writes += n;
            if *writes >= OPTIMIZE_AFTER {
                s.shard.optimize().map_err(engine_err)?;
                s.shard.flush();
                *writes = 0;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, collection: &str, f: Filter) -> Result<(), VectorError> {
        let f = filter(&f)?.ok_or_else(|| VectorError::Invalid("delete needs a filter".into()))?;
        self.blocking(collection, move |s| {
            let _writes = s
                .writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::DeletePointsByFilter(f),
                ))
                .map_err(engine_err)?;
            s.shard.flush();
            Ok(())
        })
        .await
    }

    async fn query(&self, collection: &str, q: Query) -> Result<Vec<Hit>, VectorError> {
        let f = filter(&q.filter)?;
        let dense = || {
            nearest(
                CollectionSpec::DENSE,
                VectorInternal::Dense(q.dense.clone()),
            )
        };
        let lexical = || {
            nearest(
                CollectionSpec::SPARSE,
                VectorInternal::Sparse(sparse(q.sparse.clone())),
            )
        };
        let (prefetches, query) = match q.ranking {
            Ranking::Dense => (Vec::new(), dense()),
            Ranking::Sparse => (Vec::new(), lexical()),
            Ranking::Hybrid => {
                let prefetch = |query, score_threshold: Option<f32>| Prefetch {
                    prefetches: Vec::new(),
                    query: Some(query),
                    limit: q.prefetch,
                    params: None,
                    filter: f.clone(),
                    score_threshold: score_threshold.map(OrderedFloat),
                };
                (
                    vec![
                        prefetch(dense(), q.score_threshold),
                        prefetch(lexical(), None),
                    ],
                    ScoringQuery::Fusion(match q.fusion {
                        crate::Fusion::Rrf => Fusion::Rrf {
                            k: crate::RRF_K,
                            weights: None,
                        },
                        crate::Fusion::Dbsf => Fusion::Dbsf,
                    }),
                )
            }
        };
        let request = QueryRequest {
            prefetches,
            query: Some(query),
            filter: f,
            score_threshold: match q.ranking {
                Ranking::Dense => q.score_threshold.map(OrderedFloat),
                Ranking::Sparse | Ranking::Hybrid => None,
            },
            limit: q.limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        self.blocking(collection, move |s| {
            let points = s.shard.query(request).map_err(engine_err)?;
            Ok(points
                .into_iter()
                .map(|p| Hit {
                    id: id_of(&p.id),
                    score: p.score,
                    payload: payload(p.payload),
                })
                .collect())
        })
        .await
    }

    async fn count(&self, collection: &str, f: Filter) -> Result<u64, VectorError> {
        let f = filter(&f)?;
        self.blocking(collection, move |s| {
            s.shard
                .count(CountRequest {
                    filter: f,
                    exact: true,
                })
                .map(|n| n as u64)
                .map_err(engine_err)
        })
        .await
    }

    async fn scroll(
        &self,
        collection: &str,
        f: Filter,
        limit: usize,
        from: Option<u128>,
    ) -> Result<Page, VectorError> {
        let f = filter(&f)?;
        self.blocking(collection, move |s| {
            let (records, next) = s
                .shard
                .scroll(ScrollRequest {
                    offset: from.map(|id| PointId::Uuid(Uuid::from_u128(id))),
                    limit: Some(limit),
                    filter: f,
                    with_payload: Some(WithPayloadInterface::Bool(true)),
                    with_vector: WithVector::Bool(false),
                    order_by: None,
                })
                .map_err(engine_err)?;
            Ok(Page {
                points: records
                    .into_iter()
                    .map(|r| (id_of(&r.id), payload(r.payload)))
                    .collect(),
                next: next.as_ref().map(id_of),
            })
        })
        .await
    }

    async fn facet(
        &self,
        collection: &str,
        key: &str,
        f: Filter,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, VectorError> {
        let f = filter(&f)?;
        let key = key
            .parse()
            .map_err(|_| VectorError::Invalid(format!("facet key `{key}`")))?;
        self.blocking(collection, move |s| {
            let res = s
                .shard
                .facet(FacetRequest {
                    key,
                    limit,
                    filter: f,
                    exact: true,
                })
                .map_err(engine_err)?;
            Ok(res
                .hits
                .into_iter()
                .map(|h| {
                    let v = match h.value {
                        FacetValue::Keyword(s) => s,
                        FacetValue::Int(i) => i.to_string(),
                        FacetValue::Uuid(u) => Uuid::from_u128(u).to_string(),
                        FacetValue::Bool(b) => b.to_string(),
                    };
                    (v, h.count as u64)
                })
                .collect())
        })
        .await
    }

    async fn health(&self) -> Result<(), VectorError> {
        if self.held_elsewhere {
            return Err(self.held());
        }
        std::fs::metadata(&self.dir)
            .map(|_| ())
            .map_err(|e| VectorError::Unavailable(format!("{}: {e}", self.dir.display())))
    }
}
