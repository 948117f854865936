//! Decisions that follow a condition while it lasts, on the real engine with a real node and coordinator
//! (sustain window 10 s, a sample every second): a busy loop is restarted after the window and not before,
//! memory growing toward its limit is restarted before the kernel's OOM killer ends it, and a spike shorter
//! than the window is recorded once and left alone. Each decision is one per episode, and the episode shows
//! in `ListContainers` (what `hemostat container` prints) while it runs.

use std::time::{Duration, SystemTime};

use hemostat_coordinator::CoordinatorConfig;
use hemostat_node::NodeConfig;
use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, container, events_of, kinds, remediated};

/// The sustain window of these tests.
const SUSTAIN: Duration = Duration::from_secs(10);
/// Slack for a loaded machine on top of what the design promises.
const SLACK: Duration = Duration::from_secs(4);

fn short_window(config: &mut CoordinatorConfig) {
    config.analyzer.patterns.sustain = SUSTAIN;
}

/// A CPU threshold a busy loop clears even on a machine shared with builds (with a load of 15 on its two
/// cores, a loop gets a quarter of a core), far above an idle container's.
fn low_cpu_threshold(config: &mut NodeConfig) {
    config.detection.cpu_threshold = 10.0;
}

/// A script that waits for `/tmp/go` (so the test knows when the condition starts), then runs `work`; after a
/// restart it stays idle (and stops on TERM).
fn on_go(work: &str) -> String {
    format!(
        "if [ -f /tmp/ran ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; touch /tmp/ran; \
         while [ ! -f /tmp/go ]; do sleep 0.1; done; {work}"
    )
}

/// Starts the condition in `name` and returns when.
fn go(s: &TestFleet, name: &str) -> SystemTime {
    s.scope.docker(&["exec", name, "touch", "/tmp/go"]);
    SystemTime::now()
}

fn time_of(event: &pb::Event) -> SystemTime {
    hemostat_proto::timestamp::from_proto(event.time.as_ref().expect("an event has a time"))
}

fn decisions(events: &[pb::Event]) -> Vec<&pb::Event> {
    events
        .iter()
        .filter(|e| matches!(e.r#type(), pb::EventType::RemediationNeeded | pb::EventType::FalseAlarm))
        .collect()
}

/// Waits until the coordinator holds `n` more seconds of samples of `name` than at the call.
async fn more_samples(s: &TestFleet, name: &str, seconds: i64) {
    let sampled = || async {
        container(&s.client, name).await?.metrics.and_then(|m| m.sampled_at).ok_or_else(|| "no metrics".to_owned())
    };
    let first = eventually("a sample", Duration::from_secs(10), sampled).await;
    eventually(&format!("{seconds} s more samples of {name}"), Duration::from_secs(seconds as u64 + 15), || async {
        let now = sampled().await?;
        if now.seconds >= first.seconds + seconds { Ok(()) } else { Err(format!("{now:?}")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_loop_is_restarted_once_after_the_sustain_window_and_not_before() {
    let s = TestFleet::start_with(short_window, low_cpu_threshold).await;
    let hog = s.scope.run("hog", &[], &on_go("while :; do :; done"));
    more_samples(&s, &hog, 2).await;
    let started = go(&s, &hog);

    // While the window fills, the running episode is shown, undecided.
    let episode = eventually("the running episode", SUSTAIN, || async {
        let listed = container(&s.client, &hog).await?;
        match listed.episode {
            Some(e) if e.decided_at.is_none() && !e.rule.is_empty() => Ok(e),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(episode.rule, "transient_spike", "{episode:?}");
    assert!(episode.above_since.is_some() && episode.first_seen.is_some(), "{episode:?}");
    assert_eq!(episode.sustain_seconds, 10);
    assert!(decisions(&events_of(&s.client, &hog).await.unwrap()).is_empty(), "nothing decided within the window");

    let events = remediated(&s.client, &hog, SUSTAIN + Duration::from_secs(30)).await;
    let decided = decisions(&events);
    assert_eq!(decided.len(), 1, "one decision for the episode: {:?}", kinds(&events));
    let decision = decided[0];
    assert_eq!(decision.r#type(), pb::EventType::RemediationNeeded);
    assert_eq!(decision.action(), pb::Action::Restart);
    assert!(["sustained_high_cpu", "critical_anomaly"].contains(&decision.decided_by.as_str()), "{decision:?}");
    assert!(decision.reason.contains("episode since"), "the episode in the reason: {}", decision.reason);
    let evidence: serde_json::Value = serde_json::from_str(&decision.evidence).unwrap();
    assert!(evidence["episode"]["first_seen_ms"].as_u64().is_some(), "{evidence}");
    assert!(evidence["episode"]["above_since_ms"].as_u64().is_some(), "{evidence}");

    // Not before the window (less 15 % of a poll: a sample is an interval's average), and within one poll
    // after it (plus slack for this machine's load).
    let after = time_of(decision).duration_since(started).unwrap_or_default();
    eprintln!("busy loop to decision: {after:?} (window {SUSTAIN:?}, poll 1 s)");
    assert!(after >= SUSTAIN - Duration::from_millis(150), "decided {after:?} after the loop began");
    assert!(after <= SUSTAIN + Duration::from_secs(1) + SLACK, "decided {after:?} after the loop began");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spike_shorter_than_the_window_is_recorded_once_as_transient_and_not_acted_on() {
    let s = TestFleet::start_with(short_window, low_cpu_threshold).await;
    let spike = s.scope.run(
        "spike",
        &[],
        &on_go("timeout 4 sh -c 'while :; do :; done'; trap 'exit 0' TERM; sleep 86400 & wait"),
    );
    more_samples(&s, &spike, 2).await;
    go(&s, &spike);
    let events = eventually("the spike's decision", Duration::from_secs(30), || async {
        let events = events_of(&s.client, &spike).await?;
        if decisions(&events).is_empty() { Err(format!("{:?}", kinds(&events))) } else { Ok(events) }
    })
    .await;
    let decision = decisions(&events)[0].clone();
    assert_eq!(decision.r#type(), pb::EventType::FalseAlarm, "{decision:?}");
    assert_eq!(decision.decided_by, "transient_spike");
    assert!(decision.reason.contains("less than the 10s sustain window"), "{}", decision.reason);
    assert!(decision.reason.contains("cleared after"), "{}", decision.reason);
    assert!(kinds(&events).contains(&"resolved".to_owned()), "{:?}", kinds(&events));

    // Well past the window, still that one record and no action; the episode is gone.
    more_samples(&s, &spike, 12).await;
    let events = events_of(&s.client, &spike).await.unwrap();
    assert_eq!(decisions(&events).len(), 1, "{:?}", kinds(&events));
    assert!(!kinds(&events).contains(&"remediation_needed".to_owned()));
    assert_eq!(container(&s.client, &spike).await.unwrap().episode, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_growing_toward_its_limit_is_restarted_before_the_oom_kill() {
    let s = TestFleet::start_with(short_window, |_| {}).await;
    // 2 MiB a second into a tmpfs charged to the container, under a 64 MiB limit: the OOM killer would end
    // it about 32 s after it starts.
    let leak = s.scope.run(
        "leak",
        &["--memory", "64m", "--memory-swap", "64m", "--tmpfs", "/data:size=256m"],
        &on_go(
            "i=0; while :; do dd if=/dev/zero of=/data/f$i bs=1048576 count=1 2>/dev/null; i=$((i+1)); sleep 0.5; done",
        ),
    );
    more_samples(&s, &leak, 2).await;
    let started = go(&s, &leak);
    let events = remediated(&s.client, &leak, Duration::from_secs(60)).await;
    let decided = decisions(&events);
    assert_eq!(decided.len(), 1, "{:?}", kinds(&events));
    let decision = decided[0];
    assert_eq!((decision.r#type(), decision.decided_by.as_str()), (pb::EventType::RemediationNeeded, "memory_leak"));
    assert!(decision.reason.contains("the limit in about") && decision.reason.contains(" s"), "{}", decision.reason);
    let oom = |e: &pb::Event| e.anomalies.iter().any(|a| a.r#type() == pb::AnomalyType::OomKilled);
    assert!(!events.iter().any(oom), "no OOM kill before the restart: {events:?}");
    let after = time_of(decision).duration_since(started).unwrap_or_default();
    eprintln!("memory growth (2 MiB/s into 64 MiB) to decision: {after:?}; reason: {}", decision.reason);
    assert!(after < Duration::from_secs(32), "decided {after:?} after the growth began, past the OOM point");
}
