//! Knowledge bases end to end on the local Triton (all-MiniLM-L6-v2
//! embeddings, SmolLM2 answers), one matrix on both vector engines: the
//! embedded qdrant-edge (`rag::edge::…`) and a Qdrant server
//! (`rag::qdrant_server::…`, ignored unless `TEST_QDRANT_URL` names one;
//! `scripts/test.sh` then runs them with `--ignored`).

use llmops_tests::{Backend, Options, TestApp, problem, s, triton_url};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Engine {
    Edge,
    Server,
}

/// The app on PostgreSQL, the test Triton, the model's tokenizer and the
/// engine; `extra` adds or overrides variables.
pub async fn rag_app(engine: Engine, extra: &[(&str, &str)]) -> TestApp {
    // The local models' tokenizers the repository ships.
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/triton/models");
    let mut env = vec![
        ("LLMOPS_TRITON_URL".to_string(), triton_url().unwrap()),
        (
            "LLMOPS_TRITON_MODELS_DIR".to_string(),
            models.display().to_string(),
        ),
    ];
    if engine == Engine::Server {
        let url = std::env::var("TEST_QDRANT_URL").expect("TEST_QDRANT_URL");
        env.push(("LLMOPS_QDRANT_URL".into(), url));
        if let Ok(k) = std::env::var("TEST_QDRANT_API_KEY") {
            env.push(("LLMOPS_QDRANT_API_KEY".into(), k));
        }
    }
    for (k, v) in extra {
        env.push(((*k).into(), (*v).into()));
    }
    TestApp::spawn_with(
        Backend::Postgres,
        Options {
            env,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

pub async fn create_kb(app: &TestApp, key: &str, name: &str) -> String {
    let res = app
        .post(
            "/v1/rag/knowledge_bases",
            key,
            &json!({"name": name, "embedding_model": "all-minilm-l6-v2"}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    s(&res.json::<Value>().await.unwrap()["id"])
}

/// Uploads JSON; returns the document (202).
pub async fn upload(app: &TestApp, key: &str, kb: &str, body: Value) -> Value {
    let res = app
        .post(
            &format!("/v1/rag/knowledge_bases/{kb}/documents"),
            key,
            &body,
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

/// Polls a document until `status` (or fails on another final one).
pub async fn wait_status(app: &TestApp, key: &str, kb: &str, doc: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let d = app
            .get_json(
                &format!("/v1/rag/knowledge_bases/{kb}/documents/{doc}"),
                key,
            )
            .await
            .unwrap();
        if d["status"] == status {
            return d;
        }
        if (d["status"] == "failed" || d["status"] == "ready") && d["status"] != status {
            panic!("document {doc} is {d} while waiting for {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "document {doc} never became {status}: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn query(app: &TestApp, key: &str, kb: &str, body: Value) -> Value {
    let res = app
        .post(&format!("/v1/rag/knowledge_bases/{kb}/query"), key, &body)
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

fn texts(r: &Value) -> Vec<String> {
    r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| s(&h["text"]))
        .collect()
}

/// The shipped corpus: `(slug, text)` of its 12 documents.
pub fn corpus() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/rag");
    let mut docs: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let slug = p.file_stem()?.to_str()?.to_string();
            (p.extension()? == "md" && slug != "README")
                .then(|| (slug, std::fs::read_to_string(&p).unwrap()))
        })
        .collect();
    docs.sort();
    assert_eq!(docs.len(), 12);
    docs
}

pub fn questions() -> Vec<Value> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/rag/questions.json");
    serde_json::from_str::<Vec<Value>>(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Uploads the corpus into a new knowledge base; returns it and the
/// documents by slug once all are ready.
pub async fn ingest_corpus(app: &TestApp, key: &str, name: &str) -> (String, Vec<(String, Value)>) {
    let kb = create_kb(app, key, name).await;
    let mut docs = Vec::new();
    for (slug, text) in corpus() {
        let d = upload(
            app,
            key,
            &kb,
            json!({"text": text, "content_type": "text/markdown", "external_id": slug,
                   "filename": format!("{slug}.md"), "metadata": {"topic": slug, "year": 2026}}),
        )
        .await;
        docs.push((slug, d));
    }
    let mut ready = Vec::new();
    for (slug, d) in docs {
        ready.push((
            slug,
            wait_status(app, key, &kb, &s(&d["id"]), "ready").await,
        ));
    }
    (kb, ready)
}

/// Recall@5 and MRR (over the top 10) of one ranking on the question set:
/// a hit is a chunk of the right document that contains the answer.
async fn evaluate(app: &TestApp, key: &str, kb: &str, ranking: &str, fusion: &str) -> (f64, f64) {
    let qs = questions();
    let (mut recall, mut rr) = (0.0, 0.0);
    for q in &qs {
        let r = query(
            app,
            key,
            kb,
            json!({"query": q["question"], "top_k": 10, "ranking": ranking, "fusion": fusion}),
        )
        .await;
        let rank = r["data"].as_array().unwrap().iter().position(|h| {
            h["external_id"] == q["document"]
                && s(&h["text"]).contains(q["answer"].as_str().unwrap())
        });
        if let Some(i) = rank {
            rr += 1.0 / (i as f64 + 1.0);
            if i < 5 {
                recall += 1.0;
            }
        }
    }
    let n = qs.len() as f64;
    (recall / n, rr / n)
}

async fn retrieval_quality(engine: Engine) {
    let app = rag_app(engine, &[]).await;
    let a = app.create_tenant_on("acme", "standard").unwrap();
    let key = s(&a["api_key"]);
    let (kb, docs) = ingest_corpus(&app, &key, "handbook").await;
    let chunks: u64 = docs
        .iter()
        .map(|(_, d)| d["chunk_count"].as_u64().unwrap())
        .sum();
    assert!(
        chunks >= 24,
        "{chunks} chunks for 12 documents of ~600 words"
    );
    let info = app
        .get_json(&format!("/v1/rag/knowledge_bases/{kb}"), &key)
        .await
        .unwrap();
    assert_eq!(info["document_count"], 12);
    assert_eq!(info["chunk_count"].as_u64(), Some(chunks));
    let mut figures = Vec::new();
    for (ranking, fusion) in [
        ("dense", "dbsf"),
        ("sparse", "dbsf"),
        ("hybrid", "rrf"),
        ("hybrid", "dbsf"),
    ] {
        let (recall, mrr) = evaluate(&app, &key, &kb, ranking, fusion).await;
        eprintln!(
            "rag quality ({engine:?}, {chunks} chunks, 36 questions): {ranking} ({fusion}): recall@5 {recall:.3}, MRR {mrr:.3}"
        );
        figures.push((ranking, recall, mrr));
    }
    let (dense, hybrid) = (figures[0], figures[3]);
    // Retrieval works at all on real embeddings…
    assert!(dense.1 >= 0.6, "dense recall@5 {}", dense.1);
    assert!(hybrid.1 >= 0.7, "hybrid recall@5 {}", hybrid.1);
    // …and the default (hybrid, DBSF) is the better of the two here.
    assert!(
        hybrid.2 >= dense.2,
        "hybrid MRR {} below dense {}: the default should change",
        hybrid.2,
        dense.2
    );
    // The default ranking is hybrid.
    let r = query(&app, &key, &kb, json!({"query": "error code QX-4471"})).await;
    assert_eq!(r["ranking"], "hybrid");
    assert_eq!(r["fusion"], "dbsf");
    assert_eq!(r["data"].as_array().unwrap().len(), 5);
    assert!(r["usage"]["embedding_tokens"].as_u64().unwrap() > 0);
}

async fn filters_deletes_and_replacement(engine: Engine) {
    let app = rag_app(engine, &[]).await;
    let a = app.create_tenant_on("acme", "standard").unwrap();
    let key = s(&a["api_key"]);
    let kb = create_kb(&app, &key, "notes").await;
    let fern = upload(
        &app,
        &key,
        &kb,
        json!({"text": "# Ferns\n\nWater the maidenhair fern every four days with rainwater.\n", "external_id": "fern",
               "metadata": {"lang": "en", "year": 2024, "reviewed": true}}),
    )
    .await;
    let cactus = upload(
        &app,
        &key,
        &kb,
        json!({"text": "# Cactus\n\nWater the barrel cactus once a month in winter.\n", "external_id": "cactus",
               "metadata": {"lang": "de", "year": 2019}}),
    )
    .await;
    let (fern_id, cactus_id) = (s(&fern["id"]), s(&cactus["id"]));
    assert_eq!(fern["status"], "queued");
    wait_status(&app, &key, &kb, &fern_id, "ready").await;
    wait_status(&app, &key, &kb, &cactus_id, "ready").await;

    // Metadata filters narrow; document_ids narrow.
    let q = |filter: Value| json!({"query": "how often to water", "filter": filter});
    for (filter, expect) in [
        (json!({"lang": "en"}), vec!["fern"]),
        (json!({"year": {"$lt": 2020}}), vec!["cactus"]),
        (
            json!({"lang": {"$in": ["en", "de"]}, "year": {"$gte": 2019}}),
            vec!["cactus", "fern"],
        ),
        (
            json!({"$or": [{"reviewed": true}, {"year": 2019}]}),
            vec!["cactus", "fern"],
        ),
        (json!({"reviewed": {"$exists": false}}), vec!["cactus"]),
        (json!({"lang": {"$ne": "en"}}), vec!["cactus"]),
        (json!({"lang": "fr"}), vec![]),
    ] {
        let r = query(&app, &key, &kb, q(filter.clone())).await;
        let mut got: Vec<String> = r["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| s(&h["external_id"]))
            .collect();
        got.sort();
        got.dedup();
        assert_eq!(got, expect, "filter {filter}");
    }
    let r = query(
        &app,
        &key,
        &kb,
        json!({"query": "water", "document_ids": [cactus_id]}),
    )
    .await;
    assert!(
        r["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["document_id"] == cactus_id.as_str())
    );
    // Bad filters are 422s naming `filter`.
    for bad in [
        json!({"a.b": 1}),
        json!({"k": {"$regex": "x"}}),
        json!({"k": null}),
        json!("lang = en"),
    ] {
        let res = app
            .post(
                &format!("/v1/rag/knowledge_bases/{kb}/query"),
                &key,
                &json!({"query": "x", "filter": bad}),
            )
            .await
            .unwrap();
        let p = problem(res, 422, "validation_error").await.unwrap();
        assert!(p.to_string().contains("filter"), "{p}");
    }

    // Re-uploading an external id replaces the chunks: new version, the
    // same document, the old text gone.
    let v2 = upload(
        &app,
        &key,
        &kb,
        json!({"text": "# Ferns\n\nMist the maidenhair fern daily; never let it dry out.\n", "external_id": "fern",
               "metadata": {"lang": "en", "year": 2025}}),
    )
    .await;
    assert_eq!(s(&v2["id"]), fern_id);
    assert_eq!(v2["pending_version"], 2);
    let v2 = wait_status(&app, &key, &kb, &fern_id, "ready").await;
    assert_eq!(v2["version"], 2);
    let r = query(
        &app,
        &key,
        &kb,
        json!({"query": "maidenhair fern rainwater", "top_k": 10}),
    )
    .await;
    let all = texts(&r).join("\n");
    assert!(all.contains("Mist the maidenhair"), "{all}");
    assert!(
        !all.contains("rainwater"),
        "old chunks still retrieved: {all}"
    );

    // Deleting a document removes its chunks (counted by searching with
    // its id); deleting the knowledge base removes the rest.
    let res = app
        .delete(
            &format!("/v1/rag/knowledge_bases/{kb}/documents/{fern_id}"),
            &key,
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let r = query(&app, &key, &kb, json!({"query": "fern", "document_ids": [fern_id.clone()], "ranking": "dense", "top_k": 50})).await;
    assert_eq!(r["data"].as_array().unwrap().len(), 0);
    let res = app
        .get(
            &format!("/v1/rag/knowledge_bases/{kb}/documents/{fern_id}"),
            &key,
        )
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
    let info = app
        .get_json(&format!("/v1/rag/knowledge_bases/{kb}"), &key)
        .await
        .unwrap();
    assert_eq!(info["document_count"], 1);
    let purged = app
        .delete(
            &format!("/admin/v1/tenants/{}/rag", s(&a["tenant_id"])),
            llmops_tests::OPERATOR_TOKEN,
        )
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
    let purged: Value = purged.json().await.unwrap();
    // The cactus's chunk(s) were still stored.
    assert!(purged["points_deleted"].as_u64().unwrap() >= 1, "{purged}");
    let res = app
        .get(&format!("/v1/rag/knowledge_bases/{kb}"), &key)
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
}

async fn tenants_are_isolated(engine: Engine) {
    let app = rag_app(engine, &[]).await;
    let a = app.create_tenant_on("acme", "standard").unwrap();
    let b = app.create_tenant_on("globex", "standard").unwrap();
    let (ka, kb_key) = (s(&a["api_key"]), s(&b["api_key"]));
    let kb_a = create_kb(&app, &ka, "secrets").await;
    let doc = upload(
        &app,
        &ka,
        &kb_a,
        json!({"text": "The launch code of project Bluefin is 7731-ALPHA.", "external_id": "bluefin",
               "metadata": {"tenant_id": s(&b["tenant_id"])}}),
    )
    .await;
    let doc_a = s(&doc["id"]);
    wait_status(&app, &ka, &kb_a, &doc_a, "ready").await;
    // B's own knowledge base shares the collection (the same model).
    let kb_b = create_kb(&app, &kb_key, "mine").await;
    let d = upload(
        &app,
        &kb_key,
        &kb_b,
        json!({"text": "Globex sells hammocks."}),
    )
    .await;
    wait_status(&app, &kb_key, &kb_b, &s(&d["id"]), "ready").await;

    // Every route on A's objects is a 404 for B.
    for path in [
        format!("/v1/rag/knowledge_bases/{kb_a}"),
        format!("/v1/rag/knowledge_bases/{kb_a}/documents"),
        format!("/v1/rag/knowledge_bases/{kb_a}/documents/{doc_a}"),
    ] {
        let res = app.get(&path, &kb_key).await.unwrap();
        problem(res, 404, "not_found").await.unwrap();
    }
    for (path, body) in [
        (
            format!("/v1/rag/knowledge_bases/{kb_a}/query"),
            json!({"query": "launch code"}),
        ),
        (
            format!("/v1/rag/knowledge_bases/{kb_a}/answer"),
            json!({"question": "launch code?", "model": "smollm2-135m-instruct"}),
        ),
        (
            format!("/v1/rag/knowledge_bases/{kb_a}/documents"),
            json!({"text": "x"}),
        ),
        (
            format!("/v1/rag/knowledge_bases/{kb_a}/documents/{doc_a}/retry"),
            json!({}),
        ),
    ] {
        let res = app.post(&path, &kb_key, &body).await.unwrap();
        problem(res, 404, "not_found").await.unwrap();
    }
    let res = app
        .patch(
            &format!("/v1/rag/knowledge_bases/{kb_a}"),
            &kb_key,
            &json!({"name": "x"}),
        )
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
    for path in [
        format!("/v1/rag/knowledge_bases/{kb_a}/documents/{doc_a}"),
        format!("/v1/rag/knowledge_bases/{kb_a}"),
        // A's document through B's own knowledge base.
        format!("/v1/rag/knowledge_bases/{kb_b}/documents/{doc_a}"),
    ] {
        let res = app.delete(&path, &kb_key).await.unwrap();
        problem(res, 404, "not_found").await.unwrap();
    }
    let list = app
        .get_json("/v1/rag/knowledge_bases", &kb_key)
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // Hostile filters in B's own knowledge base find nothing of A's: a
    // metadata key named like the tenant is only metadata, and no filter
    // widens the tenant's and the knowledge base's conditions.
    for filter in [
        json!({"tenant_id": s(&a["tenant_id"])}),
        json!({"tenant_id": s(&b["tenant_id"])}),
        json!({"$or": [{"tenant_id": {"$exists": true}}, {"tenant_id": {"$exists": false}}]}),
        json!({"$or": [{"x": {"$exists": false}}]}),
    ] {
        for ranking in ["dense", "sparse", "hybrid"] {
            let r = query(
                &app,
                &kb_key,
                &kb_b,
                json!({"query": "launch code of project Bluefin 7731-ALPHA", "filter": filter, "ranking": ranking, "top_k": 50}),
            )
            .await;
            assert!(
                !texts(&r).join(" ").contains("Bluefin"),
                "{ranking} {filter} leaked: {r}"
            );
        }
    }
    let r = query(
        &app,
        &kb_key,
        &kb_b,
        json!({"query": "7731-ALPHA", "document_ids": [doc_a], "top_k": 50}),
    )
    .await;
    assert!(r["data"].as_array().unwrap().is_empty(), "{r}");
    // Scores say nothing of other tenants' texts: B's BM25 score for its
    // own word is the same before and after A stores that word many times
    // (IDF is per knowledge base, not the shared collection's).
    let sparse = |r: Value| r["data"][0]["score"].as_f64().unwrap();
    let hammocks = json!({"query": "hammocks", "ranking": "sparse"});
    let before = sparse(query(&app, &kb_key, &kb_b, hammocks.clone()).await);
    let flood = (0..30)
        .map(|i| format!("Paragraph {i}: hammocks, hammocks and more hammocks for sale."))
        .collect::<Vec<_>>()
        .join("\n\n");
    let f = upload(&app, &ka, &kb_a, json!({"text": flood})).await;
    wait_status(&app, &ka, &kb_a, &s(&f["id"]), "ready").await;
    let after = sparse(query(&app, &kb_key, &kb_b, hammocks).await);
    assert_eq!(before, after, "B's score moved with A's documents");
    // And A still has its document.
    let r = query(
        &app,
        &ka,
        &kb_a,
        json!({"query": "launch code of project Bluefin"}),
    )
    .await;
    assert!(texts(&r).join(" ").contains("7731-ALPHA"));
    // A key without the `rag` scope is refused.
    let inference_only = app.key_with_scope(&ka, "inference").await.unwrap();
    let res = app
        .get("/v1/rag/knowledge_bases", &inference_only)
        .await
        .unwrap();
    problem(res, 403, "insufficient_scope").await.unwrap();
}

async fn answers_cite_retrieved_chunks(engine: Engine) {
    let app = rag_app(engine, &[]).await;
    let a = app.create_tenant_on("acme", "standard").unwrap();
    let key = s(&a["api_key"]);
    let (kb, _) = ingest_corpus(&app, &key, "handbook").await;
    let question = "What phone extension reaches the Halvard IT service desk?";
    let retrieved = query(&app, &key, &kb, json!({"query": question, "top_k": 4})).await;
    let ids: Vec<String> = retrieved["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| s(&h["chunk_id"]))
        .collect();
    let res = app
        .post(
            &format!("/v1/rag/knowledge_bases/{kb}/answer"),
            &key,
            &json!({"question": question, "model": "smollm2-135m-instruct", "max_tokens": 48}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ans: Value = res.json().await.unwrap();
    assert_eq!(ans["grounded"], true, "{ans}");
    assert!(!s(&ans["answer"]).is_empty());
    let cites = ans["citations"].as_array().unwrap();
    assert!(!cites.is_empty());
    for (i, c) in cites.iter().enumerate() {
        assert_eq!(c["marker"], i + 1);
        assert!(
            ids.contains(&s(&c["chunk_id"])),
            "cited {c} was not retrieved: {ids:?}"
        );
        assert!(c["end"].as_u64() > c["start"].as_u64());
    }
    // The span is the chunk's text in the document.
    let vpn = corpus()
        .into_iter()
        .find(|(slug, _)| slug == "vpn-setup-guide")
        .unwrap()
        .1;
    let first = &cites[0];
    if first["external_id"] == "vpn-setup-guide" {
        let chars: Vec<char> = vpn.chars().collect();
        let span: String = chars
            [first["start"].as_u64().unwrap() as usize..first["end"].as_u64().unwrap() as usize]
            .iter()
            .collect();
        assert!(
            retrieved["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| s(&h["text"]) == span)
        );
    }
    assert!(ans["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(ans["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    // Nothing relevant: said, not invented, and nothing generated.
    let ans: Value = app
        .post(
            &format!("/v1/rag/knowledge_bases/{kb}/answer"),
            &key,
            &json!({"question": "Who won the 1966 football world cup final?", "model": "smollm2-135m-instruct"}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ans["grounded"], false, "{ans}");
    assert_eq!(ans["answer"], llmops_rag_nothing_relevant());
    assert_eq!(ans["citations"].as_array().unwrap().len(), 0);
    assert_eq!(ans["usage"]["completion_tokens"], 0);

    // Streamed: citations first, deltas, then the whole answer.
    let res = app
        .post(
            &format!("/v1/rag/knowledge_bases/{kb}/answer"),
            &key,
            &json!({"question": question, "model": "smollm2-135m-instruct", "max_tokens": 24, "stream": true}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(llmops_tests::header(&res, "content-type").starts_with("text/event-stream"));
    let body = res.text().await.unwrap();
    let events: Vec<(&str, Value)> = body
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let name = lines.next().unwrap().trim_start_matches("event: ");
            let data = lines.next().unwrap().trim_start_matches("data: ");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect();
    assert_eq!(events.first().unwrap().0, "citations");
    assert_eq!(events.last().unwrap().0, "done");
    let deltas: String = events
        .iter()
        .filter(|(n, _)| *n == "delta")
        .map(|(_, d)| s(&d["text"]))
        .collect();
    assert!(!deltas.is_empty());
    assert_eq!(s(&events.last().unwrap().1["answer"]), deltas);
    // Bad requests.
    for (body, field) in [
        (json!({"question": "x", "model": "nope"}), None),
        (
            json!({"question": " ", "model": "smollm2-135m-instruct"}),
            Some("question"),
        ),
        (
            json!({"question": "x", "model": "smollm2-135m-instruct", "max_tokens": 5000}),
            Some("max_tokens"),
        ),
        (
            json!({"question": "x", "model": "all-minilm-l6-v2"}),
            Some("model"),
        ),
    ] {
        let res = app
            .post(&format!("/v1/rag/knowledge_bases/{kb}/answer"), &key, &body)
            .await
            .unwrap();
        match field {
            None => {
                problem(res, 404, "not_found").await.unwrap();
            }
            Some(f) => {
                let p = problem(res, 422, "validation_error").await.unwrap();
                assert!(p.to_string().contains(f), "{p}");
            }
        }
    }
}

fn llmops_rag_nothing_relevant() -> &'static str {
    "I could not find anything relevant to this question in the knowledge base."
}

/// Ingestion fails while serving is down, is retried with backoff, shows
/// `failed` with the reason, and succeeds when retried after serving is
/// back (a restart onto a working Triton, the same database and data).
async fn failed_ingestion_is_retried(engine: Engine) {
    let mut app = rag_app(
        engine,
        &[
            ("LLMOPS_TRITON_URL", "http://127.0.0.1:9"),
            ("LLMOPS_RAG_INGEST_MAX_ATTEMPTS", "2"),
        ],
    )
    .await;
    let a = app.create_tenant_on("acme", "standard").unwrap();
    let key = s(&a["api_key"]);
    let kb = create_kb(&app, &key, "kb").await;
    let d = upload(
        &app,
        &key,
        &kb,
        json!({"text": "Lighthouses guide ships at night."}),
    )
    .await;
    let id = s(&d["id"]);
    let failed = wait_status(&app, &key, &kb, &id, "failed").await;
    assert_eq!(failed["attempts"], 2);
    assert!(s(&failed["error"]).contains("unavailable"), "{failed}");
    assert_eq!(failed["version"], 0);
    // Not retrievable meanwhile (and querying needs serving too: 503).
    let res = app
        .post(
            &format!("/v1/rag/knowledge_bases/{kb}/query"),
            &key,
            &json!({"query": "ships"}),
        )
        .await
        .unwrap();
    problem(res, 503, "service_unavailable").await.unwrap();
    // Serving comes back: restart onto the real Triton.
    app.kill_server(0);
    app.servers.remove(0);
    app.set_env("LLMOPS_TRITON_URL", Some(&triton_url().unwrap()));
    app.start_server().unwrap();
    let res = app
        .post(
            &format!("/v1/rag/knowledge_bases/{kb}/documents/{id}/retry"),
            &key,
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let ready = wait_status(&app, &key, &kb, &id, "ready").await;
    assert_eq!(ready["version"], 1);
    assert_eq!(ready["error"], Value::Null);
    let res = app
        .post(
            &format!("/v1/rag/knowledge_bases/{kb}/documents/{id}/retry"),
            &key,
            &json!({}),
        )
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();
    let r = query(
        &app,
        &key,
        &kb,
        json!({"query": "what guides ships at night"}),
    )
    .await;
    assert!(texts(&r).join(" ").contains("Lighthouses"));
}

macro_rules! matrix {
    ($($case:ident),* $(,)?) => {
        mod edge {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::Engine::Edge).await })*
        }
        mod qdrant_server {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "Qdrant server half: runs when TEST_QDRANT_URL is set"]
            async fn $case() { super::$case(super::Engine::Server).await })*
        }
    };
}

matrix!(
    retrieval_quality,
    filters_deletes_and_replacement,
    tenants_are_isolated,
    answers_cite_retrieved_chunks,
    failed_ingestion_is_retried,
);

/// The SmolLM2 tokenizer.json the repository ships (converted from the
/// GGUF by infra/triton/lib/gguf_tokenizer.py) tokenizes as llama.cpp does.
#[test]
fn shipped_smollm_tokenizer_matches_llama_cpp() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var("TEST_TOKENIZER_PYTHON").expect("TEST_TOKENIZER_PYTHON");
    let gguf = std::env::var("TEST_SMOLLM_GGUF").expect("TEST_SMOLLM_GGUF");
    let corpus: Vec<String> = corpus()
        .iter()
        .map(|(slug, _)| format!("tests/corpus/rag/{slug}.md"))
        .collect();
    let out = std::process::Command::new(python)
        .current_dir(&root)
        .arg("infra/triton/lib/gguf_tokenizer.py")
        .arg("--check")
        .arg(gguf)
        .arg("infra/triton/models/smollm2-135m-instruct/tokenizer.json")
        .args(&corpus)
        .arg("README.md")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 differ"), "{stdout}");
}

/// A one-page PDF; with `text`, a text layer in Helvetica.
fn pdf(text: Option<&str>) -> Vec<u8> {
    let content = match text {
        Some(t) => format!("BT /F1 12 Tf 72 720 Td ({t}) Tj ET"),
        None => "0 0 1 rg 72 72 200 200 re f".to_string(),
    };
    pdf_of(&[
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ])
}

/// A PDF whose page draws a form that draws itself: a reader that follows
/// it without a depth limit recurses until its stack overflows.
fn recursive_pdf() -> Vec<u8> {
    let draw = "/X1 Do";
    pdf_of(&[
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /XObject << /X1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{draw}\nendstream", draw.len()),
        format!("<< /Type /XObject /Subtype /Form /BBox [0 0 100 100] /Resources << /XObject << /X1 5 0 R >> >> /Length {} >>\nstream\n{draw}\nendstream", draw.len()),
    ])
}

/// A PDF of a catalog (1), one page tree (2) and `objects` from 3 on.
fn pdf_of(objects: &[String]) -> Vec<u8> {
    let mut all = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
    ];
    all.extend_from_slice(objects);
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in all.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", all.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            all.len() + 1
        )
        .as_bytes(),
    );
    out
}

async fn upload_form(app: &TestApp, key: &str, kb: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/rag/knowledge_bases/{kb}/documents")))
        .bearer_auth(key)
        .header(
            "content-type",
            format!(
                "multipart/form-data; boundary={}",
                crate::training_api::BOUNDARY
            ),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

use crate::training_api::form_typed as form;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_and_bad_uploads() {
    let app = rag_app(Engine::Edge, &[("LLMOPS_RAG_MAX_DOCUMENT_BYTES", "20000")]).await;
    let a = app.create_tenant_on("acme", "standard").unwrap();
    let key = s(&a["api_key"]);
    let kb = create_kb(&app, &key, "files").await;
    // PDF with a text layer, HTML, Markdown by file name.
    let html =
        b"<html><body><h1>Orchids</h1><p>Orchids like bark, not soil.</p></body></html>".to_vec();
    let mut ids = Vec::new();
    for (bytes, name, mime) in [
        (
            pdf(Some("Tulips bloom in April in the Keukenhof gardens.")),
            "tulips.pdf",
            "application/pdf",
        ),
        (html, "orchids.html", "text/html"),
        (
            b"# Moss\n\nMoss grows on the north side.".to_vec(),
            "moss.md",
            "application/octet-stream",
        ),
    ] {
        let body = form(
            &[("metadata", r#"{"source": "upload"}"#)],
            Some((name, mime, &bytes)),
        );
        let res = upload_form(&app, &key, &kb, body).await;
        assert_eq!(res.status(), 202, "{name}: {}", res.text().await.unwrap());
        let d: Value = res.json().await.unwrap();
        assert_eq!(d["filename"], name);
        ids.push((s(&d["id"]), s(&d["content_type"])));
    }
    assert_eq!(
        ids.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["application/pdf", "text/html", "text/markdown"]
    );
    for (id, _) in &ids {
        wait_status(&app, &key, &kb, id, "ready").await;
    }
    for (q, expect) in [
        ("When do tulips bloom?", "Keukenhof"),
        ("What do orchids grow in?", "bark"),
        ("Where does moss grow?", "north side"),
    ] {
        let r = query(&app, &key, &kb, json!({"query": q, "top_k": 1})).await;
        assert!(texts(&r).join(" ").contains(expect), "{q}: {r}");
    }
    // What is refused, and how.
    let scan = form(&[], Some(("scan.pdf", "application/pdf", &pdf(None))));
    let p = problem(
        upload_form(&app, &key, &kb, scan).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    assert!(s(&p["detail"]).contains("no text layer"), "{p}");
    // A hostile PDF ends its reader's process, not the server's.
    let hostile = form(&[], Some(("loop.pdf", "application/pdf", &recursive_pdf())));
    problem(
        upload_form(&app, &key, &kb, hostile).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    let alive = app
        .get_json(&format!("/v1/rag/knowledge_bases/{kb}"), &key)
        .await
        .unwrap();
    assert_eq!(alive["id"], kb.as_str());
    let junk = form(&[], Some(("x.pdf", "application/pdf", b"%PDF-1.7 junk")));
    problem(
        upload_form(&app, &key, &kb, junk).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    let latin1 = form(
        &[],
        Some(("x.txt", "text/plain", &[0x63, 0x61, 0x66, 0xe9])),
    );
    problem(
        upload_form(&app, &key, &kb, latin1).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    let nofile = form(&[("external_id", "x")], None);
    problem(
        upload_form(&app, &key, &kb, nofile).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    let extra = form(&[("owner", "me")], Some(("x.txt", "text/plain", b"x")));
    problem(
        upload_form(&app, &key, &kb, extra).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    let big = form(&[], Some(("big.txt", "text/plain", &[b'a'; 30000])));
    problem(
        upload_form(&app, &key, &kb, big).await,
        413,
        "payload_too_large",
    )
    .await
    .unwrap();
    let path = format!("/v1/rag/knowledge_bases/{kb}/documents");
    for (body, status, code) in [
        (json!({"text": ""}), 422, "validation_error"),
        (json!({"text": "x", "surprise": 1}), 422, "validation_error"),
        (
            json!({"text": "x", "metadata": {"nested": {"a": 1}}}),
            422,
            "validation_error",
        ),
        (
            json!({"text": "x", "metadata": {"bad key": 1}}),
            422,
            "validation_error",
        ),
        (
            json!({"text": "x", "content_type": "image/png"}),
            422,
            "validation_error",
        ),
        (
            json!({"text": "x", "external_id": ""}),
            422,
            "validation_error",
        ),
    ] {
        let res = app.post(&path, &key, &body).await.unwrap();
        problem(res, status, code).await.unwrap();
    }
    let res = app
        .client
        .post(app.url(&path))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    problem(res, 415, "unsupported_media_type").await.unwrap();
    // Knowledge bases: bad settings and names.
    for body in [
        json!({"name": "x", "embedding_model": "smollm2-135m-instruct"}),
        json!({"name": "x", "embedding_model": "nope"}),
        json!({"name": " ", "embedding_model": "all-minilm-l6-v2"}),
        json!({"name": "x", "embedding_model": "all-minilm-l6-v2", "chunking": {"max_tokens": 400}}),
        json!({"name": "x", "embedding_model": "all-minilm-l6-v2", "chunking": {"max_tokens": 64, "overlap_tokens": 40}}),
    ] {
        let res = app
            .post("/v1/rag/knowledge_bases", &key, &body)
            .await
            .unwrap();
        problem(res, 422, "validation_error").await.unwrap();
    }
    let res = app
        .post(
            "/v1/rag/knowledge_bases",
            &key,
            &json!({"name": "files", "embedding_model": "all-minilm-l6-v2"}),
        )
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();
    // Updates keep what shapes the chunks.
    let res = app
        .patch(
            &format!("/v1/rag/knowledge_bases/{kb}"),
            &key,
            &json!({"embedding_model": "x"}),
        )
        .await
        .unwrap();
    problem(res, 422, "validation_error").await.unwrap();
    let kb2 = app
        .patch(
            &format!("/v1/rag/knowledge_bases/{kb}"),
            &key,
            &json!({"name": "files-2", "metadata": {"team": "ops"}}),
        )
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(kb2["name"], "files-2");
    assert_eq!(kb2["metadata"]["team"], "ops");
    assert_eq!(kb2["document_count"], 3);
    // Pages.
    let page = app
        .get_json(
            &format!("/v1/rag/knowledge_bases/{kb}/documents?limit=2"),
            &key,
        )
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    let rest = app
        .get_json(
            &format!(
                "/v1/rag/knowledge_bases/{kb}/documents?limit=2&after={}",
                s(&page["last_id"])
            ),
            &key,
        )
        .await
        .unwrap();
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["has_more"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_caps_and_metering() {
    let app = rag_app(Engine::Edge, &[("LLMOPS_RAG_STORAGE_METER_SECS", "1")]).await;
    let (tenant, key) = app.tenant_on_plan("tiny", 600, 1_000_000, 8).await.unwrap();
    let caps = app
        .put(
            "/admin/v1/plans/plan-tiny/rag_limits",
            llmops_tests::OPERATOR_TOKEN,
            &json!({"max_knowledge_bases": 1, "max_documents": 2, "max_chunks": 3}),
        )
        .await
        .unwrap();
    assert_eq!(caps.status(), 200);
    let got = app
        .get_json(
            "/admin/v1/plans/plan-tiny/rag_limits",
            llmops_tests::OPERATOR_TOKEN,
        )
        .await
        .unwrap();
    assert_eq!(got["max_chunks"], 3);
    let res = app
        .get(
            "/admin/v1/plans/nope/rag_limits",
            llmops_tests::OPERATOR_TOKEN,
        )
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();
    let kb = create_kb(&app, &key, "one").await;
    let res = app
        .post(
            "/v1/rag/knowledge_bases",
            &key,
            &json!({"name": "two", "embedding_model": "all-minilm-l6-v2"}),
        )
        .await
        .unwrap();
    problem(res, 403, "quota_exceeded").await.unwrap();
    let d1 = upload(
        &app,
        &key,
        &kb,
        json!({"text": "Alpacas hum when content.", "external_id": "a"}),
    )
    .await;
    let d2 = upload(
        &app,
        &key,
        &kb,
        json!({"text": "Llamas spit when annoyed.", "external_id": "b"}),
    )
    .await;
    wait_status(&app, &key, &kb, &s(&d1["id"]), "ready").await;
    wait_status(&app, &key, &kb, &s(&d2["id"]), "ready").await;
    let res = app
        .post(
            &format!("/v1/rag/knowledge_bases/{kb}/documents"),
            &key,
            &json!({"text": "Vicuñas are wild."}),
        )
        .await
        .unwrap();
    problem(res, 403, "quota_exceeded").await.unwrap();
    // A new version that would pass the chunk cap fails with the reason;
    // the old version stays searchable.
    let long = (0..40)
        .map(|i| format!("Paragraph {i} about alpaca fleece, shearing and spinning yarn by hand."))
        .collect::<Vec<_>>()
        .join("\n\n");
    upload(&app, &key, &kb, json!({"text": long, "external_id": "a"})).await;
    let failed = wait_status(&app, &key, &kb, &s(&d1["id"]), "failed").await;
    assert!(s(&failed["error"]).contains("quota"), "{failed}");
    assert_eq!(failed["version"], 1);
    let r = query(
        &app,
        &key,
        &kb,
        json!({"query": "what do alpacas do when content"}),
    )
    .await;
    assert!(texts(&r).join(" ").contains("hum"));

    // Metering: embedding tokens of ingestion and queries, one rag query
    // each, and stored chunks sampled per window.
    let embedded = crate::training_lifecycle::usage_events(&app, &tenant, "embedding_tokens").await;
    assert!(embedded.len() >= 3, "{embedded:?}");
    assert!(
        embedded
            .iter()
            .all(|(_, q, d)| *q > 0 && d["model"] == "all-minilm-l6-v2")
    );
    let queries = crate::training_lifecycle::usage_events(&app, &tenant, "rag_queries").await;
    assert_eq!(queries.len(), 1, "{queries:?}");
    let mut stored = Vec::new();
    for _ in 0..50 {
        stored = crate::training_lifecycle::usage_events(&app, &tenant, "vector_storage").await;
        if !stored.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, quantity, dims) = stored.last().expect("a vector_storage event");
    assert_eq!(*quantity, 2, "two one-chunk documents stored");
    assert_eq!(dims["collection"], "rag__all-minilm-l6-v2");
}
