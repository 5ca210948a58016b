//! `github-stats-server`: parses the configuration, sets up logging, and runs the application
//! until SIGINT or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use github_stats_server::startup::shutdown_signal;
use github_stats_server::{Application, Config};

fn main() -> ExitCode {
    // Before any thread starts: `--dotenv` sets environment variables.
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => return ExitCode::from(e.report("github-stats-server")),
    };
    config.log.init();
    tracing::debug!(?config, "configuration");
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain on one line: "cannot open the memory store: data directory …".
            eprintln!("github-stats-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(config).await?;
        let token = app.shutdown_token();
        // Listening from here on, before the first request is served.
        let signal = shutdown_signal();
        tokio::spawn(async move {
            signal.await;
            token.cancel();
        });
        app.run_until_stopped().await?;
        Ok(())
    })
}
