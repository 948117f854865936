//! What the coordinator keeps of what a node sends is bounded, whatever the node: a hostile node (the kit's
//! [`NodePeer`], with a valid node certificate) sending a hundred thousand containers with big labels,
//! megabyte strings and log tails cannot grow the coordinator past its intake limits; what is cut is
//! counted in `/metrics` and said in an `input_refused` event, and the node's stream goes on.

use std::time::Duration;

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{
    FleetClient, TestCoordinator, coordinator_config, free_metrics_addr, kinds, metric, operator, scrape,
};
use hemostat_tests::loadgen::process_usage;
use hemostat_tests::node_peer::{NodePeer, container, crash_alert};
use hemostat_tests::pki::TestPki;
use pb::session_request::Body;

/// Every `input_refused` event of the fleet, oldest first.
async fn refusals(client: &FleetClient) -> Result<Vec<pb::Event>, String> {
    let request = pb::ListEventsRequest { types: vec![pb::EventType::InputRefused as i32], ..Default::default() };
    client.clone().list_events(request).await.map(|r| r.into_inner().events).map_err(|s| s.to_string())
}

/// The node's containers as the coordinator lists them.
async fn containers_of(client: &FleetClient, node: &str) -> Vec<pb::Container> {
    let request = pb::ListContainersRequest { node: node.to_owned(), ..Default::default() };
    client.clone().list_containers(request).await.expect("list containers").into_inner().containers
}

/// This process's resident memory, KiB (nextest runs each test in a process of its own).
fn rss_kib() -> u64 {
    process_usage(std::process::id()).expect("/proc").rss_kib
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_node_cannot_grow_the_coordinator_past_its_intake_limits() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_metrics_addr();
    let mut config = coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") });
    config.metrics_listen = Some(metrics);
    config.intake.containers_per_node = 1000;
    let coordinator = TestCoordinator::start(config);
    let client = operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    let mut rogue = NodePeer::connect(&coordinator.endpoint(), &pki.node("rogue"), "rogue", "s1").await.unwrap();
    let before = rss_kib();

    // 100,000 containers in 100 parts, each with 1.5 KB of labels: about 200 MB kept without a limit.
    let label = "v".repeat(1500);
    const PARTS: u32 = 100;
    for part in 0..PARTS {
        let containers = (0..1000)
            .map(|i| {
                let id = format!("{part:08x}{i:056x}");
                container(&id, &format!("app-{part}-{i}"), &[("blob", &label)])
            })
            .collect();
        let snapshot = pb::ContainerSnapshot { containers, part, more: part + 1 < PARTS };
        rogue.send_acked(Body::Snapshot(snapshot), Duration::from_secs(30)).await.unwrap();
    }
    // One container named with a quarter megabyte, with a label of one and a half, crashing with a log tail
    // of one and a half (the whole within the transport's 4 MiB a message).
    let huge_name = format!("huge\n{}", "n".repeat(256 << 10));
    let crashed = container(&"c".repeat(64), &huge_name, &[("blob", &"x".repeat(1536 << 10))]);
    let alert = crash_alert(crashed, (0..1500).map(|i| format!("log line {i} {}", "l".repeat(1000))).collect());
    rogue.send_acked(Body::HealthAlert(alert), Duration::from_secs(30)).await.unwrap();
    let after = rss_kib();

    let kept = containers_of(&client, "rogue").await;
    assert_eq!(kept.len(), 1000, "the node's containers are held to the limit");
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("resident memory grew by {grown_mib} MiB");
    assert!(grown_mib < 80, "the coordinator grew by {grown_mib} MiB for a node sending about 200 MB");

    let events = eventually("an input_refused event for each limit", Duration::from_secs(10), || async {
        let events = refusals(&client).await?;
        let said = |what: &str| events.iter().any(|e| e.node == "rogue" && e.reason.contains(what));
        if said("more than 1000 containers") && said("strings longer than") && said("evidence") && said("labels over") {
            Ok(events)
        } else {
            Err(format!("{:?}", events.iter().map(|e| &e.reason).collect::<Vec<_>>()))
        }
    })
    .await;
    assert_eq!(events.len(), 4, "once per limit in a session, not once per cut");

    let text = scrape(metrics).await.unwrap();
    let cut = |limit: &str| metric(&text, &format!("hemostat_intake_cuts_total{{limit=\"{limit}\"}}")).unwrap_or(0.0);
    assert_eq!(cut("containers"), 99_001.0, "the 99,000 beyond the limit and the crashed one: {text}");
    assert!(cut("string") >= 1.0 && cut("labels") >= 1.0 && cut("evidence") >= 1.0, "{text}");

    // The alert was still handled, from what was kept: its name cut (no line break survives whole), its
    // evidence within the limit.
    let alerts = eventually("the crash's alert recorded", Duration::from_secs(10), || async {
        let request = pb::ListEventsRequest {
            types: vec![pb::EventType::HealthAlert as i32],
            node: "rogue".into(),
            ..Default::default()
        };
        let events = client.clone().list_events(request).await.map_err(|s| s.to_string())?.into_inner().events;
        if events.is_empty() { Err("none yet".to_owned()) } else { Ok(events) }
    })
    .await;
    let recorded = &alerts[0];
    assert!(recorded.container_name.len() <= 1024, "{}", recorded.container_name.len());
    assert!(recorded.container_name.contains("…[cut "), "{}", &recorded.container_name[..64]);
    let all = eventually("the alert decided", Duration::from_secs(10), || async {
        let request = pb::ListEventsRequest { node: "rogue".into(), page_size: 1000, ..Default::default() };
        let all = client.clone().list_events(request).await.map_err(|s| s.to_string())?.into_inner().events;
        let decided =
            all.iter().any(|e| matches!(e.r#type(), pb::EventType::RemediationNeeded | pb::EventType::FalseAlarm));
        if decided { Ok(all) } else { Err(format!("{:?}", kinds(&all))) }
    })
    .await;
    for event in &all {
        assert!(event.container_name.len() <= 1024 && event.evidence.len() <= 3 * 64 * 1024, "{event:?}");
    }

    // And the stream goes on: a later report is processed.
    let seq = rogue.send_acked(Body::Heartbeat(pb::Heartbeat::default()), Duration::from_secs(10)).await;
    assert!(seq.is_ok(), "{seq:?}");
}
