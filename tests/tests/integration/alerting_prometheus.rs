//! Operators who run Prometheus: a real Prometheus (Debian's `prometheus`) scrapes the coordinator's and
//! the node's `/metrics`, both targets are up, and HemoStat's series are there, counting a real
//! notification.

use std::time::Duration;

use hemostat_tests::docker::crash_once;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, free_metrics_addr, remediated};
use hemostat_tests::prometheus::Prometheus;
use hemostat_tests::webhook::WebhookServer;

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_coordinator_and_the_node() {
    let (coordinator_addr, node_addr) = (free_metrics_addr(), free_metrics_addr());
    let hook = WebhookServer::start().await;
    let hook_url = hook.url();
    let fleet = TestFleet::start_with(
        move |config| {
            config.metrics_listen = Some(coordinator_addr);
            config.alerting.webhook_url = Some(hook_url);
        },
        |config| config.metrics_listen = Some(node_addr),
    )
    .await;
    let prometheus = Prometheus::start(&[coordinator_addr, node_addr]).await;

    let targets = eventually("both targets up", Duration::from_secs(30), || async {
        let targets = prometheus.targets().await?;
        let up = targets.iter().filter(|(_, health)| health == "up").count();
        if up == 2 { Ok(targets) } else { Err(format!("{targets:?}")) }
    })
    .await;
    let urls: Vec<&str> = targets.iter().map(|(url, _)| url.as_str()).collect();
    for addr in [coordinator_addr, node_addr] {
        assert!(urls.contains(&format!("http://{addr}/metrics").as_str()), "{addr} in {urls:?}");
    }
    let connected = eventually("hemostat_nodes_connected", Duration::from_secs(30), || async {
        let result = prometheus.query("hemostat_nodes_connected").await?;
        result.first().map(|(_, value)| *value).ok_or_else(|| "no series yet".to_owned())
    })
    .await;
    assert_eq!(connected, 1.0, "the coordinator's gauge: one node");
    let watched = eventually("hemostat_node_containers_watched", Duration::from_secs(30), || async {
        let result = prometheus.query("hemostat_node_containers_watched").await?;
        result.first().cloned().ok_or_else(|| "no series yet".to_owned())
    })
    .await;
    assert_eq!(watched.0["instance"], node_addr.to_string(), "the node's series, from the node: {watched:?}");

    // A real crash, healed and notified: Prometheus reads the notification counted.
    let web = fleet.scope.run("web", &[], &crash_once(1));
    remediated(&fleet.client, &web, Duration::from_secs(20)).await;
    eventually("the notification counted in Prometheus", Duration::from_secs(30), || async {
        let result = prometheus.query("sum(hemostat_notifications_sent_total)").await?;
        match result.first() {
            Some((_, sent)) if *sent >= 1.0 => Ok(()),
            other => Err(format!("{other:?}; the webhook has {}", hook.delivered().len())),
        }
    })
    .await;
}
