//! What HemoStat's programs tell their operators about themselves, shared by `hemostat-coordinator`,
//! `hemostat-node` and `hemostat`: logs (here) and Prometheus metrics ([`exposition`]).
//!
//! `LOG_LEVEL` (a level such as `info`, or a full `tracing` filter such as `hemostat_node=debug,info`) and
//! `LOG_FORMAT` (`text` or `json`, as the original) choose what is written to standard error.

pub mod exposition;

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A `LOG_FORMAT` value that is neither `text` nor `json`.
#[derive(Debug, thiserror::Error)]
#[error("unknown log format {0:?}: expected text or json")]
pub struct UnknownLogFormat(String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownLogFormat(s.to_owned())),
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `LOG_LEVEL` is not a level or filter.
    #[error("invalid LOG_LEVEL {level:?}: {source}")]
    Level {
        /// The value given.
        level: String,
        /// The parser's complaint.
        source: tracing_subscriber::filter::ParseError,
    },
    /// `LOG_FORMAT` is unknown.
    #[error(transparent)]
    Format(#[from] UnknownLogFormat),
}

/// Installs the global subscriber from `LOG_LEVEL` (default `info`) and `LOG_FORMAT` (default `text`).
/// A second call in one process does nothing.
pub fn init_from_env() -> Result<(), LoggingError> {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned());
    let format = std::env::var("LOG_FORMAT").ok().map(|f| f.parse()).transpose()?.unwrap_or_default();
    init(&level, format)
}

/// Installs the global subscriber with this filter and format. A second call in one process does nothing.
pub fn init(level: &str, format: LogFormat) -> Result<(), LoggingError> {
    let filter = EnvFilter::builder()
        .parse(level.to_ascii_lowercase())
        .map_err(|source| LoggingError::Level { level: level.to_owned(), source })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C): the programs' cue for a clean shutdown.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a signal handler can be installed");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
