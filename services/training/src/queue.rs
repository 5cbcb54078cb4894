//! The durable job queue.
//!
//! Jobs are rows of `training_jobs`. A worker *claims* one under an
//! expiring lease (owner + `lease_until_ms`) and bumps its `attempt`; every
//! later write of that worker (heartbeat, finish) names the attempt and is
//! refused once another attempt owns the job, so a worker that stalled past
//! its lease can never finish, register or bill a job a second time. A lease
//! that expires makes the job claimable again (up to `max_attempts`).
//!
//! Choosing which job runs next is [`crate::policy`]'s: candidates are the
//! head of each tenant's queue per GPU type; the tenant with the smallest
//! weighted share of running devices goes first, within a tenant the highest
//! priority, then the oldest job; a tenant at its quota waits (`quota`).
//!
//! On PostgreSQL the chosen row is taken with `FOR UPDATE SKIP LOCKED` (two
//! workers never wait on, or take, the same row), and each tenant's quota
//! decision under a transaction-scoped advisory lock (two workers cannot
//! both give a tenant its last free device). On SQLite every claim runs in a
//! write transaction taken up front (`BEGIN IMMEDIATE`): claims are
//! serialised, which is what a single-file database can do anyway.
//!
//! Times are the workers' clocks in Unix milliseconds: workers on several
//! machines need synchronised clocks (NTP), to well within a lease.

pub use crate::job::*;
use crate::policy::{self, Candidate, Quotas, RunningShare};
use chrono::Utc;
use llmops_core::db::{Db, begin_write};
use llmops_core::ids::{JobId, TenantId};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Statement, TransactionTrait,
    Value,
};
use std::time::Duration;

#[derive(Clone)]
pub struct Queue {
    db: Db,
    cfg: QueueConfig,
    /// SQLite only: the queue's writes take turns here, first come first
    /// served. Left to SQLite's busy handler, a writer can lose the lock
    /// to others again and again and wait seconds (4.3 s measured with 4
    /// workers); one process owns a SQLite database, so one mutex orders
    /// all of its queue writes.
    sqlite_writes: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

/// A statement written with PostgreSQL's `$n` placeholders, for the
/// database at hand (SQLite numbers them `?n`).
pub(crate) fn stmt(db: &Db, sql: &str, values: Vec<Value>) -> Statement {
    let backend = db.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        sql.to_string()
    } else {
        sql.replace('$', "?")
    };
    Statement::from_sql_and_values(backend, sql, values)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

const COLUMNS: &str = "id, tenant_id, kind, status, priority, gpu_type, gpus, spec, attempt, \
     max_attempts, wait_reason, control, error, result, created_at, started_at, finished_at";

/// Claimable now: queued and past its back-off, or running under a lease
/// that expired.
const CLAIMABLE: &str = "((status = 'queued' AND not_before_ms <= $1) \
     OR (status = 'running' AND lease_until_ms < $1))";

impl Queue {
    pub fn new(db: Db, cfg: QueueConfig) -> Self {
        let sqlite_writes = (db.get_database_backend() == DbBackend::Sqlite)
            .then(|| std::sync::Arc::new(tokio::sync::Mutex::new(())));
        Self {
            db,
            cfg,
            sqlite_writes,
        }
    }

    /// Waits for the queue's turn to write (SQLite; nothing on PostgreSQL).
    /// Hold it around a transaction given to [`Queue::finish_in`].
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.sqlite_writes {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    pub fn config(&self) -> QueueConfig {
        self.cfg
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        stmt(&self.db, sql, values)
    }

    fn is_pg(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    pub async fn enqueue(&self, job: NewJob) -> Result<(), QueueError> {
        let _turn = self.write_turn().await;
        let now = Utc::now();
        let sql = "INSERT INTO training_jobs (id, tenant_id, kind, status, priority, gpu_type, gpus, \
                   spec, attempt, max_attempts, not_before_ms, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, 0, $10, $10)";
        self.db
            .execute_raw(self.stmt(
                sql,
                vec![
                    job.id.to_string().into(),
                    job.tenant_id.to_string().into(),
                    job.kind.as_str().into(),
                    job.status.as_str().into(),
                    job.priority.into(),
                    job.gpu_type.into(),
                    i64::from(job.gpus).into(),
                    job.spec.to_string().into(),
                    i64::from(job.max_attempts.max(1)).into(),
                    now.into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// A job that waited for its files' validation joins the queue.
    pub async fn release(&self, id: JobId) -> Result<bool, QueueError> {
        let _turn = self.write_turn().await;
        let r = self
            .db
            .execute_raw(self.stmt(
                "UPDATE training_jobs SET status = 'queued', updated_at = $2 \
                 WHERE id = $1 AND status = 'validating_files'",
                vec![id.to_string().into(), Utc::now().into()],
            ))
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Claims the next job this worker has capacity for, if any.
    pub async fn claim(
        &self,
        owner: &str,
        capacity: &Capacity,
        quotas: &dyn Quotas,
    ) -> Result<Option<Lease>, QueueError> {
        let types: Vec<&String> = capacity
            .devices
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(t, _)| t)
            .collect();
        if types.is_empty() {
            return Ok(None);
        }
        let _turn = self.write_turn().await;
        let txn = begin_write(&self.db).await?;
        let now = now_ms();
        let candidates = self.candidates(&txn, now, &types).await?;
        if candidates.is_empty() {
            txn.commit().await?;
            return Ok(None);
        }
        let mut running = self.running(&txn, now).await?;
        let order = policy::order(&candidates, &running, quotas);
        let mut waits: Vec<(String, &'static str)> = Vec::new();
        let mut claimed = None;
        for i in order {
            let c = &candidates[i];
            if c.status == "queued"
                && let Some(reason) = quotas.blocked(&c.tenant_id)
            {
                waits.push((c.id.clone(), reason));
                continue;
            }
            if capacity.devices.get(&c.gpu_type).copied().unwrap_or(0) < c.gpus {
                waits.push((c.id.clone(), "capacity"));
                continue;
            }
            if c.status == "running" && c.attempt >= c.max_attempts {
                // Its last attempt's lease ran out: no attempt is left.
                self.expire(&txn, c, now).await?;
                continue;
            }
            if self.is_pg() {
                // Another worker deciding for this tenant right now: its
                // jobs are that worker's to weigh; try the next tenant.
                if !self.try_lock_tenant(&txn, &c.tenant_id).await? {
                    continue;
                }
                // Claims committed since the first read count too.
                running = self.running(&txn, now).await?;
            }
            if !policy::within_quota(c, &running, quotas) {
                waits.push((c.id.clone(), "quota"));
                continue;
            }
            if let Some(lease) = self
                .take(&txn, c, owner, capacity.pool.as_deref(), now)
                .await?
            {
                claimed = Some(lease);
                break;
            }
        }
        for (id, reason) in waits {
            txn.execute_raw(self.stmt(
                "UPDATE training_jobs SET wait_reason = $2 WHERE id = $1 AND status = 'queued' \
                 AND (wait_reason IS NULL OR wait_reason <> $2)",
                vec![id.into(), reason.into()],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(claimed)
    }

    /// The heads of each tenant's claimable queue per GPU type.
    async fn candidates(
        &self,
        txn: &DatabaseTransaction,
        now: i64,
        types: &[&String],
    ) -> Result<Vec<Candidate>, QueueError> {
        let mut values: Vec<Value> = vec![now.into(), i64::from(self.cfg.candidates).into()];
        let mut marks = Vec::new();
        for t in types {
            values.push((*t).clone().into());
            marks.push(format!("${}", values.len()));
        }
        // A few heads per tenant and type, so one tenant's thousand jobs
        // cannot hide everyone else's from the policy.
        let sql = format!(
            "SELECT id, tenant_id, status, priority, gpu_type, gpus, attempt, max_attempts FROM (\
               SELECT id, tenant_id, status, priority, gpu_type, gpus, attempt, max_attempts, created_at, \
                 ROW_NUMBER() OVER (PARTITION BY tenant_id, gpu_type \
                                    ORDER BY priority DESC, created_at, id) AS head_rank \
               FROM training_jobs WHERE {CLAIMABLE} AND gpu_type IN ({})\
             ) heads WHERE head_rank <= 4 ORDER BY created_at, id LIMIT $2",
            marks.join(", ")
        );
        let rows = txn.query_all_raw(self.stmt(&sql, values)).await?;
        rows.iter()
            .map(|r| {
                Ok(Candidate {
                    id: r.try_get("", "id")?,
                    tenant_id: r.try_get("", "tenant_id")?,
                    status: r.try_get("", "status")?,
                    priority: r.try_get("", "priority")?,
                    gpu_type: r.try_get("", "gpu_type")?,
                    gpus: u32::try_from(r.try_get::<i32>("", "gpus")?).unwrap_or(0),
                    attempt: r.try_get("", "attempt")?,
                    max_attempts: r.try_get("", "max_attempts")?,
                })
            })
            .collect()
    }

    /// Devices held by live attempts, per tenant and GPU type.
    async fn running(
        &self,
        txn: &DatabaseTransaction,
        now: i64,
    ) -> Result<RunningShare, QueueError> {
        let rows = txn
            .query_all_raw(self.stmt(
                "SELECT tenant_id, gpu_type, SUM(gpus) AS n FROM training_jobs \
                 WHERE status = 'running' AND lease_until_ms >= $1 GROUP BY tenant_id, gpu_type",
                vec![now.into()],
            ))
            .await?;
        let mut share = RunningShare::default();
        for r in rows {
            let n: i64 = r.try_get("", "n")?;
            share.add(
                &r.try_get::<String>("", "tenant_id")?,
                &r.try_get::<String>("", "gpu_type")?,
                u32::try_from(n).unwrap_or(u32::MAX),
            );
        }
        Ok(share)
    }

    async fn try_lock_tenant(
        &self,
        txn: &DatabaseTransaction,
        tenant: &str,
    ) -> Result<bool, QueueError> {
        // FNV-1a of the tenant id: a stable 64-bit advisory lock key.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in tenant.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let key = i64::from_ne_bytes(h.to_ne_bytes());
        let row = txn
            .query_one_raw(self.stmt(
                "SELECT pg_try_advisory_xact_lock($1) AS ok",
                vec![key.into()],
            ))
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<bool>("", "ok")?,
            None => false,
        })
    }

    /// Bills the attempt of `c` whose lease lapsed (its worker vanished):
    /// from its start to its last heartbeat (lease end − lease), once (the
    /// event id is the attempt's). Runs in the transaction that claims the
    /// job again or gives it up.
    async fn bill_lapsed(
        &self,
        txn: &DatabaseTransaction,
        c: &Candidate,
        now: i64,
    ) -> Result<(), QueueError> {
        // Fenced by the attempt the candidate read: never a newer one.
        let Some(row) = txn
            .query_one_raw(self.stmt(
                "SELECT tenant_id, kind, gpu_type, pool, gpus, attempt, attempt_started_ms, lease_until_ms \
                 FROM training_jobs WHERE id = $1 AND status = 'running' AND attempt = $2 \
                 AND lease_until_ms < $3",
                vec![c.id.clone().into(), c.attempt.into(), now.into()],
            ))
            .await?
        else {
            return Ok(());
        };
        let started: Option<i64> = row.try_get("", "attempt_started_ms")?;
        let until: Option<i64> = row.try_get("", "lease_until_ms")?;
        let (Some(started), Some(until)) = (started, until) else {
            return Ok(());
        };
        let bad = |what: &str| QueueError::Corrupt(what.to_string());
        let event = crate::job::attempt_usage(
            c.id.parse().map_err(|_| bad("job id"))?,
            row.try_get::<String>("", "tenant_id")?
                .parse()
                .map_err(|_| bad("tenant id"))?,
            row.try_get("", "attempt")?,
            JobKind::parse(&row.try_get::<String>("", "kind")?)?,
            &row.try_get::<String>("", "gpu_type")?,
            row.try_get::<Option<String>>("", "pool")?.as_deref(),
            u32::try_from(row.try_get::<i32>("", "gpus")?).unwrap_or(0),
            until - ms(self.cfg.lease) - started,
        );
        if let Some(e) = event {
            llmops_core::usage::record_in(txn, &[e])
                .await
                .map_err(|e| QueueError::Corrupt(format!("usage: {e}")))?;
        }
        Ok(())
    }

    /// Takes the row if it is still claimable and nobody holds it.
    async fn take(
        &self,
        txn: &DatabaseTransaction,
        c: &Candidate,
        owner: &str,
        pool: Option<&str>,
        now: i64,
    ) -> Result<Option<Lease>, QueueError> {
        let target = if self.is_pg() {
            format!(
                "(SELECT id FROM training_jobs WHERE id = $2 AND {CLAIMABLE} FOR UPDATE SKIP LOCKED)"
            )
        } else {
            "$2".to_string()
        };
        if c.status == "running" {
            // Its last attempt's worker vanished. Billing it twice (when
            // another worker races for the row) is harmless: the event id
            // is the attempt's.
            self.bill_lapsed(txn, c, now).await?;
            // A cancel asked of that attempt ends the job instead of a new
            // attempt.
            let r = txn
                .execute_raw(self.stmt(
                    &format!(
                        "UPDATE training_jobs SET status = 'cancelled', lease_owner = NULL, lease_until_ms = NULL, \
                           control = NULL, finished_at = $3, updated_at = $3 \
                         WHERE id = $2 AND attempt = $4 AND control = 'cancel' AND {CLAIMABLE}"
                    ),
                    vec![now.into(), c.id.clone().into(), Utc::now().into(), c.attempt.into()],
                ))
                .await?;
            if r.rows_affected() == 1 {
                return Ok(None);
            }
        }
        let sql = format!(
            "UPDATE training_jobs SET status = 'running', attempt = attempt + 1, lease_owner = $3, \
               lease_until_ms = $4, wait_reason = NULL, control = NULL, updated_at = $5, \
               started_at = COALESCE(started_at, $5), attempt_started_ms = $1, pool = $6 \
             WHERE id = {target} AND {CLAIMABLE} \
             RETURNING {COLUMNS}"
        );
        let row = txn
            .query_one_raw(self.stmt(
                &sql,
                vec![
                    now.into(),
                    c.id.clone().into(),
                    owner.into(),
                    (now + ms(self.cfg.lease)).into(),
                    Utc::now().into(),
                    pool.map(str::to_string).into(),
                ],
            ))
            .await?;
        row.map(|r| lease_of(&r, owner)).transpose()
    }

    async fn expire(
        &self,
        txn: &DatabaseTransaction,
        c: &Candidate,
        now: i64,
    ) -> Result<(), QueueError> {
        self.bill_lapsed(txn, c, now).await?;
        txn.execute_raw(self.stmt(
            &format!(
                "UPDATE training_jobs SET status = 'failed', lease_owner = NULL, lease_until_ms = NULL, \
                   error = $3, finished_at = $4, updated_at = $4 WHERE id = $2 AND {CLAIMABLE}"
            ),
            vec![
                now.into(),
                c.id.clone().into(),
                format!("the worker stopped answering on all {} attempts", c.max_attempts).into(),
                Utc::now().into(),
            ],
        ))
        .await?;
        Ok(())
    }

    /// Renews the lease; says whether the job was asked to stop or pause.
    pub async fn heartbeat(&self, lease: &Lease) -> Result<Control, QueueError> {
        let _turn = self.write_turn().await;
        let row = self
            .db
            .query_one_raw(self.stmt(
                "UPDATE training_jobs SET lease_until_ms = $4, updated_at = $5 \
                 WHERE id = $1 AND attempt = $2 AND lease_owner = $3 AND status = 'running' \
                 RETURNING control",
                vec![
                    lease.job_id.to_string().into(),
                    lease.attempt.into(),
                    lease.owner.clone().into(),
                    (now_ms() + ms(self.cfg.lease)).into(),
                    Utc::now().into(),
                ],
            ))
            .await?
            .ok_or(QueueError::Stale)?;
        Ok(
            match row.try_get::<Option<String>>("", "control")?.as_deref() {
                Some("cancel") => Control::Cancel,
                Some("pause") => Control::Pause,
                _ => Control::Continue,
            },
        )
    }

    /// Ends the attempt, fenced by it.
    pub async fn finish(&self, lease: &Lease, outcome: Finish) -> Result<JobStatus, QueueError> {
        let _turn = self.write_turn().await;
        let txn = begin_write(&self.db).await?;
        let status = self.finish_in(&txn, lease, outcome).await?;
        txn.commit().await?;
        Ok(status)
    }

    /// Ends the attempt inside the caller's transaction, so what the attempt
    /// produced commits with it or not at all; its metered time (devices ×
    /// time since its claim, once per attempt) is recorded here too. `Stale` means the caller must roll back. On SQLite, begin the
    /// transaction while holding [`Queue::write_turn`].
    pub async fn finish_in(
        &self,
        txn: &DatabaseTransaction,
        lease: &Lease,
        outcome: Finish,
    ) -> Result<JobStatus, QueueError> {
        let now = Utc::now();
        let row = txn
            .query_one_raw(self.stmt(
                "SELECT attempt, max_attempts, attempt_started_ms, control, pool FROM training_jobs \
                 WHERE id = $1 AND attempt = $2 AND lease_owner = $3 AND status = 'running'",
                vec![
                    lease.job_id.to_string().into(),
                    lease.attempt.into(),
                    lease.owner.clone().into(),
                ],
            ))
            .await?
            .ok_or(QueueError::Stale)?;
        let max: i32 = row.try_get("", "max_attempts")?;
        // The attempt's metered time, committed with its end (or not at
        // all): devices × time from its claim to now.
        let started: Option<i64> = row.try_get("", "attempt_started_ms")?;
        if let Some(e) = crate::job::attempt_usage(
            lease.job_id,
            lease.tenant_id,
            lease.attempt,
            lease.kind,
            &lease.gpu_type,
            row.try_get::<Option<String>>("", "pool")?.as_deref(),
            lease.gpus,
            started.map_or(0, |s| now_ms() - s),
        ) {
            llmops_core::usage::record_in(txn, &[e])
                .await
                .map_err(|e| QueueError::Corrupt(format!("usage: {e}")))?;
        }
        // A cancel asked meanwhile wins over anything but success.
        let cancel_asked =
            row.try_get::<Option<String>>("", "control")?.as_deref() == Some("cancel");
        let outcome = match outcome {
            Finish::Succeeded(v) => Finish::Succeeded(v),
            _ if cancel_asked => Finish::Cancelled,
            other => other,
        };
        // Pauses and interruptions do not use up the job's attempts.
        let spare = i32::from(matches!(outcome, Finish::Paused | Finish::Interrupted(_)));
        let (status, not_before, error, result) = match outcome {
            Finish::Succeeded(v) => (JobStatus::Succeeded, 0, None, Some(v.to_string())),
            Finish::Failed { error, retryable } if retryable && lease.attempt < max => {
                let backoff = self
                    .cfg
                    .backoff
                    .saturating_mul(1 << (lease.attempt - 1).clamp(0, 16))
                    .min(self.cfg.backoff_max);
                (JobStatus::Queued, now_ms() + ms(backoff), Some(error), None)
            }
            Finish::Failed { error, .. } => (JobStatus::Failed, 0, Some(error), None),
            Finish::Cancelled => (JobStatus::Cancelled, 0, None, None),
            Finish::Paused => (JobStatus::Paused, 0, None, None),
            Finish::Interrupted(why) => (JobStatus::Queued, 0, Some(why), None),
        };
        let finished = status.is_terminal().then_some(now);
        let r = txn
            .execute_raw(self.stmt(
                "UPDATE training_jobs SET status = $4, not_before_ms = $5, error = COALESCE($6, error), \
                   result = $7, finished_at = $8, updated_at = $9, lease_owner = NULL, \
                   lease_until_ms = NULL, control = NULL, max_attempts = max_attempts + $10 \
                 WHERE id = $1 AND attempt = $2 AND lease_owner = $3 AND status = 'running'",
                vec![
                    lease.job_id.to_string().into(),
                    lease.attempt.into(),
                    lease.owner.clone().into(),
                    status.as_str().into(),
                    not_before.into(),
                    error.into(),
                    result.into(),
                    finished.into(),
                    now.into(),
                    spare.into(),
                ],
            ))
            .await?;
        if r.rows_affected() != 1 {
            return Err(QueueError::Stale);
        }
        Ok(status)
    }

    /// Gives a claimed job back untouched, as if the claim had not been
    /// made (its attempt is not counted), waiting for `reason`.
    pub async fn unclaim(&self, lease: &Lease, reason: &str) -> Result<(), QueueError> {
        let _turn = self.write_turn().await;
        let r = self
            .db
            .execute_raw(self.stmt(
                "UPDATE training_jobs SET status = 'queued', attempt = attempt - 1, lease_owner = NULL, \
                   lease_until_ms = NULL, wait_reason = $4, updated_at = $5, \
                   started_at = CASE WHEN attempt = 1 THEN NULL ELSE started_at END \
                 WHERE id = $1 AND attempt = $2 AND lease_owner = $3 AND status = 'running'",
                vec![
                    lease.job_id.to_string().into(),
                    lease.attempt.into(),
                    lease.owner.clone().into(),
                    reason.into(),
                    Utc::now().into(),
                ],
            ))
            .await?;
        if r.rows_affected() != 1 {
            return Err(QueueError::Stale);
        }
        Ok(())
    }

    /// Cancels a tenant's job: at once unless it is running; a running
    /// attempt learns it at its next heartbeat and stops.
    pub async fn cancel(&self, tenant: TenantId, id: JobId) -> Result<JobRow, QueueError> {
        self.control(tenant, id, "cancel").await
    }

    /// Pauses a tenant's job: a queued job at once, a running one at its
    /// next heartbeat (after saving a checkpoint).
    pub async fn pause(&self, tenant: TenantId, id: JobId) -> Result<JobRow, QueueError> {
        self.control(tenant, id, "pause").await
    }

    /// A paused job joins the queue again.
    pub async fn resume(&self, tenant: TenantId, id: JobId) -> Result<JobRow, QueueError> {
        let _turn = self.write_turn().await;
        let txn = begin_write(&self.db).await?;
        let job = self.get_in(&txn, tenant, id).await?;
        match job.status {
            JobStatus::Paused => {
                txn.execute_raw(self.stmt(
                    "UPDATE training_jobs SET status = 'queued', not_before_ms = 0, updated_at = $2 \
                     WHERE id = $1",
                    vec![id.to_string().into(), Utc::now().into()],
                ))
                .await?;
            }
            JobStatus::Running if job.control.as_deref() == Some("pause") => {
                txn.execute_raw(self.stmt(
                    "UPDATE training_jobs SET control = NULL, updated_at = $2 WHERE id = $1 AND status = 'running'",
                    vec![id.to_string().into(), Utc::now().into()],
                ))
                .await?;
            }
            JobStatus::Queued | JobStatus::Running | JobStatus::ValidatingFiles => {}
            s => return Err(QueueError::Conflict(s.as_str())),
        }
        let job = self.get_in(&txn, tenant, id).await?;
        txn.commit().await?;
        Ok(job)
    }

    async fn control(
        &self,
        tenant: TenantId,
        id: JobId,
        what: &'static str,
    ) -> Result<JobRow, QueueError> {
        let _turn = self.write_turn().await;
        let txn = begin_write(&self.db).await?;
        let job = self.get_in(&txn, tenant, id).await?;
        let now = Utc::now();
        match (job.status, what) {
            (s, _) if s.is_terminal() => return Err(QueueError::Conflict(s.as_str())),
            (JobStatus::Running, _) => {
                // A cancel outranks a pause asked before it.
                txn.execute_raw(self.stmt(
                    "UPDATE training_jobs SET control = $2, updated_at = $3 WHERE id = $1 AND status = 'running' \
                     AND (control IS NULL OR control <> 'cancel')",
                    vec![id.to_string().into(), what.into(), now.into()],
                ))
                .await?;
            }
            (JobStatus::Paused, "pause") => {}
            (_, "pause") => {
                txn.execute_raw(self.stmt(
                    "UPDATE training_jobs SET status = 'paused', updated_at = $2 WHERE id = $1",
                    vec![id.to_string().into(), now.into()],
                ))
                .await?;
            }
            _ => {
                txn.execute_raw(self.stmt(
                    "UPDATE training_jobs SET status = 'cancelled', finished_at = $2, updated_at = $2 WHERE id = $1",
                    vec![id.to_string().into(), now.into()],
                ))
                .await?;
            }
        }
        let job = self.get_in(&txn, tenant, id).await?;
        txn.commit().await?;
        Ok(job)
    }

    /// A tenant's jobs, newest first, after the cursor `after` (a job id).
    pub async fn list(
        &self,
        tenant: TenantId,
        kinds: &[JobKind],
        after: Option<JobId>,
        limit: u64,
    ) -> Result<Vec<JobRow>, QueueError> {
        let limit = i64::try_from(limit).unwrap_or(100);
        // The kinds are the enum's own words, never the caller's text.
        let kinds = if kinds.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
            format!(" AND kind IN ({})", list.join(", "))
        };
        let rows = match after {
            Some(after) => {
                self.db
                    .query_all_raw(self.stmt(
                        &format!(
                            "SELECT {COLUMNS} FROM training_jobs WHERE tenant_id = $1 AND id < $2{kinds} \
                             ORDER BY id DESC LIMIT $3"
                        ),
                        vec![
                            tenant.to_string().into(),
                            after.to_string().into(),
                            limit.into(),
                        ],
                    ))
                    .await?
            }
            None => {
                self.db
                    .query_all_raw(self.stmt(
                        &format!(
                            "SELECT {COLUMNS} FROM training_jobs WHERE tenant_id = $1{kinds} \
                             ORDER BY id DESC LIMIT $2"
                        ),
                        vec![tenant.to_string().into(), limit.into()],
                    ))
                    .await?
            }
        };
        rows.iter().map(job_of).collect()
    }

    /// An unfinished job of the tenant whose spec names `file_id`, if any.
    pub async fn unfinished_reading(
        &self,
        tenant: TenantId,
        file_id: &str,
    ) -> Result<Option<String>, QueueError> {
        let row = self
            .db
            .query_one_raw(self.stmt(
                "SELECT id FROM training_jobs WHERE tenant_id = $1 \
                 AND status NOT IN ('succeeded', 'failed', 'cancelled') AND spec LIKE $2 ESCAPE '!' LIMIT 1",
                vec![
                    tenant.to_string().into(),
                    format!("%\"{}\"%", file_id.replace('!', "!!").replace('_', "!_").replace('%', "!%"))
                        .into(),
                ],
            ))
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("", "id")?),
            None => None,
        })
    }

    /// A tenant's job (another tenant's is `NotFound`).
    pub async fn get(&self, tenant: TenantId, id: JobId) -> Result<JobRow, QueueError> {
        let txn = self.db.begin().await?;
        let job = self.get_in(&txn, tenant, id).await?;
        txn.commit().await?;
        Ok(job)
    }

    async fn get_in(
        &self,
        txn: &DatabaseTransaction,
        tenant: TenantId,
        id: JobId,
    ) -> Result<JobRow, QueueError> {
        let row = txn
            .query_one_raw(self.stmt(
                &format!("SELECT {COLUMNS} FROM training_jobs WHERE id = $1 AND tenant_id = $2"),
                vec![id.to_string().into(), tenant.to_string().into()],
            ))
            .await?
            .ok_or(QueueError::NotFound)?;
        job_of(&row)
    }
}

fn lease_of(r: &QueryResult, owner: &str) -> Result<Lease, QueueError> {
    let job = job_of(r)?;
    Ok(Lease {
        job_id: job.id,
        tenant_id: job.tenant_id,
        attempt: job.attempt,
        owner: owner.to_string(),
        kind: job.kind,
        gpu_type: job.gpu_type,
        gpus: job.gpus,
        spec: job.spec,
    })
}

fn job_of(r: &QueryResult) -> Result<JobRow, QueueError> {
    let bad = |what: &str| QueueError::Corrupt(what.to_string());
    Ok(JobRow {
        id: r
            .try_get::<String>("", "id")?
            .parse()
            .map_err(|_| bad("job id"))?,
        tenant_id: r
            .try_get::<String>("", "tenant_id")?
            .parse()
            .map_err(|_| bad("tenant id"))?,
        kind: JobKind::parse(&r.try_get::<String>("", "kind")?)?,
        status: JobStatus::parse(&r.try_get::<String>("", "status")?)?,
        priority: r.try_get("", "priority")?,
        gpu_type: r.try_get("", "gpu_type")?,
        gpus: u32::try_from(r.try_get::<i32>("", "gpus")?).unwrap_or(0),
        spec: serde_json::from_str(&r.try_get::<String>("", "spec")?).map_err(|_| bad("spec"))?,
        attempt: r.try_get("", "attempt")?,
        max_attempts: r.try_get("", "max_attempts")?,
        wait_reason: r.try_get("", "wait_reason")?,
        control: r.try_get("", "control")?,
        error: r.try_get("", "error")?,
        result: r
            .try_get::<Option<String>>("", "result")?
            .map(|s| serde_json::from_str(&s).map_err(|_| bad("result")))
            .transpose()?,
        created_at: r.try_get("", "created_at")?,
        started_at: r.try_get("", "started_at")?,
        finished_at: r.try_get("", "finished_at")?,
    })
}
