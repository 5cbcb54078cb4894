use llmops_tests::{Backend, Options, TempDir, TestApp, header, on_both_backends, problem, s};
use serde_json::json;
use std::time::Duration;

on_both_backends!(
    requests_per_minute_is_enforced_with_headers,
    per_key_limit_is_below_the_tenant_limit
);

async fn requests_per_minute_is_enforced_with_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    // 60 per minute: one request per second of budget, burst of 60.
    let (_, key) = app.tenant_on_plan("acme", 60, 1000, 10).await.unwrap();
    for i in 0..60u32 {
        let res = app.get("/v1/tenant", &key).await.unwrap();
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(header(&res, "x-ratelimit-limit-requests"), "60");
        let remaining: u32 = header(&res, "x-ratelimit-remaining-requests")
            .parse()
            .unwrap();
        // Time passes while we send, so budget may trickle back, never more.
        assert!(
            remaining >= 59 - i && remaining <= 59,
            "request {i}: {remaining}"
        );
        assert_eq!(header(&res, "x-ratelimit-limit-tokens"), "1000");
        assert_eq!(header(&res, "x-ratelimit-remaining-tokens"), "1000");
        assert!(!header(&res, "x-ratelimit-reset-requests").is_empty());
    }
    // Drain whatever trickled back, then the next one is refused.
    let mut refused = None;
    for _ in 0..20 {
        let res = app.get("/v1/tenant", &key).await.unwrap();
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
    }
    let res = refused.expect("a request over the limit is refused");
    let retry_after: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(header(&res, "x-ratelimit-remaining-requests"), "0");
    assert_eq!(header(&res, "x-ratelimit-limit-requests"), "60");
    let body = problem(res, 429, "rate_limited").await.unwrap();
    assert!(s(&body["detail"]).contains("requests"));

    // After retry-after the budget is back.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let res = app.get("/v1/tenant", &key).await.unwrap();
    assert_eq!(res.status(), 200);
}

async fn per_key_limit_is_below_the_tenant_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let (_, admin) = app.tenant_on_plan("acme", 1000, 1000, 10).await.unwrap();
    let res = app
        .post(
            "/v1/api_keys",
            &admin,
            &json!({"name": "slow", "scopes": ["inference"], "requests_per_minute": 2}),
        )
        .await
        .unwrap();
    let slow = s(&res.json::<serde_json::Value>().await.unwrap()["secret"]);
    for _ in 0..2 {
        assert_eq!(app.get("/v1/tenant", &slow).await.unwrap().status(), 200);
    }
    let res = app.get("/v1/tenant", &slow).await.unwrap();
    assert_eq!(header(&res, "x-ratelimit-limit-requests"), "2");
    problem(res, 429, "rate_limited").await.unwrap();
    // The tenant's other key is unaffected.
    assert_eq!(app.get("/v1/tenant", &admin).await.unwrap().status(), 200);
}

/// Two gateway processes with Redis share one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_through_redis() {
    share_one_budget(vec![]).await;
}

/// The same over TLS (`rediss://`, as managed Redis services such as
/// ElastiCache with encryption in transit require), the server's
/// certificate verified against its CA (`SSL_CERT_FILE`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_through_redis_over_tls() {
    let url = std::env::var("TEST_REDIS_TLS_URL").expect("TEST_REDIS_TLS_URL (scripts/test.sh)");
    assert!(url.starts_with("rediss://"), "{url}");
    let ca = std::env::var("TEST_REDIS_TLS_CA").expect("TEST_REDIS_TLS_CA (scripts/test.sh)");
    share_one_budget(vec![
        ("LLMOPS_REDIS_URL".into(), url),
        ("SSL_CERT_FILE".into(), ca),
    ])
    .await;
}

async fn share_one_budget(env: Vec<(String, String)>) {
    let mut app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            redis: true,
            env,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let second = app.start_server().unwrap();
    // 10 per minute: refills one every 6 s, far slower than this test.
    let (_, key) = app.tenant_on_plan("shared", 10, 1000, 10).await.unwrap();
    let urls = [app.url("/v1/tenant"), app.servers[second].url("/v1/tenant")];
    let mut ok = 0;
    let mut refused = 0;
    for i in 0..16 {
        let res = app
            .client
            .get(&urls[i % 2])
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => ok += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 10, "the two replicas together admit exactly the budget");
    assert_eq!(refused, 6);
    let ready: serde_json::Value = app.get_public_json("/readyz").await.unwrap();
    assert_eq!(ready["checks"]["redis"], "ok");
}

// ------------------------------------------------ all-or-nothing admission

/// `n` GETs of `/v1/tenant` from `conc` concurrent clients, spread over
/// `urls`; returns (served, refused for concurrency, refused for rate).
async fn burst(
    app: &TestApp,
    urls: &[String],
    key: &str,
    n: usize,
    conc: usize,
) -> (u32, u32, u32) {
    use futures_util::StreamExt;
    let answers: Vec<(u16, String)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let req = app.client.get(&urls[i % urls.len()]).bearer_auth(key);
            async move {
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                let body: serde_json::Value = res.json().await.unwrap();
                (status, s(&body["code"]))
            }
        })
        .buffer_unordered(conc)
        .collect()
        .await;
    let (mut ok, mut cc, mut rl) = (0, 0, 0);
    for a in answers {
        match a {
            (200, _) => ok += 1,
            (429, c) if c == "concurrency_limited" => cc += 1,
            (429, c) if c == "rate_limited" => rl += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (ok, cc, rl)
}

/// The burst: 100 requests from 25 concurrent clients on the free
/// plan (60 per minute, 4 concurrent). Whatever concurrency refuses costs
/// nothing: afterwards the minute's budget is 60 minus what was served.
async fn a_burst_refused_for_concurrency_spends_no_requests(app: TestApp, replicas: usize) {
    let created = app.create_tenant("burst").unwrap();
    let key = s(&created["api_key"]);
    let urls: Vec<String> = (0..replicas)
        .map(|i| app.servers[i].url("/v1/tenant"))
        .collect();
    let start = std::time::Instant::now();
    let (ok, cc, rl) = burst(&app, &urls, &key, 100, 25).await;
    let res = app.get("/v1/tenant", &key).await.unwrap();
    let elapsed = start.elapsed().as_secs() as u32;
    assert_eq!(ok + cc + rl, 100);
    assert!(ok >= 4, "at least the concurrency limit is served: {ok}");
    assert!(ok <= 60 + elapsed + 1, "never more than the budget: {ok}");
    let remaining: u32 = header(&res, "x-ratelimit-remaining-requests")
        .parse()
        .unwrap();
    if res.status() == 429 {
        // Only requests that were served can have spent the budget.
        assert!(
            ok >= 59,
            "the budget is gone after only {ok} served ({cc} + {rl} refused)"
        );
        assert_eq!(remaining, 0);
    } else {
        assert_eq!(res.status(), 200);
        // Every request served, and only those, spent one unit (plus this
        // GET); the budget refills one unit a second while the test runs.
        let floor = 59u32.saturating_sub(ok);
        assert!(
            remaining >= floor && remaining <= floor + elapsed + 1,
            "{ok} served ({cc} refused for concurrency, {rl} for rate), {remaining} left after {elapsed} s"
        );
    }
    assert!(
        rl == 0 || ok >= 59,
        "rate refusals only once the budget is spent: {ok} served, {rl}"
    );
}

async fn burst_on_the_free_plan(backend: Backend) {
    a_burst_refused_for_concurrency_spends_no_requests(TestApp::spawn(backend).await.unwrap(), 1)
        .await;
}

on_both_backends!(burst_on_the_free_plan);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_on_two_replicas_sharing_redis() {
    let mut app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            redis: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    app.start_server().unwrap();
    a_burst_refused_for_concurrency_spends_no_requests(app, 2).await;
}

use llmops_tests::nginx::{Fixed, Nginx};

fn completion(usage: (u32, u32)) -> serde_json::Value {
    json!({"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}})
}

/// nginx as three upstreams: instant (SSE), slow (about 3 s) and one that
/// reports 800 tokens used.
async fn upstreams() -> (Nginx, TempDir) {
    let chunk = json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]});
    let usage = json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}});
    let nginx = Nginx::start(&[
        Fixed::sse(
            "/instant/",
            &[chunk.to_string(), usage.to_string(), "[DONE]".into()],
        ),
        Fixed::json("/slow/", &completion((5, 1))).slow(100),
        Fixed::json("/big/", &completion((500, 300))),
    ])
    .await
    .unwrap();
    let dir = TempDir::new("config").unwrap();
    let config: String = ["instant", "slow", "big"]
        .iter()
        .map(|id| {
            format!(
                "[[catalog]]\nid = \"{id}\"\nkind = \"chat\"\nbackend = \"openai\"\nbase_url = \"{}/{id}/v1\"\n",
                nginx.base
            )
        })
        .collect();
    std::fs::write(dir.0.join("llmops.toml"), config).unwrap();
    (nginx, dir)
}

fn with_upstreams(dir: &TempDir, redis: bool) -> Options {
    Options {
        redis,
        env: vec![(
            "LLMOPS_CONFIG".into(),
            dir.0.join("llmops.toml").display().to_string(),
        )],
        ..Default::default()
    }
}

fn chat(model: &str, stream: bool, max_tokens: u32) -> serde_json::Value {
    json!({"model": model, "stream": stream, "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": "hi"}]})
}

/// With one concurrent request allowed, a client calling one request after
/// the other is never refused: the slot is free before the answer's last
/// bytes reach it (plain answers and streams, on every replica).
async fn sequential_calls_never_meet_their_own_slot(app: TestApp, replicas: usize) {
    let (_, key) = app
        .tenant_on_plan("serial", 6000, 1_000_000, 1)
        .await
        .unwrap();
    for i in 0..60 {
        let server = &app.servers[i % replicas];
        let res = match i % 3 {
            0 => app
                .client
                .get(server.url("/v1/tenant"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap(),
            _ => app
                .client
                .post(server.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&chat("instant", i % 3 == 1, 8))
                .send()
                .await
                .unwrap(),
        };
        let status = res.status();
        let body = res.text().await.unwrap();
        assert_eq!(status, 200, "call {i}: {body}");
    }
}

async fn sequential_calls_with_one_slot(backend: Backend) {
    let (_nginx, dir) = upstreams().await;
    let app = TestApp::spawn_with(backend, with_upstreams(&dir, false))
        .await
        .unwrap();
    sequential_calls_never_meet_their_own_slot(app, 1).await;
}

on_both_backends!(sequential_calls_with_one_slot);

/// Two replicas sharing Redis share one set of concurrency slots: of eight
/// slow calls at once (four on each) exactly the plan's four run; the four
/// refused spend no requests; the slots are free again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_concurrency_slots_through_redis() {
    let (_nginx, dir) = upstreams().await;
    let mut app = TestApp::spawn_with(Backend::Postgres, with_upstreams(&dir, true))
        .await
        .unwrap();
    app.start_server().unwrap();
    let (_, admin) = app
        .tenant_on_plan("slots", 6000, 1_000_000, 4)
        .await
        .unwrap();
    // A key of its own with a slow request limit shows what requests cost.
    let res = app
        .post(
            "/v1/api_keys",
            &admin,
            &json!({"name": "k", "scopes": ["inference"], "requests_per_minute": 12}),
        )
        .await
        .unwrap();
    let key = s(&res.json::<serde_json::Value>().await.unwrap()["secret"]);

    let calls = (0..8).map(|i| {
        let req = app
            .client
            .post(app.servers[i % 2].url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&chat("slow", false, 8));
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            (status, s(&body["code"]))
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    let ok = answers.iter().filter(|(st, _)| *st == 200).count();
    let cc = answers
        .iter()
        .filter(|(st, c)| *st == 429 && c == "concurrency_limited")
        .count();
    assert_eq!((ok, cc), (4, 4), "{answers:?}");
    // 12 per minute: the four served and this call spent five (one unit
    // refills every 5 s, slower than this test).
    let res = app.servers[1].url("/v1/tenant");
    let res = app.client.get(res).bearer_auth(&key).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let remaining: u32 = header(&res, "x-ratelimit-remaining-requests")
        .parse()
        .unwrap();
    assert!((7..=8).contains(&remaining), "{remaining} left of 12");
    // Every slot came back: four at once fit again.
    let calls = (0..4).map(|i| {
        let (client, url, key) = (
            app.client.clone(),
            app.servers[i % 2].url("/v1/chat/completions"),
            admin.clone(),
        );
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&chat("instant", false, 8))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    for status in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200);
    }
    sequential_calls_never_meet_their_own_slot(app, 2).await;
}

/// A request refused for tokens (serving learns its tokens only from the
/// body) does not count against the requests per minute either; usage
/// beyond the reservation is charged even past the limit.
async fn a_request_refused_for_tokens_gives_its_request_back(app: TestApp) {
    let (_, admin) = app.tenant_on_plan("tokens", 600, 1000, 8).await.unwrap();
    // The upstream reports 800 tokens for a call that reserved far fewer:
    // all 800 are spent.
    let res = app
        .post("/v1/chat/completions", &admin, &chat("big", false, 10))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    llmops_tests::eventually(Duration::from_secs(10), || async {
        let res = app.get("/v1/tenant", &admin).await?;
        let left: u32 = header(&res, "x-ratelimit-remaining-tokens").parse()?;
        Ok(left <= 300)
    })
    .await
    .unwrap();
    // A key allowed two requests a minute (one refills every 30 s).
    let res = app
        .post(
            "/v1/api_keys",
            &admin,
            &json!({"name": "k", "scopes": ["admin"], "requests_per_minute": 2}),
        )
        .await
        .unwrap();
    let key = s(&res.json::<serde_json::Value>().await.unwrap()["secret"]);
    let res = app.get("/v1/tenant", &key).await.unwrap();
    assert_eq!(header(&res, "x-ratelimit-remaining-requests"), "1");
    // 400 tokens fit the plan's 1000 but not the 200 to 300 left: refused.
    let res = app
        .post("/v1/chat/completions", &key, &chat("instant", false, 400))
        .await
        .unwrap();
    assert_eq!(header(&res, "x-ratelimit-limit-tokens"), "1000");
    let p = problem(res, 429, "rate_limited").await.unwrap();
    assert!(s(&p["detail"]).contains("tokens"), "{p}");
    // The refused call gave its request back: the key's second request fits.
    let res = app.get("/v1/tenant", &key).await.unwrap();
    assert_eq!(res.status(), 200, "the refused request was given back");
    assert_eq!(header(&res, "x-ratelimit-remaining-requests"), "0");
}

async fn tokens_refusal_on_this_replica(backend: Backend) {
    let (_nginx, dir) = upstreams().await;
    let app = TestApp::spawn_with(backend, with_upstreams(&dir, false))
        .await
        .unwrap();
    a_request_refused_for_tokens_gives_its_request_back(app).await;
}

on_both_backends!(tokens_refusal_on_this_replica);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_refusal_through_redis() {
    let (_nginx, dir) = upstreams().await;
    let app = TestApp::spawn_with(Backend::Postgres, with_upstreams(&dir, true))
        .await
        .unwrap();
    a_request_refused_for_tokens_gives_its_request_back(app).await;
}
