//! The workers' runtime state in this process: a wake-up for new jobs, and the cancellation
//! tokens of the jobs running here, so that a cancel request kills a scan at once. Shared by
//! the HTTP API (which queues and cancels) and the runner; other processes learn of jobs
//! through the store's notices (PostgreSQL `NOTIFY`) or their next poll and lease renewal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Signals {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    queued: Notify,
    running: Mutex<HashMap<String, CancellationToken>>,
}

impl Signals {
    /// A job may be available (queued, retried, reclaimed): wake idle workers.
    pub fn job_queued(&self) {
        self.inner.queued.notify_waiters();
    }

    /// Wait until a job may be available, or `timeout`.
    pub async fn wait_for_jobs(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.queued.notified()).await;
    }

    /// A job now runs in this process; `token` fires when it is cancelled.
    pub fn register(&self, job_id: &str, token: CancellationToken) {
        self.running().insert(job_id.to_string(), token);
    }

    pub fn unregister(&self, job_id: &str) {
        self.running().remove(job_id);
    }

    /// Stop the job if it runs in this process; whether it did.
    pub fn cancel(&self, job_id: &str) -> bool {
        let token = self.running().get(job_id).cloned();
        token.map(|t| t.cancel()).is_some()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_reaches_only_the_registered_job() {
        let s = Signals::default();
        let t = CancellationToken::new();
        s.register("a", t.clone());
        assert!(!s.cancel("b"));
        assert!(s.cancel("a"));
        assert!(t.is_cancelled());
        s.unregister("a");
        assert!(!s.cancel("a"));
    }
}
