//! What a container's probe labels ask for, validated: the target (`http://:PORT/path` or `tcp://:PORT`,
//! always on the container's own address) and how often, how patiently and how many times it is tried.
//!
//! A probe label can only aim at the container it is on: the host part of the URL must be empty, so no
//! label turns the node into a scanner of other machines. A bad `hemostat.probe` means no probe; a bad
//! interval, timeout or retries means that setting's default.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::grace::parse_duration;

/// The label naming what to probe: `http://:8080/healthz` or `tcp://:5432`.
pub const PROBE_LABEL: &str = "hemostat.probe";
/// The label saying how long between two probes (default 10 s).
pub const INTERVAL_LABEL: &str = "hemostat.probe.interval";
/// The label saying how long one probe may take (default 2 s).
pub const TIMEOUT_LABEL: &str = "hemostat.probe.timeout";
/// The label saying how many probes in a row must fail before the container is unhealthy (default 3).
pub const RETRIES_LABEL: &str = "hemostat.probe.retries";

/// The default time between two probes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The default time one probe may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default number of failures in a row that make a container unhealthy.
pub const DEFAULT_RETRIES: u32 = 3;

/// The shortest and longest interval a label may set.
const INTERVAL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// The shortest and longest timeout a label may set.
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(60));
/// The most retries a label may set.
const MAX_RETRIES: u32 = 100;
/// The longest `hemostat.probe` value accepted.
const MAX_TARGET_LEN: usize = 300;
/// The longest HTTP path (with its query) accepted.
const MAX_PATH_LEN: usize = 256;

/// What a probe checks on the container's own address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An HTTP GET of `path` on `port`: a 2xx or 3xx answer is healthy.
    Http {
        /// The port.
        port: u16,
        /// The path, with its query if any; starts with `/`.
        path: String,
    },
    /// A TCP connection to `port`: accepted is healthy.
    Tcp {
        /// The port.
        port: u16,
    },
}

impl Target {
    /// `http` or `tcp`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Http { .. } => "http",
            Target::Tcp { .. } => "tcp",
        }
    }

    /// The socket it goes to on the container's address `ip`.
    pub fn socket(&self, ip: IpAddr) -> SocketAddr {
        match self {
            Target::Http { port, .. } | Target::Tcp { port } => SocketAddr::new(ip, *port),
        }
    }

    /// What it is on the container's address `ip`, as people read it: `GET http://172.17.0.5:8080/healthz`,
    /// `connect 172.17.0.5:5432`.
    pub fn describe(&self, ip: IpAddr) -> String {
        let socket = self.socket(ip);
        match self {
            Target::Http { path, .. } => format!("GET http://{socket}{path}"),
            Target::Tcp { .. } => format!("connect {socket}"),
        }
    }
}

/// A container's probe: its target and timings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What is probed.
    pub target: Target,
    /// Time between two probes (the first comes one interval after the start).
    pub interval: Duration,
    /// Time one probe may take before it counts as failed.
    pub timeout: Duration,
    /// Failures in a row that make the container unhealthy.
    pub retries: u32,
}

impl ProbeSpec {
    /// The probe the container's labels ask for: none without a valid `hemostat.probe`; the default of each
    /// setting whose label is missing or bad ([`bad_labels`] says which).
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<ProbeSpec> {
        let target = parse_target(labels.get(PROBE_LABEL)?).ok()?;
        let setting = |label| labels.get(label).map(String::as_str);
        Some(ProbeSpec {
            target,
            interval: setting(INTERVAL_LABEL)
                .and_then(|v| parse_bounded(v, INTERVAL_RANGE).ok())
                .unwrap_or(DEFAULT_INTERVAL),
            timeout: setting(TIMEOUT_LABEL)
                .and_then(|v| parse_bounded(v, TIMEOUT_RANGE).ok())
                .unwrap_or(DEFAULT_TIMEOUT),
            retries: setting(RETRIES_LABEL).and_then(|v| parse_retries(v).ok()).unwrap_or(DEFAULT_RETRIES),
        })
    }
}

/// What is wrong with a probe label's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeLabelProblem {
    /// Longer than [`MAX_TARGET_LEN`].
    #[error("is longer than {MAX_TARGET_LEN} characters")]
    TooLong,
    /// Not `http://` or `tcp://`.
    #[error("is not an http:// or tcp:// URL")]
    Scheme,
    /// A host is named.
    #[error(
        "names the host {0:?}: a probe goes only to the container's own address (write http://:PORT/path or tcp://:PORT)"
    )]
    Host(String),
    /// No port, or not 1-65535.
    #[error("has no port from 1 to 65535 (write http://:PORT/path or tcp://:PORT)")]
    Port,
    /// An HTTP path that is too long or has characters a request line cannot carry.
    #[error("has a path that is longer than {MAX_PATH_LEN} characters or not printable ASCII without spaces")]
    Path,
    /// A path after a `tcp://` target.
    #[error("is a tcp:// target with a path; a TCP probe only connects")]
    TcpPath,
    /// Not a duration within the range.
    #[error("is not a duration from {} to {}", humantime::format_duration(.0.0), humantime::format_duration(.0.1))]
    Duration((Duration, Duration)),
    /// Not a whole number within the range.
    #[error("is not a whole number from 1 to {MAX_RETRIES}")]
    Retries,
}

/// A probe label with a bad value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("label {label}={value:?} {problem}; {}", consequence(label))]
pub struct BadProbeLabel {
    /// The label.
    pub label: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub problem: ProbeLabelProblem,
}

/// What follows from a bad value of `label`.
fn consequence(label: &str) -> String {
    match label {
        INTERVAL_LABEL => format!("the default {} applies", humantime::format_duration(DEFAULT_INTERVAL)),
        TIMEOUT_LABEL => format!("the default {} applies", humantime::format_duration(DEFAULT_TIMEOUT)),
        RETRIES_LABEL => format!("the default {DEFAULT_RETRIES} applies"),
        _ => "the container is not probed".to_owned(),
    }
}

/// The probe labels among these whose value is bad (the settings are checked only beside a
/// `hemostat.probe`).
pub fn bad_labels(labels: &HashMap<String, String>) -> Vec<BadProbeLabel> {
    let Some(target) = labels.get(PROBE_LABEL) else { return vec![] };
    let bad = |label: &'static str, value: &String, problem| BadProbeLabel { label, value: value.clone(), problem };
    let mut found: Vec<BadProbeLabel> =
        parse_target(target).err().map(|p| bad(PROBE_LABEL, target, p)).into_iter().collect();
    if let Some(value) = labels.get(INTERVAL_LABEL) {
        found.extend(parse_bounded(value, INTERVAL_RANGE).err().map(|p| bad(INTERVAL_LABEL, value, p)));
    }
    if let Some(value) = labels.get(TIMEOUT_LABEL) {
        found.extend(parse_bounded(value, TIMEOUT_RANGE).err().map(|p| bad(TIMEOUT_LABEL, value, p)));
    }
    if let Some(value) = labels.get(RETRIES_LABEL) {
        found.extend(parse_retries(value).err().map(|p| bad(RETRIES_LABEL, value, p)));
    }
    found
}

/// Parses `http://:PORT[/path]` or `tcp://:PORT`.
pub fn parse_target(text: &str) -> Result<Target, ProbeLabelProblem> {
    let text = text.trim();
    if text.len() > MAX_TARGET_LEN {
        return Err(ProbeLabelProblem::TooLong);
    }
    let (scheme, rest) = text.split_once("://").ok_or(ProbeLabelProblem::Scheme)?;
    let http = match scheme.to_ascii_lowercase().as_str() {
        "http" => true,
        "tcp" => false,
        _ => return Err(ProbeLabelProblem::Scheme),
    };
    let (authority, path) = rest.find(['/', '?']).map_or((rest, ""), |at| rest.split_at(at));
    let port = match authority.rsplit_once(':') {
        Some(("", port)) => port,
        Some((host, _)) => return Err(ProbeLabelProblem::Host(host.to_owned())),
        None if authority.is_empty() => return Err(ProbeLabelProblem::Port),
        None => return Err(ProbeLabelProblem::Host(authority.to_owned())),
    };
    let port = (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .filter(|p| *p != 0)
        .ok_or(ProbeLabelProblem::Port)?;
    if !http {
        return if path.is_empty() || path == "/" { Ok(Target::Tcp { port }) } else { Err(ProbeLabelProblem::TcpPath) };
    }
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    if path.len() > MAX_PATH_LEN || !path.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(ProbeLabelProblem::Path);
    }
    Ok(Target::Http { port, path })
}

/// A duration (seconds or humantime) within `range`.
fn parse_bounded(text: &str, range: (Duration, Duration)) -> Result<Duration, ProbeLabelProblem> {
    parse_duration(text).filter(|d| (range.0..=range.1).contains(d)).ok_or(ProbeLabelProblem::Duration(range))
}

/// A retry count from 1 to [`MAX_RETRIES`].
fn parse_retries(text: &str) -> Result<u32, ProbeLabelProblem> {
    text.trim().parse().ok().filter(|n| (1..=MAX_RETRIES).contains(n)).ok_or(ProbeLabelProblem::Retries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn http(port: u16, path: &str) -> Target {
        Target::Http { port, path: path.to_owned() }
    }

    #[test]
    fn targets_are_http_or_tcp_on_the_containers_own_address() {
        assert_eq!(parse_target("http://:8080/healthz"), Ok(http(8080, "/healthz")));
        assert_eq!(parse_target(" HTTP://:80 "), Ok(http(80, "/")));
        assert_eq!(parse_target("http://:80?ready=1"), Ok(http(80, "/?ready=1")));
        assert_eq!(parse_target("http://:8080/health?full=1&x=%20"), Ok(http(8080, "/health?full=1&x=%20")));
        assert_eq!(parse_target("tcp://:5432"), Ok(Target::Tcp { port: 5432 }));
        assert_eq!(parse_target("tcp://:5432/"), Ok(Target::Tcp { port: 5432 }));
        assert_eq!(parse_target("tcp://:65535"), Ok(Target::Tcp { port: 65535 }));
    }

    #[test]
    fn a_label_cannot_aim_the_node_at_another_host_or_smuggle_a_request() {
        use ProbeLabelProblem::*;
        for (value, problem) in [
            ("http://10.0.0.1:80/", Host("10.0.0.1".into())),
            ("http://localhost:8080/healthz", Host("localhost".into())),
            ("http://[::1]:80/", Host("[::1]".into())),
            ("http://user@:80/", Host("user@".into())),
            ("tcp://db:5432", Host("db".into())),
            ("http://example.com/", Host("example.com".into())),
            ("https://:443/", Scheme),
            ("file:///etc/passwd", Scheme),
            (":8080/healthz", Scheme),
            ("udp://:53", Scheme),
            ("http://:0/", Port),
            ("http://:65536/", Port),
            ("http://:+80/", Port),
            ("http://:/", Port),
            ("http:///healthz", Port),
            ("tcp://:5432/x", TcpPath),
            ("http://:80/a b", Path),
            ("http://:80/a\r\nHost: evil", Path),
            ("http://:80/#frag", Path),
            ("http://:80/é", Path),
        ] {
            assert_eq!(parse_target(value), Err(problem), "{value:?}");
        }
        assert_eq!(parse_target(&format!("http://:80/{}", "a".repeat(256))), Err(Path));
        assert_eq!(parse_target(&format!("http://:80/{}", "a".repeat(300))), Err(TooLong));
    }

    #[test]
    fn settings_default_and_a_bad_one_keeps_its_default() {
        let spec = ProbeSpec::from_labels(&labels(&[(PROBE_LABEL, "tcp://:5432")])).unwrap();
        assert_eq!(
            spec,
            ProbeSpec {
                target: Target::Tcp { port: 5432 },
                interval: DEFAULT_INTERVAL,
                timeout: DEFAULT_TIMEOUT,
                retries: DEFAULT_RETRIES
            }
        );
        let set = labels(&[
            (PROBE_LABEL, "http://:8080/healthz"),
            (INTERVAL_LABEL, "1s"),
            (TIMEOUT_LABEL, "500ms"),
            (RETRIES_LABEL, "2"),
        ]);
        let spec = ProbeSpec::from_labels(&set).unwrap();
        assert_eq!(
            (spec.interval, spec.timeout, spec.retries),
            (Duration::from_secs(1), Duration::from_millis(500), 2)
        );
        assert_eq!(bad_labels(&set), []);

        let bad = labels(&[
            (PROBE_LABEL, "http://:8080/healthz"),
            (INTERVAL_LABEL, "1ms"),
            (TIMEOUT_LABEL, "soon"),
            (RETRIES_LABEL, "0"),
        ]);
        let spec = ProbeSpec::from_labels(&bad).unwrap();
        assert_eq!((spec.interval, spec.timeout, spec.retries), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, DEFAULT_RETRIES));
        let said: Vec<String> = bad_labels(&bad).iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "label hemostat.probe.interval=\"1ms\" is not a duration from 1s to 1h; the default 10s applies",
                "label hemostat.probe.timeout=\"soon\" is not a duration from 100ms to 1m; the default 2s applies",
                "label hemostat.probe.retries=\"0\" is not a whole number from 1 to 100; the default 3 applies",
            ]
        );
    }

    #[test]
    fn a_bad_target_means_no_probe_and_says_why() {
        let hostile = labels(&[(PROBE_LABEL, "http://10.0.0.1:22/"), (RETRIES_LABEL, "2")]);
        assert_eq!(ProbeSpec::from_labels(&hostile), None);
        let said = bad_labels(&hostile);
        assert_eq!(said.len(), 1);
        assert_eq!(
            said[0].to_string(),
            "label hemostat.probe=\"http://10.0.0.1:22/\" names the host \"10.0.0.1\": a probe goes only to the \
             container's own address (write http://:PORT/path or tcp://:PORT); the container is not probed"
        );
        // Settings without a probe are no probe, and not checked.
        assert_eq!(ProbeSpec::from_labels(&labels(&[(RETRIES_LABEL, "x")])), None);
        assert_eq!(bad_labels(&labels(&[(RETRIES_LABEL, "x")])), []);
    }

    #[test]
    fn targets_describe_themselves_on_the_containers_address() {
        let ip: IpAddr = "172.17.0.5".parse().unwrap();
        assert_eq!(http(8080, "/healthz").describe(ip), "GET http://172.17.0.5:8080/healthz");
        assert_eq!(Target::Tcp { port: 5432 }.describe(ip), "connect 172.17.0.5:5432");
        assert_eq!(Target::Tcp { port: 5432 }.describe("::1".parse().unwrap()), "connect [::1]:5432");
    }
}
