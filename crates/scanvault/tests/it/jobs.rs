//! The scan-job API and queue semantics (no registry needed), on both backends.

use crate::on_both_backends;
use crate::support::TestApp;
use axum::http::{Method, StatusCode};
use chrono::Utc;
use scanvault::store::jobs::{Actor, JobError, Transition};
use scanvault_core::job::{JobEvent, JobStatus};
use serde_json::{json, Value};
use std::time::Duration;

pub async fn post_job(app: &TestApp, body: Value) -> crate::support::Resp {
    app.request(
        Method::POST,
        "/scan-jobs",
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

async fn requests_are_validated_and_deduplicated(app: &TestApp) {
    let r = post_job(app, json!({"image": "nginx:1.25"})).await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let job = r.json();
    assert_eq!(job["Status"], "queued");
    assert_eq!(job["Image"], "docker.io/library/nginx:1.25");
    assert_eq!(job["ImageName"], "nginx");
    assert_eq!(job["Attempts"], 0);
    assert_eq!(
        r.headers["location"],
        format!("/scan-jobs/{}", job["ID"].as_str().unwrap())
    );

    // The same image while the first is active: the same job.
    let again = post_job(
        app,
        json!({"image": "docker.io/library/nginx:1.25", "priority": 5}),
    )
    .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json()["ID"], job["ID"]);

    for (body, why) in [
        (json!({"image": "NGINX:1"}), "uppercase"),
        (json!({"image": ""}), "empty"),
        (json!({"image": "nginx:bad tag"}), "whitespace"),
        (json!({"image": "nginx@sha256:123"}), "bad digest"),
        (json!({"image": "nginx", "priority": 100000}), "priority"),
        (json!({"image": 5}), "wrong type"),
        (json!({"image": "nginx", "color": "red"}), "unknown field"),
        (json!({}), "missing image"),
    ] {
        let r = post_job(app, body).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{why}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.error_code();
    }
    let r = app
        .request(Method::POST, "/scan-jobs", b"{not json".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "invalid_json");
    assert_eq!(app.rows("scan_jobs").await, 1);
}

async fn cancel_retry_events_and_lists(app: &TestApp) {
    let a = post_job(app, json!({"image": "alpine:3.19"})).await.json();
    let b = post_job(app, json!({"image": "ghcr.io/org/app@sha256:0000000000000000000000000000000000000000000000000000000000000001"}))
        .await
        .json();
    assert_eq!(b["ImageName"], "ghcr.io/org/app");
    let aid = a["ID"].as_str().unwrap();
    let cancelled = app
        .request(Method::POST, &format!("/scan-jobs/{aid}/cancel"), vec![])
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json()["Status"], "cancelled");
    let again = app
        .request(Method::POST, &format!("/scan-jobs/{aid}/cancel"), vec![])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "conflict");
    let retried = app
        .request(Method::POST, &format!("/scan-jobs/{aid}/retry"), vec![])
        .await;
    assert_eq!(retried.status, StatusCode::ACCEPTED);
    assert_eq!(retried.json()["Status"], "queued");
    let retry_queued = app
        .request(Method::POST, &format!("/scan-jobs/{aid}/retry"), vec![])
        .await;
    assert_eq!(retry_queued.status, StatusCode::CONFLICT);

    let events = app.get_json(&format!("/scan-jobs/{aid}/events")).await;
    let steps: Vec<(Value, Value, Value)> = events["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["OldStatus"].clone(),
                e["NewStatus"].clone(),
                e["ChangedBy"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            (Value::Null, json!("queued"), json!("api")),
            (json!("queued"), json!("cancelled"), json!("api")),
            (json!("cancelled"), json!("queued"), json!("api")),
        ]
    );
    assert!(events["Items"][1]["Reason"]
        .as_str()
        .unwrap()
        .contains("cancel"));

    let queued = app.get_json("/scan-jobs?status=queued").await;
    assert_eq!(queued["Count"], 2);
    let by_image = app.get_json("/scan-jobs?image=ghcr.io/org/app").await;
    assert_eq!(by_image["Count"], 1);
    let one = app
        .get_json(&format!("/scan-jobs/{}", b["ID"].as_str().unwrap()))
        .await;
    assert_eq!(one["Status"], "queued");

    for bad in [
        "/scan-jobs?status=running",
        "/scan-jobs?limit=-1",
        "/scan-jobs/xyz",
        "/scan-jobs/xyz/events",
    ] {
        let r = app.get(bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        r.error_code();
    }
    // A page size above the maximum is capped, not refused.
    let capped = app.get_json("/scan-jobs?limit=9999").await;
    assert_eq!(capped["Limit"], 500);
    let missing = "00000000-0000-7000-8000-000000000000";
    for (m, uri) in [
        (Method::GET, format!("/scan-jobs/{missing}")),
        (Method::GET, format!("/scan-jobs/{missing}/events")),
        (Method::POST, format!("/scan-jobs/{missing}/cancel")),
        (Method::POST, format!("/scan-jobs/{missing}/retry")),
    ] {
        let r = app.request(m, &uri, vec![]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.error_code(), "job_not_found");
    }
}

async fn claims_are_exclusive_fenced_and_leases_expire(app: &TestApp) {
    let job = post_job(app, json!({"image": "busybox:1"})).await.json();
    let id = job["ID"].as_str().unwrap().to_string();
    let store = &app.store;
    let lease = Duration::from_millis(300);
    let claimed = store
        .jobs()
        .claim("A", lease, Utc::now())
        .await
        .unwrap()
        .expect("claimable");
    assert_eq!(claimed.attempt, 1);
    assert_eq!(claimed.status, "pulling");
    assert!(
        store
            .jobs()
            .claim("B", lease, Utc::now())
            .await
            .unwrap()
            .is_none(),
        "claimed twice"
    );
    assert!(store
        .jobs()
        .renew_lease(&id, 1, "A", lease, Utc::now())
        .await
        .unwrap());
    assert!(
        !store
            .jobs()
            .renew_lease(&id, 1, "B", lease, Utc::now())
            .await
            .unwrap(),
        "B holds no lease"
    );

    // A stalls; its lease expires; B reclaims with attempt 2.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = store
        .jobs()
        .claim("B", lease, Utc::now())
        .await
        .unwrap()
        .expect("reclaimed");
    assert_eq!(b.attempt, 2);
    assert_eq!(b.lease_owner.as_deref(), Some("B"));
    // A's late writes are refused.
    let late = Transition::new(
        &id,
        JobStatus::Pulling,
        JobEvent::Resolved,
        Actor::Worker("A".into()),
        "late",
        0,
    )
    .fenced(1);
    assert!(matches!(
        store.jobs().transition(late).await,
        Err(JobError::Lost)
    ));
    assert!(!store
        .jobs()
        .renew_lease(&id, 1, "A", lease, Utc::now())
        .await
        .unwrap());
    let events = app.get_json(&format!("/scan-jobs/{id}/events")).await;
    let reasons: Vec<&str> = events["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("lease of A expired")),
        "{reasons:?}"
    );
    assert_eq!(
        events["Items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["NewStatus"] == "pulling")
            .count(),
        2
    );
}

on_both_backends!(job_requests, requests_are_validated_and_deduplicated);
on_both_backends!(job_cancel_retry, cancel_retry_events_and_lists);
on_both_backends!(job_claims, claims_are_exclusive_fenced_and_leases_expire);

/// Lanes: a request made through the API is claimed before scheduled scans and re-matches
/// queued before it, oldest first within a lane, whatever the priorities; a slot kept for
/// the ad-hoc lane takes nothing else; an API request for an image whose scheduled job is
/// queued moves that job to the ad-hoc lane.
async fn the_ad_hoc_lane_is_claimed_first(app: &TestApp) {
    use scanvault::store::jobs::{Lane, NewJob};
    let store = &app.store;
    let t0 = Utc::now() - chrono::Duration::seconds(60);
    let queue = |image: &str, lane: Lane, priority: i64, secs: i64| NewJob {
        priority,
        ..NewJob::scan(
            format!("registry.example:5000/{image}:1"),
            format!("registry.example:5000/{image}"),
            lane,
            t0 + chrono::Duration::seconds(secs),
        )
    };
    let mut ids = std::collections::HashMap::new();
    for (image, lane, priority, secs) in [
        ("rematch-old", Lane::Rematch, 1000, 0),
        ("sched-old", Lane::Scheduled, 1000, 1),
        ("sched-new", Lane::Scheduled, 0, 2),
        ("promoted", Lane::Scheduled, 0, 3),
        ("adhoc-low", Lane::Adhoc, -5, 4),
        ("adhoc-late", Lane::Adhoc, -5, 5),
    ] {
        let (job, created) = store
            .jobs()
            .create(queue(image, lane, priority, secs))
            .await
            .unwrap();
        assert!(created);
        ids.insert(job.id.clone(), image);
    }
    // An ad-hoc request for the queued scheduled image: the same job, now ad hoc.
    let (again, created) = store
        .jobs()
        .create(queue("promoted", Lane::Adhoc, 0, 6))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(Lane::of_stored(again.lane), Lane::Adhoc);
    let lease = Duration::from_secs(60);
    // A slot kept for ad-hoc requests.
    let mut order = vec![];
    while let Some(j) = store
        .jobs()
        .claim_in("kept", lease, Utc::now(), Lane::Adhoc)
        .await
        .unwrap()
    {
        order.push(ids[&j.id]);
    }
    assert_eq!(order, ["promoted", "adhoc-low", "adhoc-late"]);
    while let Some(j) = store.jobs().claim("any", lease, Utc::now()).await.unwrap() {
        order.push(ids[&j.id]);
    }
    assert_eq!(
        order,
        [
            "promoted",
            "adhoc-low",
            "adhoc-late",
            "sched-old",
            "sched-new",
            "rematch-old"
        ],
        "the ad-hoc lane, then scheduled, then re-matches; by priority, then age, within one"
    );
    let v = app
        .request(Method::GET, &format!("/scan-jobs/{}", again.id), vec![])
        .await
        .json();
    assert_eq!(v["Lane"], "adhoc");
}

on_both_backends!(job_lanes, the_ad_hoc_lane_is_claimed_first);
