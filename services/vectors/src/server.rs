//! A Qdrant server or cluster over gRPC (`qdrant-client`). The same
//! collections, indexes, filters and queries as the embedded engine; writes
//! wait until applied (`wait = true`), so a caller reads its own writes as
//! on the edge.

use crate::spec::PayloadField;
use crate::{
    CollectionSpec, Cond, Engine, Filter, Hit, Page, Point, Query, Ranking, Sparse, Value,
    VectorError,
};
use async_trait::async_trait;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    self as pb, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FacetCountsBuilder, FieldType, KeywordIndexParamsBuilder,
    Modifier, NamedVectors, PointStruct, PrefetchQueryBuilder, QueryPointsBuilder, RrfBuilder,
    ScrollPointsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
    UpsertPointsBuilder, VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_edge::external::uuid::Uuid;

pub(crate) struct ServerEngine {
    client: Qdrant,
}

/// As the embedded engine classifies its failures: the server down or
/// overloaded is unavailable (retried), anything else it refuses is an
/// engine failure (the request was ours; filters are checked before they
/// are sent).
fn unavailable(e: qdrant_client::QdrantError) -> VectorError {
    match &e {
        qdrant_client::QdrantError::ResponseError { status }
            if !matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
                    | tonic::Code::Unauthenticated
                    | tonic::Code::PermissionDenied
            ) =>
        {
            VectorError::Engine(status.message().to_string())
        }
        _ => VectorError::Unavailable(e.to_string()),
    }
}

impl ServerEngine {
    pub(crate) fn new(url: &str, api_key: Option<&str>) -> Result<Self, VectorError> {
        let mut b = Qdrant::from_url(url)
            .skip_compatibility_check()
            .timeout(std::time::Duration::from_secs(30));
        if let Some(k) = api_key {
            b = b.api_key(k.to_string());
        }
        let client = b
            .build()
            .map_err(|e| VectorError::Unavailable(e.to_string()))?;
        Ok(Self { client })
    }
}

fn value(v: &Value) -> pb::r#match::MatchValue {
    match v {
        Value::Keyword(s) => pb::r#match::MatchValue::Keyword(s.clone()),
        Value::Integer(i) => pb::r#match::MatchValue::Integer(*i),
        Value::Bool(b) => pb::r#match::MatchValue::Boolean(*b),
    }
}

fn cond(c: &Cond) -> pb::Condition {
    match c {
        Cond::Match { key, value: v } => pb::Condition::matches(key.clone(), value(v)),
        Cond::AnyKeyword { key, values } => pb::Condition::matches(key.clone(), values.clone()),
        Cond::AnyInteger { key, values } => pb::Condition::matches(key.clone(), values.clone()),
        Cond::Range {
            key,
            gt,
            gte,
            lt,
            lte,
        } => pb::Condition::range(
            key.clone(),
            pb::Range {
                gt: *gt,
                gte: *gte,
                lt: *lt,
                lte: *lte,
            },
        ),
        Cond::IsEmpty { key } => pb::Condition::is_empty(key.clone()),
        Cond::Nested(f) => pb::Condition::from(filter(f)),
    }
}

fn filter(f: &Filter) -> pb::Filter {
    pb::Filter {
        must: f.must.iter().map(cond).collect(),
        should: f.should.iter().map(cond).collect(),
        must_not: f.must_not.iter().map(cond).collect(),
        min_should: None,
    }
}

fn point_id(id: u128) -> pb::PointId {
    pb::PointId::from(Uuid::from_u128(id).to_string())
}

fn id_of(id: Option<&pb::PointId>) -> u128 {
    match id.and_then(|i| i.point_id_options.as_ref()) {
        Some(pb::point_id::PointIdOptions::Uuid(s)) => {
            Uuid::parse_str(s).map(|u| u.as_u128()).unwrap_or_default()
        }
        Some(pb::point_id::PointIdOptions::Num(n)) => u128::from(*n),
        None => 0,
    }
}

fn payload(
    p: std::collections::HashMap<String, pb::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    serde_json::Map::from(qdrant_client::Payload::from(p))
}

fn sparse(s: Sparse) -> VectorInput {
    VectorInput::new_sparse(s.indices, s.values)
}

impl ServerEngine {
    /// Differences between the server's collection and the spec, in words.
    async fn check(&self, spec: &CollectionSpec) -> Result<Option<String>, VectorError> {
        let info = self
            .client
            .collection_info(spec.name.as_str())
            .await
            .map_err(unavailable)?;
        let params = info
            .result
            .as_ref()
            .and_then(|r| r.config.as_ref())
            .and_then(|c| c.params.as_ref());
        let dense = params
            .and_then(|p| p.vectors_config.as_ref())
            .and_then(|v| v.config.as_ref())
            .and_then(|c| match c {
                pb::vectors_config::Config::ParamsMap(m) => m.map.get(CollectionSpec::DENSE),
                pb::vectors_config::Config::Params(_) => None,
            });
        let Some(dense) = dense else {
            return Ok(Some("it has no `dense` vector".into()));
        };
        if dense.size != spec.dense_size as u64 {
            return Ok(Some(format!(
                "its vectors have {} dimensions, the configured embedding model has {}",
                dense.size, spec.dense_size
            )));
        }
        if dense.distance != Distance::Cosine as i32 {
            return Ok(Some("its distance is not cosine".into()));
        }
        let sparse = params
            .and_then(|p| p.sparse_vectors_config.as_ref())
            .and_then(|s| s.map.get(CollectionSpec::SPARSE));
        Ok(match sparse {
            None => Some("it has no `sparse` vector".into()),
            Some(s) if s.modifier.is_some_and(|m| m != Modifier::None as i32) => Some(
                "its sparse vector has a modifier (collection-wide IDF would leak between tenants)"
                    .into(),
            ),
            Some(_) => None,
        })
    }
}

#[async_trait]
impl Engine for ServerEngine {
    fn name(&self) -> &'static str {
        "server"
    }

    async fn ensure(&self, spec: &CollectionSpec) -> Result<(), VectorError> {
        let exists = self
            .client
            .collection_exists(spec.name.as_str())
            .await
            .map_err(unavailable)?;
        if exists {
            if let Some(detail) = self.check(spec).await? {
                return Err(VectorError::Schema {
                    collection: spec.name.clone(),
                    detail,
                });
            }
        } else {
            let mut vectors = VectorsConfigBuilder::default();
            vectors.add_named_vector_params(
                CollectionSpec::DENSE,
                VectorParamsBuilder::new(spec.dense_size as u64, Distance::Cosine),
            );
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                CollectionSpec::SPARSE,
                SparseVectorParamsBuilder::default(),
            );
            let created = self
                .client
                .create_collection(
                    CreateCollectionBuilder::new(spec.name.as_str())
                        .vectors_config(vectors)
                        .sparse_vectors_config(sparse),
                )
                .await;
            // Another replica may have created it meanwhile: check it then.
            if let Err(e) = created
                && let Some(detail) = self.check(spec).await.map_err(|_| unavailable(e))?
            {
                return Err(VectorError::Schema {
                    collection: spec.name.clone(),
                    detail,
                });
            }
        }
        // Creating an existing index is a no-op on the server.
        self.client
            .create_field_index(
                CreateFieldIndexCollectionBuilder::new(
                    spec.name.as_str(),
                    crate::TENANT_KEY,
                    FieldType::Keyword,
                )
                .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true))
                .wait(true),
            )
            .await
            .map_err(unavailable)?;
        for f in &spec.fields {
            let (key, ty) = match f {
                PayloadField::Keyword(k) => (k, FieldType::Keyword),
                PayloadField::Integer(k) => (k, FieldType::Integer),
            };
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(spec.name.as_str(), *key, ty).wait(true),
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<(), VectorError> {
        let points: Vec<PointStruct> = points
            .into_iter()
            .map(|p| {
                let vectors = NamedVectors::default()
                    .add_vector(CollectionSpec::DENSE, pb::Vector::new_dense(p.dense))
                    .add_vector(
                        CollectionSpec::SPARSE,
                        pb::Vector::new_sparse(p.sparse.indices, p.sparse.values),
                    );
                PointStruct::new(
                    point_id(p.id),
                    vectors,
                    qdrant_client::Payload::from(p.payload),
                )
            })
            .collect();
        self.client
            .upsert_points(UpsertPointsBuilder::new(collection, points).wait(true))
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn delete(&self, collection: &str, f: Filter) -> Result<(), VectorError> {
        if f.is_empty() {
            return Err(VectorError::Invalid("delete needs a filter".into()));
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(collection)
                    .points(filter(&f))
                    .wait(true),
            )
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn query(&self, collection: &str, q: Query) -> Result<Vec<Hit>, VectorError> {
        let f = filter(&q.filter);
        let mut b = QueryPointsBuilder::new(collection)
            .filter(f.clone())
            .limit(q.limit as u64)
            .with_payload(true);
        b = match q.ranking {
            Ranking::Dense => b
                .query(pb::Query::new_nearest(VectorInput::new_dense(q.dense)))
                .using(CollectionSpec::DENSE),
            Ranking::Sparse => b
                .query(pb::Query::new_nearest(sparse(q.sparse)))
                .using(CollectionSpec::SPARSE),
            Ranking::Hybrid => {
                let mut dense = PrefetchQueryBuilder::default()
                    .query(pb::Query::new_nearest(VectorInput::new_dense(q.dense)))
                    .using(CollectionSpec::DENSE)
                    .filter(f.clone())
                    .limit(q.prefetch as u64);
                if let Some(t) = q.score_threshold {
                    dense = dense.score_threshold(t);
                }
                b.add_prefetch(dense)
                    .add_prefetch(
                        PrefetchQueryBuilder::default()
                            .query(pb::Query::new_nearest(sparse(q.sparse)))
                            .using(CollectionSpec::SPARSE)
                            .filter(f)
                            .limit(q.prefetch as u64),
                    )
                    .query(match q.fusion {
                        crate::Fusion::Rrf => {
                            pb::Query::new_rrf(RrfBuilder::with_k(crate::RRF_K as u32))
                        }
                        crate::Fusion::Dbsf => pb::Query::new_fusion(pb::Fusion::Dbsf),
                    })
            }
        };
        if let (Ranking::Dense, Some(t)) = (q.ranking, q.score_threshold) {
            b = b.score_threshold(t);
        }
        let res = self.client.query(b).await.map_err(unavailable)?;
        Ok(res
            .result
            .into_iter()
            .map(|p| Hit {
                id: id_of(p.id.as_ref()),
                score: p.score,
                payload: payload(p.payload),
            })
            .collect())
    }

    async fn count(&self, collection: &str, f: Filter) -> Result<u64, VectorError> {
        let res = self
            .client
            .count(
                CountPointsBuilder::new(collection)
                    .filter(filter(&f))
                    .exact(true),
            )
            .await
            .map_err(unavailable)?;
        Ok(res.result.map(|r| r.count).unwrap_or(0))
    }

    async fn scroll(
        &self,
        collection: &str,
        f: Filter,
        limit: usize,
        from: Option<u128>,
    ) -> Result<Page, VectorError> {
        let mut b = ScrollPointsBuilder::new(collection)
            .filter(filter(&f))
            .limit(limit as u32)
            .with_payload(true)
            .with_vectors(false);
        if let Some(from) = from {
            b = b.offset(point_id(from));
        }
        let res = self.client.scroll(b).await.map_err(unavailable)?;
        Ok(Page {
            points: res
                .result
                .into_iter()
                .map(|r| (id_of(r.id.as_ref()), payload(r.payload)))
                .collect(),
            next: res.next_page_offset.as_ref().map(|i| id_of(Some(i))),
        })
    }

    async fn facet(
        &self,
        collection: &str,
        key: &str,
        f: Filter,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, VectorError> {
        let mut b = FacetCountsBuilder::new(collection, key)
            .limit(limit as u64)
            .exact(true);
        if !f.is_empty() {
            b = b.filter(filter(&f));
        }
        let res = self.client.facet(b).await.map_err(unavailable)?;
        Ok(res
            .hits
            .into_iter()
            .filter_map(|h| {
                let v = match h.value?.variant? {
                    pb::facet_value::Variant::StringValue(s) => s,
                    pb::facet_value::Variant::IntegerValue(i) => i.to_string(),
                    pb::facet_value::Variant::BoolValue(b) => b.to_string(),
                };
                Some((v, h.count))
            })
            .collect())
    }

    async fn health(&self) -> Result<(), VectorError> {
        self.client
            .health_check()
            .await
            .map(|_| ())
            .map_err(|e| VectorError::Unavailable(e.to_string()))
    }
}
