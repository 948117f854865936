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

use std::path::{Path, PathBuf};

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

/// What [`record_standalone`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// It wrote a new file here.
    Written(PathBuf),
    /// A file was there already, kept as it is.
    Kept(PathBuf),
}

/// Records where `hemostat standalone` is, the coordinator's address `coordinator` and the certificates
/// folder `certs_dir` (made absolute), in a new configuration file at `path`, so that the CLI's commands
/// find them from any folder. An existing file is never touched.
pub fn record_standalone(path: &Path, coordinator: &str, certs_dir: &Path) -> std::io::Result<Recorded> {
    use std::io::Write;
    if path.exists() {
        return Ok(Recorded::Kept(path.to_owned()));
    }
    let certs_dir = std::path::absolute(certs_dir)?;
    let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let text = format!(
        "# Written by `hemostat standalone` on its first run: where its coordinator and certificates are.\n\
         # Edit or remove it freely; standalone never overwrites it.\n\
         coordinator = {}\n\
         certs_dir = {}\n",
        quoted(coordinator),
        quoted(&certs_dir.to_string_lossy()),
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            Ok(Recorded::Written(path.to_owned()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(Recorded::Kept(path.to_owned())),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
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
    fn standalone_records_where_it_is_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hemostat/config.toml");
        let certs = dir.path().join("data \"x\"/certs");
        assert_eq!(record_standalone(&file, "localhost:50051", &certs).unwrap(), Recorded::Written(file.clone()));
        let text = std::fs::read_to_string(&file).unwrap();
        let settings = parse(&text, &file).unwrap();
        assert_eq!(settings.coordinator, "localhost:50051");
        assert_eq!(settings.tls.ca, certs.join("ca.pem"), "{text}");

        std::fs::write(&file, "coordinator = \"mine:1\"\n").unwrap();
        assert_eq!(record_standalone(&file, "localhost:2", &certs).unwrap(), Recorded::Kept(file.clone()));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "coordinator = \"mine:1\"\n");
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
