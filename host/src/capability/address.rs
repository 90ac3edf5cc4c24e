//! Where a granted origin may lead: the checks on resolved addresses.
//!
//! A granted *name* must not become a way into the host's network: every
//! address it resolves to is checked here, after unwrapping IPv6 forms that
//! carry an IPv4 address, and loopback, private, link-local, CGNAT,
//! unique-local and cloud-metadata ranges are refused unless the operator
//! named the address (as the origin's literal, or in `allow_private_cidrs`).

use super::Denied;
use super::http::HttpGrant;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Unwraps IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`,
/// compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`), so a range check on
/// IPv4 cannot be bypassed by writing the address in IPv6.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let embedded =
                Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            let compatible =
                s[..6].iter().all(|x| *x == 0) && !v6.is_loopback() && !v6.is_unspecified();
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0);
            if compatible || nat64 {
                IpAddr::V4(embedded)
            } else {
                IpAddr::V6(v6)
            }
        }
        v4 => v4,
    }
}

/// Why an address is not routable to the public internet, if it is not.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    const AWS_V6_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200) {
                Some("cloud metadata")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (CGNAT)")
            } else if v4.is_broadcast() || v4.is_multicast() || o[0] >= 240 {
                Some("broadcast, multicast or reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s0 = v6.segments()[0];
            if v6 == AWS_V6_METADATA {
                Some("cloud metadata")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (s0 & 0xfe00) == 0xfc00 {
                Some("unique-local (private)")
            } else if (s0 & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// The policy check on a resolved address: public addresses pass; special
/// ones only when the operator named them.
pub fn check_address(grant: &HttpGrant, origin_host: &str, addr: IpAddr) -> Result<(), Denied> {
    let addr = canonical(addr);
    let Some(range) = special_range(addr) else {
        return Ok(());
    };
    let named_literally = origin_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|lit| canonical(lit) == addr);
    let in_allowed_range = grant
        .allow_private_cidrs
        .iter()
        .any(|net| net.contains(&addr));
    if named_literally || in_allowed_range {
        Ok(())
    } else {
        Err(Denied(format!(
            "{origin_host} resolves to {addr}, a {range} address the policy does not name"
        )))
    }
}
