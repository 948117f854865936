//! A container's counters read straight from the kernel, as cAdvisor does, instead of asking the Docker
//! engine (whose stats call costs the engine more CPU than the whole node): the container's cgroup files
//! and its network counters, with the figures Docker's daemon would put in its stats.
//!
//! The container is found from its init process (the `State.Pid` of its inspect data):
//! `/proc/<pid>/cgroup` names its cgroup in each hierarchy, and `/proc/self/mountinfo` says where each
//! hierarchy is mounted, so the cgroup driver (cgroupfs or systemd) and a `--cgroup-parent` need no
//! configuration. Which files are read:
//!
//! | figure | cgroup v1 | cgroup v2 |
//! |---|---|---|
//! | CPU time | `cpuacct/cpuacct.usage` | `cpu.stat` `usage_usec` |
//! | memory usage, limit | `memory/memory.usage_in_bytes`, `memory.limit_in_bytes` | `memory.current`, `memory.max` |
//! | inactive file cache | `memory/memory.stat` `total_inactive_file` | `memory.stat` `inactive_file` |
//! | block I/O | `blkio/blkio.*io_service_bytes_recursive` (the first one with entries, as runc) | `io.stat` `rbytes`, `wbytes` |
//! | processes | `pids/pids.current` | `pids.current` |
//! | network | `/proc/<pid>/net/dev`, every interface but `lo` | the same |
//! | system CPU time, CPUs | `/proc/stat`: the `cpu` line's first seven fields, the `cpuN` lines | the same |
//!
//! As the daemon does, a memory limit above the host's memory (no limit) is the host's memory
//! (`/proc/meminfo` `MemTotal`), and a container on the host's network reports no network counters.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::metrics::{CpuCounters, Reading};

/// Nanoseconds per clock tick of `/proc/stat` (`USER_HZ` is 100 on Linux).
const NANOS_PER_TICK: u64 = 1_000_000_000 / 100;

/// Why a container's counters could not be read from its cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file does not hold what the kernel writes there.
    #[error("{path}: unexpected content: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was missing or wrong.
        what: String,
    },
    /// The process is in no hierarchy this host has mounted with the controllers needed.
    #[error("process {pid}: no mounted cgroup hierarchy with its {what}")]
    NotMounted {
        /// The container's init process.
        pid: u32,
        /// The controllers looked for.
        what: &'static str,
    },
}

/// Where this host's cgroup hierarchies are mounted, and its memory.
#[derive(Clone, Debug)]
pub struct Host {
    proc: PathBuf,
    mounts: Vec<Mount>,
    machine_memory: u64,
}

/// One mounted cgroup hierarchy.
#[derive(Clone, Debug)]
struct Mount {
    /// Where it is mounted.
    point: PathBuf,
    /// Which cgroup of the hierarchy is at the mount point (`/` unless bind-mounted or namespaced).
    root: String,
    /// The v1 controllers it carries; empty for the v2 (unified) hierarchy.
    controllers: Vec<String>,
    unified: bool,
}

/// The cgroup version of a located container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Legacy hierarchies, one per controller.
    V1,
    /// The unified hierarchy.
    V2,
}

/// The files one container's counters are read from, found once per run of the container.
#[derive(Clone, Debug)]
pub struct Location {
    /// The container's init process.
    pub pid: u32,
    /// Its cgroup version.
    pub version: Version,
    cpu: PathBuf,
    memory_usage: PathBuf,
    memory_limit: PathBuf,
    memory_stat: PathBuf,
    /// Block I/O files in the order tried; the first with entries counts.
    io: Vec<PathBuf>,
    pids: Option<PathBuf>,
    procs: PathBuf,
    net_dev: Option<PathBuf>,
}

/// The system's CPU time and online CPUs, read once per poll for every container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemCpu {
    /// CPU time of all CPUs, nanoseconds.
    pub total: u64,
    /// CPUs online.
    pub online: u32,
}

impl Host {
    /// This host, from `/proc`.
    pub fn new() -> Result<Self, CgroupError> {
        Self::with_proc("/proc")
    }

    /// The host whose procfs is mounted at `proc` (its `self/mountinfo` names the cgroup mounts).
    pub fn with_proc(proc: impl Into<PathBuf>) -> Result<Self, CgroupError> {
        let proc = proc.into();
        let mut buf = String::new();
        let mountinfo = proc.join("self/mountinfo");
        read(&mountinfo, &mut buf)?;
        let mounts: Vec<Mount> = buf.lines().filter_map(parse_mount).collect();
        if mounts.is_empty() {
            return Err(malformed(&mountinfo, "no cgroup or cgroup2 mount"));
        }
        let meminfo = proc.join("meminfo");
        read(&meminfo, &mut buf)?;
        let machine_memory = buf
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| malformed(&meminfo, "no MemTotal"))?;
        Ok(Host { proc, mounts, machine_memory })
    }

    /// The host's memory, bytes: the limit of a container without one.
    pub fn machine_memory(&self) -> u64 {
        self.machine_memory
    }

    /// The system's CPU time and online CPUs, from `/proc/stat`, as Docker's daemon reads them.
    pub fn system_cpu(&self, buf: &mut String) -> Result<SystemCpu, CgroupError> {
        let path = self.proc.join("stat");
        read(&path, buf)?;
        let mut total = None;
        let mut online = 0;
        for line in buf.lines() {
            if let Some(rest) = line.strip_prefix("cpu ") {
                let fields: Option<Vec<u64>> = rest.split_whitespace().take(7).map(|f| f.parse().ok()).collect();
                total = fields.filter(|f| f.len() == 7).map(|f| f.iter().sum::<u64>() * NANOS_PER_TICK);
            } else if line.starts_with("cpu") {
                online += 1;
            }
        }
        let total = total.ok_or_else(|| malformed(&path, "no `cpu` line with seven counters"))?;
        Ok(SystemCpu { total, online: online.max(1) })
    }

    /// Finds the files of the container whose init process is `pid`; `network` is false for a container
    /// without its own network namespace (on the host's network), which reports no network counters.
    pub fn locate(&self, pid: u32, network: bool) -> Result<Location, CgroupError> {
        let mut buf = String::new();
        let path = self.proc.join(format!("{pid}/cgroup"));
        read(&path, &mut buf)?;
        let v1 = |controller: &str| -> Option<PathBuf> {
            buf.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, cgroup) = (parts.next()?, parts.next()?, parts.next()?);
                if !controllers.split(',').any(|c| c == controller) {
                    return None;
                }
                let mount = self.mounts.iter().find(|m| !m.unified && m.controllers.iter().any(|c| c == controller))?;
                Some(mount.resolve(cgroup))
            })
        };
        let net_dev = network.then(|| self.proc.join(format!("{pid}/net/dev")));
        if let (Some(cpuacct), Some(memory)) = (v1("cpuacct"), v1("memory")) {
            let blkio = v1("blkio");
            let io = blkio
                .map(|dir| {
                    [
                        "blkio.bfq.io_service_bytes_recursive",
                        "blkio.io_service_bytes_recursive",
                        "blkio.throttle.io_service_bytes_recursive",
                        "blkio.throttle.io_service_bytes",
                    ]
                    .iter()
                    .map(|f| dir.join(f))
                    .collect()
                })
                .unwrap_or_default();
            return Ok(Location {
                pid,
                version: Version::V1,
                cpu: cpuacct.join("cpuacct.usage"),
                memory_usage: memory.join("memory.usage_in_bytes"),
                memory_limit: memory.join("memory.limit_in_bytes"),
                memory_stat: memory.join("memory.stat"),
                io,
                pids: v1("pids").map(|dir| dir.join("pids.current")),
                procs: cpuacct.join("cgroup.procs"),
                net_dev,
            });
        }
        let unified = buf.lines().find_map(|line| line.strip_prefix("0::"));
        let mount = self.mounts.iter().find(|m| m.unified);
        let (Some(cgroup), Some(mount)) = (unified, mount) else {
            return Err(CgroupError::NotMounted { pid, what: "cpuacct and memory controllers (v1) or unified (v2)" });
        };
        let dir = mount.resolve(cgroup);
        if !dir.join("memory.current").exists() {
            return Err(CgroupError::NotMounted { pid, what: "memory controller in the unified hierarchy" });
        }
        Ok(Location {
            pid,
            version: Version::V2,
            cpu: dir.join("cpu.stat"),
            memory_usage: dir.join("memory.current"),
            memory_limit: dir.join("memory.max"),
            memory_stat: dir.join("memory.stat"),
            io: vec![dir.join("io.stat")],
            pids: Some(dir.join("pids.current")),
            procs: dir.join("cgroup.procs"),
            net_dev,
        })
    }

    /// Whether the located init process still runs in the container's cgroup (false once the container
    /// stopped or restarted with another process: locate it again).
    pub fn still_runs(&self, location: &Location, buf: &mut String) -> bool {
        read(&location.procs, buf).is_ok() && buf.split_whitespace().any(|p| p.parse() == Ok(location.pid))
    }

    /// The container's counters now; `system` is this poll's [`Host::system_cpu`]. `buf` is reused
    /// between files (and between containers) to allocate nothing per sample.
    pub fn read(&self, location: &Location, system: SystemCpu, buf: &mut String) -> Result<Reading, CgroupError> {
        let container = match location.version {
            Version::V1 => number(&location.cpu, buf)?,
            Version::V2 => {
                read(&location.cpu, buf)?;
                key_value(buf, "usage_usec").ok_or_else(|| malformed(&location.cpu, "no usage_usec"))? * 1000
            }
        };
        let memory_usage = number(&location.memory_usage, buf)?;
        let limit = number(&location.memory_limit, buf)?;
        let memory_limit =
            if limit > self.machine_memory && self.machine_memory > 0 { self.machine_memory } else { limit };
        read(&location.memory_stat, buf)?;
        let memory_inactive_file = match location.version {
            Version::V1 => key_value(buf, "total_inactive_file"),
            Version::V2 => key_value(buf, "inactive_file"),
        }
        .unwrap_or(0);
        let (block_read_bytes, block_write_bytes) = self.block_io(location, buf)?;
        let pids = match &location.pids {
            Some(path) => number(path, buf)?,
            None => 0,
        };
        let (network_rx_bytes, network_tx_bytes) = match &location.net_dev {
            Some(path) => {
                read(path, buf)?;
                net_dev(buf).ok_or_else(|| malformed(path, "not /proc/net/dev's table"))?
            }
            None => (0, 0),
        };
        Ok(Reading {
            read_at: Some(std::time::SystemTime::now()),
            cpu: CpuCounters { container, system: system.total },
            online_cpus: system.online,
            memory_usage,
            memory_inactive_file,
            memory_limit,
            network_rx_bytes,
            network_tx_bytes,
            block_read_bytes,
            block_write_bytes,
            pids,
        })
    }

    fn block_io(&self, location: &Location, buf: &mut String) -> Result<(u64, u64), CgroupError> {
        for path in &location.io {
            match read(path, buf) {
                Ok(()) => {}
                Err(CgroupError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            }
            let totals = match location.version {
                Version::V1 => blkio_v1(buf),
                Version::V2 => Some(io_stat_v2(buf)),
            };
            if let Some(totals) = totals {
                return Ok(totals);
            }
        }
        Ok((0, 0))
    }
}

impl Mount {
    /// The folder of `cgroup` (as `/proc/<pid>/cgroup` names it) in this mount.
    fn resolve(&self, cgroup: &str) -> PathBuf {
        let relative = cgroup.strip_prefix(self.root.as_str()).unwrap_or(cgroup);
        self.point.join(relative.trim_start_matches('/'))
    }
}

/// A cgroup mount from one `/proc/self/mountinfo` line, if it is one:
/// `id parent dev root point options [optional...] - fstype source superoptions`.
fn parse_mount(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    let (fstype, _source, options) = (right.next()?, right.next()?, right.next().unwrap_or(""));
    let (root, point) = (unescape(left.get(3)?), PathBuf::from(unescape(left.get(4)?)));
    match fstype {
        "cgroup2" => Some(Mount { point, root, controllers: Vec::new(), unified: true }),
        "cgroup" => Some(Mount {
            point,
            root,
            controllers: options.split(',').filter(|o| !o.contains('=')).map(str::to_owned).collect(),
            unified: false,
        }),
        _ => None,
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn malformed(path: &Path, what: &str) -> CgroupError {
    CgroupError::Malformed { path: path.to_owned(), what: what.to_owned() }
}

/// Reads `path` into `buf` (cleared first).
fn read(path: &Path, buf: &mut String) -> Result<(), CgroupError> {
    buf.clear();
    File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .map(drop)
        .map_err(|source| CgroupError::Io { path: path.to_owned(), source })
}

/// A file holding one number; `max` (cgroup v2's "no limit") is `u64::MAX`.
fn number(path: &Path, buf: &mut String) -> Result<u64, CgroupError> {
    read(path, buf)?;
    match buf.trim() {
        "max" => Ok(u64::MAX),
        n => n.parse().map_err(|_| malformed(path, "not a number")),
    }
}

/// The value of `key` in a `key value` per line file (`memory.stat`, `cpu.stat`).
fn key_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        if k == key { v.trim().parse().ok() } else { None }
    })
}

/// Bytes read and written from a v1 `blkio.*io_service_bytes*` file (`maj:min Op bytes` lines and a
/// `Total` line); `None` when it has no entries (runc then tries the next file).
fn blkio_v1(text: &str) -> Option<(u64, u64)> {
    let (mut read, mut write, mut entries) = (0u64, 0u64, 0);
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_device), Some(op), Some(value)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let value: u64 = value.parse().unwrap_or(0);
        entries += 1;
        if op.eq_ignore_ascii_case("read") {
            read += value;
        } else if op.eq_ignore_ascii_case("write") {
            write += value;
        }
    }
    (entries > 0).then_some((read, write))
}

/// Bytes read and written from a v2 `io.stat` (`maj:min rbytes=N wbytes=N ...` per device).
fn io_stat_v2(text: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for field in text.split_whitespace() {
        if let Some(n) = field.strip_prefix("rbytes=") {
            read += n.parse().unwrap_or(0);
        } else if let Some(n) = field.strip_prefix("wbytes=") {
            write += n.parse().unwrap_or(0);
        }
    }
    (read, write)
}

/// Bytes received and sent over every interface but `lo`, from `/proc/<pid>/net/dev`
/// (`iface: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes ...`).
fn net_dev(text: &str) -> Option<(u64, u64)> {
    let (mut rx, mut tx) = (0u64, 0u64);
    let mut interfaces = text.lines().skip(2).peekable();
    interfaces.peek()?;
    for line in interfaces {
        let (name, counters) = line.split_once(':')?;
        if name.trim() == "lo" {
            continue;
        }
        let mut counters = counters.split_whitespace();
        rx += counters.next()?.parse::<u64>().ok()?;
        tx += counters.nth(7)?.parse::<u64>().ok()?;
    }
    Some((rx, tx))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3836cf02082288e02431e7aa57fe4e7aa3088ca4ba400c8f4cdb838bd2dc26b3";

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     900       9    0    0    0     0          0         0      900       9    0    0    0     0       0          0
  eth0:     486       5    0    0    0     0          0         0      120       2    0    0    0     0       0          0
  eth1:      14       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0
";

    /// A fake host: a procfs and a cgroup tree in a temporary folder, mounted as `mounts` says.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(mountinfo: &str, cgroup: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().display().to_string();
            let f = Fixture { dir };
            f.write("proc/self/mountinfo", &mountinfo.replace("$ROOT", &root));
            f.write("proc/meminfo", "MemTotal:       24683520 kB\nMemFree:          938112 kB\n");
            f.write("proc/stat", "cpu  58202 67 16223 34521 933 0 178 94 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nintr 1\n");
            f.write("proc/4242/cgroup", cgroup);
            f.write("proc/4242/net/dev", NET_DEV);
            f
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn host(&self) -> Host {
            Host::with_proc(self.dir.path().join("proc")).expect("the fixture's host")
        }
    }

    fn v1() -> Fixture {
        let mountinfo = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / $ROOT/cg/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / $ROOT/cg/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / $ROOT/cg/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / $ROOT/cg/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / $ROOT/cg/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / $ROOT/cg/unified rw,relatime - cgroup2 cgroup2 rw
";
        let cgroup = format!(
            "9:name=systemd:/docker/{ID}\n8:pids:/docker/{ID}\n7:blkio:/docker/{ID}\n4:memory:/docker/{ID}\n1:cpu,cpuacct:/docker/{ID}\n0::/docker/{ID}\n"
        );
        let f = Fixture::new(mountinfo, &cgroup);
        f.write(&format!("cg/cpu,cpuacct/docker/{ID}/cpuacct.usage"), "3000000000\n");
        f.write(&format!("cg/cpu,cpuacct/docker/{ID}/cgroup.procs"), "4242\n4250\n");
        f.write(&format!("cg/memory/docker/{ID}/memory.usage_in_bytes"), "100000000\n");
        f.write(&format!("cg/memory/docker/{ID}/memory.limit_in_bytes"), "9223372036854771712\n");
        f.write(
            &format!("cg/memory/docker/{ID}/memory.stat"),
            "cache 1703936\ninactive_file 1\ntotal_cache 1703936\ntotal_inactive_file 20000000\ntotal_active_file 4096\n",
        );
        // The BFQ file has only its Total line: runc moves on to the next one with entries.
        f.write(&format!("cg/blkio/docker/{ID}/blkio.bfq.io_service_bytes_recursive"), "Total 0\n");
        f.write(
            &format!("cg/blkio/docker/{ID}/blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Async 2\n8:0 Discard 0\n8:0 Total 12288\n8:16 Read 1\n8:16 Write 2\nTotal 12291\n",
        );
        f.write(&format!("cg/pids/docker/{ID}/pids.current"), "3\n");
        f
    }

    #[test]
    fn cgroup_v1_files_give_the_daemons_figures() {
        let f = v1();
        let host = f.host();
        let mut buf = String::new();
        let system = host.system_cpu(&mut buf).unwrap();
        assert_eq!(system, SystemCpu { total: (58202 + 67 + 16223 + 34521 + 933 + 178) * NANOS_PER_TICK, online: 2 });
        let location = host.locate(4242, true).unwrap();
        assert_eq!(location.version, Version::V1);
        assert!(host.still_runs(&location, &mut buf));
        let reading = host.read(&location, system, &mut buf).unwrap();
        assert_eq!(reading.cpu, CpuCounters { container: 3_000_000_000, system: system.total });
        assert_eq!(reading.online_cpus, 2);
        assert_eq!((reading.memory_usage, reading.memory_inactive_file), (100_000_000, 20_000_000));
        assert_eq!(reading.memory_limit, 24_683_520 * 1024, "no limit: the host's memory");
        assert_eq!((reading.block_read_bytes, reading.block_write_bytes), (4097, 8194));
        assert_eq!(reading.pids, 3);
        assert_eq!((reading.network_rx_bytes, reading.network_tx_bytes), (500, 126), "lo left out");

        let metrics = crate::metrics::compute(&reading, None);
        assert_eq!(metrics.memory_used, 80_000_000);

        let host_network = host.locate(4242, false).unwrap();
        let reading = host.read(&host_network, system, &mut buf).unwrap();
        assert_eq!((reading.network_rx_bytes, reading.network_tx_bytes), (0, 0), "on the host's network: none");
    }

    #[test]
    fn a_restarted_container_is_located_again() {
        let f = v1();
        let host = f.host();
        let mut buf = String::new();
        let location = host.locate(4242, true).unwrap();
        f.write(&format!("cg/cpu,cpuacct/docker/{ID}/cgroup.procs"), "5000\n");
        assert!(!host.still_runs(&location, &mut buf), "another init process");
        std::fs::remove_dir_all(f.dir.path().join(format!("cg/cpu,cpuacct/docker/{ID}"))).unwrap();
        assert!(!host.still_runs(&location, &mut buf), "stopped: no cgroup");
        let err = host.read(&location, SystemCpu { total: 1, online: 1 }, &mut buf).unwrap_err();
        assert!(err.to_string().contains("cpuacct.usage"), "{err}");
    }

    #[test]
    fn cgroup_v2_files_give_the_daemons_figures() {
        let mountinfo =
            "29 23 0:26 / $ROOT/cg rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        let cgroup = format!("0::/system.slice/docker-{ID}.scope\n");
        let f = Fixture::new(mountinfo, &cgroup);
        let dir = format!("cg/system.slice/docker-{ID}.scope");
        f.write(&format!("{dir}/cpu.stat"), "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n");
        f.write(&format!("{dir}/memory.current"), "1000\n");
        f.write(&format!("{dir}/memory.max"), "4000\n");
        f.write(&format!("{dir}/memory.stat"), "anon 600\nfile 400\nactive_file 200\ninactive_file 200\n");
        f.write(&format!("{dir}/io.stat"), "8:0 rbytes=5 wbytes=6 rios=1 wios=1 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=1 rios=1 wios=1 dbytes=0 dios=0\n");
        f.write(&format!("{dir}/pids.current"), "2\n");
        f.write(&format!("{dir}/cgroup.procs"), "4242\n");
        let host = f.host();
        let mut buf = String::new();
        let system = host.system_cpu(&mut buf).unwrap();
        let location = host.locate(4242, true).unwrap();
        assert_eq!(location.version, Version::V2);
        let reading = host.read(&location, system, &mut buf).unwrap();
        assert_eq!(reading.cpu.container, 2_500_000_000);
        assert_eq!((reading.memory_usage, reading.memory_inactive_file, reading.memory_limit), (1000, 200, 4000));
        assert_eq!((reading.block_read_bytes, reading.block_write_bytes, reading.pids), (6, 7, 2));
        let metrics = crate::metrics::compute(&reading, None);
        assert_eq!((metrics.memory_used, metrics.memory_percent), (800, 20.0));

        f.write(&format!("{dir}/memory.max"), "max\n");
        let reading = host.read(&location, system, &mut buf).unwrap();
        assert_eq!(reading.memory_limit, 24_683_520 * 1024, "`max`: the host's memory");
    }

    #[test]
    fn a_process_in_no_mounted_hierarchy_is_an_error_naming_it() {
        let mountinfo = "32 31 0:29 / $ROOT/cg/cpuacct rw - cgroup cgroup rw,cpuacct\n";
        let f = Fixture::new(mountinfo, "2:cpuacct:/docker/x\n");
        let err = f.host().locate(4242, true).unwrap_err();
        assert!(matches!(err, CgroupError::NotMounted { pid: 4242, .. }), "{err}");
        let err = f.host().locate(1, true).unwrap_err();
        assert!(err.to_string().contains("1/cgroup"), "{err}");
        f.write("proc/self/mountinfo", "22 1 0:21 / /proc rw - proc proc rw\n");
        assert!(Host::with_proc(f.dir.path().join("proc")).unwrap_err().to_string().contains("no cgroup"));
    }

    #[test]
    fn malformed_files_are_errors_not_zeros() {
        let f = v1();
        let host = f.host();
        let mut buf = String::new();
        let location = host.locate(4242, true).unwrap();
        f.write(&format!("cg/memory/docker/{ID}/memory.usage_in_bytes"), "lots\n");
        let err = host.read(&location, SystemCpu { total: 1, online: 1 }, &mut buf).unwrap_err();
        assert!(
            matches!(&err, CgroupError::Malformed { path, .. } if path.ends_with("memory.usage_in_bytes")),
            "{err}"
        );
        f.write("proc/stat", "intr 1\n");
        assert!(host.system_cpu(&mut buf).is_err());
    }

    #[test]
    fn mountinfo_fields_are_unescaped_and_bind_roots_resolved() {
        let m = parse_mount("40 31 0:37 /docker /sys/fs/my\\040cgroups rw - cgroup cgroup rw,memory").unwrap();
        assert_eq!(m.point, PathBuf::from("/sys/fs/my cgroups"));
        assert_eq!(m.resolve("/docker/abc"), PathBuf::from("/sys/fs/my cgroups/abc"));
        assert_eq!(m.controllers, vec!["rw".to_owned(), "memory".to_owned()]);
        assert!(parse_mount("22 1 0:21 / /proc rw - proc proc rw").is_none());
    }
}
