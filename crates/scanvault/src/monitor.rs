//! Continuous monitoring (ADR 0027): re-match rounds (every image of the current fleet whose
//! digest has a stored inventory, as jobs of the re-match lane), scan schedules (each round a
//! batch of jobs in the scheduled lane), and the loop that starts both when they are due.

use std::time::Duration;

use chrono::Utc;
use scanvault_registry::{parse_repository_pattern, Reference, RegistryClient};
use scanvault_scanner::Trivy;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::jobs::{JobKind, Lane, NewJob};
use crate::store::monitor::ScheduleRow;
use crate::store::{micros, Store, StoreError};

/// How often the loop looks for due schedules and a changed vulnerability database.
pub const TICK: Duration = Duration::from_secs(15);

/// Something in a round that was not queued, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Problem {
    pub entry: String,
    pub error: String,
}

/// A round as queued.
#[derive(Debug, Clone)]
pub struct Round {
    pub batch_id: String,
    /// Jobs in the batch (new ones and active ones it joined).
    pub jobs: usize,
    pub problems: Vec<Problem>,
}

/// A re-match of `name[:tag]@digest` in `lane`, requested `now`; a name that makes no
/// reference is a [`Problem`].
pub fn rematch_job(
    name: &str,
    tag: &str,
    digest: &str,
    lane: Lane,
    now: chrono::DateTime<Utc>,
) -> Result<NewJob, Problem> {
    let entry = if tag.is_empty() {
        format!("{name}@{digest}")
    } else {
        format!("{name}:{tag}@{digest}")
    };
    let reference = Reference::parse(&entry).map_err(|e| Problem {
        error: e.to_string(),
        entry: entry.clone(),
    })?;
    Ok(NewJob {
        kind: JobKind::Rematch,
        digest: Some(digest.to_string()),
        ..NewJob::scan(reference.to_string(), name.to_string(), lane, now)
    })
}

/// Queue a re-match of every image of the current fleet whose digest has an inventory
/// (only `image`, and `tag` when not empty, if given), as one batch.
pub async fn rematch_round(
    store: &Store,
    image: &str,
    tag: &str,
    by: Option<String>,
    lane: Lane,
    max_attempts: i64,
) -> Result<Round, StoreError> {
    let targets = store.monitor().rematch_targets(image, tag).await?;
    let batch_id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    let mut problems = vec![];
    let mut jobs = 0;
    for t in &targets {
        let job = match rematch_job(&t.image_name, &t.image_tag, &t.image_digest, lane, now) {
            Ok(job) => job,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        store
            .jobs()
            .create(NewJob {
                max_attempts,
                requested_by: by.clone(),
                batch: Some(batch_id.clone()),
                ..job
            })
            .await?;
        jobs += 1;
    }
    if targets.is_empty() {
        problems.push(Problem {
            entry: match (image, tag) {
                ("", _) => "the current fleet".into(),
                (i, "") => i.to_string(),
                (i, t) => format!("{i}:{t}"),
            },
            error: "no image of the current fleet there has a stored inventory".into(),
        });
    }
    store
        .monitor()
        .insert_batch(
            &batch_id,
            "rematch",
            None,
            by.as_deref(),
            &serde_json::to_string(&problems).unwrap_or_else(|_| "[]".into()),
            micros(now),
        )
        .await?;
    metrics::counter!("scanvault_rematch_jobs_queued_total").increment(jobs as u64);
    Ok(Round {
        batch_id,
        jobs,
        problems,
    })
}

/// The references an entry of a schedule names: itself, or every tag of a
/// `registry/repo:*` pattern (the registry's tags API).
pub async fn expand(registry: &RegistryClient, entry: &str) -> Result<Vec<Reference>, String> {
    match parse_repository_pattern(entry).map_err(|e| e.to_string())? {
        Some(repo) => {
            let tags = registry
                .list_tags(&repo)
                .await
                .map_err(|e| format!("listing the tags of {repo}: {e}"))?;
            Ok(tags
                .into_iter()
                .map(|t| Reference {
                    tag: Some(t),
                    ..repo.clone()
                })
                .collect())
        }
        None => Reference::parse(entry)
            .map(|r| vec![r])
            .map_err(|e| e.to_string()),
    }
}

/// Queue one round of `schedule` as a batch of the scheduled lane.
pub async fn schedule_round(
    store: &Store,
    registry: &RegistryClient,
    schedule: &ScheduleRow,
    max_attempts: i64,
) -> Result<Round, StoreError> {
    let entries: Vec<String> = serde_json::from_str(&schedule.images).unwrap_or_default();
    let batch_id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    let mut problems = vec![];
    let mut jobs = 0;
    for entry in &entries {
        let refs = match expand(registry, entry).await {
            Ok(r) => r,
            Err(error) => {
                problems.push(Problem {
                    entry: entry.clone(),
                    error,
                });
                continue;
            }
        };
        if refs.is_empty() {
            problems.push(Problem {
                entry: entry.clone(),
                error: "the repository has no tags".into(),
            });
        }
        for r in refs {
            store
                .jobs()
                .create(NewJob {
                    max_attempts,
                    requested_by: schedule.created_by.clone(),
                    batch: Some(batch_id.clone()),
                    ..NewJob::scan(r.to_string(), r.familiar_name(), Lane::Scheduled, now)
                })
                .await?;
            jobs += 1;
        }
    }
    store
        .monitor()
        .insert_batch(
            &batch_id,
            "schedule",
            Some(&schedule.id),
            schedule.created_by.as_deref(),
            &serde_json::to_string(&problems).unwrap_or_else(|_| "[]".into()),
            micros(now),
        )
        .await?;
    store
        .monitor()
        .set_schedule_batch(&schedule.id, &batch_id)
        .await?;
    Ok(Round {
        batch_id,
        jobs,
        problems,
    })
}

/// What the loop needs.
#[derive(Clone)]
pub struct MonitorSettings {
    /// At most one re-match round per this long (`REMATCH_INTERVAL`; zero: never by itself).
    pub rematch_interval: Duration,
    pub max_attempts: i64,
}

/// Start the rounds that are due: every schedule whose time came (one process wins each
/// round), and a re-match round when Trivy's vulnerability database is not the one the
/// last round was made for and `rematch_interval` has passed since it. Returns the rounds
/// started.
pub async fn tick(
    store: &Store,
    registry: &RegistryClient,
    trivy: &Trivy,
    settings: &MonitorSettings,
) -> Result<Vec<Round>, StoreError> {
    let mut rounds = vec![];
    let now = micros(Utc::now());
    for s in store.monitor().due_schedules(now).await? {
        let step = s.interval_seconds.max(1) * 1_000_000;
        // The next round after now, on the schedule's grid (missed rounds are not made up).
        let behind = (now - s.next_run_at).max(0) / step + 1;
        let next = s.next_run_at + behind * step;
        if store
            .monitor()
            .advance_schedule(&s.id, s.next_run_at, next)
            .await?
        {
            let round = schedule_round(store, registry, &s, settings.max_attempts).await?;
            tracing::info!(schedule = %s.id, batch = %round.batch_id, jobs = round.jobs, "scheduled scan round queued");
            rounds.push(round);
        }
    }
    let interval = crate::store::duration_micros(settings.rematch_interval);
    // Trivy is asked for its database's date only once a round may start.
    let round_allowed = !settings.rematch_interval.is_zero()
        && store.monitor().rematch_state().await?.1 <= now - interval;
    if round_allowed {
        match trivy.db_info().await {
            Ok(db) if !db.updated_at.is_empty() => {
                if store
                    .monitor()
                    .begin_rematch_round(&db.updated_at, now, now - interval)
                    .await?
                {
                    let round =
                        rematch_round(store, "", "", None, Lane::Rematch, settings.max_attempts)
                            .await?;
                    tracing::info!(db = %db.updated_at, batch = %round.batch_id, jobs = round.jobs, "vulnerability database changed: re-match round queued");
                    rounds.push(round);
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "the vulnerability database's date could not be read")
            }
        }
    }
    Ok(rounds)
}

/// [`tick`] every [`TICK`] until `shutdown`.
pub async fn run(
    store: Store,
    registry: RegistryClient,
    trivy: Trivy,
    settings: MonitorSettings,
    signals: crate::worker::Signals,
    shutdown: CancellationToken,
) {
    loop {
        match tick(&store, &registry, &trivy, &settings).await {
            Ok(rounds) if rounds.iter().any(|r| r.jobs > 0) => signals.job_queued(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "monitoring round failed; trying again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}
