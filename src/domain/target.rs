//! Which addresses a webhook may never reach (SPEC §6): loopback, private, link-local,
//! unique-local, multicast, unspecified, metadata and other non-public ranges, including
//! IPv4 addresses wrapped in IPv6 (mapped, compatible, NAT64, 6to4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for any address that is not a public unicast address.
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => is_blocked_v6(v6),
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata included
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // 100.64/10 carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 192.88.99/24 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 240 // 240/4 reserved
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated) and ::a.b.c.d (compatible)
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        // 64:ff9b::/96 NAT64 and 64:ff9b:1::/48 local-use NAT64
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => Some(low),
        // 2002::/16 6to4: the IPv4 address is in bits 16..48
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return true;
    }
    if (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 || (first & 0xffc0) == 0xfec0 {
        return true; // unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10
    }
    let second = ip.segments()[1];
    if first == 0x2001 && (second < 0x0200 || second == 0x0db8) {
        // 2001::/23 IETF protocol assignments, Teredo 2001::/32 (it embeds IPv4 addresses)
        // included; documentation 2001:db8::/32
        return true;
    }
    if (first & 0xfff0) == 0x3ff0 {
        return true; // documentation 3fff::/20
    }
    if ip.segments()[..4] == [0x100, 0, 0, 0] {
        return true; // discard-only 100::/64
    }
    match embedded_v4(ip) {
        // ::/96 also holds :: and ::1, handled above; any wrapped address is judged as IPv4.
        Some(v4) => is_blocked_v4(v4),
        None => false,
    }
}

/// Host names that always mean this machine (RFC 6761), whatever DNS says.
pub fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(s: &str) -> bool {
        is_blocked(s.parse().unwrap())
    }

    #[test]
    fn every_private_and_special_ipv4_range_is_blocked() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.255",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "192.88.99.1",
        ] {
            assert!(blocked(ip), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "2a00:1450::1"] {
            assert!(!blocked(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_special_ranges_and_wrapped_ipv4_are_blocked() {
        for ip in [
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::c0a8:101",
            "2002:7f00:0001::",
            "2002:c0a8:0101::1",
            "2001:db8::1",
            "::ffff:0:7f00:1",
            "::ffff:0:a00:1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:10::1",
            "100::1",
            "3fff::1",
        ] {
            assert!(blocked(ip), "{ip}");
        }
        assert!(!blocked("::ffff:8.8.8.8"));
        assert!(!blocked("64:ff9b::808:808"));
        assert!(!blocked("2002:0808:0808::1"));
        assert!(!blocked("2001:4860:4860::8888"), "public 2001: space beyond 2001::/23");
        assert!(!blocked("::ffff:0:808:808"), "a translated public address");
    }

    #[test]
    fn localhost_names_are_local() {
        for name in ["localhost", "LOCALHOST.", "api.localhost"] {
            assert!(is_local_name(name), "{name}");
        }
        assert!(!is_local_name("localhost.example.com"));
    }
}
