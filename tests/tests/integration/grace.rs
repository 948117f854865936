//! When problems start to count, end to end on the real engine (a node and a coordinator in-process): a
//! crash during a container's start grace (`hemostat.grace`) is not acted on until grace ends, an unhealthy
//! container is reported only once it stayed so for `hemostat.unhealthy_for`, `autoheal=false` opts out,
//! and a bad label value is logged, naming the label and the container, with the default applied.

use std::time::{Duration, Instant, SystemTime};

use hemostat_tests::docker::crash_once;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, alerted, events_of, kinds, remediated};

/// When Docker says the container last started.
fn started_at(s: &TestFleet, name: &str) -> SystemTime {
    humantime::parse_rfc3339_weak(&s.scope.state(name).started_at).expect("StartedAt")
}

/// Waits until the container is in `status`.
async fn status_is(s: &TestFleet, name: &str, status: &str) {
    eventually(&format!("{name} {status}"), Duration::from_secs(10), || async {
        let state = s.scope.state(name);
        if state.status == status { Ok(()) } else { Err(format!("{state:?}")) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_during_the_start_grace_is_acted_on_only_when_grace_ends() {
    let s = TestFleet::start().await;
    // Crashes one second after it starts, inside its four-second grace; stays up once restarted.
    let web = s.scope.run("hs-grace-web", &["--label", "hemostat.grace=4s"], &crash_once(1));
    let first_start = started_at(&s, &web);
    status_is(&s, &web, "exited").await;
    // Still inside grace (the crash came at 1 s): reported to nobody for action, left down.
    let events = events_of(&s.client, &web).await.unwrap();
    assert!(events.is_empty(), "nothing recorded during grace: {:?}", kinds(&events));
    assert!(
        SystemTime::now() < first_start + Duration::from_secs(4),
        "the check above ran inside grace (the machine is too slow for this test's timing)"
    );
    let events = remediated(&s.client, &web, Duration::from_secs(20)).await;
    assert_eq!(kinds(&events)[..3], ["health_alert", "remediation_needed", "remediation_complete"]);
    assert_eq!(events[0].exit_code, 1);
    let restarted = started_at(&s, &web);
    assert!(
        restarted >= first_start + Duration::from_secs(4),
        "restarted {:?} after the first start, inside its grace",
        restarted.duration_since(first_start)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_counts_only_after_unhealthy_for_and_a_container_healthy_before_is_left_alone() {
    let s = TestFleet::start().await;
    let health =
        |cmd| ["--health-cmd", cmd, "--health-interval", "1s", "--health-retries", "1", "--health-timeout", "1s"];
    let mut sick_args = health("exit 1").to_vec();
    sick_args.extend(["--label", "hemostat.unhealthy_for=5s"]);
    let sick = s.scope.run("hs-grace-sick", &sick_args, "trap 'exit 0' TERM; sleep 86400 & wait");
    // Unhealthy from its first check, healthy from the second second on.
    let mut flaky_args = health("test -f /tmp/ok").to_vec();
    flaky_args.extend(["--label", "hemostat.unhealthy_for=5s"]);
    let flaky =
        s.scope.run("hs-grace-flaky", &flaky_args, "trap 'exit 0' TERM; (sleep 2; touch /tmp/ok) & sleep 86400 & wait");
    let flaky_start = s.scope.state(&flaky).started_at;

    let health_of = |name: &str| s.scope.docker(&["inspect", "-f", "{{.State.Health.Status}}", name]);
    let became_unhealthy = eventually("sick unhealthy", Duration::from_secs(10), || async {
        if health_of(&sick) == "unhealthy" { Ok(Instant::now()) } else { Err(health_of(&sick)) }
    })
    .await;
    let events = eventually("sick's unhealthy alert", Duration::from_secs(20), || async {
        let events = events_of(&s.client, &sick).await?;
        if alerted(&events).iter().flatten().any(|(k, _)| k == "unhealthy") {
            Ok(events)
        } else {
            Err(format!("{:?}", kinds(&events)))
        }
    })
    .await;
    let waited = became_unhealthy.elapsed();
    assert!(waited >= Duration::from_secs(4), "reported {waited:?} after Docker said unhealthy, before 5 s");
    assert_eq!(alerted(&events)[0], vec![("unhealthy".to_owned(), "high".to_owned())]);
    remediated(&s.client, &sick, Duration::from_secs(20)).await;

    // The flaky one was unhealthy for about two seconds, long ago by now: nothing, and not restarted.
    assert_eq!(health_of(&flaky), "healthy");
    let events = events_of(&s.client, &flaky).await.unwrap();
    assert!(events.is_empty(), "{:?}", kinds(&events));
    assert_eq!(s.scope.state(&flaky).started_at, flaky_start);
}

#[tokio::test(flavor = "multi_thread")]
async fn autoheal_false_opts_out_and_a_bad_label_is_logged_with_the_default_applied() {
    let logs = hemostat_tests::logs::capture("hemostat_node=info");
    let s = TestFleet::start().await;
    let opted_out = s.scope.run("hs-grace-optout", &["--label", "autoheal=False"], &crash_once(1));
    let bad = s.scope.run("hs-grace-bad", &["--label", "hemostat.grace=soon"], &crash_once(1));

    // The bad grace falls back to the default (none): restarted at once.
    remediated(&s.client, &bad, Duration::from_secs(15)).await;
    assert_eq!(s.scope.state(&opted_out).status, "exited");
    let events = events_of(&s.client, &opted_out).await.unwrap();
    assert!(events.is_empty(), "{:?}", kinds(&events));

    let lines = logs.text();
    let line_of = |needle: &str| lines.lines().find(|l| l.contains(needle)).map(str::to_owned);
    let bad_line = line_of("hemostat.grace=\"soon\"").unwrap_or_else(|| panic!("no bad-label line in:\n{lines}"));
    assert!(bad_line.contains(&bad) && bad_line.contains("the default applies"), "{bad_line}");
    let opted_line = line_of("opted out by label autoheal=False").unwrap_or_else(|| panic!("{lines}"));
    assert!(opted_line.contains(&opted_out), "{opted_line}");
    let watched = lines.lines().filter(|l| l.contains(&bad) && l.contains("watched: selected")).count();
    assert_eq!(watched, 1, "why it is watched, once:\n{lines}");
}
