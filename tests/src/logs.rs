//! The log lines of this test process, captured for a test to read what the node said (a bad label's
//! warning, why a container is or is not watched or probed).
//!
//! nextest runs each test in a process of its own, so the subscriber installed here is that test's.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The log lines written since [`capture`], also copied to standard error.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The first line logged so far that contains every one of `needles`.
    pub fn line_with(&self, needles: &[&str]) -> Option<String> {
        self.text().lines().find(|l| needles.iter().all(|n| l.contains(n))).map(str::to_owned)
    }
}

/// Installs the process's log subscriber at `filter` (e.g. `hemostat_node=info`), writing into the returned
/// capture; panics if the process has one already (the test must run under cargo nextest, before
/// [`crate::init`]).
pub fn capture(filter: &str) -> Captured {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("this test's process has no subscriber yet (run it with cargo nextest)");
    logs
}
