//! The names agree with the wire, the serde form is the name, and every conversion goes both ways.

use hemostat_proto::v1 as pb;

use crate::*;

/// The wire enum's name without its prefix, lower-cased: `EVENT_TYPE_HEALTH_ALERT` → `health_alert`.
fn wire_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase()
}

#[test]
fn names_are_the_wire_names_and_round_trip() {
    for kind in EventKind::ALL {
        let wire = pb::EventType::from(kind);
        assert_eq!(kind.name(), wire_name(wire.as_str_name(), "EVENT_TYPE_"));
        assert_eq!(EventKind::try_from(wire), Ok(kind));
        assert_eq!(kind.name().parse(), Ok(kind));
    }
    for action in Action::ALL {
        let wire = pb::Action::from(action);
        assert_eq!(action.name(), wire_name(wire.as_str_name(), "ACTION_"));
        assert_eq!(Action::try_from(wire), Ok(action));
        assert_eq!(action.name().parse(), Ok(action));
    }
    for outcome in Outcome::ALL {
        let wire = pb::Outcome::from(outcome);
        assert_eq!(outcome.name(), wire_name(wire.as_str_name(), "OUTCOME_"));
        assert_eq!(Outcome::from(wire), outcome);
    }
    for kind in AnomalyKind::ALL {
        let wire = pb::AnomalyType::from(kind);
        assert_eq!(kind.name(), wire_name(wire.as_str_name(), "ANOMALY_TYPE_"));
        assert_eq!(AnomalyKind::try_from(wire as i32), Ok(kind));
    }
    for severity in Severity::ALL {
        let wire = pb::Severity::from(severity);
        assert_eq!(severity.name(), wire_name(wire.as_str_name(), "SEVERITY_"));
        assert_eq!(Severity::from(wire), severity);
    }
    for status in Status::ALL.into_iter().filter(|s| *s != Status::Unknown) {
        let wire = pb::ContainerStatus::from(status);
        assert_eq!(status.name(), wire_name(wire.as_str_name(), "CONTAINER_STATUS_"));
        assert_eq!(Status::from(wire), status);
    }
    for health in Health::ALL.into_iter().filter(|h| *h != Health::Unknown) {
        let wire = pb::HealthStatus::from(health);
        assert_eq!(health.name(), wire_name(wire.as_str_name(), "HEALTH_STATUS_"));
        assert_eq!(Health::from(wire), health);
    }
    assert_eq!(EventKind::ALL.len(), EventKind::NAMES.len());
    assert!(EventKind::NAMES.contains(&"store_unavailable"));
}

#[test]
fn values_without_a_domain_meaning_are_errors_or_documented_defaults() {
    assert!(Action::try_from(pb::Action::None).is_err());
    assert!(Action::try_from(pb::Action::Unspecified).is_err());
    assert!(EventKind::try_from(pb::EventType::Unspecified).is_err());
    assert!(AnomalyKind::try_from(99).is_err(), "newer than this build");
    assert_eq!(Outcome::from(pb::Outcome::Unspecified), Outcome::Failed);
    assert_eq!(Severity::from(pb::Severity::Unspecified), Severity::High);
    assert_eq!(Status::from(pb::ContainerStatus::Unspecified), Status::Unknown);
    let error = "scale-up".parse::<Action>().unwrap_err().to_string();
    assert_eq!(error, "unknown action \"scale-up\"; one of: restart, exec, cleanup, scale_up");
}

#[test]
fn the_serde_form_is_the_name() {
    let anomaly = Anomaly { kind: AnomalyKind::HighCpu, severity: Severity::Critical, threshold: 85.0, actual: 99.0 };
    let json = serde_json::to_string(&anomaly).unwrap();
    assert_eq!(json, r#"{"kind":"high_cpu","severity":"critical","threshold":85.0,"actual":99.0}"#);
    assert_eq!(serde_json::from_str::<Anomaly>(&json).unwrap(), anomaly);
    let error = serde_json::from_str::<Action>("\"reboot\"").unwrap_err().to_string();
    assert!(error.contains("unknown variant `reboot`, expected one of `restart`, `exec`"), "{error}");
    assert_eq!(Action::ScaleUp.to_string(), "scale_up");
    assert_eq!(Action::Restart.description(), "Graceful restart: stop with a timeout, then start.");
}

#[test]
fn container_facts_anomalies_and_samples_round_trip_through_the_wire() {
    let state = pb::ContainerState {
        id: "c1".into(),
        name: "web".into(),
        image: "busybox".into(),
        status: pb::ContainerStatus::Exited as i32,
        health: pb::HealthStatus::Unhealthy as i32,
        exit_code: 137,
        restart_policy: "no".into(),
        labels: [("hemostat.enable".to_owned(), "FALSE".to_owned())].into(),
        started_at: Some(hemostat_proto::timestamp::to_proto(std::time::UNIX_EPOCH)),
        memory_limit_bytes: 1 << 20,
        cpu_limit: 0.5,
    };
    let facts = ContainerFacts::from(&state);
    assert_eq!((facts.status, facts.health), (Status::Exited, Health::Unhealthy));
    assert!(facts.opted_out());
    assert_eq!(pb::ContainerState::from(&facts), state);

    let anomaly = Anomaly { kind: AnomalyKind::OomKilled, severity: Severity::Critical, threshold: 0.0, actual: 137.0 };
    assert_eq!(Anomaly::try_from(&pb::Anomaly::from(&anomaly)), Ok(anomaly));

    let metrics = Metrics {
        cpu_percent: Some(12.5),
        memory_used: 10,
        memory_limit: 20,
        restarts_in_window: 2,
        ..Default::default()
    };
    let wire = metrics.to_wire(&state);
    assert_eq!((wire.container_id.as_str(), wire.status, wire.exit_code), ("c1", state.status, 137));
    assert_eq!(Metrics::from(&wire), metrics);
    let json = serde_json::to_value(metrics).unwrap();
    assert_eq!((json["memory_used_bytes"].as_u64(), json["sampled_at"].is_null()), (Some(10), true));
}

#[test]
fn an_alert_round_trips_through_the_wire() {
    let container = pb::ContainerState {
        id: "c1".into(),
        name: "web".into(),
        status: pb::ContainerStatus::Exited as i32,
        exit_code: 1,
        labels: [("team".to_owned(), "a".to_owned())].into(),
        ..Default::default()
    };
    let sample = Metrics { sampled_at: Some(std::time::UNIX_EPOCH), cpu_percent: Some(3.0), ..Default::default() };
    let anomaly = Anomaly { kind: AnomalyKind::OomKilled, severity: Severity::Critical, threshold: 0.0, actual: 1.0 };
    let alert = AlertReport {
        container: ContainerFacts::from(&container),
        anomalies: vec![anomaly],
        metrics: Some(sample),
        exit: Some(crate::ExitReport { exit_code: 1, oom_killed: true, stop_requested: false }),
        observed_at: Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_234)),
        reasserted: false,
        recent: vec![sample, sample],
        log_tail: vec!["boom".into()],
        health_outputs: vec!["exit 1".into()],
        local_restart: Some("cmd-1".into()),
    };
    assert_eq!(AlertReport::try_from(&pb::HealthAlert::from(&alert)), Ok(alert));
}

#[test]
fn an_episode_round_trips_through_the_wire() {
    use std::time::{Duration, SystemTime};
    let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
    let episode = Episode {
        first_seen: at(0),
        anomalies: vec![AnomalyKind::HighCpu, AnomalyKind::HighMemory],
        above_since: Some(at(1)),
        sustain: Duration::from_secs(60),
        decided_at: Some(at(62)),
        rule: "sustained_high_cpu".into(),
        reason: "sustained high CPU".into(),
        action: Some(Action::Restart),
    };
    assert_eq!(Episode::from(&pb::Episode::from(&episode)), episode);
    let watching = Episode { above_since: None, decided_at: None, action: None, ..episode };
    let wire = pb::Episode::from(&watching);
    assert_eq!((wire.above_since, wire.decided_at, wire.action), (None, None, pb::Action::Unspecified as i32));
    assert_eq!(Episode::from(&wire), watching);
}
