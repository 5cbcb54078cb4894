//! The training job queue on a real database (PostgreSQL and SQLite):
//! concurrent workers never run the same attempt, expired leases re-queue
//! and fence the stale worker, retries back off up to a maximum,
//! cancellation and pause reach a running attempt through its heartbeat,
//! and claims follow fair share, priority and quotas.

use llmops_core::config::Config;
use llmops_core::db::Db;
use llmops_core::ids::{JobId, TenantId};
use llmops_core::secret::Secret;
use llmops_tests::{Backend, TestDb, on_both_backends};
use llmops_training::policy::{StaticQuotas, Unlimited};
use llmops_training::{
    Capacity, Control, Finish, JobKind, JobStatus, NewJob, Queue, QueueConfig, QueueError,
};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_backends!(
    concurrent_workers_never_run_the_same_attempt,
    an_expired_lease_requeues_the_job_and_fences_the_stale_worker,
    retryable_failures_back_off_up_to_the_maximum,
    cancel_and_pause_reach_a_running_attempt_through_its_heartbeat,
    claims_follow_fair_share_priority_quota_and_capacity,
);

async fn setup(backend: Backend, cfg: QueueConfig) -> (Queue, Db, TestDb) {
    let tdb = TestDb::create(backend).await.unwrap();
    let config = Config {
        data_dir: std::env::temp_dir(),
        database_url: Some(Secret::new(tdb.url.clone())),
        database_max_connections: 8,
        ..Config::default()
    };
    let db = llmops_core::db::connect(&config).await.unwrap();
    llmops_migrations::up(&db).await.unwrap();
    (Queue::new(db.clone(), cfg), db, tdb)
}

fn job(tenant: TenantId, gpus: u32, priority: i32, max_attempts: u32) -> NewJob {
    NewJob {
        id: JobId::new(),
        tenant_id: tenant,
        kind: JobKind::FineTune,
        priority,
        gpu_type: "cpu".into(),
        gpus,
        spec: json!({"model": "smollm2-135m"}),
        max_attempts,
        status: JobStatus::Queued,
    }
}

/// Enqueues a CPU job; its id.
async fn add(q: &Queue, tenant: TenantId, gpus: u32, priority: i32, max_attempts: u32) -> JobId {
    let j = job(tenant, gpus, priority, max_attempts);
    let id = j.id;
    q.enqueue(j).await.unwrap();
    id
}

fn fast() -> QueueConfig {
    QueueConfig {
        lease: Duration::from_millis(400),
        backoff: Duration::from_millis(400),
        backoff_max: Duration::from_secs(5),
        candidates: 64,
    }
}

async fn open_jobs(db: &Db) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM training_jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

async fn concurrent_workers_never_run_the_same_attempt(backend: Backend) {
    let (q, db, _tdb) = setup(backend, QueueConfig::default()).await;
    let tenants: Vec<TenantId> = (0..3).map(|_| TenantId::new()).collect();
    let mut ids = BTreeSet::new();
    for i in 0..90 {
        ids.insert(add(&q, tenants[i % 3], 1, 0, 3).await);
    }
    let claims = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (q, db, claims) = (q.clone(), db.clone(), claims.clone());
        workers.push(async move {
            let owner = format!("worker-{w}");
            loop {
                match q
                    .claim(&owner, &Capacity::of("cpu", 1), &Unlimited)
                    .await
                    .unwrap()
                {
                    Some(lease) => {
                        claims.lock().unwrap().push((lease.job_id, lease.attempt));
                        assert_eq!(q.heartbeat(&lease).await.unwrap(), Control::Continue);
                        let done = q
                            .finish(&lease, Finish::Succeeded(json!({"by": owner})))
                            .await;
                        assert_eq!(done.unwrap(), JobStatus::Succeeded);
                    }
                    // Nothing claimable for this worker right now (another
                    // may be deciding for the remaining tenants).
                    None if open_jobs(&db).await == 0 => break,
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        });
    }
    futures_util::future::join_all(workers).await;
    let claims = claims.lock().unwrap().clone();
    assert_eq!(claims.len(), 90, "every job claimed exactly once");
    let claimed: BTreeSet<JobId> = claims.iter().map(|c| c.0).collect();
    assert_eq!(claimed, ids);
    assert!(
        claims.iter().all(|c| c.1 == 1),
        "no job needed a second attempt"
    );
    for id in claims.iter().map(|c| c.0) {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                match db.get_database_backend() {
                    sea_orm::DbBackend::Postgres => {
                        "SELECT status, attempt FROM training_jobs WHERE id = $1"
                    }
                    _ => "SELECT status, attempt FROM training_jobs WHERE id = ?",
                },
                [id.to_string().into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", "status").unwrap(), "succeeded");
        assert_eq!(row.try_get::<i32>("", "attempt").unwrap(), 1);
    }
}

async fn an_expired_lease_requeues_the_job_and_fences_the_stale_worker(backend: Backend) {
    let (q, db, _tdb) = setup(backend, fast()).await;
    let tenant = TenantId::new();
    let cpu = Capacity::of("cpu", 1);
    let id = add(&q, tenant, 1, 0, 2).await;
    let first = q.claim("w1", &cpu, &Unlimited).await.unwrap().unwrap();
    assert_eq!((first.job_id, first.attempt), (id, 1));
    // Held: nobody else can take it while the lease lives.
    assert!(q.claim("w2", &cpu, &Unlimited).await.unwrap().is_none());
    // One heartbeat 200 ms in, then silence.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(q.heartbeat(&first).await.unwrap(), Control::Continue);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = q.claim("w2", &cpu, &Unlimited).await.unwrap().unwrap();
    assert_eq!((second.job_id, second.attempt), (id, 2));
    // The first worker woke up late: every write of its attempt is refused.
    assert!(matches!(q.heartbeat(&first).await, Err(QueueError::Stale)));
    assert!(matches!(
        q.finish(&first, Finish::Succeeded(json!({"by": "w1"})))
            .await,
        Err(QueueError::Stale)
    ));
    assert_eq!(q.heartbeat(&second).await.unwrap(), Control::Continue);
    q.finish(&second, Finish::Succeeded(json!({"by": "w2"})))
        .await
        .unwrap();
    let row = q.get(tenant, id).await.unwrap();
    assert_eq!(row.status, JobStatus::Succeeded);
    assert_eq!(row.attempt, 2);
    assert_eq!(row.result, Some(json!({"by": "w2"})));
    assert!(row.started_at.is_some() && row.finished_at.is_some());
    // The silent attempt was billed once, from its start to its last
    // heartbeat, when the job was taken over; the second by its finish.
    let events = billed(&db, &id.to_string()).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, format!("{id}:attempt-1"));
    assert!((150..=450).contains(&events[0].1), "{events:?}");
    assert_eq!(events[1].0, format!("{id}:attempt-2"));

    // A job whose every attempt's worker went silent fails, visibly.
    let id = add(&q, tenant, 1, 0, 2).await;
    for attempt in 1..=2 {
        let l = q.claim("w", &cpu, &Unlimited).await.unwrap().unwrap();
        assert_eq!(l.attempt, attempt);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(q.claim("w", &cpu, &Unlimited).await.unwrap().is_none());
    let row = q.get(tenant, id).await.unwrap();
    assert_eq!(row.status, JobStatus::Failed);
    assert!(row.error.unwrap().contains("stopped answering"));
    // Both silent attempts billed, the last when the job was given up.
    let ids: Vec<String> = billed(&db, &id.to_string())
        .await
        .into_iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(ids, [format!("{id}:attempt-1"), format!("{id}:attempt-2")]);
}

/// The usage events of a job: `(id, quantity)` by id.
async fn billed(db: &Db, job: &str) -> Vec<(String, i64)> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT id, quantity FROM usage_events WHERE id LIKE '{job}:%' ORDER BY id"),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "id").unwrap(),
                r.try_get("", "quantity").unwrap(),
            )
        })
        .collect()
}

async fn retryable_failures_back_off_up_to_the_maximum(backend: Backend) {
    let (q, _db, _tdb) = setup(backend, fast()).await;
    let tenant = TenantId::new();
    let cpu = Capacity::of("cpu", 1);
    let id = add(&q, tenant, 1, 0, 2).await;
    let l = q.claim("w", &cpu, &Unlimited).await.unwrap().unwrap();
    let failed = Finish::Failed {
        error: "node lost".into(),
        retryable: true,
    };
    assert_eq!(
        q.finish(&l, failed.clone()).await.unwrap(),
        JobStatus::Queued
    );
    let row = q.get(tenant, id).await.unwrap();
    assert_eq!(row.status, JobStatus::Queued);
    assert_eq!(row.error.as_deref(), Some("node lost"));
    // Backing off: not claimable yet.
    assert!(q.claim("w", &cpu, &Unlimited).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let l = q.claim("w", &cpu, &Unlimited).await.unwrap().unwrap();
    assert_eq!(l.attempt, 2);
    // The last attempt's failure is final, retryable or not.
    assert_eq!(q.finish(&l, failed).await.unwrap(), JobStatus::Failed);

    let id = add(&q, tenant, 1, 0, 5).await;
    let l = q.claim("w", &cpu, &Unlimited).await.unwrap().unwrap();
    let fatal = Finish::Failed {
        error: "training file has no assistant turn".into(),
        retryable: false,
    };
    assert_eq!(q.finish(&l, fatal).await.unwrap(), JobStatus::Failed);
    assert_eq!(q.get(tenant, id).await.unwrap().attempt, 1);
}

async fn cancel_and_pause_reach_a_running_attempt_through_its_heartbeat(backend: Backend) {
    let (q, _db, _tdb) = setup(backend, fast()).await;
    let (tenant, other) = (TenantId::new(), TenantId::new());
    let cpu = Capacity::of("cpu", 1);

    // Queued: cancelled at once, never claimed.
    let id = add(&q, tenant, 1, 0, 3).await;
    assert!(matches!(
        q.cancel(other, id).await,
        Err(QueueError::NotFound)
    ));
    assert!(matches!(q.get(other, id).await, Err(QueueError::NotFound)));
    assert_eq!(
        q.cancel(tenant, id).await.unwrap().status,
        JobStatus::Cancelled
    );
    assert!(q.claim("w", &cpu, &Unlimited).await.unwrap().is_none());
    assert!(matches!(
        q.cancel(tenant, id).await,
        Err(QueueError::Conflict("cancelled"))
    ));

    // Running: the next heartbeat says stop.
    let id = add(&q, tenant, 1, 0, 3).await;
    let l = q.claim("w", &cpu, &Unlimited).await.unwrap().unwrap();
    assert_eq!(q.heartbeat(&l).await.unwrap(), Control::Continue);
    let row = q.cancel(tenant, id).await.unwrap();
    assert_eq!(row.status, JobStatus::Running);
    assert_eq!(q.heartbeat(&l).await.unwrap(), Control::Cancel);
    assert_eq!(
        q.finish(&l, Finish::Cancelled).await.unwrap(),
        JobStatus::Cancelled
    );

    // Pause: queued at once; running through the heartbeat; resume
    // queues it again for a new attempt.
    let id = add(&q, tenant, 1, 0, 3).await;
    assert_eq!(q.pause(tenant, id).await.unwrap().status, JobStatus::Paused);
    assert!(q.claim("w", &cpu, &Unlimited).await.unwrap().is_none());
    assert_eq!(
        q.resume(tenant, id).await.unwrap().status,
        JobStatus::Queued
    );
    let l = q.claim("w", &cpu, &Unlimited).await.unwrap().unwrap();
    q.pause(tenant, id).await.unwrap();
    assert_eq!(q.heartbeat(&l).await.unwrap(), Control::Pause);
    assert_eq!(
        q.finish(&l, Finish::Paused).await.unwrap(),
        JobStatus::Paused
    );
    assert!(matches!(
        q.resume(other, id).await,
        Err(QueueError::NotFound)
    ));
    q.resume(tenant, id).await.unwrap();
    let l = q.claim("w", &cpu, &Unlimited).await.unwrap().unwrap();
    assert_eq!((l.job_id, l.attempt), (id, 2));
    // A cancel asked while a pause is pending wins.
    q.pause(tenant, id).await.unwrap();
    q.cancel(tenant, id).await.unwrap();
    q.pause(tenant, id).await.unwrap();
    assert_eq!(q.heartbeat(&l).await.unwrap(), Control::Cancel);
}

async fn claims_follow_fair_share_priority_quota_and_capacity(backend: Backend) {
    let (q, _db, _tdb) = setup(backend, QueueConfig::default()).await;
    let (a, b) = (TenantId::new(), TenantId::new());
    let cpu = Capacity::of("cpu", 1);
    let a1 = add(&q, a, 1, 0, 3).await;
    let a2 = add(&q, a, 1, 0, 3).await;
    let a3 = add(&q, a, 1, 9, 3).await;
    let b1 = add(&q, b, 1, 0, 3).await;
    let mut quotas = StaticQuotas::default();
    quotas.max.insert((a.to_string(), "cpu".into()), 2);

    let claim = async |q: &Queue, quotas: &StaticQuotas| {
        q.claim("w", &cpu, quotas)
            .await
            .unwrap()
            .map(|l| (l.job_id, l))
    };
    // Nobody runs anything: A's high-priority job, though submitted late.
    let (first, _) = claim(&q, &quotas).await.unwrap();
    assert_eq!(first, a3);
    // A holds one device, B none: B's job, though younger than A's others.
    let (second, _) = claim(&q, &quotas).await.unwrap();
    assert_eq!(second, b1);
    // Even shares: the oldest.
    let (third, lease3) = claim(&q, &quotas).await.unwrap();
    assert_eq!(third, a1);
    // A is at its quota of 2: its last job waits, visibly.
    assert!(claim(&q, &quotas).await.is_none());
    let row = q.get(a, a2).await.unwrap();
    assert_eq!(row.status, JobStatus::Queued);
    assert_eq!(row.wait_reason.as_deref(), Some("quota"));
    q.finish(&lease3, Finish::Succeeded(json!({})))
        .await
        .unwrap();
    let (fourth, _) = claim(&q, &quotas).await.unwrap();
    assert_eq!(fourth, a2);
    assert_eq!(q.get(a, a2).await.unwrap().wait_reason, None);

    // Capacity: a 2-device job needs a worker with 2 free devices of its type.
    let big = add(&q, b, 2, 0, 3).await;
    assert!(q.claim("w", &cpu, &Unlimited).await.unwrap().is_none());
    assert!(
        q.claim("w", &Capacity::of("h100", 8), &Unlimited)
            .await
            .unwrap()
            .is_none()
    );
    let l = q
        .claim("w", &Capacity::of("cpu", 2), &Unlimited)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l.job_id, big);
    assert_eq!(l.gpus, 2);
}
