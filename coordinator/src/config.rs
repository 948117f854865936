//! The coordinator's configuration: every setting declared once (flag, environment variable with the
//! original's name, file key, default), resolved with precedence flag > environment > file > default by
//! [`hemostat_settings`]. Unknown keys in the file and bad values are errors naming the setting and where
//! its value came from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hemostat_pki::TlsFiles;
pub use hemostat_settings::ConfigError;
use hemostat_settings::{Layers, Sourced, config_path};

use crate::alerting::{AlertingArgs, AlertingConfig, AlertingSettings};
use crate::analysis::AnalyzerConfig;
use crate::analysis::llm::{LlmConfig, ProviderCredentials};
use crate::analysis::patterns::PatternConfig;
use crate::container_policy::{SettingOrigins, origin_of};
use crate::dashboard::DashboardConfig;
use crate::dashboard::auth::DashboardTokens;
use crate::events::{AuditRetention, EventRetention};
use crate::intake::IntakeLimits;
use crate::policy::{Backoff, Budget, RestartPolicy};
use crate::remediation::RemediationConfig;
use crate::remediation::storm::FleetStorm;
use crate::store::redis::ClusterSettings;
use crate::store::{StoreConfig, StormConfig};

hemostat_settings::settings! {
    /// Command-line flags of `hemostat-coordinator`; each setting also reads its environment variable and
    /// its key in the configuration file.
    #[derive(Clone, Debug, Default, clap::Parser)]
    #[command(name = "hemostat-coordinator", version, about = "The HemoStat coordinator")]
    pub struct CoordinatorArgs {
        /// A TOML configuration file (keys as the long flags, with underscores) [env: HEMOSTAT_CONFIG].
        #[arg(long)]
        pub config: Option<PathBuf>,
        /// Notifications: where they go, how they look, each sink's filters.
        #[command(flatten)]
        pub alerting: AlertingArgs,
    }

    /// Every setting of the coordinator, each with where its value came from (alerting's are
    /// [`AlertingSettings`]).
    #[derive(Clone, Debug)]
    pub struct CoordinatorSettings {
        /// Address to serve gRPC on (nodes, operators, health, reflection) [default: 0.0.0.0:50051].
        listen: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 50051)), env "HEMOSTAT_LISTEN";
        /// Address to serve Prometheus metrics on, plain HTTP `/metrics` (e.g. 0.0.0.0:9464) [default: off].
        metrics_listen: SocketAddr, env "HEMOSTAT_METRICS_LISTEN";
        /// Address to serve the web dashboard on, plain HTTP (e.g. 127.0.0.1:8080) [default: off]. Any
        /// non-loopback address needs dashboard tokens.
        dashboard_listen: SocketAddr, env "HEMOSTAT_DASHBOARD_LISTEN";
        /// Dashboard tokens, comma-separated `role:token` or `name:role:token` (role viewer or admin).
        dashboard_tokens: String, env "HEMOSTAT_DASHBOARD_TOKENS";
        /// A file of dashboard tokens, one `role:token` or `name:role:token` a line.
        dashboard_tokens_file: PathBuf, env "HEMOSTAT_DASHBOARD_TOKENS_FILE";
        /// Browsers reach the dashboard over HTTPS (a TLS proxy in front): session cookies carry `Secure`.
        dashboard_secure_cookie: bool = false, env "HEMOSTAT_DASHBOARD_SECURE_COOKIE";
        /// Folder with ca.pem, coordinator.pem and coordinator-key.pem [default: certs].
        certs_dir: PathBuf = PathBuf::from("certs"), env "HEMOSTAT_CERTS_DIR";
        /// Folder for the embedded state store, used when no Redis is configured [default: hemostat-data].
        data_dir: PathBuf = PathBuf::from("hemostat-data"), env "HEMOSTAT_DATA_DIR";
        /// Redis URL (redis://[:password@]host:port/db); takes precedence over REDIS_HOST. With
        /// REDIS_CLUSTER, the cluster's seed nodes, comma-separated.
        redis_url: String, env "REDIS_URL";
        /// Redis host; with neither this nor REDIS_URL, the embedded store is used.
        redis_host: String, env "REDIS_HOST";
        /// Redis port [default: 6379].
        redis_port: u16 = 6379, env "REDIS_PORT";
        /// Redis password.
        redis_password: String, env "REDIS_PASSWORD";
        /// The Redis is a Redis Cluster (seed nodes from REDIS_URL or REDIS_HOST/REDIS_PORT) (true/false)
        /// [default: false].
        redis_cluster: bool = false, env "REDIS_CLUSTER";
        /// With REDIS_CLUSTER: replicas that must acknowledge each safety write (budget decisions, events,
        /// approvals taken) before it counts; 0 for a cluster without replicas [default: 1].
        redis_wait_replicas: u32 = 1, env "REDIS_WAIT_REPLICAS";
        /// Start on a Redis without append-only persistence (appendonly no), which forgets cooldowns, budgets
        /// and the event log when it restarts; said in an event and by `hemostat health` (true/false)
        /// [default: false].
        redis_allow_volatile: bool = false, env "REDIS_ALLOW_VOLATILE";
        /// Seconds between two actions on one container [default: 3600].
        cooldown_seconds: u64 = 3600, env "RESPONDER_COOLDOWN_SECONDS";
        /// How actions on one container are spaced: `cooldown` (the fixed RESPONDER_COOLDOWN_SECONDS) or
        /// `backoff` (a wait growing from RESPONDER_BACKOFF_INITIAL_SECONDS) [default: cooldown].
        restart_policy: String = "cooldown".to_owned(), env "RESPONDER_RESTART_POLICY";
        /// Under backoff: seconds after the first action of a run before the next [default: 10].
        backoff_initial_seconds: u64 = Backoff::DEFAULT.initial.as_secs(), env "RESPONDER_BACKOFF_INITIAL_SECONDS";
        /// Under backoff: the longest wait, in seconds; each wait doubles up to it [default: 300].
        backoff_max_seconds: u64 = Backoff::DEFAULT.max.as_secs(), env "RESPONDER_BACKOFF_MAX_SECONDS";
        /// Under backoff: seconds without an action after which a run starts over [default: 600].
        backoff_reset_seconds: u64 = Backoff::DEFAULT.reset_after.as_secs(), env "RESPONDER_BACKOFF_RESET_SECONDS";
        /// Under backoff: each wait is scaled by up to plus or minus this many percent [default: 25].
        backoff_jitter_percent: u32 = Backoff::DEFAULT.jitter_percent, env "RESPONDER_BACKOFF_JITTER_PERCENT";
        /// Most actions on one container in any rolling hour [default: 3].
        max_retries_per_hour: u32 = Budget::DEFAULT.max_attempts, env "RESPONDER_MAX_RETRIES_PER_HOUR";
        /// Seconds a quarantined container (its breaker open) must run, healthy or without a health check,
        /// to be released as `hemostat release` would; 0: only by hand [default: 3600].
        quarantine_release_seconds: u64 = 3600, env "RESPONDER_QUARANTINE_RELEASE_SECONDS";
        /// Seconds a restart waits for a graceful stop before killing [default: 10].
        stop_timeout_seconds: u32 = 10, env "RESPONDER_STOP_TIMEOUT_SECONDS";
        /// More containers of one node than this needing remediation within the storm window stops
        /// automatic actions on that node [default: 5].
        storm_threshold: u32 = StormConfig::default().threshold, env "RESPONDER_STORM_THRESHOLD";
        /// More than this percentage of the containers watched needing remediation within the storm window
        /// stops automatic actions fleet-wide [default: 2].
        storm_fleet_percent: f64 = FleetStorm::default().percent, env "RESPONDER_STORM_FLEET_PERCENT";
        /// The fleet-wide storm threshold is never below this many containers [default: 20].
        storm_fleet_minimum: u32 = FleetStorm::default().minimum, env "RESPONDER_STORM_FLEET_MINIMUM";
        /// The storm window, in seconds [default: 60].
        storm_window_seconds: u64 = StormConfig::default().window.as_secs(), env "RESPONDER_STORM_WINDOW_SECONDS";
        /// Decisions wait for an admin's approval (`hemostat approve <id>`) (true/false) [default: false].
        require_approval: bool = false, env "RESPONDER_REQUIRE_APPROVAL";
        /// Seconds a decision waits for approval before it expires [default: 3600].
        approval_ttl_seconds: u64 = 3600, env "RESPONDER_APPROVAL_TTL_SECONDS";
        /// Seconds the audit log keeps its records [default: 604800, 7 days].
        audit_retention_seconds: u64 = 7 * 24 * 3600, env "RESPONDER_AUDIT_RETENTION_SECONDS";
        /// Record what would be done and do nothing (true/false) [default: false].
        dry_run: bool = false, env "RESPONDER_DRY_RUN";
        /// Decisions below this confidence are false alarms [default: 0.7].
        confidence_threshold: f64 = AnalyzerConfig::default().confidence_threshold, env "ANALYZER_CONFIDENCE_THRESHOLD";
        /// Alerts kept per container for pattern analysis [default: 10].
        history_size: usize = AnalyzerConfig::default().history_size, env "ANALYZER_HISTORY_SIZE";
        /// Seconds alerts are kept [default: 3600].
        history_ttl: u64 = AnalyzerConfig::default().history_ttl.as_secs(), env "ANALYZER_HISTORY_TTL";
        /// Seconds a value must stay above its threshold to be sustained [default: 60].
        sustain_seconds: u64 = PatternConfig::default().sustain.as_secs(), env "ANALYZER_SUSTAIN_SECONDS";
        /// Seconds of samples a memory leak is fitted over [default: 1800].
        leak_window_seconds: u64 = PatternConfig::default().leak_window.as_secs(), env "ANALYZER_LEAK_WINDOW_SECONDS";
        /// A leak matters when it reaches the limit within this many seconds [default: 3600].
        leak_horizon_seconds: u64 = PatternConfig::default().leak_horizon.as_secs(), env "ANALYZER_LEAK_HORIZON_SECONDS";
        /// The model that analyses alerts when a provider key (or an OpenAI-compatible base URL) is set:
        /// `claude*` for Anthropic, anything else OpenAI-compatible [default: gpt-4].
        ai_model: String = "gpt-4".to_owned(), env "AI_MODEL";
        /// Use the rules only, even with a provider key (true/false) [default: false].
        ai_fallback_enabled: bool = false, env "AI_FALLBACK_ENABLED";
        /// Seconds one LLM analysis may take, retries included [default: 10].
        ai_timeout_seconds: u64 = 10, env "AI_TIMEOUT_SECONDS";
        /// LLM analyses in flight at once [default: 4].
        ai_max_concurrency: usize = 4, env "AI_MAX_CONCURRENCY";
        /// The OpenAI (or OpenAI-compatible server's) API key; prefer the environment or the file to a flag.
        openai_api_key: String, env "OPENAI_API_KEY";
        /// An OpenAI-compatible server's base URL, e.g. http://127.0.0.1:11434/v1 [default:
        /// https://api.openai.com/v1].
        openai_base_url: String, env "OPENAI_BASE_URL";
        /// The Anthropic API key; prefer the environment or the file to a flag.
        anthropic_api_key: String, env "ANTHROPIC_API_KEY";
        /// The Anthropic API's base URL [default: https://api.anthropic.com].
        anthropic_base_url: String, env "ANTHROPIC_BASE_URL";
        /// Events of each type the event log keeps; older ones are trimmed as new ones arrive [default: 10000].
        max_events: u64 = EventRetention::default().max_per_type, env "ALERT_MAX_EVENTS";
        /// Seconds the event log keeps an event [default: 604800, 7 days].
        event_ttl: u64 = EventRetention::default().max_age.as_secs(), env "ALERT_EVENT_TTL";
        /// Seconds without a heartbeat after which a node is reported lost [default: 30].
        node_lost_seconds: u64 = 30, env "NODE_LOST_SECONDS";
        /// Containers of one node the coordinator keeps; more are counted and not kept [default: 10000].
        max_containers_per_node: usize = IntakeLimits::default().containers_per_node, env "HEMOSTAT_MAX_CONTAINERS_PER_NODE";
        /// Longest string (id, name, image, ...) kept from a node; longer ones are cut [default: 1024].
        max_string_bytes: usize = IntakeLimits::default().string_bytes, env "HEMOSTAT_MAX_STRING_BYTES";
        /// Most bytes of each piece of evidence (log tail, health outputs, details, output) kept from one node
        /// message [default: 65536].
        max_evidence_bytes: usize = IntakeLimits::default().evidence_bytes, env "HEMOSTAT_MAX_EVIDENCE_BYTES";
        /// Records the audit log keeps at most, besides its age limit [default: 100000].
        audit_max_entries: u64 = AuditRetention::default().max_entries, env "RESPONDER_AUDIT_MAX_ENTRIES";
    }
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where to serve Prometheus metrics (`/metrics`, plain HTTP); `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// The web dashboard; `None` serves none.
    pub dashboard: Option<DashboardConfig>,
    /// The coordinator's certificate files.
    pub tls: TlsFiles,
    /// The state store.
    pub store: StoreConfig,
    /// Remediation policy.
    pub remediation: RemediationConfig,
    /// Analysis (rules, patterns, history, and the LLM when a provider is configured).
    pub analyzer: AnalyzerConfig,
    /// Notifications.
    pub alerting: AlertingConfig,
    /// A node silent for this long is reported lost (`node_lost`).
    pub node_lost_after: Duration,
    /// The most the coordinator keeps of what one node sends.
    pub intake: IntakeLimits,
    /// Whether a state store that would forget its state on a restart (a Redis without append-only
    /// persistence) is accepted (`REDIS_ALLOW_VOLATILE`); otherwise the coordinator refuses to start on it.
    pub allow_volatile_store: bool,
}

impl CoordinatorConfig {
    /// Resolves the flags in `args`, the process environment, the configuration file (`--config` or
    /// `HEMOSTAT_CONFIG`) and the defaults.
    pub fn resolve(args: CoordinatorArgs) -> Result<Self, ConfigError> {
        Self::resolve_in(args, &hemostat_settings::process_env)
    }

    /// Resolves the flags in `args`, the environment `env` (a variable's value, `None` when unset), the
    /// configuration file and the defaults.
    pub fn resolve_in(args: CoordinatorArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let layers = Layers::read(
            env,
            config_path(args.config.as_deref(), env).as_deref(),
            &[CoordinatorSettings::KEYS, AlertingSettings::KEYS],
        )?;
        Self::from_settings(
            CoordinatorSettings::resolve(&args, &layers)?,
            AlertingSettings::resolve(&args.alerting, &layers)?,
        )
    }

    /// The configuration the settings (`s`, and `alerting`'s) describe; a value out of range is an error
    /// naming the setting and where its value came from.
    pub fn from_settings(s: CoordinatorSettings, alerting: AlertingSettings) -> Result<Self, ConfigError> {
        let value = |setting: Option<Sourced<String>>| setting.map(Sourced::into_value);
        let seconds = |setting: Sourced<u64>| Duration::from_secs(setting.into_value());
        let url = match (value(s.redis_url), value(s.redis_host)) {
            (Some(url), _) => Some(url),
            (None, Some(host)) => Some(redis_url(&host, *s.redis_port, value(s.redis_password).as_deref())),
            (None, None) => None,
        };
        let store = match url {
            Some(url) if *s.redis_cluster => StoreConfig::RedisCluster(ClusterSettings {
                seeds: url.split(',').map(str::trim).filter(|seed| !seed.is_empty()).map(str::to_owned).collect(),
                wait_replicas: s.redis_wait_replicas.into_value(),
                wait_timeout: REDIS_WAIT_TIMEOUT,
            }),
            Some(url) => StoreConfig::Redis { url },
            None => StoreConfig::Embedded { path: s.data_dir.join("state.redb") },
        };
        let origins = SettingOrigins {
            cooldown: origin_of(&s.cooldown_seconds),
            max_per_hour: origin_of(&s.max_retries_per_hour),
            restart_policy: origin_of(&s.restart_policy),
            stop_timeout: origin_of(&s.stop_timeout_seconds),
            sustain: origin_of(&s.sustain_seconds),
        };
        let max_attempts =
            s.max_retries_per_hour.check(|n| *n >= 1, "must be at least 1 (to stop all actions, use dry-run)")?;
        let backoff = Backoff {
            initial: Duration::from_secs(s.backoff_initial_seconds.check(|n| *n >= 1, "must be at least 1")?),
            max: seconds(s.backoff_max_seconds),
            reset_after: seconds(s.backoff_reset_seconds),
            jitter_percent: s.backoff_jitter_percent.check(|n| *n <= 100, "must be at most 100")?,
        };
        let policy = s.restart_policy.try_map(|name| match name.trim().to_ascii_lowercase().as_str() {
            "cooldown" => Ok(RestartPolicy::Cooldown),
            "backoff" => Ok(RestartPolicy::Backoff(backoff)),
            _ => Err(format!("must be cooldown or backoff, not {name:?}")),
        })?;
        let stop_timeout = s.stop_timeout_seconds.check(|n| *n <= 3600, "must be at most 3600")?;
        let threshold = *s.confidence_threshold;
        let confidence_threshold = s
            .confidence_threshold
            .check(|t| (0.0..=1.0).contains(t), format!("must be between 0 and 1, not {threshold}"))?;
        let llm = if *s.ai_fallback_enabled {
            None
        } else {
            LlmConfig::for_model(
                s.ai_model.into_value(),
                ProviderCredentials {
                    openai_api_key: value(s.openai_api_key),
                    openai_base_url: value(s.openai_base_url),
                    anthropic_api_key: value(s.anthropic_api_key),
                    anthropic_base_url: value(s.anthropic_base_url),
                },
                seconds(s.ai_timeout_seconds),
                s.ai_max_concurrency.into_value(),
            )
        };
        let analyzer = AnalyzerConfig {
            confidence_threshold,
            patterns: PatternConfig {
                sustain: seconds(s.sustain_seconds),
                leak_window: seconds(s.leak_window_seconds),
                leak_horizon: seconds(s.leak_horizon_seconds),
            },
            history_size: s.history_size.into_value().max(1),
            history_ttl: seconds(s.history_ttl),
            llm,
        };
        let event_retention = EventRetention {
            max_per_type: s.max_events.check(|n| *n >= 1, "must be at least 1")?,
            max_age: Duration::from_secs(s.event_ttl.into_value().max(60)),
        };
        let dashboard = match s.dashboard_listen {
            Some(listen) => {
                let mut tokens = match s.dashboard_tokens {
                    Some(spec) => spec.try_map(|spec| DashboardTokens::parse(&spec))?,
                    None => DashboardTokens::default(),
                };
                if tokens.is_empty()
                    && let Some(path) = s.dashboard_tokens_file
                {
                    tokens = path.try_map(|path| DashboardTokens::from_file(&path))?;
                }
                let secure = s.dashboard_secure_cookie.into_value();
                Some(listen.try_map(|listen| DashboardConfig::new(listen, tokens))?.with_secure_cookie(secure))
            }
            None => None,
        };
        let approval_ttl = s.require_approval.then(|| Duration::from_secs(s.approval_ttl_seconds.into_value().max(1)));
        // Alertmanager's HemoStatApprovalPending ends when the approval does.
        let alerting = AlertingConfig::from_settings(alerting)?;
        let alerting = AlertingConfig { approval_ttl: approval_ttl.unwrap_or(alerting.approval_ttl), ..alerting };
        let intake = IntakeLimits {
            containers_per_node: s.max_containers_per_node.check(|n| *n >= 1, "must be at least 1")?,
            string_bytes: s.max_string_bytes.check(|n| *n >= 256, "must be at least 256")?,
            evidence_bytes: s.max_evidence_bytes.check(|n| *n >= 1024, "must be at least 1024")?,
            ..IntakeLimits::default()
        };
        Ok(CoordinatorConfig {
            intake,
            allow_volatile_store: *s.redis_allow_volatile,
            dashboard,
            alerting,
            node_lost_after: Duration::from_secs(s.node_lost_seconds.into_value().max(1)),
            analyzer,
            listen: s.listen.into_value(),
            metrics_listen: s.metrics_listen.map(Sourced::into_value),
            tls: TlsFiles::in_dir(&s.certs_dir, "coordinator"),
            store,
            remediation: RemediationConfig {
                budget: Budget {
                    cooldown: seconds(s.cooldown_seconds),
                    max_attempts,
                    window: Budget::DEFAULT.window,
                    policy,
                },
                stop_timeout: Duration::from_secs(u64::from(stop_timeout)),
                backoff,
                origins,
                quarantine_release: Some(seconds(s.quarantine_release_seconds)).filter(|d| !d.is_zero()),
                event_retention,
                dry_run: *s.dry_run,
                audit_retention: AuditRetention {
                    max_age: Duration::from_secs(s.audit_retention_seconds.into_value().max(60)),
                    max_entries: s.audit_max_entries.check(|n| *n >= 1, "must be at least 1")?,
                },
                approval_ttl,
                storm: StormConfig {
                    threshold: s.storm_threshold.into_value(),
                    window: Duration::from_secs(s.storm_window_seconds.into_value().max(1)),
                },
                fleet_storm: FleetStorm {
                    percent: s.storm_fleet_percent.into_value().clamp(0.0, 100.0),
                    minimum: s.storm_fleet_minimum.into_value(),
                },
            },
        })
    }
}

/// How long a safety write waits for its replicas in a Redis Cluster (a replica on the same network acknowledges
/// within milliseconds).
const REDIS_WAIT_TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis URL with the password percent-encoded.
fn redis_url(host: &str, port: u16, password: Option<&str>) -> String {
    let auth = match password {
        Some(password) if !password.is_empty() => {
            let encoded: String = password
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!(":{encoded}@")
        }
        _ => String::new(),
    };
    format!("redis://{auth}{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::llm::ProviderKind;

    /// No environment: the tests see only what they configure.
    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn resolve(args: CoordinatorArgs) -> Result<CoordinatorConfig, ConfigError> {
        CoordinatorConfig::resolve_in(args, &no_env)
    }

    fn write(contents: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("hemostat-config-{}-{}.toml", std::process::id(), rand::random::<u32>()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let path = write("cooldown_seconds = 60\nmax_retries_per_hour = 5\nredis_host = \"cache\"\n");
        let args = CoordinatorArgs { config: Some(path.clone()), cooldown_seconds: Some(30), ..Default::default() };
        let config = resolve(args).unwrap();
        assert_eq!(config.remediation.budget.cooldown, Duration::from_secs(30));
        assert_eq!(config.remediation.budget.max_attempts, 5);
        assert!(matches!(config.store, StoreConfig::Redis { ref url } if url == "redis://cache:6379"));
        std::fs::remove_file(path).unwrap();

        let config = resolve(CoordinatorArgs::default()).unwrap();
        assert_eq!(config.remediation.budget, Budget::DEFAULT);
        assert!(matches!(config.store, StoreConfig::Embedded { .. }));
    }

    #[test]
    fn the_settings_a_label_can_override_say_where_they_came_from() {
        use hemostat_model::Origin;
        let path = write("stop_timeout_seconds = 30\n");
        let file = path.display().to_string();
        let env = env_of(&[("HEMOSTAT_CONFIG", &file), ("RESPONDER_COOLDOWN_SECONDS", "120")]);
        let args = CoordinatorArgs { max_retries_per_hour: Some(5), ..Default::default() };
        let config = CoordinatorConfig::resolve_in(args, &env).unwrap();
        let origins = config.remediation.origins;
        assert_eq!(origins.cooldown, Origin::Environment("RESPONDER_COOLDOWN_SECONDS"));
        assert_eq!(origins.max_per_hour, Origin::Flag("max_retries_per_hour"));
        assert_eq!(origins.stop_timeout, Origin::File("stop_timeout_seconds"));
        assert_eq!((origins.restart_policy, origins.sustain), (Origin::Default, Origin::Default));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn quarantine_release_is_an_hour_and_zero_leaves_it_to_admins() {
        let config = resolve(CoordinatorArgs::default()).unwrap();
        assert_eq!(config.remediation.quarantine_release, Some(Duration::from_secs(3600)));
        let env = env_of(&[("RESPONDER_QUARANTINE_RELEASE_SECONDS", "0")]);
        let config = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap();
        assert_eq!(config.remediation.quarantine_release, None);
    }

    #[test]
    fn the_environment_wins_over_the_file_and_loses_to_a_flag() {
        let path = write("cooldown_seconds = 60\nnode_lost_seconds = 90\nstorm_threshold = 7\n");
        let file = path.display().to_string();
        let env =
            env_of(&[("HEMOSTAT_CONFIG", &file), ("RESPONDER_COOLDOWN_SECONDS", "120"), ("NODE_LOST_SECONDS", "45")]);
        let config = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap();
        assert_eq!(config.remediation.budget.cooldown, Duration::from_secs(120), "env over file");
        assert_eq!(config.node_lost_after, Duration::from_secs(45), "env over file");
        assert_eq!(config.remediation.storm.threshold, 7, "file over default");
        let flags = CoordinatorArgs { cooldown_seconds: Some(5), ..Default::default() };
        let config = CoordinatorConfig::resolve_in(flags, &env).unwrap();
        assert_eq!(config.remediation.budget.cooldown, Duration::from_secs(5), "flag over env");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn bad_files_and_values_are_clear_errors() {
        let path = write("cooldown_secs = 60\n");
        let err =
            resolve(CoordinatorArgs { config: Some(path.clone()), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("unknown field `cooldown_secs`"), "{err}");
        assert!(err.contains(&path.display().to_string()), "names the file: {err}");
        std::fs::write(&path, "cooldown_seconds = \"soon\"\n").unwrap();
        let err =
            resolve(CoordinatorArgs { config: Some(path.clone()), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("cooldown_seconds"), "{err}");
        assert!(err.starts_with("RESPONDER_COOLDOWN_SECONDS (key cooldown_seconds of the configuration file"), "{err}");
        std::fs::remove_file(path).unwrap();
        let err =
            resolve(CoordinatorArgs { max_retries_per_hour: Some(0), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("at least 1"), "{err}");
        assert!(err.starts_with("RESPONDER_MAX_RETRIES_PER_HOUR (flag --max-retries-per-hour)"), "{err}");
        let env = env_of(&[("ANALYZER_CONFIDENCE_THRESHOLD", "1.5")]);
        let err = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap_err().to_string();
        assert_eq!(
            err,
            "ANALYZER_CONFIDENCE_THRESHOLD (environment variable ANALYZER_CONFIDENCE_THRESHOLD): must be between 0 \
             and 1, not 1.5"
        );
    }

    #[test]
    fn the_restart_policy_is_cooldown_unless_backoff_is_chosen_and_its_curve_is_configurable() {
        assert_eq!(resolve(CoordinatorArgs::default()).unwrap().remediation.budget.policy, RestartPolicy::Cooldown);
        let env = env_of(&[
            ("RESPONDER_RESTART_POLICY", "Backoff"),
            ("RESPONDER_BACKOFF_INITIAL_SECONDS", "2"),
            ("RESPONDER_BACKOFF_MAX_SECONDS", "8"),
            ("RESPONDER_BACKOFF_RESET_SECONDS", "30"),
            ("RESPONDER_BACKOFF_JITTER_PERCENT", "0"),
        ]);
        let budget = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap().remediation.budget;
        assert_eq!(
            budget.policy,
            RestartPolicy::Backoff(Backoff {
                initial: Duration::from_secs(2),
                max: Duration::from_secs(8),
                reset_after: Duration::from_secs(30),
                jitter_percent: 0,
            })
        );
        let defaults = CoordinatorConfig::resolve_in(
            CoordinatorArgs::default(),
            &env_of(&[("RESPONDER_RESTART_POLICY", "backoff")]),
        );
        assert_eq!(defaults.unwrap().remediation.budget.policy, RestartPolicy::Backoff(Backoff::DEFAULT));
        let env = env_of(&[("RESPONDER_RESTART_POLICY", "exponential")]);
        let err = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap_err().to_string();
        assert!(err.starts_with("RESPONDER_RESTART_POLICY (environment variable RESPONDER_RESTART_POLICY)"), "{err}");
        assert!(err.contains("must be cooldown or backoff"), "{err}");
        let env = env_of(&[("RESPONDER_BACKOFF_JITTER_PERCENT", "150")]);
        let err = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap_err().to_string();
        assert!(err.contains("at most 100"), "{err}");
    }

    #[test]
    fn metrics_are_off_unless_an_address_is_given() {
        use clap::Parser;
        assert_eq!(resolve(CoordinatorArgs::default()).unwrap().metrics_listen, None);
        let path = write("metrics_listen = \"127.0.0.1:9464\"\n");
        let config = resolve(CoordinatorArgs { config: Some(path.clone()), ..Default::default() });
        assert_eq!(config.unwrap().metrics_listen, Some(SocketAddr::from(([127, 0, 0, 1], 9464))));
        std::fs::remove_file(path).unwrap();
        let args = CoordinatorArgs::try_parse_from(["hemostat-coordinator", "--metrics-listen", "0.0.0.0:9464"]);
        let args = args.unwrap();
        assert_eq!(args.metrics_listen, Some(SocketAddr::from(([0, 0, 0, 0], 9464))));
    }

    #[test]
    fn dashboard_is_off_by_default_and_refuses_a_non_loopback_address_without_tokens() {
        use clap::Parser;
        assert!(resolve(CoordinatorArgs::default()).unwrap().dashboard.is_none());
        let local = CoordinatorArgs::try_parse_from(["hemostat-coordinator", "--dashboard-listen", "127.0.0.1:8080"]);
        let dashboard = resolve(local.unwrap()).unwrap().dashboard.unwrap();
        assert_eq!(dashboard.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(dashboard.tokens.is_empty());
        let open =
            CoordinatorArgs { dashboard_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))), ..Default::default() };
        let err = resolve(open).unwrap_err().to_string();
        assert!(err.contains("not a loopback address") && err.contains("HEMOSTAT_DASHBOARD_TOKENS"), "{err}");
        let path = write("viewer:viewer-token-0123456789\nalice:admin:admin-token-0123456789\n");
        let args = CoordinatorArgs {
            dashboard_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            dashboard_tokens_file: Some(path.clone()),
            ..Default::default()
        };
        let tokens = resolve(args).unwrap().dashboard.unwrap().tokens;
        assert!(tokens.user("admin-token-0123456789").is_some_and(|u| u.name == "alice"));
        std::fs::remove_file(path).unwrap();
        let weak = CoordinatorArgs {
            dashboard_listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            dashboard_tokens: Some("admin:secret".into()),
            ..Default::default()
        };
        let err = resolve(weak).unwrap_err().to_string();
        assert!(err.contains("shorter than 16"), "{err}");
    }

    #[test]
    fn the_model_is_chosen_from_the_original_variables() {
        let llm = |vars: &'static [(&'static str, &'static str)]| {
            CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env_of(vars)).unwrap().analyzer.llm
        };
        assert_eq!(llm(&[]), None, "no key, no LLM");
        let openai = llm(&[("OPENAI_API_KEY", "k")]).unwrap();
        assert_eq!(
            (openai.provider, openai.model.as_str(), openai.base_url.as_str()),
            (ProviderKind::OpenAi, "gpt-4", "https://api.openai.com/v1")
        );
        let claude = llm(&[("AI_MODEL", "claude-sonnet-4"), ("ANTHROPIC_API_KEY", "k")]).unwrap();
        assert_eq!(claude.provider, ProviderKind::Anthropic);
        assert_eq!(llm(&[("AI_MODEL", "claude-x"), ("OPENAI_API_KEY", "k")]), None, "claude needs its own key");
        let local = llm(&[("AI_MODEL", "llama3"), ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1/")]).unwrap();
        assert_eq!(
            (local.provider, local.base_url.as_str(), local.api_key),
            (ProviderKind::OpenAi, "http://127.0.0.1:11434/v1", None)
        );
        assert_eq!(
            llm(&[("OPENAI_API_KEY", "k"), ("AI_FALLBACK_ENABLED", "true")]),
            None,
            "true forces the rules, as documented"
        );
        assert!(llm(&[("OPENAI_API_KEY", "k"), ("AI_FALLBACK_ENABLED", "false")]).is_some());
    }

    #[test]
    fn llm_settings_come_from_the_file_too_and_a_bad_one_is_named() {
        let path = write(
            "ai_model = \"claude-sonnet-4\"\nanthropic_api_key = \"k\"\nanthropic_base_url = \"http://127.0.0.1:9/\"\n\
             ai_timeout_seconds = 3\nai_max_concurrency = 8\n",
        );
        let config = resolve(CoordinatorArgs { config: Some(path.clone()), ..Default::default() }).unwrap();
        let llm = config.analyzer.llm.unwrap();
        assert_eq!(
            (llm.provider, llm.model.as_str(), llm.base_url.as_str(), llm.api_key.as_deref()),
            (ProviderKind::Anthropic, "claude-sonnet-4", "http://127.0.0.1:9", Some("k"))
        );
        assert_eq!((llm.timeout, llm.concurrency), (Duration::from_secs(3), 8));
        let fallback =
            CoordinatorArgs { config: Some(path.clone()), ai_fallback_enabled: Some(true), ..Default::default() };
        assert_eq!(resolve(fallback).unwrap().analyzer.llm, None, "the flag over the file");
        std::fs::remove_file(path).unwrap();

        let env = env_of(&[("OPENAI_API_KEY", "k"), ("AI_TIMEOUT_SECONDS", "ten")]);
        let err = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap_err().to_string();
        assert!(err.starts_with("AI_TIMEOUT_SECONDS (environment variable AI_TIMEOUT_SECONDS): \"ten\""), "{err}");
        let env = env_of(&[("AI_FALLBACK_ENABLED", "sometimes")]);
        let err = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap_err().to_string();
        assert!(err.starts_with("AI_FALLBACK_ENABLED (environment variable AI_FALLBACK_ENABLED)"), "{err}");
    }

    #[test]
    fn redis_passwords_are_encoded() {
        assert_eq!(redis_url("r", 6380, Some("p@ss:w/rd")), "redis://:p%40ss%3Aw%2Frd@r:6380");
        assert_eq!(redis_url("r", 6379, None), "redis://r:6379");
    }

    #[test]
    fn redis_cluster_takes_its_seeds_from_the_url_or_the_host() {
        let env = env_of(&[("REDIS_CLUSTER", "true"), ("REDIS_URL", "redis://a:7000, redis://b:7001,")]);
        let config = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap();
        let StoreConfig::RedisCluster(cluster) = config.store else { panic!("not a cluster: {:?}", config.store) };
        assert_eq!(cluster.seeds, ["redis://a:7000", "redis://b:7001"]);
        assert_eq!(cluster.wait_replicas, 1, "safety writes wait for one replica by default");

        let env = env_of(&[
            ("REDIS_CLUSTER", "true"),
            ("REDIS_HOST", "c"),
            ("REDIS_PORT", "7002"),
            ("REDIS_PASSWORD", "s3cret"),
            ("REDIS_WAIT_REPLICAS", "0"),
        ]);
        let config = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap();
        let StoreConfig::RedisCluster(cluster) = config.store else { panic!("not a cluster: {:?}", config.store) };
        assert_eq!(cluster.seeds, ["redis://:s3cret@c:7002"]);
        assert_eq!(cluster.wait_replicas, 0);

        let env = env_of(&[("REDIS_URL", "redis://a:7000")]);
        let config = CoordinatorConfig::resolve_in(CoordinatorArgs::default(), &env).unwrap();
        assert!(
            matches!(config.store, StoreConfig::Redis { ref url } if url == "redis://a:7000"),
            "no cluster by default"
        );
    }
}
