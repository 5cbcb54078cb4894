//! Queue throughput: `benches/queue.sh` runs this against a fresh database.
//!
//!   queue_bench DATABASE_URL [workers=4] [jobs=2000] [tenants=8]
//!
//! Enqueues `jobs` jobs across `tenants` tenants, then `workers` concurrent
//! workers (on PostgreSQL each on its own connection pool, as separate
//! processes would be; on SQLite sharing one, as in-process workers do) claim, heartbeat once and finish jobs until none is left. Prints
//! claims/s and the claim call's latency (p50, p99, max).

// A benchmark program: any failure should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use llmops_core::config::Config;
use llmops_core::ids::{JobId, TenantId};
use llmops_core::secret::Secret;
use llmops_training::policy::Unlimited;
use llmops_training::{Capacity, Finish, JobKind, JobStatus, NewJob, Queue, QueueConfig};
use std::time::{Duration, Instant};

fn arg(args: &[String], i: usize, default: usize) -> usize {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

async fn pool(url: &str, connections: u32) -> llmops_core::db::Db {
    let cfg = Config {
        data_dir: std::env::temp_dir(),
        database_url: Some(Secret::new(url.to_string())),
        database_max_connections: connections,
        ..Config::default()
    };
    llmops_core::db::connect(&cfg).await.expect("database")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .expect("usage: queue_bench DATABASE_URL [workers] [jobs] [tenants]");
    let workers = arg(&args, 2, 4).max(1);
    let jobs = arg(&args, 3, 2000).max(1);
    let tenants: Vec<TenantId> = (0..arg(&args, 4, 8).max(1))
        .map(|_| TenantId::new())
        .collect();

    let db = pool(url, 4).await;
    llmops_migrations::up(&db).await.expect("migrations");
    let queue = Queue::new(db.clone(), QueueConfig::default());
    // SQLite is one process's database: its workers run inside `llmops
    // serve` and share its pool. On PostgreSQL each worker has a pool of its
    // own, as separate `llmops worker` processes have.
    let sqlite = url.starts_with("sqlite:");
    let started = Instant::now();
    for i in 0..jobs {
        queue
            .enqueue(NewJob {
                id: JobId::new(),
                tenant_id: tenants[i % tenants.len()],
                kind: JobKind::FineTune,
                priority: i32::try_from(i % 3).unwrap_or(0),
                gpu_type: "cpu".into(),
                gpus: 1,
                spec: serde_json::json!({"model": "bench"}),
                max_attempts: 3,
                status: JobStatus::Queued,
            })
            .await
            .expect("enqueue");
    }
    let enqueue_s = started.elapsed().as_secs_f64();

    let tracker = tokio_util::task::TaskTracker::new();
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let q = if sqlite {
            queue.clone()
        } else {
            Queue::new(pool(url, 2).await, QueueConfig::default())
        };
        handles.push(tracker.spawn(async move {
            let owner = format!("bench-worker-{w}");
            let cpu = Capacity::of("cpu", 1);
            let mut latencies = Vec::new();
            let mut empty = 0;
            loop {
                let t = Instant::now();
                match q.claim(&owner, &cpu, &Unlimited).await.expect("claim") {
                    Some(lease) => {
                        latencies.push(t.elapsed());
                        empty = 0;
                        q.heartbeat(&lease).await.expect("heartbeat");
                        q.finish(&lease, Finish::Succeeded(serde_json::json!({})))
                            .await
                            .expect("finish");
                    }
                    // Other workers may hold the last tenants' locks for a
                    // moment: stop after a few empty polls in a row.
                    None if empty < 20 => {
                        empty += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    None => break,
                }
            }
            latencies
        }));
    }
    tracker.close();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.expect("worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let backend = url.split(':').next().unwrap_or("?");
    println!(
        "{backend}: {workers} workers, {jobs} jobs, {} tenants: enqueued {:.0}/s; \
         {} claimed in {elapsed:.2} s = {:.0} claims/s (claim, heartbeat, finish); \
         claim latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        tenants.len(),
        jobs as f64 / enqueue_s,
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    assert_eq!(latencies.len(), jobs, "every job claimed exactly once");
}
