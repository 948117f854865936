//! The state store a benchmark's coordinators run on, chosen with `STORE`: `embedded` (the default: each
//! coordinator its own redb file), `redis` (one redis-server of the test kit, append-only on) or `cluster` (a
//! Redis Cluster of three masters with one replica each). [`BenchStore`] starts it, starts the
//! `hemostat-coordinator` processes on it with the environment that points them there (`COORDINATORS` of
//! them share a Redis; the embedded store takes one), and reads what the Redis servers did: CPU from /proc,
//! commands, network bytes and calls per command from `INFO` ([`StoreActivity`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::loadgen::{CoordinatorProcess, process_usage};
use crate::pki::TestPki;
use crate::redis::{self, RedisServer};
use crate::redis_cluster::RedisCluster;

/// Masters of the benchmark's Redis Cluster.
const CLUSTER_MASTERS: usize = 3;
/// Replicas of each master of the benchmark's Redis Cluster.
const CLUSTER_REPLICAS_PER_MASTER: usize = 1;

/// Which store a benchmark runs its coordinators on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded store (redb) in each coordinator's data folder.
    Embedded,
    /// One redis-server.
    Redis,
    /// A Redis Cluster of three masters with a replica each.
    Cluster,
}

impl StoreKind {
    /// The store `STORE` names (`embedded`, `redis`, `cluster`); the embedded store when it is unset.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("STORE") {
            Err(_) => Ok(StoreKind::Embedded),
            Ok(name) => match name.as_str() {
                "embedded" => Ok(StoreKind::Embedded),
                "redis" => Ok(StoreKind::Redis),
                "cluster" => Ok(StoreKind::Cluster),
                other => Err(format!("STORE must be embedded, redis or cluster, not {other:?}")),
            },
        }
    }

    /// How a report names it.
    pub fn describe(self) -> &'static str {
        match self {
            StoreKind::Embedded => "embedded store",
            StoreKind::Redis => "one Redis",
            StoreKind::Cluster => "Redis Cluster of 3 masters × 1 replica",
        }
    }

    /// Whether `coordinators` coordinator processes can run on this store: at least one, and more than one
    /// only on a Redis, which they share (the embedded store is one coordinator's own file).
    pub fn check_coordinators(self, coordinators: usize) -> Result<(), String> {
        match (self, coordinators) {
            (_, 0) => Err("COORDINATORS must be at least 1".to_owned()),
            (StoreKind::Embedded, 1) => Ok(()),
            (StoreKind::Embedded, n) => Err(format!(
                "COORDINATORS={n} needs a store the coordinators share: the embedded store is one coordinator's \
                 own file; use STORE=redis or STORE=cluster"
            )),
            _ => Ok(()),
        }
    }
}

/// The running store of a benchmark.
pub enum BenchStore {
    /// Nothing to run: each coordinator opens its own embedded store.
    Embedded,
    /// One redis-server, stopped on drop.
    Redis(RedisServer),
    /// A Redis Cluster, stopped on drop.
    Cluster(RedisCluster),
}

impl BenchStore {
    /// Starts the store `kind` and waits until it answers (a cluster: until every replica synced).
    pub fn start(kind: StoreKind) -> Self {
        match kind {
            StoreKind::Embedded => BenchStore::Embedded,
            StoreKind::Redis => BenchStore::Redis(RedisServer::start()),
            StoreKind::Cluster => {
                BenchStore::Cluster(RedisCluster::start(CLUSTER_MASTERS, CLUSTER_REPLICAS_PER_MASTER))
            }
        }
    }

    /// Which store it is.
    pub fn kind(&self) -> StoreKind {
        match self {
            BenchStore::Embedded => StoreKind::Embedded,
            BenchStore::Redis(_) => StoreKind::Redis,
            BenchStore::Cluster(_) => StoreKind::Cluster,
        }
    }

    /// The environment that points a coordinator at this store (none for the embedded store: the
    /// coordinator's data folder holds it). A cluster's safety writes wait for one replica, as in production.
    pub fn coordinator_env(&self) -> Vec<(&'static str, String)> {
        match self {
            BenchStore::Embedded => Vec::new(),
            BenchStore::Redis(server) => vec![("REDIS_URL", server.url())],
            BenchStore::Cluster(cluster) => vec![
                ("REDIS_URL", cluster.url()),
                ("REDIS_CLUSTER", "true".to_owned()),
                ("REDIS_WAIT_REPLICAS", CLUSTER_REPLICAS_PER_MASTER.to_string()),
            ],
        }
    }

    /// Starts `count` coordinator processes of `binary` on this store, each with its own data folder and
    /// port, all with the certificates of `pki`, logging at `LOG_LEVEL` warn; returns once every one listens.
    pub fn start_coordinators(
        &self,
        binary: &Path,
        pki: &TestPki,
        count: usize,
    ) -> Result<Vec<CoordinatorProcess>, String> {
        self.kind().check_coordinators(count)?;
        let mut env = vec![("LOG_LEVEL", "warn".to_owned())];
        env.extend(self.coordinator_env());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        (0..count).map(|_| CoordinatorProcess::start_with(binary, pki, &env, None)).collect()
    }

    /// What each Redis server has done since it started (nothing on the embedded store).
    pub fn counters(&self) -> Result<Vec<ServerCounters>, String> {
        match self {
            BenchStore::Embedded => Ok(Vec::new()),
            BenchStore::Redis(server) => {
                let pid = server.pid().ok_or("the redis-server is stopped")?;
                Ok(vec![ServerCounters::read(server.port(), pid, true)?])
            }
            BenchStore::Cluster(cluster) => {
                let masters = cluster.masters();
                cluster
                    .live_ports()
                    .into_iter()
                    .map(|port| {
                        let pid = cluster.pid(port).ok_or_else(|| format!("the server on {port} is stopped"))?;
                        ServerCounters::read(port, pid, masters.contains(&port))
                    })
                    .collect()
            }
        }
    }
}

/// The counters of one Redis server at one moment, since it started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerCounters {
    /// Its port.
    pub port: u16,
    /// Whether it is a master (serving slots, in a cluster; the one server otherwise).
    pub master: bool,
    /// User plus system CPU time of the redis-server process, seconds.
    pub cpu_seconds: f64,
    /// Commands processed (`total_commands_processed`; a replica counts the replication stream's too).
    pub commands: u64,
    /// Bytes received (`total_net_input_bytes`).
    pub net_input_bytes: u64,
    /// Bytes sent (`total_net_output_bytes`).
    pub net_output_bytes: u64,
    /// Memory in use now (`used_memory`), bytes.
    pub used_memory_bytes: u64,
    /// Calls per command (`INFO commandstats`), by lower-case command name (`psetex`, `mget`, ...).
    pub calls: BTreeMap<String, u64>,
}

impl ServerCounters {
    /// Reads the server on loopback `port` (process `pid`).
    pub fn read(port: u16, pid: u32, master: bool) -> Result<Self, String> {
        let cpu_seconds = process_usage(pid)?.cpu_seconds;
        let info = redis::info(port, &["stats", "commandstats", "memory"])?;
        Self::parse(&info, port, master, cpu_seconds)
    }

    /// The counters in `info`, the text of `INFO stats commandstats memory`.
    fn parse(info: &str, port: u16, master: bool, cpu_seconds: f64) -> Result<Self, String> {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| format!("INFO of the server on {port} has no {name}"))
        };
        let calls = info
            .lines()
            .filter_map(|l| {
                let (command, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
                Some((command.to_owned(), calls))
            })
            .collect();
        Ok(ServerCounters {
            port,
            master,
            cpu_seconds,
            commands: field("total_commands_processed")?,
            net_input_bytes: field("total_net_input_bytes")?,
            net_output_bytes: field("total_net_output_bytes")?,
            used_memory_bytes: field("used_memory")?,
            calls,
        })
    }
}

/// What a group of Redis servers (the masters, or all) did over a window, per second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerRates {
    /// Servers in the group.
    pub servers: usize,
    /// CPU, in percent of one core, summed over the group.
    pub cpu_percent: f64,
    /// Commands processed a second.
    pub commands: f64,
    /// Bytes received a second.
    pub net_input_bytes: f64,
    /// Bytes sent a second.
    pub net_output_bytes: f64,
    /// Memory in use at the end of the window, bytes.
    pub used_memory_bytes: u64,
    /// Calls a second per command, most called first.
    pub calls: Vec<(String, f64)>,
}

/// What the Redis servers of a store did between two readings of [`BenchStore::counters`]: the masters, and
/// every server (in a cluster the replicas also apply the replication stream).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreActivity {
    /// The masters.
    pub masters: ServerRates,
    /// Every server.
    pub all: ServerRates,
}

impl StoreActivity {
    /// The activity from `before` to `after`, `seconds` apart (servers matched by port; a server's role is
    /// the one it had at the end).
    pub fn between(before: &[ServerCounters], after: &[ServerCounters], seconds: f64) -> Self {
        let group = |masters_only: bool| {
            let mut rates = ServerRates::default();
            let mut calls: BTreeMap<String, f64> = BTreeMap::new();
            for end in after.iter().filter(|s| s.master || !masters_only) {
                let start = before.iter().find(|s| s.port == end.port).cloned().unwrap_or_default();
                let per_second = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
                rates.servers += 1;
                rates.cpu_percent += (end.cpu_seconds - start.cpu_seconds) / seconds * 100.0;
                rates.commands += per_second(start.commands, end.commands);
                rates.net_input_bytes += per_second(start.net_input_bytes, end.net_input_bytes);
                rates.net_output_bytes += per_second(start.net_output_bytes, end.net_output_bytes);
                rates.used_memory_bytes += end.used_memory_bytes;
                for (command, count) in &end.calls {
                    let earlier = start.calls.get(command).copied().unwrap_or(0);
                    *calls.entry(command.clone()).or_default() += per_second(earlier, *count);
                }
            }
            rates.calls = calls.into_iter().filter(|(_, rate)| *rate > 0.0).collect();
            rates.calls.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            rates
        };
        StoreActivity { masters: group(true), all: group(false) }
    }

    /// Rows of a report's markdown table (`| measure | value | goal |`): CPU, operations, network and
    /// memory of the masters and of every server, and the `top` commands by calls a second. None without
    /// a Redis.
    pub fn table_rows(&self, top: usize) -> Vec<String> {
        if self.all.servers == 0 {
            return Vec::new();
        }
        let replicated = self.all.servers > self.masters.servers;
        let both = |what: &dyn Fn(&ServerRates) -> String| {
            if replicated {
                format!("masters {}; all {} servers {}", what(&self.masters), self.all.servers, what(&self.all))
            } else {
                what(&self.all)
            }
        };
        let kib = |bytes: f64| bytes / 1024.0;
        let mut rows = vec![
            format!("| Redis CPU (redis-server) | {} | |", both(&|r| format!("{:.1} % of a core", r.cpu_percent))),
            format!("| Redis operations | {} | |", both(&|r| format!("{:.0}/s", r.commands))),
            format!(
                "| Redis network in / out | {} | |",
                both(&|r| format!("{:.1} / {:.1} KiB/s", kib(r.net_input_bytes), kib(r.net_output_bytes)))
            ),
            format!(
                "| Redis memory (used_memory) at the end | {} | |",
                both(&|r| format!("{:.1} MiB", r.used_memory_bytes as f64 / (1024.0 * 1024.0)))
            ),
        ];
        let top_calls = |r: &ServerRates| {
            let listed: Vec<String> = r
                .calls
                .iter()
                .take(top)
                .map(|(command, rate)| format!("{} {rate:.1}", command.to_uppercase()))
                .collect();
            if listed.is_empty() { "none".to_owned() } else { listed.join(", ") }
        };
        if replicated {
            rows.push(format!("| Redis top commands, calls/s, masters | {} | |", top_calls(&self.masters)));
            rows.push(format!("| Redis top commands, calls/s, all servers | {} | |", top_calls(&self.all)));
        } else {
            rows.push(format!("| Redis top commands, calls/s | {} | |", top_calls(&self.all)));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Stats\r\ntotal_connections_received:3\r\ntotal_commands_processed:120\r\n\
        total_net_input_bytes:5000\r\ntotal_net_output_bytes:7000\r\n\r\n# Commandstats\r\n\
        cmdstat_psetex:calls=100,usec=300,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_mget:calls=20,usec=80,usec_per_call=4.00,rejected_calls=0,failed_calls=0\r\n\r\n\
        # Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n";

    #[test]
    fn info_is_read_into_counters() {
        let counters = ServerCounters::parse(INFO, 7000, true, 1.5).unwrap();
        assert_eq!(counters.commands, 120);
        assert_eq!((counters.net_input_bytes, counters.net_output_bytes), (5000, 7000));
        assert_eq!(counters.used_memory_bytes, 1 << 20);
        assert_eq!(counters.calls.get("psetex"), Some(&100));
        assert_eq!(counters.calls.get("mget"), Some(&20));
        assert!(ServerCounters::parse("# Stats\r\n", 7000, true, 0.0).is_err(), "a missing field is an error");
    }

    #[test]
    fn activity_is_per_second_summed_over_masters_and_over_all() {
        let at = |port, master, cpu, commands, psetex| ServerCounters {
            port,
            master,
            cpu_seconds: cpu,
            commands,
            calls: [("psetex".to_owned(), psetex)].into(),
            ..Default::default()
        };
        let before = [at(1, true, 1.0, 100, 50), at(2, false, 0.5, 10, 0)];
        let after = [at(1, true, 3.0, 300, 150), at(2, false, 1.5, 110, 100)];
        let activity = StoreActivity::between(&before, &after, 10.0);
        assert_eq!(activity.masters.servers, 1);
        assert!((activity.masters.cpu_percent - 20.0).abs() < 1e-9);
        assert!((activity.masters.commands - 20.0).abs() < 1e-9);
        assert_eq!(activity.masters.calls, [("psetex".to_owned(), 10.0)]);
        assert_eq!(activity.all.servers, 2);
        assert!((activity.all.cpu_percent - 30.0).abs() < 1e-9);
        assert_eq!(activity.all.calls, [("psetex".to_owned(), 20.0)]);
        assert_eq!(activity.table_rows(5).len(), 6, "masters and all, each with its top commands");
    }
}
