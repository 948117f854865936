//! Every exit read from what Docker says happened, on the real engine with a real node and coordinator: an
//! operator's `docker stop` or `docker kill` is left alone whatever the exit code, and so is a clean exit;
//! a process killed by a signal nobody sent through Docker (from the host, from inside the container, after
//! a TERM it ignored), the kernel's OOM kill and a non-zero exit are faults, decided and restarted.

use std::time::Duration;

use hemostat_proto::v1 as pb;
use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, alerted, events_of, kinds};

const DEADLINE: Duration = Duration::from_secs(30);

/// A script that records its shell's pid in `/tmp/pid`, then waits; `on_term` is what it does on TERM
/// (`exit 3`, or `''` to ignore it). After a restart it only waits.
fn waiting(on_term: &str) -> String {
    format!(
        "if [ -f /tmp/ran ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; touch /tmp/ran; echo $$ > /tmp/pid; \
         trap {on_term} TERM; while :; do sleep 86400 & wait; done"
    )
}

/// Waits until the script of `name` runs (it has written its pid).
async fn ready(scope: &Scope, name: &str) {
    eventually(&format!("{name} ready"), DEADLINE, || async {
        let pid = scope.docker(&["exec", name, "sh", "-c", "cat /tmp/pid 2>/dev/null || true"]);
        pid.parse::<u32>().map_err(|e| format!("{pid:?}: {e}"))
    })
    .await;
}

/// Waits until Docker says `name` has exited, and returns its exit code.
async fn exited(scope: &Scope, name: &str) -> i64 {
    eventually(&format!("{name} exited"), DEADLINE, || async {
        let state = scope.state(name);
        if state.status == "exited" { Ok(state.exit_code) } else { Err(format!("{state:?}")) }
    })
    .await
}

/// Waits until the container's first decision is recorded, and returns all its events.
async fn decided(s: &TestFleet, name: &str) -> Vec<pb::Event> {
    eventually(&format!("a decision on {name}"), DEADLINE, || async {
        let events = events_of(&s.client, name).await?;
        let kinds = kinds(&events);
        if kinds.iter().any(|k| k == "remediation_needed" || k == "false_alarm") {
            Ok(events)
        } else {
            Err(format!("{kinds:?}"))
        }
    })
    .await
}

/// Kills the container's init process from the host, as someone with a shell on the Docker host would.
fn kill_from_host(scope: &Scope, name: &str) {
    let pid = scope.docker(&["inspect", "-f", "{{.State.Pid}}", name]);
    let status = std::process::Command::new("kill").args(["-9", &pid]).status().expect("kill runs");
    assert!(status.success(), "kill -9 {pid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_stops_and_clean_exits_are_left_alone_and_kills_nobody_sent_through_docker_are_faults() {
    let s = TestFleet::start().await;
    let scope = &s.scope;
    // Left alone: docker stop of a container that exits 3 on TERM, docker kill (137), a clean exit.
    let stopped = scope.run("stopped", &[], &waiting("'exit 3'"));
    let killed = scope.run("killed", &[], &waiting("'exit 3'"));
    let clean = scope.run("clean", &[], "sleep 1; exit 0");
    // Faults: SIGKILL from the host, SIGKILL from inside, SIGTERM from inside, a non-zero exit.
    let host = scope.run("host", &[], &waiting("'exit 3'"));
    let inside = scope.run("inside", &[], &waiting("'exit 3'"));
    let inside_term = scope.run("insideterm", &[], &waiting("-"));
    let crashed =
        scope.run("crashed", &[], "if [ -f /tmp/ran ]; then sleep 86400; fi; touch /tmp/ran; sleep 1; exit 3");
    for name in [&stopped, &killed, &host, &inside, &inside_term] {
        ready(scope, name).await;
    }

    scope.docker(&["stop", "-t", "5", &stopped]);
    assert_eq!(exited(scope, &stopped).await, 3, "its own code on TERM");
    scope.docker(&["kill", &killed]);
    assert_eq!(exited(scope, &killed).await, 137);
    assert_eq!(exited(scope, &clean).await, 0);

    // The operator's exits above are in Docker's event stream before any of these.
    kill_from_host(scope, &host);
    scope.docker(&["exec", &inside, "sh", "-c", "kill -9 $(cat /tmp/pid)"]);
    scope.docker(&["exec", &inside_term, "sh", "-c", "kill -15 $(cat /tmp/pid)"]);
    for (name, code, reason) in [
        (&host, 137, "killed by SIGKILL (exit code 137), a signal nobody sent through Docker"),
        (&inside, 137, "killed by SIGKILL (exit code 137), a signal nobody sent through Docker"),
        (&inside_term, 143, "killed by SIGTERM (exit code 143), a signal nobody sent through Docker"),
        (&crashed, 3, "exited unexpectedly with code 3"),
    ] {
        let events = decided(&s, name).await;
        assert_eq!(kinds(&events)[..2], ["health_alert", "remediation_needed"], "{name}");
        assert_eq!(events[0].exit_code, code, "{name}");
        assert_eq!(alerted(&events)[0], [("non_zero_exit".to_owned(), "high".to_owned())], "{name}");
        assert_eq!(events[1].action(), pb::Action::Restart, "{name}");
        assert!(events[1].reason.contains(reason), "{name}: {}", events[1].reason);
    }

    // Every exit above was processed in order: the operator's ones and the clean one recorded nothing.
    for name in [&stopped, &killed, &clean] {
        let events = events_of(&s.client, name).await.unwrap();
        assert!(events.is_empty(), "{name}: {:?}", kinds(&events));
        assert_eq!(scope.state(name).status, "exited", "{name} left down");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_term_the_process_ignored_does_not_make_a_later_kill_from_the_host_an_operators_stop() {
    let s = TestFleet::start().await;
    let stubborn = s.scope.run("stubborn", &[], &waiting("''"));
    ready(&s.scope, &stubborn).await;
    // An operator's TERM through Docker, ignored (tini passes it on; the shell ignores it).
    s.scope.docker(&["kill", "-s", "TERM", &stubborn]);
    assert_eq!(s.scope.state(&stubborn).status, "running");
    // Later someone kills it on the host: the code says SIGKILL, which Docker did not deliver.
    kill_from_host(&s.scope, &stubborn);
    let events = decided(&s, &stubborn).await;
    assert_eq!(kinds(&events)[..2], ["health_alert", "remediation_needed"]);
    assert_eq!(events[0].exit_code, 137);
    assert!(events[1].reason.contains("a signal nobody sent through Docker"), "{}", events[1].reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oom_kill_is_a_fault() {
    let s = TestFleet::start().await;
    // Eats memory until the kernel's OOM killer ends it (16 MiB limit, no swap).
    let hungry = s.scope.run(
        "hungry",
        &["--memory", "16m", "--memory-swap", "16m"],
        "if [ -f /tmp/ran ]; then sleep 86400; fi; touch /tmp/ran; x=a; while :; do x=$x$x; done",
    );
    let events = decided(&s, &hungry).await;
    assert_eq!(kinds(&events)[..2], ["health_alert", "remediation_needed"], "{:?}", kinds(&events));
    assert_eq!(alerted(&events)[0], [("oom_killed".to_owned(), "critical".to_owned())]);
    assert!(events[1].reason.contains("killed by the OOM killer"), "{}", events[1].reason);
}
