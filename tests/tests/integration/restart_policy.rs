//! The restart policy end to end on the real Docker engine: under `RESPONDER_RESTART_POLICY=backoff` a
//! crash loop is restarted at growing offsets (each retry waits for its backoff, then happens without a new
//! alert) until the hourly attempt limit opens the breaker and quarantines it: one notification-worthy
//! rejection listing what was tried, shown by GetContainer, lifted by an admin's ReleaseContainer, or by
//! the container running healthy for `RESPONDER_QUARANTINE_RELEASE_SECONDS`.

use std::time::{Duration, SystemTime};

use hemostat_coordinator::policy::{Backoff, RestartPolicy};
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, events_of, kinds, operator};

/// A container script that exits with `code` two seconds after every start (after a restart's one-second
/// verification: each restart succeeds, and the container crashes again).
fn crash_loop(code: i32) -> String {
    format!("sleep 2; exit {code}")
}

fn at(event: &pb::Event) -> SystemTime {
    hemostat_proto::timestamp::from_proto(event.time.as_ref().expect("events have a time"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_under_backoff_is_restarted_at_growing_offsets_then_quarantined_until_an_admin_releases_it() {
    let curve = Backoff {
        initial: Duration::from_secs(4),
        max: Duration::from_secs(8),
        reset_after: Duration::from_secs(120),
        jitter_percent: 0,
    };
    let s = TestFleet::start_with(
        |config| {
            config.remediation.budget.policy = RestartPolicy::Backoff(curve);
            config.remediation.budget.max_attempts = 4;
        },
        |_| {},
    )
    .await;
    let web = s.scope.run("web", &[], &crash_loop(1));
    let events = eventually("four restarts, then the breaker", Duration::from_secs(90), || async {
        let events = events_of(&s.client, &web).await?;
        if events.iter().any(|e| e.rejection == "circuit_open") {
            Ok(events)
        } else {
            Err(format!("{:?}", kinds(&events)))
        }
    })
    .await;
    let completed: Vec<&pb::Event> =
        events.iter().filter(|e| e.r#type() == pb::EventType::RemediationComplete).collect();
    assert_eq!(completed.len(), 4, "{:?}", kinds(&events));
    assert!(completed.iter().all(|e| e.outcome() == pb::Outcome::Success), "each restart held its verification");
    // When the node began each restart: its result's time less the command's duration (the verification
    // window's length varies with the machine's load; the backoff counts from the action).
    let began = |e: &pb::Event| at(e) - Duration::from_millis(e.duration_ms);
    let gaps: Vec<Duration> =
        completed.windows(2).map(|w| began(w[1]).duration_since(began(w[0])).unwrap_or_default()).collect();
    eprintln!("gaps between restarts: {gaps:?}");
    // 4 s, then 8 s (doubled), then 8 s (capped): never sooner, and not much later.
    for (gap, wait) in gaps.iter().zip([4, 8, 8]) {
        let wait = Duration::from_secs(wait);
        assert!(*gap >= wait - Duration::from_millis(300) && *gap < wait + Duration::from_secs(4), "{gaps:?}");
    }
    // Each crash inside a backoff was told once, and retried by itself (no new alert between).
    let backoffs: Vec<&pb::Event> = events.iter().filter(|e| e.rejection == "cooldown_active").collect();
    assert_eq!(backoffs.len(), 4, "{:?}", kinds(&events));
    assert!(
        backoffs[0].reason.contains("backoff active") && backoffs[0].reason.contains("retrying in"),
        "{}",
        backoffs[0].reason
    );
    for rejected in &backoffs[..3] {
        assert!(
            completed.iter().any(|c| c.command_id == rejected.command_id),
            "the held-back action {} was retried",
            rejected.command_id
        );
    }
    // The fourth retry finds the hourly limit reached: the breaker opens and leaves it down.
    let open = events.iter().find(|e| e.rejection == "circuit_open").unwrap();
    assert_eq!(open.command_id, backoffs[3].command_id, "the retry was stopped by the breaker");
    assert!(open.reason.contains("4 attempts"), "{}", open.reason);
    assert!(open.reason.contains("quarantined: tried restart 4 time(s) in the last hour ("), "{}", open.reason);
    assert!(open.reason.contains(&format!("hemostat release host-a/{web}")), "{}", open.reason);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.scope.state(&web).status, "exited");

    // Quarantined, as GetContainer shows it.
    let get = || pb::GetContainerRequest { node: "host-a".into(), container: web.clone(), recent_events: 0 };
    let budget = s.client.clone().get_container(get()).await.unwrap().into_inner().budget.unwrap();
    assert!(budget.quarantined, "{budget:?}");
    assert_eq!((budget.circuit.as_str(), budget.restart_policy.as_str()), ("open", "backoff"));

    // Only an admin releases it; recorded with who did it.
    let release = || pb::ReleaseContainerRequest { node: "host-a".into(), container: web.clone() };
    let refused = s.client.clone().release_container(release()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let mut admin = operator(&s.pki, OperatorRole::Admin, s.coordinator.addr()).await;
    let released = admin.release_container(release()).await.unwrap().into_inner();
    assert!(released.was_quarantined, "{released:?}");
    assert!(released.detail.contains("4 attempt(s)"), "{released:?}");
    let budget = s.client.clone().get_container(get()).await.unwrap().into_inner().budget.unwrap();
    assert!(!budget.quarantined && budget.attempts_in_window == 0, "{budget:?}");
    let events = events_of(&s.client, &web).await.unwrap();
    let recorded = events.iter().find(|e| e.r#type() == pb::EventType::OperatorAction).expect("release recorded");
    assert!(recorded.reason.contains("released from quarantine"), "{}", recorded.reason);

    // Released, its next crash is acted on again.
    s.scope.docker(&["start", &web]);
    eventually("a restart after the release", Duration::from_secs(30), || async {
        let events = events_of(&s.client, &web).await?;
        let done = events.iter().filter(|e| e.r#type() == pb::EventType::RemediationComplete).count();
        if done == 5 { Ok(()) } else { Err(format!("{:?}", kinds(&events))) }
    })
    .await;
}

/// A container script that crashes one second after each of its first two starts and stays up after.
fn crashes_twice_then_runs() -> String {
    "n=$(cat /tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /tmp/n; \
     if [ \"$n\" -ge 2 ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; sleep 1; exit 1"
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quarantined_container_running_healthy_for_the_release_time_is_released_by_itself() {
    const RELEASE: Duration = Duration::from_secs(4);
    let s = TestFleet::start_with(|config| config.remediation.quarantine_release = Some(RELEASE), |_| {}).await;
    // One restart an hour, no cooldown: the second crash opens the breaker.
    let labels = ["--label", "hemostat.max_per_hour=1", "--label", "hemostat.cooldown=0"];
    let web = s.scope.run("web", &labels, &crashes_twice_then_runs());
    hemostat_tests::fleet::rejection(&s.client, &web, "circuit_open", Duration::from_secs(60)).await;
    let get = || pb::GetContainerRequest { node: "host-a".into(), container: web.clone(), recent_events: 0 };
    let budget = s.client.clone().get_container(get()).await.unwrap().into_inner().budget.unwrap();
    assert!(budget.quarantined, "{budget:?}");

    // Started by hand, it stays up: released once it has run for the release time, not before.
    s.scope.docker(&["start", &web]);
    let started = SystemTime::now();
    let events = eventually("the release by good behaviour", Duration::from_secs(30), || async {
        let events = events_of(&s.client, &web).await?;
        if events.iter().any(|e| e.r#type() == pb::EventType::OperatorAction) {
            Ok(events)
        } else {
            Err(format!("{:?}", kinds(&events)))
        }
    })
    .await;
    let released = events.iter().find(|e| e.r#type() == pb::EventType::OperatorAction).unwrap();
    assert_eq!(released.decided_by, "policy:quarantine_release", "{released:?}");
    assert!(
        released.reason.contains(&format!("released from quarantine host-a/{web}: running for")),
        "{}",
        released.reason
    );
    assert!(released.reason.contains("RESPONDER_QUARANTINE_RELEASE_SECONDS (4s)"), "{}", released.reason);
    let after = at(released).duration_since(started).unwrap_or_default();
    eprintln!("released {after:?} after the start (release time {RELEASE:?})");
    assert!(after >= RELEASE - Duration::from_millis(500), "released {after:?} after it started");
    let budget = s.client.clone().get_container(get()).await.unwrap().into_inner().budget.unwrap();
    assert!(!budget.quarantined && budget.attempts_in_window == 0, "{budget:?}");
    assert_eq!(events.iter().filter(|e| e.r#type() == pb::EventType::OperatorAction).count(), 1);
}
