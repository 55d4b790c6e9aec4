//! The scan queue on PostgreSQL: workers on any number of machines claim with `FOR UPDATE
//! SKIP LOCKED`, and `LISTEN`/`NOTIFY` tells them of new jobs and cancellations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scanvault_core::job::{transition, JobEvent, JobStatus};
use sqlx::postgres::PgListener;
use sqlx::PgConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::PgStore;
use crate::store::jobs::{
    Actor, AuditRow, ExpiredLease, JobError, JobGauges, JobKind, JobNotice, JobRow, JobStore, Lane,
    NewJob, Transition, WorkerRow,
};
use crate::store::{duration_micros, micros, sql, StoreError};

const CHANNEL_JOBS: &str = "scanvault_jobs";
const CHANNEL_CANCEL: &str = "scanvault_job_cancel";
const CLAIM: &str = sql::claim_job!(" FOR UPDATE SKIP LOCKED");
const HELD_JOB: &str = const_format::concatcp!(sql::HELD_JOB, " FOR UPDATE");

#[async_trait]
impl JobStore for PgStore {
    async fn create(&self, new: NewJob) -> Result<(JobRow, bool), StoreError> {
        let now = micros(new.now);
        let mut tx = self.pool.begin().await?;
        if let Some(mut existing) = active_job_for(&mut tx, &new.image_ref, new.kind).await? {
            // A request in an earlier lane moves the queued job there.
            let moved = sqlx::query(sql::PROMOTE_JOB)
                .bind(&existing.id)
                .bind(new.lane as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved > 0 {
                existing.lane = new.lane as i64;
            }
            join_batch(&mut tx, new.batch.as_deref(), &existing.id).await?;
            tx.commit().await?;
            return Ok((existing, false));
        }
        let id = Uuid::now_v7().to_string();
        let inserted: Option<String> = sqlx::query_scalar(sql::INSERT_JOB)
            .bind(&id)
            .bind(&new.image_ref)
            .bind(&new.image_name)
            .bind(i64::from(new.force))
            .bind(new.priority)
            .bind(new.max_attempts)
            .bind(now)
            .bind(&new.requested_by)
            .bind(new.lane as i64)
            .bind(new.kind.as_str())
            .bind(&new.digest)
            .fetch_optional(&mut *tx)
            .await?;
        if inserted.is_none() {
            // A concurrent request queued the same image first.
            let existing = active_job_for(&mut tx, &new.image_ref, new.kind).await?;
            tx.commit().await?;
            return existing
                .map(|j| (j, false))
                .ok_or_else(|| StoreError::Conflict("concurrent scan request".into()));
        }
        let actor = Actor::Api(new.requested_by.clone());
        insert_audit(
            &mut tx,
            &id,
            0,
            None,
            JobStatus::Queued,
            &actor,
            match new.kind {
                JobKind::Scan => "scan requested",
                JobKind::Rematch => "re-match requested",
            },
            now,
        )
        .await?;
        join_batch(&mut tx, new.batch.as_deref(), &id).await?;
        if let Some((url, authorization)) = &new.credentials {
            sqlx::query(crate::store::monitor::INSERT_JOB_CREDENTIALS)
                .bind(&id)
                .bind(url)
                .bind(authorization)
                .execute(&mut *tx)
                .await?;
        }
        notify(&mut tx, CHANNEL_JOBS, &id).await?;
        let job = fetch_job(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("job vanished")))?;
        tx.commit().await?;
        metrics::counter!("scanvault_job_transitions_total", "to" => "queued").increment(1);
        Ok((job, true))
    }

    async fn find(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        fetch_job(&mut conn, id).await
    }

    async fn list(
        &self,
        status: Option<JobStatus>,
        image: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<JobRow>, StoreError> {
        Ok(sqlx::query_as(sql::LIST_JOBS)
            .bind(status.map_or("", |s| s.as_str()))
            .bind(image.unwrap_or_default())
            .bind(limit + 1)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn events(&self, id: &str) -> Result<Vec<AuditRow>, StoreError> {
        Ok(sqlx::query_as(sql::JOB_EVENTS)
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn transition(&self, t: Transition) -> Result<JobRow, JobError> {
        let mut tx = self.pool.begin().await?;
        apply_transition(&mut tx, &t).await?;
        if t.event == JobEvent::Retry {
            notify(&mut tx, CHANNEL_JOBS, &t.job_id).await?;
        }
        let job = fetch_job(&mut tx, &t.job_id)
            .await?
            .ok_or_else(|| JobError::NotFound(t.job_id.clone()))?;
        tx.commit().await?;
        Ok(job)
    }

    async fn claim_in(
        &self,
        worker: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
        last: Lane,
    ) -> Result<Option<JobRow>, StoreError> {
        self.reap_expired_leases(now).await?;
        let now_us = micros(now);
        let mut tx = self.pool.begin().await?;
        let claimed: Option<(String, i64)> = sqlx::query_as(CLAIM)
            .bind(worker)
            .bind(now_us + duration_micros(lease))
            .bind(now_us)
            .bind(last as i64)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((id, attempt)) = claimed else {
            tx.commit().await?;
            return Ok(None);
        };
        debug_assert_eq!(
            transition(JobStatus::Queued, JobEvent::Claim).ok(),
            Some(JobStatus::Pulling)
        );
        let reason = format!("claimed (attempt {attempt})");
        let actor = Actor::Worker(worker.to_string());
        insert_audit(
            &mut tx,
            &id,
            attempt,
            Some(JobStatus::Queued),
            JobStatus::Pulling,
            &actor,
            &reason,
            now_us,
        )
        .await?;
        let job = fetch_job(&mut tx, &id).await?;
        tx.commit().await?;
        metrics::counter!("scanvault_job_transitions_total", "to" => "pulling").increment(1);
        Ok(job)
    }

    async fn expired_leases(&self, now: i64) -> Result<Vec<ExpiredLease>, StoreError> {
        Ok(sqlx::query_as(sql::EXPIRED_LEASES)
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn reclaim(&self, t: &Transition) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let still: Option<i32> = sqlx::query_scalar(sql::STILL_EXPIRED)
            .bind(&t.job_id)
            .bind(t.attempt.unwrap_or(-1))
            .bind(t.now)
            .fetch_optional(&mut *tx)
            .await?;
        if still.is_none() {
            return Ok(false);
        }
        match apply_transition(&mut tx, t).await {
            Ok(()) => {
                notify(&mut tx, CHANNEL_JOBS, &t.job_id).await?;
                tx.commit().await?;
                Ok(true)
            }
            Err(JobError::Store(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    async fn renew_lease(
        &self,
        job_id: &str,
        attempt: i64,
        worker: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(sql::RENEW_LEASE)
            .bind(micros(now) + duration_micros(lease))
            .bind(job_id)
            .bind(attempt)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn worker_heartbeat(&self, w: &WorkerRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::UPSERT_WORKER)
            .bind(&w.id)
            .bind(&w.version)
            .bind(&w.trivy_version)
            .bind(&w.trivy_error)
            .bind(w.concurrency)
            .bind(w.started_at)
            .bind(w.heartbeat_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::FORGET_WORKERS)
            .bind(w.heartbeat_at - 86_400_000_000)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn workers(&self, since: i64) -> Result<Vec<WorkerRow>, StoreError> {
        Ok(sqlx::query_as(sql::WORKERS)
            .bind(since)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn worker_stopped(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(sql::DELETE_WORKER)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn status(&self, id: &str) -> Result<Option<(JobStatus, i64)>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(sql::JOB_STATUS)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|(s, a)| JobStatus::parse(&s).map(|s| (s, a))))
    }

    async fn gauges(&self, now: DateTime<Utc>) -> Result<JobGauges, StoreError> {
        let by_status: Vec<(String, i64)> = sqlx::query_as(sql::JOBS_BY_STATUS)
            .fetch_all(&self.pool)
            .await?;
        let oldest: Option<i64> = sqlx::query_scalar(sql::OLDEST_QUEUED)
            .fetch_one(&self.pool)
            .await?;
        Ok(JobGauges::of(&by_status, oldest, micros(now)))
    }

    async fn counts(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        Ok(sqlx::query_as(sql::JOBS_BY_STATUS_AND_LANE)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn announce_cancel(&self, job_id: &str) {
        if let Ok(mut conn) = self.pool.acquire().await {
            let _ = notify(&mut conn, CHANNEL_CANCEL, job_id).await;
        }
    }

    fn notices(&self, shutdown: CancellationToken) -> Option<mpsc::Receiver<JobNotice>> {
        let (send, receive) = mpsc::channel(64);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                match PgListener::connect_with(&pool).await {
                    Ok(mut l) => {
                        if l.listen_all([CHANNEL_JOBS, CHANNEL_CANCEL]).await.is_ok() {
                            loop {
                                let n = tokio::select! {
                                    _ = shutdown.cancelled() => return,
                                    n = l.recv() => n,
                                };
                                let notice = match n {
                                    Ok(n) if n.channel() == CHANNEL_CANCEL => {
                                        JobNotice::Cancelled(n.payload().to_string())
                                    }
                                    Ok(_) => JobNotice::Queued,
                                    Err(e) => {
                                        tracing::debug!(error = %e, "job listener lost its connection");
                                        break;
                                    }
                                };
                                if send.send(notice).await.is_err() {
                                    return;
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
        });
        Some(receive)
    }
}

/// The state machine decides, a compare-and-set writes, the audit row records.
pub(super) async fn apply_transition(
    conn: &mut PgConnection,
    t: &Transition,
) -> Result<(), JobError> {
    let to = transition(t.from, t.event)?;
    let attempt: Option<i64> = sqlx::query_scalar(sql::TRANSITION_JOB)
        .bind(to.as_str())
        .bind(t.now)
        .bind(t.run_after)
        .bind(i64::from(!to.is_running()))
        .bind(&t.resolved_digest)
        .bind(i64::from(to.is_terminal()))
        .bind(t.error.as_ref().map(|e| e.0.as_str()))
        .bind(t.error.as_ref().map(|e| e.1.as_str()))
        .bind(&t.scan_id)
        .bind(t.max_attempts)
        .bind(&t.job_id)
        .bind(t.from.as_str())
        .bind(t.attempt.unwrap_or(-1))
        .fetch_optional(&mut *conn)
        .await?;
    let attempt = attempt.ok_or(JobError::Lost)?;
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
    if to == JobStatus::Failed {
        let image: String = sqlx::query_scalar(crate::store::jobs::JOB_IMAGE)
            .bind(&t.job_id)
            .fetch_one(&mut *conn)
            .await?;
        let event = crate::store::jobs::failed_event(t, attempt, &image);
        super::webhooks::emit(conn, &[("job.failed", event)], t.now).await?;
    }
    metrics::counter!("scanvault_job_transitions_total", "to" => to.as_str()).increment(1);
    Ok(())
}

/// Whether the job is still held by `attempt` (and lock it for the transaction).
pub(super) async fn hold_job(
    conn: &mut PgConnection,
    job_id: &str,
    attempt: i64,
) -> Result<bool, StoreError> {
    let held: Option<i32> = sqlx::query_scalar(HELD_JOB)
        .bind(job_id)
        .bind(attempt)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(held.is_some())
}

async fn notify(conn: &mut PgConnection, channel: &str, payload: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn active_job_for(
    conn: &mut PgConnection,
    image_ref: &str,
    kind: JobKind,
) -> Result<Option<JobRow>, StoreError> {
    Ok(sqlx::query_as(sql::ACTIVE_JOB_FOR)
        .bind(image_ref)
        .bind(kind.as_str())
        .fetch_optional(&mut *conn)
        .await?)
}

/// `job` joins `batch` (when the request came from one).
async fn join_batch(
    conn: &mut PgConnection,
    batch: Option<&str>,
    job: &str,
) -> Result<(), StoreError> {
    if let Some(batch) = batch {
        sqlx::query(crate::store::monitor::JOIN_BATCH)
            .bind(batch)
            .bind(job)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn fetch_job(conn: &mut PgConnection, id: &str) -> Result<Option<JobRow>, StoreError> {
    Ok(sqlx::query_as(sql::FETCH_JOB)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

#[allow(clippy::too_many_arguments)]
async fn insert_audit(
    conn: &mut PgConnection,
    job_id: &str,
    attempt: i64,
    old: Option<JobStatus>,
    new: JobStatus,
    actor: &Actor,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(sql::INSERT_AUDIT)
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
