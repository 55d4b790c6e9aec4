//! Process wiring: open the store, start the HTTP server and the background workers, shut
//! down gracefully on SIGINT/SIGTERM.

use anyhow::Context;
use chrono::Utc;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::cli::{ApikeyCommand, IngestArgs};
use crate::config::{DbConfig, LogSettings, Role, ServeConfig};
use crate::http::{self, AppState, HttpSettings};
use crate::ingest::IngestSettings;
use crate::periodic::Every;
use crate::store::admin::{apply_retention, RetentionPolicy};
use crate::store::Store;
use crate::worker::Signals;

/// `scanvault migrate`.
pub async fn migrate(db: DbConfig) -> anyhow::Result<()> {
    db.validate().map_err(anyhow::Error::msg)?;
    let store = Store::connect(&db.store_options()).await?;
    store.migrate().await?;
    tracing::info!(database = %store.redacted_url(), "migrations applied");
    store.close().await;
    Ok(())
}

/// `scanvault backup --out FILE`: a consistent copy of the embedded database, as of one
/// moment, while the service may be running.
pub async fn backup(db: DbConfig, out: &std::path::Path) -> anyhow::Result<()> {
    db.validate().map_err(anyhow::Error::msg)?;
    if out.exists() {
        anyhow::bail!("{} exists; the backup goes to a new file", out.display());
    }
    let store = Store::connect(&db.store_options()).await?;
    let result = store.admin().backup_into(out).await;
    store.close().await;
    result?;
    crate::outln!("backup written to {}", out.display());
    Ok(())
}

/// `scanvault feeds import --kev FILE --epss FILE`: replace the exploit feeds from files.
pub async fn feeds(cmd: crate::cli::FeedsCommand) -> anyhow::Result<()> {
    let crate::cli::FeedsCommand::Import { db, kev, epss } = cmd;
    db.validate().map_err(anyhow::Error::msg)?;
    if kev.is_none() && epss.is_none() {
        anyhow::bail!("give --kev FILE, --epss FILE, or both");
    }
    let read =
        |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    // Both files are read and checked before anything is written.
    let kev = match &kev {
        Some(p) => Some(
            scanvault_core::feeds::parse_kev(&read(p)?)
                .with_context(|| format!("{}", p.display()))?,
        ),
        None => None,
    };
    let epss = match &epss {
        Some(p) => Some(
            scanvault_core::feeds::parse_epss(&read(p)?)
                .with_context(|| format!("{}", p.display()))?,
        ),
        None => None,
    };
    let store = Store::connect(&db.store_options()).await?;
    let result = async {
        store.migrate().await?;
        let now = crate::store::micros(chrono::Utc::now());
        if let Some(c) = &kev {
            store.feeds().replace_kev(c, now, Some("cli")).await?;
            crate::outln!(
                "kev\t{} entries\tcatalog {}",
                c.entries.len(),
                c.catalog_version
            );
        }
        if let Some(f) = &epss {
            store.feeds().replace_epss(f, now, Some("cli")).await?;
            crate::outln!(
                "epss\t{} entries\tmodel {} of {}",
                f.entries.len(),
                f.model_version,
                f.score_date
            );
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

/// `scanvault restore FILE`: put a backup into an empty DATA_DIR, after checking it is an
/// intact SQLite database. The next start migrates it if it is from an earlier version.
pub async fn restore(db: DbConfig, file: &std::path::Path) -> anyhow::Result<()> {
    use sqlx::ConnectOptions;
    db.validate().map_err(anyhow::Error::msg)?;
    let opts = db.store_options();
    if opts
        .database_url
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty())
    {
        anyhow::bail!(
            "scanvault restore puts back the embedded SQLite database (DATA_DIR); restore \
             PostgreSQL with pg_restore or from a base backup (docs/operations.md)"
        );
    }
    let dir = opts.data_dir.clone().unwrap_or_else(|| ".".into());
    let target = dir.join("scanvault.db");
    if target.exists() {
        anyhow::bail!(
            "{} exists; restore into an empty DATA_DIR",
            target.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join("scanvault.db.restoring");
    std::fs::copy(file, &partial).with_context(|| format!("reading {}", file.display()))?;
    let check = async {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&partial)
            .read_only(true)
            .connect()
            .await?;
        let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await?;
        let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await?;
        anyhow::Ok((verdict, migrations))
    }
    .await;
    match check {
        Ok((verdict, n)) if verdict == "ok" && n > 0 => {}
        Ok((verdict, _)) => {
            let _ = std::fs::remove_file(&partial);
            anyhow::bail!(
                "{} is not an intact ScanVault database: {verdict}",
                file.display()
            )
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context(format!("{} is not a ScanVault backup", file.display())));
        }
    }
    std::fs::rename(&partial, &target)?;
    crate::outln!("restored {} into {}", file.display(), target.display());
    Ok(())
}

/// `scanvault apikey create | list | revoke`.
pub async fn apikey(cmd: ApikeyCommand) -> anyhow::Result<()> {
    use crate::store::keys::{NewKey, Role as KeyRole};
    let db = match &cmd {
        ApikeyCommand::Create { db, .. }
        | ApikeyCommand::List { db }
        | ApikeyCommand::Revoke { db, .. } => db,
    };
    db.validate().map_err(anyhow::Error::msg)?;
    let store = Store::connect(&db.store_options()).await?;
    store.migrate().await?;
    let now = Utc::now();
    let result = match &cmd {
        ApikeyCommand::Create {
            role,
            expires,
            name,
            ..
        } => {
            let role = KeyRole::parse(role).ok_or_else(|| {
                anyhow::anyhow!("--role must be reader, ingester, triager or admin")
            })?;
            let expires_at = match expires {
                Some(e) => Some(
                    http::auth::parse_expiry(e, now)
                        .map_err(|e| anyhow::anyhow!("--expires: {e}"))?,
                ),
                None => None,
            };
            if expires_at.is_some_and(|t| t <= now) {
                anyhow::bail!("--expires is in the past");
            }
            let (row, key) = store
                .keys()
                .create(NewKey {
                    name: name.clone(),
                    role,
                    expires_at,
                    created_by: Some("cli".into()),
                    secret: None,
                    now,
                })
                .await?;
            let until = expires_at
                .map(|t| format!(", expires {}", t.to_rfc3339()))
                .unwrap_or_default();
            crate::outln!(
                "created {} key {}{until}; it is shown only now:",
                row.role,
                row.id
            );
            crate::outln!("{key}");
            Ok(())
        }
        ApikeyCommand::List { .. } => {
            crate::outln!("ID\tROLE\tACTIVE\tCREATED\tEXPIRES\tREVOKED\tNAME");
            for k in store.keys().list().await? {
                let t = |v: Option<i64>| {
                    v.map(|t| crate::store::from_micros(t).to_rfc3339())
                        .unwrap_or_else(|| "-".into())
                };
                crate::outln!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.role,
                    k.is_active(crate::store::micros(now)),
                    t(Some(k.created_at)),
                    t(k.expires_at),
                    t(k.revoked_at),
                    k.name
                );
            }
            Ok(())
        }
        ApikeyCommand::Revoke { id, .. } => {
            if store.keys().revoke(id.trim(), now).await? {
                crate::outln!("revoked {id}");
                Ok(())
            } else {
                Err(anyhow::anyhow!("no API key with id {id}"))
            }
        }
    };
    store.close().await;
    result
}

/// `scanvault ingest FILE...`: each file is one transaction, as over HTTP.
pub async fn ingest_files(args: IngestArgs) -> anyhow::Result<()> {
    crate::ingest_cli::run(args).await
}

/// `scanvault serve` / `scanvault worker`.
pub async fn serve(cfg: ServeConfig, log: &LogSettings) -> anyhow::Result<()> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    for (name, value) in cfg.describe(log) {
        tracing::info!(setting = name, value = %value, "configuration");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    let app = Application::build(cfg).await?;
    app.run(shutdown).await
}

async fn wait_for_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    token.cancel();
}

/// A bound, ready application: bind first, then run, so tests never sleep.
pub struct Application {
    cfg: ServeConfig,
    store: Store,
    listener: Option<TcpListener>,
    addr: Option<SocketAddr>,
    state: AppState,
    /// The first admin key, made at this start: shown once the server listens.
    first_key: Option<SecretString>,
    /// HTTPS (TLS_CERT_FILE, TLS_KEY_FILE).
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Application {
    pub async fn build(cfg: ServeConfig) -> anyhow::Result<Application> {
        let store = Store::connect(&cfg.db.store_options()).await?;
        if !cfg.no_migrate {
            store.migrate().await?;
        }
        tracing::info!(database = %store.redacted_url(), backend = store.backend().as_str(), "database ready");
        let mut state = AppState::new(
            store.clone(),
            IngestSettings {
                compliance_fail_on: cfg.ingest.compliance_fail_severity,
                max_findings: cfg.ingest.max_findings_per_report,
            },
            http::jobs::JobSettings {
                max_attempts: cfg.worker.job_max_attempts,
            },
            http::auth::AuthSettings {
                enabled: !cfg.auth_disabled,
                rate_per_second: cfg.rate_limit_per_second,
                burst: cfg.rate_limit_burst,
            },
            Signals::default(),
        );
        state.registry = crate::worker::registry_client(&cfg.worker)?;
        // Bind before creating the first key: a start that fails on a taken port must not
        // consume the only showing of the key.
        let (listener, addr) = if cfg.role != Role::Worker {
            let listener = TcpListener::bind((cfg.server_host.as_str(), cfg.server_port))
                .await
                .with_context(|| format!("binding {}:{}", cfg.server_host, cfg.server_port))?;
            let addr = listener.local_addr()?;
            (Some(listener), Some(addr))
        } else {
            (None, None)
        };
        let tls = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
            _ => None,
        };
        let mut first_key = None;
        if cfg.auth_disabled {
            tracing::warn!("AUTH_DISABLED=true: every request is allowed without an API key; use this for local trials only");
        } else if cfg.role != Role::Worker {
            let provided = cfg
                .bootstrap_admin_key
                .as_ref()
                .map(|k| k.expose_secret().to_string());
            let from_config = provided.is_some();
            if let Some(key) = store
                .keys()
                .bootstrap_admin(provided, chrono::Utc::now())
                .await?
            {
                if from_config {
                    // The id is not secret; without it the configured secret is no key.
                    let key_id = crate::store::keys::split_key(&key).map(|(id, _)| id);
                    tracing::info!(
                        key_id,
                        "created the first admin API key from BOOTSTRAP_ADMIN_KEY: the key is svk_<key_id>_<that secret>"
                    );
                } else {
                    tracing::warn!("no API key existed: created the first admin key; it is shown once on standard error, after the start-up lines");
                    first_key = Some(SecretString::from(key));
                }
            }
        }
        Ok(Application {
            cfg,
            store,
            listener,
            addr,
            state,
            first_key,
            tls,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Run until `shutdown` fires; in-flight requests finish (up to SHUTDOWN_TIMEOUT).
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        // Retention worker.
        let policy = RetentionPolicy {
            max_age: self.cfg.cleanup_max_age.0,
            keep_per_image: self.cfg.cleanup_keep_per_image,
        };
        if self.cfg.role != Role::Api && policy.is_enabled() {
            tasks.spawn(retention_loop(
                self.store.clone(),
                policy,
                self.cfg.cleanup_interval.0,
                shutdown.clone(),
            ));
        }
        if self.cfg.role != Role::Api && self.cfg.worker.worker_concurrency > 0 {
            let runner = crate::worker::Runner::from_config(
                self.store.clone(),
                self.state.signals.clone(),
                &self.cfg.worker,
                (*self.state.ingest).clone(),
                self.cfg.shutdown_timeout.0,
            )?;
            match runner.check_trivy().await {
                Ok(v) => tracing::info!(trivy = %v, "trivy found"),
                Err(why) => tracing::warn!(
                    error = %why,
                    "trivy cannot run: this worker takes no scan job until it can (checked again every 10 s)"
                ),
            }
            tasks.spawn(crate::monitor::run(
                self.store.clone(),
                runner.registry().clone(),
                runner.trivy().clone(),
                crate::monitor::MonitorSettings {
                    rematch_interval: self.cfg.worker.rematch_interval.0,
                    max_attempts: self.cfg.worker.job_max_attempts,
                },
                self.state.signals.clone(),
                shutdown.clone(),
            ));
            tasks.spawn(Arc::new(runner).run(shutdown.clone()));
        }
        // Folds the analytics deltas ingest appends (store/analytics.rs).
        tasks.spawn(crate::store::analytics::compaction_loop(
            self.store.clone(),
            shutdown.clone(),
        ));
        // Removes catalog entries no finding references any more (store/admin.rs).
        tasks.spawn(crate::store::admin::catalog_sweep_loop(
            self.store.clone(),
            self.cfg.cleanup_interval.0,
            shutdown.clone(),
        ));
        let sources = crate::feeds::FeedSources {
            kev_url: self.cfg.kev_url.clone(),
            epss_url: self.cfg.epss_url.clone(),
            interval: self.cfg.feeds_interval.0,
        };
        if sources.is_enabled() && self.cfg.role != Role::Worker {
            tasks.spawn(crate::feeds::refresh_loop(
                self.store.clone(),
                sources,
                shutdown.clone(),
            ));
        }
        // Expiry is one UPDATE … RETURNING: whichever process gets there announces it once.
        tasks.spawn(http::suppressions::expiry_loop(
            self.store.clone(),
            shutdown.clone(),
        ));
        // Every process sends webhook deliveries (claimed, so each is sent by one).
        let dispatcher = crate::webhooks::Dispatcher::new(
            self.store.clone(),
            crate::webhooks::WebhookSettings {
                timeout: self.cfg.webhook_timeout.0,
                retry_for: self.cfg.webhook_retry_for.0,
                backoff_base: self.cfg.webhook_backoff_base.0,
                ..Default::default()
            },
        )?;
        tasks.spawn(dispatcher.run(shutdown.clone()));
        tasks.spawn(health_loop(
            self.store.clone(),
            self.cfg.db.db_health_check_period.0,
            shutdown.clone(),
        ));
        // Every role, a worker too: its job and Trivy metrics are its own, and the probes of
        // a process without the API (`/health`, `/ready`) are answered here.
        if let Some(port) = self.cfg.metrics_port {
            let listener = TcpListener::bind((self.cfg.server_host.as_str(), port))
                .await
                .with_context(|| format!("binding METRICS_PORT {port}"))?;
            let metrics_router = axum::Router::new()
                .route("/metrics", axum::routing::get(http::health::metrics_text))
                .route("/health", axum::routing::get(http::health::health))
                .route("/ready", axum::routing::get(http::health::ready))
                .with_state(self.state.clone());
            tracing::info!(addr = %listener.local_addr()?, "metrics listening");
            let token = shutdown.clone();
            tasks.spawn(async move {
                let _ = axum::serve(listener, metrics_router)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await;
            });
        }
        if let Some(listener) = self.listener.take() {
            let settings = HttpSettings {
                max_body_size: self.cfg.http_max_body_size.0,
                read_timeout: self.cfg.http_read_timeout.0,
                write_timeout: self.cfg.http_write_timeout.0,
                tls: self.tls.is_some(),
            };
            let router = http::router(self.state.clone(), &settings);
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            tracing::info!(addr = %listener.local_addr()?, scheme, "listening");
            if let Some(key) = self.first_key.take() {
                eprint!(
                    "{}",
                    first_key_banner(key.expose_secret(), listener.local_addr()?)
                );
            }
            serve_http(
                listener,
                self.tls.take(),
                router,
                self.cfg.http_idle_timeout.0,
                self.cfg.shutdown_timeout.0,
                shutdown.clone(),
            )
            .await;
        } else {
            shutdown.cancelled().await;
        }
        shutdown.cancel();
        let deadline = self.cfg.shutdown_timeout.0;
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, drain).await.is_err() {
            tracing::warn!("background tasks did not stop within SHUTDOWN_TIMEOUT");
        }
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The first admin key, framed to stand out from the log lines around it.
pub fn first_key_banner(key: &str, addr: SocketAddr) -> String {
    let rule = "=".repeat(78);
    let addr = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    format!(
        "\n{rule}\n ScanVault created the first admin API key. It is shown only this once: store it now.\n\n     {key}\n\n \
         Send it as `Authorization: Bearer <key>`, e.g.\n     curl -H \"Authorization: Bearer $KEY\" http://{addr}/scans/all\n \
         More keys, with roles reader, ingester, triager or admin:\n     scanvault apikey create --role reader --name ci\n \
         or POST /admin/api-keys with this key. List and revoke: scanvault apikey list | revoke <id>.\n{rule}\n\n"
    )
}

/// Accept loop with per-connection idle timeout and graceful shutdown; with `tls`, each
/// connection's handshake first (within the idle timeout).
async fn serve_http(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: axum::Router,
    idle_timeout: Duration,
    grace: Duration,
    shutdown: CancellationToken,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, router, idle_timeout, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(idle_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, router, idle_timeout, watcher).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!("connections still open after SHUTDOWN_TIMEOUT; closing"),
    }
}

/// HTTP/1.1 or HTTP/2 on one connection until it closes or the server shuts down.
async fn serve_connection<I>(
    io: I,
    router: axum::Router,
    idle_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let _ = watcher.watch(conn.into_owned()).await;
}

async fn retention_loop(
    store: Store,
    policy: RetentionPolicy,
    every: Duration,
    shutdown: CancellationToken,
) {
    tracing::info!(interval = ?every, max_age = ?policy.max_age, keep_per_image = policy.keep_per_image, "cleanup worker started");
    let mut every = Every::after_one_period(every, &shutdown).await;
    while every.next().await {
        match apply_retention(&store, policy, Utc::now()).await {
            Ok(0) => tracing::debug!("cleanup: nothing to delete"),
            Ok(n) => tracing::info!(deleted = n, "cleanup: removed scans"),
            Err(e) => tracing::error!(error = %e, "cleanup failed"),
        }
    }
    tracing::info!("cleanup worker stopped");
}

async fn health_loop(store: Store, every: Duration, shutdown: CancellationToken) {
    let mut every = Every::new(every, &shutdown);
    while every.next().await {
        let up = store.admin().ping().await.is_ok();
        metrics::gauge!("scanvault_db_up").set(if up { 1.0 } else { 0.0 });
        if !up {
            tracing::warn!("database health check failed");
        }
    }
}
