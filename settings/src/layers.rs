//! The layers a setting is read from (flag, environment, file, default) and the value with its source.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Source};
use crate::value::Value;

/// One setting, as [`crate::settings!`] declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Its file key, e.g. `cooldown_seconds`; its flag is the key with dashes.
    pub key: &'static str,
    /// Its environment variables, tried in order; the first is the setting's name in messages.
    pub env: &'static [&'static str],
}

impl Setting {
    /// The setting's name in messages: its first environment variable.
    pub fn name(&self) -> &'static str {
        self.env[0]
    }

    /// Its flag, e.g. `--cooldown-seconds`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }
}

/// A setting's value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
    /// The setting.
    pub setting: Setting,
}

impl<T> Sourced<T> {
    /// The setting's default.
    pub fn default_of(setting: Setting, value: T) -> Self {
        Sourced { value, source: Source::Default, setting }
    }

    /// The value, without its source.
    pub fn into_value(self) -> T {
        self.value
    }

    /// Whether the value is the setting's default (nothing configured it).
    pub fn is_default(&self) -> bool {
        self.source == Source::Default
    }

    /// The error that says this value is not acceptable, and why.
    pub fn invalid(&self, message: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid { setting: self.setting.name(), origin: self.source.clone(), message: message.to_string() }
    }

    /// The value if `acceptable` holds for it, else an error naming the setting, its source and `message`.
    pub fn check(self, acceptable: impl FnOnce(&T) -> bool, message: impl fmt::Display) -> Result<T, ConfigError> {
        if acceptable(&self.value) { Ok(self.value) } else { Err(self.invalid(message)) }
    }

    /// The value converted by `convert`; its error becomes one naming the setting and its source.
    pub fn try_map<U, E: fmt::Display>(self, convert: impl FnOnce(T) -> Result<U, E>) -> Result<U, ConfigError> {
        let Sourced { value, source, setting } = self;
        convert(value).map_err(|e| ConfigError::Invalid {
            setting: setting.name(),
            origin: source,
            message: e.to_string(),
        })
    }
}

impl Sourced<PathBuf> {
    /// The path, made relative to the configuration file's folder when it came from the file and is
    /// relative.
    pub fn relative_to_file(self) -> PathBuf {
        match &self.source {
            Source::File { path, .. } if self.value.is_relative() => {
                path.parent().unwrap_or(Path::new(".")).join(&self.value)
            }
            _ => self.value,
        }
    }
}

impl<T> Deref for Sourced<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// The process environment, an empty variable read as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The configuration file named by `flag` (`--config`), else by `HEMOSTAT_CONFIG` in `env`.
pub fn config_path(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    flag.map(Path::to_owned).or_else(|| env("HEMOSTAT_CONFIG").filter(|v| !v.trim().is_empty()).map(PathBuf::from))
}

/// A configuration file's values, with the line of each key.
#[derive(Debug)]
struct FileLayer {
    path: PathBuf,
    values: BTreeMap<String, (toml::Value, usize)>,
}

/// The layers below the flags: an environment and, optionally, a configuration file.
pub struct Layers<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<FileLayer>,
}

impl<'a> Layers<'a> {
    /// The environment `env` (a variable's value, `None` when unset) and the file at `file`, whose keys
    /// must each be one of `keys` (the settings of every program that reads it).
    pub fn read(
        env: &'a dyn Fn(&str) -> Option<String>,
        file: Option<&Path>,
        keys: &[&[&str]],
    ) -> Result<Self, ConfigError> {
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                Self::parse(env, path, &text, keys)
            }
            None => Ok(Layers { env, file: None }),
        }
    }

    /// The environment `env` and the configuration file `text`, read from `path` (for messages and
    /// relative paths), whose keys must each be one of `keys`.
    pub fn parse(
        env: &'a dyn Fn(&str) -> Option<String>,
        path: &Path,
        text: &str,
        keys: &[&[&str]],
    ) -> Result<Self, ConfigError> {
        Ok(Layers { env, file: Some(parse_file(path, text, keys)?) })
    }

    /// The configuration file that was read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// `setting` from the first layer that has it: the flag's value `flag`, the environment, the file;
    /// `None` when none has it.
    pub fn pick<T: Value>(&self, setting: Setting, flag: Option<T>) -> Result<Option<Sourced<T>>, ConfigError> {
        if let Some(value) = flag {
            return Ok(Some(Sourced { value, source: Source::Flag(setting.flag()), setting }));
        }
        for var in setting.env {
            if let Some(text) = (self.env)(var).filter(|text| !text.trim().is_empty()) {
                let source = Source::Env(var);
                return match T::parse(&text) {
                    Ok(value) => Ok(Some(Sourced { value, source, setting })),
                    Err(message) => Err(ConfigError::Invalid { setting: setting.name(), origin: source, message }),
                };
            }
        }
        if let Some(file) = &self.file
            && let Some((value, line)) = file.values.get(setting.key)
        {
            let source = Source::File { path: file.path.clone(), key: setting.key, line: *line };
            return match T::from_toml(value) {
                Ok(value) => Ok(Some(Sourced { value, source, setting })),
                Err(message) => Err(ConfigError::Invalid { setting: setting.name(), origin: source, message }),
            };
        }
        Ok(None)
    }
}

/// Parses the configuration file `text` (at `path`) and checks each key against `keys`.
fn parse_file(path: &Path, text: &str, keys: &[&[&str]]) -> Result<FileLayer, ConfigError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let error = |line: Option<usize>, message: String| ConfigError::File {
        path: path.to_owned(),
        line,
        message: message.replace(['\r', '\n'], " ").trim().to_owned(),
    };
    let table: BTreeMap<toml::Spanned<String>, toml::Value> =
        toml::from_str(text).map_err(|e| error(e.span().map(|s| line_of(s.start)), e.message().to_owned()))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let line = line_of(key.span().start);
        let key = key.into_inner();
        if !keys.iter().any(|keys| keys.contains(&key.as_str())) {
            let shown: String = key.chars().take(64).collect();
            return Err(error(Some(line), format!("unknown field `{}`", shown.escape_debug())));
        }
        values.insert(key, (value, line));
    }
    Ok(FileLayer { path: path.to_owned(), values })
}
