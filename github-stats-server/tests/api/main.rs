//! Tests of github-stats-server: one binary, a module per area.
//!
//! In process through poem's `TestClient` (`metrics`, `debug`, `health`, `errors`, `openapi`,
//! `visualization`), and end to end over a socket, in process (`lifecycle`, and `dashboard` in
//! headless chromium) and with the real binary (`binary`).

mod binary;
mod connections;
mod container;
mod cors;
mod coverage;
mod dashboard;
mod debug;
mod dropped_database;
mod errors;
mod exposition;
mod gharchive;
mod health;
mod helpers;
mod lifecycle;
mod metrics;
mod observability;
mod openapi;
mod replicated;
mod slow_store;
mod visualization;
