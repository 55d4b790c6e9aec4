//! The webhook dispatcher: sends the outbox's pending deliveries (`store::webhooks`).
//!
//! Every process runs one. It claims due deliveries with a lease (on PostgreSQL with
//! `SKIP LOCKED`, so several processes share the work), posts each as JSON signed with
//! the webhook's secret, and records the attempt: a 2xx answer delivers it; anything else
//! (an error status, a refused connection, a timeout) schedules the next attempt after an
//! exponential backoff, until `WEBHOOK_RETRY_FOR` has passed since the event, when the
//! delivery is dead. A delivery claimed by a process that dies returns when its lease
//! ends, so a restart loses nothing; a receiver may see a delivery more than once (at
//! least once) and deduplicates by `X-ScanVault-Delivery`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::store::webhooks::{delivery_body, AttemptOutcome, ClaimedDelivery};
use crate::store::{micros, Store};

/// How deliveries are sent and retried.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// How often to look for due deliveries when none were found.
    pub poll_interval: Duration,
    /// One attempt's time limit.
    pub timeout: Duration,
    /// How long after the event a failed delivery is retried before it is dead.
    pub retry_for: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(3600),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
        }
    }
}

/// Deliveries claimed at once.
const BATCH: i64 = 16;

/// `sha256=<hex>`: the HMAC-SHA256 of `body` with `secret`, as `X-ScanVault-Signature`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts a key of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

pub struct Dispatcher {
    store: Store,
    client: reqwest::Client,
    settings: WebhookSettings,
}

impl Dispatcher {
    pub fn new(store: Store, settings: WebhookSettings) -> anyhow::Result<Dispatcher> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ScanVault-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Dispatcher {
            store,
            client,
            settings,
        })
    }

    /// Send deliveries until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let sent = match self.dispatch_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
                    0
                }
            };
            if sent == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            } else if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Claim the due deliveries and attempt each once; how many were attempted.
    pub async fn dispatch_once(&self) -> anyhow::Result<usize> {
        let now = chrono::Utc::now();
        // The lease outlasts an attempt: a claim is not taken twice while it is in flight.
        let lease = self.settings.timeout * 3;
        let claimed = self
            .store
            .webhooks()
            .claim_deliveries(micros(now), micros(now) + lease.as_micros() as i64, BATCH)
            .await?;
        let n = claimed.len();
        futures::future::join_all(claimed.into_iter().map(|d| self.attempt(d))).await;
        Ok(n)
    }

    async fn attempt(&self, d: ClaimedDelivery) {
        let body = delivery_body(&d);
        let started = Instant::now();
        let sent = self
            .client
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-ScanVault-Event", &d.event)
            .header("X-ScanVault-Delivery", &d.id)
            .header(
                "X-ScanVault-Signature",
                signature(&d.secret, body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status_code, error) = match sent {
            Ok(r) if r.status().is_success() => (Some(i64::from(r.status().as_u16())), None),
            Ok(r) => (
                Some(i64::from(r.status().as_u16())),
                Some(format!("the receiver answered {}", r.status())),
            ),
            // Without the URL: it may carry a token.
            Err(e) => (
                None,
                Some(crate::redact::redact_error(&e.without_url().to_string())),
            ),
        };
        let now = chrono::Utc::now();
        let at = micros(now);
        let retry_until = d.created_at + self.settings.retry_for.as_micros() as i64;
        let (status, next_attempt_at) = if error.is_none() {
            ("delivered", at)
        } else {
            let wait = scanvault_core::job::backoff(
                u32::try_from(d.attempts).unwrap_or(u32::MAX),
                self.settings.backoff_base,
                self.settings.backoff_max,
                &mut rand::thread_rng(),
            );
            if at >= retry_until {
                ("dead", at)
            } else {
                ("pending", at + wait.as_micros() as i64)
            }
        };
        match status {
            "delivered" => {
                tracing::info!(delivery = %d.id, event = %d.event, attempt = d.attempts, "webhook delivered")
            }
            "dead" => {
                tracing::warn!(delivery = %d.id, event = %d.event, attempt = d.attempts, error = ?error, "webhook delivery dead: retried for WEBHOOK_RETRY_FOR")
            }
            _ => {
                tracing::info!(delivery = %d.id, event = %d.event, attempt = d.attempts, error = ?error, "webhook delivery failed; will retry")
            }
        }
        metrics::counter!("scanvault_webhook_attempts_total", "event" => d.event.clone(), "outcome" => status)
            .increment(1);
        let outcome = AttemptOutcome {
            delivery_id: d.id.clone(),
            attempt: d.attempts,
            at,
            status_code,
            error,
            duration_ms,
            status,
            next_attempt_at,
        };
        if let Err(e) = self.store.webhooks().record_attempt(&outcome).await {
            // The lease ends and the delivery is attempted again: at least once.
            tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed");
        }
    }
}
