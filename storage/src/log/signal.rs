//! Waking readers when records are appended, without tokio.
//!
//! Query threads that have read everything block here instead of polling.
//! Appenders pay one atomic increment per append; they only touch the mutex
//! and the condition variable when somebody is actually waiting.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A generation counter bumped on every append, with a way to wait for it
/// to move.
///
/// # Invariants
///
/// No lost wake-ups: a waiter registers in `waiters` before it checks the
/// generation under the mutex, and a bumper that sees a waiter takes the
/// mutex before notifying (all `SeqCst`), so either the waiter sees the new
/// generation or it is already waiting when the notification comes.
#[derive(Default)]
pub(crate) struct AppendSignal {
    generation: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

impl AppendSignal {
    /// The current generation.
    pub(crate) fn current(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Records that something was appended and wakes all waiters.
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
            self.cond.notify_all();
        }
    }

    /// Blocks until the generation differs from `seen` or `timeout` passed;
    /// returns the generation at that moment.
    pub(crate) fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let now = self.current();
        if now != seen || timeout.is_zero() {
            return now;
        }
        let deadline = Instant::now().checked_add(timeout);
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = loop {
            let now = self.current();
            if now != seen {
                break now;
            }
            guard = match deadline {
                None => self.cond.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break now;
                    }
                    self.cond
                        .wait_timeout(guard, left)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0)
                }
            };
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_returns_at_once_when_already_moved_and_times_out_otherwise() {
        let signal = AppendSignal::default();
        signal.bump();
        assert_eq!(signal.wait(0, Duration::from_secs(10)), 1);
        let start = Instant::now();
        assert_eq!(signal.wait(1, Duration::from_millis(30)), 1);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_bump_from_another_thread_wakes_the_waiter() {
        let signal = Arc::new(AppendSignal::default());
        let bumper = {
            let signal = Arc::clone(&signal);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                signal.bump();
            })
        };
        let start = Instant::now();
        assert_eq!(signal.wait(0, Duration::from_secs(30)), 1);
        assert!(start.elapsed() < Duration::from_secs(10));
        bumper.join().unwrap();
    }
}
