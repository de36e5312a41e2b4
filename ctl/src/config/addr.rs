//! Link and network addresses as written in the configuration.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An Ethernet address. Written and displayed as `02:00:00:00:00:01`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Whether the group bit is set (broadcast included): such an address
    /// can be neither a port's own address nor a next hop.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// Whether this is 00:00:00:00:00:00.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Why an address did not parse; the text says what form is expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrError(&'static str);

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for AddrError {}

impl FromStr for MacAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FORM: AddrError = AddrError("write six pairs of hex digits: 02:00:00:00:00:01");
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut mac {
            let part = parts.next().ok_or(FORM)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(FORM);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| FORM)?;
        }
        if parts.next().is_some() {
            return Err(FORM);
        }
        Ok(MacAddr(mac))
    }
}

/// An IPv4 address with its prefix length, as in `203.0.113.1/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// The address itself (host bits kept).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Ipv4Cidr {
    /// The subnet mask of `len` leading ones.
    pub fn netmask(&self) -> Ipv4Addr {
        // A hand-built value may hold len > 32: treat it as a host route.
        let bits = u32::MAX
            .checked_shl(32u32.saturating_sub(u32::from(self.len)))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }

    /// The first address of the subnet.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.netmask()))
    }

    /// The last address of the subnet.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !u32::from(self.netmask()))
    }

    /// Whether `ip` is inside the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.netmask()) == u32::from(self.network())
    }

    /// Whether every address of `other` is inside this subnet.
    pub fn covers(&self, other: &Ipv4Cidr) -> bool {
        self.len <= other.len && self.contains(other.addr)
    }

    /// Whether the two subnets share an address: for prefixes, one always
    /// covers the other then.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.covers(other) || other.covers(self)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FORM: AddrError =
            AddrError("write an IPv4 address and prefix length: 203.0.113.1/24");
        let (addr, len) = s.split_once('/').ok_or(FORM)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| FORM)?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FORM);
        }
        let len: u8 = len.parse().map_err(|_| FORM)?;
        if len > 32 {
            return Err(AddrError("the prefix length must be 0..=32"));
        }
        Ok(Ipv4Cidr { addr, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac: MacAddr = "02:0A:00:ff:00:01".parse().unwrap();
        assert_eq!(mac.0, [2, 10, 0, 0xff, 0, 1]);
        assert_eq!(mac.to_string(), "02:0a:00:ff:00:01");
        assert!(!mac.is_multicast());
        assert!("ff:ff:ff:ff:ff:ff"
            .parse::<MacAddr>()
            .unwrap()
            .is_multicast());
    }

    #[test]
    fn mac_rejects_other_forms() {
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "02-00-00-00-00-01",
            "2:0:0:0:0:1",
            "02:00:00:00:00:0g",
            "+2:00:00:00:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_parts() {
        let c: Ipv4Cidr = "203.0.113.9/24".parse().unwrap();
        assert_eq!(c.to_string(), "203.0.113.9/24");
        assert_eq!(c.network(), Ipv4Addr::new(203, 0, 113, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(203, 0, 113, 255));
        assert!(c.contains(Ipv4Addr::new(203, 0, 113, 200)));
        assert!(!c.contains(Ipv4Addr::new(203, 0, 114, 1)));
        let all: Ipv4Cidr = "1.2.3.4/0".parse().unwrap();
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        let host: Ipv4Cidr = "1.2.3.4/32".parse().unwrap();
        assert_eq!(host.network(), Ipv4Addr::new(1, 2, 3, 4));
    }

    #[test]
    fn cidr_cover_and_overlap() {
        let c = |s: &str| s.parse::<Ipv4Cidr>().unwrap();
        assert!(c("2.2.2.0/24").covers(&c("2.2.2.11/32")));
        assert!(!c("2.2.2.11/32").covers(&c("2.2.2.0/24")));
        assert!(c("0.0.0.0/0").covers(&c("9.9.9.9/32")));
        assert!(c("2.2.2.0/24").covers(&c("2.2.2.0/24")));
        assert!(c("2.2.2.11/32").overlaps(&c("2.2.2.0/24")));
        assert!(c("2.2.2.0/24").overlaps(&c("2.2.2.11/32")));
        assert!(!c("2.2.2.11/32").overlaps(&c("2.2.2.12/32")));
        assert!(!c("2.2.2.0/25").overlaps(&c("2.2.2.128/25")));
        // Host bits are ignored: these are the subnets of two addresses.
        assert!(c("1.1.1.1/24").overlaps(&c("1.1.1.200/28")));
    }

    #[test]
    fn cidr_rejects_other_forms() {
        for bad in [
            "1.2.3.4",
            "1.2.3.4/33",
            "1.2.3/8",
            "1.2.3.4/+8",
            "1.2.3.4/",
            "/8",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }
}
