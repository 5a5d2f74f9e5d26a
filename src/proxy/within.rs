//! Bounding a step of a call by a time limit without a timer when the step needs no wait.
//!
//! A `tokio::time::timeout` costs on every call even when the step it bounds is done at once
//! (as admission and the next request head almost always are): the step's future is moved
//! into the timeout's, and the timer is set up and torn down. A step is polled once first
//! here, and bounded only when it has to wait. The step is passed pinned, so only a pointer
//! moves (`bash benches/profile.sh` showed large futures copied into each wrapper).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio::time::{error::Elapsed, Instant};

/// The output of `step` when it is ready at its first poll; `None`: it waits (its waker is
/// registered, so it may be awaited on as it is).
pub(super) async fn at_once<F: Future>(step: &mut Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match step.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Runs `step` until `deadline` (as `tokio::time::timeout_at` does, with no timer when it is
/// done at its first poll).
pub(super) async fn within<F: Future>(
    deadline: Instant,
    mut step: Pin<&mut F>,
) -> Result<F::Output, Elapsed> {
    match at_once(&mut step).await {
        Some(out) => Ok(out),
        None => tokio::time::timeout_at(deadline, step).await,
    }
}
