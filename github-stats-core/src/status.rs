//! The one status cell of every long-running component (the poller, the archive follower, the
//! ingest loop): the component writes its snapshot in place, readers (`/health`, Prometheus)
//! take a copy, completed at read time.

use std::sync::{Arc, RwLock};

/// A component's status as readers see it.
pub trait ComponentSnapshot: Clone + Default + Send + Sync + 'static {
    /// Fills what is derived from the rest at read time (whether the component is degraded,
    /// how far behind it is), just before a reader gets the copy.
    fn complete(&mut self) {}

    /// Whether the component reports trouble: `/health` says `degraded` when any does.
    fn is_degraded(&self) -> bool;
}

/// A cheaply cloneable handle on a component's status: the component updates it, readers take
/// [`snapshot`](StatusCell::snapshot)s. The lock is held for a copy or an update only, never
/// across I/O.
#[derive(Debug, Default)]
pub struct StatusCell<T> {
    inner: Arc<RwLock<T>>,
}

impl<T> Clone for StatusCell<T> {
    fn clone(&self) -> StatusCell<T> {
        StatusCell {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: ComponentSnapshot> StatusCell<T> {
    /// The current status.
    pub fn snapshot(&self) -> T {
        let mut snapshot = self.inner.read().unwrap_or_else(|e| e.into_inner()).clone();
        snapshot.complete();
        snapshot
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut T)) {
        f(&mut self.inner.write().unwrap_or_else(|e| e.into_inner()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, PartialEq)]
    struct Counter {
        failures: u32,
        degraded: bool,
    }

    impl ComponentSnapshot for Counter {
        fn complete(&mut self) {
            self.degraded = self.failures > 0;
        }
        fn is_degraded(&self) -> bool {
            self.degraded
        }
    }

    #[test]
    fn clones_share_the_status_and_readers_get_it_completed() {
        let cell = StatusCell::<Counter>::default();
        let reader = cell.clone();
        assert!(!reader.snapshot().is_degraded());
        cell.update(|c| c.failures = 2);
        let seen = reader.snapshot();
        assert_eq!(seen.failures, 2);
        assert!(seen.is_degraded(), "derived at read time");
    }
}
