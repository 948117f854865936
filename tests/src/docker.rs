//! Docker for tests: a busybox image built locally (no registry is reachable here), and containers scoped
//! to one test by a label so that parallel tests never touch each other's containers; Swarm services whose
//! tasks carry that label, on an engine put in single-node swarm mode while they need it ([`SwarmLease`]).

use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The test image's tag.
pub const TEST_IMAGE: &str = "hemostat-test-busybox:1";
/// The label that scopes containers to one test.
pub const SCOPE_LABEL: &str = "hemostat.test";

/// A container script that exits with `code` one second after its first start, and then stays up (so a
/// restart holds through verification).
pub fn crash_once(code: i32) -> String {
    format!("if [ -f /tmp/ran ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; touch /tmp/ran; sleep 1; exit {code}")
}

/// A container script that exits with `code` one second after its first start and three seconds after
/// every later start (after a restart's verification, inside its cooldown).
pub fn crash_again_later(code: i32) -> String {
    format!("if [ -f /tmp/ran ]; then sleep 3; exit {code}; fi; touch /tmp/ran; sleep 1; exit {code}")
}

/// A container script whose first restart fails (it crashes half a second after its first start, and at
/// once after its second, inside that restart's one-second verification however loaded the machine) and
/// whose second restart holds.
pub fn fails_one_restart() -> String {
    "n=$(cat /tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /tmp/n; \
     if [ \"$n\" -ge 2 ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; \
     if [ \"$n\" -eq 1 ]; then exit 1; fi; sleep 0.5; exit 1"
        .to_owned()
}

/// Builds the test image once per process (a `FROM scratch` image holding a static busybox and /tmp),
/// unless it exists already. Needs the `busybox-static` package (`.ci/run` installs it).
pub fn ensure_test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exists = Command::new("docker")
            .args(["image", "inspect", TEST_IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if exists {
            return;
        }
        let context = tempfile::tempdir().expect("temp dir");
        std::fs::copy("/bin/busybox", context.path().join("busybox"))
            .expect("/bin/busybox exists (apt-get install busybox-static)");
        std::fs::write(
            context.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             RUN [\"/bin/mkdir\", \"-p\", \"/tmp\"]\nCMD [\"sh\"]\n",
        )
        .expect("write Dockerfile");
        let out = Command::new("docker")
            .args(["build", "-q", "-t", TEST_IMAGE])
            .arg(context.path())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("docker is installed");
        assert!(out.status.success(), "building the test image failed: {}", String::from_utf8_lossy(&out.stderr));
    });
    TEST_IMAGE
}

/// A container's state, as `docker inspect` tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    /// Docker's status word: running, exited, ...
    pub status: String,
    /// The last exit code.
    pub exit_code: i64,
    /// When it last started (RFC 3339, from Docker).
    pub started_at: String,
}

/// The containers of one test, all labelled `hemostat.test=<id>`, removed when the scope is dropped.
pub struct Scope {
    id: String,
}

impl Default for Scope {
    fn default() -> Self {
        Self::new()
    }
}

impl Scope {
    /// A new scope with a random id; builds the test image if needed.
    pub fn new() -> Self {
        ensure_test_image();
        Scope { id: format!("{:08x}", rand::random::<u32>()) }
    }

    /// The node selector that watches exactly this scope's containers.
    pub fn selector(&self) -> String {
        format!("{SCOPE_LABEL}={}", self.id)
    }

    /// The full name of this scope's container `base`.
    pub fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.id)
    }

    /// `docker run -d --init` of the test image running `sh -c script`, with the scope label and `extra`
    /// options. Returns the container's name.
    pub fn run(&self, base: &str, extra: &[&str], script: &str) -> String {
        let name = self.name(base);
        let label = self.selector();
        let mut args = vec!["run", "-d", "--init", "--name", &name, "--label", &label];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[TEST_IMAGE, "sh", "-c", script]);
        self.docker(&args);
        name
    }

    /// Runs a docker CLI command and returns its standard output; panics if it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker").args(args).output().expect("docker is installed");
        assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The container's current state.
    pub fn state(&self, name: &str) -> ContainerState {
        let out = self.docker(&["inspect", "-f", "{{.State.Status}}|{{.State.ExitCode}}|{{.State.StartedAt}}", name]);
        let mut parts = out.splitn(3, '|');
        ContainerState {
            status: parts.next().unwrap_or_default().to_owned(),
            exit_code: parts.next().and_then(|c| c.parse().ok()).unwrap_or(-1),
            started_at: parts.next().unwrap_or_default().to_owned(),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let filter = format!("label={}", self.selector());
        let Ok(out) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() else { return };
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).stdout(Stdio::null()).status();
        }
    }
}

/// The engine's swarm mode, shared by every test process on this machine and left as it was found: the first
/// test that needs it puts the engine in single-node swarm mode (`docker swarm init --advertise-addr
/// 127.0.0.1`) unless it is in swarm mode already, and the last one to finish takes it out again, but only
/// if a test put it there. Which processes hold a lease is kept in a small file under a lock
/// (`$TMPDIR/hemostat-swarm.*`), with their process ids, so a test process that was killed does not keep the
/// engine in swarm mode for ever: the next one to release finds it gone. (In swarm mode dockerd idles at
/// about half a percent of a core, which would skew every later measurement of the node.)
pub struct SwarmLease {
    entry: String,
}

impl SwarmLease {
    /// Takes a lease, putting the engine in swarm mode first if needed, and waits until it is an active
    /// manager; panics if it is a worker (services are only created on managers).
    pub fn acquire() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let entry = format!("{}:{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        with_swarm_ledger(|ledger| {
            ledger.prune();
            if ledger.holders.is_empty() && swarm_state().starts_with("inactive") {
                let out = Command::new("docker")
                    .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
                    .output()
                    .expect("docker is installed");
                assert!(out.status.success(), "docker swarm init: {}", String::from_utf8_lossy(&out.stderr));
                ledger.initialised_here = true;
            }
            ledger.holders.push(entry.clone());
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let now = swarm_state();
            if now == "active true" {
                return SwarmLease { entry };
            }
            assert!(
                std::time::Instant::now() < deadline && !now.starts_with("active"),
                "the engine must be a swarm manager for the swarm tests (`docker swarm init --advertise-addr \
                 127.0.0.1`); it is: {now}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for SwarmLease {
    fn drop(&mut self) {
        with_swarm_ledger(|ledger| {
            ledger.holders.retain(|holder| holder != &self.entry);
            ledger.prune();
            if ledger.holders.is_empty() && ledger.initialised_here {
                let _ = Command::new("docker")
                    .args(["swarm", "leave", "--force"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                // `swarm init` created this bridge; it stays behind after leaving.
                let _ = Command::new("docker")
                    .args(["network", "rm", "docker_gwbridge"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                ledger.initialised_here = false;
            }
        });
    }
}

/// Who holds a [`SwarmLease`], and whether a test put the engine in swarm mode.
#[derive(Default)]
struct SwarmLedger {
    initialised_here: bool,
    holders: Vec<String>,
}

impl SwarmLedger {
    /// Forgets the holders whose process has ended.
    fn prune(&mut self) {
        self.holders.retain(|holder| {
            let pid = holder.split(':').next().and_then(|p| p.parse::<i32>().ok()).unwrap_or(0);
            // Signal 0 checks that the process exists.
            pid > 0 && unsafe { libc::kill(pid, 0) } == 0
        });
    }
}

/// Runs `change` on the ledger under an exclusive lock shared by every process on this machine.
fn with_swarm_ledger(change: impl FnOnce(&mut SwarmLedger)) {
    use std::os::fd::AsRawFd;
    let dir = std::env::temp_dir();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("hemostat-swarm.lock"))
        .expect("the swarm lock file");
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0, "flock the swarm lock file");
    let path = dir.join("hemostat-swarm.ledger");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines = text.lines();
    let mut ledger = SwarmLedger {
        initialised_here: lines.next() == Some("initialised"),
        holders: lines.map(str::to_owned).collect(),
    };
    change(&mut ledger);
    let mut out = String::from(if ledger.initialised_here { "initialised\n" } else { "found\n" });
    for holder in &ledger.holders {
        out.push_str(holder);
        out.push('\n');
    }
    std::fs::write(&path, out).expect("write the swarm ledger");
    // The lock is released when `lock` is closed.
}

/// `LocalNodeState ControlAvailable` of the engine's swarm, e.g. `inactive false`, `active true`.
fn swarm_state() -> String {
    let out = Command::new("docker")
        .args(["info", "-f", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"])
        .output()
        .expect("docker is installed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A Swarm service of one test, running the test image's `sh -c script`, its task containers labelled
/// with the scope's label (so the test's node watches them); removed when dropped. Puts the engine in
/// swarm mode first if needed, for as long as it exists ([`SwarmLease`]).
pub struct SwarmService {
    name: String,
    /// Keeps the engine in swarm mode while the service exists (dropped after the service is removed).
    _swarm: SwarmLease,
}

impl SwarmService {
    /// `docker service create --detach` named after `base` in `scope`, with `extra` options (`--mode
    /// global`, `--container-label k=v`, `--reserve-memory n`, ...). Returns at once; wait for its tasks
    /// with [`SwarmService::running_tasks`] or [`SwarmService::containers`].
    pub fn create(scope: &Scope, base: &str, extra: &[&str], script: &str) -> Self {
        let service = SwarmService { name: scope.name(base), _swarm: SwarmLease::acquire() };
        let label = scope.selector();
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            &service.name,
            "--container-label",
            &label,
            "--stop-grace-period",
            "1s",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[TEST_IMAGE, "sh", "-c", script]);
        scope.docker(&args);
        service
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full ids of its tasks' running containers.
    pub fn containers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.swarm.service.name={}", self.name);
        let out = Command::new("docker")
            .args(["ps", "-q", "--no-trunc", "--filter", &filter, "--filter", "status=running"])
            .output()
            .expect("docker is installed");
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
    }

    /// How many of its tasks are running now (of those the orchestrator wants running).
    pub fn running_tasks(&self) -> usize {
        let out = Command::new("docker")
            .args(["service", "ps", &self.name, "--filter", "desired-state=running", "--format", "{{.CurrentState}}"])
            .output()
            .expect("docker is installed");
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("Running")).count()
    }

    /// `docker service ps` of its tasks, for a failure message.
    pub fn tasks(&self) -> String {
        let out = Command::new("docker")
            .args(["service", "ps", "--no-trunc", &self.name])
            .output()
            .expect("docker is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Its current spec and version index, as `docker service inspect` gives them.
    pub fn spec(&self) -> (serde_json::Value, u64) {
        let out = Command::new("docker")
            .args(["service", "inspect", "-f", "{{json .Spec}}|{{.Version.Index}}", &self.name])
            .output()
            .expect("docker is installed");
        assert!(out.status.success(), "docker service inspect: {}", String::from_utf8_lossy(&out.stderr));
        let out = String::from_utf8_lossy(&out.stdout);
        let (spec, index) = out.trim().rsplit_once('|').expect("spec|index");
        (serde_json::from_str(spec).expect("the spec is JSON"), index.parse().expect("the index is a number"))
    }
}

impl Drop for SwarmService {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["service", "rm", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Scope {
    /// Like [`Scope::run`], with `labels` set through the Docker API (the CLI cannot carry a label of
    /// megabytes), `--init` and the scope label included. Returns the container's name.
    pub async fn run_labelled(&self, base: &str, labels: &[(&str, &str)], script: &str) -> String {
        use bollard::models::{ContainerCreateBody, HostConfig};
        use bollard::query_parameters::CreateContainerOptions;
        let docker = bollard::Docker::connect_with_defaults().expect("docker socket");
        let name = self.name(base);
        let mut all: std::collections::HashMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.insert(SCOPE_LABEL.to_owned(), self.id.clone());
        let body = ContainerCreateBody {
            image: Some(TEST_IMAGE.to_owned()),
            cmd: Some(vec!["sh".into(), "-c".into(), script.to_owned()]),
            labels: Some(all),
            host_config: Some(HostConfig { init: Some(true), ..Default::default() }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let created = docker.create_container(Some(options), body).await.expect("create the container");
        docker.start_container(&created.id, None).await.expect("start the container");
        name
    }
}

/// Images a test builds from the test image (each differing by a label), removed when dropped: for tests
/// that need images of their own, tagged or dangling.
#[derive(Default)]
pub struct BuiltImages {
    ids: std::sync::Mutex<Vec<String>>,
}

impl BuiltImages {
    /// Builds `tag` as the test image plus the label `hemostat.test.build=<random>`, and returns the new
    /// image's id. Building a tag again leaves its previous image dangling (untagged).
    pub fn build(&self, tag: &str) -> String {
        ensure_test_image();
        let dockerfile = format!("FROM {TEST_IMAGE}\nLABEL hemostat.test.build={:016x}\n", rand::random::<u64>());
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", tag, "-"])
            .env("DOCKER_BUILDKIT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker is installed");
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(dockerfile.as_bytes()).expect("write the Dockerfile");
        let out = child.wait_with_output().expect("docker build");
        assert!(out.status.success(), "docker build {tag}: {}", String::from_utf8_lossy(&out.stderr));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// Whether the image `id` still exists.
    pub fn exists(id: &str) -> bool {
        Command::new("docker")
            .args(["image", "inspect", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for BuiltImages {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap());
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rmi", "-f"])
                .args(&ids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
