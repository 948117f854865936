//! A Compose project of one test, from a YAML text, run with the real `docker-compose` and taken down with
//! its volumes when dropped.

use crate::docker::{Scope, TEST_IMAGE};

/// A Compose project of this test, taken down (with its volumes) when dropped.
pub struct ComposeProject {
    /// The project name (`-p`), random per project.
    pub name: String,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ComposeProject {
    /// Writes `yaml` (with `SCOPE` replaced by the scope's label and `IMAGE` by the test image) and runs
    /// `docker-compose up -d` with `args`.
    pub fn up(scope: &Scope, yaml: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, yaml.replace("SCOPE", &scope.selector()).replace("IMAGE", TEST_IMAGE)).unwrap();
        let name = format!("hs{:08x}", rand::random::<u32>());
        let project = ComposeProject { name, file, _dir: dir };
        project.run(&[&["up", "-d"], args].concat());
        project
    }

    /// Runs `docker-compose` with `args` on this project; panics with its stderr when it fails.
    pub fn run(&self, args: &[&str]) {
        let out = std::process::Command::new("docker-compose")
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(&self.file)
            .args(args)
            .output()
            .expect("docker-compose is installed");
        assert!(out.status.success(), "docker-compose {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The name of replica `n` of `service` (docker-compose v1 naming).
    pub fn container(&self, service: &str, n: u32) -> String {
        format!("{}_{service}_{n}", self.name)
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker-compose")
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(&self.file)
            .args(["down", "-v", "-t", "1"])
            .output();
    }
}
