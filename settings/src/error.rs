//! What can be wrong with a configuration, and where a value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag, e.g. `--cooldown-seconds`.
    Flag(String),
    /// An environment variable.
    Env(&'static str),
    /// A key of the configuration file.
    File {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// The line the key is on.
        line: usize,
    },
    /// The setting's default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::File { path, key, line } => {
                write!(f, "key {key} of the configuration file {}, line {line}", path.display())
            }
            Source::Default => f.write_str("default"),
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not TOML, or has a key that is no setting.
    #[error("configuration file {path}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    File {
        /// The file.
        path: PathBuf,
        /// Where, when known.
        line: Option<usize>,
        /// What is wrong (one line).
        message: String,
    },
    /// A setting's value does not parse, or is not acceptable.
    #[error("{setting} ({origin}): {message}")]
    Invalid {
        /// The setting's name: its (first) environment variable, e.g. `RESPONDER_COOLDOWN_SECONDS`.
        setting: &'static str,
        /// Where the value came from.
        origin: Source,
        /// What is wrong with it.
        message: String,
    },
}
