//! The github-stats server as a library: configuration ([`config`]), wiring ([`startup`]), the
//! REST API ([`api`]), metrics for Prometheus ([`prometheus`]) and logging ([`telemetry`]). `main.rs` only parses the configuration, sets
//! up logging and calls [`startup::Application`]; the tests build the same application.

pub mod api;
pub mod chart;
pub mod config;
pub mod listener;
pub mod prometheus;
pub mod startup;
pub mod telemetry;

pub use config::Config;
pub use startup::{Application, StartupError};
