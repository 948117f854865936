//! The CLI's configuration file: TOML, in the user's config directory
//! (`$XDG_CONFIG_HOME/hemostat/config.toml`, else `~/.config/hemostat/config.toml`), or wherever `--config`
//! (or `HEMOSTAT_CONFIG`) says. Keys are the long flags with underscores:
//!
//! ```toml
//! coordinator = "coord.example:50051"
//! coordinator_name = "coordinator"   # the name in the coordinator's certificate, if not its host
//! certs_dir = "certs"                # ca.pem, <cert_name>.pem, <cert_name>-key.pem
//! cert_name = "alice"
//! # or name the three files directly:
//! ca = "/etc/hemostat/ca.pem"
//! cert = "alice.pem"
//! key = "alice-key.pem"
//! ```
//!
//! Relative paths are relative to the file's folder. An unknown key is an error that names the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde::Deserialize;

/// The settings a configuration file may hold; each is optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The coordinator, `host:port` or `https://host:port`.
    pub coordinator: Option<String>,
    /// The name the coordinator's certificate carries.
    pub coordinator_name: Option<String>,
    /// Folder with ca.pem and the operator certificate.
    pub certs_dir: Option<PathBuf>,
    /// The operator certificate's file stem.
    pub cert_name: Option<String>,
    /// The CA certificate file.
    pub ca: Option<PathBuf>,
    /// The operator certificate file.
    pub cert: Option<PathBuf>,
    /// The operator's private key file.
    pub key: Option<PathBuf>,
}

impl ConfigFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses `text`, the contents of the file at `path` (for messages and relative paths).
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let mut file: ConfigFile = toml::from_str(text).map_err(|error| {
            let line = error.span().map(|span| text[..span.start].matches('\n').count() + 1);
            let at = line.map(|line| format!(", line {line}")).unwrap_or_default();
            anyhow!("configuration file {}{at}: {}", path.display(), error.message().trim())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for value in [&mut file.certs_dir, &mut file.ca, &mut file.cert, &mut file.key].into_iter().flatten() {
            if value.is_relative() {
                *value = base.join(&*value);
            }
        }
        Ok(file)
    }
}

/// Where the configuration file is looked for when neither `--config` nor `HEMOSTAT_CONFIG` says:
/// `$XDG_CONFIG_HOME/hemostat/config.toml` (when set to an absolute path), else
/// `$HOME/.config/hemostat/config.toml`; `None` without either variable.
pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let config_home = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config_home.join("hemostat").join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_and_relative_paths_follow_the_file() {
        let text = "coordinator = \"coord:50051\"\ncerts_dir = \"certs\"\nca = \"/etc/ca.pem\"\n";
        let file = ConfigFile::parse(text, Path::new("/home/a/.config/hemostat/config.toml")).unwrap();
        assert_eq!(file.coordinator.as_deref(), Some("coord:50051"));
        assert_eq!(file.certs_dir, Some(PathBuf::from("/home/a/.config/hemostat/certs")));
        assert_eq!(file.ca, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(file.cert, None);
    }

    #[test]
    fn an_unknown_key_names_the_file_and_the_line() {
        let text = "coordinator = \"coord:50051\"\ncoordinatr_name = \"x\"\n";
        let error = ConfigFile::parse(text, Path::new("/etc/hemostat.toml")).unwrap_err().to_string();
        assert!(
            error.starts_with("configuration file /etc/hemostat.toml, line 2: unknown field `coordinatr_name`"),
            "{error}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
    }

    #[test]
    fn the_default_path_is_in_the_users_config_directory() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        let xdg = env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(default_path(&xdg), Some(PathBuf::from("/x/hemostat/config.toml")));
        let relative_xdg = env(&[("XDG_CONFIG_HOME", "x"), ("HOME", "/h")]);
        assert_eq!(default_path(&relative_xdg), Some(PathBuf::from("/h/.config/hemostat/config.toml")));
        assert_eq!(default_path(&env(&[])), None);
    }
}
