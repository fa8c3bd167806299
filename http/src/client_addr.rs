//! Who a request comes from: the peer's address, or — when the peer is a proxy the operator
//! trusts — the first hop of `X-Forwarded-For` that is not one of them (read from the right,
//! since a client can write anything on the left). Limits per client address key on it.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed (addresses or CIDR blocks).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    #[must_use]
    pub const fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Parses `10.0.0.0/8,192.168.1.7` (an address alone is a block of one).
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is neither an IP address nor a CIDR block"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer` for a request with `headers`.
    #[must_use]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // Not an address: whoever wrote it is the last one we can name.
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }

    /// Whether the request came through a trusted proxy that says the client used HTTPS.
    #[must_use]
    pub fn forwarded_https(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.contains(peer)
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in xff {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(trusted.client(ip("203.0.113.9"), &headers(&["1.2.3.4"])), ip("203.0.113.9"));
        // A trusted peer: the hop it saw, past other trusted proxies; a forged left part is ignored.
        let chain = headers(&["6.6.6.6, 198.51.100.2", "10.1.2.3"]);
        assert_eq!(trusted.client(ip("192.168.1.7"), &chain), ip("198.51.100.2"));
        // A trusted peer with no header is the client itself.
        assert_eq!(trusted.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // Garbage stops the walk at the last address named.
        assert_eq!(trusted.client(ip("10.0.0.1"), &headers(&["evil, 10.9.9.9"])), ip("10.9.9.9"));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
    }
}
