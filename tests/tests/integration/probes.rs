//! Liveness probes by label, end to end on the real engine (a node and a coordinator in-process): a failing
//! HTTP probe (the page deleted inside the container) and a failing TCP probe (the listener killed inside
//! it) make the container `unhealthy` exactly as Docker's health check would, and it is restarted with the
//! probe's output as its evidence; a healthy probe changes nothing; a bad probe label is logged, naming the
//! label, its value and the container, and nothing is probed; a HEALTHCHECK of the container's own wins.

use std::time::Duration;

use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{
    TestFleet, alerted, container, events_of, free_metrics_addr, kinds, metric, remediated, scrape,
};

/// A web server whose `/healthz` answers 200 until `/www/healthz` is deleted (404 then); a restart brings it
/// back.
const WEB: &str = "trap 'exit 0' TERM; mkdir -p /www && echo ok > /www/healthz && httpd -f -p 8080 -h /www & wait";
/// A TCP listener on 5432 that accepts every connection until its process is killed.
/// (busybox's shell runs the applet without exec, so its process id is kept to kill it by.)
const LISTENER: &str = "trap 'exit 0' TERM; nc -ll -p 5432 -e /bin/true & echo $! > /tmp/listener; sleep 86400 & wait";

/// The labels of a probe of `target` every second, failing after two failures in a row (a timeout of five
/// seconds: a loaded machine does not make a healthy server miss one).
fn probe_labels(target: &str) -> Vec<String> {
    [
        format!("hemostat.probe={target}"),
        "hemostat.probe.interval=1s".to_owned(),
        "hemostat.probe.timeout=5s".to_owned(),
        "hemostat.probe.retries=2".to_owned(),
    ]
    .into_iter()
    .flat_map(|label| ["--label".to_owned(), label])
    .collect()
}

/// Runs `script` in a container of this test named after `base`, with the probe labels of `target`.
fn run_probed(s: &TestFleet, base: &str, target: &str, script: &str) -> String {
    let labels = probe_labels(target);
    let args: Vec<&str> = labels.iter().map(String::as_str).collect();
    s.scope.run(base, &args, script)
}

/// The container's IP address on its network, per `docker inspect`.
fn ip_of(s: &TestFleet, name: &str) -> String {
    s.scope.docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name])
}

/// Waits until the coordinator shows the container healthy (the node's probe succeeded) for the start
/// `started_at` (Docker's RFC 3339 text).
async fn healthy_in_the_registry(s: &TestFleet, name: &str, started_at: &str) {
    let started_at = humantime::parse_rfc3339_weak(started_at).expect("StartedAt");
    eventually(&format!("{name} healthy in the registry"), Duration::from_secs(20), || async {
        let state = container(&s.client, name).await?.state.unwrap_or_default();
        let start = state.started_at.as_ref().map(hemostat_proto::timestamp::from_proto);
        let apart = |t: std::time::SystemTime| t.duration_since(started_at).or_else(|_| started_at.duration_since(t));
        let same_start = start.is_some_and(|t| apart(t).is_ok_and(|d| d < Duration::from_millis(1)));
        if state.health() == pb::HealthStatus::Healthy && same_start {
            Ok(())
        } else {
            Err(format!("{:?} started {start:?}", state.health()))
        }
    })
    .await
}

/// The health outputs of the evidence the restart was decided on.
fn decided_health_outputs(events: &[pb::Event]) -> Vec<String> {
    let decision = events.iter().find(|e| e.r#type() == pb::EventType::RemediationNeeded).expect("a decision");
    let evidence: serde_json::Value = serde_json::from_str(&decision.evidence).expect("evidence is JSON");
    evidence["health_outputs"]
        .as_array()
        .unwrap_or_else(|| panic!("no health outputs in {evidence}"))
        .iter()
        .map(|o| o.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_http_probe_makes_the_container_unhealthy_and_it_is_restarted_with_the_probes_output() {
    let s = TestFleet::start().await;
    let web = run_probed(&s, "hs-probe-web", "http://:8080/healthz", WEB);
    let first_start = s.scope.state(&web).started_at;
    healthy_in_the_registry(&s, &web, &first_start).await;
    let ip = ip_of(&s, &web);

    s.scope.docker(&["exec", &web, "rm", "/www/healthz"]);
    let events = remediated(&s.client, &web, Duration::from_secs(30)).await;
    // The restart's new start resolves the condition, usually before the restart's result arrives.
    assert_eq!(kinds(&events)[..2], ["health_alert", "remediation_needed"]);
    assert_eq!(alerted(&events)[0], [("unhealthy".to_owned(), "high".to_owned())]);
    let outputs = decided_health_outputs(&events);
    let failure = format!("GET http://{ip}:8080/healthz: 404 Not Found");
    assert_eq!(outputs.iter().filter(|o| **o == failure).count(), 2, "two failures in a row: {outputs:?}");

    // Restarted: a new start, probed again, healthy again.
    let second_start = s.scope.state(&web).started_at;
    assert_ne!(second_start, first_start);
    healthy_in_the_registry(&s, &web, &second_start).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_tcp_probe_makes_the_container_unhealthy_and_it_is_restarted() {
    let s = TestFleet::start().await;
    let db = run_probed(&s, "hs-probe-db", "tcp://:5432", LISTENER);
    let first_start = s.scope.state(&db).started_at;
    healthy_in_the_registry(&s, &db, &first_start).await;
    let ip = ip_of(&s, &db);

    s.scope.docker(&["exec", &db, "sh", "-c", "kill $(cat /tmp/listener)"]);
    let events = remediated(&s.client, &db, Duration::from_secs(30)).await;
    assert_eq!(alerted(&events)[0], [("unhealthy".to_owned(), "high".to_owned())]);
    let outputs = decided_health_outputs(&events);
    assert!(outputs.contains(&format!("connect {ip}:5432: connection refused")), "{outputs:?}");
    let second_start = s.scope.state(&db).started_at;
    assert_ne!(second_start, first_start);
    healthy_in_the_registry(&s, &db, &second_start).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_probe_changes_nothing() {
    let metrics = free_metrics_addr();
    let s = TestFleet::start_with(|_| {}, |node| node.metrics_listen = Some(metrics)).await;
    let web = run_probed(&s, "hs-probe-fine", "http://:8080/healthz", WEB);
    let started = s.scope.state(&web).started_at;
    healthy_in_the_registry(&s, &web, &started).await;
    // Five successful probes, well past two retries' worth: nothing recorded, not restarted.
    eventually("five successful probes", Duration::from_secs(20), || async {
        let text = scrape(metrics).await?;
        match metric(&text, "hemostat_node_probes_total{kind=\"http\",result=\"success\"}") {
            Some(n) if n >= 5.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let text = scrape(metrics).await.unwrap();
    assert_eq!(metric(&text, "hemostat_node_probes_total{kind=\"http\",result=\"failure\"}"), None, "{text}");
    let events = events_of(&s.client, &web).await.unwrap();
    assert!(events.is_empty(), "{:?}", kinds(&events));
    assert_eq!(s.scope.state(&web).started_at, started);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_probe_label_is_logged_and_nothing_probed_and_a_healthcheck_of_its_own_wins() {
    let logs = hemostat_tests::logs::capture("hemostat_node=info");
    let metrics = free_metrics_addr();
    let s = TestFleet::start_with(|_| {}, |node| node.metrics_listen = Some(metrics)).await;
    // Aimed at another host: refused, whatever listens there.
    let hostile = run_probed(&s, "hs-probe-hostile", "http://10.0.0.1:8080/healthz", WEB);
    // A probe that would fail (nothing on 9999), on a container with a HEALTHCHECK of its own that passes.
    let mut own_args = probe_labels("tcp://:9999");
    own_args.extend(["--health-cmd", "true", "--health-interval", "1s"].map(str::to_owned));
    let own_args: Vec<&str> = own_args.iter().map(String::as_str).collect();
    let own = s.scope.run("hs-probe-own", &own_args, WEB);
    let fine = run_probed(&s, "hs-probe-good", "http://:8080/healthz", WEB);

    eventually("the good container's probe, and the remark on the HEALTHCHECK", Duration::from_secs(20), || async {
        let successes = metric(&scrape(metrics).await?, "hemostat_node_probes_total{kind=\"http\",result=\"success\"}");
        let remark = logs.line_with(&[&own, "HEALTHCHECK of its own"]);
        match (successes, remark) {
            (Some(n), Some(_)) if n >= 3.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let text = logs.text();
    let bad = logs
        .line_with(&[&hostile, "hemostat.probe=\"http://10.0.0.1:8080/healthz\""])
        .unwrap_or_else(|| panic!("no bad-label line in:\n{text}"));
    assert!(bad.contains("names the host \"10.0.0.1\"") && bad.contains("not probed"), "{bad}");
    assert!(logs.line_with(&[&fine, "probing"]).is_some(), "{text}");
    for unprobed in [&hostile, &own] {
        assert_eq!(logs.line_with(&[unprobed, "probing"]), None, "{text}");
    }
    let remarks = text.lines().filter(|l| l.contains(own.as_str()) && l.contains("HEALTHCHECK of its own")).count();
    assert_eq!(remarks, 1, "said once:\n{text}");
    let scraped = scrape(metrics).await.unwrap();
    assert_eq!(metric(&scraped, "hemostat_node_probes_total{kind=\"tcp\",result=\"failure\"}"), None, "{scraped}");
    assert_eq!(metric(&scraped, "hemostat_node_bad_labels_total{label=\"hemostat.probe\"}"), Some(1.0), "{scraped}");
    for name in [&hostile, &own, &fine] {
        let events = events_of(&s.client, name).await.unwrap();
        assert!(events.is_empty(), "{name}: {:?}", kinds(&events));
    }
}

/// A restart's verification reads a probed container's health from its probe, as it reads Docker's health
/// check: a restart that mends the probe is a success "running and healthy", one after which the probe
/// still fails is a failed verification (which the circuit breaker counts).
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_is_verified_by_the_probe_it_was_decided_on() {
    let s = TestFleet::start_with(|_| {}, |node| node.execution.verify_window = Duration::from_secs(5)).await;
    let mended = run_probed(&s, "hs-probe-mended", "http://:8080/healthz", WEB);
    let broken = run_probed(&s, "hs-probe-broken", "http://:8080/missing", WEB);
    let started = s.scope.state(&mended).started_at;
    healthy_in_the_registry(&s, &mended, &started).await;
    s.scope.docker(&["exec", &mended, "rm", "/www/healthz"]);

    let result = |name: String| {
        let client = s.client.clone();
        async move {
            let events = remediated(&client, &name, Duration::from_secs(40)).await;
            events.into_iter().find(|e| e.r#type() == pb::EventType::RemediationComplete).expect("a result")
        }
    };
    let mended_result = result(mended).await;
    assert_eq!(mended_result.outcome(), pb::Outcome::Success, "{mended_result:?}");
    assert!(mended_result.reason.contains("running and healthy for 5s"), "{}", mended_result.reason);
    let broken_result = result(broken).await;
    assert_eq!(broken_result.outcome(), pb::Outcome::Failed, "{broken_result:?}");
    assert!(broken_result.reason.contains("restarted, but its probe still fails"), "{}", broken_result.reason);
}
