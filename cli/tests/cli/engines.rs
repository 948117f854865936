//! The node on other engines than the local Docker socket, through the real `hemostat standalone`: Podman's
//! Docker-compatible API (a real `podman system service` from the test kit), and Docker over TCP, with TLS
//! and client certificates or plain through a socket proxy (the kit's proxy in front of the Docker socket).

use std::time::Duration;

use hemostat_tests::docker::{Scope, crash_once};
use hemostat_tests::docker_proxy::DockerProxy;
use hemostat_tests::eventually;
use hemostat_tests::pki::TestPki;
use hemostat_tests::podman::PodmanService;

use crate::standalone::{Standalone, refused};

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

#[tokio::test(flavor = "multi_thread")]
async fn a_node_reaches_docker_over_tcp_with_tls_and_through_a_socket_proxy() {
    let pki = TestPki::new();
    let proxy = DockerProxy::tls(&pki).await;
    let scope = Scope::new();
    let host = proxy.docker_host();
    let cert_path = proxy.cert_path().unwrap().display().to_string();
    let tls = [("DOCKER_HOST", host.as_str()), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", cert_path.as_str())];
    let standalone = Standalone::start_with(&scope, &tls);
    standalone.connected_node().await;
    let port = host.trim_start_matches("tcp://localhost:");
    let log = standalone.log();
    assert!(log.contains(&format!("tcp://localhost:{port} (TLS, certificates in {cert_path})")), "{log}");
    let web = scope.run("web", &[], &crash_once(1));
    standalone.healed(&web, Duration::from_secs(20)).await;
    assert!(proxy.forwarded() > 0 && proxy.refused() == 0, "through the proxy, with the client certificate");
    drop(standalone);

    // A client certificate of another CA: the proxy refuses the handshake, and standalone stops, saying where.
    let stranger = DockerProxy::foreign_cert_path(&pki);
    let stranger_path = stranger.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let env =
        [("DOCKER_HOST", host.as_str()), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", stranger_path.as_str())];
    let (status, stderr) = refused(dir.path(), &[], &env).await;
    assert!(!status.success());
    assert!(stderr.contains(&format!("cannot reach the container engine at tcp://localhost:{port} (TLS")), "{stderr}");
    assert!(proxy.refused() > 0, "the proxy refused the stranger's certificate");

    // A socket proxy, plain HTTP: the same node, through it.
    let plain = DockerProxy::plain().await;
    let host = plain.docker_host();
    let standalone = Standalone::start_with(&scope, &[("DOCKER_HOST", &host)]);
    standalone.connected_node().await;
    let log = standalone.log();
    assert!(log.contains(&format!("{host} (plain HTTP)")) && plain.forwarded() > 0, "{log}");
}
