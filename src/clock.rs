//! Time, injected: the guard asks a [`Clock`] for "now" when a request names no time of
//! its own, so tests and replays decide as of a fixed instant.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// A source of the current time.
///
/// # Obligations
///
/// `now` must not block and must not fail; it is called on the check path.
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The current time in milliseconds since the Unix epoch: what a check compares
    /// against. Override it when the clock has the number at hand, so that the check
    /// path does not build a calendar date only to take it apart again.
    fn now_millis(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn now_millis(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        }
    }
}

/// A clock that says what it is told (millisecond precision), for tests and
/// reproducible runs.
#[derive(Debug)]
pub struct FixedClock {
    millis: AtomicI64,
}

impl FixedClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> FixedClock {
        FixedClock { millis: AtomicI64::new(at.timestamp_millis()) }
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        self.millis.store(at.timestamp_millis(), Ordering::Release);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.millis.load(Ordering::Acquire)).unwrap_or_default()
    }

    fn now_millis(&self) -> i64 {
        self.millis.load(Ordering::Acquire)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }

    fn now_millis(&self) -> i64 {
        (**self).now_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_agree_with_the_calendar_time() {
        let system = SystemClock;
        let (before, millis, after) = (system.now(), system.now_millis(), system.now());
        assert!(before.timestamp_millis() <= millis && millis <= after.timestamp_millis());

        let at = DateTime::from_timestamp_millis(1_767_225_600_123).unwrap();
        let fixed = std::sync::Arc::new(FixedClock::new(at));
        assert_eq!((fixed.now(), fixed.now_millis()), (at, at.timestamp_millis()));
        let earlier = DateTime::from_timestamp_millis(-86_400_001).unwrap();
        fixed.set(earlier);
        assert_eq!((fixed.now(), fixed.now_millis()), (earlier, -86_400_001));
    }
}
