//! Prometheus metrics after a known scenario on the real Docker engine: one container crashes once and is
//! healed, and the coordinator's and the node's `/metrics` (scraped over HTTP) count exactly that.

use std::net::SocketAddr;
use std::time::Duration;

use hemostat_proto::v1 as pb;
use hemostat_tests::docker::crash_once;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, free_metrics_addr, kinds, remediated, scrape};

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
    // The instruments are per process: read what this scenario adds to them.
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
