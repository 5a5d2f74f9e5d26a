//! `eventually`: waits for a condition by polling it, instead of a loop written at each place
//! that waits (for a process to come up, a metric to move, a child to exit).

use std::time::{Duration, Instant};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns true (then true) or `within` passes (then false).
pub async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// As [`eventually`], blocking the thread between looks: for plain `#[test]`s.
pub fn eventually_blocking(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(POLL / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_looks_until_the_condition_holds() {
        let mut looks = 0;
        let held = eventually(Duration::from_secs(10), async || {
            looks += 1;
            looks == 3
        })
        .await;
        assert!(held);
        assert_eq!(looks, 3);
    }

    #[tokio::test]
    async fn eventually_gives_up_on_a_condition_that_never_holds() {
        let mut looks = 0;
        let held = eventually(Duration::from_millis(120), async || {
            looks += 1;
            false
        })
        .await;
        assert!(!held);
        assert!(looks >= 2, "looked {looks} times");
    }

    #[test]
    fn eventually_blocking_looks_until_the_condition_holds_or_gives_up() {
        let mut looks = 0;
        assert!(eventually_blocking(Duration::from_secs(10), || {
            looks += 1;
            looks == 2
        }));
        assert_eq!(looks, 2);
        assert!(!eventually_blocking(Duration::from_millis(60), || false));
    }
}
