//! One matrix, two engines: each case runs on qdrant-edge (always) and on a
//! Qdrant server (`server_*`, ignored unless `TEST_QDRANT_URL` is set:
//! `scripts/test.sh` runs them with `--ignored` then, and names them as
//! skipped otherwise).

use super::*;
use llmops_core::ids::JobId;

struct Harness {
    store: VectorStore,
    /// Unique per test, so server tests never meet each other's data.
    prefix: String,
    _dir: Option<tempfile::TempDir>,
}

fn harness(engine: &str) -> Harness {
    let prefix = format!("t{}", ulid_like());
    match engine {
        "edge" => {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = VectorStore::open(&Backend::Edge(dir.path().to_path_buf())).expect("open");
            Harness {
                store,
                prefix,
                _dir: Some(dir),
            }
        }
        _ => {
            let url = std::env::var("TEST_QDRANT_URL").expect("TEST_QDRANT_URL");
            let api_key = std::env::var("TEST_QDRANT_API_KEY").ok();
            let store = VectorStore::open(&Backend::Server { url, api_key }).expect("open");
            Harness {
                store,
                prefix,
                _dir: None,
            }
        }
    }
}

fn ulid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}

/// The stored id of a tenant's point `n`.
fn sid(ctx: &TenantCtx, n: u128) -> u128 {
    scoped_id(&ctx.tenant_id().to_string(), n)
}

fn tenant() -> TenantCtx {
    TenantCtx::for_job(TenantId::new(), JobId::new())
}

fn spec(h: &Harness, size: usize) -> CollectionSpec {
    CollectionSpec::new(
        &format!("{}test", h.prefix),
        "toy",
        size,
        vec![PayloadField::Keyword("doc_id"), PayloadField::Integer("n")],
    )
}

fn point(id: u128, dense: [f32; 4], text: &str, doc: &str, n: i64, lex: &Lexical) -> Point {
    let mut payload = serde_json::Map::new();
    payload.insert("doc_id".into(), doc.into());
    payload.insert("n".into(), n.into());
    payload.insert("text".into(), text.into());
    // A hostile payload cannot choose its tenant: the scope overwrites it.
    payload.insert(TENANT_KEY.into(), "ten_someone_else".into());
    Point {
        id,
        dense: dense.to_vec(),
        sparse: lex.document(text),
        payload,
    }
}

fn query(dense: [f32; 4], text: &str, ranking: Ranking, lex: &Lexical) -> Query {
    Query {
        dense: dense.to_vec(),
        sparse: lex.query(text),
        ranking,
        fusion: Fusion::Dbsf,
        filter: Filter::default(),
        limit: 10,
        prefetch: 20,
        score_threshold: None,
    }
}

async fn seed(scope: &TenantScope<'_>, lex: &Lexical) {
    scope
        .upsert(vec![
            point(1, [1.0, 0.0, 0.0, 0.0], "the quick brown fox", "d1", 1, lex),
            point(
                2,
                [0.0, 1.0, 0.0, 0.0],
                "lazy dogs sleep all day",
                "d1",
                2,
                lex,
            ),
            point(3, [0.0, 0.0, 1.0, 0.0], "foxes hunt at night", "d2", 3, lex),
            point(
                4,
                [0.0, 0.0, 0.0, 1.0],
                "quarterly revenue grew",
                "d2",
                4,
                lex,
            ),
        ])
        .await
        .expect("upsert");
}

async fn isolation(engine: &str) {
    let h = harness(engine);
    let lex = Lexical::english(8.0).expect("bm25");
    let coll = h.store.collection(spec(&h, 4)).await.expect("collection");
    let (a, b) = (tenant(), tenant());
    seed(&coll.scoped(&a), &lex).await;
    let (sa, sb) = (coll.scoped(&a), coll.scoped(&b));
    assert_eq!(sa.count(Filter::default()).await.expect("count"), 4);
    assert_eq!(sb.count(Filter::default()).await.expect("count"), 0);
    for (ranking, fusion) in [
        (Ranking::Dense, Fusion::Dbsf),
        (Ranking::Sparse, Fusion::Dbsf),
        (Ranking::Hybrid, Fusion::Dbsf),
        (Ranking::Hybrid, Fusion::Rrf),
    ] {
        let mut q = query([1.0, 0.0, 0.0, 0.0], "fox", ranking, &lex);
        q.fusion = fusion;
        let hits = sa.query(q).await.expect("query");
        // The vector and the word agree on point 1 (the word alone also
        // finds point 3, `foxes`, stemmed, with the same score).
        let top = hits.first().map(|h| h.id);
        // Reciprocal-rank fusion ties them too when the word's tie puts
        // point 3 first (1st + 2nd against 2nd + 1st).
        let expected = match (ranking, fusion) {
            (Ranking::Sparse, _) | (Ranking::Hybrid, Fusion::Rrf) => {
                vec![Some(sid(&a, 1)), Some(sid(&a, 3))]
            }
            _ => vec![Some(sid(&a, 1))],
        };
        assert!(expected.contains(&top), "{ranking:?} {fusion:?}: {hits:?}");
        assert!(!hits.is_empty(), "{ranking:?}");
        assert!(
            hits.iter()
                .all(|h| h.payload[TENANT_KEY] == a.tenant_id().to_string())
        );
        let none = sb
            .query(query([1.0, 0.0, 0.0, 0.0], "fox", ranking, &lex))
            .await
            .expect("query");
        assert!(none.is_empty(), "{ranking:?} leaked {none:?}");
    }
    // A filter naming the tenant key cannot widen the scope: it is one
    // more condition beside the tenant's.
    let hostile = Filter {
        should: vec![
            Cond::Match {
                key: TENANT_KEY.into(),
                value: Value::Keyword(a.tenant_id().to_string()),
            },
            Cond::IsEmpty {
                key: "nothing".into(),
            },
        ],
        ..Filter::default()
    };
    assert_eq!(sb.count(hostile.clone()).await.expect("count"), 0);
    let mut q = query([1.0, 0.0, 0.0, 0.0], "fox", Ranking::Hybrid, &lex);
    q.filter = hostile.clone();
    assert!(sb.query(q).await.expect("query").is_empty());
    assert!(
        sb.scroll(hostile.clone(), 10, None)
            .await
            .expect("scroll")
            .points
            .is_empty()
    );
    assert!(
        sb.facet("doc_id", hostile.clone(), 10)
            .await
            .expect("facet")
            .is_empty()
    );
    sb.delete(hostile).await.expect("delete");
    assert_eq!(sa.count(Filter::default()).await.expect("count"), 4);
    // The same id from another tenant is another point: A's stays.
    sb.upsert(vec![point(
        1,
        [0.0, 1.0, 0.0, 0.0],
        "b's own",
        "db",
        1,
        &lex,
    )])
    .await
    .expect("upsert");
    assert_eq!(sa.count(Filter::default()).await.expect("count"), 4);
    assert_eq!(sb.count(Filter::default()).await.expect("count"), 1);
    sb.delete(Filter::default()).await.expect("delete");
    // Tenants as the store sees them.
    let per = coll.points_per_tenant(10).await.expect("facet");
    assert_eq!(per, vec![(a.tenant_id().to_string(), 4)]);
}

async fn filters_and_deletes(engine: &str) {
    let h = harness(engine);
    let lex = Lexical::english(8.0).expect("bm25");
    let coll = h.store.collection(spec(&h, 4)).await.expect("collection");
    let a = tenant();
    let s = coll.scoped(&a);
    seed(&s, &lex).await;
    let d2 = Filter::must(vec![Cond::Match {
        key: "doc_id".into(),
        value: Value::Keyword("d2".into()),
    }]);
    assert_eq!(s.count(d2.clone()).await.expect("count"), 2);
    let range = Filter::must(vec![Cond::Range {
        key: "n".into(),
        gt: None,
        gte: Some(2.0),
        lt: Some(4.0),
        lte: None,
    }]);
    assert_eq!(s.count(range).await.expect("count"), 2);
    let any = Filter::must(vec![Cond::AnyInteger {
        key: "n".into(),
        values: vec![1, 4, 9],
    }]);
    assert_eq!(s.count(any).await.expect("count"), 2);
    let not = Filter {
        must_not: vec![Cond::AnyKeyword {
            key: "doc_id".into(),
            values: vec!["d1".into()],
        }],
        ..Filter::default()
    };
    assert_eq!(s.count(not).await.expect("count"), 2);
    let facets = s
        .facet("doc_id", Filter::default(), 10)
        .await
        .expect("facet");
    assert_eq!(facets.len(), 2);
    assert!(facets.iter().all(|(_, n)| *n == 2), "{facets:?}");
    // Query with a filter keeps to it.
    let mut q = query([1.0, 0.0, 0.0, 0.0], "fox", Ranking::Hybrid, &lex);
    q.filter = d2.clone();
    let hits = s.query(q).await.expect("query");
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.payload["doc_id"] == "d2"));
    // Lexical ranking finds the word, not the vector.
    let hits = s
        .query(query(
            [0.0, 0.0, 0.0, 1.0],
            "revenue",
            Ranking::Sparse,
            &lex,
        ))
        .await
        .expect("query");
    assert_eq!(hits.first().map(|h| h.id), Some(sid(&a, 4)));
    // Dense ranking honours the threshold.
    let mut q = query([1.0, 0.0, 0.0, 0.0], "", Ranking::Dense, &lex);
    q.score_threshold = Some(0.5);
    let hits = s.query(q).await.expect("query");
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![sid(&a, 1)]
    );
    // Scroll pages through everything once.
    let mut seen = Vec::new();
    let mut from = None;
    loop {
        let page = s.scroll(Filter::default(), 3, from).await.expect("scroll");
        seen.extend(page.points.iter().map(|p| p.0));
        match page.next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    seen.sort_unstable();
    let mut all: Vec<u128> = (1..=4).map(|n| sid(&a, n)).collect();
    all.sort_unstable();
    assert_eq!(seen, all);
    // Deletes are real.
    s.delete(d2).await.expect("delete");
    assert_eq!(s.count(Filter::default()).await.expect("count"), 2);
    s.delete(Filter::default()).await.expect("delete all");
    assert_eq!(s.count(Filter::default()).await.expect("count"), 0);
}

async fn schema_checked(engine: &str) {
    let h = harness(engine);
    h.store.collection(spec(&h, 4)).await.expect("create");
    // The same spec again is fine (start-up of a second replica, a restart).
    h.store.collection(spec(&h, 4)).await.expect("reopen");
    match h.store.collection(spec(&h, 8)).await {
        Err(VectorError::Schema { detail, .. }) => {
            assert!(detail.contains("4 dimensions"), "{detail}")
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    // A wrong-sized vector is refused before it reaches the engine.
    let coll = h.store.collection(spec(&h, 4)).await.expect("reopen");
    let lex = Lexical::english(8.0).expect("bm25");
    let mut p = point(9, [1.0, 0.0, 0.0, 0.0], "x", "d", 1, &lex);
    p.dense.push(1.0);
    let a = tenant();
    assert!(matches!(
        coll.scoped(&a).upsert(vec![p]).await,
        Err(VectorError::Dimensions(_))
    ));
}

macro_rules! matrix {
    ($($case:ident),*) => {
        mod edge {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case("edge").await })*
        }
        mod server {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "Qdrant server half: runs when TEST_QDRANT_URL is set"]
            async fn $case() { super::$case("server").await })*
        }
    };
}

matrix!(isolation, filters_and_deletes, schema_checked);

/// Only flushed writes survive a restart of the embedded engine: every
/// write is flushed before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_writes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lex = Lexical::english(8.0).expect("bm25");
    let a = tenant();
    let spec = CollectionSpec::new("restart", "toy", 4, Vec::new());
    {
        let store = VectorStore::open(&Backend::Edge(dir.path().to_path_buf())).expect("open");
        let coll = store.collection(spec.clone()).await.expect("collection");
        seed(&coll.scoped(&a), &lex).await;
        coll.scoped(&a)
            .delete(Filter::must(vec![Cond::Match {
                key: "doc_id".into(),
                value: Value::Keyword("d1".into()),
            }]))
            .await
            .expect("delete");
    }
    let store = VectorStore::open(&Backend::Edge(dir.path().to_path_buf())).expect("open");
    let coll = store.collection(spec).await.expect("collection");
    assert_eq!(
        coll.scoped(&a)
            .count(Filter::default())
            .await
            .expect("count"),
        2
    );
}
