//! HemoStat's own container images, built here with no registry: `deploy/build-local-images.sh` packages
//! the workspace's binaries of this very build (the debug ones, next to the running test) into `FROM
//! scratch` images, with Redis packaged the same way from this machine's `redis-server`.
//!
//! The binaries are built first (`cargo build` of the three binary packages, into the test's own target
//! folder), since `cargo test -p hemostat-tests` builds no binaries of other packages, and binaries left
//! from an older build would test old code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The tag of the images the tests build, apart from the `local` tag users build.
pub const TAG: &str = "test";

/// The images [`ensure_local_images`] built, by full name (`repository:tag`).
#[derive(Clone, Debug)]
pub struct LocalImages {
    /// `hemostat-coordinator:test`.
    pub coordinator: String,
    /// `hemostat-node:test`.
    pub node: String,
    /// `hemostat-redis:test`.
    pub redis: String,
    /// The folder of the binaries they were built from (also holds the `hemostat` CLI).
    pub bin_dir: PathBuf,
}

/// The repository's root folder.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_owned()
}

/// The folder of this build's binaries: the running test is `<target>/<profile>/deps/<test>`, the
/// binaries are in `<target>/<profile>`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("the test is in a folder");
    deps.parent().expect("deps/ is inside the profile's folder").to_owned()
}

/// Builds the coordinator, node and CLI binaries of this build's profile into [`bin_dir`], once per
/// process (cargo does nothing when they are up to date), and returns that folder.
pub fn ensure_binaries() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bin_dir = bin_dir();
        let profile = bin_dir.file_name().and_then(|n| n.to_str()).expect("the profile folder has a name");
        let target_dir = bin_dir.parent().expect("the profile folder is inside the target folder");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(repository())
            .env("CARGO_TARGET_DIR", target_dir)
            .args(["build", "--quiet", "-p", "hemostat-coordinator", "-p", "hemostat-node", "-p", "hemostat-cli"])
            .arg("--bins");
        if profile != "debug" {
            build.args(["--profile", profile]);
        }
        let started = std::time::Instant::now();
        let status = build.status().expect("cargo can be run");
        eprintln!("cargo build of the binaries: {status} after {:?}", started.elapsed());
        assert!(status.success(), "cargo build of the three binaries failed ({status})");
        bin_dir
    })
}

/// Builds `hemostat-coordinator:test`, `hemostat-node:test` and `hemostat-redis:test` with
/// `deploy/build-local-images.sh` from [`ensure_binaries`]' binaries, once per process. Docker's build
/// cache makes a rebuild from unchanged binaries take a few seconds. Needs `/bin/busybox`
/// (busybox-static), `redis-server`, and the CA bundle (ca-certificates).
pub fn ensure_local_images() -> &'static LocalImages {
    static IMAGES: OnceLock<LocalImages> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let bin_dir = ensure_binaries().to_owned();
        let started = std::time::Instant::now();
        let out = Command::new(repository().join("deploy/build-local-images.sh"))
            .env("HEMOSTAT_BIN_DIR", &bin_dir)
            .env("HEMOSTAT_IMAGE_TAG", TAG)
            .env("HEMOSTAT_IMAGES", "coordinator node redis")
            .output()
            .expect("deploy/build-local-images.sh can be run");
        assert!(
            out.status.success(),
            "deploy/build-local-images.sh failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("images built in {:?}", started.elapsed());
        LocalImages {
            coordinator: format!("hemostat-coordinator:{TAG}"),
            node: format!("hemostat-node:{TAG}"),
            redis: format!("hemostat-redis:{TAG}"),
            bin_dir,
        }
    })
}
