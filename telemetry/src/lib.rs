//! What HemoStat's programs tell their operators about themselves, shared by `hemostat-coordinator`,
//! `hemostat-node` and `hemostat`: logs (here) and Prometheus metrics ([`exposition`]).
//!
//! `LOG_LEVEL` (a level such as `info`, or levels by target such as `hemostat_node=debug,hyper=off,info`;
//! `tracing`'s span and field filters are not taken, and keep the programs free of a regex engine) and
//! `LOG_FORMAT` (`text` or `json`, as the original) choose what is written to standard error.

pub mod exposition;

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    /// A part of `LOG_LEVEL` without `=` is not a level: a bare name would mean "everything from the target of
    /// that name, and nothing else".
    #[error(
        "invalid LOG_LEVEL {level:?}: {part:?} is not a level (off, error, warn, info, debug, trace) nor target=level"
    )]
    NotALevel {
        /// The value given.
        level: String,
        /// The part that is not a level.
        part: String,
    },
    /// `LOG_FORMAT` is unknown.
    #[error(transparent)]
    Format(#[from] UnknownLogFormat),
}

/// Installs the global subscriber from `LOG_LEVEL` (default, and when empty, `info`) and `LOG_FORMAT` (default `text`).
/// A second call in one process does nothing.
pub fn init_from_env() -> Result<(), LoggingError> {
    let level = std::env::var("LOG_LEVEL").ok().filter(|level| !level.trim().is_empty());
    let level = level.unwrap_or_else(|| "info".to_owned());
    let format = std::env::var("LOG_FORMAT").ok().map(|f| f.parse()).transpose()?.unwrap_or_default();
    init(&level, format)
}

/// Installs the global subscriber with this filter and format. A second call in one process does nothing.
pub fn init(level: &str, format: LogFormat) -> Result<(), LoggingError> {
    if let Some(part) =
        level.split(',').map(str::trim).find(|part| !part.contains('=') && part.parse::<LevelFilter>().is_err())
    {
        return Err(LoggingError::NotALevel { level: level.to_owned(), part: part.to_owned() });
    }
    let filter: Targets =
        level.to_ascii_lowercase().parse().map_err(|source| LoggingError::Level { level: level.to_owned(), source })?;
    // Every level reaches the filter, which alone decides (the builder's own default would stop at info).
    let builder = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.finish().with(filter).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).finish().with(filter).try_init(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_level_that_is_not_levels_by_target_is_refused_and_said_back() {
        for bad in ["verbose", "hemostat_node=loud", "[span{field=1}]=debug", "a=b=c"] {
            match init(bad, LogFormat::Text) {
                Err(LoggingError::Level { level, .. } | LoggingError::NotALevel { level, .. }) => {
                    assert_eq!(level, bad)
                }
                other => panic!("{bad:?} was taken: {other:?}"),
            }
        }
        // Levels, by target or not, in any case (the first call installs the subscriber; later ones check only).
        for good in ["INFO", "hemostat_node=debug,hyper=off,warn", "trace"] {
            assert!(init(good, LogFormat::Text).is_ok(), "{good}");
        }
    }
}
