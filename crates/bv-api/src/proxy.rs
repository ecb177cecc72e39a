//! Which client a request is from when it reaches the service through a
//! reverse proxy (`serve.trusted_proxies`).
//!
//! Behind a proxy every connection comes from the proxy's address, so one
//! client's sign-in failures, rate limits and connection cap would be
//! everyone's, and the audit log would name only the proxy. A connection
//! from a trusted proxy is attributed to the client its `X-Forwarded-For`
//! names: the rightmost address not itself a trusted proxy (each proxy
//! appends the address it saw; what lies left of the first untrusted hop
//! is the client's own text and could be anything). From any other peer
//! the header is ignored, so a client cannot dodge a limit by writing it.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The trusted proxies' address ranges.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`, `::1`) and ranges (`10.0.0.0/8`).
    pub fn parse(items: &[String]) -> Result<Self, String> {
        items
            .iter()
            .map(|s| {
                let s = s.trim();
                let net = s
                    .parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "serve.trusted_proxies: {s:?} is neither an address nor a range \
                             (e.g. 127.0.0.1 or 10.0.0.0/8)"
                        )
                    })?;
                if net.prefix_len() == 0 {
                    return Err(format!(
                        "serve.trusted_proxies: {s:?} trusts every address, so any client \
                         could name itself; list your proxies' addresses"
                    ));
                }
                // An IPv4-mapped IPv6 address or range is the IPv4 one (peers are
                // compared in that form).
                Ok(match net {
                    IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                        Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                            .map(IpNet::V4)
                            .unwrap_or(net),
                        None => net,
                    },
                    other => other,
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is a trusted proxy (IPv4-mapped IPv6 as its IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client a request from `peer` with `headers` is from (its port is
    /// the peer's when the client is the peer, else 0).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer.ip();
        for hop in hops.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            // A hop a trusted proxy wrote that is no address: stop at that proxy.
            let Ok(ip) = hop.parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
        }
        if client == peer.ip() {
            peer
        } else {
            SocketAddr::new(client, 0)
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(trusted: &[&str], peer: &str, xff: &[&str]) -> String {
        let p = TrustedProxies::parse(&trusted.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        p.client(peer.parse().unwrap(), &h).ip().to_string()
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        // No proxy trusted: the header is the client's own text, ignored.
        assert_eq!(
            client(&[], "198.51.100.9:5000", &["203.0.113.7"]),
            "198.51.100.9"
        );
        // A trusted proxy: the address it appended.
        assert_eq!(
            client(&["127.0.0.1"], "127.0.0.1:5000", &["203.0.113.7"]),
            "203.0.113.7"
        );
        // A forged entry left of the proxy's is skipped: the rightmost untrusted hop.
        assert_eq!(
            client(
                &["10.0.0.0/8"],
                "10.0.0.2:1",
                &["1.2.3.4, 203.0.113.7, 10.0.0.5"]
            ),
            "203.0.113.7"
        );
        // Two headers read as one list, in order.
        assert_eq!(
            client(&["10.0.0.0/8"], "10.0.0.2:1", &["1.2.3.4", "203.0.113.7"]),
            "203.0.113.7"
        );
        // From a peer that is not trusted, even a proxy-looking chain is ignored.
        assert_eq!(
            client(&["10.0.0.0/8"], "203.0.113.1:1", &["10.0.0.5"]),
            "203.0.113.1"
        );
        // Garbage written by the proxy itself: the proxy is the client.
        assert_eq!(
            client(&["127.0.0.1"], "127.0.0.1:1", &["unknown"]),
            "127.0.0.1"
        );
        // No header at all: the proxy.
        assert_eq!(client(&["127.0.0.1"], "127.0.0.1:1", &[]), "127.0.0.1");
        // IPv4-mapped peers are matched as IPv4; IPv6 ranges work.
        assert_eq!(
            client(&["127.0.0.1"], "[::ffff:127.0.0.1]:1", &["2001:db8::1"]),
            "2001:db8::1"
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["0.0.0.0/0".into()]).is_err());
        assert!(TrustedProxies::parse(&["::/0".into()]).is_err());
        // Written in IPv4-mapped form, still the IPv4 proxy.
        assert_eq!(
            client(&["::ffff:127.0.0.1"], "127.0.0.1:1", &["203.0.113.7"]),
            "203.0.113.7"
        );
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
    }
}
