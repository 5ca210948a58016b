//! Wiring: configuration → store → (poller + ingest loop) → HTTP server.
//!
//! [`Application::build`] opens the store, starts the background work and binds the listener
//! (port 0 picks a free port: see [`Application::port`]); [`Application::run_until_stopped`]
//! serves until the [`shutdown token`](Application::shutdown_token) is cancelled, then stops
//! accepting, lets requests in flight finish, stops the poller and flushes the store, all within
//! [`SHUTDOWN_BUDGET`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use github_stats_core::source::gharchive::parse_hour;
use github_stats_core::{
    EventSource, GhArchiveConfig, GhArchiveSource, GitHubConfig, GitHubPoller, Ingest,
    IngestConfig, MergedSource, OpenedStore, SharedStore, SourceError, StoreConfig, StoreError,
};
use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{EndpointExt, Response, Server};
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, HttpSettings};
use crate::config::Config;
use crate::listener::{ConnectionLimits, GuardedAcceptor, open_files_limit};
use crate::prometheus::Exporter;
use crate::store_monitor::{MonitorSettings, StoreMonitor};

/// The whole shutdown, from the signal to the return of [`Application::run_until_stopped`].
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(10);
/// Of [`SHUTDOWN_BUDGET`], how long requests in flight may take to finish.
pub const REQUEST_DRAIN: Duration = Duration::from_secs(5);
/// Of [`SHUTDOWN_BUDGET`], what is kept for the final store flush.
pub const FLUSH_RESERVE: Duration = Duration::from_millis(1000);

/// Descriptors kept for what is not a connection (the store's files, ClickHouse and GitHub
/// connections, the runtime): the cap should leave at least this many below `ulimit -n`.
pub const OPEN_FILES_RESERVE: u64 = 64;

/// Why the application could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The store could not be opened.
    #[error("cannot open the {backend} store")]
    Store {
        /// `memory` or `clickhouse`.
        backend: &'static str,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The configuration asks for something this build cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The GitHub poller could not be set up (bad API URL, token, events directory).
    #[error("cannot set up the GitHub poller")]
    Poller(#[source] SourceError),
    /// The GH Archive follower could not be set up (bad URL, a missing mirror directory).
    #[error("cannot set up the GH Archive follower")]
    Archive(#[source] SourceError),
    /// The listener could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// `BIND_ADDRESS`.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error")]
    Serve(#[source] std::io::Error),
    /// A background task could not be joined.
    #[error("background task failed: {0}")]
    Task(String),
}

/// The running pieces: store, background tasks, bound listener.
pub struct Application {
    acceptor: GuardedAcceptor<TcpAcceptor>,
    limits: ConnectionLimits,
    address: SocketAddr,
    endpoint: BoxEndpoint<'static, Response>,
    store: SharedStore,
    shutdown: CancellationToken,
    background: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .field("backend", &self.store.backend_name())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the store, starts the poller and ingest loop (unless `no_poll`), binds the listener.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let store_config = config
            .store
            .store_config()
            .map_err(|e| StartupError::Unsupported(e.join("; ")))?;
        let cors = config
            .cors_policy()
            .map_err(|e| StartupError::Unsupported(e.join("; ")))?;
        let store = open_store(&store_config).await?;
        let checked = Instant::now();
        let health = store.health().await;
        let took = checked.elapsed();
        tracing::info!(
            backend = store.backend_name(),
            total_events = health.total_events,
            last_event_at = ?health.last_event_at,
            "store open"
        );
        let shutdown = CancellationToken::new();
        let mut state = AppState::new(store.clone());
        // /health and /metrics read the store's health from here, never from the store itself.
        state.store_health = StoreMonitor::with_settings(
            store.clone(),
            MonitorSettings::default(),
            shutdown.clone(),
        );
        state.store_health.seed(health, took);
        state.store_health.start();
        let mut exporter = Exporter::new();
        let mut background = Vec::new();
        // The sources: the poller, the GH Archive follower, both through one ingest loop.
        let mut sources: Vec<(String, Arc<dyn EventSource>)> = Vec::new();
        if config.no_poll {
            tracing::info!("polling disabled (--no-poll)");
        } else {
            let poller = Arc::new(
                GitHubPoller::open(github_config(&config), &*store)
                    .await
                    .map_err(StartupError::Poller)?,
            );
            let poller_status = poller.status();
            exporter.register_poller(poller_status.clone(), chrono::Utc::now());
            state.poller = Some(Arc::new(move || poller_status.snapshot()));
            tracing::info!(
                api_url = %config.github_api_url,
                authenticated = config.github_token.is_some(),
                "polling GitHub's public events"
            );
            sources.push(("poller".to_owned(), poller));
        }
        if let Some(archive) = archive_config(&config)? {
            tracing::info!(
                from = %archive.from,
                url = %archive.base_url,
                "following GH Archive"
            );
            let follower = Arc::new(
                GhArchiveSource::open(archive, &*store)
                    .await
                    .map_err(StartupError::Archive)?,
            );
            let follower_status = follower.status();
            exporter.register_archive_follower(follower_status.clone());
            state.archive = Some(Arc::new(move || follower_status.snapshot()));
            sources.push(("gharchive".to_owned(), follower));
        }
        if sources.is_empty() {
            tracing::info!("no source (--no-poll, GHARCHIVE_FROM unset): serving the API only");
        } else {
            let source: Arc<dyn EventSource> = if sources.len() == 1 {
                sources.pop().expect("one source").1
            } else {
                Arc::new(MergedSource::new(sources))
            };
            let mut ingest_config = IngestConfig::default();
            // Inside SHUTDOWN_BUDGET, with the final flush below.
            ingest_config.shutdown_timeout = Duration::from_secs(7);
            ingest_config.store_flush_timeout = Duration::from_secs(1);
            let ingest = Ingest::spawn(source, store.clone(), ingest_config, shutdown.clone());
            let ingest_status = ingest.status();
            exporter.register_ingest(ingest_status.clone());
            state.ingest = Some(Arc::new(move || ingest_status.snapshot()));
            background.push((
                "ingest",
                tokio::spawn(async move {
                    match ingest.join().await {
                        Ok(report) => tracing::info!(
                            inserted = report.inserted,
                            duplicates = report.duplicates,
                            source_errors = report.source_errors,
                            unflushed = report.unflushed,
                            "ingest loop stopped"
                        ),
                        Err(e) => tracing::warn!(error = %e, "ingest loop stopped"),
                    }
                }),
            ));
        }

        let address = config.bind_address.clone();
        let acceptor = TcpListener::bind(address.as_str())
            .into_acceptor()
            .await
            .map_err(|source| StartupError::Bind {
                address: address.clone(),
                source,
            })?;
        let bound = acceptor
            .local_addr()
            .into_iter()
            .find_map(|a| a.as_socket_addr().copied())
            .ok_or_else(|| StartupError::Bind {
                address: address.clone(),
                source: std::io::Error::other("the listener has no socket address"),
            })?;
        let limits = config.connection_limits();
        if let Some(open_files) = open_files_limit()
            && limits.max_connections as u64 + OPEN_FILES_RESERVE > open_files
        {
            tracing::warn!(
                max_connections = limits.max_connections,
                open_files,
                "MAX_CONNECTIONS is near the open-file limit (ulimit -n): descriptors may run out \
                 first (accepting is then retried with backoff); raise the limit or lower \
                 MAX_CONNECTIONS"
            );
        }
        tracing::info!(
            address = %bound,
            max_connections = limits.max_connections,
            header_read_timeout_s = limits.header_read_timeout.as_secs(),
            idle_timeout_s = limits.idle_timeout.as_secs(),
            write_timeout_s = limits.write_timeout.as_secs(),
            "listening"
        );
        let acceptor = GuardedAcceptor::new(acceptor, limits);
        exporter.register_connections(acceptor.connections());
        state.exporter = Arc::new(exporter);
        let settings = HttpSettings {
            request_timeout: config.request_timeout(),
            cors,
        };
        let endpoint = api::app_with(state, settings).boxed();
        Ok(Application {
            acceptor,
            limits,
            address: bound,
            endpoint,
            store,
            shutdown,
            background,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The store the application serves.
    pub fn store(&self) -> SharedStore {
        self.store.clone()
    }

    /// Cancelling this token stops the application (what SIGINT and SIGTERM do in `main`).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let token = self.shutdown.clone();
        // When the shutdown began: the background tasks (cancelled by the same token) stop while
        // the server drains, and the whole shutdown fits in SHUTDOWN_BUDGET from that moment.
        let cancelled_at = Arc::new(std::sync::OnceLock::new());
        let signal = {
            let token = token.clone();
            let cancelled_at = cancelled_at.clone();
            async move {
                token.cancelled().await;
                let _ = cancelled_at.set(Instant::now());
            }
        };
        let served = Server::new_with_acceptor(self.acceptor)
            .idle_timeout(self.limits.idle_timeout)
            .run_with_graceful_shutdown(self.endpoint, signal, Some(REQUEST_DRAIN))
            .await;
        // The server returns on shutdown, or on an error: stop the background work either way.
        token.cancel();
        let started = *cancelled_at.get_or_init(Instant::now);
        tracing::info!("shutting down: stopping background tasks and flushing the store");
        for (name, task) in self.background {
            let left = SHUTDOWN_BUDGET
                .saturating_sub(FLUSH_RESERVE)
                .saturating_sub(started.elapsed());
            match tokio::time::timeout(left, task).await {
                Ok(Ok(())) => tracing::info!(task = name, "stopped"),
                Ok(Err(e)) => tracing::error!(task = name, error = %e, "task failed"),
                Err(_) => tracing::error!(task = name, "did not stop in time, abandoned"),
            }
        }
        let left = SHUTDOWN_BUDGET.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, self.store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "flushing the store failed"),
            Err(_) => tracing::error!("flushing the store did not finish in time"),
        }
        tracing::info!(
            shutdown_ms = started.elapsed().as_millis() as u64,
            "stopped"
        );
        served.map_err(StartupError::Serve)
    }
}

/// Opens the store. An outage at start is waited out, like one later on: ClickHouse often starts
/// after us (compose, systemd). Configuration errors (bad names, the native port) fail now.
async fn open_store(config: &StoreConfig) -> Result<SharedStore, StartupError> {
    let mut retry_in = Duration::from_secs(1);
    let mut attempt: u32 = 1;
    let opened = loop {
        match config.open().await {
            Ok(opened) => break opened,
            // Only ClickHouse can be unavailable.
            Err(source) if source.is_unavailable() => {
                tracing::warn!(
                    attempt,
                    retry_in_s = retry_in.as_secs(),
                    error = %source,
                    "clickhouse unreachable at start, retrying"
                );
                tokio::time::sleep(retry_in).await;
                retry_in = (retry_in * 2).min(Duration::from_secs(30));
                attempt += 1;
            }
            Err(source) => {
                return Err(StartupError::Store {
                    backend: config.backend_name(),
                    source,
                });
            }
        }
    };
    if let OpenedStore::Memory(store) = &opened
        && let Some(dir) = store.data_dir()
    {
        tracing::info!(
            data_dir = %dir.display(),
            records = store.replay_report().records,
            "memory store replayed its event file"
        );
    }
    Ok(opened.shared())
}

/// The GH Archive follower's settings, when `GHARCHIVE_FROM` asks for it.
fn archive_config(config: &Config) -> Result<Option<GhArchiveConfig>, StartupError> {
    let Some(from) = &config.gharchive_from else {
        return Ok(None);
    };
    let invalid = |what: String| StartupError::Unsupported(what);
    let from = parse_hour(from, Utc::now()).map_err(|e| invalid(format!("GHARCHIVE_FROM: {e}")))?;
    let mut archive = GhArchiveConfig::new(from).with_url(config.archive.url().map_err(invalid)?);
    archive.missing_after = config.archive.missing_after().map_err(invalid)?;
    archive.state_file = Some(config.gharchive_state_path());
    Ok(Some(archive))
}

/// The poller's settings from the server's configuration.
pub(crate) fn github_config(config: &Config) -> GitHubConfig {
    let mut github = GitHubConfig::new(config.github_api_url.clone());
    github.token = config.github_token.clone();
    github.state_file = Some(config.client_state_path());
    github.events_dir = config
        .save_events_to_files
        .then(|| config.events_directory.clone());
    // Both were checked by `Config::validate`.
    github.save_format = config.save_format().unwrap_or_default();
    github.mode = config.poll_mode().unwrap_or_default();
    github.reserve = config.poll_reserve;
    github.min_poll_interval = Duration::from_millis(config.poll_min_interval_ms);
    github
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM from the moment it is called (inside the runtime),
/// and returns a future that resolves at the first of them. Called before serving: a listener
/// installed only when a spawned task is first polled would leave a moment in which SIGTERM
/// still killed the process outright, without the graceful shutdown.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::error!(error = %e, signal = name, "cannot listen for the signal");
                None
            }
        };
        let mut interrupt = listen(SignalKind::interrupt(), "SIGINT");
        let mut terminate = listen(SignalKind::terminate(), "SIGTERM");
        async move {
            let interrupted = async {
                match interrupt.as_mut() {
                    Some(stream) => stream.recv().await,
                    None => std::future::pending().await,
                }
            };
            let terminated = async {
                match terminate.as_mut() {
                    Some(stream) => stream.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = interrupted => tracing::info!(signal = "SIGINT", "shutdown requested"),
                _ = terminated => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
        tracing::info!(signal = "ctrl-c", "shutdown requested");
    }
}
