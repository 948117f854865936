//! HemoStat's one configuration mechanism, for `hemostat-coordinator`, `hemostat-node`, `hemostat
//! standalone` and the CLI's connection settings.
//!
//! A program declares its settings once, with [`settings!`]: for each, its doc, its file key (the field's
//! name; the flag is the key with dashes, `--cooldown-seconds`), its environment variable(s), its type and
//! its default. From that one declaration come the clap flags (with `[env: ...]` in their help), the
//! accepted file keys, and the resolution of each setting from the first layer that has it:
//!
//! 1. the flag,
//! 2. the environment variable (an empty value counts as unset),
//! 3. the TOML file (`--config` or `HEMOSTAT_CONFIG`; an unknown key is an error naming the file, the line
//!    and the key),
//! 4. the default.
//!
//! Each resolved value is a [`Sourced`]: it remembers where it came from, so a bad value, whether it does
//! not parse or fails a check, is a [`ConfigError`] that names the setting and its source.

mod declare;
mod endpoint;
mod error;
mod layers;
mod value;

pub use endpoint::Endpoint;
pub use error::{ConfigError, Source};
pub use layers::{Layers, Setting, Sourced, config_path, process_env};
pub use value::{Value, flag_help, flag_value};

#[cfg(test)]
mod tests;
