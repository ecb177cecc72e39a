//! Where a webhook may not point: this host, the networks behind it, and
//! cloud metadata services (server-side request forgery).
//!
//! A tenant chooses its webhook URL and the service POSTs to it from inside
//! the deployment, so a URL naming `169.254.169.254`, `127.0.0.1:6379` or
//! `10.0.0.1` would make the service a proxy into its own network. Such
//! URLs are refused when they are set (the address as written, its
//! resolution now, and names that only mean something inside a network),
//! and again when an event is delivered: the host is resolved once, every
//! address it resolves to must be public, and the connection goes to that
//! very address (so a DNS answer that changes in between cannot swap it).
//! `serve.webhook_allow_private` turns this off, for development only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not one a webhook may reach, or `None` when it may.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => forbidden_v4(a),
        IpAddr::V6(a) => forbidden_v6(a),
    }
}

fn forbidden_v4(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    Some(match o {
        [0, ..] => "an unspecified (this-network) address",
        [127, ..] => "a loopback address",
        [10, ..] | [192, 168, ..] => "a private address",
        [172, b, ..] if (16..32).contains(&b) => "a private address",
        [169, 254, ..] => "a link-local address (cloud metadata lives there)",
        [100, b, ..] if (64..128).contains(&b) => "a carrier-grade NAT address",
        [192, 0, 0, _] => "an IETF protocol address",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "a documentation address",
        [198, b, ..] if b == 18 || b == 19 => "a benchmarking address",
        // Azure's WireServer (platform metadata and agent channel).
        [168, 63, 129, 16] => "a cloud platform address",
        [a, ..] if (224..240).contains(&a) => "a multicast address",
        [a, ..] if a >= 240 => "a reserved or broadcast address",
        _ => return None,
    })
}

fn forbidden_v6(a: Ipv6Addr) -> Option<&'static str> {
    if a.is_unspecified() {
        return Some("an unspecified address");
    }
    if a.is_loopback() {
        return Some("a loopback address");
    }
    let s = a.segments();
    // Forms that carry an IPv4 address: judged as written, refused outright
    // (a client has no business reaching an IPv4 host through them).
    if let Some(v4) = a.to_ipv4_mapped() {
        return Some(forbidden_v4(v4).unwrap_or("an IPv4-mapped address"));
    }
    if s[..6] == [0; 6] {
        return Some("an IPv4-compatible address");
    }
    // ::ffff:0:a.b.c.d, the IPv4-translated form (RFC 2765).
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        return Some("an IPv4-translated address");
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        return Some("a NAT64 address");
    }
    if s[0] == 0x2002 {
        return Some("a 6to4 address");
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return Some("a Teredo address");
    }
    if s[0] == 0x2001 && s[1] == 0xdb8 {
        return Some("a documentation address");
    }
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => "a unique-local (private) address",
        x if x & 0xffc0 == 0xfe80 => "a link-local address",
        x if x & 0xffc0 == 0xfec0 => "a site-local address",
        x if x & 0xff00 == 0xff00 => "a multicast address",
        _ => return None,
    })
}

/// Why a host name is not one a webhook may name: names that only mean
/// something inside a network (`localhost`, `*.internal` such as
/// `metadata.google.internal`, `*.local`, single labels).
pub fn forbidden_name(host: &str) -> Option<&'static str> {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if h == "localhost" || h.ends_with(".localhost") {
        return Some("a name for this host");
    }
    for suffix in [
        ".internal",
        ".local",
        ".localdomain",
        ".home.arpa",
        ".lan",
        ".intranet",
    ] {
        if h.ends_with(suffix) {
            return Some("a name that only resolves inside a network");
        }
    }
    if !h.contains('.') {
        return Some("a single-label name (resolved inside a network)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn inside_addresses_are_refused_and_public_ones_pass() {
        for bad in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:0:a00:1",
            "168.63.129.16",
        ] {
            assert!(forbidden(ip(bad)).is_some(), "{bad} must be refused");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(forbidden(ip(good)), None, "{good}");
        }
    }

    #[test]
    fn names_for_inside_things_are_refused() {
        for bad in [
            "localhost",
            "LOCALHOST.",
            "db.localhost",
            "metadata.google.internal",
            "printer.local",
            "redis",
        ] {
            assert!(forbidden_name(bad).is_some(), "{bad}");
        }
        for good in ["hooks.example.com", "example.org."] {
            assert_eq!(forbidden_name(good), None, "{good}");
        }
    }
}
