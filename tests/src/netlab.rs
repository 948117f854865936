//! Hosts with their own network addresses on this one machine: a Linux bridge in the root network
//! namespace and, per host, a network namespace joined to it by a veth pair (Debian's iproute2; needs root).
//! A node runs "on" a host when its runtime's threads live in the host's namespace (see
//! [`TestNode::start_on`](crate::fleet::TestNode::start_on)); it still reaches the Docker engine through the
//! Unix socket, which no namespace cuts. Cutting a host takes its link down: every connection to and from
//! it stalls, as when a cable is pulled.

use std::net::Ipv4Addr;
use std::process::Command;

/// A private network: a bridge at `<prefix>.1` and hosts at `<prefix>.2`, `.3`, ...
pub struct Lab {
    id: String,
    prefix: [u8; 3],
    hosts: usize,
}

/// One host of a [`Lab`]: a network namespace with its own address.
pub struct Host {
    /// The namespace's name (`ip netns`).
    pub netns: String,
    /// The host's address.
    pub address: Ipv4Addr,
    /// The root-side end of its veth pair.
    link: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2 is installed");
    assert!(out.status.success(), "ip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

impl Lab {
    /// A new bridge on a random private /24.
    pub fn new() -> Self {
        let id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let prefix = [10, 200 + rand::random::<u8>() % 50, rand::random::<u8>()];
        let lab = Lab { id, prefix, hosts: 0 };
        let bridge = lab.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{}/24", lab.gateway()), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        lab
    }

    fn bridge(&self) -> String {
        format!("hsbr{}", self.id)
    }

    /// The bridge's address: where the hosts reach services of the root namespace (coordinators, Redis).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], 1)
    }

    /// A new host on the bridge.
    pub fn host(&mut self) -> Host {
        self.hosts += 1;
        let n = self.hosts;
        let netns = format!("hs{}h{n}", self.id);
        let (link, peer) = (format!("hs{}a{n}", self.id), format!("hs{}b{n}", self.id));
        let address = Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], 1 + n as u8);
        ip(&["netns", "add", &netns]);
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &netns]);
        ip(&["link", "set", &link, "master", &self.bridge()]);
        ip(&["link", "set", &link, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{address}/24"), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "via", &self.gateway().to_string()]);
        Host { netns, address, link }
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in 1..=self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &format!("hs{}h{n}", self.id)]).status();
            let _ = Command::new("ip").args(["link", "del", &format!("hs{}a{n}", self.id)]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge()]).status();
    }
}

impl Host {
    /// Pulls the cable: the host's link goes down.
    pub fn cut(&self) {
        ip(&["link", "set", &self.link, "down"]);
    }

    /// Plugs it back in.
    pub fn heal(&self) {
        ip(&["link", "set", &self.link, "up"]);
    }

    /// The Prometheus text served at `/metrics` on `port` of the host's own loopback (a node's metrics
    /// listener, reachable even while the host is cut off).
    pub fn scrape(&self, port: u16) -> Result<String, String> {
        let netns = self.netns.clone();
        std::thread::spawn(move || {
            enter(&netns).map_err(|e| format!("enter {netns}: {e}"))?;
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(crate::fleet::scrape(std::net::SocketAddr::from(([127, 0, 0, 1], port))))
        })
        .join()
        .map_err(|_| "the scraping thread panicked".to_owned())?
    }
}

/// Moves the calling thread into the network namespace `netns` (threads it spawns afterwards inherit it).
pub fn enter(netns: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(format!("/var/run/netns/{netns}"))?;
    // SAFETY: setns on a valid namespace file descriptor affects only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
