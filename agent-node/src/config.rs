//! The node's configuration: every setting declared once (flag, environment variable, file key,
//! default), resolved with precedence flag > environment > file > default by [`hemostat_settings`].
//! Unknown keys in the file and bad values are errors naming the setting and where its value came from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hemostat_model::Action;
use hemostat_pki::TlsFiles;
pub use hemostat_settings::ConfigError;
use hemostat_settings::{Endpoint, Layers, Sourced, config_path};

use crate::actions::scale_up::DEFAULT_MAX_REPLICAS;
use crate::command_limits::{DEFAULT_CONCURRENCY, DEFAULT_PER_MINUTE};
use crate::detection::DetectionConfig;
use crate::disk::DiskConfig;
use crate::engine::EngineConfig;
use crate::executor::{DEFAULT_EXEC_ALLOWLIST, ExecutionPolicy, parse_allowlist};
use crate::inventory::ContainerSelector;
use crate::local_policy::LocalPolicyConfig;
use crate::outbox::DEFAULT_CAPACITY;
use crate::poller::StatsSource;

hemostat_settings::settings! {
    /// Command-line flags of `hemostat-node`; each setting also reads its environment variable and its key
    /// in the configuration file.
    #[derive(Clone, Debug, Default, clap::Parser)]
    #[command(name = "hemostat-node", version, about = "The HemoStat node: watches this Docker host")]
    pub struct NodeArgs {
        /// A TOML configuration file (keys as the long flags, with underscores) [env: HEMOSTAT_CONFIG].
        #[arg(long)]
        pub config: Option<PathBuf>,
    }

    /// Every setting of the node, each with where its value came from.
    #[derive(Clone, Debug)]
    pub struct NodeSettings {
        /// The coordinator, `host:port` or `https://host:port`; several, comma-separated, to fail over
        /// between coordinators of one fleet, tried in order [default: https://localhost:50051].
        coordinator: String = "localhost:50051".to_owned(), env "HEMOSTAT_COORDINATOR";
        /// The name the coordinator's certificate carries [default: the coordinator's host].
        coordinator_name: String, env "HEMOSTAT_COORDINATOR_NAME";
        /// Folder with ca.pem, node.pem and node-key.pem [default: certs].
        certs_dir: PathBuf = PathBuf::from("certs"), env "HEMOSTAT_CERTS_DIR";
        /// Address to serve Prometheus metrics on, plain HTTP `/metrics` (e.g. 0.0.0.0:9465) [default: off].
        metrics_listen: SocketAddr, env "NODE_METRICS_LISTEN";
        /// The container engine: unix:///path, tcp://host:port, http://host:port or https://host:port [default:
        /// the first that exists of /var/run/docker.sock, /run/podman/podman.sock,
        /// $XDG_RUNTIME_DIR/podman/podman.sock].
        docker_host: String, env "DOCKER_HOST";
        /// TLS with a client certificate to a tcp:// DOCKER_HOST (true/false, 1/0) [default: false].
        docker_tls_verify: bool = false, env "DOCKER_TLS_VERIFY";
        /// Folder of ca.pem, cert.pem and key.pem for DOCKER_TLS_VERIFY [default: ~/.docker].
        docker_cert_path: PathBuf, env "DOCKER_CERT_PATH";
        /// Watch only containers with this label, `key=value` [default: all containers].
        select_label: String, env "NODE_CONTAINER_SELECTOR";
        /// Seconds between heartbeats [default: 5].
        heartbeat_seconds: u64 = 5, env "NODE_HEARTBEAT_SECONDS";
        /// Longest pause between reconnect attempts, in seconds [default: 5].
        reconnect_max_seconds: u64 = 5, env "NODE_RECONNECT_MAX_SECONDS";
        /// Most unacknowledged messages kept for the coordinator [default: 10000].
        spool_capacity: usize = DEFAULT_CAPACITY, env "NODE_SPOOL_CAPACITY";
        /// Folder where unacknowledged messages are kept across node restarts [default: hemostat-data/spool].
        spool_dir: PathBuf = PathBuf::from("hemostat-data/spool"), env "NODE_SPOOL_DIR";
        /// Seconds between metrics samples, at least 1 [default: 30].
        poll_interval: u64 = 30, env "AGENT_POLL_INTERVAL";
        /// Where container stats are read: `cgroup` (the container's cgroup files and network counters,
        /// nothing asked of the engine), `engine` (Docker's stats API), or `auto` (the cgroup files when
        /// readable, else the engine) [default: auto].
        stats_source: StatsSource = StatsSource::Auto, env "NODE_STATS_SOURCE";
        /// CPU % (100 = one core) above which CPU is high [default: 85].
        cpu_threshold: f64 = DetectionConfig::default().cpu_threshold, env "THRESHOLD_CPU_PERCENT";
        /// Memory % of the limit above which memory is high [default: 80].
        memory_threshold: f64 = DetectionConfig::default().memory_threshold, env "THRESHOLD_MEMORY_PERCENT";
        /// Window, in seconds, in which restarts are counted [default: 600].
        restart_window_seconds: u64 = DetectionConfig::default().restart_window.as_secs(), env "NODE_RESTART_WINDOW_SECONDS";
        /// More restarts than this within the window are excessive [default: 5].
        restart_limit: u32 = DetectionConfig::default().restart_limit, env "NODE_RESTART_LIMIT";
        /// Seconds after which a standing anomaly is alerted again [default: 1800].
        reassert_seconds: u64 = DetectionConfig::default().reassert_every.as_secs(), env "NODE_REASSERT_SECONDS";
        /// Seconds after a container starts in which the node raises no actionable anomaly for it (a crash's
        /// alert waits for the end, and is sent if it is still down); the label `hemostat.grace` overrides it
        /// per container [default: 0].
        start_grace_seconds: u64 = 0, env "NODE_START_GRACE_SECONDS";
        /// Container name globs never watched, comma-separated (e.g. `hemostat-*,*-sidecar`) [default: none].
        blacklist: String = String::new(), env "MONITOR_CONTAINER_BLACKLIST";
        /// Percentage of the engine's data root that must stay free: below it the node reports the host's
        /// disk as low, and the coordinator decides a cleanup (0 to 100; 0 turns the check off) [default: 0].
        disk_min_free_percent: f64 = 0.0, env "NODE_DISK_MIN_FREE_PERCENT";
        /// The filesystem the disk check measures [default: the engine's data root, from `docker info`].
        disk_path: PathBuf, env "NODE_DISK_PATH";
        /// Log lines gathered at each failure as evidence, 0 for none [default: 50].
        log_lines: usize = 50, env "NODE_EVIDENCE_LOG_LINES";
        /// Actions this node executes, comma-separated [default: restart,exec,cleanup,scale_up].
        allowed_actions: String, env "NODE_ALLOWED_ACTIONS";
        /// Diagnostic commands allowed for exec, `;`-separated, each matched as a whole argument vector
        /// [default: ps;top -b -n 1;df -h;free -m;uptime;uname -a].
        exec_allowlist: String = DEFAULT_EXEC_ALLOWLIST.to_owned(), env "RESPONDER_EXEC_ALLOWLIST";
        /// Diagnostic commands run in a running container before the node restarts it, `;`-separated, each
        /// one on the exec allow-list; their masked output goes with the restart's result [default: none].
        diagnostics: String = String::new(), env "RESPONDER_DIAGNOSTICS";
        /// Longest an exec may run, in seconds [default: 10].
        exec_timeout_seconds: u64 = 10, env "RESPONDER_EXEC_TIMEOUT_SECONDS";
        /// Seconds a restarted container is watched before it counts as a success [default: 30].
        verify_seconds: u64 = 30, env "RESPONDER_VERIFY_SECONDS";
        /// Most commands accepted in any rolling minute; more are refused [default: 60].
        commands_per_minute: u32 = DEFAULT_PER_MINUTE, env "NODE_COMMANDS_PER_MINUTE";
        /// Most commands running at once; more are refused [default: 10].
        command_concurrency: u32 = DEFAULT_CONCURRENCY, env "NODE_COMMAND_CONCURRENCY";
        /// Most replicas scale_up makes of a service without a `hemostat.scale_up.max` label [default: 10].
        scale_up_max_replicas: u64 = DEFAULT_MAX_REPLICAS, env "NODE_SCALE_UP_MAX_REPLICAS";
        /// Whether the node restarts crashed containers on its own when cut off from every coordinator
        /// (true/false) [default: true].
        local_policy: bool = true, env "NODE_LOCAL_POLICY";
        /// Seconds cut off before the local policy applies [default: 60].
        local_policy_after_seconds: u64 = LocalPolicyConfig::default().after.as_secs(), env "NODE_LOCAL_POLICY_AFTER_SECONDS";
        /// At most one local action per container within this many seconds [default: 3600].
        cooldown_seconds: u64 = LocalPolicyConfig::default().cooldown.as_secs(), env "RESPONDER_COOLDOWN_SECONDS";
    }
}

/// One coordinator a node may connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorAddress {
    /// Its URL, `https://host:port`.
    pub url: String,
    /// The name its certificate must carry.
    pub server_name: String,
}

impl CoordinatorAddress {
    /// `host:port` or `https://host:port`, whose certificate must carry its host; plaintext is refused.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let Endpoint { url, host } = Endpoint::parse(spec)?;
        Ok(CoordinatorAddress { url, server_name: host })
    }
}

impl std::fmt::Display for CoordinatorAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// The resolved node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The coordinators of the fleet, in the order they are tried (at least one).
    pub coordinators: Vec<CoordinatorAddress>,
    /// This node's certificate files.
    pub tls: TlsFiles,
    /// Where to serve Prometheus metrics (`/metrics`, plain HTTP); `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// How to reach the container engine.
    pub engine: EngineConfig,
    /// Which containers to watch.
    pub selector: ContainerSelector,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Longest pause between reconnect attempts.
    pub reconnect_max: Duration,
    /// Most unacknowledged messages kept.
    pub spool_capacity: usize,
    /// Where they are kept across restarts; `None` keeps them in memory only.
    pub spool_dir: Option<PathBuf>,
    /// Time between metrics samples.
    pub poll_interval: Duration,
    /// Where container stats are read.
    pub stats_source: StatsSource,
    /// Thresholds and windows of detection.
    pub detection: DetectionConfig,
    /// Log lines gathered at each failure.
    pub log_lines: usize,
    /// What the node allows, whatever the coordinator asks.
    pub execution: ExecutionPolicy,
    /// What the node does on its own when cut off.
    pub local_policy: LocalPolicyConfig,
    /// The host's disk check.
    pub disk: DiskConfig,
}

impl NodeConfig {
    /// Resolves the flags in `args`, the process environment, the configuration file (`--config` or
    /// `HEMOSTAT_CONFIG`) and the defaults.
    pub fn resolve(args: NodeArgs) -> Result<Self, ConfigError> {
        Self::resolve_in(args, &hemostat_settings::process_env)
    }

    /// Resolves the flags in `args`, the environment `env` (a variable's value, `None` when unset), the
    /// configuration file and the defaults.
    pub fn resolve_in(args: NodeArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let layers = Layers::read(env, config_path(args.config.as_deref(), env).as_deref(), &[NodeSettings::KEYS])?;
        Self::from_settings(NodeSettings::resolve(&args, &layers)?)
    }

    /// The configuration the settings describe; a value out of range is an error naming the setting and
    /// where its value came from.
    pub fn from_settings(s: NodeSettings) -> Result<Self, ConfigError> {
        let seconds = |setting: Sourced<u64>| Duration::from_secs(setting.into_value());
        let name_override = s.coordinator_name.map(Sourced::into_value);
        let coordinators = s.coordinator.try_map(|list| {
            let coordinators = list
                .split(',')
                .map(str::trim)
                .filter(|spec| !spec.is_empty())
                .map(|spec| {
                    let address = CoordinatorAddress::parse(spec)?;
                    Ok(match &name_override {
                        Some(name) => CoordinatorAddress { server_name: name.clone(), ..address },
                        None => address,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            if coordinators.is_empty() { Err("names no coordinator".to_owned()) } else { Ok(coordinators) }
        })?;
        let blacklist: Vec<String> =
            s.blacklist.split(',').map(str::trim).filter(|glob| !glob.is_empty()).map(str::to_owned).collect();
        let selector = match s.select_label {
            Some(spec) => spec.try_map(|spec| ContainerSelector::parse(&spec))?,
            None => ContainerSelector::all(),
        }
        .with_blacklist(blacklist);
        let poll_interval = s.poll_interval.check(|n| *n >= 1, "must be at least 1 second")?;
        let percent = |setting: Sourced<f64>| {
            let v = *setting;
            setting.check(|v| *v > 0.0 && v.is_finite(), format!("must be a positive number, not {v}"))
        };
        let detection = DetectionConfig {
            cpu_threshold: percent(s.cpu_threshold)?,
            memory_threshold: percent(s.memory_threshold)?,
            restart_window: seconds(s.restart_window_seconds),
            restart_limit: s.restart_limit.into_value(),
            reassert_every: Duration::from_secs(s.reassert_seconds.into_value().max(1)),
            start_grace: seconds(s.start_grace_seconds),
        };
        let disk = DiskConfig {
            min_free_percent: s.disk_min_free_percent.check(|v| (0.0..=100.0).contains(v), "must be from 0 to 100")?,
            path: s.disk_path.map(Sourced::into_value),
        };
        let heartbeat = s.heartbeat_seconds.check(|n| *n >= 1, "must be at least 1")?;
        let allowed_actions = match s.allowed_actions {
            Some(list) => list.try_map(|list| {
                list.split(',')
                    .map(|a| a.trim().to_ascii_lowercase())
                    .filter(|a| !a.is_empty())
                    .map(|a| a.parse::<Action>().map(|action| action.name().to_owned()))
                    .collect::<Result<Vec<_>, _>>()
            })?,
            None => ExecutionPolicy::default().allowed_actions,
        };
        let exec_allowlist = parse_allowlist(&s.exec_allowlist);
        let diagnostics = s.diagnostics.try_map(|spec| {
            let diagnostics = parse_allowlist(&spec);
            match diagnostics.iter().find(|argv| !exec_allowlist.contains(argv)) {
                Some(argv) => {
                    Err(format!("{:?} is not on the exec allow-list (RESPONDER_EXEC_ALLOWLIST)", argv.join(" ")))
                }
                None => Ok(diagnostics),
            }
        })?;
        Ok(NodeConfig {
            coordinators,
            tls: TlsFiles::in_dir(&s.certs_dir, "node"),
            metrics_listen: s.metrics_listen.map(Sourced::into_value),
            engine: EngineConfig {
                host: s.docker_host.map(Sourced::into_value),
                tls_verify: *s.docker_tls_verify,
                cert_path: s.docker_cert_path.map(Sourced::into_value),
            },
            selector,
            heartbeat: Duration::from_secs(heartbeat),
            reconnect_max: Duration::from_secs(s.reconnect_max_seconds.into_value().max(1)),
            spool_capacity: s.spool_capacity.into_value().max(1),
            spool_dir: Some(s.spool_dir.into_value()),
            poll_interval: Duration::from_secs(poll_interval),
            stats_source: s.stats_source.into_value(),
            detection,
            log_lines: s.log_lines.into_value().min(1000),
            execution: ExecutionPolicy {
                allowed_actions,
                exec_allowlist,
                diagnostics,
                exec_timeout: Duration::from_secs(s.exec_timeout_seconds.into_value().max(1)),
                verify_window: seconds(s.verify_seconds),
                commands_per_minute: s.commands_per_minute.into_value().max(1),
                command_concurrency: s.command_concurrency.into_value().max(1),
                scale_up_max_replicas: s.scale_up_max_replicas.into_value().max(1),
            },
            local_policy: LocalPolicyConfig {
                enabled: *s.local_policy,
                after: seconds(s.local_policy_after_seconds),
                cooldown: seconds(s.cooldown_seconds),
            },
            disk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn resolve(args: NodeArgs) -> Result<NodeConfig, ConfigError> {
        NodeConfig::resolve_in(args, &|_| None)
    }

    #[test]
    fn a_file_with_an_unknown_key_is_refused() {
        let path = std::env::temp_dir().join(format!("hemostat-node-{}.toml", std::process::id()));
        std::fs::write(&path, "coordinater = \"x:1\"\n").unwrap();
        let err = resolve(NodeArgs { config: Some(path.clone()), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("unknown field `coordinater`"), "{err}");
        std::fs::write(&path, "coordinator = \"c:1\"\nselect_label = \"team=a\"\n").unwrap();
        let config =
            resolve(NodeArgs { config: Some(path.clone()), coordinator: Some("d:2".into()), ..Default::default() })
                .unwrap();
        assert_eq!(config.coordinators[0].url, "https://d:2");
        assert_eq!(config.selector, ContainerSelector::parse("team=a").unwrap());
        assert_eq!(config.poll_interval, Duration::from_secs(30), "the original's default");
        std::fs::write(&path, "poll_interval = 0\n").unwrap();
        let err = resolve(NodeArgs { config: Some(path.clone()), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("at least 1 second"), "{err}");
        let err = resolve(NodeArgs { cpu_threshold: Some(f64::NAN), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("THRESHOLD_CPU_PERCENT"), "{err}");
        assert_eq!(resolve(NodeArgs::default()).unwrap().metrics_listen, None, "off by default");
        std::fs::write(&path, "metrics_listen = \"127.0.0.1:9465\"\n").unwrap();
        let config = resolve(NodeArgs { config: Some(path.clone()), ..Default::default() }).unwrap();
        assert_eq!(config.metrics_listen, Some("127.0.0.1:9465".parse().unwrap()));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn diagnostics_are_off_by_default_and_must_be_on_the_allow_list() {
        assert!(resolve(NodeArgs::default()).unwrap().execution.diagnostics.is_empty());
        let config =
            NodeConfig::resolve_in(NodeArgs::default(), &env_of(&[("RESPONDER_DIAGNOSTICS", "ps; df -h")])).unwrap();
        assert_eq!(config.execution.diagnostics, vec![vec!["ps".to_owned()], vec!["df".to_owned(), "-h".to_owned()]]);
        let err =
            NodeConfig::resolve_in(NodeArgs::default(), &env_of(&[("RESPONDER_DIAGNOSTICS", "ps;cat /etc/shadow")]))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("RESPONDER_DIAGNOSTICS") && err.contains("\"cat /etc/shadow\" is not on the exec allow-list"),
            "{err}"
        );
    }

    #[test]
    fn precedence_is_flag_environment_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "poll_interval = 7\nheartbeat_seconds = 9\nrestart_limit = 2\n").unwrap();
        let file = path.display().to_string();
        let env = env_of(&[("HEMOSTAT_CONFIG", &file), ("AGENT_POLL_INTERVAL", "3"), ("NODE_RESTART_LIMIT", "4")]);
        let config = NodeConfig::resolve_in(NodeArgs { restart_limit: Some(6), ..Default::default() }, &env).unwrap();
        assert_eq!(config.poll_interval, Duration::from_secs(3), "env over file");
        assert_eq!(config.heartbeat, Duration::from_secs(9), "file over default");
        assert_eq!(config.detection.restart_limit, 6, "flag over env");
        assert_eq!(config.reconnect_max, Duration::from_secs(5), "default");
        assert_eq!(config.stats_source, StatsSource::Auto, "default");
        assert_eq!(config.detection.start_grace, Duration::ZERO, "no start grace by default");
        let env = env_of(&[("NODE_START_GRACE_SECONDS", "15")]);
        let config = NodeConfig::resolve_in(NodeArgs::default(), &env).unwrap();
        assert_eq!(config.detection.start_grace, Duration::from_secs(15));
        let env = env_of(&[("NODE_STATS_SOURCE", "Engine")]);
        assert_eq!(NodeConfig::resolve_in(NodeArgs::default(), &env).unwrap().stats_source, StatsSource::Engine);
        let err = NodeConfig::resolve_in(NodeArgs::default(), &env_of(&[("NODE_STATS_SOURCE", "kernel")]));
        let err = err.unwrap_err().to_string();
        assert!(err.starts_with("NODE_STATS_SOURCE (environment variable NODE_STATS_SOURCE)"), "{err}");
        assert!(err.contains("auto, cgroup, engine"), "{err}");
    }

    #[test]
    fn command_limits_come_from_every_layer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "commands_per_minute = 30\nscale_up_max_replicas = 4\n").unwrap();
        let file = path.display().to_string();
        let env = env_of(&[("HEMOSTAT_CONFIG", &file), ("NODE_SCALE_UP_MAX_REPLICAS", "6")]);
        let config = NodeConfig::resolve_in(NodeArgs::default(), &env).unwrap().execution;
        assert_eq!(config.commands_per_minute, 30, "file over default");
        assert_eq!(config.scale_up_max_replicas, 6, "env over file");
        assert_eq!(config.command_concurrency, DEFAULT_CONCURRENCY, "default");
        let config = resolve(NodeArgs { command_concurrency: Some(0), ..Default::default() }).unwrap().execution;
        assert_eq!(config.command_concurrency, 1, "at least one command at a time");
        let err = NodeConfig::resolve_in(NodeArgs::default(), &env_of(&[("NODE_COMMANDS_PER_MINUTE", "many")]));
        let err = err.unwrap_err().to_string();
        assert!(err.starts_with("NODE_COMMANDS_PER_MINUTE (environment variable NODE_COMMANDS_PER_MINUTE)"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting_and_their_source() {
        let err = NodeConfig::resolve_in(NodeArgs::default(), &env_of(&[("NODE_HEARTBEAT_SECONDS", "0")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "NODE_HEARTBEAT_SECONDS (environment variable NODE_HEARTBEAT_SECONDS): must be at least 1"
        );
        let env = env_of(&[("HEMOSTAT_COORDINATOR", "http://c:1")]);
        let err = NodeConfig::resolve_in(NodeArgs::default(), &env).unwrap_err().to_string();
        assert!(
            err.starts_with("HEMOSTAT_COORDINATOR (environment variable HEMOSTAT_COORDINATOR)")
                && err.contains("mutual TLS"),
            "{err}"
        );
        let err =
            resolve(NodeArgs { allowed_actions: Some("restart,reboot".into()), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("unknown action \"reboot\""), "{err}");
        let env = env_of(&[("NODE_LOCAL_POLICY", "perhaps")]);
        let err = NodeConfig::resolve_in(NodeArgs::default(), &env).unwrap_err().to_string();
        assert!(err.starts_with("NODE_LOCAL_POLICY (environment variable NODE_LOCAL_POLICY)"), "{err}");
    }
}
