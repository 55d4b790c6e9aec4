//! Scan jobs: the queue, leases with fencing, and the audit log.
//!
//! Every status change goes through [`Store::apply_transition_in_tx`], which asks the pure
//! state machine (`scanvault_core::job::transition`) for the new status, writes it with a
//! compare-and-set on `(id, status[, attempt])`, and inserts the audit row in the same
//! transaction. Zero rows updated means someone else moved the job first (a cancel, a lease
//! reaper, a newer attempt): the caller's write is refused and nothing is written.
//!
//! The claim is the one statement that differs by backend: PostgreSQL picks the row with
//! `FOR UPDATE SKIP LOCKED` so many workers on many machines share the queue; SQLite runs
//! the same `UPDATE … WHERE id = (SELECT … LIMIT 1)`, atomic under its single writer.

use super::scans::NewScan;
use super::{micros, Backend, Store, StoreError};
use chrono::{DateTime, Utc};
use scanvault_core::job::{transition, InvalidTransition, JobEvent, JobStatus};
use sqlx::{Any, AnyConnection, Row};
use uuid::Uuid;

/// Gauges computed at scrape time.
#[derive(Debug, Default)]
pub struct JobGauges {
    pub by_status: Vec<(String, i64)>,
    pub queue_depth: i64,
    pub oldest_queued_age_seconds: f64,
}

/// Who changes a job (written to the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Worker(String),
    Api(Option<String>),
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Worker(id) => format!("worker:{id}"),
            Actor::Api(Some(key)) => format!("api:{key}"),
            Actor::Api(None) => "api".to_string(),
            Actor::System => "system".to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("scan job {0} not found")]
    NotFound(String),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// The job moved on (cancelled, reclaimed, newer attempt): this write is refused.
    #[error("the job is no longer held by this attempt")]
    Lost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Store(e.into())
    }
}

/// One scan job, with the resulting scan's counts when completed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub image_ref: String,
    pub image_name: String,
    pub status: String,
    pub force: i64,
    pub priority: i64,
    pub attempt: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub resolved_digest: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub error_message: Option<String>,
    pub error_class: Option<String>,
    pub scan_id: Option<String>,
    pub requested_by: Option<String>,
    pub vuln_critical: Option<i64>,
    pub vuln_high: Option<i64>,
    pub vuln_medium: Option<i64>,
    pub vuln_low: Option<i64>,
    pub vuln_unknown: Option<i64>,
}

impl JobRow {
    pub fn status(&self) -> JobStatus {
        JobStatus::parse(&self.status).unwrap_or(JobStatus::Failed)
    }
}

const JOB_SELECT: &str = "SELECT j.id, j.image_ref, j.image_name, j.status, j.force, j.priority, j.attempt, \
    j.max_attempts, j.run_after, j.lease_owner, j.lease_expires_at, j.resolved_digest, j.created_at, \
    j.updated_at, j.started_at, j.completed_at, j.error_message, j.error_class, j.scan_id, j.requested_by, \
    s.vuln_critical, s.vuln_high, s.vuln_medium, s.vuln_low, s.vuln_unknown \
    FROM scan_jobs j LEFT JOIN scans s ON s.id = j.scan_id";

/// One audit-log row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub job_id: String,
    pub attempt: i64,
    pub old_status: Option<String>,
    pub new_status: String,
    pub changed_by: String,
    pub reason: Option<String>,
    pub at: i64,
}

/// A requested scan.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Canonical reference (`registry/repository:tag` or `…@digest`).
    pub image_ref: String,
    /// Familiar image name, the name its scans are stored under.
    pub image_name: String,
    pub force: bool,
    pub priority: i64,
    pub max_attempts: i64,
    pub requested_by: Option<String>,
    pub now: DateTime<Utc>,
}

/// A fenced status change.
#[derive(Debug, Clone)]
pub struct Transition {
    pub job_id: String,
    pub from: JobStatus,
    pub event: JobEvent,
    /// Fencing token: the attempt that must still hold the job (`None`: any attempt).
    pub attempt: Option<i64>,
    pub actor: Actor,
    pub reason: String,
    pub now: i64,
    pub run_after: Option<i64>,
    pub resolved_digest: Option<String>,
    /// `(class, message)` of an error to record.
    pub error: Option<(String, String)>,
    pub scan_id: Option<String>,
    /// New attempt budget (API retry).
    pub max_attempts: Option<i64>,
}

impl Transition {
    pub fn new(
        job_id: &str,
        from: JobStatus,
        event: JobEvent,
        actor: Actor,
        reason: impl Into<String>,
        now: i64,
    ) -> Self {
        Transition {
            job_id: job_id.to_string(),
            from,
            event,
            attempt: None,
            actor,
            reason: reason.into(),
            now,
            run_after: None,
            resolved_digest: None,
            error: None,
            scan_id: None,
            max_attempts: None,
        }
    }

    pub fn fenced(mut self, attempt: i64) -> Self {
        self.attempt = Some(attempt);
        self
    }
}

impl Store {
    /// Queue a scan, or return the active job for the same image. `true` = newly queued.
    pub async fn create_job(&self, new: NewJob) -> Result<(JobRow, bool), StoreError> {
        let now = micros(new.now);
        let mut tx = self.write_pool().begin().await?;
        if let Some(existing) = active_job_for(&mut tx, &new.image_ref).await? {
            tx.commit().await?;
            return Ok((existing, false));
        }
        let id = Uuid::now_v7().to_string();
        let inserted = sqlx::query(
            "INSERT INTO scan_jobs (id, image_ref, image_name, status, force, priority, attempt, max_attempts, \
             run_after, created_at, updated_at, requested_by) VALUES ($1, $2, $3, 'queued', $4, $5, 0, $6, $7, $7, $7, $8) \
             ON CONFLICT (image_ref) WHERE status IN ('queued', 'pulling', 'scanning') DO NOTHING RETURNING id",
        )
        .bind(&id)
        .bind(&new.image_ref)
        .bind(&new.image_name)
        .bind(i64::from(new.force))
        .bind(new.priority)
        .bind(new.max_attempts)
        .bind(now)
        .bind(&new.requested_by)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            // A concurrent request queued the same image first.
            let existing = active_job_for(&mut tx, &new.image_ref).await?;
            tx.commit().await?;
            return existing
                .map(|j| (j, false))
                .ok_or_else(|| StoreError::Conflict("concurrent scan request".into()));
        }
        insert_audit(
            &mut tx,
            &id,
            0,
            None,
            JobStatus::Queued,
            &Actor::Api(new.requested_by.clone()),
            "scan requested",
            now,
        )
        .await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_notify('scanvault_jobs', $1)")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        let job = fetch_job(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("job vanished")))?;
        tx.commit().await?;
        self.job_notify().notify_waiters();
        metrics::counter!("scanvault_job_transitions_total", "to" => "queued").increment(1);
        Ok((job, true))
    }

    pub async fn find_job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let mut conn = self.read_pool().acquire().await?;
        fetch_job(&mut conn, id).await
    }

    /// Jobs, newest first. Fetches `limit + 1` to tell whether another page follows.
    pub async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        image: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<JobRow>, StoreError> {
        let mut conds = vec![];
        let mut n = 0;
        if status.is_some() {
            n += 1;
            conds.push(format!("j.status = ${n}"));
        }
        if image.is_some() {
            n += 1;
            conds.push(format!("(j.image_name = ${n} OR j.image_ref = ${n})"));
        }
        let where_sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "{JOB_SELECT} {where_sql} ORDER BY j.created_at DESC, j.id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut q = sqlx::query_as::<Any, JobRow>(&sql);
        if let Some(s) = status {
            q = q.bind(s.as_str());
        }
        if let Some(i) = image {
            q = q.bind(i);
        }
        Ok(q.bind(limit + 1)
            .bind(offset)
            .fetch_all(self.read_pool())
            .await?)
    }

    /// The audit log of a job, oldest first.
    pub async fn job_events(&self, id: &str) -> Result<Vec<AuditRow>, StoreError> {
        Ok(sqlx::query_as::<Any, AuditRow>(
            "SELECT id, job_id, attempt, old_status, new_status, changed_by, reason, at FROM scan_audit_log \
             WHERE job_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.read_pool())
        .await?)
    }

    /// Apply one fenced transition in its own transaction.
    pub async fn apply_transition(&self, t: Transition) -> Result<JobRow, JobError> {
        let mut tx = self.write_pool().begin().await?;
        self.apply_transition_in_tx(&mut tx, &t).await?;
        let job = fetch_job(&mut tx, &t.job_id)
            .await?
            .ok_or_else(|| JobError::NotFound(t.job_id.clone()))?;
        tx.commit().await?;
        if t.event == JobEvent::Retry {
            if self.backend() == Backend::Postgres {
                let _ = sqlx::query("SELECT pg_notify('scanvault_jobs', $1)")
                    .bind(&t.job_id)
                    .execute(self.write_pool())
                    .await;
            }
            self.job_notify().notify_waiters();
        }
        Ok(job)
    }

    /// The state machine decides, a compare-and-set writes, the audit row records.
    pub(crate) async fn apply_transition_in_tx(
        &self,
        conn: &mut AnyConnection,
        t: &Transition,
    ) -> Result<JobStatus, JobError> {
        let to = transition(t.from, t.event)?;
        let terminal = to.is_terminal();
        let leaving_lease = !to.is_running();
        let row = sqlx::query(
            "UPDATE scan_jobs SET status = $1, updated_at = $2, \
             run_after = COALESCE($3, run_after), \
             lease_owner = CASE WHEN $4 = 1 THEN NULL ELSE lease_owner END, \
             lease_expires_at = CASE WHEN $4 = 1 THEN NULL ELSE lease_expires_at END, \
             resolved_digest = COALESCE($5, resolved_digest), \
             completed_at = CASE WHEN $6 = 1 THEN $2 WHEN $1 = 'queued' THEN NULL ELSE completed_at END, \
             error_class = CASE WHEN $1 = 'completed' THEN NULL ELSE COALESCE($7, error_class) END, \
             error_message = CASE WHEN $1 = 'completed' THEN NULL ELSE COALESCE($8, error_message) END, \
             scan_id = COALESCE($9, scan_id), \
             max_attempts = COALESCE($10, max_attempts) \
             WHERE id = $11 AND status = $12 AND ($13 < 0 OR attempt = $13) RETURNING attempt",
        )
        .bind(to.as_str())
        .bind(t.now)
        .bind(t.run_after)
        .bind(i64::from(leaving_lease))
        .bind(&t.resolved_digest)
        .bind(i64::from(terminal))
        .bind(t.error.as_ref().map(|e| e.0.clone()))
        .bind(t.error.as_ref().map(|e| e.1.clone()))
        .bind(&t.scan_id)
        .bind(t.max_attempts)
        .bind(&t.job_id)
        .bind(t.from.as_str())
        .bind(t.attempt.unwrap_or(-1))
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Err(JobError::Lost);
        };
        let attempt: i64 = row.get(0);
        insert_audit(
            conn,
            &t.job_id,
            attempt,
            Some(t.from),
            to,
            &t.actor,
            &t.reason,
            t.now,
        )
        .await?;
        metrics::counter!("scanvault_job_transitions_total", "to" => to.as_str()).increment(1);
        Ok(to)
    }

    /// Cancel a queued or running job (API). A running scan is killed: at once in this
    /// process, through NOTIFY in other PostgreSQL-connected workers, and at the latest at
    /// the worker's next lease renewal.
    pub async fn cancel_job(
        &self,
        id: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<JobRow, JobError> {
        let job = self
            .find_job(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        let t = Transition::new(
            id,
            job.status(),
            JobEvent::Cancel,
            actor,
            "cancelled by request",
            micros(now),
        );
        let row = self.apply_transition(t).await?;
        if job.status().is_running() {
            self.signal_job_cancelled(id);
            if self.backend() == Backend::Postgres {
                let _ = sqlx::query("SELECT pg_notify('scanvault_job_cancel', $1)")
                    .bind(id)
                    .execute(self.write_pool())
                    .await;
            }
        }
        Ok(row)
    }

    /// On PostgreSQL, listen for new jobs and cancellations from other processes.
    pub fn spawn_job_listener(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.backend() != Backend::Postgres {
            return None;
        }
        let store = self.clone();
        let url = self.database_url().to_string();
        Some(tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(mut l) => {
                        if l.listen_all(["scanvault_jobs", "scanvault_job_cancel"])
                            .await
                            .is_err()
                        {
                            continue;
                        }
                        loop {
                            let n = tokio::select! {
                                _ = shutdown.cancelled() => return,
                                n = l.recv() => n,
                            };
                            match n {
                                Ok(n) if n.channel() == "scanvault_job_cancel" => {
                                    store.signal_job_cancelled(n.payload());
                                }
                                Ok(_) => store.job_notify().notify_waiters(),
                                Err(e) => {
                                    tracing::debug!(error = %e, "job listener lost its connection");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "job listener cannot connect; polling only")
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                }
            }
        }))
    }

    /// Queue a failed or cancelled job again with a fresh attempt budget (API).
    pub async fn retry_job(
        &self,
        id: &str,
        actor: Actor,
        extra_attempts: i64,
        now: DateTime<Utc>,
    ) -> Result<JobRow, JobError> {
        let job = self
            .find_job(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        let mut t = Transition::new(
            id,
            job.status(),
            JobEvent::Retry,
            actor,
            "retry requested",
            micros(now),
        );
        t.run_after = Some(micros(now));
        t.max_attempts = Some(job.attempt + extra_attempts);
        match self.apply_transition(t).await {
            // Another active job for the same image exists: the unique index refuses this one.
            Err(JobError::Store(StoreError::Conflict(_))) => {
                Err(JobError::InvalidTransition(InvalidTransition {
                    from: job.status(),
                    event: "retry (another scan of this image is already active)",
                }))
            }
            other => other,
        }
    }

    /// Claim the next due job for `worker`: `queued → pulling`, attempt + 1, lease until
    /// `now + lease`. Expired leases are reclaimed first.
    pub async fn claim_job(
        &self,
        worker: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<JobRow>, StoreError> {
        self.reap_expired_leases(now).await?;
        let now_us = micros(now);
        let lease_until = now_us + i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 4);
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE scan_jobs SET status = 'pulling', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2, \
             started_at = COALESCE(started_at, $3), updated_at = $3 \
             WHERE id = (SELECT id FROM scan_jobs WHERE status = 'queued' AND run_after <= $3 \
             ORDER BY priority DESC, run_after, created_at, id LIMIT 1{lock}) AND status = 'queued' RETURNING id, attempt"
        );
        let mut tx = self.write_pool().begin().await?;
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(lease_until)
            .bind(now_us)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let id: String = row.get(0);
        let attempt: i64 = row.get(1);
        debug_assert_eq!(
            transition(JobStatus::Queued, JobEvent::Claim).ok(),
            Some(JobStatus::Pulling)
        );
        insert_audit(
            &mut tx,
            &id,
            attempt,
            Some(JobStatus::Queued),
            JobStatus::Pulling,
            &Actor::Worker(worker.to_string()),
            &format!("claimed (attempt {attempt})"),
            now_us,
        )
        .await?;
        let job = fetch_job(&mut tx, &id).await?;
        tx.commit().await?;
        metrics::counter!("scanvault_job_transitions_total", "to" => "pulling").increment(1);
        Ok(job)
    }

    /// Jobs whose worker stopped renewing its lease go back to the queue (or fail when their
    /// attempts are used up). Returns how many were reclaimed.
    pub async fn reap_expired_leases(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now_us = micros(now);
        let expired = sqlx::query(
            "SELECT id, status, attempt, max_attempts, lease_owner FROM scan_jobs \
             WHERE status IN ('pulling', 'scanning') AND lease_expires_at < $1",
        )
        .bind(now_us)
        .fetch_all(self.read_pool())
        .await?;
        let mut n = 0;
        for row in expired {
            let id: String = row.get(0);
            let from = JobStatus::parse(&row.get::<String, _>(1)).unwrap_or(JobStatus::Pulling);
            let attempt: i64 = row.get(2);
            let max: i64 = row.get(3);
            let owner: Option<String> = row.get(4);
            let retry = attempt < max;
            let mut t = Transition::new(
                &id,
                from,
                JobEvent::LeaseExpired { retry },
                Actor::System,
                format!(
                    "lease of {} expired during attempt {attempt}; {}",
                    owner.as_deref().unwrap_or("a worker"),
                    if retry {
                        "queued again"
                    } else {
                        "no attempts left"
                    }
                ),
                now_us,
            )
            .fenced(attempt);
            t.run_after = Some(now_us);
            if !retry {
                t.error = Some((
                    "transient".into(),
                    "the worker running this job stopped responding and no attempts are left"
                        .into(),
                ));
            }
            let mut tx = self.write_pool().begin().await?;
            // Re-check the lease inside the transaction: a renewal may have won the race.
            let still = sqlx::query(
                "SELECT 1 FROM scan_jobs WHERE id = $1 AND attempt = $2 AND lease_expires_at < $3",
            )
            .bind(&id)
            .bind(attempt)
            .bind(now_us)
            .fetch_optional(&mut *tx)
            .await?;
            if still.is_none() {
                continue;
            }
            match self.apply_transition_in_tx(&mut tx, &t).await {
                Ok(_) => {
                    tx.commit().await?;
                    n += 1;
                }
                Err(JobError::Store(e)) => return Err(e),
                Err(_) => {}
            }
        }
        if n > 0 {
            self.job_notify().notify_waiters();
        }
        Ok(n)
    }

    /// Extend the lease; `false` when the job is no longer this attempt's (cancelled,
    /// reclaimed): the worker must stop and write nothing.
    pub async fn renew_lease(
        &self,
        job_id: &str,
        attempt: i64,
        worker: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let until = micros(now) + i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 4);
        let r = sqlx::query(
            "UPDATE scan_jobs SET lease_expires_at = $1 WHERE id = $2 AND attempt = $3 AND lease_owner = $4 \
             AND status IN ('pulling', 'scanning')",
        )
        .bind(until)
        .bind(job_id)
        .bind(attempt)
        .bind(worker)
        .execute(self.write_pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Store Trivy's report and complete the job in one transaction, fenced by the attempt:
    /// a worker that lost its job stores nothing.
    pub async fn complete_job_with_report(
        &self,
        job_id: &str,
        attempt: i64,
        worker: &str,
        new: NewScan,
    ) -> Result<(JobRow, String), JobError> {
        let body = super::scans::StoredBody::of(&new.raw)?;
        // A transaction lost to a concurrent ingest is run again, as for `POST /scans`.
        let (new, body) = (&new, &body);
        super::scans::retry_conflicts(
            |e| matches!(e, JobError::Store(StoreError::Conflict(_))),
            || async move {
                let mut tx = self.write_pool().begin().await?;
                let held = sqlx::query(&format!(
                    "SELECT 1 FROM scan_jobs WHERE id = $1 AND attempt = $2 AND status = 'scanning'{}",
                    self.for_update()
                ))
                .bind(job_id)
                .bind(attempt)
                .fetch_optional(&mut *tx)
                .await?;
                if held.is_none() {
                    return Err(JobError::Lost);
                }
                let outcome = self.ingest_in_tx(&mut tx, new, body).await?;
                let mut t = Transition::new(
                    job_id,
                    JobStatus::Scanning,
                    JobEvent::Stored,
                    Actor::Worker(worker.to_string()),
                    format!(
                        "report stored as scan {} ({} findings)",
                        outcome.scan.id,
                        outcome.scan.counts().total()
                    ),
                    micros(new.now),
                )
                .fenced(attempt);
                t.scan_id = Some(outcome.scan.id.clone());
                self.apply_transition_in_tx(&mut tx, &t).await?;
                let job = fetch_job(&mut tx, job_id)
                    .await?
                    .ok_or_else(|| JobError::NotFound(job_id.to_string()))?;
                tx.commit().await?;
                if outcome.catalog_orphans {
                    self.mark_catalog_sweep_due();
                }
                Ok((job, outcome.scan.id))
            },
        )
        .await
    }

    /// A completed scan of `digest` for `image_name` at least as recent as `since`.
    pub async fn find_fresh_scan(
        &self,
        image_name: &str,
        digest: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, scanned_at FROM scans WHERE image_name = $1 AND image_digest = $2 AND scanned_at >= $3 \
             ORDER BY scanned_at DESC LIMIT 1",
        )
        .bind(image_name)
        .bind(digest)
        .bind(micros(since))
        .fetch_optional(self.read_pool())
        .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Queue or running status of a job, without joins (cheap; used by workers to notice a cancel).
    pub async fn job_status(&self, id: &str) -> Result<Option<(JobStatus, i64)>, StoreError> {
        let row = sqlx::query("SELECT status, attempt FROM scan_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.read_pool())
            .await?;
        Ok(row.and_then(|r| JobStatus::parse(&r.get::<String, _>(0)).map(|s| (s, r.get(1)))))
    }

    pub async fn job_gauges(&self, now: DateTime<Utc>) -> Result<JobGauges, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM scan_jobs GROUP BY status")
            .fetch_all(self.read_pool())
            .await?;
        let mut g = JobGauges::default();
        for s in JobStatus::ALL {
            let n = rows
                .iter()
                .find(|r| r.get::<String, _>(0) == s.as_str())
                .map(|r| r.get::<i64, _>(1))
                .unwrap_or(0);
            g.by_status.push((s.as_str().to_string(), n));
            if s == JobStatus::Queued {
                g.queue_depth = n;
            }
        }
        let oldest: Option<i64> =
            sqlx::query("SELECT MIN(created_at) FROM scan_jobs WHERE status = 'queued'")
                .fetch_one(self.read_pool())
                .await?
                .get(0);
        g.oldest_queued_age_seconds = oldest
            .map(|t| ((micros(now) - t).max(0) as f64) / 1e6)
            .unwrap_or(0.0);
        Ok(g)
    }
}

async fn active_job_for(
    conn: &mut AnyConnection,
    image_ref: &str,
) -> Result<Option<JobRow>, StoreError> {
    Ok(sqlx::query_as::<Any, JobRow>(&format!(
        "{JOB_SELECT} WHERE j.image_ref = $1 AND j.status IN ('queued', 'pulling', 'scanning')"
    ))
    .bind(image_ref)
    .fetch_optional(&mut *conn)
    .await?)
}

async fn fetch_job(conn: &mut AnyConnection, id: &str) -> Result<Option<JobRow>, StoreError> {
    Ok(
        sqlx::query_as::<Any, JobRow>(&format!("{JOB_SELECT} WHERE j.id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

#[allow(clippy::too_many_arguments)]
async fn insert_audit(
    conn: &mut AnyConnection,
    job_id: &str,
    attempt: i64,
    old: Option<JobStatus>,
    new: JobStatus,
    actor: &Actor,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO scan_audit_log (job_id, attempt, old_status, new_status, changed_by, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(job_id)
    .bind(attempt)
    .bind(old.map(|s| s.as_str()))
    .bind(new.as_str())
    .bind(actor.label())
    .bind(reason)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
