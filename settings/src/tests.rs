//! The mechanism on a small declaration: precedence, unknown keys, bad values named with their source.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{ConfigError, Layers, Source};

crate::settings! {
    /// Flags of a test program.
    #[derive(Debug, Default, clap::Parser)]
    #[command(name = "test-program")]
    struct TestArgs {
        /// A configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    }

    /// The settings of a test program.
    #[derive(Debug)]
    struct TestSettings {
        /// Seconds between two things [default: 3600].
        cooldown_seconds: u64 = 3600, env "TEST_COOLDOWN_SECONDS";
        /// Where to listen.
        listen: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 1)), env "TEST_LISTEN";
        /// An optional name, with two variables.
        name: String, env "TEST_NAME" | "TEST_OTHER_NAME", arg(value_name = "NAME");
        /// A switch.
        enabled: bool = false, env "TEST_ENABLED";
    }
}

fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
}

fn file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn resolve(
    args: &TestArgs,
    env: &dyn Fn(&str) -> Option<String>,
    path: Option<&Path>,
) -> Result<TestSettings, ConfigError> {
    TestSettings::resolve(args, &Layers::read(env, path, &[TestSettings::KEYS])?)
}

#[test]
fn a_flag_beats_the_environment_beats_the_file_beats_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "cooldown_seconds = 60\nname = \"from-file\"\nenabled = true\n");
    let none = env_of(&[]);
    let defaults = resolve(&TestArgs::default(), &none, None).unwrap();
    assert_eq!((*defaults.cooldown_seconds, defaults.cooldown_seconds.is_default()), (3600, true));
    assert!(defaults.name.is_none());
    assert_eq!(*defaults.listen, SocketAddr::from(([0, 0, 0, 0], 1)));

    let from_file = resolve(&TestArgs::default(), &none, Some(&path)).unwrap();
    assert_eq!(*from_file.cooldown_seconds, 60);
    assert_eq!(from_file.name.as_ref().map(|n| n.value.as_str()), Some("from-file"));
    assert_eq!(
        from_file.cooldown_seconds.source,
        Source::File { path: path.clone(), key: "cooldown_seconds", line: 1 }
    );
    assert!(*from_file.enabled);

    let env = env_of(&[("TEST_COOLDOWN_SECONDS", "30"), ("TEST_OTHER_NAME", "from-env"), ("TEST_NAME", "")]);
    let from_env = resolve(&TestArgs::default(), &env, Some(&path)).unwrap();
    assert_eq!(*from_env.cooldown_seconds, 30);
    assert_eq!(from_env.name.unwrap().source, Source::Env("TEST_OTHER_NAME"), "an empty variable counts as unset");

    let flags = TestArgs { cooldown_seconds: Some(10), ..Default::default() };
    let from_flag = resolve(&flags, &env, Some(&path)).unwrap();
    assert_eq!(
        (*from_flag.cooldown_seconds, from_flag.cooldown_seconds.source),
        (10, Source::Flag("--cooldown-seconds".into()))
    );
}

#[test]
fn an_unknown_key_names_the_file_the_line_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "cooldown_seconds = 60\ncooldown_secs = 1\n");
    let error = resolve(&TestArgs::default(), &env_of(&[]), Some(&path)).unwrap_err().to_string();
    assert_eq!(error, format!("configuration file {}, line 2: unknown field `cooldown_secs`", path.display()));
    let path = file(dir.path(), "cooldown_seconds = \n");
    let error = resolve(&TestArgs::default(), &env_of(&[]), Some(&path)).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("configuration file {}, line 1: ", path.display())) && !error.contains('\n'),
        "{error}"
    );
    let missing = dir.path().join("missing.toml");
    let error = resolve(&TestArgs::default(), &env_of(&[]), Some(&missing)).unwrap_err().to_string();
    assert!(error.contains("missing.toml"), "{error}");
}

#[test]
fn a_bad_value_names_the_setting_and_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let error = resolve(&TestArgs::default(), &env_of(&[("TEST_COOLDOWN_SECONDS", "soon")]), None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "TEST_COOLDOWN_SECONDS (environment variable TEST_COOLDOWN_SECONDS): \"soon\" is not a whole number from 0 to 18446744073709551615"
    );
    let path = file(dir.path(), "\nlisten = 8080\n");
    let error = resolve(&TestArgs::default(), &env_of(&[]), Some(&path)).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "TEST_LISTEN (key listen of the configuration file {}, line 2): expected a string, not integer",
            path.display()
        )
    );
    let error = resolve(&TestArgs::default(), &env_of(&[("TEST_ENABLED", "maybe")]), None).unwrap_err().to_string();
    assert!(error.starts_with("TEST_ENABLED (environment variable TEST_ENABLED): \"maybe\" is neither"), "{error}");

    let settings = resolve(&TestArgs { cooldown_seconds: Some(0), ..Default::default() }, &env_of(&[]), None).unwrap();
    let error = settings.cooldown_seconds.check(|s| *s > 0, "must be at least 1").unwrap_err().to_string();
    assert_eq!(error, "TEST_COOLDOWN_SECONDS (flag --cooldown-seconds): must be at least 1");
}

#[test]
fn flags_parse_with_the_same_rules_and_their_help_names_the_variables() {
    use clap::{CommandFactory, Parser};
    let args = TestArgs::try_parse_from(["test-program", "--cooldown-seconds", "5", "--enabled", "yes"]).unwrap();
    assert_eq!((args.cooldown_seconds, args.enabled), (Some(5), Some(true)));
    let error = TestArgs::try_parse_from(["test-program", "--cooldown-seconds", "soon"]).unwrap_err().to_string();
    assert!(error.contains("--cooldown-seconds") && error.contains("not a whole number"), "{error}");
    let help = TestArgs::command().render_long_help().to_string();
    assert!(help.contains("[env: TEST_COOLDOWN_SECONDS]"), "{help}");
    assert!(help.contains("[env: TEST_NAME or TEST_OTHER_NAME]"), "{help}");
    assert!(help.contains("--name <NAME>"), "{help}");
}
