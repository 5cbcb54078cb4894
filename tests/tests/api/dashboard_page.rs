//! The dashboard's page: its files served with a strict policy, and the
//! whole dashboard in a real Chromium (`tests/browser/dashboard.mjs`).

use crate::dashboard::PASSWORD;
use llmops_tests::{Backend, TestApp, header, s, with_triton};
use serde_json::{Value, json};

/// The page and its files: a strict policy, revalidation, nothing outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_files_are_served_with_a_strict_policy() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let res = app.client.get(app.url("/dashboard")).send().await.unwrap();
    // reqwest follows the redirect to the page.
    assert_eq!(res.url().path(), "/dashboard/");
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    let csp = header(&res, "content-security-policy");
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(header(&res, "referrer-policy"), "no-referrer");
    let etag = header(&res, "etag");
    let html = res.text().await.unwrap();
    assert!(html.contains("<html") && html.contains("lang="), "{html}");
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "inline code: {html}"
    );
    let res = app
        .client
        .get(app.url("/dashboard/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    for bad in [
        "/dashboard/nope.js",
        "/dashboard/%2e%2e/Cargo.toml",
        "/dashboard/.hidden",
    ] {
        let res = app.client.get(app.url(bad)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{bad}");
    }
}

/// The dashboard end to end in Debian's Chromium (playwright-core): sign in,
/// a key seen once, a streamed chat, invoices, revocation, an invitation,
/// sign out, a second tenant that sees none of it, CSRF refusals, axe-core
/// on every view, and screenshots at desktop and phone widths (kept under
/// `TEST_OUTPUT_DIR`, default `target/test-output`, in `dashboard/`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let app = TestApp::spawn_with(Backend::Postgres, with_triton().unwrap())
        .await
        .unwrap();
    let (ta, ka) = app.tenant_on_plan("acme", 1000, 200_000, 10).await.unwrap();
    app.tenant_on_plan("globex", 1000, 200_000, 10)
        .await
        .unwrap();
    app.price_tokens("plan-acme").await.unwrap();
    // Something in A's registry and a past invoice (a closed period with a
    // chat call in it) for the browser to find, or B to not find.
    let res = app
        .post(
            "/v1/registry/models",
            &ka,
            &json!({"name": "acme-secret-model"}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .post(
            "/v1/chat/completions",
            &ka,
            &json!({"model": "smollm2-135m-instruct", "max_tokens": 4, "temperature": 0.7,
                    "messages": [{"role": "user", "content": "Say hi"}]}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let now = chrono::Utc::now();
    let res = app
        .admin_post(
            "/admin/v1/billing/close-period",
            &json!({"tenant_id": ta, "period_start": (now - chrono::Duration::days(1)).to_rfc3339(),
                    "period_end": (now + chrono::Duration::seconds(1)).to_rfc3339()}),
        )
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );

    // The printable invoice opens on the dashboard's origin: it runs no
    // script and is not kept.
    let invoices = app.get_json("/v1/invoices", &ka).await.unwrap();
    let id = s(&invoices["data"][0]["id"]);
    let res = app
        .get(&format!("/v1/invoices/{id}/html"), &ka)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = header(&res, "content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "{csp}"
    );
    assert_eq!(header(&res, "cache-control"), "no-store, private");

    let out = std::env::var("TEST_OUTPUT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-output")
        })
        .join("dashboard");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("tests/browser/dashboard.mjs");
    let mut cmd = std::process::Command::new("node");
    llmops_tests::clean_env(&mut cmd);
    let base = app.url("");
    let output = cmd
        .arg(&script)
        .current_dir(root.join("tests/browser"))
        .env("BASE_URL", base.trim_end_matches('/'))
        .env("TENANT_A_EMAIL", "admin@acme.test")
        .env("TENANT_A_PASSWORD", PASSWORD)
        .env("TENANT_B_EMAIL", "admin@globex.test")
        .env("TENANT_B_PASSWORD", PASSWORD)
        .env("CHAT_MODEL", "smollm2-135m-instruct")
        .env("OUT_DIR", &out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok "), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Every view at both widths, and the axe report.
    let shots: Vec<String> = std::fs::read_dir(out.join("screenshots"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    for view in ["overview", "keys", "playground", "billing", "users"] {
        for width in ["desktop", "phone"] {
            let name = format!("{view}-{width}.png");
            assert!(shots.contains(&name), "{name} missing from {shots:?}");
        }
    }
    let axe: Value = serde_json::from_slice(&std::fs::read(out.join("axe.json")).unwrap()).unwrap();
    assert!(
        axe.as_object().is_some_and(|o| !o.is_empty())
            || axe.as_array().is_some_and(|a| !a.is_empty()),
        "{axe}"
    );
}
