//! Prometheus metrics after a known scenario on the real Docker engine: one container crashes once and is
//! healed, and the coordinator's and the node's `/metrics` (scraped over HTTP) count exactly that.

use std::net::SocketAddr;
use std::time::Duration;

use hemostat_coordinator::CoordinatorConfig;
use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::docker::crash_once;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, TestCoordinator, TestFleet, free_metrics_addr, kinds, remediated, scrape};
use hemostat_tests::pki::TestPki;

/// One scrape, read by series.
struct Scrape(String);

impl Scrape {
    async fn of(addr: SocketAddr) -> Self {
        Scrape(eventually(&format!("metrics on {addr}"), Duration::from_secs(5), || scrape(addr)).await)
    }

    /// The value of the sample written exactly `series` (name and labels as exposed); 0 when absent, as
    /// Prometheus reads a counter that was never incremented.
    fn get(&self, series: &str) -> f64 {
        self.0.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
    }

    /// Whether the series is exposed at all.
    fn has(&self, series: &str) -> bool {
        self.0.lines().any(|line| line.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_one_crash_is_healed_the_counters_read_what_happened() {
    let (coordinator_addr, node_addr) = (free_metrics_addr(), free_metrics_addr());
    let s = TestFleet::start_with(
        |config| config.metrics_listen = Some(coordinator_addr),
        |config| config.metrics_listen = Some(node_addr),
    )
    .await;
    // Read what this scenario adds (the node's instruments are per process).
    let (c0, n0) = (Scrape::of(coordinator_addr).await, Scrape::of(node_addr).await);

    let web = s.scope.run("web", &[], &crash_once(3));
    let events = remediated(&s.client, &web, Duration::from_secs(20)).await;
    assert_eq!(kinds(&events), ["health_alert", "remediation_needed", "remediation_complete"], "{events:?}");
    assert_eq!(events[2].outcome(), pb::Outcome::Success);

    // The result's event is readable a moment before its counter moves: wait for the counter, then read all.
    let success = "hemostat_actions_total{action=\"restart\",result=\"success\"}";
    let c = eventually("the restart counted", Duration::from_secs(5), || async {
        let c = Scrape(scrape(coordinator_addr).await?);
        if c.get(success) - c0.get(success) >= 1.0 { Ok(c) } else { Err(c.0) }
    })
    .await;
    let n = Scrape::of(node_addr).await;
    let added = |now: &Scrape, before: &Scrape, series: &str| now.get(series) - before.get(series);

    // The coordinator: one exit alert, one rules decision to restart, one verified restart, nothing else.
    for (series, expected) in [
        ("hemostat_alerts_total{anomaly=\"non_zero_exit\"}", 1.0),
        ("hemostat_events_total{type=\"health_alert\"}", 1.0),
        ("hemostat_events_total{type=\"remediation_needed\"}", 1.0),
        ("hemostat_events_total{type=\"remediation_complete\"}", 1.0),
        ("hemostat_events_total{type=\"rejected\"}", 0.0),
        ("hemostat_decisions_total{method=\"rules\",decision=\"remediate\"}", 1.0),
        ("hemostat_decisions_total{method=\"rules\",decision=\"false_alarm\"}", 0.0),
        (success, 1.0),
        ("hemostat_actions_total{action=\"restart\",result=\"failed\"}", 0.0),
        ("hemostat_decision_latency_seconds_count{method=\"rules\"}", 1.0),
        ("hemostat_remediation_latency_seconds_count{action=\"restart\"}", 1.0),
    ] {
        assert_eq!(added(&c, &c0, series), expected, "{series} in\n{}", c.0);
    }
    assert_eq!(c.get("hemostat_nodes_connected"), 1.0, "{}", c.0);
    assert!(c.has("hemostat_spool_depth{node=\"host-a\"}"), "{}", c.0);
    assert!(c.has("hemostat_notifications_failed_total"), "{}", c.0);
    // Observed → decided is the rules' milliseconds (and the trip from node to coordinator); decided →
    // verified holds the restart and the node's one-second verification window.
    let decided = added(&c, &c0, "hemostat_decision_latency_seconds_sum{method=\"rules\"}");
    assert!((0.0..5.0).contains(&decided), "decision latency {decided}s");
    let verified = added(&c, &c0, "hemostat_remediation_latency_seconds_sum{action=\"restart\"}");
    assert!((1.0..15.0).contains(&verified), "remediation latency {verified}s");

    // The node: it sent that one alert, executed that one restart, and watches and polls the container.
    for (series, expected) in [
        ("hemostat_node_alerts_sent_total{anomaly=\"non_zero_exit\"}", 1.0),
        ("hemostat_node_commands_total{action=\"restart\",result=\"success\"}", 1.0),
        ("hemostat_node_commands_total{action=\"restart\",result=\"failed\"}", 0.0),
    ] {
        assert_eq!(added(&n, &n0, series), expected, "{series} in\n{}", n.0);
    }
    assert!(n.get("hemostat_node_containers_watched") >= 1.0, "{}", n.0);
    assert!(added(&n, &n0, "hemostat_node_docker_events_total{action=\"die\"}") >= 1.0, "{}", n.0);
    assert!(added(&n, &n0, "hemostat_node_docker_events_total{action=\"start\"}") >= 1.0, "{}", n.0);
    assert!(n.get("hemostat_node_poll_duration_seconds_count") >= 1.0, "{}", n.0);
    assert!(n.has("hemostat_node_spool_depth"), "{}", n.0);
    assert_eq!(n.get("hemostat_node_spool_dropped_total"), 0.0, "{}", n.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_coordinators_in_one_process_count_only_what_each_records() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let (dir_one, dir_two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (metrics_one, metrics_two) = (free_metrics_addr(), free_metrics_addr());
    let config = |dir: &tempfile::TempDir, metrics| CoordinatorConfig {
        metrics_listen: Some(metrics),
        ..fleet::coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") })
    };
    let one = TestCoordinator::start(config(&dir_one, metrics_one));
    let _two = TestCoordinator::start(config(&dir_two, metrics_two));

    // An admin's change on coordinator one is one event, recorded there only.
    let mut admin = fleet::operator(&pki, OperatorRole::Admin, one.addr()).await;
    admin.set_dry_run(pb::SetDryRunRequest { enabled: true }).await.unwrap();
    let series = "hemostat_events_total{type=\"operator_action\"}";
    let counted = eventually("the change counted by coordinator one", Duration::from_secs(5), || async {
        let c = Scrape(scrape(metrics_one).await?);
        if c.get(series) == 1.0 { Ok(c) } else { Err(c.0) }
    })
    .await;
    assert_eq!(counted.get(series), 1.0, "{}", counted.0);
    let other = Scrape::of(metrics_two).await;
    assert!(!other.has(series), "coordinator two recorded nothing, so counts nothing:\n{}", other.0);
    assert_eq!(other.get("hemostat_nodes_connected"), 0.0, "{}", other.0);
}
