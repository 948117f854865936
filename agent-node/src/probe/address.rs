//! A container's own address, the only place a probe goes: from inspect, the IP address of its first network
//! (by network name); `127.0.0.1` for a container on the host's network (the node runs on the host); the
//! address of the container whose network namespace it shares (`network_mode: container:X`).

use std::net::{IpAddr, Ipv4Addr};

use bollard::Docker;
use bollard::models::ContainerInspectResponse;

/// Why a container has no address to probe.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoAddress {
    /// `network_mode: none`.
    #[error("it has no network (network_mode: none)")]
    NoNetwork,
    /// Attached to networks, none of which gave it an IP address.
    #[error("none of its networks gave it an IP address")]
    NoIp,
    /// It shares the namespace of a container that cannot be inspected or has no address itself.
    #[error("it shares the network of container {container}, whose address cannot be had: {why}")]
    Shared {
        /// The container named in `network_mode: container:…`.
        container: String,
        /// Why.
        why: String,
    },
}

/// Where a container's address comes from, per its own inspect data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Its own address.
    Own(IpAddr),
    /// The address of the container whose network namespace it shares (`network_mode: container:<id>`).
    SharedWith(String),
}

/// Where the container's address comes from, per its inspect data.
pub fn source(inspect: &ContainerInspectResponse) -> Result<Source, NoAddress> {
    let mode = inspect.host_config.as_ref().and_then(|h| h.network_mode.as_deref()).unwrap_or("");
    if mode == "host" {
        return Ok(Source::Own(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
    if mode == "none" {
        return Err(NoAddress::NoNetwork);
    }
    if let Some(other) = mode.strip_prefix("container:") {
        return Ok(Source::SharedWith(other.to_owned()));
    }
    let networks = inspect.network_settings.as_ref().and_then(|n| n.networks.as_ref());
    let mut networks: Vec<_> = networks.into_iter().flatten().collect();
    networks.sort_by(|a, b| a.0.cmp(b.0));
    networks
        .into_iter()
        .find_map(|(_, endpoint)| {
            let v4 = endpoint.ip_address.as_deref().filter(|a| !a.is_empty());
            let v6 = endpoint.global_ipv6_address.as_deref().filter(|a| !a.is_empty());
            v4.or(v6)?.parse().ok()
        })
        .map(Source::Own)
        .ok_or(NoAddress::NoIp)
}

/// The container's own address: from its inspect data, or from the inspect of the container whose network
/// namespace it shares.
pub async fn of(docker: &Docker, inspect: &ContainerInspectResponse) -> Result<IpAddr, NoAddress> {
    match source(inspect)? {
        Source::Own(ip) => Ok(ip),
        Source::SharedWith(container) => {
            let shared = |why: String| NoAddress::Shared { container: container.clone(), why };
            let other = docker.inspect_container(&container, None).await.map_err(|e| shared(e.to_string()))?;
            match source(&other).map_err(|e| shared(e.to_string()))? {
                Source::Own(ip) => Ok(ip),
                Source::SharedWith(next) => Err(shared(format!("it shares the network of {next} in turn"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{EndpointSettings, HostConfig, NetworkSettings};

    use super::*;

    fn inspect(mode: &str, networks: &[(&str, &str)]) -> ContainerInspectResponse {
        let networks: HashMap<String, EndpointSettings> = networks
            .iter()
            .map(|(name, ip)| {
                (name.to_string(), EndpointSettings { ip_address: Some(ip.to_string()), ..Default::default() })
            })
            .collect();
        ContainerInspectResponse {
            host_config: Some(HostConfig { network_mode: Some(mode.to_owned()), ..Default::default() }),
            network_settings: Some(NetworkSettings { networks: Some(networks), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn the_address_is_the_first_networks_or_loopback_on_the_host_network() {
        let ip = |s: &str| Ok(Source::Own(s.parse().unwrap()));
        assert_eq!(source(&inspect("bridge", &[("bridge", "172.17.0.5")])), ip("172.17.0.5"));
        assert_eq!(
            source(&inspect("app_default", &[("zz", "10.1.0.2"), ("app_default", "172.20.0.3")])),
            ip("172.20.0.3")
        );
        assert_eq!(
            source(&inspect("bridge", &[("a", ""), ("b", "172.17.0.9")])),
            ip("172.17.0.9"),
            "the first with one"
        );
        assert_eq!(source(&inspect("host", &[])), ip("127.0.0.1"));
        assert_eq!(source(&inspect("none", &[])), Err(NoAddress::NoNetwork));
        assert_eq!(source(&inspect("bridge", &[("bridge", "")])), Err(NoAddress::NoIp));
        assert_eq!(source(&inspect("container:abc123", &[])), Ok(Source::SharedWith("abc123".into())));
    }
}
