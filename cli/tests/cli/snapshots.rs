//! Snapshot tests of what the CLI prints: fixed wire values (as the coordinator would send them) are
//! converted to the CLI's model and rendered as tables and JSON, and the text is compared with the golden
//! files in `tests/snapshots/`. No server: rendering is pure.
//!
//! After a deliberate change of the output, rewrite the golden files with
//! `UPDATE_SNAPSHOTS=1 cargo test -p hemostat-cli --test snapshots` and review the diff.

use std::path::PathBuf;

use hemostat_cli::model::{
    Accepted, ActionReport, Container, ContainerDetail, DryRun, DryRunChange, Event, Node, Silence, StormEnd,
};
use hemostat_cli::render;
use hemostat_proto::v1 as pb;

/// Compares `actual` with the golden file `tests/snapshots/<name>`, or writes it when
/// `UPDATE_SNAPSHOTS` is set. A missing golden file is a failure, not a silent pass.
fn assert_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("no golden file {} ({e}); write it with UPDATE_SNAPSHOTS=1 and review it\n{actual}", path.display())
    });
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(e, a)| e != a);
        let line = first.unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from {} at line {}:\n  expected: {:?}\n  actual:   {:?}\n--- whole output ---\n{actual}",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

/// A wire time from an RFC 3339 UTC string.
fn ts(rfc3339: &str) -> Option<prost_types::Timestamp> {
    Some(hemostat_proto::timestamp::to_proto(humantime::parse_rfc3339(rfc3339).unwrap()))
}

/// Text a hostile container could carry: ANSI colour and screen-clearing escapes, a newline, a
/// bidirectional override.
const HOSTILE: &str = "evil\u{1b}[31mred\u{1b}[2J\nline2\u{202E}gpj.exe";

fn nodes() -> Vec<Node> {
    vec![
        pb::Node {
            name: "host-a".into(),
            connected: true,
            address: "10.0.0.7:50312".into(),
            version: "0.1.0".into(),
            hostname: "docker-a.example".into(),
            connected_at: ts("2026-11-28T14:00:00Z"),
            last_seen: ts("2026-11-28T14:17:03Z"),
            spool_depth: 0,
            spool_dropped: 0,
        },
        pb::Node {
            name: "host-b".into(),
            connected: false,
            address: "10.0.0.8:41022".into(),
            version: "0.1.0".into(),
            hostname: "docker-b.example".into(),
            connected_at: ts("2026-11-28T09:12:44Z"),
            last_seen: ts("2026-11-28T13:02:10Z"),
            spool_depth: 42,
            spool_dropped: 3,
        },
    ]
    .into_iter()
    .map(Node::from)
    .collect()
}

fn metrics(sampled: &str, cpu: Option<f64>, memory: u64, pids: u64) -> pb::ContainerMetrics {
    pb::ContainerMetrics {
        container_id: "3f2a9c1b7e04d5a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5".into(),
        sampled_at: ts(sampled),
        cpu_percent: cpu,
        memory_used_bytes: memory,
        memory_limit_bytes: 512 * 1024 * 1024,
        memory_percent: memory as f64 * 100.0 / (512.0 * 1024.0 * 1024.0),
        network_rx_bytes: 1_048_576,
        network_tx_bytes: 524_288,
        block_read_bytes: 4096,
        block_write_bytes: 0,
        pids,
        restarts_in_window: 1,
        status: pb::ContainerStatus::Running as i32,
        health: pb::HealthStatus::Healthy as i32,
        exit_code: 0,
    }
}

fn web() -> pb::Container {
    pb::Container {
        node: "host-a".into(),
        state: Some(pb::ContainerState {
            id: "3f2a9c1b7e04d5a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5".into(),
            name: "web".into(),
            image: "registry.local/web:1.4".into(),
            status: pb::ContainerStatus::Running as i32,
            health: pb::HealthStatus::Healthy as i32,
            exit_code: 0,
            restart_policy: "no".into(),
            labels: [("com.docker.compose.service".to_owned(), "web".to_owned())].into(),
            started_at: ts("2026-11-28T14:17:05Z"),
            memory_limit_bytes: 512 * 1024 * 1024,
            cpu_limit: 0.5,
        }),
        updated_at: ts("2026-11-28T14:18:00Z"),
        metrics: Some(metrics("2026-11-28T14:18:00Z", Some(93.25), 47_185_920, 12)),
        anomalies: vec![pb::Anomaly {
            r#type: pb::AnomalyType::HighCpu as i32,
            severity: pb::Severity::High as i32,
            threshold: 85.0,
            actual: 93.25,
        }],
        episode: Some(pb::Episode {
            first_seen: ts("2026-11-28T14:17:31Z"),
            anomalies: vec![pb::AnomalyType::HighCpu as i32],
            above_since: ts("2026-11-28T14:17:30Z"),
            sustain_seconds: 60,
            decided_at: None,
            rule: "transient_spike".into(),
            reason: "transient spike: CPU above its threshold for 30s, less than the 60s sustain window".into(),
            action: pb::Action::Unspecified as i32,
        }),
        budget: None,
        silence: None,
    }
}

/// A budget with `cooldown` seconds left, `attempts` of 3 used, and the circuit `circuit`.
fn budget(key: &str, cooldown: u64, attempts: u32, circuit: &str) -> Option<pb::BudgetStatus> {
    Some(pb::BudgetStatus {
        key: key.into(),
        cooldown_remaining_seconds: cooldown,
        attempts_in_window: attempts,
        max_attempts: 3,
        consecutive_failures: if circuit == "open" { 3 } else { 0 },
        circuit: circuit.into(),
        circuit_retry_seconds: if circuit == "open" { 240 } else { 0 },
        last_action: ts("2026-11-28T13:02:12Z"),
        ..Default::default()
    })
}

/// The time the containers table is rendered at.
fn now() -> std::time::SystemTime {
    humantime::parse_rfc3339("2026-11-28T14:20:00Z").unwrap()
}

fn containers() -> Vec<Container> {
    let crashed = pb::Container {
        node: "host-b".into(),
        state: Some(pb::ContainerState {
            id: "9e8d7c6b5a49".into(),
            name: HOSTILE.into(),
            image: "busybox".into(),
            status: pb::ContainerStatus::Exited as i32,
            health: pb::HealthStatus::None as i32,
            exit_code: 137,
            restart_policy: "no".into(),
            ..Default::default()
        }),
        updated_at: ts("2026-11-28T13:02:10Z"),
        metrics: None,
        anomalies: vec![pb::Anomaly {
            r#type: pb::AnomalyType::OomKilled as i32,
            severity: pb::Severity::Critical as i32,
            threshold: 0.0,
            actual: 137.0,
        }],
        episode: None,
        // Crashed again within its cooldown: held down, and silenced too.
        budget: budget("host-b/evil", 2_580, 1, "closed"),
        silence: Some(pb::Silence {
            id: "s-1".into(),
            node: "host-b".into(),
            container: String::new(),
            reason: "maintenance".into(),
            created_by: "alice".into(),
            created_at: ts("2026-11-28T14:00:00Z"),
            expires_at: ts("2026-11-28T15:00:00Z"),
        }),
    };
    let looping = pb::Container {
        node: "host-b".into(),
        state: Some(pb::ContainerState {
            id: "77aa66bb55cc".into(),
            name: "worker".into(),
            image: "registry.local/worker:2".into(),
            status: pb::ContainerStatus::Exited as i32,
            health: pb::HealthStatus::None as i32,
            exit_code: 1,
            restart_policy: "no".into(),
            ..Default::default()
        }),
        updated_at: ts("2026-11-28T14:19:30Z"),
        metrics: None,
        anomalies: vec![pb::Anomaly {
            r#type: pb::AnomalyType::NonZeroExit as i32,
            severity: pb::Severity::High as i32,
            threshold: 0.0,
            actual: 1.0,
        }],
        episode: None,
        // Three restarts that did not hold: the breaker is open and the hour's attempts are spent.
        budget: budget("host-b/worker", 30, 3, "open"),
        silence: None,
    };
    let web = pb::Container { budget: budget("host-a/web", 0, 0, "closed"), ..web() };
    vec![web, crashed, looping].into_iter().map(Container::from).collect()
}

fn events() -> Vec<Event> {
    wire_events().into_iter().map(Event::from).collect()
}

fn wire_events() -> Vec<pb::Event> {
    let base = pb::Event {
        node: "host-a".into(),
        container_id: "3f2a9c1b7e04".into(),
        container_name: "web".into(),
        ..Default::default()
    };
    vec![
        pb::Event {
            id: "1795875425000-0".into(),
            time: ts("2026-11-28T14:17:05Z"),
            r#type: pb::EventType::HealthAlert as i32,
            reason: "exited unexpectedly with code 1".into(),
            exit_code: 1,
            anomalies: vec![pb::Anomaly {
                r#type: pb::AnomalyType::NonZeroExit as i32,
                severity: pb::Severity::High as i32,
                threshold: 0.0,
                actual: 1.0,
            }],
            observed_at: ts("2026-11-28T14:17:04Z"),
            ..base.clone()
        },
        pb::Event {
            id: "1795875425010-0".into(),
            time: ts("2026-11-28T14:17:05Z"),
            r#type: pb::EventType::RemediationNeeded as i32,
            action: pb::Action::Restart as i32,
            reason: "unexpected non-zero exit: exited unexpectedly with code 1".into(),
            confidence: 0.9,
            analysis_method: "rules".into(),
            decided_by: "non_zero_exit".into(),
            command_id: "c0ffee01".into(),
            evidence: "{\"exit_code\":1}".into(),
            arguments: vec!["stop_timeout=10s".into()],
            ..base.clone()
        },
        pb::Event {
            id: "1795875430000-0".into(),
            time: ts("2026-11-28T14:17:10Z"),
            r#type: pb::EventType::Rejected as i32,
            action: pb::Action::Restart as i32,
            reason: "cooldown active: host-a/name/web was acted on less than 3600s ago; next action allowed in 3595s"
                .into(),
            rejection: "cooldown_active".into(),
            command_id: "c0ffee02".into(),
            ..base.clone()
        },
        pb::Event {
            id: "1795875436000-0".into(),
            time: ts("2026-11-28T14:17:16Z"),
            r#type: pb::EventType::RemediationComplete as i32,
            action: pb::Action::Restart as i32,
            reason: "restarted; running for 30s".into(),
            outcome: pb::Outcome::Success as i32,
            command_id: "c0ffee01".into(),
            duration_ms: 312,
            ..base.clone()
        },
        pb::Event {
            id: "1795875500000-0".into(),
            time: ts("2026-11-28T14:18:20Z"),
            r#type: pb::EventType::OperatorAction as i32,
            reason: "silenced host-a/web for 2h: deploying".into(),
            decided_by: "operator/admin/alice".into(),
            ..base.clone()
        },
        pb::Event {
            id: "1795875600000-0".into(),
            time: ts("2026-11-28T14:20:00Z"),
            r#type: pb::EventType::Storm as i32,
            reason: "6 containers needed remediation within 60s on node host-b: automatic actions stopped".into(),
            node: "host-b".into(),
            ..Default::default()
        },
        pb::Event {
            id: "1795875700000-0".into(),
            time: ts("2026-11-28T14:21:40Z"),
            r#type: pb::EventType::HealthAlert as i32,
            node: "host-b".into(),
            container_name: HOSTILE.into(),
            reason: format!("log line: {HOSTILE}"),
            ..Default::default()
        },
    ]
}

fn silence(container: &str) -> Silence {
    Silence::from(pb::Silence {
        id: "5e1e4ce0a1".into(),
        node: "host-a".into(),
        container: container.into(),
        reason: "deploying".into(),
        created_by: "operator/admin/alice".into(),
        created_at: ts("2026-11-28T14:18:20Z"),
        expires_at: ts("2026-11-28T16:18:20Z"),
    })
}

/// An effective policy with a value from each kind of source.
fn policy() -> Vec<pb::PolicyValue> {
    let value = |name: &str, value: &str, source: pb::PolicySource, origin: &str| pb::PolicyValue {
        name: name.into(),
        value: value.into(),
        source: source as i32,
        origin: origin.into(),
    };
    vec![
        value("cooldown", "5s", pb::PolicySource::Label, "hemostat.cooldown"),
        value("max_per_hour", "3", pb::PolicySource::Default, ""),
        value("restart_policy", "cooldown", pb::PolicySource::Environment, "RESPONDER_RESTART_POLICY"),
        value("stop_timeout", "10s", pb::PolicySource::File, "stop_timeout_seconds"),
        value("sustain", "60s", pb::PolicySource::Flag, "sustain_seconds"),
        value("cpu_threshold", "", pb::PolicySource::Node, "THRESHOLD_CPU_PERCENT"),
        value("memory_threshold", "50%", pb::PolicySource::Label, "hemostat.memory_threshold"),
    ]
}

fn detail() -> ContainerDetail {
    let response = pb::GetContainerResponse {
        container: Some(web()),
        recent_metrics: vec![
            metrics("2026-11-28T14:17:30Z", None, 40_000_000, 10),
            metrics("2026-11-28T14:18:00Z", Some(93.25), 47_185_920, 12),
        ],
        budget: Some(pb::BudgetStatus {
            key: "host-a/name/web".into(),
            cooldown_remaining_seconds: 3535,
            attempts_in_window: 1,
            max_attempts: 3,
            consecutive_failures: 0,
            circuit: "closed".into(),
            circuit_retry_seconds: 0,
            last_action: ts("2026-11-28T14:17:05Z"),
            ..Default::default()
        }),
        silence: Some(pb::Silence {
            id: "5e1e4ce0a1".into(),
            node: "host-a".into(),
            container: "web".into(),
            reason: "deploying".into(),
            created_by: "operator/admin/alice".into(),
            created_at: ts("2026-11-28T14:18:20Z"),
            expires_at: ts("2026-11-28T16:18:20Z"),
        }),
        recent_events: wire_events().into_iter().filter(|e| e.container_name == "web").collect(),
        policy: policy(),
    };
    ContainerDetail::from_proto(response, "host-a")
}

#[test]
fn nodes_table_and_json() {
    assert_snapshot("nodes.txt", &render::nodes_table(&nodes()));
    assert_snapshot("nodes.json", &render::json(&nodes()));
}

#[test]
fn containers_table_and_json() {
    assert_snapshot("containers.txt", &render::containers_table(&containers(), now()));
    assert_snapshot("containers.json", &render::json(&containers()));
}

#[test]
fn container_detail_and_json() {
    assert_snapshot("container.txt", &render::container_detail(&detail()));
    assert_snapshot("container.json", &render::json(&detail()));
}

#[test]
fn a_container_with_nothing_known_yet() {
    let bare = ContainerDetail::from_proto(
        pb::GetContainerResponse {
            container: Some(pb::Container {
                state: Some(pb::ContainerState {
                    id: "abc".into(),
                    name: "new".into(),
                    status: pb::ContainerStatus::Created as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        "host-a",
    );
    assert_snapshot("container-bare.txt", &render::container_detail(&bare));
}

#[test]
fn events_table_stream_and_json() {
    assert_snapshot("events.txt", &render::events_table(&events()));
    assert_snapshot("events.json", &render::json(&events()));
    let mut stream = render::event_stream_header();
    let mut lines = String::new();
    for event in events() {
        stream.push_str(&render::event_stream_line(&event));
        lines.push_str(&render::json_line(&event));
    }
    assert_snapshot("events-follow.txt", &stream);
    assert_snapshot("events-follow.jsonl", &lines);
    for line in lines.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each followed line is one JSON document");
    }
}

#[test]
fn audit_table() {
    assert_snapshot("audit.txt", &render::audit_table(&events()));
}

#[test]
fn silences_list_add_and_rm() {
    let silences = vec![silence("web"), Silence { id: "5e1e4ce0a2".into(), ..silence("") }];
    assert_snapshot("silences.txt", &render::silences_table(&silences));
    assert_snapshot("silences.json", &render::json(&silences));
    let mut said = render::silence_created(&silences[0]);
    said.push_str(&render::silence_created(&silences[1]));
    said.push_str(&render::silence_removed(&silences[0]));
    assert_snapshot("silence-add-rm.txt", &said);
}

#[test]
fn dry_run_storm_and_approval_sentences() {
    let mut said = String::new();
    said.push_str(&render::dry_run(&DryRun { enabled: false, source: Some("configuration".into()) }));
    said.push_str(&render::dry_run(&DryRun { enabled: true, source: Some("operator".into()) }));
    said.push_str(&render::dry_run_change(&DryRunChange { enabled: true, previous: false }));
    said.push_str(&render::dry_run_change(&DryRunChange { enabled: false, previous: false }));
    said.push_str(&render::storm_end(&StormEnd { cleared: vec!["fleet".into(), "node/host-b".into()] }));
    said.push_str(&render::storm_end(&StormEnd { cleared: vec![] }));
    said.push_str(&render::accepted(&Accepted {
        command_id: Some("c0ffee03".into()),
        detail: "approved by operator/admin/alice: restart sent to host-a".into(),
    }));
    assert_snapshot("sentences.txt", &said);
    assert_snapshot("dry-run.json", &render::json(&DryRun { enabled: true, source: Some("operator".into()) }));
}

#[test]
fn action_report_with_a_diagnostic_commands_output() {
    let result = Event::from(pb::Event {
        id: "1795875800000-0".into(),
        time: ts("2026-11-28T14:23:20Z"),
        r#type: pb::EventType::RemediationComplete as i32,
        node: "host-a".into(),
        container_name: "web".into(),
        action: pb::Action::Exec as i32,
        reason: "exit code 0".into(),
        outcome: pb::Outcome::Success as i32,
        command_id: "c0ffee04".into(),
        analysis_method: "operator".into(),
        decided_by: "operator/admin/alice".into(),
        output: format!("Filesystem  Size  Used\noverlay     20G   8.1G\n{HOSTILE}\n"),
        duration_ms: 48,
        arguments: vec!["df".into(), "-h".into()],
        ..Default::default()
    });
    let report = ActionReport {
        command_id: Some("c0ffee04".into()),
        detail: "exec sent to host-a/web".into(),
        result: Some(result),
    };
    assert_snapshot("action-wait.txt", &render::action_report(&report));
    assert_snapshot("action-wait.json", &render::json(&report));
    let sent = ActionReport { result: None, ..report };
    assert_snapshot("action.txt", &render::action_report(&sent));
}

#[test]
fn no_output_carries_a_raw_escape() {
    let outputs = [
        render::containers_table(&containers(), now()),
        render::events_table(&events()),
        render::json(&events()),
        render::json(&containers()),
        render::container_detail(&detail()),
    ];
    for text in outputs {
        assert!(!text.chars().any(|c| c == '\u{1b}' || c == '\u{202E}'), "{text}");
    }
}
