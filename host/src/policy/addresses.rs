//! Which network addresses the host may connect to on a plugin's behalf.
//!
//! Link-local and cloud-metadata addresses are always refused: they are how a
//! user-set base URL (`OPENAI_API_BASE=http://169.254.169.254/...`) would read
//! a cloud machine's credentials. Loopback and private ranges are refused
//! unless the operator allows them for on-prem providers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the operator allows beyond public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow 127.0.0.0/8 and ::1 (an on-prem server on this machine).
    pub allow_loopback: bool,
    /// Allow 10/8, 172.16/12, 192.168/16, 100.64/10 and fc00::/7.
    pub allow_private: bool,
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefusal {
    /// Link-local or a cloud metadata endpoint: never allowed.
    #[error("{0} is link-local or a cloud metadata address, which is never allowed")]
    Metadata(IpAddr),
    /// Loopback, not allowed by the operator.
    #[error(
        "{0} is a loopback address; allow it with --allow-loopback-upstreams for on-prem providers"
    )]
    Loopback(IpAddr),
    /// A private range, not allowed by the operator.
    #[error(
        "{0} is a private address; allow it with --allow-private-upstreams for on-prem providers"
    )]
    Private(IpAddr),
    /// Unspecified, multicast, broadcast or reserved: never a provider.
    #[error("{0} is not a unicast address a provider could have")]
    NotUnicast(IpAddr),
}

/// AWS's IPv6 instance metadata endpoint.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
/// Alibaba Cloud's metadata endpoint.
const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// Checks one address against the policy.
pub fn check_address(address: IpAddr, policy: AddressPolicy) -> Result<(), AddressRefusal> {
    match address {
        IpAddr::V4(v4) => check_v4(v4, address, policy),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return check_v4(v4, address, policy);
            }
            let segments = v6.segments();
            if v6 == AWS_METADATA_V6 || (segments[0] & 0xffc0) == 0xfe80 {
                Err(AddressRefusal::Metadata(address))
            } else if v6.is_unspecified() || v6.is_multicast() {
                Err(AddressRefusal::NotUnicast(address))
            } else if v6.is_loopback() {
                allow(policy.allow_loopback, AddressRefusal::Loopback(address))
            } else if (segments[0] & 0xfe00) == 0xfc00 {
                allow(policy.allow_private, AddressRefusal::Private(address))
            } else {
                Ok(())
            }
        }
    }
}

fn check_v4(v4: Ipv4Addr, address: IpAddr, policy: AddressPolicy) -> Result<(), AddressRefusal> {
    let [a, b, ..] = v4.octets();
    if v4.is_link_local() || v4 == ALIBABA_METADATA {
        Err(AddressRefusal::Metadata(address))
    } else if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || a == 0 || a >= 240 {
        Err(AddressRefusal::NotUnicast(address))
    } else if v4.is_loopback() {
        allow(policy.allow_loopback, AddressRefusal::Loopback(address))
    } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
        allow(policy.allow_private, AddressRefusal::Private(address))
    } else {
        Ok(())
    }
}

fn allow(allowed: bool, refusal: AddressRefusal) -> Result<(), AddressRefusal> {
    if allowed { Ok(()) } else { Err(refusal) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: AddressPolicy = AddressPolicy { allow_loopback: true, allow_private: true };
    const CLOSED: AddressPolicy = AddressPolicy { allow_loopback: false, allow_private: false };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        for address in [
            "169.254.169.254",
            "169.254.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "100.100.100.200",
            "::ffff:169.254.169.254",
        ] {
            assert!(
                matches!(check_address(ip(address), OPEN), Err(AddressRefusal::Metadata(_))),
                "{address}"
            );
        }
    }

    #[test]
    fn loopback_and_private_need_the_operator() {
        for (address, loopback) in [
            ("127.0.0.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("100.64.0.1", false),
            ("fd12::1", false),
        ] {
            assert!(check_address(ip(address), CLOSED).is_err(), "{address}");
            assert!(check_address(ip(address), OPEN).is_ok(), "{address}");
            let only_loopback = AddressPolicy { allow_loopback: true, allow_private: false };
            assert_eq!(check_address(ip(address), only_loopback).is_ok(), loopback, "{address}");
        }
    }

    #[test]
    fn public_unicast_is_allowed_and_nonsense_is_not() {
        for address in ["162.159.140.245", "2606:4700::6810:84e5", "8.8.8.8"] {
            assert!(check_address(ip(address), CLOSED).is_ok(), "{address}");
        }
        for address in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "ff02::1", "240.0.0.1"] {
            assert!(
                matches!(check_address(ip(address), OPEN), Err(AddressRefusal::NotUnicast(_))),
                "{address}"
            );
        }
    }
}
