//! HemoStat's cross-component tests, one module per area, in one test binary: the workspace is linked
//! once, not once per file. `tests/run.sh` runs them with cargo-nextest, which gives each test a process of
//! its own (the node's instruments are per process) and runs the few tests that need a quiet machine alone
//! (`.config/nextest.toml`).

mod alerting;
mod alerting_alertmanager;
mod alerting_prometheus;
mod alerting_sinks;
mod analysis;
mod command_results;
mod dashboard;
mod dependents;
mod deploy;
mod detection_latency;
mod diagnostics;
mod episodes;
mod exits;
mod fleet_api;
mod fleet_directory;
mod fleet_faults;
mod grace;
mod healing;
mod host_disk;
mod intake_limits;
mod metrics;
mod monitoring;
mod multi_coordinator;
mod paging;
mod policy_labels;
mod probes;
mod redis_failover;
mod remediation;
mod reporting_faults;
mod restart_policy;
mod rolling_upgrade;
mod scale;
mod security;
mod stats_sources;
mod store_conformance;
