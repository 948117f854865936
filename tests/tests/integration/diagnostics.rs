//! Diagnostics at the failure edge, through a real coordinator and node on the real engine: with
//! `RESPONDER_DIAGNOSTICS` set, the node runs those commands in a failing container that still runs before
//! restarting it, and the restart's `remediation_complete` event carries their masked output; a crashed
//! container gets a note instead; without the setting, nothing runs.

use std::time::Duration;

use hemostat_tests::docker::crash_once;
use hemostat_tests::fleet::{TestFleet, remediated};

const UNHEALTHY: [&str; 8] =
    ["--health-cmd", "exit 1", "--health-interval", "1s", "--health-retries", "1", "--health-timeout", "1s"];

fn argv(spec: &str) -> Vec<Vec<String>> {
    spec.split(';').map(|c| c.split_whitespace().map(str::to_owned).collect()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_container_is_diagnosed_before_its_restart_and_the_output_is_masked() {
    let s = TestFleet::start_with(
        |_| {},
        |node| {
            node.execution.exec_allowlist = argv("ps;cat /tmp/app.conf;uname -a");
            node.execution.diagnostics = argv("ps;cat /tmp/app.conf");
        },
    )
    .await;
    // Unhealthy at once, still running: a secret in a file the diagnostics print.
    let sick = s.scope.run(
        "sick",
        &UNHEALTHY,
        "echo 'db_password=hunter2 port=5432' > /tmp/app.conf; trap 'exit 0' TERM; sleep 86400 & wait",
    );
    let events = remediated(&s.client, &sick, Duration::from_secs(60)).await;
    let done = events.iter().find(|e| e.r#type().as_str_name() == "EVENT_TYPE_REMEDIATION_COMPLETE").unwrap();
    let output = &done.output;
    assert!(output.contains("$ ps (exited with code 0)"), "{output}");
    assert!(output.contains("sleep 86400"), "ps saw the container's processes: {output}");
    assert!(output.contains("$ cat /tmp/app.conf (exited with code 0)"), "{output}");
    assert!(output.contains("port=5432"), "{output}");
    assert!(!output.contains("hunter2"), "the secret is masked: {output}");
    assert!(!output.contains("uname"), "only the diagnostics run, not the whole allow-list: {output}");

    // A crashed container has nothing left to ask: the result says so, and the restart still happens.
    let crashed = s.scope.run("crashed", &[], &crash_once(3));
    let events = remediated(&s.client, &crashed, Duration::from_secs(60)).await;
    let done = events.iter().find(|e| e.r#type().as_str_name() == "EVENT_TYPE_REMEDIATION_COMPLETE").unwrap();
    assert_eq!(done.output, "diagnostics not run: the container was not running");
    assert_eq!(done.outcome().as_str_name(), "OUTCOME_SUCCESS", "{done:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_setting_a_restart_runs_no_diagnostics() {
    let s = TestFleet::start().await;
    let sick = s.scope.run("sick", &UNHEALTHY, "trap 'exit 0' TERM; sleep 86400 & wait");
    let events = remediated(&s.client, &sick, Duration::from_secs(60)).await;
    let done = events.iter().find(|e| e.r#type().as_str_name() == "EVENT_TYPE_REMEDIATION_COMPLETE").unwrap();
    assert!(done.output.is_empty(), "{:?}", done.output);
}
