//! The coordinator's decision path, measured in-process:
//! - rule decisions per second (the analyzer alone, an alert with 60 samples);
//! - the coordinator's added latency per alert (record the alert, read and append the history, decide,
//!   record the decision), p50 and p99, with the embedded store and with a real redis-server;
//! - budget decisions per second through each store (the atomic check-and-record).
//!
//! `cargo bench -p hemostat-tests --bench decisions -- [alerts]` (default 2000).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hemostat_coordinator::analysis::exit::Assessed;
use hemostat_coordinator::analysis::{Analyzer, AnalyzerConfig};
use hemostat_coordinator::container::{
    AlertReport, Anomaly, AnomalyKind, ContainerFacts, Health, Metrics, Severity, Status,
};
use hemostat_coordinator::policy::{Budget, Draw};
use hemostat_coordinator::registry::{NodeAbilities, Registry};
use hemostat_coordinator::remediation::{RemediationConfig, Remediator};
use hemostat_coordinator::store::{self, StateStore, StoreConfig};
use hemostat_tests::redis::RedisServer;

fn alert(i: usize) -> AlertReport {
    let now = SystemTime::now();
    let recent = (0..60)
        .map(|s| Metrics {
            sampled_at: Some(now - Duration::from_secs(60 - s)),
            cpu_percent: Some(if s > 55 { 92.0 } else { 20.0 }),
            memory_used: 100 << 20,
            memory_limit: 1 << 30,
            memory_percent: 9.8,
            ..Default::default()
        })
        .collect();
    AlertReport {
        container: ContainerFacts {
            id: format!("id{i}"),
            name: format!("web{}", i % 100),
            image: "shop/web".into(),
            status: Status::Running,
            health: Health::None,
            exit_code: 0,
            restart_policy: "no".into(),
            labels: Default::default(),
            started_at: None,
            memory_limit: 1 << 30,
            cpu_limit: 0.0,
        },
        anomalies: vec![Anomaly {
            kind: AnomalyKind::HighCpu,
            severity: Severity::High,
            threshold: 85.0,
            actual: 92.0,
        }],
        metrics: None,
        exit: None,
        observed_at: Some(now),
        reasserted: false,
        recent,
        log_tail: vec!["a log line".into(); 20],
        health_outputs: vec![],
        local_restart: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((p / 100.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn per_alert(name: &str, store: Arc<dyn StateStore>, alerts: usize) {
    let remediator = Arc::new(Remediator::new(
        store,
        Arc::new(Registry::default()),
        Analyzer::new(AnalyzerConfig::default()),
        RemediationConfig::default(),
    ));
    let mut latencies = Vec::with_capacity(alerts);
    for i in 0..alerts {
        let alert = alert(i);
        let started = Instant::now();
        remediator.on_alert("bench", alert).await.unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "added latency per alert ({name}, {alerts} alerts): p50 {:?}  p99 {:?}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0)
    );
}

async fn budget_rate(name: &str, store: Arc<dyn StateStore>) {
    let n = 5000;
    let started = Instant::now();
    for i in 0..n {
        store.try_begin_action(&format!("bench/c{i}"), 1_800_000_000_000, &Budget::DEFAULT, Draw::NONE).await.unwrap();
    }
    println!("budget decisions ({name}): {:.0}/s, one after another", n as f64 / started.elapsed().as_secs_f64());
}

#[tokio::main]
async fn main() {
    let alerts: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000);
    hemostat_tests::init();
    let analyzer = Analyzer::new(AnalyzerConfig::default());
    let sample = Assessed::new(alert(0));
    let n = 20_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(analyzer.analyze(&sample, &[], 0, &NodeAbilities::default()).await);
    }
    println!("rule decisions: {:.0}/s ({:?} each)", n as f64 / started.elapsed().as_secs_f64(), started.elapsed() / n);

    let dir = tempfile::tempdir().unwrap();
    let embedded = store::open(&StoreConfig::Embedded { path: dir.path().join("state.redb") }).await.unwrap();
    let redis = RedisServer::start();
    let redis_store = store::open(&StoreConfig::Redis { url: redis.url() }).await.unwrap();
    per_alert("embedded", embedded.clone(), alerts).await;
    per_alert("redis", redis_store.clone(), alerts).await;
    budget_rate("embedded", embedded).await;
    let (before, scripts_before) =
        (redis.commands_processed(), redis.command_calls("evalsha") + redis.command_calls("eval"));
    budget_rate("redis", redis_store).await;
    let scripts = redis.command_calls("evalsha") + redis.command_calls("eval") - scripts_before;
    // Two INFO commands of ours sit between the readings; every other command ran inside the scripts.
    let inside = redis.commands_processed() - before - 2 - scripts;
    println!(
        "redis round trips per budget decision: {:.2} (one EVALSHA; {:.1} commands run inside it)",
        scripts as f64 / 5000.0,
        inside as f64 / 5000.0
    );
}
