//! The shared test kit: everything the cross-component tests need, made once here instead of in every test.
//!
//! - [`loadgen`]: node sessions streaming metrics into a `hemostat-coordinator` process, for the benches;
//!   [`bench_store`]: the store those coordinators run on (embedded, one Redis, a Redis Cluster).
//! - [`pki`]: a throw-away CA with coordinator, node and operator certificates (and a foreign CA).
//! - [`redis`]: a real `redis-server` on a free loopback port, one per test, stopped on drop.
//! - [`redis_cluster`]: a real Redis Cluster (masters and replicas) that a test can fail over.
//! - [`docker`]: the busybox test image (built locally, no registry) and containers scoped to one test by a
//!   label, removed on drop, so tests run in parallel without touching each other's containers.
//! - [`compose`]: a Compose project of one test, run with the real `docker-compose`, down on drop.
//! - [`fleet`]: a coordinator and nodes running in-process, each on its own runtime so a test can kill one
//!   abruptly; operator clients.
//! - [`netlab`]: hosts with their own addresses (network namespaces on a bridge) that a test can cut off.
//! - [`llm`]: a local HTTP server that speaks the OpenAI and Anthropic wire formats from a script.
//! - [`peer`]: a stand-in coordinator that sends a node whatever commands a test scripts; [`node_peer`]: a
//!   stand-in node that sends a coordinator whatever messages a test scripts.
//! - [`logs`]: this test process's log lines, captured to read what the node said.
//! - [`eventually`]: wait for a condition with a deadline, instead of sleeping and hoping.
//! - [`spool`]: a node's spool folder read back, and damaged on purpose.
//! - [`webhook`]: a local Slack, Discord, Teams, ntfy, Gotify or JSON webhook that records what it gets and
//!   fails when told; [`chat_formats`]: what Discord and Teams accept, for it to refuse the rest.
//! - [`smtp`]: a small real SMTP server (STARTTLS, AUTH) that records the mail it gets.
//! - [`alertmanager`], [`prometheus`]: the real programs (Debian's packages) on free ports ([`daemon`]).
//! - [`podman`]: a real `podman system service` on a socket of its own, with the test image loaded.
//! - [`docker_proxy`]: this machine's Docker socket behind a TCP port, TLS with client certificates (a
//!   remote `dockerd --tlsverify`) or plain (a socket proxy).

pub mod alertmanager;
pub mod bench_store;
pub mod chat_formats;
pub mod compose;
pub mod daemon;
pub mod docker;
pub mod docker_proxy;
pub mod eventually;
pub mod fleet;
pub mod images;
pub mod llm;
pub mod loadgen;
pub mod logs;
pub mod netlab;
pub mod node_peer;
pub mod peer;
pub mod pki;
pub mod podman;
pub mod prometheus;
pub mod redis;
pub mod redis_cluster;
pub mod smtp;
pub mod spool;
pub mod webhook;

pub use eventually::eventually;

/// Sets up what every test needs once per process: the crypto provider and logs (`LOG_LEVEL`, default warn).
pub fn init() {
    hemostat_pki::install_crypto_provider();
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(level).with_test_writer().try_init();
}
