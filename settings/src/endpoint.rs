//! A coordinator's address, as nodes and the CLI are given it: `host:port` or `https://host:port`.

/// A coordinator's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Its URL, `https://host:port`.
    pub url: String,
    /// Its host, the name its certificate is expected to carry (IPv6 without brackets).
    pub host: String,
}

impl Endpoint {
    /// `host:port` or `https://host:port`; plaintext (`http://`) is refused, for HemoStat speaks only
    /// mutual TLS.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let url = if spec.contains("://") { spec.to_owned() } else { format!("https://{spec}") };
        if !url.starts_with("https://") {
            return Err(format!(
                "coordinator {spec:?}: HemoStat speaks only mutual TLS; use https://host:port or host:port"
            ));
        }
        let uri: http::Uri = url.parse().map_err(|e| format!("coordinator {spec:?} is not a valid address: {e}"))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("coordinator {spec:?} names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Endpoint { url, host })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_tls_and_refuse_plaintext() {
        let endpoint = Endpoint::parse("coord.example:50051").unwrap();
        assert_eq!((endpoint.url.as_str(), endpoint.host.as_str()), ("https://coord.example:50051", "coord.example"));
        assert_eq!(Endpoint::parse("https://[::1]:7").unwrap().host, "::1");
        assert!(Endpoint::parse("http://coord:50051").unwrap_err().contains("mutual TLS"));
        assert!(Endpoint::parse("https://").is_err());
    }
}
