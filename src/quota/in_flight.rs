//! Calls in flight per app and API (a route's `max_in_flight`), against WeCom's concurrency
//! limit (45033): a semaphore per (app, API, cap), made on the first call that needs it.
//!
//! Routes without `max_in_flight` never come here, so their calls take no lock and allocate
//! nothing. In fleet mode each sidecar keeps its own count (the cap is per sidecar).

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::AppName;

/// Most (app, API, cap) semaphores kept; an idle one leaves after an hour.
const MAX_KEYS: u64 = 100_000;
const IDLE: Duration = Duration::from_secs(3600);

/// A call's place among the calls in flight; the place frees when it drops.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// The semaphores of every capped (app, API).
pub struct InFlight {
    /// Keyed with the cap too, so a reload that changes it starts a semaphore of the new size.
    gates: Cache<(AppName, Arc<str>, u32), Arc<Semaphore>>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            gates: Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_idle(IDLE)
                .build(),
        }
    }
}

impl InFlight {
    /// A place among at most `max` calls of `app` on `api`, waiting up to `max_wait` for one;
    /// `None` when none freed in time.
    pub async fn enter(
        &self,
        app: &AppName,
        api: &Arc<str>,
        max: u32,
        max_wait: Duration,
    ) -> Option<Slot> {
        let gate = self.gates.get_with((app.clone(), api.clone(), max), || {
            Arc::new(Semaphore::new(max as usize))
        });
        if let Ok(permit) = gate.clone().try_acquire_owned() {
            return Some(Slot { _permit: permit });
        }
        match tokio::time::timeout(max_wait, gate.acquire_owned()).await {
            Ok(Ok(permit)) => Some(Slot { _permit: permit }),
            // Never closed; timed out.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_max_in_flight_the_rest_wait_then_give_up() {
        let f = InFlight::default();
        let app = AppName("hr".into());
        let api: Arc<str> = "message/send".into();
        let wait = Duration::from_millis(500);
        let a = f.enter(&app, &api, 2, wait).await.unwrap();
        let _b = f.enter(&app, &api, 2, wait).await.unwrap();
        assert!(
            f.enter(&app, &api, 2, wait).await.is_none(),
            "third call waited max_wait and gave up"
        );
        // Another API of the same app has its own count.
        let other: Arc<str> = "user/get".into();
        assert!(f.enter(&app, &other, 2, wait).await.is_some());
        // A place freed while waiting is taken.
        let waiter = f.enter(&app, &api, 2, wait);
        let freer = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(a);
        };
        let (slot, ()) = tokio::join!(waiter, freer);
        assert!(slot.is_some());
    }
}
