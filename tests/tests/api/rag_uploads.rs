//! Knowledge bases: what uploads may be (formats, hostile and bad
//! files), plan caps and metering, and the chat model's shipped tokenizer.
//! Helpers and the engine matrix are in `rag.rs`.

use crate::rag::{Engine, corpus, create_kb, query, rag_app, texts, upload, wait_status};
use llmops_tests::{TestApp, problem, s};
use serde_json::{Value, json};
use std::time::Duration;

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
    // The query's events are handed to the ledger as its answer goes out:
    // they may land a moment later.
    let mut embedded = Vec::new();
    for _ in 0..50 {
        embedded = crate::training_lifecycle::usage_events(&app, &tenant, "embedding_tokens").await;
        if embedded.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(embedded.len() >= 3, "{embedded:?}");
    assert!(
        embedded
            .iter()
            .all(|(_, q, d)| *q > 0 && d["model"] == "all-minilm-l6-v2")
    );
    let mut queries = Vec::new();
    for _ in 0..50 {
        queries = crate::training_lifecycle::usage_events(&app, &tenant, "rag_queries").await;
        if !queries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(queries.len(), 1, "{queries:?}");
    // A window sampled while the second document was still being
    // stored counts one chunk; a later window counts both.
    let mut stored = Vec::new();
    for _ in 0..100 {
        stored = crate::training_lifecycle::usage_events(&app, &tenant, "vector_storage").await;
        if stored.last().is_some_and(|(_, q, _)| *q == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, quantity, dims) = stored.last().expect("a vector_storage event");
    assert_eq!(*quantity, 2, "two one-chunk documents stored");
    assert_eq!(dims["collection"], "rag__all-minilm-l6-v2");
}
