//! The deployment material works as documented: deploy/compose.yaml comes up on this machine from images
//! built here (deploy/build-local-images.sh, no registry) with certificates made by deploy/make-certs.sh
//! (the real `hemostat certs`), its health checks pass, and the node in it heals a crashing container,
//! with the coordinator keeping its state in the stack's Redis.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hemostat_pki::TlsFiles;
use hemostat_proto::v1 as pb;
use hemostat_tests::docker::{Scope, crash_once};
use hemostat_tests::eventually;
use hemostat_tests::fleet::{fleet_client_with, kinds, node_connected, remediated};
use hemostat_tests::images::{ensure_local_images, repository};
use hemostat_tests::redis::free_port;

/// A Compose project of deploy/compose.yaml, taken down with its volumes when dropped (after printing its
/// services' logs when the test is failing).
struct ComposeStack {
    project: String,
    env_file: PathBuf,
}

impl ComposeStack {
    /// `docker-compose -p <project> -f deploy/compose.yaml --env-file <env_file> up -d`.
    fn up(project: &str, env_file: &Path) -> Self {
        let stack = ComposeStack { project: project.to_owned(), env_file: env_file.to_owned() };
        let out = stack.compose(&["up", "-d"]);
        assert!(
            out.status.success(),
            "docker-compose up failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            stack.logs()
        );
        stack
    }

    /// Runs docker-compose on this project, with only the environment it needs to reach Docker: the
    /// stack's settings come from the env file alone, not from whatever this process inherited.
    fn compose(&self, args: &[&str]) -> Output {
        let mut command = Command::new("docker-compose");
        command.env_clear();
        for kept in ["PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"] {
            if let Some(value) = std::env::var_os(kept) {
                command.env(kept, value);
            }
        }
        command
            .arg("--project-name")
            .arg(&self.project)
            .arg("--file")
            .arg(repository().join("deploy/compose.yaml"))
            .arg("--env-file")
            .arg(&self.env_file)
            .args(args)
            .output()
            .expect("docker-compose is installed")
    }

    /// The id of the container of `service`.
    fn container(&self, service: &str) -> String {
        let out = self.compose(&["ps", "-q", service]);
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(!id.is_empty(), "no container for {service}: {}", String::from_utf8_lossy(&out.stderr));
        id
    }

    /// The health status Docker reports for the container of `service` (`starting`, `healthy`, ...).
    fn health(&self, service: &str) -> String {
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}"])
            .arg(self.container(service))
            .output()
            .expect("docker is installed");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker exec` in the container of `service`; returns standard output and error together.
    fn exec(&self, service: &str, command: &[&str]) -> String {
        let out = Command::new("docker")
            .arg("exec")
            .arg(self.container(service))
            .args(command)
            .output()
            .expect("docker is installed");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_owned()
    }

    /// The last log lines of every service.
    fn logs(&self) -> String {
        let out = self.compose(&["logs", "--no-color", "--tail", "40"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for ComposeStack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs of the compose stack {}:\n{}", self.project, self.logs());
        }
        let out = self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
        if !out.status.success() {
            eprintln!("docker-compose down failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// Runs deploy/make-certs.sh into `dir` with the CLI of this build; the node's certificate names `node`.
fn make_certs(cli: &Path, dir: &Path, node: &str) {
    let out = Command::new(repository().join("deploy/make-certs.sh"))
        .arg(dir)
        .env("HEMOSTAT_CLI", cli)
        .env("NODE_NAME", node)
        .output()
        .expect("deploy/make-certs.sh can be run");
    assert!(
        out.status.success(),
        "deploy/make-certs.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The group of the Docker socket, for the node's `group_add`.
fn docker_socket_group() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/var/run/docker.sock").expect("the Docker socket exists").gid().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compose_stack_comes_up_from_local_images_and_heals_a_crashing_container() {
    hemostat_tests::init();
    let started = Instant::now();
    let images = ensure_local_images();
    eprintln!("binaries and images ready after {:?}", started.elapsed());
    let scope = Scope::new();
    let work = tempfile::tempdir().expect("temp dir");
    let node_name = format!("deploy-{}", scope.name("node").trim_start_matches("node-"));
    let certs = work.path().join("certs");
    make_certs(&images.bin_dir.join("hemostat"), &certs, &node_name);

    // Everything the stack takes from its .env, in a file of the test's own (so a deploy/.env of the
    // checkout plays no part): the test's images, certificates, a free port on loopback, a node that
    // watches only this test's containers, and quick health checks and verification.
    let port = free_port();
    let password = format!("pw:{}@/{}", rand::random::<u32>(), rand::random::<u32>());
    let settings = [
        ("HEMOSTAT_COORDINATOR_IMAGE", images.coordinator.clone()),
        ("HEMOSTAT_NODE_IMAGE", images.node.clone()),
        ("HEMOSTAT_REDIS_IMAGE", images.redis.clone()),
        ("HEMOSTAT_DEPLOY_CERTS", certs.display().to_string()),
        ("HEMOSTAT_PUBLISH_ADDRESS", "127.0.0.1".to_owned()),
        ("HEMOSTAT_GRPC_PORT", port.to_string()),
        ("HEMOSTAT_HEALTHCHECK_INTERVAL", "1s".to_owned()),
        ("REDIS_PASSWORD", password),
        ("DOCKER_GID", docker_socket_group()),
        ("NODE_CONTAINER_SELECTOR", scope.selector()),
        ("RESPONDER_VERIFY_SECONDS", "2".to_owned()),
        ("AGENT_POLL_INTERVAL", "2".to_owned()),
    ];
    let env_file = work.path().join("stack.env");
    let text: String = settings.iter().map(|(key, value)| format!("{key}={value}\n")).collect();
    std::fs::write(&env_file, text).expect("write the env file");

    let stack = ComposeStack::up(&format!("hemostat-deploy-{}", scope.name("test")), &env_file);
    for service in ["redis", "coordinator", "node"] {
        eventually(&format!("{service} healthy"), Duration::from_secs(40), || async {
            match stack.health(service) {
                health if health == "running/healthy" => Ok(()),
                health => Err(health),
            }
        })
        .await;
    }
    eprintln!("stack healthy after {:?}", started.elapsed());

    // As compose.yaml says: Redis asks for the password and keeps an append-only file; the coordinator and
    // the node run as the images' unprivileged user.
    assert_eq!(stack.exec("redis", &["redis-cli", "config", "get", "appendonly"]), "appendonly\nyes");
    let anonymous = stack.exec("redis", &["env", "-u", "REDISCLI_AUTH", "redis-cli", "ping"]);
    assert!(anonymous.contains("NOAUTH"), "Redis answered a client without the password: {anonymous}");
    assert_eq!(stack.exec("coordinator", &["id", "-u"]), "10001");
    assert_eq!(stack.exec("node", &["id", "-u"]), "10001");

    // The operator certificate make-certs.sh made reaches the published port; the node is connected.
    let operator = TlsFiles::in_dir(&certs.join("operator"), "operator");
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let client = eventually("an operator connection", Duration::from_secs(10), || async {
        let client = fleet_client_with(&operator, address).await?;
        node_connected(&client, &node_name).await.map(|()| client)
    })
    .await;

    // The documented check: `hemostat nodes` with the operator's folder.
    let nodes = Command::new(images.bin_dir.join("hemostat"))
        .args(["nodes", "--coordinator", &format!("localhost:{port}"), "--certs-dir"])
        .arg(certs.join("operator"))
        .output()
        .expect("the hemostat CLI runs");
    let listing = String::from_utf8_lossy(&nodes.stdout);
    assert!(
        nodes.status.success() && listing.contains(&node_name),
        "hemostat nodes: {listing}{}",
        String::from_utf8_lossy(&nodes.stderr)
    );

    // A container of this test's scope crashes once; the node in the stack restarts it.
    let name = scope.run("crash", &[], &crash_once(3));
    let events = remediated(&client, &name, Duration::from_secs(30)).await;
    let complete = events
        .iter()
        .find(|e| e.r#type() == pb::EventType::RemediationComplete)
        .expect("remediated returns the events with the remediation_complete");
    assert_eq!(
        (complete.outcome(), complete.action(), complete.node.as_str()),
        (pb::Outcome::Success, pb::Action::Restart, node_name.as_str()),
        "{:?}: {}",
        kinds(&events),
        complete.reason
    );
    let state = scope.state(&name);
    assert_eq!(state.status, "running", "{name} runs again after the restart: {state:?}");
    eprintln!("{name} healed after {:?}", started.elapsed());

    // The coordinator keeps its state in the stack's Redis, not in an embedded store.
    let keys: u64 = stack.exec("redis", &["redis-cli", "dbsize"]).parse().expect("DBSIZE answers a number");
    assert!(keys > 0, "the coordinator wrote nothing to Redis");
}
