//! The scan-job state machine and the retry backoff. Pure: no I/O, no clock.
//!
//! ```text
//!             claim            resolved            stored
//!  queued ──────────► pulling ─────────► scanning ────────► completed
//!    ▲ ▲                │  └── cache hit ─────────────────► completed
//!    │ │ transient,     │ transient / lease lost / released   │
//!    │ │ attempts left  ▼                                     │
//!    │ └──────────── (pulling | scanning) ── permanent, ──► failed
//!    │                                        exhausted
//!    └── retry ── failed | cancelled ◄── cancel ── queued | pulling | scanning
//! ```

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Pulling,
    Scanning,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Pulling,
        JobStatus::Scanning,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Pulling => "pulling",
            JobStatus::Scanning => "scanning",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .find(|j| j.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// A worker holds the job (it has a lease).
    pub fn is_running(self) -> bool {
        matches!(self, JobStatus::Pulling | JobStatus::Scanning)
    }

    /// Queued or running: the job is not finished.
    pub fn is_active(self) -> bool {
        self == JobStatus::Queued || self.is_running()
    }

    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobEvent {
    /// A worker claims a queued job whose time has come.
    Claim,
    /// The registry resolved the reference to a manifest digest.
    Resolved,
    /// A fresh enough scan of the digest exists: complete with it.
    CacheHit,
    /// Trivy's report is stored.
    Stored,
    /// A transient error; `retry` when attempts are left.
    TransientError { retry: bool },
    /// A permanent error.
    PermanentError,
    /// The worker's lease expired (it died); `retry` when attempts are left.
    LeaseExpired { retry: bool },
    /// A worker shutting down hands the job back.
    Released,
    /// A user cancels.
    Cancel,
    /// A user asks to run a finished job again.
    Retry,
}

impl JobEvent {
    pub const ALL: [JobEvent; 12] = [
        JobEvent::Claim,
        JobEvent::Resolved,
        JobEvent::CacheHit,
        JobEvent::Stored,
        JobEvent::TransientError { retry: true },
        JobEvent::TransientError { retry: false },
        JobEvent::PermanentError,
        JobEvent::LeaseExpired { retry: true },
        JobEvent::LeaseExpired { retry: false },
        JobEvent::Released,
        JobEvent::Cancel,
        JobEvent::Retry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobEvent::Claim => "claim",
            JobEvent::Resolved => "resolved",
            JobEvent::CacheHit => "cache_hit",
            JobEvent::Stored => "stored",
            JobEvent::TransientError { .. } => "transient_error",
            JobEvent::PermanentError => "permanent_error",
            JobEvent::LeaseExpired { .. } => "lease_expired",
            JobEvent::Released => "released",
            JobEvent::Cancel => "cancel",
            JobEvent::Retry => "retry",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a job that is {from} cannot take the event {event}")]
pub struct InvalidTransition {
    pub from: JobStatus,
    pub event: &'static str,
}

/// The transition rules, in one place.
pub fn transition(from: JobStatus, event: JobEvent) -> Result<JobStatus, InvalidTransition> {
    use JobEvent as E;
    use JobStatus as S;
    let to = match (from, event) {
        (S::Queued, E::Claim) => S::Pulling,
        (S::Pulling, E::Resolved) => S::Scanning,
        (S::Pulling, E::CacheHit) => S::Completed,
        (S::Scanning, E::Stored) => S::Completed,
        (S::Pulling | S::Scanning, E::TransientError { retry: true }) => S::Queued,
        (S::Pulling | S::Scanning, E::TransientError { retry: false }) => S::Failed,
        (S::Pulling | S::Scanning, E::PermanentError) => S::Failed,
        (S::Pulling | S::Scanning, E::LeaseExpired { retry: true }) => S::Queued,
        (S::Pulling | S::Scanning, E::LeaseExpired { retry: false }) => S::Failed,
        (S::Pulling | S::Scanning, E::Released) => S::Queued,
        (S::Queued | S::Pulling | S::Scanning, E::Cancel) => S::Cancelled,
        (S::Failed | S::Cancelled, E::Retry) => S::Queued,
        _ => {
            return Err(InvalidTransition {
                from,
                event: event.name(),
            })
        }
    };
    Ok(to)
}

/// Retry delay after failed attempt number `attempt` (1-based): `base · 2^(attempt-1)`,
/// capped at `max`, with "equal jitter" (a random value in the upper half), so retries of
/// many jobs failing together spread out but never come sooner than half the delay.
pub fn backoff(attempt: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    let jitter_ms = rng.gen_range(0..=half.as_millis().min(u64::MAX as u128) as u64);
    half + Duration::from_millis(jitter_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use JobEvent as E;
    use JobStatus as S;

    /// Every (state, event) pair and its expected outcome (`None` = refused).
    fn expected(from: JobStatus, event: JobEvent) -> Option<JobStatus> {
        let table: &[(JobStatus, JobEvent, JobStatus)] = &[
            (S::Queued, E::Claim, S::Pulling),
            (S::Queued, E::Cancel, S::Cancelled),
            (S::Pulling, E::Resolved, S::Scanning),
            (S::Pulling, E::CacheHit, S::Completed),
            (S::Pulling, E::TransientError { retry: true }, S::Queued),
            (S::Pulling, E::TransientError { retry: false }, S::Failed),
            (S::Pulling, E::PermanentError, S::Failed),
            (S::Pulling, E::LeaseExpired { retry: true }, S::Queued),
            (S::Pulling, E::LeaseExpired { retry: false }, S::Failed),
            (S::Pulling, E::Released, S::Queued),
            (S::Pulling, E::Cancel, S::Cancelled),
            (S::Scanning, E::Stored, S::Completed),
            (S::Scanning, E::TransientError { retry: true }, S::Queued),
            (S::Scanning, E::TransientError { retry: false }, S::Failed),
            (S::Scanning, E::PermanentError, S::Failed),
            (S::Scanning, E::LeaseExpired { retry: true }, S::Queued),
            (S::Scanning, E::LeaseExpired { retry: false }, S::Failed),
            (S::Scanning, E::Released, S::Queued),
            (S::Scanning, E::Cancel, S::Cancelled),
            (S::Failed, E::Retry, S::Queued),
            (S::Cancelled, E::Retry, S::Queued),
        ];
        table
            .iter()
            .find(|(f, e, _)| *f == from && *e == event)
            .map(|(_, _, t)| *t)
    }

    #[test]
    fn every_state_and_event_pair_follows_the_table() {
        let mut allowed = 0;
        for from in JobStatus::ALL {
            for event in JobEvent::ALL {
                let got = transition(from, event).ok();
                assert_eq!(got, expected(from, event), "{from} + {event:?}");
                if got.is_some() {
                    allowed += 1;
                }
            }
        }
        assert_eq!(allowed, 21);
    }

    #[test]
    fn terminal_states_take_only_retry() {
        for from in [S::Completed, S::Failed, S::Cancelled] {
            for event in JobEvent::ALL {
                let ok = transition(from, event).is_ok();
                assert_eq!(
                    ok,
                    event == E::Retry && from != S::Completed,
                    "{from} {event:?}"
                );
            }
        }
    }

    #[test]
    fn refused_transitions_say_why() {
        let e = transition(S::Completed, E::Cancel).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a job that is completed cannot take the event cancel"
        );
    }

    #[test]
    fn status_names_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobStatus::parse("RUNNING"), None);
    }

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter_and_a_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for attempt in 1..=12u32 {
            let full = (base * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..50 {
                let d = backoff(attempt, base, max, &mut rng);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} vs {full:?}"
                );
            }
        }
        assert!(backoff(u32::MAX, base, max, &mut rng) <= max);
        assert_eq!(backoff(1, Duration::ZERO, max, &mut rng), Duration::ZERO);
    }
}
