//! Test harness: a fresh database per test (a temp SQLite file, or a new PostgreSQL
//! database made from TEST_DATABASE_URL), the real router driven with `oneshot`.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use scanvault::http::{AppState, HttpSettings};
use scanvault::ingest::IngestSettings;
use scanvault::store::admin::TableChecksum;
use scanvault::store::{Store, StoreOptions};
use scanvault::worker::Signals;
use scanvault_core::report::Severity;
use serde_json::Value;
use std::path::PathBuf;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Run a scenario on one backend, as its own test.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $scenario:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::support::TestApp::new($crate::support::Db::Sqlite).await;
                super::$scenario(&app).await;
                app.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) =
                    $crate::support::TestApp::try_new($crate::support::Db::Postgres).await
                else {
                    return;
                };
                super::$scenario(&app).await;
                app.finish().await;
            }
        }
    };
}

pub struct TestApp {
    pub db: Db,
    pub store: Store,
    /// Shared by the router and the workers a test makes.
    pub signals: Signals,
    pub router: axum::Router,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// Asserts the error shape and returns the code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let code = v["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {v}"));
        assert!(
            v["error"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {v}"
        );
        code.to_string()
    }
}

pub fn corpus_dir() -> PathBuf {
    if let Ok(p) = std::env::var("SCANVAULT_CORPUS") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    assert!(
        p.join("EXPECTED.json").exists(),
        "corpus not found at {}; set SCANVAULT_CORPUS or run scripts/test.sh",
        p.display()
    );
    p
}

pub fn corpus_file(rel: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn skip_pg() -> bool {
    std::env::var("SCANVAULT_SKIP_PG").is_ok_and(|v| v == "1")
}

pub fn admin_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if skip_pg() => None,
        _ => panic!(
            "TEST_DATABASE_URL is not set: the PostgreSQL tests need it. Run `bash scripts/test.sh` \
             (it provides one), or set SCANVAULT_SKIP_PG=1 for a local SQLite-only run."
        ),
    }
}

/// A fresh, empty PostgreSQL database; returns (its URL, the admin URL).
pub async fn fresh_pg_database() -> Option<(String, String)> {
    let admin = admin_url()?;
    let now = unix_now();
    let name = format!("{TEST_DB_PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connect to TEST_DATABASE_URL");
    drop_abandoned_databases(&mut conn, now).await;
    // A language's collation by default (ICU `en-US`, as on many production servers), not
    // byte order: the store must order and compare keys by bytes whatever the server's
    // locale, and the tests that check listing order against Rust's order prove it.
    // Servers without ICU (PostgreSQL < 15, or built without it) get their default.
    let icu =
        format!("CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'");
    if let Err(e) = sqlx::query(&icu).execute(&mut conn).await {
        eprintln!("no ICU collation for the test database ({e}); using the server's default");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
    }
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => base[..i].to_string(),
        _ => base,
    };
    Some((format!("{base}/{name}{query}"), admin))
}

/// Test databases are named `sv_test_<unix seconds>_<uuid>`.
const TEST_DB_PREFIX: &str = "sv_test_";
/// A test database this old was abandoned by a test that panicked or was killed before its
/// clean-up ran (a whole run takes minutes).
const ABANDONED_AFTER_SECS: u64 = 6 * 3600;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The creation time a test database's name carries (`None` for any other name).
fn test_database_created(name: &str) -> Option<u64> {
    name.strip_prefix(TEST_DB_PREFIX)?
        .split_once('_')?
        .0
        .parse()
        .ok()
}

/// Drop the test databases of earlier runs that were never dropped, so that they do not
/// pile up on a long-lived server.
async fn drop_abandoned_databases(conn: &mut sqlx::PgConnection, now: u64) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'sv\\_test\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    else {
        return;
    };
    for name in names {
        if test_database_created(&name)
            .is_some_and(|t| now.saturating_sub(t) > ABANDONED_AFTER_SECS)
        {
            drop_database(conn, &name).await;
        }
    }
}

pub async fn drop_pg_database(url: &str, admin: &str) {
    let name = url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default();
    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await {
        drop_database(&mut conn, name).await;
    }
}

/// Drop the database `name` (best effort: a test's clean-up must not fail the test).
async fn drop_database(conn: &mut sqlx::PgConnection, name: &str) {
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(conn)
        .await;
}

impl TestApp {
    pub async fn new(db: Db) -> TestApp {
        Self::try_new(db).await.expect("backend available")
    }

    pub async fn try_new(db: Db) -> Option<TestApp> {
        Self::with_settings(db, HttpSettings::default(), |_| {}).await
    }

    pub async fn with_settings(
        db: Db,
        http: HttpSettings,
        tweak: impl FnOnce(&mut IngestSettings),
    ) -> Option<TestApp> {
        Self::with_auth(db, http, tweak, Default::default()).await
    }

    pub async fn with_auth(
        db: Db,
        http: HttpSettings,
        tweak: impl FnOnce(&mut IngestSettings),
        auth: scanvault::http::auth::AuthSettings,
    ) -> Option<TestApp> {
        scanvault::telemetry::init_for_tests();
        let (opts, dir, pg) = match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let opts = StoreOptions {
                    data_dir: Some(dir.path().to_path_buf()),
                    ..Default::default()
                };
                (opts, Some(dir), None)
            }
            Db::Postgres => {
                let (url, admin) = fresh_pg_database().await?;
                let opts = StoreOptions {
                    database_url: Some(url.clone()),
                    max_connections: 10,
                    min_connections: 0,
                    ..Default::default()
                };
                (opts, None, Some((url, admin)))
            }
        };
        let store = Store::connect(&opts).await.expect("connect");
        store.migrate().await.expect("migrate");
        let mut ingest = IngestSettings {
            compliance_fail_on: Severity::Critical,
            max_findings: 100_000,
        };
        tweak(&mut ingest);
        let signals = Signals::default();
        let mut state = AppState::new(
            store.clone(),
            ingest,
            scanvault::http::jobs::JobSettings { max_attempts: 3 },
            auth,
            signals.clone(),
        );
        // Schedules list tags of the e2e kit's plain-HTTP registries (any port on loopback).
        state.registry =
            scanvault_registry::RegistryClient::new(scanvault_registry::RegistryConfig {
                insecure_hosts: vec!["127.0.0.1".into()],
                timeout: std::time::Duration::from_secs(30),
                ..Default::default()
            })
            .unwrap();
        let router = scanvault::http::router(state, &http);
        Some(TestApp {
            db,
            store,
            signals,
            router,
            _dir: dir,
            pg,
        })
    }

    /// A second store on the same database, as a restarted process would open it.
    pub async fn reopen(&self) -> Store {
        let opts = match (&self._dir, &self.pg) {
            (Some(dir), _) => StoreOptions {
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
            (None, Some((url, _))) => StoreOptions {
                database_url: Some(url.clone()),
                max_connections: 5,
                min_connections: 0,
                ..Default::default()
            },
            (None, None) => unreachable!("a test app has a directory or a database"),
        };
        Store::connect(&opts).await.expect("reconnect")
    }

    /// The PostgreSQL database's URL (`None` on SQLite).
    pub fn pg_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|(url, _)| url.as_str())
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some((url, admin)) = &self.pg {
            drop_pg_database(url, admin).await;
        }
    }

    pub async fn request(&self, method: Method, uri: &str, body: Vec<u8>) -> Resp {
        self.request_with(method, uri, &[], body).await
    }

    /// A request with extra headers.
    pub async fn request_with(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body)).unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.request(Method::GET, uri, vec![]).await
    }

    pub async fn get_json(&self, uri: &str) -> Value {
        let r = self.get(uri).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "GET {uri}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    pub async fn post_scan(&self, query: &str, body: Vec<u8>) -> Resp {
        let uri = if query.is_empty() {
            "/scans".to_string()
        } else {
            format!("/scans?{query}")
        };
        self.request(Method::POST, &uri, body).await
    }

    /// POST a report that must be stored as a new scan (201); returns the scan JSON.
    pub async fn create(&self, query: &str, body: Vec<u8>) -> Value {
        let r = self.post_scan(query, body).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    /// POST a report that must be accepted; returns the scan JSON.
    pub async fn ingest(&self, query: &str, body: Vec<u8>) -> Value {
        let r = self.post_scan(query, body).await;
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::OK,
            "ingest failed: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    pub async fn delete(&self, uri: &str) -> Resp {
        self.request(Method::DELETE, uri, vec![]).await
    }

    /// Row count and a checksum of the content of every table, to prove a request changed
    /// nothing.
    pub async fn fingerprint(&self) -> Vec<TableChecksum> {
        self.store.admin().content_checksums().await.unwrap()
    }

    /// The findings every stored scan has now (the sum of their `VulnTotal`).
    pub async fn findings_total(&self) -> i64 {
        let mut total = 0;
        let mut offset = 0;
        loop {
            let page = self
                .get_json(&format!("/scans/all?limit=500&offset={offset}"))
                .await;
            let items = page["Items"].as_array().unwrap();
            total += items
                .iter()
                .map(|s| s["VulnTotal"].as_i64().unwrap())
                .sum::<i64>();
            if page["HasMore"] != true {
                return total;
            }
            offset += 500;
        }
    }

    /// Rows of one table.
    pub async fn rows(&self, table: &str) -> i64 {
        let all = self.fingerprint().await;
        all.iter()
            .find(|t| t.table == table)
            .unwrap_or_else(|| panic!("no table {table}: {all:?}"))
            .rows
    }
}

/// A small Trivy report builder for tests.
#[derive(Clone)]
pub struct Report {
    pub artifact: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub image_id: Option<String>,
    pub created_at: Option<String>,
    pub vulns: Vec<Value>,
}

impl Report {
    pub fn image(name_tag: &str, digest: &str) -> Report {
        let name = name_tag
            .rsplit_once(':')
            .map(|(n, _)| n)
            .unwrap_or(name_tag);
        Report {
            artifact: name_tag.to_string(),
            repo_tags: vec![name_tag.to_string()],
            repo_digests: vec![format!("{name}@{digest}")],
            image_id: Some(format!("sha256:{:0>64}", digest.len())),
            created_at: None,
            vulns: vec![],
        }
    }

    pub fn at(mut self, t: &str) -> Report {
        self.created_at = Some(t.to_string());
        self
    }

    pub fn vuln(
        mut self,
        id: &str,
        pkg: &str,
        ver: &str,
        sev: &str,
        fixed: Option<&str>,
    ) -> Report {
        let mut v = serde_json::json!({
            "VulnerabilityID": id, "PkgName": pkg, "InstalledVersion": ver, "Severity": sev,
            "Title": format!("{id} in {pkg}"),
            "CVSS": {"nvd": {"V3Score": 5.0}}
        });
        if let Some(f) = fixed {
            v["FixedVersion"] = Value::String(f.to_string());
        }
        self.vulns.push(v);
        self
    }

    pub fn json(&self) -> Value {
        let mut doc = serde_json::json!({
            "SchemaVersion": 2,
            "ArtifactName": self.artifact,
            "ArtifactType": "container_image",
            "Metadata": {
                "OS": {"Family": "alpine", "Name": "3.19.1"},
                "RepoTags": self.repo_tags,
                "RepoDigests": self.repo_digests,
            },
            "Results": [{"Target": format!("{} (alpine 3.19.1)", self.artifact), "Class": "os-pkgs", "Type": "alpine",
                         "Vulnerabilities": self.vulns}]
        });
        if let Some(id) = &self.image_id {
            doc["Metadata"]["ImageID"] = Value::String(id.clone());
        }
        if let Some(t) = &self.created_at {
            doc["CreatedAt"] = Value::String(t.clone());
        }
        doc
    }

    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.json()).unwrap()
    }
}

pub fn digest(n: u32) -> String {
    format!("sha256:{:064x}", n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timestamped_test_database_names_have_a_creation_time() {
        assert_eq!(
            test_database_created("sv_test_1700000000_0123abcd"),
            Some(1_700_000_000)
        );
        // Names of the suite's earlier versions, and anyone else's databases, are left alone.
        assert_eq!(
            test_database_created("sv_test_0123456789abcdef0123456789abcdef"),
            None
        );
        assert_eq!(test_database_created("sv_test_x_0123abcd"), None);
        assert_eq!(test_database_created("svbench_10000_1"), None);
        assert_eq!(test_database_created("postgres"), None);
    }

    #[tokio::test]
    async fn abandoned_test_databases_are_dropped_and_recent_ones_kept() {
        let Some(admin) = admin_url() else {
            return; // SCANVAULT_SKIP_PG=1: an explicit SQLite-only run
        };
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("connect to TEST_DATABASE_URL");
        let now = unix_now();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let old = format!("{TEST_DB_PREFIX}{}_{id}", now - ABANDONED_AFTER_SECS - 60);
        let recent = format!("{TEST_DB_PREFIX}{}_{id}", now - 60);
        for name in [&old, &recent] {
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let (url, admin) = fresh_pg_database().await.unwrap();
        let left: Vec<String> =
            sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname IN ($1, $2)")
                .bind(&old)
                .bind(&recent)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let (old_left, recent_left) = (left.contains(&old), left.contains(&recent));
        for name in [&old, &recent] {
            drop_database(&mut conn, name).await;
        }
        drop_pg_database(&url, &admin).await;
        assert!(!old_left, "an abandoned test database was not dropped");
        assert!(recent_left, "a test database still in use was dropped");
    }
}
