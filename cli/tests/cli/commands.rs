//! The operator commands through the real `hemostat` binary against one real `hemostat standalone`
//! (coordinator and node, mutual TLS with its development certificates, the real Docker engine), shared
//! by every test in this file and stopped when the test process exits.
//!
//! The CLI is pointed at the coordinator through the environment (`HEMOSTAT_COORDINATOR`,
//! `HEMOSTAT_CERTS_DIR`) with an empty config directory, except where a test checks the configuration
//! file itself.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::redis::free_port;
use serde_json::Value;

/// The shared `hemostat standalone`.
struct Fleet {
    port: u16,
    certs: PathBuf,
    /// An empty folder used as HOME and XDG_CONFIG_HOME, so no user's configuration file is read.
    no_config: PathBuf,
    /// The node's name (this host's).
    node: String,
}

/// What the exit handler stops and removes: the standalone's process id, its folder and the test
/// containers.
static LEFTOVERS: Mutex<Option<(i32, tempfile::TempDir, Scope)>> = Mutex::new(None);

extern "C" fn clean_up() {
    if let Ok(mut leftovers) = LEFTOVERS.lock()
        && let Some((pid, dir, scope)) = leftovers.take()
    {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        drop(scope);
        drop(dir);
    }
}

/// The scope whose containers the shared node watches.
fn scope<T>(f: impl FnOnce(&Scope) -> T) -> T {
    let leftovers = LEFTOVERS.lock().unwrap();
    f(&leftovers.as_ref().expect("the fleet is started").2)
}

/// Starts the shared standalone on first use, and waits until its node is connected.
fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(|| {
        let scope = Scope::new();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = standalone(port, dir.path(), &scope.selector());
        // The standalone outlives the test that started it; a kept-alive thread spawns it so that the
        // kernel stops it (PR_SET_PDEATHSIG) if this process dies without running its exit handler.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::os::unix::process::CommandExt;
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child: std::io::Result<Child> = command.spawn();
            tx.send(child.map(|c| c.id())).unwrap();
            loop {
                std::thread::park();
            }
        });
        let pid = rx.recv().unwrap().expect("hemostat standalone starts") as i32;
        let no_config = dir.path().join("no-config");
        std::fs::create_dir_all(&no_config).unwrap();
        let certs = dir.path().join("certs");
        *LEFTOVERS.lock().unwrap() = Some((pid, dir, scope));
        unsafe { libc::atexit(clean_up) };

        let mut fleet = Fleet { port, certs, no_config, node: String::new() };
        fleet.node = fleet.connected_node();
        fleet
    })
}

/// `hemostat standalone` on `port` with its state in `data_dir`, watching the containers `selector`
/// names, quick to verify and to sample.
fn standalone(port: u16, data_dir: &Path, selector: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hemostat"));
    command
        .args(["standalone", "--listen", &format!("127.0.0.1:{port}"), "--select-label", selector])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--no-dashboard")
        .env("HOME", data_dir)
        .env_remove("XDG_CONFIG_HOME")
        .env("LOG_LEVEL", "warn")
        .env("RESPONDER_VERIFY_SECONDS", "1")
        // The default's value, set so that `hemostat container` has a setting from the environment to show.
        .env("RESPONDER_STOP_TIMEOUT_SECONDS", "10")
        .env("AGENT_POLL_INTERVAL", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

impl Fleet {
    /// Waits (30 s at most) until a node is connected; returns its name.
    fn connected_node(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.cli(&["nodes", "-o", "json"]);
            if out.status.success() {
                let nodes: Value = serde_json::from_slice(&out.stdout).unwrap();
                if let Some(node) = nodes.as_array().unwrap().iter().find(|n| n["connected"] == true) {
                    return node["name"].as_str().unwrap().to_owned();
                }
            }
            assert!(Instant::now() < deadline, "the standalone's node never connected: {}", text(&out));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `hemostat <args>` pointed at this fleet through the environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hemostat"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.no_config)
            .env("XDG_CONFIG_HOME", &self.no_config)
            .env("HEMOSTAT_COORDINATOR", format!("localhost:{}", self.port))
            .env("HEMOSTAT_CERTS_DIR", &self.certs);
        command
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("hemostat runs")
    }

    /// Runs a command that must succeed and print JSON; returns the document.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(out.status.success(), "hemostat {args:?} failed: {}", text(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("hemostat {args:?} printed no JSON ({e}): {}", text(&out)))
    }

    /// Runs a command that must succeed; returns what it printed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "hemostat {args:?} failed: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its error line (standard error).
    fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(!out.status.success(), "hemostat {args:?} should fail: {}", text(&out));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        stderr
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Lines of a running command's standard output, read on a thread.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Reads lines until one satisfies `wanted`, or panics at the deadline with what was read.
fn line_where(
    lines: &Receiver<String>,
    deadline: Duration,
    what: &str,
    mut wanted: impl FnMut(&str) -> bool,
) -> String {
    let until = Instant::now() + deadline;
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) if wanted(&line) => return line,
            Ok(line) => seen.push(line),
            Err(RecvTimeoutError::Timeout) => panic!("no line with {what} within {deadline:?}; read: {seen:#?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the output ended without {what}; read: {seen:#?}"),
        }
    }
}

/// A unique marker for this test's records.
fn marker(name: &str) -> String {
    format!("{name}-{:08x}", rand_u32())
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

#[test]
fn nodes_as_json_and_as_a_table() {
    let fleet = fleet();
    let nodes = fleet.json(&["nodes", "-o", "json"]);
    let node = nodes.as_array().unwrap().iter().find(|n| n["name"] == fleet.node.as_str()).expect("the node");
    assert_eq!(node["connected"], true);
    assert!(node["last_seen"].as_str().unwrap().ends_with('Z'), "{node}");
    assert!(node["version"].is_string() && node["spool_depth"].is_u64(), "{node}");
    let table = fleet.ok(&["nodes"]);
    assert!(table.starts_with("NODE  ") && table.contains("CONNECTED"), "{table}");
    let row = table.lines().find(|l| l.starts_with(&fleet.node)).expect("a row for the node");
    assert!(row.contains(" yes "), "{row}");
}

#[test]
fn approve_with_an_unknown_id_is_a_clear_error() {
    let fleet = fleet();
    let error = fleet.fails(&["approve", "0123456789abcdef"]);
    assert!(error.starts_with("hemostat: ApproveAction: NOT_FOUND: "), "{error}");
    let error = fleet.fails(&["approve", "not-an-id"]);
    assert!(error.starts_with("hemostat: ApproveAction: INVALID_ARGUMENT: "), "{error}");
}

#[test]
fn end_storm_says_what_it_cleared() {
    let fleet = fleet();
    let ended = fleet.json(&["end-storm", "-o", "json"]);
    assert!(ended["cleared"].is_array(), "{ended}");
    let said = fleet.ok(&["end-storm"]);
    assert!(
        said.starts_with("automatic actions resume; cleared: ") || said.starts_with("no storm was in force"),
        "{said}"
    );
}

#[test]
fn health_says_serving_and_names_an_unknown_service() {
    let fleet = fleet();
    assert_eq!(fleet.ok(&["health"]), "SERVING\n");
    assert_eq!(fleet.ok(&["health", "--service", "hemostat.v1.AgentService"]), "SERVING\n");
    let said = fleet.fails(&["health", "--service", "no.such.Service"]);
    assert!(said.contains("NotFound"), "{said}");
}

#[test]
fn dry_run_on_shows_on_then_off() {
    let fleet = fleet();
    let set = fleet.json(&["dry-run", "on", "-o", "json"]);
    assert_eq!(set["enabled"], true, "{set}");
    let shown = fleet.json(&["dry-run", "-o", "json"]);
    assert_eq!((&shown["enabled"], &shown["source"]), (&Value::Bool(true), &Value::from("operator")), "{shown}");
    assert_eq!(fleet.ok(&["dry-run"]), "dry-run: on (set by an operator)\n");
    assert_eq!(fleet.ok(&["dry-run", "off"]), "dry-run: off (was on)\n");
    assert_eq!(fleet.json(&["dry-run", "-o", "json"])["enabled"], false);
}

#[test]
fn silences_are_added_listed_and_removed() {
    let fleet = fleet();
    let reason = marker("maintenance");
    let target = format!("{}/db", fleet.node);
    let created = fleet.json(&["silence", "add", &target, "--for", "2h", "--reason", &reason, "-o", "json"]);
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!((&created["node"], &created["container"]), (&Value::from(fleet.node.as_str()), &Value::from("db")));
    let expires = humantime::parse_rfc3339(created["expires_at"].as_str().unwrap()).unwrap();
    let left = expires.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(7100) && left <= Duration::from_secs(7200), "{created}");

    let listed = fleet.json(&["silence", "list", "-o", "json"]);
    assert!(listed.as_array().unwrap().iter().any(|s| s["id"] == id.as_str() && s["reason"] == reason.as_str()));
    let table = fleet.ok(&["silence", "list"]);
    assert!(table.lines().any(|l| l.starts_with(&id) && l.contains(&target) && l.ends_with(&reason)), "{table}");

    let node_wide = fleet.ok(&["silence", "add", &fleet.node, "--for", "10m", "--reason", &reason]);
    assert!(node_wide.starts_with(&format!("silenced node {} (all its containers) until ", fleet.node)), "{node_wide}");

    let removed = fleet.ok(&["silence", "rm", &id]);
    assert_eq!(removed, format!("ended the silence {id} of container {target}\n"));
    let listed = fleet.json(&["silence", "list", "-o", "json"]);
    assert!(!listed.as_array().unwrap().iter().any(|s| s["id"] == id.as_str()), "{listed}");
    let error = fleet.fails(&["silence", "rm", &id]);
    assert!(error.starts_with("hemostat: DeleteSilence: NOT_FOUND: "), "{error}");
    for silence in fleet.json(&["silence", "list", "-o", "json"]).as_array().unwrap() {
        if silence["reason"] == reason.as_str() {
            fleet.ok(&["silence", "rm", silence["id"].as_str().unwrap()]);
        }
    }

    // The operator actions are in the event log, as JSON with the stable field names.
    let events = fleet.json(&["events", "-o", "json", "--type", "operator_action", "--node", &fleet.node]);
    let events = events.as_array().unwrap();
    let added = events.iter().find(|e| e["reason"].as_str().is_some_and(|r| r.contains(&reason))).expect("logged");
    assert_eq!(added["type"], "operator_action");
    assert_eq!(added["node"], fleet.node.as_str());
    assert!(added["id"].is_string() && added["time"].as_str().unwrap().ends_with('Z'), "{added}");
    assert!(added["decided_by"].is_string() && added["outcome"].is_null(), "{added}");
    let since = fleet.json(&["events", "-o", "json", "--type", "operator_action", "--since", "1h", "--limit", "1"]);
    assert_eq!(since.as_array().unwrap().len(), 1, "--limit: {since}");
    let none = fleet.json(&["events", "-o", "json", "--type", "operator_action", "--until", "1h"]);
    assert!(!none.as_array().unwrap().iter().any(|e| e["id"] == added["id"]), "--until: {none}");
}

#[test]
fn events_follow_prints_an_event_recorded_while_it_runs() {
    let fleet = fleet();
    let before = marker("before-follow");
    let target = format!("{}/follow", fleet.node);
    let first = fleet.json(&["silence", "add", &target, "--for", "1h", "--reason", &before, "-o", "json"]);
    let mut follower = fleet
        .command(&["events", "--follow", "-o", "json", "--type", "operator_action", "--node", &fleet.node])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut follower);
    // The backlog: the event recorded before it started.
    line_where(&lines, Duration::from_secs(10), &before, |l| l.contains(&before));

    // A new one, recorded now: it can only arrive through the live stream.
    let during = marker("during-follow");
    let second = fleet.json(&["silence", "add", &target, "--for", "1h", "--reason", &during, "-o", "json"]);
    let line = line_where(&lines, Duration::from_secs(10), &during, |l| l.contains(&during));
    let event: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(event["type"], "operator_action");
    let _ = follower.kill();
    let _ = follower.wait();

    // The table form prints a header, then a line per event.
    let mut follower = fleet
        .command(&["events", "-f", "--type", "operator_action", "--node", &fleet.node, "--limit", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut follower);
    let header = line_where(&lines, Duration::from_secs(10), "the header", |_| true);
    assert!(header.starts_with("TIME") && header.ends_with("DETAIL"), "{header}");
    fleet.ok(&["silence", "rm", first["id"].as_str().unwrap()]);
    let line =
        line_where(&lines, Duration::from_secs(10), "the removal", |l| l.contains(first["id"].as_str().unwrap()));
    assert!(line.contains("operator_action") && line.contains("ended the silence"), "{line}");
    let _ = follower.kill();
    let _ = follower.wait();
    fleet.ok(&["silence", "rm", second["id"].as_str().unwrap()]);
}

#[tokio::test]
async fn a_manual_restart_and_exec_are_sent_and_waited_for() {
    let fleet = fleet();
    let web = scope(|s| s.run("web", &[], "trap 'exit 0' TERM; sleep 86400 & wait"));
    eventually("the node to report web", Duration::from_secs(20), || async {
        let containers = fleet.json(&["containers", "-o", "json", "--node", &fleet.node]);
        let found =
            containers.as_array().unwrap().iter().any(|c| c["name"] == web.as_str() && c["status"] == "running");
        if found { Ok(()) } else { Err(containers.to_string()) }
    })
    .await;
    let target = format!("{}/{web}", fleet.node);

    // Forced, so that a dry-run switched on by another test in this file cannot hold it.
    let report = fleet.json(&[
        "action",
        "restart",
        &target,
        "--force",
        "--reason",
        "cli test",
        "--wait",
        "--timeout",
        "60s",
        "-o",
        "json",
    ]);
    let id = report["command_id"].as_str().expect("a command id");
    assert_eq!(report["result"]["type"], "remediation_complete", "{report}");
    assert_eq!(report["result"]["outcome"], "success", "{report}");
    assert_eq!(report["result"]["command_id"], id);

    let detail = fleet.json(&["container", &target, "-o", "json"]);
    assert_eq!(detail["container"]["name"], web.as_str());
    assert!(detail["budget"]["attempts_in_window"].as_u64().unwrap() >= 1, "{detail}");
    let recent = detail["recent_events"].as_array().unwrap();
    assert!(recent.iter().any(|e| e["command_id"] == id && e["type"] == "remediation_complete"), "{detail}");
    let page = fleet.ok(&["container", &target]);
    assert!(
        page.contains("CIRCUIT") && page.contains("RECENT EVENTS") && page.contains("remediation_complete"),
        "{page}"
    );

    let exec = fleet.ok(&["action", "exec", &target, "--wait", "--", "uptime"]);
    assert!(exec.contains("result: success") && exec.contains("output:") && exec.contains("load average"), "{exec}");

    let audit = fleet.json(&["audit", "-o", "json", "--container", &web]);
    let decided: Vec<&Value> = audit.as_array().unwrap().iter().filter(|r| r["command_id"] == id).collect();
    assert!(decided.iter().any(|r| r["analysis_method"] == "operator"), "{audit}");

    let error = fleet.fails(&["action", "restart", &format!("{}/no-such-container", fleet.node)]);
    assert!(error.starts_with("hemostat: TriggerAction: NOT_FOUND: "), "{error}");
    let refused = fleet.cli(&["action", "restart", &target, "--", "ps"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only exec takes a command"), "{}", text(&refused));
}

#[tokio::test]
async fn container_shows_each_policy_value_and_where_it_came_from() {
    let fleet = fleet();
    let labels = ["--label", "hemostat.cooldown=5s", "--label", "hemostat.max_per_hour=many"];
    let web = scope(|s| s.run("policy", &labels, "trap 'exit 0' TERM; sleep 86400 & wait"));
    let target = format!("{}/{web}", fleet.node);
    let page = eventually("the container's page", Duration::from_secs(20), || async {
        let out = fleet.cli(&["container", &target]);
        if out.status.success() { Ok(String::from_utf8(out.stdout).unwrap()) } else { Err(text(&out)) }
    })
    .await;
    let policy: Vec<&str> = page.lines().skip_while(|l| *l != "POLICY").skip(1).take_while(|l| !l.is_empty()).collect();
    let line = |name: &str| {
        policy
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    assert_eq!(line("cooldown").as_deref(), Some("cooldown 5s (label hemostat.cooldown)"), "{page}");
    assert_eq!(
        line("max_per_hour").as_deref(),
        Some("max_per_hour 3 (default)"),
        "a bad value leaves the default: {page}"
    );
    assert_eq!(
        line("stop_timeout").as_deref(),
        Some("stop_timeout 10s (environment RESPONDER_STOP_TIMEOUT_SECONDS)"),
        "{page}"
    );
    assert_eq!(line("cpu_threshold").as_deref(), Some("cpu_threshold the node's (node setting THRESHOLD_CPU_PERCENT)"));
    assert_eq!(policy.len(), 7, "{page}");

    // The bad value was told, naming the label.
    let events = eventually("the bad label told", Duration::from_secs(20), || async {
        let events = fleet.json(&["events", "-o", "json", "--container", &web]);
        let told = events.as_array().unwrap().iter().any(|e| e["type"] == "input_refused");
        if told { Ok(events) } else { Err(events.to_string()) }
    })
    .await;
    let told = events.as_array().unwrap().iter().find(|e| e["type"] == "input_refused").unwrap();
    assert!(told["reason"].as_str().unwrap().contains("hemostat.max_per_hour=\"many\" is not valid"), "{told}");
}

#[test]
fn a_viewer_may_read_but_not_change() {
    let fleet = fleet();
    let issued = Command::new(env!("CARGO_BIN_EXE_hemostat"))
        .args(["certs", "issue", "operator", "ro", "--role", "viewer", "--out", "viewer"])
        .arg("--dir")
        .arg(&fleet.certs)
        .output()
        .unwrap();
    assert!(issued.status.success(), "{}", text(&issued));
    fleet.json(&["dry-run", "--cert-name", "viewer", "-o", "json"]);
    let error = fleet.fails(&["dry-run", "on", "--cert-name", "viewer"]);
    assert!(error.starts_with("hemostat: SetDryRun: PERMISSION_DENIED: ") && error.contains("admin"), "{error}");
}

#[test]
fn connection_problems_are_one_clear_line() {
    let fleet = fleet();
    let error = fleet.fails(&["nodes", "--coordinator", &format!("localhost:{}", free_port())]);
    assert!(error.starts_with("hemostat: cannot connect to the coordinator at https://localhost:"), "{error}");
    let error = fleet.fails(&["nodes", "--certs-dir", "/nonexistent"]);
    assert!(error.contains("/nonexistent/ca.pem"), "{error}");

    // Certificates of another CA: the coordinator refuses the operator's, the CLI the coordinator's.
    let foreign = tempfile::tempdir().unwrap();
    let made =
        Command::new(env!("CARGO_BIN_EXE_hemostat")).arg("certs").arg("--dir").arg(foreign.path()).arg("dev").output();
    assert!(made.unwrap().status.success());
    let file = |name: &str| foreign.path().join(name).display().to_string();
    let ca = fleet.certs.join("ca.pem").display().to_string();
    let error =
        fleet.fails(&["nodes", "--ca", &ca, "--cert", &file("operator.pem"), "--key", &file("operator-key.pem")]);
    assert!(error.starts_with("hemostat: ListNodes: ") && error.contains("does it trust this operator"), "{error}");
    let error = fleet.fails(&["nodes", "--ca", &file("ca.pem")]);
    assert!(error.contains("certificate does not chain to"), "{error}");
    let error = fleet.fails(&["nodes", "--cert-name", "node"]);
    assert!(error.starts_with("hemostat: ListNodes: PERMISSION_DENIED: "), "{error}");
}

/// Writes `contents` as `<dir>/hemostat/config.toml`.
fn write_config(dir: &Path, contents: &str) -> PathBuf {
    let file = dir.join("hemostat").join("config.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, contents).unwrap();
    file
}

#[test]
fn the_config_file_is_honoured_below_flags_and_environment() {
    let fleet = fleet();
    let home = tempfile::tempdir().unwrap();
    let good = format!("coordinator = \"localhost:{}\"\ncerts_dir = {:?}\n", fleet.port, fleet.certs.display());
    write_config(home.path(), &good);
    // Nothing but the file says where the coordinator is.
    let run = |args: &[&str], env: &[(&str, String)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hemostat"));
        command.args(args).env_clear().env("XDG_CONFIG_HOME", home.path());
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let out = run(&["nodes", "-o", "json"], &[]);
    assert!(out.status.success(), "the file in XDG_CONFIG_HOME: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&fleet.node));

    // A file pointing nowhere: the environment and then a flag override it.
    let dead = format!("localhost:{}", free_port());
    write_config(home.path(), &format!("coordinator = {dead:?}\ncerts_dir = {:?}\n", fleet.certs.display()));
    assert!(!run(&["nodes"], &[]).status.success(), "the file is read");
    let right = format!("localhost:{}", fleet.port);
    let out = run(&["nodes"], &[("HEMOSTAT_COORDINATOR", right.clone())]);
    assert!(out.status.success(), "env beats file: {}", text(&out));
    let out = run(&["nodes", "--coordinator", &right], &[("HEMOSTAT_ADDR", dead.clone())]);
    assert!(out.status.success(), "flag beats env: {}", text(&out));

    // --config names another file; an unknown key there is an error that names it.
    let other = tempfile::tempdir().unwrap();
    let named = write_config(other.path(), &good);
    let out = run(&["nodes", "--config", named.to_str().unwrap()], &[]);
    assert!(out.status.success(), "--config: {}", text(&out));
    let typo = write_config(other.path(), &format!("{good}cert_nmae = \"alice\"\n"));
    let out = run(&["nodes", "--config", typo.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(typo.to_str().unwrap()) && stderr.contains("cert_nmae"),
        "{stderr}"
    );
}

/// A standalone of one test's own, stopped when dropped.
struct OwnStandalone {
    child: Child,
}

impl OwnStandalone {
    fn start(port: u16, data_dir: &Path, selector: &str) -> Self {
        OwnStandalone { child: standalone(port, data_dir, selector).spawn().expect("hemostat standalone starts") }
    }

    /// SIGTERM, and wait (10 s at most) for it to exit.
    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the standalone did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OwnStandalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_follow_resumes_after_the_coordinator_restarts_missing_and_repeating_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let selector = format!("hemostat.test=follow-resume-{:08x}", rand_u32());
    let mut running = OwnStandalone::start(port, dir.path(), &selector);
    let no_config = dir.path().join("no-config");
    std::fs::create_dir_all(&no_config).unwrap();
    let mut fleet = Fleet { port, certs: dir.path().join("certs"), no_config, node: String::new() };
    fleet.node = fleet.connected_node();

    let mut follower = fleet
        .command(&["events", "--follow", "-o", "json", "--type", "operator_action"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut follower);
    let before = marker("before-restart");
    fleet.ok(&["silence", "add", &fleet.node, "--for", "1h", "--reason", &before]);
    line_where(&lines, Duration::from_secs(10), &before, |l| l.contains(&before));

    running.stop();
    drop(running);
    let _running = OwnStandalone::start(port, dir.path(), &selector);
    fleet.connected_node();
    let after = marker("after-restart");
    fleet.ok(&["silence", "add", &fleet.node, "--for", "1h", "--reason", &after]);
    let mut read = Vec::new();
    let line = line_where(&lines, Duration::from_secs(20), &after, |l| {
        read.push(l.to_owned());
        l.contains(&after)
    });
    assert!(!read.iter().any(|l| l.contains(&before)), "an event printed twice: {read:#?}");
    assert!(serde_json::from_str::<Value>(&line).is_ok(), "{line}");
    assert!(follower.try_wait().unwrap().is_none(), "the follower is still running");
    let _ = follower.kill();
    let _ = follower.wait();
}

#[tokio::test]
async fn containers_and_nodes_with_a_limit_show_no_more_than_it() {
    let fleet = fleet();
    let names: Vec<String> = (0..3)
        .map(|i| scope(|s| s.run(&format!("limited-{i}"), &[], "trap 'exit 0' TERM; sleep 86400 & wait")))
        .collect();
    eventually("the node to report three containers", Duration::from_secs(20), || async {
        let containers = fleet.json(&["containers", "-o", "json"]);
        let listed = containers.as_array().unwrap().iter().filter(|c| names.iter().any(|n| c["name"] == n.as_str()));
        if listed.count() == 3 { Ok(()) } else { Err(containers.to_string()) }
    })
    .await;
    let all = fleet.json(&["containers", "-o", "json"]).as_array().unwrap().len();
    let limited = fleet.cli(&["containers", "-o", "json", "--limit", "2"]);
    assert!(limited.status.success(), "{}", text(&limited));
    let shown: Value = serde_json::from_slice(&limited.stdout).expect("JSON on standard output alone");
    assert_eq!(shown.as_array().unwrap().len(), 2, "of {all}: {shown}");
    assert!(
        String::from_utf8_lossy(&limited.stderr).contains("the first 2 containers only: there are more"),
        "a cut list says so: {}",
        text(&limited)
    );
    let whole = fleet.cli(&["containers", "-o", "json", "--limit", &all.to_string()]);
    assert!(!String::from_utf8_lossy(&whole.stderr).contains("there are more"), "{}", text(&whole));
    assert_eq!(fleet.json(&["nodes", "-o", "json", "--limit", "1"]).as_array().unwrap().len(), 1);
    let refused = fleet.cli(&["containers", "--limit", "0"]);
    assert_eq!(refused.status.code(), Some(2), "a usage error: {}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid value '0' for '--limit"), "{}", text(&refused));
}
