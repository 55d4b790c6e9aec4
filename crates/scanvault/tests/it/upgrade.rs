//! Upgrading a database made by an earlier release: `tests/fixtures/upgrade/` holds an
//! embedded database made by 0.1.0's migrations with a small fleet in it (Trivy, legacy
//! Trivy, Grype, CycloneDX and a cluster report), and what it held, written when it was
//! made. Opening it with this build applies every newer migration, and every row is still
//! there: the same row counts in each table it had, each scan with its identity, counts and
//! findings, and the fleet's analytics agreeing. (PostgreSQL's migrations mirror SQLite's
//! and run on a fresh database in every PostgreSQL test.)

use scanvault::store::analytics::FleetScope;
use scanvault::store::scans::FindingFilter;
use scanvault::store::{Store, StoreOptions};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_0_database_upgrades_with_every_row_intact() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade");
    let expected: Value = serde_json::from_slice(
        &std::fs::read(fixtures.join("scanvault-0.1.0.expected.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures.join("scanvault-0.1.0.db"),
        dir.path().join("scanvault.db"),
    )
    .unwrap();
    let store = Store::connect(&StoreOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();

    let counts: std::collections::BTreeMap<String, i64> = store
        .admin()
        .content_checksums()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.table.clone(), t.rows))
        .collect();
    for (table, rows) in expected["row_counts"].as_object().unwrap() {
        assert_eq!(counts.get(table), rows.as_i64().as_ref(), "{table}");
    }
    let mut total = 0;
    for s in expected["scans"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let row = store
            .scans()
            .find(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id}"));
        assert_eq!(row.image_name, s["image_name"].as_str().unwrap());
        assert_eq!(row.image_tag, s["image_tag"].as_str().unwrap());
        assert_eq!(row.image_digest, s["image_digest"].as_str().unwrap());
        let c = row.counts();
        let got = [c.critical, c.high, c.medium, c.low, c.unknown];
        let want: Vec<i64> = s["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(got.to_vec(), want, "{id}");
        let findings = store
            .scans()
            .findings(id, &FindingFilter::all())
            .await
            .unwrap();
        let keys: BTreeSet<String> = findings
            .iter()
            .map(|f| format!("{}|{}|{}", f.vulnerability_id, f.pkg_name, f.pkg_version))
            .collect();
        let want: BTreeSet<String> = s["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(keys, want, "{id}");
        total += keys.len() as i64;
    }
    let summary = store
        .analytics()
        .summary(&FleetScope::default())
        .await
        .unwrap();
    assert_eq!(summary.total(), total);
    store.close().await;
}

/// Rolling upgrades: while API replicas of the previous release still run against a
/// database the new release has migrated, every migration newer than that release must
/// leave what the previous release reads and writes in place. A migration that drops or
/// renames a table or column, or changes a column's type or nullability, belongs to the
/// release after (when no running code uses the old shape); one that is safe anyway says
/// why on a line `-- rolling-upgrade-safe: <reason>`.
#[test]
fn migrations_since_the_last_release_keep_its_schema_usable() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let expected: Value = serde_json::from_slice(
        &std::fs::read(root.join("tests/fixtures/upgrade/scanvault-0.1.0.expected.json")).unwrap(),
    )
    .unwrap();
    let made_by = expected["made_by"].as_str().unwrap();
    let released: u64 = made_by
        .rsplit("up to ")
        .next()
        .and_then(|v| v.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{made_by}"));
    let breaking = [
        "DROP TABLE",
        "DROP COLUMN",
        "RENAME",
        "ALTER COLUMN",
        "DROP VIEW",
    ];
    let mut checked = 0;
    for backend in ["sqlite", "postgres"] {
        for entry in std::fs::read_dir(root.join("migrations").join(backend)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let version: u64 = name.split('_').next().unwrap().parse().unwrap();
            if version <= released {
                continue;
            }
            checked += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains("-- rolling-upgrade-safe:") {
                continue;
            }
            let code: String = text
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase();
            for b in breaking {
                assert!(
                    !code.contains(b),
                    "{backend}/{name} ({b}): the previous release's replicas would break during a rolling upgrade"
                );
            }
        }
    }
    eprintln!("{checked} migration(s) newer than the last release checked");
}
