//! The scan worker: claims jobs, resolves the image in its registry, runs Trivy, stores the
//! report through the same ingest path as `POST /scans`, and records every step.
//!
//! Concurrency is a semaphore; each running job has a heartbeat that renews its lease every
//! `lease / 3` and cancels the job's token when the lease is lost (cancelled by a user,
//! reclaimed after a stall). Every write after the claim is fenced by the attempt number.
//! Shutdown: stop claiming, let running scans finish until the deadline, then kill the rest
//! and hand their jobs back to the queue.

use chrono::Utc;
use rand::SeedableRng;
use scanvault_core::job::{backoff, JobEvent, JobStatus};
use scanvault_registry::{
    Credentials, ErrorClass as RegClass, Reference, RegistryAccess, RegistryClient, RegistryConfig,
};
use scanvault_scanner::{
    ErrorClass as ScanClass, RegistryAuth, ScanError, ScanRequest, Trivy, TrivyConfig,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::ingest::{self, IngestError, IngestOverrides, IngestSettings};
use crate::store::jobs::{
    Actor, JobCompletion, JobError, JobKind, JobNotice, JobRow, Lane, Transition, WorkerRow,
};
use crate::store::monitor::InventorySource;
use crate::store::scans::ScanSource;
use crate::store::{micros, Store, StoreError};

pub use signals::Signals;

mod signals;

/// Everything a worker needs, resolved from configuration.
#[derive(Clone)]
pub struct WorkerSettings {
    pub concurrency: usize,
    /// Slots that take only ad-hoc jobs (fewer than `concurrency`).
    pub adhoc_slots: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub cache_max_age: Duration,
    pub shutdown_timeout: Duration,
    pub ingest: IngestSettings,
}

/// The registry client the configuration describes (auth file, plain-HTTP hosts, timeout).
pub fn registry_client(cfg: &WorkerConfig) -> anyhow::Result<RegistryClient> {
    RegistryClient::new(RegistryConfig {
        auth_file: cfg.registry_auth_file.clone(),
        insecure_hosts: cfg
            .registry_insecure_hosts
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect(),
        timeout: cfg.registry_timeout.0,
        user_agent: format!("scanvault/{}", env!("CARGO_PKG_VERSION")),
    })
    .map_err(|e| anyhow::anyhow!("REGISTRY_AUTH_FILE: {e}"))
}

/// Why a stage failed.
#[derive(Debug)]
enum StageError {
    Transient { code: String, message: String },
    Permanent { code: String, message: String },
    Cancelled,
    Lost,
}

impl From<JobError> for StageError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Lost | JobError::InvalidTransition(_) | JobError::NotFound(_) => {
                StageError::Lost
            }
            JobError::Store(e) => StageError::Transient {
                code: "database_unavailable".into(),
                message: format!("the database could not be written: {e}"),
            },
        }
    }
}

/// How often a worker says it is alive; one not heard from for [`WORKER_LIVE_FOR`] is gone.
pub const WORKER_HEARTBEAT: Duration = Duration::from_secs(10);
pub const WORKER_LIVE_FOR: Duration = Duration::from_secs(30);

/// Whether this worker's Trivy runs, as last checked.
#[derive(Debug, Clone)]
enum TrivyState {
    /// Not checked (a worker made in a test): it takes jobs.
    Unchecked,
    Usable(String),
    /// Why not: the worker takes no job until it can.
    Unusable(String),
}

pub struct Runner {
    store: Store,
    signals: Signals,
    registry: RegistryClient,
    trivy: Trivy,
    trivy_state: std::sync::Mutex<TrivyState>,
    settings: WorkerSettings,
    id: String,
    /// Fires when running scans must stop now (after the shutdown deadline).
    hard_stop: CancellationToken,
    /// Jobs of the scheduled and re-match lanes running now.
    other_lanes: std::sync::atomic::AtomicUsize,
}

impl Runner {
    pub fn from_config(
        store: Store,
        signals: Signals,
        cfg: &WorkerConfig,
        ingest: IngestSettings,
        shutdown_timeout: Duration,
    ) -> anyhow::Result<Runner> {
        let registry = registry_client(cfg)?;
        let extra_args = match &cfg.trivy_extra_args {
            Some(s) => TrivyConfig::parse_extra_args(s)
                .map_err(|e| anyhow::anyhow!("TRIVY_EXTRA_ARGS: {e}"))?,
            None => vec![],
        };
        let trivy = Trivy::new(TrivyConfig {
            path: cfg.trivy_path.clone(),
            server_url: cfg.exposed_trivy_server_url(),
            timeout: cfg.trivy_timeout.0,
            cache_dir: cfg.trivy_cache_dir.clone(),
            extra_args,
        });
        Ok(Runner::new(
            store,
            signals,
            registry,
            trivy,
            WorkerSettings {
                concurrency: cfg.worker_concurrency.max(1),
                adhoc_slots: cfg
                    .worker_adhoc_slots
                    .min(cfg.worker_concurrency.max(1) - 1),
                lease: cfg.job_lease.0,
                poll_interval: cfg.job_poll_interval.0,
                backoff_base: cfg.job_backoff_base.0,
                backoff_max: cfg.job_backoff_max.0,
                cache_max_age: cfg.scan_cache_max_age.0,
                shutdown_timeout,
                ingest,
            },
        ))
    }

    pub fn new(
        store: Store,
        signals: Signals,
        registry: RegistryClient,
        trivy: Trivy,
        settings: WorkerSettings,
    ) -> Runner {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let id = format!(
            "{host}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Runner {
            store,
            signals,
            registry,
            trivy,
            trivy_state: std::sync::Mutex::new(TrivyState::Unchecked),
            settings,
            id,
            hard_stop: CancellationToken::new(),
            other_lanes: Default::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    pub fn trivy(&self) -> &Trivy {
        &self.trivy
    }

    /// Check that Trivy runs (`trivy --version`): its version, or why it cannot run, with
    /// the setting to fix. A worker whose Trivy cannot run takes no job (they would all
    /// fail) until a later check succeeds; its heartbeat says why, for `GET /ready`.
    pub async fn check_trivy(&self) -> Result<String, String> {
        let state = match self.trivy.version().await {
            Ok(v) => TrivyState::Usable(v),
            // It runs, and prints something else: a wrapper, or a build of its own.
            Err(ScanError::InvalidOutput { .. }) => TrivyState::Usable("unknown".into()),
            Err(e) => TrivyState::Unusable(format!(
                "{e}; set TRIVY_PATH to a working trivy (now {})",
                self.trivy.config().path.display()
            )),
        };
        *self.trivy_state.lock().unwrap_or_else(|p| p.into_inner()) = state.clone();
        match state {
            TrivyState::Unusable(why) => Err(why),
            TrivyState::Usable(v) => Ok(v),
            TrivyState::Unchecked => unreachable!(),
        }
    }

    fn trivy_state(&self) -> TrivyState {
        self.trivy_state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Say every [`WORKER_HEARTBEAT`] that this worker is alive and whether its Trivy runs
    /// (checking again while it does not); say it stopped at `shutdown`.
    async fn presence(self: Arc<Self>, shutdown: CancellationToken) {
        let started_at = micros(Utc::now());
        loop {
            if let TrivyState::Unusable(_) = self.trivy_state() {
                if let Ok(v) = self.check_trivy().await {
                    tracing::info!(trivy = %v, "trivy runs now: taking scan jobs");
                }
            }
            let (trivy_version, trivy_error) = match self.trivy_state() {
                TrivyState::Unchecked => (None, None),
                TrivyState::Usable(v) => (Some(v), None),
                TrivyState::Unusable(why) => (None, Some(why)),
            };
            let row = WorkerRow {
                id: self.id.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
                trivy_version,
                trivy_error,
                concurrency: self.settings.concurrency as i64,
                started_at,
                heartbeat_at: micros(Utc::now()),
            };
            if let Err(e) = self.store.jobs().worker_heartbeat(&row).await {
                tracing::debug!(error = %e, "worker heartbeat not recorded");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(WORKER_HEARTBEAT) => {}
            }
        }
        let _ = self.store.jobs().worker_stopped(&self.id).await;
    }

    /// Claim and run jobs until `shutdown` fires.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tracing::info!(worker = %self.id, concurrency = self.settings.concurrency, "scan worker started");
        let listener = self
            .store
            .jobs()
            .notices(shutdown.clone())
            .map(|mut notices| {
                let signals = self.signals.clone();
                tokio::spawn(async move {
                    while let Some(n) = notices.recv().await {
                        match n {
                            JobNotice::Queued => signals.job_queued(),
                            JobNotice::Cancelled(id) => {
                                signals.cancel(&id);
                            }
                        }
                    }
                })
            });
        let presence = tokio::spawn(self.clone().presence(shutdown.clone()));
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut running = JoinSet::new();
        loop {
            if let TrivyState::Unusable(_) = self.trivy_state() {
                // Jobs stay queued for a worker that can run them.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(WORKER_HEARTBEAT) => continue,
                }
            }
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            while running.try_join_next().is_some() {}
            // Scheduled scans and re-matches may hold all but the ad-hoc slots.
            let general = self.settings.concurrency - self.settings.adhoc_slots;
            let last = if self.other_lanes.load(Ordering::SeqCst) < general {
                Lane::Rematch
            } else {
                Lane::Adhoc
            };
            match self.claim_in(last).await {
                Ok(Some((job, claimed))) => {
                    let me = self.clone();
                    let other = job.lane != Lane::Adhoc as i64;
                    if other {
                        self.other_lanes.fetch_add(1, Ordering::SeqCst);
                    }
                    running.spawn(async move {
                        me.process(job, claimed).await;
                        if other {
                            me.other_lanes.fetch_sub(1, Ordering::SeqCst);
                        }
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = self.signals.wait_for_jobs(self.settings.poll_interval) => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %e, "claiming a job failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    }
                }
            }
        }
        tracing::info!(worker = %self.id, running = running.len(), "scan worker stopping: no new claims");
        let drain = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(self.settings.shutdown_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!("scans still running at the shutdown deadline: stopping them and handing their jobs back");
            self.hard_stop.cancel();
            while running.join_next().await.is_some() {}
        }
        if let Some(l) = listener {
            l.abort();
        }
        let _ = presence.await;
        tracing::info!(worker = %self.id, "scan worker stopped");
    }

    /// Claim a due job, and when the claim ran (the first span of the job's trace).
    async fn claim(&self) -> Result<Option<(JobRow, Claimed)>, StoreError> {
        self.claim_in(Lane::Rematch).await
    }

    /// [`Runner::claim`] from the lanes up to `last`.
    async fn claim_in(&self, last: Lane) -> Result<Option<(JobRow, Claimed)>, StoreError> {
        let started = std::time::SystemTime::now();
        let job = self
            .store
            .jobs()
            .claim_in(&self.id, self.settings.lease, Utc::now(), last)
            .await?;
        let ended = std::time::SystemTime::now();
        Ok(job.map(|j| (j, Claimed { started, ended })))
    }

    /// Run every due job, one at a time, until none is left (tests).
    pub async fn run_until_idle(&self) -> usize {
        let mut n = 0;
        while let Ok(Some((job, claimed))) = self.claim().await {
            self.process(job, claimed).await;
            n += 1;
        }
        n
    }

    /// Claim one due job and run it (tests).
    pub async fn run_one(&self) -> Option<String> {
        let (job, claimed) = self.claim().await.ok()??;
        let id = job.id.clone();
        self.process(job, claimed).await;
        Some(id)
    }

    /// Stop running scans now (tests of shutdown).
    pub fn hard_stop(&self) {
        self.hard_stop.cancel();
    }

    /// Run one claimed job to a transition: one trace per attempt, its root `scan job` with
    /// the claim, `resolve`, `trivy` and `store` (parse, transaction) as children.
    async fn process(&self, job: JobRow, claimed: Claimed) {
        let token = self.hard_stop.child_token();
        self.signals.register(&job.id, token.clone());
        let heartbeat = tokio::spawn(heartbeat(
            self.store.clone(),
            job.id.clone(),
            job.attempt,
            self.id.clone(),
            self.settings.lease,
            token.clone(),
        ));
        let span = tracing::info_span!(
            parent: None,
            "scan_job",
            job = %job.id,
            image = %job.image_ref,
            attempt = job.attempt,
            trace_id = tracing::field::Empty,
            otel.name = "scan job",
            otel.status_code = tracing::field::Empty,
        );
        claimed.record(&span);
        let result = tracing::Instrument::instrument(self.stages(&job, &token), span.clone()).await;
        heartbeat.abort();
        self.signals.unregister(&job.id);
        let outcome = match &result {
            Ok(()) => "completed",
            Err(StageError::Transient { .. }) => "transient_error",
            Err(StageError::Permanent { .. }) => "permanent_error",
            Err(StageError::Cancelled) => "cancelled",
            Err(StageError::Lost) => "lost",
        };
        metrics::histogram!("scanvault_job_attempt_duration_seconds", "outcome" => outcome).record(
            claimed
                .started
                .elapsed()
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        );
        match result {
            Ok(()) => {}
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                tracing::Instrument::instrument(self.record_failure(&job, e), span).await
            }
        }
        // Registry credentials given with the request are kept only while the job may run.
        if let Ok(Some((status, _))) = self.store.jobs().status(&job.id).await {
            if status.is_terminal() {
                let _ = self.store.monitor().forget_job_credentials(&job.id).await;
            }
        }
    }

    async fn stages(&self, job: &JobRow, token: &CancellationToken) -> Result<(), StageError> {
        if job.kind() == JobKind::Rematch {
            return self.rematch(job, token).await;
        }
        let actor = Actor::Worker(self.id.clone());
        // ---- pulling: resolve the reference to a manifest digest.
        let t0 = Instant::now();
        let reference = Reference::parse(&job.image_ref).map_err(|e| StageError::Permanent {
            code: "invalid_reference".into(),
            message: e.to_string(),
        })?;
        let access = self.access_of(job).await?;
        let resolve = tracing::info_span!("resolve", reference = %reference);
        let resolved = tokio::select! {
            _ = token.cancelled() => return Err(StageError::Cancelled),
            r = tracing::Instrument::instrument(
                self.registry.resolve_with(&reference, access.as_ref()),
                resolve,
            ) => r,
        }
        .map_err(|e| match e.class() {
            RegClass::Transient => StageError::Transient {
                code: e.code().into(),
                message: e.to_string(),
            },
            RegClass::Permanent => StageError::Permanent {
                code: e.code().into(),
                message: e.to_string(),
            },
        })?;
        metrics::histogram!("scanvault_job_stage_duration_seconds", "stage" => "pull")
            .record(t0.elapsed().as_secs_f64());
        let digest = resolved.digest;
        let image_name = job.image_name.clone();

        // ---- cache: a fresh enough scan of this digest completes the job without Trivy.
        if job.force == 0 && !self.settings.cache_max_age.is_zero() {
            let since = Utc::now()
                - chrono::Duration::from_std(self.settings.cache_max_age)
                    .unwrap_or(chrono::Duration::days(36500));
            let fresh = self
                .store
                .scans()
                .fresh(&image_name, &digest, micros(since))
                .await
                .map_err(|e| StageError::Transient {
                    code: "database_unavailable".into(),
                    message: e.to_string(),
                })?;
            if let Some((scan_id, scanned_at)) = fresh {
                let mut t = Transition::new(
                    &job.id,
                    JobStatus::Pulling,
                    JobEvent::CacheHit,
                    actor,
                    format!(
                        "cache hit: scan {scan_id} of {digest} from {} is younger than SCAN_CACHE_MAX_AGE; not rescanned",
                        crate::store::from_micros(scanned_at).to_rfc3339()
                    ),
                    micros(Utc::now()),
                )
                .fenced(job.attempt);
                t.resolved_digest = Some(digest.clone());
                t.scan_id = Some(scan_id);
                self.store.jobs().transition(t).await?;
                tracing::info!(%digest, "scan job completed from cache");
                return Ok(());
            }
        }
        let mut t = Transition::new(
            &job.id,
            JobStatus::Pulling,
            JobEvent::Resolved,
            actor.clone(),
            format!("resolved to {digest}"),
            micros(Utc::now()),
        )
        .fenced(job.attempt);
        t.resolved_digest = Some(digest.clone());
        self.store.jobs().transition(t).await?;

        // ---- scanning: Trivy on name@digest.
        let t1 = Instant::now();
        let target = reference.with_digest(&digest);
        let insecure = self.registry.is_insecure(reference.api_host())
            || self.registry.is_insecure(&reference.registry)
            || access.as_ref().is_some_and(|a| a.plain_http);
        let auth = access
            .as_ref()
            .and_then(|a| a.credentials.as_ref())
            .and_then(|c| match c {
                Credentials::Basic { username, password } => Some(RegistryAuth::Basic {
                    username: username.clone(),
                    password: password.clone(),
                }),
                Credentials::Bearer(t) => Some(RegistryAuth::Bearer(t.clone())),
                Credentials::IdentityToken { .. } => None,
            });
        let trivy = tracing::info_span!("trivy", image = %target);
        let raw = tracing::Instrument::instrument(
            self.trivy.scan(
                ScanRequest {
                    image: &target,
                    insecure,
                    auth: auth.as_ref(),
                },
                token,
            ),
            trivy,
        )
        .await
        .map_err(scan_failure)?;
        metrics::histogram!("scanvault_job_stage_duration_seconds", "stage" => "scan")
            .record(t1.elapsed().as_secs_f64());
        self.keep_inventory(&image_name, reference.tag.as_deref(), &digest, &raw, token)
            .await;

        // ---- store: the same ingest path as POST /scans, and completion, in one transaction.
        self.store_report(
            job,
            raw,
            image_name,
            reference.tag.clone(),
            digest,
            ScanSource::Job,
        )
        .await
    }

    /// Store a report through the ingest path of `POST /scans`, completing the job in the
    /// same transaction.
    async fn store_report(
        &self,
        job: &JobRow,
        raw: Vec<u8>,
        image_name: String,
        tag: Option<String>,
        digest: String,
        source: ScanSource,
    ) -> Result<(), StageError> {
        let t2 = Instant::now();
        let overrides = IngestOverrides {
            image: Some(image_name),
            tag,
            digest: Some(digest.clone()),
        };
        let job_done = JobCompletion {
            job_id: job.id.clone(),
            attempt: job.attempt,
            worker: self.id.clone(),
        };
        let outcome = tracing::Instrument::instrument(
            ingest::ingest(
                &self.store,
                &self.settings.ingest,
                raw.into(),
                overrides,
                source,
                job.requested_by.clone(),
                Some(job_done),
            ),
            tracing::info_span!("ingest"),
        )
        .await
        .map_err(|e| match e {
            IngestError::Job(e) => StageError::from(e),
            IngestError::Store(e) => StageError::from(JobError::Store(e)),
            e @ (IngestError::Parse(_)
            | IngestError::TooManyFindings { .. }
            | IngestError::NoImage
            | IngestError::OverrideOnCluster
            | IngestError::ClusterNotAccepted) => StageError::Permanent {
                code: "invalid_report".into(),
                message: format!("Trivy's report could not be stored: {e}"),
            },
            e @ IngestError::Failed(_) => StageError::Transient {
                code: "internal".into(),
                message: e.to_string(),
            },
        })?;
        for skipped in &outcome.report.skipped {
            tracing::warn!(%digest, "Trivy's report: {}", skipped.message());
        }
        let scan_id = outcome.outcome.scan.id;
        metrics::histogram!("scanvault_job_stage_duration_seconds", "stage" => "store")
            .record(t2.elapsed().as_secs_f64());
        tracing::info!(%digest, scan = %scan_id, source = source.as_str(), "scan job completed");
        Ok(())
    }

    /// The registry access a job was requested with (Harbor's), if any.
    async fn access_of(&self, job: &JobRow) -> Result<Option<RegistryAccess>, StageError> {
        let given = self
            .store
            .monitor()
            .job_credentials(&job.id)
            .await
            .map_err(|e| StageError::Transient {
                code: "database_unavailable".into(),
                message: e.to_string(),
            })?;
        let Some((url, authorization)) = given else {
            return Ok(None);
        };
        let authorization = Some(authorization.as_str()).filter(|a| !a.trim().is_empty());
        RegistryAccess::from_url(&url, authorization)
            .map(Some)
            .map_err(|e| StageError::Permanent {
                code: "invalid_credentials".into(),
                message: e.to_string(),
            })
    }

    /// Store the digest's inventory, made from the scan's report (`trivy convert`), unless
    /// it has one. A failure is logged: the scan itself is stored all the same.
    async fn keep_inventory(
        &self,
        image_name: &str,
        tag: Option<&str>,
        digest: &str,
        report: &[u8],
        token: &CancellationToken,
    ) {
        match self.store.monitor().inventory(digest).await {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%digest, error = %e, "inventory not stored: the database could not be read");
                return;
            }
        }
        let made = tracing::Instrument::instrument(
            self.trivy.inventory(report, token),
            tracing::info_span!("inventory"),
        )
        .await;
        let document = match made.map(|d| crate::inventory::without_vulnerabilities(&d)) {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::warn!(%digest, error = %e, "inventory not stored: trivy convert's output is not an inventory");
                return;
            }
            Err(e) => {
                tracing::warn!(%digest, error = %e, "inventory not stored: trivy convert failed");
                return;
            }
        };
        if let Err(e) = crate::inventory::store(
            &self.store,
            &document,
            image_name,
            tag.unwrap_or_default(),
            digest,
            InventorySource::Scan,
        )
        .await
        {
            tracing::warn!(%digest, error = %e, "inventory not stored");
        }
    }

    /// A re-match: the digest's stored inventory through `trivy sbom` (no registry), stored
    /// as a new observation of the image (source `rematch`).
    async fn rematch(&self, job: &JobRow, token: &CancellationToken) -> Result<(), StageError> {
        let actor = Actor::Worker(self.id.clone());
        let reference = Reference::parse(&job.image_ref).map_err(|e| StageError::Permanent {
            code: "invalid_reference".into(),
            message: e.to_string(),
        })?;
        let digest = job
            .resolved_digest
            .clone()
            .or_else(|| reference.digest.clone())
            .ok_or_else(|| StageError::Permanent {
                code: "no_inventory".into(),
                message: format!("{} names no digest to re-match", job.image_ref),
            })?;
        let stored = self
            .store
            .monitor()
            .inventory_document(&digest)
            .await
            .map_err(|e| StageError::Transient {
                code: "database_unavailable".into(),
                message: e.to_string(),
            })?;
        let Some((inventory, document)) = stored else {
            return Err(StageError::Permanent {
                code: "no_inventory".into(),
                message: format!("no inventory is stored for {digest}"),
            });
        };
        let mut t = Transition::new(
            &job.id,
            JobStatus::Pulling,
            JobEvent::Resolved,
            actor,
            format!(
                "re-matching the stored inventory of {digest} ({} packages, {}); no registry access",
                inventory.packages, inventory.format
            ),
            micros(Utc::now()),
        )
        .fenced(job.attempt);
        t.resolved_digest = Some(digest.clone());
        self.store.jobs().transition(t).await?;

        let t1 = Instant::now();
        let raw = tracing::Instrument::instrument(
            self.trivy.scan_sbom(&document, token),
            tracing::info_span!("trivy", inventory = %digest),
        )
        .await
        .map_err(scan_failure)?;
        metrics::histogram!("scanvault_job_stage_duration_seconds", "stage" => "rematch")
            .record(t1.elapsed().as_secs_f64());
        let previous = self
            .store
            .scans()
            .fresh(&job.image_name, &digest, 0)
            .await
            .ok()
            .flatten();
        let previous = match previous {
            Some((id, _)) => self.store.scans().find(&id).await.ok().flatten(),
            None => None,
        };
        let artifact = previous
            .as_ref()
            .and_then(|s| s.artifact_name.clone())
            .unwrap_or_else(|| reference.with_digest(&digest));
        let image_id = previous.map(|s| s.image_id).unwrap_or_default();
        let report = crate::inventory::as_image_report(&raw, &artifact, &image_id, &digest)
            .map_err(|e| StageError::Permanent {
                code: "invalid_output".into(),
                message: e,
            })?;
        let tag = reference
            .tag
            .clone()
            .or_else(|| Some(inventory.image_tag.clone()).filter(|t| !t.is_empty()));
        self.store_report(
            job,
            report,
            job.image_name.clone(),
            tag,
            digest,
            ScanSource::Rematch,
        )
        .await
    }

    async fn record_failure(&self, job: &JobRow, err: StageError) {
        let now = Utc::now();
        let current = self.store.jobs().status(&job.id).await.ok().flatten();
        let Some((status, attempt)) = current.filter(|(s, a)| s.is_running() && *a == job.attempt)
        else {
            // Cancelled by a user, or reclaimed: the job is no longer ours to write.
            tracing::info!(error = ?err, "scan job stopped: it was cancelled or taken over");
            return;
        };
        let actor = Actor::Worker(self.id.clone());
        let t = match err {
            StageError::Lost => return,
            // Still ours and stopped: the worker is shutting down.
            StageError::Cancelled => {
                let mut t = Transition::new(
                    &job.id,
                    status,
                    JobEvent::Released,
                    actor,
                    "worker shutting down; handed back to the queue",
                    micros(now),
                )
                .fenced(attempt);
                t.run_after = Some(micros(now));
                t
            }
            StageError::Permanent { code, message } => {
                tracing::warn!(%code, error = %message, "scan job failed");
                let mut t = Transition::new(
                    &job.id,
                    status,
                    JobEvent::PermanentError,
                    actor,
                    format!("{code}: {message}"),
                    micros(now),
                )
                .fenced(attempt);
                t.error = Some(("permanent".into(), message));
                t
            }
            StageError::Transient { code, message } => {
                let retry = job.attempt < job.max_attempts;
                let mut t = Transition::new(
                    &job.id,
                    status,
                    JobEvent::TransientError { retry },
                    actor,
                    String::new(),
                    micros(now),
                )
                .fenced(attempt);
                if retry {
                    let delay = backoff(
                        u32::try_from(job.attempt).unwrap_or(u32::MAX),
                        self.settings.backoff_base,
                        self.settings.backoff_max,
                        &mut rand::rngs::StdRng::from_entropy(),
                    );
                    t.run_after = Some(
                        micros(now) + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 4),
                    );
                    t.reason = format!(
                        "{code}: {message}; retrying in {} (attempt {} of {})",
                        humantime::format_duration(Duration::from_millis(delay.as_millis() as u64)),
                        job.attempt,
                        job.max_attempts
                    );
                    tracing::warn!(%code, error = %message, delay = ?delay, "scan job will be retried");
                } else {
                    t.reason = format!(
                        "{code}: {message}; no attempts left ({} of {})",
                        job.attempt, job.max_attempts
                    );
                    tracing::warn!(%code, error = %message, "scan job failed after its last attempt");
                }
                t.error = Some(("transient".into(), message));
                t
            }
        };
        if let Err(e) = self.store.jobs().transition(t).await {
            tracing::warn!(error = %e, "recording the job's failure failed; its lease will expire and return it to the queue");
        }
    }
}

/// A failed Trivy run as a stage error.
fn scan_failure(e: ScanError) -> StageError {
    match e {
        ScanError::Cancelled => StageError::Cancelled,
        other => match other.class() {
            ScanClass::Transient => StageError::Transient {
                code: other.code().into(),
                message: other.to_string(),
            },
            ScanClass::Permanent => StageError::Permanent {
                code: other.code().into(),
                message: other.to_string(),
            },
        },
    }
}

/// When a job's claim ran.
#[derive(Debug, Clone, Copy)]
struct Claimed {
    started: std::time::SystemTime,
    ended: std::time::SystemTime,
}

impl Claimed {
    /// Give `span` (a job attempt's root) its trace id field and a first child span for the
    /// claim, which ran before the root span existed (it is made only once a job was won).
    fn record(&self, span: &tracing::Span) {
        use opentelemetry::trace::{Span as _, Tracer as _};
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let cx = span.context();
        if let Some(id) = crate::telemetry::trace_id(span, &opentelemetry::Context::new()) {
            span.record("trace_id", id);
        }
        let tracer = opentelemetry::global::tracer("scanvault");
        let mut claim = tracer
            .span_builder("claim")
            .with_start_time(self.started)
            .start_with_context(&tracer, &cx);
        claim.end_with_timestamp(self.ended);
    }
}

/// Renew the lease every `lease / 3`; cancel the job's token when it is lost.
async fn heartbeat(
    store: Store,
    job_id: String,
    attempt: i64,
    worker: String,
    lease: Duration,
    token: CancellationToken,
) {
    let every = (lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store
            .jobs()
            .renew_lease(&job_id, attempt, &worker, lease, Utc::now())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(job = %job_id, "lease lost (job cancelled or reclaimed): stopping its scan");
                token.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(job = %job_id, error = %e, "renewing the lease failed; will try again")
            }
        }
    }
}
