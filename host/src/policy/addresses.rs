//! Which network addresses the host may connect to on a plugin's behalf.
//!
//! Every address is put in one [`AddressClass`]; the class decides.
//!
//! **Never** (whatever the operator allows):
//! - *link-local or metadata*: `169.254.0.0/16`, `fe80::/10`, Alibaba's
//!   `100.100.100.200` and AWS's `fd00:ec2::254`. They are how a user-set base
//!   URL (`OPENAI_API_BASE=http://169.254.169.254/...`) would read a cloud
//!   machine's credentials.
//! - *not unicast*: unspecified (`0.0.0.0/8`, `::`), broadcast, multicast
//!   (`224.0.0.0/4`, `ff00::/8`).
//! - *reserved*: addresses no provider can have: documentation
//!   (`192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`,
//!   `3fff::/20`), IETF protocol assignments (`192.0.0.0/24`, and the part of
//!   `2001::/23` the IANA registry marks not globally reachable), the
//!   deprecated 6to4 relay anycast `192.88.99.0/24`, future use `240.0.0.0/4`,
//!   discard-only `100::/64`, ORCHID `2001:10::/28`, and every IPv6 address
//!   outside global unicast `2000::/3` that no rule here names (unassigned
//!   space, SRv6 SIDs `5f00::/16`, IPv4-translated `::ffff:0:0:0/96`, ...).
//!
//! **Loopback** (`127.0.0.0/8`, `::1`): only with `allow_loopback`.
//!
//! **Private** (only with `allow_private`): `10/8`, `172.16/12`,
//! `192.168/16`, shared address space `100.64/10`, benchmarking
//! `198.18.0.0/15` and `2001:2::/48` (not routed on the internet, but used by
//! labs and by fake-IP DNS of local proxies, so reachable only on a local
//! network like the private ranges), unique local `fc00::/7`, the deprecated
//! site-local `fec0::/10` (the former private range of IPv6) and the NAT64
//! local-use prefix `64:ff9b:1::/48`, which is routed only inside its
//! operator's network.
//!
//! **Embedded IPv4.** An IPv6 address that carries an IPv4 address is judged
//! by that IPv4 address, since that is where its packets end up: IPv4-mapped
//! `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
//! `2002:AABB:CCDD::/48` and Teredo `2001:0::/32` (the client address, the
//! last 32 bits inverted). So `[64:ff9b::a9fe:a9fe]` is refused exactly like
//! `169.254.169.254`. A local-use NAT64 address may embed its IPv4 address at
//! any of the RFC 6052 positions its prefix length allows (/48, /56, /64,
//! /96); it gets the strictest of those verdicts and of "private".
//!
//! Everything else is public and allowed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the operator allows beyond public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow 127.0.0.0/8 and ::1 (an on-prem server on this machine).
    pub allow_loopback: bool,
    /// Allow the private class: 10/8, 172.16/12, 192.168/16, 100.64/10,
    /// 198.18/15, fc00::/7, fec0::/10, 64:ff9b:1::/48, 2001:2::/48.
    pub allow_private: bool,
}

/// What kind of destination an address is (see the module documentation for
/// every range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally routable unicast: allowed.
    Public,
    /// Private ranges: allowed with `allow_private`.
    Private,
    /// This machine: allowed with `allow_loopback`.
    Loopback,
    /// Documentation, protocol assignments and unassigned space: never.
    Reserved,
    /// Unspecified, broadcast or multicast: never.
    NotUnicast,
    /// Link-local or a cloud metadata endpoint: never.
    Metadata,
}

impl AddressClass {
    /// How strict a verdict is, for choosing among several readings of one
    /// address: "never" beats "needs the operator" beats "public".
    fn strictness(self) -> u8 {
        match self {
            AddressClass::Public => 0,
            AddressClass::Private | AddressClass::Loopback => 1,
            AddressClass::Reserved | AddressClass::NotUnicast => 2,
            AddressClass::Metadata => 3,
        }
    }
}

/// How an IPv6 address carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`.
    Mapped,
    /// `::a.b.c.d` (deprecated).
    Compatible,
    /// The NAT64 well-known prefix `64:ff9b::/96`.
    Nat64,
    /// The NAT64 local-use prefix `64:ff9b:1::/48`.
    LocalNat64,
    /// 6to4, `2002::/16`.
    SixToFour,
    /// Teredo, `2001::/32` (the client address).
    Teredo,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Embedding::Mapped => "IPv4-mapped",
            Embedding::Compatible => "IPv4-compatible",
            Embedding::Nat64 => "NAT64",
            Embedding::LocalNat64 => "local-use NAT64",
            Embedding::SixToFour => "6to4",
            Embedding::Teredo => "Teredo",
        })
    }
}

/// The class of an address and, for an IPv6 address judged by the IPv4
/// address it carries, that IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The class that decides.
    pub class: AddressClass,
    /// The embedded IPv4 address the class comes from, if any.
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

impl Classified {
    fn plain(class: AddressClass) -> Self {
        Classified { class, embedded: None }
    }
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct AddressRefusal {
    /// The address refused.
    pub address: IpAddr,
    /// Its class (never [`AddressClass::Public`]).
    pub class: AddressClass,
    /// The embedded IPv4 address the class comes from, if any.
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

impl fmt::Display for AddressRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        if let Some((embedding, ipv4)) = self.embedded {
            write!(f, " (a {embedding} address of {ipv4})")?;
        }
        f.write_str(match self.class {
            AddressClass::Metadata => {
                " is link-local or a cloud metadata address, which is never allowed"
            }
            AddressClass::NotUnicast => " is not a unicast address a provider could have",
            AddressClass::Reserved => {
                " is reserved (documentation, protocol assignments or unassigned space), never a provider's address"
            }
            AddressClass::Loopback => {
                " is a loopback address; allow it with --allow-loopback-upstreams for on-prem providers"
            }
            AddressClass::Private => {
                " is a private address; allow it with --allow-private-upstreams for on-prem providers"
            }
            AddressClass::Public => " is public",
        })
    }
}

/// AWS's IPv6 instance metadata endpoint.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
/// Alibaba Cloud's metadata endpoint.
const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// Checks one address against the policy.
pub fn check_address(address: IpAddr, policy: AddressPolicy) -> Result<(), AddressRefusal> {
    let Classified { class, embedded } = classify(address);
    let allowed = match class {
        AddressClass::Public => true,
        AddressClass::Loopback => policy.allow_loopback,
        AddressClass::Private => policy.allow_private,
        AddressClass::Reserved | AddressClass::NotUnicast | AddressClass::Metadata => false,
    };
    if allowed { Ok(()) } else { Err(AddressRefusal { address, class, embedded }) }
}

/// The class of an address, an IPv6 address that embeds an IPv4 address
/// judged by it.
pub fn classify(address: IpAddr) -> Classified {
    match address {
        IpAddr::V4(v4) => Classified::plain(classify_v4(v4)),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether the top `len` bits of `address` are those of `prefix`.
fn in_v4(address: Ipv4Addr, prefix: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(address) & mask == u32::from(Ipv4Addr::from(prefix)) & mask
}

/// Whether the top `len` bits of `address` are those of `prefix`.
fn in_v6(address: Ipv6Addr, prefix: [u16; 8], len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(address) & mask == u128::from(Ipv6Addr::from(prefix)) & mask
}

/// The IPv4 ranges that are not public, most specific first.
const V4_RANGES: &[([u8; 4], u32, AddressClass)] = &[
    (ALIBABA_METADATA.octets(), 32, AddressClass::Metadata),
    ([255, 255, 255, 255], 32, AddressClass::NotUnicast),
    ([192, 0, 0, 0], 24, AddressClass::Reserved),
    ([192, 0, 2, 0], 24, AddressClass::Reserved),
    ([192, 88, 99, 0], 24, AddressClass::Reserved),
    ([198, 51, 100, 0], 24, AddressClass::Reserved),
    ([203, 0, 113, 0], 24, AddressClass::Reserved),
    ([169, 254, 0, 0], 16, AddressClass::Metadata),
    ([192, 168, 0, 0], 16, AddressClass::Private),
    ([198, 18, 0, 0], 15, AddressClass::Private),
    ([172, 16, 0, 0], 12, AddressClass::Private),
    ([100, 64, 0, 0], 10, AddressClass::Private),
    ([0, 0, 0, 0], 8, AddressClass::NotUnicast),
    ([10, 0, 0, 0], 8, AddressClass::Private),
    ([127, 0, 0, 0], 8, AddressClass::Loopback),
    ([224, 0, 0, 0], 4, AddressClass::NotUnicast),
    ([240, 0, 0, 0], 4, AddressClass::Reserved),
];

fn classify_v4(v4: Ipv4Addr) -> AddressClass {
    V4_RANGES
        .iter()
        .find(|(prefix, len, _)| in_v4(v4, *prefix, *len))
        .map_or(AddressClass::Public, |(_, _, class)| *class)
}

/// The IPv6 ranges that are not public (beyond loopback, unspecified and
/// the embedded forms), most specific first. The globally reachable parts of
/// `2001::/23` come before the rule for the rest of it.
const V6_RANGES: &[([u16; 8], u32, AddressClass)] = &[
    (AWS_METADATA_V6.segments(), 128, AddressClass::Metadata),
    // 2001:1::1 PCP anycast, 2001:1::2 TURN anycast, 2001:1::3 DNS-SD SRP.
    ([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, AddressClass::Public),
    ([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, AddressClass::Public),
    ([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, AddressClass::Public),
    ([0x0100, 0, 0, 0, 0, 0, 0, 0], 64, AddressClass::Reserved),
    ([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, AddressClass::Public),
    ([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, AddressClass::Private),
    ([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, AddressClass::Public),
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, AddressClass::Reserved),
    ([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, AddressClass::Reserved),
    ([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, AddressClass::Public),
    ([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, AddressClass::Public),
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, AddressClass::Reserved),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, AddressClass::Reserved),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, AddressClass::Metadata),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, AddressClass::Private),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, AddressClass::NotUnicast),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, AddressClass::Private),
    ([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, AddressClass::Public),
];

/// The NAT64 local-use prefix `64:ff9b:1::/48`.
const LOCAL_NAT64: [u16; 8] = [0x64, 0xff9b, 1, 0, 0, 0, 0, 0];

fn classify_v6(v6: Ipv6Addr) -> Classified {
    if v6.is_unspecified() {
        return Classified::plain(AddressClass::NotUnicast);
    }
    if v6.is_loopback() {
        return Classified::plain(AddressClass::Loopback);
    }
    if in_v6(v6, LOCAL_NAT64, 48) {
        // The operator's prefix may be any of these lengths: the strictest
        // reading wins, and the prefix itself is private.
        return local_nat64_candidates(v6)
            .into_iter()
            .map(|ipv4| Classified {
                class: classify_v4(ipv4),
                embedded: Some((Embedding::LocalNat64, ipv4)),
            })
            .chain([Classified::plain(AddressClass::Private)])
            .max_by_key(|classified| classified.class.strictness())
            .unwrap_or(Classified::plain(AddressClass::Private));
    }
    if let Some((embedding, ipv4)) = embedded_ipv4(v6) {
        return Classified { class: classify_v4(ipv4), embedded: Some((embedding, ipv4)) };
    }
    let class = V6_RANGES
        .iter()
        .find(|(prefix, len, _)| in_v6(v6, *prefix, *len))
        .map_or(AddressClass::Reserved, |(_, _, class)| *class);
    Classified::plain(class)
}

/// The IPv4 address an IPv6 address of a fixed embedding form carries.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from(bits as u32);
    if in_v6(v6, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) {
        Some((Embedding::Mapped, low32))
    } else if in_v6(v6, [0; 8], 96) && !v6.is_unspecified() && !v6.is_loopback() {
        Some((Embedding::Compatible, low32))
    } else if in_v6(v6, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        Some((Embedding::Nat64, low32))
    } else if in_v6(v6, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        Some((Embedding::SixToFour, Ipv4Addr::from((bits >> 80) as u32)))
    } else if in_v6(v6, [0x2001, 0, 0, 0, 0, 0, 0, 0], 32) {
        Some((Embedding::Teredo, Ipv4Addr::from(!(bits as u32))))
    } else {
        None
    }
}

/// The IPv4 addresses a `64:ff9b:1::/48` address may carry: one for each
/// RFC 6052 prefix length it may have (/48, /56, /64: the IPv4 bits skip the
/// zero "u" octet 64-71 and the suffix after them is zero; /96: the last 32
/// bits). A reading in `0.0.0.0/8` is the zero padding of another length,
/// not a destination, and is left out.
fn local_nat64_candidates(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let bits = u128::from(v6);
    let take = |shift: u32, width: u32| ((bits >> shift) as u32) & (u32::MAX >> (32 - width));
    let zero_below = |bit: u32| bits & ((1u128 << bit) - 1) == 0;
    let u_octet_zero = take(56, 8) == 0;
    let readings = [
        (u_octet_zero && zero_below(40), (take(64, 16) << 16) | take(40, 16)),
        (u_octet_zero && zero_below(32), (take(64, 8) << 24) | take(32, 24)),
        (u_octet_zero && zero_below(24), take(24, 32)),
        (true, take(0, 32)),
    ];
    readings
        .into_iter()
        .filter(|(plausible, _)| *plausible)
        .map(|(_, ipv4)| Ipv4Addr::from(ipv4))
        .filter(|ipv4| ipv4.octets()[0] != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: AddressPolicy = AddressPolicy { allow_loopback: true, allow_private: true };
    const CLOSED: AddressPolicy = AddressPolicy { allow_loopback: false, allow_private: false };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn class_of(text: &str) -> AddressClass {
        classify(ip(text)).class
    }

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        for address in [
            "169.254.169.254",
            "169.254.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "100.100.100.200",
            "::ffff:169.254.169.254",
        ] {
            let refusal = check_address(ip(address), OPEN).unwrap_err();
            assert_eq!(refusal.class, AddressClass::Metadata, "{address}");
            assert!(refusal.to_string().contains("never allowed"), "{refusal}");
        }
    }

    #[test]
    fn loopback_and_private_need_the_operator() {
        for (address, loopback) in [
            ("127.0.0.1", true),
            ("127.255.0.9", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.168.1.1", false),
            ("100.64.0.1", false),
            ("100.127.255.255", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("fd12::1", false),
            ("fc00::1", false),
            ("fec0::1", false),
            ("2001:2::1", false),
        ] {
            assert!(check_address(ip(address), CLOSED).is_err(), "{address}");
            assert!(check_address(ip(address), OPEN).is_ok(), "{address}");
            let only_loopback = AddressPolicy { allow_loopback: true, allow_private: false };
            assert_eq!(check_address(ip(address), only_loopback).is_ok(), loopback, "{address}");
            let only_private = AddressPolicy { allow_loopback: false, allow_private: true };
            assert_eq!(check_address(ip(address), only_private).is_ok(), !loopback, "{address}");
        }
    }

    #[test]
    fn the_edges_of_ranges_are_public() {
        for address in [
            "162.159.140.245",
            "8.8.8.8",
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.31.196.1",
            "192.175.48.1",
            "223.255.255.255",
            "2606:4700::6810:84e5",
            "2a00:1450:4001:82b::200e",
            "2001:4860:4860::8888",
            "2001:1::1",
            "2001:3::1",
            "2001:4:112::1",
            "2001:20::1",
            "2001:200::1",
            "2620:4f:8000::1",
            "3ffe::1",
            "3fff:1000::1",
        ] {
            assert_eq!(class_of(address), AddressClass::Public, "{address}");
            assert!(check_address(ip(address), CLOSED).is_ok(), "{address}");
        }
    }

    #[test]
    fn nonsense_and_reserved_are_never_allowed() {
        for (address, class) in [
            ("0.0.0.0", AddressClass::NotUnicast),
            ("0.1.2.3", AddressClass::NotUnicast),
            ("255.255.255.255", AddressClass::NotUnicast),
            ("224.0.0.1", AddressClass::NotUnicast),
            ("239.255.255.255", AddressClass::NotUnicast),
            ("::", AddressClass::NotUnicast),
            ("ff02::1", AddressClass::NotUnicast),
            ("240.0.0.1", AddressClass::Reserved),
            ("255.255.255.254", AddressClass::Reserved),
            ("192.0.0.8", AddressClass::Reserved),
            ("192.0.0.170", AddressClass::Reserved),
            ("192.0.2.1", AddressClass::Reserved),
            ("198.51.100.7", AddressClass::Reserved),
            ("203.0.113.255", AddressClass::Reserved),
            ("192.88.99.1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Reserved),
            ("2001:db8:ffff::1", AddressClass::Reserved),
            ("3fff::1", AddressClass::Reserved),
            ("100::1", AddressClass::Reserved),
            ("100::ffff:ffff:ffff:ffff", AddressClass::Reserved),
            ("2001:10::1", AddressClass::Reserved),
            ("2001:1::4", AddressClass::Reserved),
            ("2001:1ff::1", AddressClass::Reserved),
            ("5f00::1", AddressClass::Reserved),
            ("4000::1", AddressClass::Reserved),
            ("::ffff:0:1.2.3.4", AddressClass::Reserved),
            ("1::", AddressClass::Reserved),
        ] {
            assert_eq!(class_of(address), class, "{address}");
            let refusal = check_address(ip(address), OPEN).unwrap_err();
            assert_eq!(refusal.class, class, "{address}");
        }
    }

    #[test]
    fn ipv6_forms_that_embed_ipv4_are_judged_by_it() {
        // 169.254.169.254 = a9fe:a9fe; its complement (Teredo) = 5601:5601.
        for (address, embedding) in [
            ("::ffff:a9fe:a9fe", Embedding::Mapped),
            ("::a9fe:a9fe", Embedding::Compatible),
            ("::169.254.169.254", Embedding::Compatible),
            ("64:ff9b::a9fe:a9fe", Embedding::Nat64),
            ("64:ff9b::169.254.169.254", Embedding::Nat64),
            ("2002:a9fe:a9fe::", Embedding::SixToFour),
            ("2002:a9fe:a9fe:1:2:3:4:5", Embedding::SixToFour),
            ("2001:0:4136:e378:8000:63bf:5601:5601", Embedding::Teredo),
            ("64:ff9b:1::a9fe:a9fe", Embedding::LocalNat64),
        ] {
            let classified = classify(ip(address));
            assert_eq!(
                classified,
                Classified {
                    class: AddressClass::Metadata,
                    embedded: Some((embedding, Ipv4Addr::new(169, 254, 169, 254)))
                },
                "{address}"
            );
            let refusal = check_address(ip(address), OPEN).unwrap_err();
            let message = refusal.to_string();
            assert!(message.contains("169.254.169.254") && message.contains("never"), "{message}");
        }
        // Each embedded class carries through: loopback, private, reserved, public.
        for (address, class) in [
            ("64:ff9b::7f00:1", AddressClass::Loopback),
            ("::127.0.0.1", AddressClass::Loopback),
            ("2002:7f00:1::", AddressClass::Loopback),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", AddressClass::Loopback),
            ("64:ff9b::a00:1", AddressClass::Private),
            ("2002:c0a8:101::1", AddressClass::Private),
            ("64:ff9b::c000:201", AddressClass::Reserved),
            ("::ffff:0.0.0.0", AddressClass::NotUnicast),
            ("::0.0.0.2", AddressClass::NotUnicast),
            ("64:ff9b::808:808", AddressClass::Public),
            ("2002:808:808::1", AddressClass::Public),
            ("::ffff:8.8.8.8", AddressClass::Public),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", AddressClass::Public),
        ] {
            assert_eq!(class_of(address), class, "{address}");
        }
        assert_eq!(embedded_ipv4("2606:4700::1".parse().unwrap()), None);
    }

    #[test]
    fn local_use_nat64_takes_the_strictest_reading() {
        // At least private, whatever it embeds, at whichever length.
        for address in ["64:ff9b:1::808:808", "64:ff9b:1:808:8:800::", "64:ff9b:1:8:8:808::"] {
            assert_eq!(class_of(address), AddressClass::Private, "{address}");
            assert!(check_address(ip(address), CLOSED).is_err(), "{address}");
            let private = AddressPolicy { allow_loopback: false, allow_private: true };
            assert!(check_address(ip(address), private).is_ok(), "{address}");
        }
        // 169.254.169.254 at the /48 position: bits 48-63 and 72-87.
        assert_eq!(class_of("64:ff9b:1:a9fe:00a9:fe00::"), AddressClass::Metadata);
        // At the /56 position: bits 56-63 and 72-95.
        assert_eq!(class_of("64:ff9b:1:a9:fe:a9fe::"), AddressClass::Metadata);
        // At the /64 position: bits 72-103.
        assert_eq!(class_of("64:ff9b:1:0:a9:fea9:fe00:0"), AddressClass::Metadata);
        // A non-zero "u" octet or suffix makes a shorter reading implausible.
        assert_eq!(class_of("64:ff9b:1:a9fe:ffa9:fe00::808"), AddressClass::Private);
        // 127.0.0.1 at the /64 position: loopback and private are both
        // "needs the operator"; either refusal stops a closed policy.
        assert!(check_address(ip("64:ff9b:1:0:7f:0:100:0"), CLOSED).is_err());
    }

    #[test]
    fn refusals_name_the_embedded_address_and_the_switch() {
        let refusal = check_address(ip("64:ff9b::7f00:1"), CLOSED).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "64:ff9b::7f00:1 (a NAT64 address of 127.0.0.1) is a loopback address; allow it with --allow-loopback-upstreams for on-prem providers"
        );
        let refusal = check_address(ip("198.18.0.1"), CLOSED).unwrap_err();
        assert!(refusal.to_string().contains("--allow-private-upstreams"), "{refusal}");
    }
}
