//! The store's health, checked in the background: `/health` and `/metrics` read the last
//! result instead of asking the store themselves, so they answer in time however slow the store
//! is (a scrape that waited on a ClickHouse delayed 40 s made Prometheus see the whole target
//! down, and the store-down alert never fired).
//!
//! One check runs at a time, each bounded by [`MonitorSettings::timeout`], every
//! [`MonitorSettings::interval`]. A reader asks for a check that starts after its request
//! arrived and waits for it at most [`MonitorSettings::fresh_wait`] (so a fast store's answers
//! are current, as before); it does not wait at all while the store is known to be slow. The
//! reader never starts a query itself: however many scrapes arrive, the store sees one health
//! check at a time.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use github_stats_core::{SharedStore, StoreHealth};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// How often and how long the store's health is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorSettings {
    /// The wait between two checks (from the end of one to the start of the next) when no
    /// reader asks for one sooner.
    pub interval: Duration,
    /// A check that has not answered after this long is abandoned, and the store is slow until
    /// a check answers in time.
    pub timeout: Duration,
    /// How long a reader waits for a check started after its request, before answering with
    /// the last result.
    pub fresh_wait: Duration,
}

impl Default for MonitorSettings {
    fn default() -> MonitorSettings {
        MonitorSettings {
            interval: Duration::from_secs(5),
            // Above the cluster node pings' own 5 s bound, so that a node that does not answer
            // makes the store degraded (named in `/health`), not slow.
            timeout: Duration::from_secs(10),
            // A scrape answers within 2 s whatever the store does.
            fresh_wait: Duration::from_secs(1),
        }
    }
}

/// What a reader gets: the last check that answered, and whether the store is slow now.
#[derive(Debug, Clone)]
pub struct StoreReading {
    /// `memory`, `clickhouse`, … (known without asking the store).
    pub backend: &'static str,
    /// The last check that answered in time; `None` before the first.
    pub last: Option<CheckedHealth>,
    /// Set while the store is slow: how long the oldest check without an answer (in flight past
    /// the timeout, or abandoned) has been waiting, counted from its start.
    pub unanswered_for: Option<Duration>,
    /// The check timeout, for messages.
    pub timeout: Duration,
    /// Whether the last check panicked (a bug in the store): `/health` answers 500.
    pub panicked: bool,
    /// Since the monitor started (the age of the figures before any check answered).
    pub monitor_age: Duration,
}

/// One check that answered.
#[derive(Debug, Clone)]
pub struct CheckedHealth {
    /// The store's answer.
    pub health: StoreHealth,
    /// When it answered.
    pub at: DateTime<Utc>,
    /// How long ago it answered, when read.
    pub age: Duration,
    /// How long the store took to answer.
    pub took: Duration,
}

impl StoreReading {
    /// Whether the store has not answered a check within the timeout.
    pub fn is_slow(&self) -> bool {
        self.unanswered_for.is_some()
    }

    /// Seconds since the figures were checked: since the last answer, or since the monitor
    /// started when no check has answered yet.
    pub fn age(&self) -> Duration {
        self.last.as_ref().map_or(self.monitor_age, |c| c.age)
    }

    /// Why the store is slow, when it is.
    pub fn slow_error(&self) -> Option<String> {
        self.unanswered_for.map(|waited| {
            format!(
                "store health check has not answered for {} s (timeout {} s)",
                waited.as_secs(),
                self.timeout.as_secs()
            )
        })
    }

    /// The store's health as the answers show it: the last check's, not connected while the
    /// store is slow (with why), or unreachable when no check has answered yet. The totals stay
    /// those of the last answered check.
    pub fn health(&self) -> StoreHealth {
        let slow = self.slow_error();
        let Some(checked) = &self.last else {
            return StoreHealth::unreachable(
                self.backend,
                slow.unwrap_or_else(|| "store health check has not answered yet".to_owned()),
            );
        };
        let mut health = checked.health.clone();
        if let Some(slow) = slow {
            health.connected = false;
            health.error = Some(match health.error.take() {
                Some(earlier) => format!("{slow}; the last answer said: {earlier}"),
                None => slow,
            });
        }
        health
    }
}

/// Checks the store's health in the background and keeps the last result. Cheap to clone.
#[derive(Clone)]
pub struct StoreMonitor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StoreMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreMonitor")
            .field("backend", &self.inner.store.backend_name())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: SharedStore,
    settings: MonitorSettings,
    started: Instant,
    checks: Mutex<Checks>,
    /// Counts finished checks (answered, abandoned or panicked), for readers waiting on one.
    finished: watch::Sender<u64>,
    /// A reader wants a check that starts after now.
    wake: Arc<Notify>,
    stop: CancellationToken,
    spawned: std::sync::Once,
}

#[derive(Default)]
struct Checks {
    last: Option<Answered>,
    /// When the check in flight started.
    in_flight: Option<Instant>,
    /// Start of the first check since the last answer that was abandoned.
    abandoned_since: Option<Instant>,
    /// When the last finished check started.
    last_finished_start: Option<Instant>,
    panicked: bool,
}

#[derive(Clone)]
struct Answered {
    health: StoreHealth,
    at: DateTime<Utc>,
    finished: Instant,
    took: Duration,
}

impl StoreMonitor {
    /// A monitor of `store` with the default settings. Its task starts at the first read, or
    /// with [`StoreMonitor::start`].
    pub fn new(store: SharedStore) -> StoreMonitor {
        StoreMonitor::with_settings(store, MonitorSettings::default(), CancellationToken::new())
    }

    /// A monitor of `store` whose task stops when `stop` is cancelled.
    pub fn with_settings(
        store: SharedStore,
        settings: MonitorSettings,
        stop: CancellationToken,
    ) -> StoreMonitor {
        StoreMonitor {
            inner: Arc::new(Inner {
                store,
                settings,
                started: Instant::now(),
                checks: Mutex::new(Checks::default()),
                finished: watch::Sender::new(0),
                wake: Arc::new(Notify::new()),
                stop,
                spawned: std::sync::Once::new(),
            }),
        }
    }

    /// Keeps `health`, read by the caller just now, as the first check's answer (the start-up
    /// already asked the store; no need to ask again).
    pub fn seed(&self, health: StoreHealth, took: Duration) {
        let mut checks = self.inner.lock();
        if checks.last.is_none() {
            checks.last = Some(Answered {
                health,
                at: Utc::now(),
                finished: Instant::now(),
                took,
            });
        }
    }

    /// The settings.
    pub fn settings(&self) -> MonitorSettings {
        self.inner.settings
    }

    /// Starts the background task, once (inside a tokio runtime).
    pub fn start(&self) {
        self.inner.spawned.call_once(|| {
            let weak = Arc::downgrade(&self.inner);
            let stop = self.inner.stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = run(weak) => {}
                }
            });
        });
    }

    /// The kept result now, without waiting.
    pub fn kept(&self) -> StoreReading {
        self.start();
        self.inner.reading(Instant::now())
    }

    /// The result of a check started after this call, when one answers within
    /// [`MonitorSettings::fresh_wait`]; the kept result otherwise, at once while the store is
    /// slow.
    pub async fn current(&self) -> StoreReading {
        self.start();
        let asked = Instant::now();
        if self.inner.reading(asked).is_slow() {
            return self.inner.reading(Instant::now());
        }
        let mut finished = self.inner.finished.subscribe();
        self.inner.wake.notify_one();
        let fresh = async {
            loop {
                let started = self.inner.lock().last_finished_start;
                if started.is_some_and(|s| s >= asked) {
                    return;
                }
                if finished.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(self.inner.settings.fresh_wait, fresh).await;
        self.inner.reading(Instant::now())
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Checks> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reading(&self, now: Instant) -> StoreReading {
        let checks = self.lock();
        let timeout = self.settings.timeout;
        let overdue = checks
            .in_flight
            .filter(|started| now.saturating_duration_since(*started) > timeout);
        let unanswered_since = match (checks.abandoned_since, overdue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        StoreReading {
            backend: self.store.backend_name(),
            last: checks.last.as_ref().map(|a| CheckedHealth {
                health: a.health.clone(),
                at: a.at,
                age: now.saturating_duration_since(a.finished),
                took: a.took,
            }),
            unanswered_for: unanswered_since.map(|s| now.saturating_duration_since(s)),
            timeout,
            panicked: checks.panicked,
            monitor_age: now.saturating_duration_since(self.started),
        }
    }
}

/// The checks, one at a time, until the monitor is dropped.
async fn run(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        check(&inner).await;
        let interval = inner.settings.interval;
        // Not holding the monitor while waiting: dropping the last handle ends the task.
        let wake = inner.wake.clone();
        drop(inner);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wake.notified() => {}
        }
    }
}

/// One check: the store's health within the timeout, kept.
async fn check(inner: &Inner) {
    let started = Instant::now();
    inner.lock().in_flight = Some(started);
    // Its own task: a check that panics is a failed check, not the end of the monitor, and one
    // that does not answer in time is aborted.
    let store = inner.store.clone();
    let mut task = tokio::spawn(async move { store.health().await });
    let outcome = tokio::time::timeout(inner.settings.timeout, &mut task).await;
    let took = started.elapsed();
    let mut checks = inner.lock();
    checks.in_flight = None;
    checks.last_finished_start = Some(started);
    match outcome {
        Ok(Ok(health)) => {
            if checks.abandoned_since.take().is_some() {
                tracing::info!(
                    took_ms = took.as_millis() as u64,
                    "store health check answers in time again"
                );
            }
            checks.panicked = false;
            checks.last = Some(Answered {
                health,
                at: Utc::now(),
                finished: Instant::now(),
                took,
            });
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store health check failed");
            checks.panicked = e.is_panic();
        }
        Err(_) => {
            task.abort();
            if checks.abandoned_since.is_none() {
                tracing::warn!(
                    timeout_s = inner.settings.timeout.as_secs(),
                    "store health check did not answer in time: the store is slow"
                );
            }
            checks.abandoned_since.get_or_insert(started);
        }
    }
    drop(checks);
    inner.finished.send_modify(|n| *n += 1);
}
