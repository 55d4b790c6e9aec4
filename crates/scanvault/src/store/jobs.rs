//! Scan jobs: the queue, leases with fencing, and the audit log.
//!
//! Every status change goes through [`JobStore::transition`] (or, inside an ingest, the
//! same write in that transaction): the pure state machine
//! (`scanvault_core::job::transition`) decides the new status, a compare-and-set on
//! `(id, status[, attempt])` writes it, and the audit row is inserted in the same
//! transaction. Zero rows updated means someone else moved the job first (a cancel, a lease
//! reaper, a newer attempt): the caller's write is refused and nothing is written.
//!
//! The claim is the one statement that differs by backend: PostgreSQL picks the row with
//! `FOR UPDATE SKIP LOCKED` so many workers on many machines share the queue; SQLite runs
//! the same `UPDATE … WHERE id = (SELECT … LIMIT 1)`, atomic under its single writer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scanvault_core::job::{InvalidTransition, JobEvent, JobStatus};

use super::{micros, StoreError};

/// Gauges computed at scrape time.
#[derive(Debug, Default)]
pub struct JobGauges {
    pub by_status: Vec<(String, i64)>,
    pub queue_depth: i64,
    pub oldest_queued_age_seconds: f64,
}

impl JobGauges {
    /// The gauges from the number of jobs per status and the creation time of the oldest
    /// queued job, as of `now` (microseconds).
    pub fn of(by_status: &[(String, i64)], oldest_queued: Option<i64>, now: i64) -> JobGauges {
        let mut g = JobGauges::default();
        for s in JobStatus::ALL {
            let n = by_status
                .iter()
                .find(|(status, _)| status == s.as_str())
                .map_or(0, |(_, n)| *n);
            g.by_status.push((s.as_str().to_string(), n));
            if s == JobStatus::Queued {
                g.queue_depth = n;
            }
        }
        g.oldest_queued_age_seconds = oldest_queued
            .map(|t| ((now - t).max(0) as f64) / 1e6)
            .unwrap_or(0.0);
        g
    }
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

/// The image a job scans (for its events).
pub(crate) const JOB_IMAGE: &str = "SELECT image_ref FROM scan_jobs WHERE id = $1";

/// The `job.failed` event's data.
pub(crate) fn failed_event(t: &Transition, attempt: i64, image: &str) -> serde_json::Value {
    serde_json::json!({
        "JobID": t.job_id,
        "Image": image,
        "Attempt": attempt,
        "ErrorCode": t.error.as_ref().map(|e| e.0.as_str()),
        "Error": t.error.as_ref().map(|e| e.1.as_str()),
        "Reason": t.reason,
    })
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
    /// [`Lane`] as stored.
    pub lane: i64,
    /// [`JobKind`] as stored.
    pub kind: String,
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

    pub fn kind(&self) -> JobKind {
        JobKind::of_stored(&self.kind)
    }
}

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
    pub lane: Lane,
    pub kind: JobKind,
    /// The digest to re-match (a re-match's inventory); `None` for a scan.
    pub digest: Option<String>,
    /// The batch (a schedule's or a re-match round) the job joins, new or already active.
    pub batch: Option<String>,
    /// Registry URL and `Authorization` to pull with (given by a Harbor scan request).
    pub credentials: Option<(String, String)>,
}

impl NewJob {
    /// A scan of `image_ref` requested now in `lane`, with the defaults of the API.
    pub fn scan(image_ref: String, image_name: String, lane: Lane, now: DateTime<Utc>) -> NewJob {
        NewJob {
            image_ref,
            image_name,
            force: false,
            priority: 0,
            max_attempts: 3,
            requested_by: None,
            now,
            lane,
            kind: JobKind::Scan,
            digest: None,
            batch: None,
            credentials: None,
        }
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Resolve the image in its registry and scan it.
    Scan,
    /// Match the stored inventory of a digest against the current vulnerability database.
    Rematch,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Scan => "scan",
            JobKind::Rematch => "rematch",
        }
    }

    pub fn of_stored(s: &str) -> JobKind {
        if s == "rematch" {
            JobKind::Rematch
        } else {
            JobKind::Scan
        }
    }
}

/// The queue's lanes: a worker claims from the first lane that has a due job, so a scan
/// requested through the API never waits behind scheduled scans or re-matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    /// Requested through the API.
    Adhoc = 0,
    /// A round of a scan schedule.
    Scheduled = 1,
    /// A re-match of a stored inventory.
    Rematch = 2,
}

impl Lane {
    /// Every lane, in the order the claim takes them.
    pub const ALL: [Lane; 3] = [Lane::Adhoc, Lane::Scheduled, Lane::Rematch];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Adhoc => "adhoc",
            Lane::Scheduled => "scheduled",
            Lane::Rematch => "rematch",
        }
    }

    pub fn of_stored(n: i64) -> Lane {
        match n {
            0 => Lane::Adhoc,
            1 => Lane::Scheduled,
            _ => Lane::Rematch,
        }
    }
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

/// A worker storing the report of the job it holds: the ingest's transaction checks that
/// the job is still this attempt's and completes it.
#[derive(Debug, Clone)]
pub struct JobCompletion {
    pub job_id: String,
    pub attempt: i64,
    pub worker: String,
}

impl JobCompletion {
    /// The transition that completes the job with `scan_id` (`findings` of it).
    pub fn stored(&self, scan_id: &str, findings: i64, now: i64) -> Transition {
        let mut t = Transition::new(
            &self.job_id,
            JobStatus::Scanning,
            JobEvent::Stored,
            Actor::Worker(self.worker.clone()),
            format!("report stored as scan {scan_id} ({findings} findings)"),
            now,
        )
        .fenced(self.attempt);
        t.scan_id = Some(scan_id.to_string());
        t
    }
}

/// What other processes say about jobs (PostgreSQL `NOTIFY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobNotice {
    /// A job may be available (queued, retried).
    Queued,
    /// This job was cancelled.
    Cancelled(String),
}

/// A scan worker as it last said: its version, whether its Trivy runs, when it was heard.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkerRow {
    pub id: String,
    pub version: String,
    pub trivy_version: Option<String>,
    /// Why Trivy cannot run there (`None`: it can).
    pub trivy_error: Option<String>,
    pub concurrency: i64,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Queue a scan, or return the active job for the same image. `true` = newly queued.
    async fn create(&self, new: NewJob) -> Result<(JobRow, bool), StoreError>;

    async fn find(&self, id: &str) -> Result<Option<JobRow>, StoreError>;

    /// Jobs, newest first. Fetches `limit + 1` to tell whether another page follows.
    async fn list(
        &self,
        status: Option<JobStatus>,
        image: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<JobRow>, StoreError>;

    /// The audit log of a job, oldest first.
    async fn events(&self, id: &str) -> Result<Vec<AuditRow>, StoreError>;

    /// Apply one fenced transition in its own transaction; tells other processes of a
    /// retried job.
    async fn transition(&self, t: Transition) -> Result<JobRow, JobError>;

    /// Claim the next due job for `worker`: `queued → pulling`, attempt + 1, lease until
    /// `now + lease`. Expired leases are reclaimed first.
    async fn claim(
        &self,
        worker: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<JobRow>, StoreError> {
        self.claim_in(worker, lease, now, Lane::Rematch).await
    }

    /// [`JobStore::claim`] from the lanes up to `last` (`Lane::Adhoc`: a worker slot kept
    /// for requests made through the API); the first lane with a due job first.
    async fn claim_in(
        &self,
        worker: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
        last: Lane,
    ) -> Result<Option<JobRow>, StoreError>;

    /// Jobs running with a lease that expired before `now`: (id, status, attempt, max
    /// attempts, lease owner).
    async fn expired_leases(&self, now: i64) -> Result<Vec<ExpiredLease>, StoreError>;

    /// Apply `t` if the job's lease of attempt `t.attempt` is still expired at `t.now`
    /// (a renewal may have won the race); whether it was applied.
    async fn reclaim(&self, t: &Transition) -> Result<bool, StoreError>;

    /// Extend the lease; `false` when the job is no longer this attempt's (cancelled,
    /// reclaimed): the worker must stop and write nothing.
    async fn renew_lease(
        &self,
        job_id: &str,
        attempt: i64,
        worker: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Record a worker's heartbeat (and its Trivy's state); forgets workers not heard from
    /// for a day.
    async fn worker_heartbeat(&self, w: &WorkerRow) -> Result<(), StoreError>;

    /// Workers heard from since `since`, oldest first.
    async fn workers(&self, since: i64) -> Result<Vec<WorkerRow>, StoreError>;

    /// A worker that stops says so.
    async fn worker_stopped(&self, id: &str) -> Result<(), StoreError>;

    /// Status and attempt of a job, without joins (cheap; workers use it to notice a cancel).
    async fn status(&self, id: &str) -> Result<Option<(JobStatus, i64)>, StoreError>;

    async fn gauges(&self, now: DateTime<Utc>) -> Result<JobGauges, StoreError>;

    /// How many jobs there are in each (status, stored lane).
    async fn counts(&self) -> Result<Vec<(String, i64, i64)>, StoreError>;

    /// Tell other processes that `job_id` was cancelled (PostgreSQL `NOTIFY`; nothing on
    /// SQLite, whose only process knows).
    async fn announce_cancel(&self, job_id: &str);

    /// Notices from other processes, until `shutdown` (PostgreSQL `LISTEN`, reconnecting;
    /// `None` on SQLite).
    fn notices(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::sync::mpsc::Receiver<JobNotice>>;

    /// Cancel a queued or running job; returns the job and whether it was running (its
    /// worker must be stopped: the caller signals this process's workers, and other
    /// processes learn of it through [`JobStore::announce_cancel`]).
    async fn cancel(
        &self,
        id: &str,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(JobRow, bool), JobError> {
        let job = self
            .find(id)
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
        let row = self.transition(t).await?;
        let was_running = job.status().is_running();
        if was_running {
            self.announce_cancel(id).await;
        }
        Ok((row, was_running))
    }

    /// Queue a failed or cancelled job again with a fresh attempt budget.
    async fn retry(
        &self,
        id: &str,
        actor: Actor,
        extra_attempts: i64,
        now: DateTime<Utc>,
    ) -> Result<JobRow, JobError> {
        let job = self
            .find(id)
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
        match self.transition(t).await {
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

    /// Jobs whose worker stopped renewing its lease go back to the queue (or fail when
    /// their attempts are used up). Returns how many were reclaimed.
    async fn reap_expired_leases(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now_us = micros(now);
        let mut n = 0;
        for lease in self.expired_leases(now_us).await? {
            if self.reclaim(&lease.reclaim(now_us)).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A running job whose lease expired.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExpiredLease {
    pub id: String,
    pub status: String,
    pub attempt: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
}

impl ExpiredLease {
    /// The transition that takes the job back: to the queue while attempts remain, else
    /// to failed.
    pub fn reclaim(&self, now: i64) -> Transition {
        let from = JobStatus::parse(&self.status).unwrap_or(JobStatus::Pulling);
        let retry = self.attempt < self.max_attempts;
        let mut t = Transition::new(
            &self.id,
            from,
            JobEvent::LeaseExpired { retry },
            Actor::System,
            format!(
                "lease of {} expired during attempt {}; {}",
                self.lease_owner.as_deref().unwrap_or("a worker"),
                self.attempt,
                if retry {
                    "queued again"
                } else {
                    "no attempts left"
                }
            ),
            now,
        )
        .fenced(self.attempt);
        t.run_after = Some(now);
        if !retry {
            t.error = Some((
                "transient".into(),
                "the worker running this job stopped responding and no attempts are left".into(),
            ));
        }
        t
    }
}
