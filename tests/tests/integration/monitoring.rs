//! The node's monitoring on the real Docker engine: metrics that agree with `docker stats`, each anomaly
//! produced by a container really doing the thing, alerts on change only, and nothing lost while the
//! coordinator is away or the node restarts.

use std::time::Duration;

use hemostat_node::NodeConfig;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;
use hemostat_tests::docker::crash_once;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, TestNode, alerted, container, events_of, kinds, remediated};
use hemostat_tests::spool::{is_alert_of, spooled};

async fn setup_with(configure: impl FnOnce(&mut NodeConfig)) -> TestFleet {
    TestFleet::start_with(|_| {}, configure).await
}

async fn setup() -> TestFleet {
    TestFleet::start().await
}

fn percent(text: &str) -> f64 {
    text.trim().trim_end_matches('%').parse().unwrap_or_else(|_| panic!("not a percentage: {text}"))
}

/// Waits for health alerts on `name` and returns their anomalies.
async fn alerts_of(s: &TestFleet, name: &str, wanted: impl Fn(&[Vec<(String, String)>]) -> bool) -> Vec<pb::Event> {
    eventually(&format!("alerts for {name}"), Duration::from_secs(20), || async {
        let events = events_of(&s.client, name).await?;
        if wanted(&alerted(&events)) { Ok(events) } else { Err(format!("{:?}", alerted(&events))) }
    })
    .await
}

fn has(alerts: &[Vec<(String, String)>], kind: &str) -> bool {
    alerts.iter().flatten().any(|(k, _)| k == kind)
}

/// The seed's scale, to check a reported severity against the reported value.
fn expected_severity(actual: f64, threshold: f64) -> &'static str {
    if actual > 95.0 && actual > threshold {
        "critical"
    } else if actual > threshold {
        "high"
    } else if actual > 0.8 * threshold {
        "medium"
    } else {
        "none"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_and_memory_agree_with_docker_stats() {
    let s = setup().await;
    // Half a core, steadily (CFS quota), and about 30 MB held by the shell, under a 64 MiB limit.
    let busy = s.scope.run(
        "busy",
        &["--cpus", "0.5", "--memory", "64m"],
        "x=$(head -c 30000000 /dev/zero | tr '\\0' a); while :; do :; done",
    );
    let idle = s.scope.run("idle", &[], "trap 'exit 0' TERM; sleep 86400 & wait");
    eventually("busy's CPU above 40 %", Duration::from_secs(20), || async {
        let m = container(&s.client, &busy).await?.metrics.ok_or("no metrics")?;
        if m.cpu_percent.unwrap_or(0.0) > 40.0 && m.memory_percent > 30.0 { Ok(()) } else { Err(format!("{m:?}")) }
    })
    .await;
    let docker = s.scope.docker(&["stats", "--no-stream", "--format", "{{.CPUPerc}}|{{.MemPerc}}", &busy]);
    let ours = container(&s.client, &busy).await.unwrap().metrics.unwrap();
    let (cpu, mem) = docker.split_once('|').unwrap();
    let (cpu, mem) = (percent(cpu), percent(mem));
    assert!((ours.cpu_percent.unwrap() - cpu).abs() <= 2.0, "CPU: ours {:?}, docker stats {cpu}", ours.cpu_percent);
    assert!((ours.memory_percent - mem).abs() <= 2.0, "memory: ours {}, docker stats {mem}", ours.memory_percent);
    assert_eq!(ours.memory_limit_bytes, 64 << 20);

    // Without a limit, the limit is the host's memory, as docker stats shows it.
    let m = eventually("idle's metrics", Duration::from_secs(10), || async {
        container(&s.client, &idle).await?.metrics.ok_or_else(|| "no metrics yet".to_owned())
    })
    .await;
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kib: u64 = meminfo.lines().next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let host = (total_kib * 1024) as f64;
    assert!((m.memory_limit_bytes as f64 - host).abs() / host < 0.01, "{} vs host {host}", m.memory_limit_bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn high_cpu_and_high_memory_come_from_real_load_with_the_right_severity() {
    let s = setup().await;
    let hog = s.scope.run("hog", &[], "while :; do :; done");
    // 27 MiB in a tmpfs, charged to the container, under a 32 MiB limit: above the 80 % memory threshold.
    let fat = s.scope.run(
        "fat",
        &["--memory", "32m", "--memory-swap", "32m", "--tmpfs", "/data"],
        "dd if=/dev/zero of=/data/fill bs=1048576 count=27; trap 'exit 0' TERM; sleep 86400 & wait",
    );
    for (name, kind) in [(&hog, "high_cpu"), (&fat, "high_memory")] {
        let events = alerts_of(&s, name, |a| has(a, kind)).await;
        let alert = events
            .iter()
            .find(|e| e.anomalies.iter().any(|a| a.r#type().as_str_name().ends_with(&kind.to_ascii_uppercase())))
            .unwrap();
        let anomaly =
            alert.anomalies.iter().find(|a| a.r#type().as_str_name().ends_with(&kind.to_ascii_uppercase())).unwrap();
        let severity = anomaly.severity().as_str_name().trim_start_matches("SEVERITY_").to_ascii_lowercase();
        // How much CPU the hog gets depends on what else runs on this machine; its severity must fit the
        // value it reports, on the seed's scale.
        assert_eq!(severity, expected_severity(anomaly.actual, anomaly.threshold), "{kind}: {anomaly:?}");
        let listed = container(&s.client, name).await.unwrap();
        assert!(listed.anomalies.iter().any(|a| a.r#type == anomaly.r#type), "ListContainers shows the active anomaly");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_exit_oom_and_restart_loops_are_detected_and_a_stop_or_starting_health_is_not() {
    let s = setup_with(|config| {
        config.detection.restart_limit = 3;
        config.detection.restart_window = Duration::from_secs(120);
    })
    .await;
    let sick = s.scope.run(
        "sick",
        &["--health-cmd", "exit 1", "--health-interval", "1s", "--health-retries", "1", "--health-timeout", "1s"],
        "trap 'exit 0' TERM; sleep 86400 & wait",
    );
    let starting = s.scope.run(
        "starting",
        &[
            "--health-cmd",
            "exit 1",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--health-start-period",
            "600s",
        ],
        "trap 'exit 0' TERM; sleep 86400 & wait",
    );
    let crash = s.scope.run("crash", &[], "sleep 1; exit 3");
    let oom = s.scope.run(
        "oom",
        &["--memory", "16m", "--memory-swap", "16m"],
        "sleep 1; x=$(head -c 100000000 /dev/zero | tr '\\0' a)",
    );
    let looping = s.scope.run("loop", &["--restart", "always"], "sleep 0.2; exit 1");
    let stopped = s.scope.run("stopped", &[], "trap 'exit 143' TERM; sleep 86400 & wait");

    let sick_events = alerts_of(&s, &sick, |a| has(a, "unhealthy")).await;
    assert_eq!(alerted(&sick_events)[0], vec![("unhealthy".to_owned(), "high".to_owned())]);
    let crash_events = alerts_of(&s, &crash, |a| has(a, "non_zero_exit")).await;
    assert_eq!(alerted(&crash_events)[0], vec![("non_zero_exit".to_owned(), "high".to_owned())]);
    assert_eq!(crash_events[0].exit_code, 3);
    let oom_events = alerts_of(&s, &oom, |a| has(a, "oom_killed")).await;
    assert!(alerted(&oom_events).iter().flatten().any(|(k, sev)| k == "oom_killed" && sev == "critical"));
    alerts_of(&s, &looping, |a| has(a, "excessive_restarts")).await;

    s.scope.docker(&["stop", &stopped]);
    // Events are processed in order: once a later crash is recorded, the stop and the `starting` health
    // checks before it have been too.
    let sentinel = s.scope.run("sentinel", &[], &crash_once(4));
    alerts_of(&s, &sentinel, |a| has(a, "non_zero_exit")).await;
    for name in [&stopped, &starting] {
        let events = events_of(&s.client, name).await.unwrap();
        assert!(!kinds(&events).contains(&"health_alert".to_owned()), "{name}: {:?}", alerted(&events));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_steady_anomaly_is_alerted_once_not_at_every_poll() {
    let s = setup().await;
    // Memory held steady above the threshold (27 MiB of 32 MiB), sampled every second.
    let fat = s.scope.run(
        "fat",
        &["--memory", "32m", "--memory-swap", "32m", "--tmpfs", "/data"],
        "dd if=/dev/zero of=/data/fill bs=1048576 count=27; trap 'exit 0' TERM; sleep 86400 & wait",
    );
    alerts_of(&s, &fat, |a| has(a, "high_memory")).await;
    let first = eventually("fat's metrics", Duration::from_secs(10), || async {
        container(&s.client, &fat).await?.metrics.and_then(|m| m.sampled_at).ok_or_else(|| "no metrics yet".to_owned())
    })
    .await;
    eventually("five more samples", Duration::from_secs(15), || async {
        let now = container(&s.client, &fat).await?.metrics.ok_or("no metrics")?.sampled_at.ok_or("no time")?;
        if now.seconds >= first.seconds + 5 { Ok(()) } else { Err(format!("{now:?}")) }
    })
    .await;
    let events = events_of(&s.client, &fat).await.unwrap();
    assert_eq!(alerted(&events), vec![vec![("high_memory".to_owned(), "high".to_owned())]], "one alert in six polls");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_raised_while_the_coordinator_is_away_for_30s_arrives_once() {
    let mut s = setup().await;
    s.coordinator.kill();
    let crash = s.scope.run("crash", &[], &crash_once(5));
    eventually("crash exited", Duration::from_secs(10), || async {
        if s.scope.state(&crash).status == "exited" { Ok(()) } else { Err("running".into()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await; // the outage itself, not a wait for a condition
    s.coordinator.restart();
    s.reconnect().await;
    let events = remediated(&s.client, &crash, Duration::from_secs(15)).await;
    assert_eq!(alerted(&events), vec![vec![("non_zero_exit".to_owned(), "high".to_owned())]], "exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_spooled_on_disk_survive_a_node_restart() {
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_owned();
    let mut s = setup_with(|config| config.spool_dir = Some(spool_dir.clone())).await;
    s.coordinator.kill();
    let crash = s.scope.run("crash", &[], &crash_once(6));
    eventually("the alert in the spool", Duration::from_secs(20), || async {
        let spooled = spooled(&spool_dir, 100)?;
        if spooled.iter().any(|m| is_alert_of(m, &crash)) {
            Ok(())
        } else {
            Err(format!("{} messages, no alert yet", spooled.len()))
        }
    })
    .await;
    s.node.kill();
    let mut config = s.node_config();
    config.spool_dir = Some(spool_dir.clone());
    let _node = TestNode::start(config);
    s.coordinator.restart();
    s.reconnect().await;
    let events = remediated(&s.client, &crash, Duration::from_secs(30)).await;
    assert_eq!(alerted(&events), vec![vec![("non_zero_exit".to_owned(), "high".to_owned())]], "exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_while_the_node_was_down_is_reported_when_it_comes_back_unless_dealt_with() {
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_owned();
    let mut s = setup_with(|config| config.spool_dir = Some(spool_dir.clone())).await;
    // The node has seen events, so it knows where it stopped reading.
    let marker = s.scope.run("marker", &[], "trap 'exit 0' TERM; sleep 86400 & wait");
    eventually("the marker listed", Duration::from_secs(10), || container(&s.client, &marker)).await;
    s.node.kill();
    let crashed = s.scope.run("crashed", &[], &hemostat_tests::docker::crash_once(7));
    let handled = s.scope.run("handled", &[], &hemostat_tests::docker::crash_once(8));
    for name in [&crashed, &handled] {
        eventually(&format!("{name} exited"), Duration::from_secs(10), || async {
            if s.scope.state(name).status == "exited" { Ok(()) } else { Err("running".into()) }
        })
        .await;
    }
    // Someone dealt with one of them while the node was down.
    s.scope.docker(&["start", &handled]);
    let mut config = s.node_config();
    config.spool_dir = Some(spool_dir.clone());
    let _node = TestNode::start(config);
    let events = alerts_of(&s, &crashed, |a| has(a, "non_zero_exit")).await;
    assert_eq!(alerted(&events), vec![vec![("non_zero_exit".to_owned(), "high".to_owned())]]);
    // The node reports in order: once a later crash is recorded, the replayed ones have been handled.
    let sentinel = s.scope.run("sentinel", &[], &hemostat_tests::docker::crash_once(9));
    alerts_of(&s, &sentinel, |a| has(a, "non_zero_exit")).await;
    assert_eq!(
        alerted(&events_of(&s.client, &handled).await.unwrap()),
        Vec::<Vec<(String, String)>>::new(),
        "already dealt with"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_spool_drops_metrics_before_alerts_and_says_so() {
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_owned();
    let mut s = setup_with(|config| {
        config.spool_dir = Some(spool_dir.clone());
        config.spool_capacity = 3;
    })
    .await;
    s.coordinator.kill();
    let crash = s.scope.run("crash", &[], &hemostat_tests::docker::crash_once(3));
    // Metrics keep coming every second while the coordinator is away: wait until at least three more than
    // the capacity have been queued after the alert.
    eventually("the spool to overflow", Duration::from_secs(30), || async {
        // Everything written, dropped from memory or not: the log keeps it until the coordinator acknowledges.
        let logged = spooled(&spool_dir, usize::MAX)?;
        let alert = logged.iter().find(|m| is_alert_of(m, &crash));
        let after =
            alert.map_or(0, |a| logged.iter().filter(|m| m.seq > a.seq && matches!(m.body, Body::Metrics(_))).count());
        if after >= 4 { Ok(()) } else { Err(format!("{after} metrics reports after the alert")) }
    })
    .await;
    s.coordinator.restart();
    s.reconnect().await;
    let client = s.client.clone();
    let overflow = eventually("the overflow event", Duration::from_secs(20), || async {
        let request = pb::ListEventsRequest { types: vec![pb::EventType::SpoolOverflow as i32], ..Default::default() };
        let events = client.clone().list_events(request).await.map_err(|e| e.to_string())?.into_inner().events;
        events.into_iter().next().ok_or_else(|| "none yet".to_owned())
    })
    .await;
    assert_eq!(overflow.node, "host-a");
    assert!(overflow.reason.contains("dropped"), "{}", overflow.reason);
    let events = alerts_of(&s, &crash, |a| has(a, "non_zero_exit")).await;
    assert_eq!(alerted(&events), vec![vec![("non_zero_exit".to_owned(), "high".to_owned())]], "the alert was kept");
}
