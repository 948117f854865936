//! A real Podman for tests: `podman system service --time=0` (Debian's `podman`) on a socket in a temp
//! folder, speaking the Docker-compatible API the node uses, with the kit's busybox test image loaded into
//! Podman's store (`docker save` | `podman load`: no registry is reachable here). Containers are scoped to
//! one test by the same label as [`crate::docker::Scope`]'s, and removed when the service is dropped.
//!
//! Podman here runs rootful, without systemd: `CONTAINERS_CONF` points at a file setting
//! `default_ulimits` (nofile and nproc 1024; Podman's defaults are refused in this machine's containers).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::docker::{Scope, TEST_IMAGE, ensure_test_image};

/// The test image's name in Podman's store after `podman load`.
pub const PODMAN_TEST_IMAGE: &str = "localhost/hemostat-test-busybox:1";

/// The containers.conf the kit's Podman runs with.
const CONTAINERS_CONF: &str = "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n";

/// A running `podman system service`, stopped (and its containers removed) when dropped.
pub struct PodmanService {
    child: Child,
    dir: tempfile::TempDir,
    created: Mutex<Vec<String>>,
}

impl PodmanService {
    /// Starts the service and waits (15 s at most) until its socket answers `/_ping`; `Err` with the
    /// reason when `podman` is not installed, for the test to print and skip.
    pub fn start() -> Result<Self, String> {
        let installed = Command::new("podman").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !installed.is_ok_and(|s| s.success()) {
            return Err("podman is not installed (apt-get install podman)".to_owned());
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("containers.conf"), CONTAINERS_CONF).expect("write containers.conf");
        let socket = dir.path().join("podman.sock");
        let log = std::fs::File::create(dir.path().join("service.log")).expect("service log");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .env("CONTAINERS_CONF", dir.path().join("containers.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("podman system service starts");
        let service = PodmanService { child, dir, created: Mutex::new(Vec::new()) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !service.answers() {
            assert!(Instant::now() < deadline, "podman system service never answered: {}", service.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(service)
    }

    /// Whether the socket answers `GET /_ping` with `OK`.
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::os::unix::net::UnixStream::connect(self.socket()) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.") && answer.contains(" 200 ")
    }

    /// The service's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    /// The `DOCKER_HOST` that reaches it: `unix:///…/podman.sock`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// What the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    /// Runs `podman <args>` (the CLI, on the same store as the service) and returns its standard output;
    /// panics if it fails.
    pub fn podman(&self, args: &[&str]) -> String {
        let out = Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .output()
            .expect("podman runs");
        assert!(out.status.success(), "podman {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Loads the kit's busybox test image into Podman's store, once per process; returns its name there.
    pub fn ensure_test_image(&self) -> &'static str {
        static LOADED: OnceLock<()> = OnceLock::new();
        LOADED.get_or_init(|| {
            ensure_test_image();
            let archive = self.dir.path().join("test-image.tar");
            let out = Command::new("docker").args(["save", "-o"]).arg(&archive).arg(TEST_IMAGE).output();
            let out = out.expect("docker is installed");
            assert!(out.status.success(), "docker save failed: {}", String::from_utf8_lossy(&out.stderr));
            self.podman(&["load", "-q", "-i", &archive.display().to_string()]);
            let _ = std::fs::remove_file(&archive);
        });
        PODMAN_TEST_IMAGE
    }

    /// `podman run -d` of the test image running `sh -c script`, named and labelled for `scope` (so
    /// `scope.selector()` watches it), with `extra` options; returns the container's name.
    pub fn run(&self, scope: &Scope, base: &str, extra: &[&str], script: &str) -> String {
        let image = self.ensure_test_image();
        let name = scope.name(base);
        let label = scope.selector();
        let mut args = vec!["run", "-d", "--name", &name, "--label", &label];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[image, "sh", "-c", script]);
        self.podman(&args);
        self.created.lock().unwrap().push(name.clone());
        name
    }

    /// A container's status word and start time, as Podman tells them.
    pub fn state(&self, name: &str) -> (String, String) {
        let out = self.podman(&["inspect", "-f", "{{.State.Status}}|{{.State.StartedAt}}", name]);
        let (status, started) = out.split_once('|').unwrap_or((out.as_str(), ""));
        (status.to_owned(), started.to_owned())
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let created = std::mem::take(&mut *self.created.lock().unwrap());
        if !created.is_empty() {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0"])
                .args(&created)
                .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
