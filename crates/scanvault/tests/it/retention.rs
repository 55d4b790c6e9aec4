//! Retention: CLEANUP_MAX_AGE and CLEANUP_KEEP_PER_IMAGE, as the original applied them.

use crate::on_both_backends;
use crate::support::{digest, Report, TestApp};
use chrono::{TimeZone, Utc};
use scanvault::store::admin::RetentionPolicy;
use std::time::Duration;

async fn seed(app: &TestApp) {
    // app:1 scanned on days 1..=4 (four digests), app:2 once on day 1, other:1 on day 4.
    for day in 1..=4u32 {
        let r = Report::image("app:1", &digest(day))
            .at(&format!("2025-01-0{day}T00:00:00Z"))
            .vuln(&format!("CVE-2025-000{day}"), "openssl", "1", "HIGH", None);
        app.ingest("", r.bytes()).await;
    }
    app.ingest(
        "",
        Report::image("app:2", &digest(10))
            .at("2025-01-01T00:00:00Z")
            .bytes(),
    )
    .await;
    app.ingest(
        "",
        Report::image("other:1", &digest(20))
            .at("2025-01-04T00:00:00Z")
            .bytes(),
    )
    .await;
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 5, 0, 0, 0).unwrap()
}

async fn scans_of(app: &TestApp, image: &str) -> Vec<String> {
    let v = app.get_json(&format!("/scans?image={image}")).await;
    v["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ScannedAt"].as_str().unwrap()[..10].to_string())
        .collect()
}

async fn keep_per_image_keeps_the_newest_of_each_reference(app: &TestApp) {
    seed(app).await;
    let n = scanvault::store::admin::apply_retention(
        &app.store,
        RetentionPolicy {
            max_age: Duration::ZERO,
            keep_per_image: 2,
        },
        now(),
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        scans_of(app, "app").await,
        vec!["2025-01-04", "2025-01-03", "2025-01-01"]
    );
    // Catalog entries of the deleted scans are gone with them.
    let cat = app.get_json("/scans/all?limit=500").await;
    assert_eq!(cat["Count"], 4);
    let vulns = app.rows("vulnerabilities").await;
    assert_eq!(vulns, 2, "CVE-2025-0001/0002 were only in deleted scans");
}

async fn max_age_alone_deletes_everything_older(app: &TestApp) {
    seed(app).await;
    let n = scanvault::store::admin::apply_retention(
        &app.store,
        RetentionPolicy {
            max_age: Duration::from_secs(36 * 3600),
            keep_per_image: 0,
        },
        now(),
    )
    .await
    .unwrap();
    assert_eq!(n, 4);
    assert_eq!(scans_of(app, "app").await, vec!["2025-01-04"]);
}

async fn both_rules_delete_only_scans_matching_both(app: &TestApp) {
    seed(app).await;
    // Older than 2.5 days: days 1 and 2. Beyond the newest 1 per reference: app:1 days 1-3.
    // Both: app:1 days 1 and 2. app:2 (day 1) is old but the newest of its reference.
    let n = scanvault::store::admin::apply_retention(
        &app.store,
        RetentionPolicy {
            max_age: Duration::from_secs(60 * 3600),
            keep_per_image: 1,
        },
        now(),
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        scans_of(app, "app").await,
        vec!["2025-01-04", "2025-01-03", "2025-01-01"]
    );
}

on_both_backends!(
    retention_keep,
    keep_per_image_keeps_the_newest_of_each_reference
);
on_both_backends!(retention_age, max_age_alone_deletes_everything_older);
on_both_backends!(retention_both, both_rules_delete_only_scans_matching_both);
