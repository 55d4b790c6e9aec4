//! The ticking of the service's background loops (compaction, upkeep, catalog sweep,
//! retention, database health): one period, missed ticks delayed rather than bunched, and
//! a stop as soon as shutdown fires.

use std::time::Duration;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub struct Every {
    tick: Interval,
    shutdown: CancellationToken,
}

impl Every {
    /// Ticks every `period` (not zero), the first at once.
    pub fn new(period: Duration, shutdown: &CancellationToken) -> Every {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Every {
            tick,
            shutdown: shutdown.clone(),
        }
    }

    /// Ticks every `period`, the first one period from now.
    pub async fn after_one_period(period: Duration, shutdown: &CancellationToken) -> Every {
        let mut every = Every::new(period, shutdown);
        every.tick.tick().await;
        every
    }

    /// Wait for the next tick: `false` once shutdown has fired.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = self.tick.tick() => true,
        }
    }

    /// Run `work` to its end, or abandon it when shutdown fires first (`None`).
    pub async fn unless_shutdown<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        tokio::select! {
            _ = self.shutdown.cancelled() => None,
            done = work => Some(done),
        }
    }
}
