//! The CLI's configuration file: TOML, in the user's config directory
//! (`$XDG_CONFIG_HOME/hemostat/config.toml`, else `~/.config/hemostat/config.toml`), or wherever `--config`
//! (or `HEMOSTAT_CONFIG`) says. Keys are the long flags with underscores (the connection settings of
//! [`crate::connection`]):
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

use std::path::PathBuf;

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
    use std::path::Path;

    use hemostat_settings::Layers;

    use super::*;
    use crate::connection::{ConnectionArgs, ConnectionSettings, Settings};

    /// The settings of the file `text` at `path`, with no flags and no environment.
    fn parse(text: &str, path: &Path) -> Result<Settings, hemostat_settings::ConfigError> {
        let layers = Layers::parse(&|_| None, path, text, &[ConnectionSettings::KEYS])?;
        Ok(Settings::from_settings(ConnectionSettings::resolve(&ConnectionArgs::default(), &layers)?, None))
    }

    #[test]
    fn keys_are_read_and_relative_paths_follow_the_file() {
        let text = "coordinator = \"coord:50051\"\ncerts_dir = \"certs\"\nca = \"/etc/ca.pem\"\n";
        let file = parse(text, Path::new("/home/a/.config/hemostat/config.toml")).unwrap();
        assert_eq!(file.coordinator, "coord:50051");
        assert_eq!(file.tls.key, PathBuf::from("/home/a/.config/hemostat/certs/operator-key.pem"));
        assert_eq!(file.tls.ca, PathBuf::from("/etc/ca.pem"));
        assert_eq!(file.tls.cert, PathBuf::from("/home/a/.config/hemostat/certs/operator.pem"));
    }

    #[test]
    fn an_unknown_key_names_the_file_and_the_line() {
        let text = "coordinator = \"coord:50051\"\ncoordinatr_name = \"x\"\n";
        let error = parse(text, Path::new("/etc/hemostat.toml")).unwrap_err().to_string();
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
