//! What a node reports survives hostile input and damage, on the real engine with the real coordinator: a
//! container with a label of megabytes is cut to its bounds (and the node says so) while a crash next to it
//! is healed as usual; a damaged spool record loses only itself; an emptied acknowledgement file starts a
//! new stream instead of having new reports dropped as duplicates.

use std::time::Duration;

use hemostat_proto::v1 as pb;
use hemostat_tests::docker::crash_once;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{
    FleetClient, TestFleet, TestNode, container, events_of, free_metrics_addr, kinds, metric, remediated, scrape,
};
use hemostat_tests::spool::{damage_alert_of, is_alert_of, spooled};

/// A long-running container's script (exits at once on SIGTERM).
const SERVING: &str = "trap 'exit 0' TERM; sleep 86400 & wait";

/// Every `node_notice` event of the fleet, oldest first.
async fn notices(client: &FleetClient) -> Result<Vec<pb::Event>, String> {
    let request = pb::ListEventsRequest { types: vec![pb::EventType::NodeNotice as i32], ..Default::default() };
    client.clone().list_events(request).await.map(|r| r.into_inner().events).map_err(|s| s.to_string())
}

/// Waits for a `node_notice` event whose reason contains `text`.
async fn notice_saying(client: &FleetClient, text: &str) -> pb::Event {
    eventually(&format!("a node notice saying {text:?}"), Duration::from_secs(30), || async {
        let events = notices(client).await?;
        events.iter().find(|e| e.reason.contains(text)).cloned().ok_or_else(|| format!("{events:?}"))
    })
    .await
}

/// Waits until the container named `name` has been restarted since it last started at `before`.
async fn restarted(fleet: &TestFleet, name: &str, before: &str, deadline: Duration) {
    eventually(&format!("{name} restarted"), deadline, || async {
        let state = fleet.scope.state(name);
        if state.started_at != before && state.status == "running" { Ok(()) } else { Err(format!("{state:?}")) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_with_a_huge_label_is_cut_to_bounds_while_a_crash_next_to_it_is_healed_as_usual() {
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_owned();
    let metrics = free_metrics_addr();
    let fleet = TestFleet::start_with(
        |_| {},
        |config| {
            config.spool_dir = Some(spool_dir.clone());
            config.metrics_listen = Some(metrics);
        },
    )
    .await;
    let client = fleet.client.clone();
    let huge = "x".repeat(4_500_000);
    let big = fleet.scope.run_labelled("big", &[("blob", &huge)], SERVING).await;

    let crash = fleet.scope.run("crash", &[], &crash_once(1));
    let first_start = fleet.scope.state(&crash).started_at;
    restarted(&fleet, &crash, &first_start, Duration::from_secs(10)).await;
    let events = remediated(&client, &crash, Duration::from_secs(20)).await;
    assert!(kinds(&events).contains(&"remediation_needed".to_owned()), "{:?}", kinds(&events));

    let notice = notice_saying(&client, "label \"blob\"'s value cut by 4.5 MB").await;
    assert_eq!(notice.container_name, big);
    assert!(notice.reason.contains("to keep every message within the coordinator's limit"), "{}", notice.reason);
    let listed = eventually("the big container listed", Duration::from_secs(10), || container(&client, &big)).await;
    let blob = &listed.state.unwrap().labels["blob"];
    assert!(blob.len() <= 4096 && blob.ends_with("…[truncated 4.5 MB]"), "{}", &blob[blob.len() - 40..]);

    // Nothing piles up behind it: the spool drains and stays small.
    eventually("the spool drained", Duration::from_secs(20), || async {
        let depth = metric(&scrape(metrics).await?, "hemostat_node_spool_depth").unwrap_or(f64::MAX);
        let size = std::fs::metadata(spool_dir.join("spool.log")).map_err(|e| e.to_string())?.len();
        if depth <= 2.0 && size < 256 << 10 { Ok(()) } else { Err(format!("depth {depth}, log {size} B")) }
    })
    .await;
    let text = scrape(metrics).await.unwrap();
    assert!(metric(&text, "hemostat_node_message_cuts_total{field=\"label_value\"}").unwrap_or(0.0) >= 1.0, "{text}");
    assert_eq!(notices(&client).await.unwrap().iter().filter(|e| e.container_name == big).count(), 1, "said once");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emptied_acknowledgement_file_and_a_damaged_record_lose_only_the_damaged_record() {
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_owned();
    // No metrics reports: once the first reports are acknowledged, the spool is empty.
    let configure = |config: &mut hemostat_node::NodeConfig| {
        config.spool_dir = Some(spool_dir.clone());
        config.poll_interval = Duration::from_secs(3600);
        config.metrics_listen = Some(free_metrics_addr());
    };
    let mut fleet = TestFleet::start_with(|_| {}, configure).await;
    let stream = |dir: &std::path::Path| std::fs::read_to_string(dir.join("stream")).unwrap();

    // Everything acknowledged, then `acked` emptied between two node runs: the node would start again at 1
    // under the same stream, and the coordinator would drop every new report as a duplicate.
    // Some thirty reports processed first (a start and an exit of each), so that reused numbers would be
    // taken for duplicates.
    let warm: Vec<String> = (0..15).map(|n| fleet.scope.run(&format!("warm{n}"), &[], "exit 0")).collect();
    for name in &warm {
        eventually(&format!("{name} listed"), Duration::from_secs(20), || container(&fleet.client, name)).await;
    }
    eventually("the spool acknowledged", Duration::from_secs(20), || async {
        let left = spooled(&spool_dir, 100)?;
        if left.is_empty() { Ok(()) } else { Err(format!("{} messages", left.len())) }
    })
    .await;
    let old_stream = stream(&spool_dir);
    fleet.node.kill();
    std::fs::write(spool_dir.join("acked"), "").unwrap();
    let mut config = fleet.node_config();
    configure(&mut config);
    let mut node = TestNode::start(config);
    let after = fleet.scope.run("after", &[], &crash_once(2));
    remediated(&fleet.client, &after, Duration::from_secs(30)).await;
    assert_ne!(stream(&spool_dir), old_stream, "a new stream");
    notice_saying(&fleet.client, "started a new message stream").await;

    // Reports spooled while the coordinator is away, one of them damaged between two node runs.
    fleet.coordinator.kill();
    let crashes: Vec<String> = ["b", "c", "d"].iter().map(|n| fleet.scope.run(n, &[], &crash_once(3))).collect();
    eventually("the three alerts spooled", Duration::from_secs(30), || async {
        let spooled = spooled(&spool_dir, 1000)?;
        let missing: Vec<&String> =
            crashes.iter().filter(|name| !spooled.iter().any(|m| is_alert_of(m, name))).collect();
        if missing.is_empty() { Ok(()) } else { Err(format!("no alert yet of {missing:?}")) }
    })
    .await;
    node.kill();
    damage_alert_of(&spool_dir, &crashes[1]);
    std::fs::remove_file(spool_dir.join("acked")).unwrap();
    let metrics = free_metrics_addr();
    let mut config = fleet.node_config();
    configure(&mut config);
    config.metrics_listen = Some(metrics);
    let _node = TestNode::start(config);
    fleet.coordinator.restart();
    fleet.reconnect().await;

    for name in [&crashes[0], &crashes[2]] {
        remediated(&fleet.client, name, Duration::from_secs(30)).await;
    }
    let damaged = notice_saying(&fleet.client, "skipped 1 damaged records").await;
    assert!(damaged.reason.contains("every intact record before and after them is kept"), "{}", damaged.reason);
    notice_saying(&fleet.client, "missing while the spool has messages").await;
    let lost = events_of(&fleet.client, &crashes[1]).await.unwrap();
    assert!(!kinds(&lost).contains(&"health_alert".to_owned()), "only the damaged alert is lost: {:?}", kinds(&lost));
    assert_eq!(fleet.scope.state(&crashes[1]).status, "exited");
    let text = scrape(metrics).await.unwrap();
    assert_eq!(metric(&text, "hemostat_node_spool_damaged_records_total"), Some(1.0), "{text}");
}
