//! Prometheus metrics. The `metrics` facade is process-global by design, so the recorder is
//! installed once; every metric is prefixed `scanvault_`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

use crate::store::Store;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const BYTES_BUCKETS: &[f64] = &[1e3, 1e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8];
const FINDINGS_BUCKETS: &[f64] = &[
    0.0, 10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 20000.0,
];

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0,
];

/// Install the recorder (once per process) and return its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_findings".into()), FINDINGS_BUCKETS)
                })
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Gauges computed at scrape time (queue depth, jobs by state, …).
pub async fn refresh_gauges(store: &Store) {
    match store.jobs().gauges(chrono::Utc::now()).await {
        Ok(g) => {
            for (status, n) in g.by_status {
                metrics::gauge!("scanvault_scan_jobs", "status" => status).set(n as f64);
            }
            metrics::gauge!("scanvault_scan_jobs_queue_depth").set(g.queue_depth as f64);
            // The name autoscalers read (an external metric for the worker HPA).
            metrics::gauge!("scanvault_jobs_queued").set(g.queue_depth as f64);
            metrics::gauge!("scanvault_scan_jobs_oldest_queued_age_seconds")
                .set(g.oldest_queued_age_seconds);
            metrics::gauge!("scanvault_db_up").set(1.0);
        }
        Err(_) => metrics::gauge!("scanvault_db_up").set(0.0),
    }
    for (pool, size, idle) in store.admin().pool_stats() {
        let idle = idle.min(size as usize);
        metrics::gauge!("scanvault_db_pool_connections", "pool" => pool, "state" => "idle")
            .set(idle as f64);
        metrics::gauge!("scanvault_db_pool_connections", "pool" => pool, "state" => "in_use")
            .set((size as usize - idle) as f64);
    }
}
