//! The registry's artifacts: uploads verified against their checksums,
//! the same flows on an S3-compatible store (moto), and a 200 MB artifact
//! streamed both ways without being buffered. The rest of the registry is
//! in `registry.rs`.

use super::registry::{artifact_files, new_model, new_version, sha_hex, tenant, upload};
use bytes::Bytes;
use futures_util::StreamExt;
use llmops_tests::{Backend, TestApp, on_both_backends, problem, s};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_backends!(artifact_upload_verifies_checksums);

async fn artifact_upload_verifies_checksums(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let (_, reg) = tenant(&app, "acme").await;
    new_model(&app, &reg, json!({"name": "tiny"})).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let good = sha_hex(&data);
    let v = new_version(
        &app,
        &reg,
        "tiny",
        json!({"format": "gguf", "quantization": "gguf_q4_1", "sha256": good, "size_bytes": data.len()}),
    )
    .await;
    assert_eq!(v["status"], "pending");
    assert_eq!(v["artifact_uri"], Value::Null);
    // Not uploaded yet: no artifact to download.
    let res = app
        .get("/v1/registry/models/tiny/versions/1/artifact", &reg)
        .await
        .unwrap();
    problem(res, 404, "not_found").await.unwrap();

    // Wrong bytes: refused, nothing kept, still pending.
    let mut wrong = data.clone();
    wrong[1000] ^= 0xff;
    let res = upload(&app, &reg, "tiny", 1, wrong).await;
    let p = problem(res, 422, "validation_error").await.unwrap();
    assert!(s(&p["detail"]).contains("checksum mismatch"), "{p}");
    assert_eq!(
        artifact_files(&app),
        0,
        "a refused upload leaves nothing behind"
    );
    let v1 = app
        .get_json("/v1/registry/models/tiny/versions/1", &reg)
        .await
        .unwrap();
    assert_eq!(v1["status"], "pending");

    // The right bytes: ready, with size and checksum, downloadable.
    let res = upload(&app, &reg, "tiny", 1, data.clone()).await;
    assert_eq!(res.status(), 200);
    let v1: Value = res.json().await.unwrap();
    assert_eq!(v1["status"], "ready");
    assert_eq!(v1["sha256"], good.as_str());
    assert_eq!(v1["size_bytes"], data.len());
    assert!(v1["ready_at"].is_string());
    assert_eq!(
        v1["artifact_uri"],
        "/v1/registry/models/tiny/versions/1/artifact"
    );
    let res = app
        .get("/v1/registry/models/tiny/versions/1/artifact", &reg)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("x-checksum-sha256")
            .and_then(|v| v.to_str().ok()),
        Some(good.as_str())
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
    assert_eq!(artifact_files(&app), 1);

    // Identity is immutable once ready.
    let res = upload(&app, &reg, "tiny", 1, data.clone()).await;
    problem(res, 409, "conflict").await.unwrap();
    let res = app
        .patch(
            "/v1/registry/models/tiny/versions/1",
            &reg,
            &json!({"metrics": {"eval_loss": 0.1}}),
        )
        .await
        .unwrap();
    problem(res, 409, "conflict").await.unwrap();
    for bad in [json!({"sha256": "abc"}), json!({"format": "safetensors"})] {
        let res = app
            .patch("/v1/registry/models/tiny/versions/1", &reg, &bad)
            .await
            .unwrap();
        problem(res, 422, "validation_error").await.unwrap();
    }
    // Description and tags stay editable.
    let res = app
        .patch(
            "/v1/registry/models/tiny/versions/1",
            &reg,
            &json!({"description": "first", "tags": {"k": "v"}}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A version without a declared checksum takes what it gets; a declared
    // size that does not match is refused.
    new_version(
        &app,
        &reg,
        "tiny",
        json!({"format": "gguf", "size_bytes": 10}),
    )
    .await;
    let res = upload(&app, &reg, "tiny", 2, vec![1, 2, 3]).await;
    problem(res, 422, "validation_error").await.unwrap();
    new_version(&app, &reg, "tiny", json!({"format": "gguf"})).await;
    let res = upload(&app, &reg, "tiny", 3, vec![1, 2, 3]).await;
    let v3: Value = res.json().await.unwrap();
    assert_eq!(v3["sha256"], sha_hex(&[1, 2, 3]).as_str());

    if backend == Backend::Postgres {
        large_artifact_round_trip(&app, &reg).await;
    }
}

/// Keys in an S3 bucket (moto answers unsigned requests).
async fn bucket_keys(client: &reqwest::Client, endpoint: &str, bucket: &str) -> Vec<String> {
    let xml = client
        .get(format!("{endpoint}/{bucket}?list-type=2"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    xml.split("<Key>")
        .skip(1)
        .filter_map(|part| part.split("</Key>").next())
        .map(String::from)
        .collect()
}

/// The same artifact flows with an S3-compatible store (moto) behind
/// `object_store`: multipart upload, verification, download, deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_in_an_s3_bucket() {
    let endpoint = llmops_tests::s3_endpoint().unwrap();
    let bucket = format!("llmops-{}", ulid::Ulid::new().to_string().to_lowercase());
    let app = TestApp::spawn_with(
        Backend::Postgres,
        llmops_tests::Options {
            env: vec![
                (
                    "LLMOPS_ARTIFACTS_URL".into(),
                    format!("s3://{bucket}/artifacts"),
                ),
                ("LLMOPS_S3_ENDPOINT".into(), endpoint.clone()),
                ("LLMOPS_S3_ALLOW_HTTP".into(), "true".into()),
                ("LLMOPS_S3_ACCESS_KEY_ID".into(), "testing".into()),
                (
                    "LLMOPS_S3_SECRET_ACCESS_KEY".into(),
                    "testing-secret".into(),
                ),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Without its bucket the store is not ready.
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let res = app
        .client
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "creating the bucket: {}",
        res.status()
    );
    let ready = app.get_public_json("/readyz").await.unwrap();
    assert_eq!(ready["checks"]["artifact_store"], "ok", "{ready}");

    let (_, reg) = tenant(&app, "acme").await;
    new_model(&app, &reg, json!({"name": "s3m"})).await;
    // 20 MiB: several multipart parts.
    let data: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    let sha = sha_hex(&data);
    new_version(
        &app,
        &reg,
        "s3m",
        json!({"format": "safetensors", "sha256": sha}),
    )
    .await;
    let mut wrong = data.clone();
    wrong[17] ^= 1;
    problem(
        upload(&app, &reg, "s3m", 1, wrong).await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    assert_eq!(
        bucket_keys(&app.client, &endpoint, &bucket).await,
        Vec::<String>::new()
    );
    assert_eq!(
        upload(&app, &reg, "s3m", 1, data.clone()).await.status(),
        200
    );
    let keys = bucket_keys(&app.client, &endpoint, &bucket).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("artifacts/tenants/ten_"), "{keys:?}");
    let res = app
        .get("/v1/registry/models/s3m/versions/1/artifact", &reg)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = res.bytes().await.unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(sha_hex(&got), sha);
    assert_eq!(
        app.delete("/v1/registry/models/s3m", &reg)
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        bucket_keys(&app.client, &endpoint, &bucket).await,
        Vec::<String>::new()
    );
}

/// 200 MB, far over the 1 MiB JSON body limit, streamed both ways; the
/// server's memory stays well under the artifact's size.
async fn large_artifact_round_trip(app: &TestApp, reg: &str) {
    const CHUNK: usize = 1024 * 1024;
    const CHUNKS: usize = 200;
    let chunk = |i: usize| -> Bytes {
        let mut c = vec![0u8; CHUNK];
        let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for b in c.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        Bytes::from(c)
    };
    let mut hasher = Sha256::new();
    for i in 0..CHUNKS {
        hasher.update(chunk(i));
    }
    let sha = hex::encode(hasher.finalize());
    new_model(app, reg, json!({"name": "big"})).await;
    new_version(
        app,
        reg,
        "big",
        json!({"format": "safetensors", "sha256": sha}),
    )
    .await;

    let rss_before = app.servers[0].peak_rss_kib().unwrap();
    let body =
        futures_util::stream::iter((0..CHUNKS).map(move |i| Ok::<_, std::io::Error>(chunk(i))));
    let res = app
        .client
        .put(app.url("/v1/registry/models/big/versions/1/artifact"))
        .bearer_auth(reg)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let res = app
        .get("/v1/registry/models/big/versions/1/artifact", reg)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let mut hasher = Sha256::new();
    let mut size = 0usize;
    while let Some(part) = stream.next().await {
        let part = part.unwrap();
        size += part.len();
        hasher.update(&part);
    }
    assert_eq!(size, CHUNK * CHUNKS);
    assert_eq!(hex::encode(hasher.finalize()), sha);
    let rss_after = app.servers[0].peak_rss_kib().unwrap();
    let grew_mib = (rss_after.saturating_sub(rss_before)) / 1024;
    assert!(
        grew_mib < 100,
        "peak RSS grew by {grew_mib} MiB moving a 200 MiB artifact: it was buffered"
    );
}
