//! Hot policy reload (feature `reload`): a [`GuardHandle`] holds the running [`Guard`]
//! behind an [`arc_swap::ArcSwap`], and [`GuardHandle::swap_policy`] replaces it with a
//! guard for a new policy while checks go on.
//!
//! # How a swap works
//!
//! 1. A guard for the new policy is built beside the running one. It shares the running
//!    guard's audit sink, clock and consent store, and replays the store into a consent
//!    state of its own (the state is compiled against a policy's vocabulary, so it is
//!    rebuilt, never shared). The running guard serves every check meanwhile.
//! 2. If the new policy cannot apply a stored event that the running one applies (a
//!    purpose it no longer declares, a grant under a later policy version), the swap
//!    fails with [`ReloadError::Unapplicable`] and nothing changes: a reload must not
//!    silently turn subjects' consent into `consent_state_unavailable`. A deployment
//!    that accepts this calls [`GuardHandle::swap_policy_quarantining`], which applies
//!    what it can and quarantines the rest as [`Guard::sync`] does.
//! 3. Recording through the handle pauses for a moment, the new guard reads the events
//!    recorded since its replay, and it is published with one atomic store. Checks never
//!    wait: each one runs on one guard, old or new, from start to end, so a decision's
//!    policy version, clause and consent state always belong to the same policy.
//!
//! Record events through the handle ([`GuardHandle::record`] and friends), not through a
//! guard [`GuardHandle::load`] returned: an event recorded on a guard that a swap has
//! just retired would reach the store but not the new guard's state until its next sync.
//!
//! # Without a store
//!
//! A guard's consent state holds compiled events, which a different policy cannot read,
//! so a swap replays events. [`GuardHandle::build`] gives a builder without a store an
//! in-memory one ([`MemoryConsentStore`]: events are kept for the process's life, and
//! [`Guard::history`] answers from them). [`GuardHandle::new`] does the same for a guard
//! without a store that knows no subject yet; a store-less guard that already holds
//! consent cannot be replayed, and its swaps fail with [`ReloadError::NotReplayable`].
//!
//! ```
//! use consent_guard::reload::GuardHandle;
//! use consent_guard::{AccessRequest, DataCategory, Guard, Policy, Purpose};
//!
//! let handle = GuardHandle::build(Guard::builder(Policy::from_toml_file("examples/policies/exmo.toml")?))?;
//! let request = AccessRequest::new("u1", Purpose::SECURITY, &[DataCategory::DEVICE_INFO][..]);
//! assert!(handle.load().check(&request).allowed());
//! handle.swap_policy(Policy::from_toml_file("examples/policies/exmo.toml")?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;

use crate::consent::{ConsentEvent, ConsentHistory};
use crate::decision::OwnedDecision;
use crate::error::{EventError, StoreError};
use crate::guard::{Guard, GuardBuilder, QuarantinedEvent};
use crate::policy::Policy;
use crate::request::AccessRequest;
use crate::store::{ConsentStore, MemoryConsentStore};

/// Why a policy swap did not happen. The running guard is unchanged in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The store could not be replayed for the new policy.
    #[error("the consent store could not be replayed for the new policy: {0}")]
    Replay(#[source] EventError),
    /// The new policy cannot apply stored events that the running policy applies; their
    /// subjects would fail closed. [`GuardHandle::swap_policy_quarantining`] accepts that.
    #[error("the new policy cannot apply {} stored event(s), first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Unapplicable(Vec<QuarantinedEvent>),
    /// The running guard holds consent state but keeps no events (it has no store), so
    /// a guard for another policy cannot rebuild that state.
    #[error("the running guard holds consent but no store of events to replay for a new policy")]
    NotReplayable,
    /// Another thread panicked during a swap.
    #[error("a policy swap panicked on another thread")]
    Poisoned,
}

/// The running [`Guard`], swappable under running checks. `Send + Sync`: share it (in an
/// `Arc`, or as axum state) between threads and tasks.
///
/// [`GuardHandle::swap_policy`] is what the issue called `Guard::swap_policy`: a guard's
/// policy is compiled into its state and plan, so the swap replaces the whole guard, and
/// the handle is what stays.
pub struct GuardHandle {
    current: ArcSwap<Guard>,
    /// Serialises swaps.
    swapping: Mutex<()>,
    /// Pauses recording through the handle while a swap publishes its guard.
    gate: Gate,
    /// The store a store-less guard was given, so that its events can be replayed.
    fallback_store: Option<Arc<dyn ConsentStore>>,
    replayable: bool,
}

impl GuardHandle {
    /// Builds the guard and wraps it. A builder without a store gets an in-memory one,
    /// so that a swap can replay the events recorded through the handle.
    ///
    /// # Errors
    ///
    /// As [`GuardBuilder::build`].
    pub fn build(builder: GuardBuilder) -> Result<GuardHandle, EventError> {
        let guard = builder.build()?;
        Ok(GuardHandle::new(guard))
    }

    /// Wraps a running guard. A guard without a store that knows no subject yet gets an
    /// in-memory store for the events recorded from now on (see the module docs).
    pub fn new(guard: Guard) -> GuardHandle {
        let (guard, fallback_store, replayable) = if guard.has_store() {
            (guard, None, true)
        } else if guard.subjects() == 0 {
            let store: Arc<dyn ConsentStore> = Arc::new(MemoryConsentStore::new());
            let policy = guard.policy().clone();
            (guard.successor(policy, Some(Arc::clone(&store))), Some(store), true)
        } else {
            (guard, None, false)
        };
        GuardHandle {
            current: ArcSwap::from_pointee(guard),
            swapping: Mutex::new(()),
            gate: Gate::default(),
            fallback_store,
            replayable,
        }
    }

    /// The running guard, for checks: cheap (no lock, no allocation), and the guard
    /// stays alive while the returned `Arc` does, even if a swap retires it meanwhile.
    pub fn load(&self) -> Arc<Guard> {
        self.current.load_full()
    }

    /// [`Guard::check`] on the running guard, answered as an [`OwnedDecision`]: for
    /// code that cannot keep the guard borrowed (across an `await`, or out of a
    /// helper). It allocates the owned copy; [`GuardHandle::load`] and a borrowed
    /// check do not.
    pub fn check(&self, request: &AccessRequest<'_>) -> OwnedDecision {
        self.current.load().check(request).into_owned()
    }

    /// As [`GuardHandle::load`], without touching the reference count: for a check that
    /// ends before the caller's next `await` (the borrow is held by a guard object that
    /// must not be kept across one).
    pub fn load_guard(&self) -> arc_swap::Guard<Arc<Guard>> {
        self.current.load()
    }

    /// Swaps in a guard for `policy`, replaying the consent store for it (see the module
    /// docs); returns the guard retired. Checks running meanwhile finish on the old
    /// guard, later ones run on the new one.
    ///
    /// # Errors
    ///
    /// See [`ReloadError`]; nothing changes on an error.
    #[doc(alias = "Guard::swap_policy")]
    pub fn swap_policy(&self, policy: Policy) -> Result<Arc<Guard>, ReloadError> {
        self.swap(policy, false)
    }

    /// As [`GuardHandle::swap_policy`], but stored events the new policy cannot apply are
    /// quarantined (their subjects fail closed, [`Guard::quarantined`] lists them) rather
    /// than failing the swap.
    ///
    /// # Errors
    ///
    /// As [`GuardHandle::swap_policy`], never [`ReloadError::Unapplicable`].
    pub fn swap_policy_quarantining(&self, policy: Policy) -> Result<Arc<Guard>, ReloadError> {
        self.swap(policy, true)
    }

    fn swap(&self, policy: Policy, quarantine: bool) -> Result<Arc<Guard>, ReloadError> {
        if !self.replayable {
            return Err(ReloadError::NotReplayable);
        }
        let _swapping = self.swapping.lock().map_err(|_| ReloadError::Poisoned)?;
        let old = self.current.load_full();
        let new = old.successor(policy, self.fallback_store.clone());
        new.reload().map_err(ReloadError::Replay)?;
        // Recording pauses only for the catch-up below, not for the replay above.
        let _closed = self.gate.close();
        new.sync().map_err(ReloadError::Replay)?;
        if !quarantine {
            let known: Vec<u64> = old.quarantined().iter().map(|q| q.position).collect();
            let fresh: Vec<QuarantinedEvent> =
                new.quarantined().into_iter().filter(|q| !known.contains(&q.position)).collect();
            if !fresh.is_empty() {
                return Err(ReloadError::Unapplicable(fresh));
            }
        }
        Ok(self.current.swap(Arc::new(new)))
    }

    /// [`Guard::record`] on the running guard.
    ///
    /// # Errors
    ///
    /// As [`Guard::record`].
    pub fn record(&self, event: &ConsentEvent) -> Result<(), EventError> {
        let _ticket = self.gate.enter_blocking();
        self.current.load().record(event)
    }

    /// [`Guard::record_all`] on the running guard.
    ///
    /// # Errors
    ///
    /// As [`Guard::record_all`].
    pub fn record_all(&self, events: &[ConsentEvent]) -> Result<(), EventError> {
        let _ticket = self.gate.enter_blocking();
        self.current.load().record_all(events)
    }

    /// [`Guard::record_async`] on the running guard. The future is `Send`.
    ///
    /// # Errors
    ///
    /// As [`Guard::record`].
    pub async fn record_async(&self, event: &ConsentEvent) -> Result<(), EventError> {
        self.record_all_async(std::slice::from_ref(event)).await
    }

    /// [`Guard::record_all_async`] on the running guard. The future is `Send`.
    ///
    /// # Errors
    ///
    /// As [`Guard::record_all`].
    pub async fn record_all_async(&self, events: &[ConsentEvent]) -> Result<(), EventError> {
        let _ticket = self.gate.enter().await;
        let guard = self.current.load_full();
        guard.record_all_async(events).await
    }

    /// [`Guard::history`] of the running guard.
    ///
    /// # Errors
    ///
    /// As [`Guard::history`].
    pub fn history(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        self.current.load().history(subject)
    }

    /// [`Guard::history_async`] of the running guard.
    ///
    /// # Errors
    ///
    /// As [`Guard::history`].
    pub async fn history_async(&self, subject: &str) -> Result<ConsentHistory, StoreError> {
        let guard = self.current.load_full();
        guard.history_async(subject).await
    }

    /// [`Guard::follow`] that follows whichever guard is running: after a swap it syncs
    /// the new guard.
    pub fn follow(&self, interval: std::time::Duration, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            self.current.load_full().follow_round(interval);
        }
    }
}

impl std::fmt::Debug for GuardHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardHandle").field("current", &*self.current.load()).finish_non_exhaustive()
    }
}

/// A gate recorders pass in numbers and a swap closes: `close` waits until every
/// recorder inside has left, and keeps new ones out until dropped. Hand-written over
/// two atomics rather than a `RwLock` so that an async recorder's ticket is `Send` and
/// may be held across the store's `await`.
#[derive(Debug, Default)]
struct Gate {
    inside: AtomicUsize,
    closed: AtomicBool,
}

/// A recorder inside the gate.
struct Ticket<'g>(&'g Gate);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The gate closed by a swap, open again when dropped (on success and on every error).
struct Closed<'g>(&'g Gate);

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.0.closed.store(false, Ordering::SeqCst);
    }
}

impl Gate {
    /// Enters if the gate is open. Both sides use `SeqCst`: a recorder that sees the
    /// gate open has made itself counted before the swap reads the count.
    fn try_enter(&self) -> Option<Ticket<'_>> {
        self.inside.fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket(self);
        (!self.closed.load(Ordering::SeqCst)).then_some(ticket)
    }

    fn enter_blocking(&self) -> Ticket<'_> {
        loop {
            if let Some(ticket) = self.try_enter() {
                return ticket;
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    /// Waits for the gate without blocking the runtime's thread: it yields to other
    /// tasks while a swap holds the gate (a catch-up sync, usually well under a
    /// millisecond).
    async fn enter(&self) -> Ticket<'_> {
        loop {
            if let Some(ticket) = self.try_enter() {
                return ticket;
            }
            YieldNow(false).await;
        }
    }

    fn close(&self) -> Closed<'_> {
        self.closed.store(true, Ordering::SeqCst);
        let closed = Closed(self);
        while self.inside.load(Ordering::SeqCst) != 0 {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        closed
    }
}

/// Returns `Pending` once, waking itself: lets other tasks run.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_and_futures_are_send() {
        fn shareable<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        shareable::<GuardHandle>();
        let handle = GuardHandle::new(Guard::new(
            crate::Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies/exmo.toml"))
                .unwrap_or_else(|e| panic!("{e}")),
        ));
        let event: ConsentEvent = serde_json::from_str(
            r#"{"type":"withdraw","subject":"u1","purposes":["analytics"],"at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        send(&handle.record_async(&event));
        send(&handle.history_async("u1"));
    }
}
