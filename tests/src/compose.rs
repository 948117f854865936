//! A Compose project of one test (docker-compose with the local test image), taken down with its volumes
//! when dropped.

use std::path::PathBuf;

use crate::docker::{Scope, TEST_IMAGE};

/// A Compose project of this test, taken down (with its volumes) when dropped.
pub struct ComposeProject {
    /// The project's name (random).
    pub name: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl ComposeProject {
    /// `docker-compose up -d` of `yaml`, with `args`, where `SCOPE` stands for the scope's label, `IMAGE` for
    /// the test image and `PROJECT` for the project's name.
    pub fn up(scope: &Scope, yaml: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("compose.yaml");
        let name = format!("hs{:08x}", rand::random::<u32>());
        let yaml = yaml.replace("SCOPE", &scope.selector()).replace("IMAGE", TEST_IMAGE).replace("PROJECT", &name);
        std::fs::write(&file, yaml).expect("write compose.yaml");
        let project = ComposeProject { name, file, _dir: dir };
        project.run(&[&["up", "-d"], args].concat());
        project
    }

    /// Runs `docker-compose` on the project with `args`; panics if it fails.
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

    /// The name of the `n`th container of `service`.
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
