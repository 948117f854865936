//! The node on other engines than the local Docker socket, through the real `hemostat standalone`: Podman's
//! Docker-compatible API (a real `podman system service` from the test kit).

use std::time::Duration;

use hemostat_tests::docker::{Scope, crash_once};
use hemostat_tests::eventually;
use hemostat_tests::podman::PodmanService;

use crate::standalone::Standalone;

#[tokio::test(flavor = "multi_thread")]
async fn a_node_on_podman_heals_a_crash_and_says_what_podman_does_not_do() {
    let podman = match PodmanService::start() {
        Ok(podman) => podman,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let scope = Scope::new();
    let host = podman.docker_host();
    let standalone = Standalone::start_with(&scope, &[("DOCKER_HOST", &host)]);
    standalone.connected_node().await;
    let log = standalone.log();
    let socket = podman.socket().display().to_string();
    assert!(log.contains("Podman 4.") && log.contains(&socket), "the node says it runs on Podman: {log}");
    assert!(log.contains("health checks run only where Podman has systemd"), "and what Podman does not do: {log}");

    let web = podman.run(&scope, "web", &[], &crash_once(1));
    let (_, first) = podman.state(&web);
    eventually("web running again in Podman", Duration::from_secs(20), || async {
        let (status, started) = podman.state(&web);
        if status == "running" && started != first { Ok(()) } else { Err(format!("{status} {started}")) }
    })
    .await;
    let events = standalone.healed(&web, Duration::from_secs(20)).await;
    assert_eq!(events[0]["exit_code"], 1, "{events}");
}
