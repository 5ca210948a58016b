//! The github-stats server as a library: configuration ([`config`], whose store, GH Archive and
//! logging settings come from `github-stats-cli`, shared with the backfill), wiring
//! ([`startup`]), the REST API ([`api`]), metrics for Prometheus ([`prometheus`]) and the store's
//! health checked in the background for both ([`store_monitor`]). `main.rs`
//! only parses the configuration, sets up logging and calls [`startup::Application`]; the tests
//! build the same application.

pub mod api;
pub mod chart;
pub mod config;
pub mod listener;
pub mod prometheus;
pub mod startup;
pub mod store_monitor;

pub use config::Config;
pub use startup::{Application, StartupError};
