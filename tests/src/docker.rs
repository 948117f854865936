//! Docker for tests: a busybox image built locally (no registry is reachable here), and containers scoped
//! to one test by a label so that parallel tests never touch each other's containers; Swarm services whose
//! tasks carry that label, on an engine put in single-node swarm mode when it is not already.

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

/// Puts this engine in single-node swarm mode (`docker swarm init --advertise-addr 127.0.0.1`) unless it is
/// in swarm mode already, once per process, and waits until it is an active manager; panics if it is a
/// worker (services are only created on managers). The engine is left in swarm mode on purpose: leaving
/// would take the services away from tests running in parallel, in this process or in another one on the
/// same engine, and nothing else the tests do needs swarm mode off (docker-compose 1.29 only prints a
/// warning).
pub fn ensure_swarm() {
    static SWARM: OnceLock<()> = OnceLock::new();
    SWARM.get_or_init(|| {
        let state = || {
            let out = Command::new("docker")
                .args(["info", "-f", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"])
                .output()
                .expect("docker is installed");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        if state().starts_with("inactive") {
            // Another process may be initialising it at the same moment: then this one fails, and the
            // wait below sees the other one's swarm.
            let _ = Command::new("docker")
                .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let now = state();
            if now == "active true" {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline && !now.starts_with("active"),
                "the engine must be a swarm manager for the swarm tests (`docker swarm init --advertise-addr \
                 127.0.0.1`); it is: {now}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
}

/// A Swarm service of one test, running the test image's `sh -c script`, its task containers labelled
/// with the scope's label (so the test's node watches them); removed when dropped. Puts the engine in
/// swarm mode first if needed ([`ensure_swarm`]).
pub struct SwarmService {
    name: String,
}

impl SwarmService {
    /// `docker service create --detach` named after `base` in `scope`, with `extra` options (`--mode
    /// global`, `--container-label k=v`, `--reserve-memory n`, ...). Returns at once; wait for its tasks
    /// with [`SwarmService::running_tasks`] or [`SwarmService::containers`].
    pub fn create(scope: &Scope, base: &str, extra: &[&str], script: &str) -> Self {
        ensure_swarm();
        let service = SwarmService { name: scope.name(base) };
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
