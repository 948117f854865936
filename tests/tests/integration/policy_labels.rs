//! Per-container policy labels end to end, on the real engine with a real node and coordinator: a
//! container's `hemostat.cooldown`, `hemostat.max_per_hour`, `hemostat.stop_timeout`,
//! `hemostat.restart_policy`, `hemostat.cpu_threshold` and `hemostat.sustain` change what is done to it (and
//! only to it: a sibling without labels, in the same fleet, is held to the settings), GetContainer shows each
//! value with where it came from, and a bad value is one `input_refused` event naming the label while the
//! default applies.

use std::time::{Duration, SystemTime};

use hemostat_coordinator::policy::Backoff;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, container, events_of, kinds, operator, rejection, remediated};

/// A container script that crashes one second after its first start and six seconds after its second
/// (past a five-second cooldown, inside the default hour), and stays up after its third.
fn crashes_twice() -> String {
    "n=$(cat /tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /tmp/n; \
     if [ \"$n\" -ge 2 ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; \
     if [ \"$n\" -eq 1 ]; then sleep 6; exit 1; fi; sleep 1; exit 1"
        .to_owned()
}

fn at(event: &pb::Event) -> SystemTime {
    hemostat_proto::timestamp::from_proto(event.time.as_ref().expect("events have a time"))
}

fn of_type(events: &[pb::Event], kind: pb::EventType) -> Vec<&pb::Event> {
    events.iter().filter(|e| e.r#type() == kind).collect()
}

/// The container's effective policy as GetContainer shows it: (name, value, source, origin).
async fn policy_of(s: &TestFleet, name: &str) -> Vec<(String, String, pb::PolicySource, String)> {
    let request = pb::GetContainerRequest { node: "host-a".into(), container: name.into(), recent_events: 0 };
    let response = s.client.clone().get_container(request).await.expect("GetContainer").into_inner();
    response.policy.into_iter().map(|v| (v.name.clone(), v.value.clone(), v.source(), v.origin)).collect()
}

fn value_of<'a>(
    policy: &'a [(String, String, pb::PolicySource, String)],
    name: &str,
) -> &'a (String, String, pb::PolicySource, String) {
    policy.iter().find(|v| v.0 == name).unwrap_or_else(|| panic!("no {name} in {policy:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_labelled_cooldown_lets_the_second_crash_be_restarted_where_the_default_hour_holds_it() {
    let s = TestFleet::start().await;
    let quick = s.scope.run(
        "quick",
        &["--label", "hemostat.cooldown=5s", "--label", "hemostat.stop_timeout=3s"],
        &crashes_twice(),
    );
    let plain = s.scope.run("plain", &[], &crashes_twice());

    // The labelled one: restarted after each crash, the second restart at least 5 s after the first.
    let events = eventually("two restarts of the labelled container", Duration::from_secs(60), || async {
        let events = events_of(&s.client, &quick).await?;
        let done = of_type(&events, pb::EventType::RemediationComplete).len();
        if done >= 2 { Ok(events) } else { Err(format!("{:?}", kinds(&events))) }
    })
    .await;
    let completed = of_type(&events, pb::EventType::RemediationComplete);
    assert!(completed.iter().all(|e| e.outcome() == pb::Outcome::Success), "{:?}", kinds(&events));
    let began = |e: &pb::Event| at(e) - Duration::from_millis(e.duration_ms);
    let gap = began(completed[1]).duration_since(began(completed[0])).unwrap_or_default();
    eprintln!("gap between the labelled container's restarts: {gap:?}");
    assert!(gap >= Duration::from_millis(4700), "the 5 s cooldown held between them: {gap:?}");
    assert!(of_type(&events, pb::EventType::Rejected).is_empty(), "nothing rejected: {:?}", kinds(&events));
    // Its restarts were sent with its own stop timeout.
    let needed = of_type(&events, pb::EventType::RemediationNeeded);
    assert!(needed.iter().all(|e| e.arguments == ["stop_timeout=3s"]), "{needed:?}");

    // Its sibling without labels: the second crash is held by the default hour.
    let held = rejection(&s.client, &plain, "cooldown_active", Duration::from_secs(60)).await;
    assert!(held.reason.contains("less than 3600s ago"), "{}", held.reason);
    let events = events_of(&s.client, &plain).await.unwrap();
    assert_eq!(of_type(&events, pb::EventType::RemediationComplete).len(), 1, "{:?}", kinds(&events));
    assert!(of_type(&events, pb::EventType::RemediationNeeded).iter().all(|e| e.arguments == ["stop_timeout=10s"]));

    // GetContainer says where each value came from.
    let policy = policy_of(&s, &quick).await;
    assert_eq!(
        value_of(&policy, "cooldown"),
        &("cooldown".into(), "5s".into(), pb::PolicySource::Label, "hemostat.cooldown".into())
    );
    assert_eq!(value_of(&policy, "stop_timeout").1, "3s");
    assert_eq!(value_of(&policy, "max_per_hour").2, pb::PolicySource::Default);
    let policy = policy_of(&s, &plain).await;
    assert_eq!(
        value_of(&policy, "cooldown"),
        &("cooldown".into(), "3600s".into(), pb::PolicySource::Default, String::new())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_labelled_max_per_hour_of_one_quarantines_after_one_restart() {
    let s = TestFleet::start().await;
    let web =
        s.scope.run("web", &["--label", "hemostat.max_per_hour=1", "--label", "hemostat.cooldown=0"], &crashes_twice());
    let open = rejection(&s.client, &web, "circuit_open", Duration::from_secs(60)).await;
    assert!(open.reason.contains("reached 1 attempts in the last hour"), "{}", open.reason);
    assert!(open.reason.contains("quarantined: tried restart 1 time(s)"), "{}", open.reason);
    let events = events_of(&s.client, &web).await.unwrap();
    assert_eq!(of_type(&events, pb::EventType::RemediationComplete).len(), 1, "{:?}", kinds(&events));

    let request = pb::GetContainerRequest { node: "host-a".into(), container: web.clone(), recent_events: 0 };
    let response = s.client.clone().get_container(request).await.unwrap().into_inner();
    let budget = response.budget.unwrap();
    assert!(budget.quarantined && budget.max_attempts == 1, "{budget:?}");
    let policy = policy_of(&s, &web).await;
    assert_eq!(value_of(&policy, "max_per_hour").1, "1");
    assert_eq!(value_of(&policy, "max_per_hour").2, pb::PolicySource::Label);
    assert_eq!(value_of(&policy, "cooldown").1, "0s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_label_value_is_one_event_naming_it_and_the_default_applies() {
    let s = TestFleet::start().await;
    let web = s.scope.run(
        "web",
        &["--label", "hemostat.cooldown=soon", "--label", "hemostat.cpu_threshold=hot"],
        &crashes_twice(),
    );
    // The default hour applies: the second crash is held back.
    let held = rejection(&s.client, &web, "cooldown_active", Duration::from_secs(60)).await;
    assert!(held.reason.contains("less than 3600s ago"), "{}", held.reason);
    // By then the container was reported many times (snapshot, start, die, alerts): each bad label was told once.
    let events = events_of(&s.client, &web).await.unwrap();
    let refused = of_type(&events, pb::EventType::InputRefused);
    assert_eq!(refused.len(), 2, "one event per bad label: {:?}", kinds(&events));
    let cooldown = refused.iter().find(|e| e.reason.contains("hemostat.cooldown")).expect("hemostat.cooldown told");
    assert!(cooldown.reason.contains("hemostat.cooldown=\"soon\" is not valid"), "{}", cooldown.reason);
    assert!(cooldown.reason.contains("3600s (default) applies"), "{}", cooldown.reason);
    assert!(cooldown.reason.contains(&web), "names the container: {}", cooldown.reason);
    let cpu =
        refused.iter().find(|e| e.reason.contains("hemostat.cpu_threshold")).expect("hemostat.cpu_threshold told");
    assert!(cpu.reason.contains("THRESHOLD_CPU_PERCENT applies"), "{}", cpu.reason);

    let policy = policy_of(&s, &web).await;
    assert_eq!(
        value_of(&policy, "cooldown"),
        &("cooldown".into(), "3600s".into(), pb::PolicySource::Default, String::new())
    );
    assert_eq!(value_of(&policy, "cpu_threshold").2, pb::PolicySource::Node);
}

/// A busy loop held to 0.3 CPUs: ~30 % (never the 80 % at which a threshold of 100 starts to count), and
/// well above 2 % even on a loaded machine; idle after a restart.
const CAPPED_HOG: &str =
    "if [ -f /tmp/ran ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; touch /tmp/ran; while :; do :; done";

#[tokio::test(flavor = "multi_thread")]
async fn a_labelled_cpu_threshold_and_sustain_make_a_capped_loop_a_condition_acted_on_within_seconds() {
    let s = TestFleet::start_with(|_| {}, |node| node.detection.cpu_threshold = 100.0).await;
    let labelled = s.scope.run(
        "hog",
        &["--cpus", "0.3", "--label", "hemostat.cpu_threshold=2", "--label", "hemostat.sustain=3s"],
        CAPPED_HOG,
    );
    let plain = s.scope.run("plain", &["--cpus", "0.3"], CAPPED_HOG);

    // The labelled loop: high_cpu against its own threshold, decided after its own 3 s window.
    let events = remediated(&s.client, &labelled, Duration::from_secs(60)).await;
    let alert = of_type(&events, pb::EventType::HealthAlert)
        .into_iter()
        .find(|e| e.anomalies.iter().any(|a| a.r#type() == pb::AnomalyType::HighCpu))
        .unwrap_or_else(|| panic!("a high_cpu alert: {:?}", kinds(&events)));
    let high = alert.anomalies.iter().find(|a| a.r#type() == pb::AnomalyType::HighCpu).unwrap();
    assert_eq!(high.threshold, 2.0, "the label's threshold: {high:?}");
    let decision = of_type(&events, pb::EventType::RemediationNeeded)[0];
    assert_eq!(decision.decided_by, "sustained_high_cpu", "{decision:?}");
    let after = at(decision).duration_since(at(alert)).unwrap_or_default();
    eprintln!("labelled loop: alert to decision {after:?} (sustain 3 s)");
    assert!(after < Duration::from_secs(30), "decided {after:?} after the alert: not the default 60 s window");

    // Its sibling ran the same loop, sampled well above 2 %, and raised nothing under the node's 100 %.
    let sampled = eventually("the unlabelled loop sampled above 2 %", Duration::from_secs(20), || async {
        let listed = container(&s.client, &plain).await?;
        match listed.metrics.as_ref().and_then(|m| m.cpu_percent) {
            Some(cpu) if cpu > 2.0 => Ok(listed),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(sampled.anomalies.is_empty(), "{:?}", sampled.anomalies);
    let events = events_of(&s.client, &plain).await.unwrap();
    assert!(of_type(&events, pb::EventType::HealthAlert).is_empty(), "{:?}", kinds(&events));

    let policy = policy_of(&s, &labelled).await;
    assert_eq!(value_of(&policy, "cpu_threshold").1, "2%");
    assert_eq!(value_of(&policy, "sustain").1, "3s");
    assert_eq!(value_of(&policy, "sustain").2, pb::PolicySource::Label);
    let policy = policy_of(&s, &plain).await;
    assert_eq!(
        value_of(&policy, "cpu_threshold"),
        &("cpu_threshold".into(), String::new(), pb::PolicySource::Node, "THRESHOLD_CPU_PERCENT".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_labelled_backoff_under_a_cooldown_fleet_retries_the_held_crash_on_the_settings_curve() {
    let curve = Backoff { initial: Duration::from_secs(3), jitter_percent: 0, ..Backoff::DEFAULT };
    let s = TestFleet::start_with(|config| config.remediation.backoff = curve, |_| {}).await;
    let web = s.scope.run("web", &["--label", "hemostat.restart_policy=backoff"], "sleep 2; exit 1");
    let events = eventually("a crash held by the backoff, then retried", Duration::from_secs(60), || async {
        let events = events_of(&s.client, &web).await?;
        let done = of_type(&events, pb::EventType::RemediationComplete).len();
        if done >= 2 { Ok(events) } else { Err(format!("{:?}", kinds(&events))) }
    })
    .await;
    let held = of_type(&events, pb::EventType::Rejected);
    assert!(held[0].reason.contains("backoff active"), "{}", held[0].reason);
    let completed = of_type(&events, pb::EventType::RemediationComplete);
    assert!(completed.iter().any(|c| c.command_id == held[0].command_id), "the held action was retried");
    let began = |e: &pb::Event| at(e) - Duration::from_millis(e.duration_ms);
    let gap = began(completed[1]).duration_since(began(completed[0])).unwrap_or_default();
    assert!(gap >= Duration::from_millis(2700) && gap < Duration::from_secs(8), "3 s after the first: {gap:?}");
    let policy = policy_of(&s, &web).await;
    assert_eq!(value_of(&policy, "restart_policy").1, "backoff");
    assert_eq!(value_of(&policy, "restart_policy").2, pb::PolicySource::Label);
}

/// A container whose shell ignores the SIGTERM `--init` forwards to it: a restart waits its whole stop
/// timeout, then kills it.
const IGNORES_TERM: &str = "trap '' TERM; while :; do sleep 1; done";

#[tokio::test(flavor = "multi_thread")]
async fn a_labelled_stop_timeout_is_how_long_the_node_waits_before_killing() {
    let s = TestFleet::start().await;
    let quick = s.scope.run("quick", &["--label", "hemostat.stop_timeout=1s"], IGNORES_TERM);
    let plain = s.scope.run("plain", &[], IGNORES_TERM);
    let mut admin = operator(&s.pki, OperatorRole::Admin, s.coordinator.addr()).await;
    for name in [&quick, &plain] {
        eventually("the container reported", Duration::from_secs(20), || container(&s.client, name)).await;
        let request = pb::TriggerActionRequest {
            node: "host-a".into(),
            container: name.clone(),
            action: pb::Action::Restart as i32,
            reason: "stop timeout test".into(),
            ..Default::default()
        };
        admin.trigger_action(request).await.expect("the restart is accepted");
    }
    let took = |events: &[pb::Event]| {
        let done = of_type(events, pb::EventType::RemediationComplete)[0];
        assert_eq!(done.outcome(), pb::Outcome::Success, "{done:?}");
        Duration::from_millis(done.duration_ms)
    };
    let quick_took = took(&remediated(&s.client, &quick, Duration::from_secs(60)).await);
    let plain_took = took(&remediated(&s.client, &plain, Duration::from_secs(60)).await);
    eprintln!(
        "restart of a container ignoring TERM: {quick_took:?} with hemostat.stop_timeout=1s, {plain_took:?} without"
    );
    // Both include the node's one-second verification.
    assert!(quick_took < Duration::from_secs(6), "killed after 1 s: {quick_took:?}");
    assert!(plain_took >= Duration::from_secs(10), "killed after the default 10 s: {plain_took:?}");
}
