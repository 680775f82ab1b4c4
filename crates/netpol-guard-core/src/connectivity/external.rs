//! Addresses outside the workloads, as `ipBlock` peers cut them: every `cidr` and `except`
//! bound splits its IP family into ranges that each rule either wholly covers or wholly
//! misses, so one range stands for every address in it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::netpol::ipblock::Block;

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn last(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    fn of(ip: IpAddr) -> (Family, u128) {
        match ip {
            IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
        }
    }

    fn addr(self, value: u128) -> IpAddr {
        match self {
            // a V4 range never leaves 0..=u32::MAX
            Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }

    fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// Inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressRange {
    pub family: Family,
    pub first: u128,
    pub last: u128,
}

fn bounds(net: &IpNet) -> (Family, u128, u128) {
    let (family, first) = Family::of(net.network());
    let (_, last) = Family::of(net.broadcast());
    (family, first, last)
}

impl AddressRange {
    /// A whole family.
    pub fn family(family: Family) -> Self {
        Self {
            family,
            first: 0,
            last: family.last(),
        }
    }

    /// Whether a block matches the addresses of this range. Ranges come from
    /// [`split`], so a block holds all of them or none: the first address decides.
    pub fn in_block(&self, block: &Block) -> bool {
        block.contains(self.family.addr(self.first))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (family, value) = Family::of(ip);
        family == self.family && (self.first..=self.last).contains(&value)
    }

    /// Whether `next` starts right after this range, in the same family.
    pub fn touches(&self, next: &AddressRange) -> bool {
        self.family == next.family && self.last.checked_add(1) == Some(next.first)
    }

    /// The fewest CIDRs that cover exactly this range.
    pub fn cidrs(&self) -> Vec<IpNet> {
        let mut out = Vec::new();
        let mut first = self.first;
        let bits = self.family.bits();
        loop {
            // the largest aligned block starting at `first` that ends within the range
            let align = if first == 0 {
                bits
            } else {
                first.trailing_zeros().min(bits)
            };
            let mut size = align;
            while size > 0 {
                let span = if size == 128 {
                    u128::MAX
                } else {
                    (1u128 << size) - 1
                };
                if first.checked_add(span).is_some_and(|end| end <= self.last) {
                    break;
                }
                size -= 1;
            }
            let prefix = (bits - size) as u8;
            if let Ok(net) = IpNet::new(self.family.addr(first), prefix) {
                out.push(net);
            }
            let span = if size == 128 {
                u128::MAX
            } else {
                (1u128 << size) - 1
            };
            match first.checked_add(span).and_then(|end| end.checked_add(1)) {
                Some(next) if next <= self.last => first = next,
                _ => break,
            }
        }
        out
    }
}

/// `0.0.0.0/0`, `10.0.0.0/8,11.0.0.0/16`: the range's CIDRs joined by commas.
impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cidrs: Vec<String> = self.cidrs().iter().map(ToString::to_string).collect();
        f.write_str(&cidrs.join(","))
    }
}

/// The ranges the blocks cut both families into, in address order (IPv4 first).
pub fn split<'a>(blocks: impl IntoIterator<Item = &'a Block>) -> Vec<AddressRange> {
    let mut cuts: [Vec<u128>; 2] = [vec![0], vec![0]];
    for block in blocks {
        for net in std::iter::once(&block.cidr).chain(&block.except) {
            let (family, first, last) = bounds(net);
            let cuts = &mut cuts[family as usize];
            cuts.push(first);
            if let Some(after) = last.checked_add(1).filter(|a| *a <= family.last()) {
                cuts.push(after);
            }
        }
    }
    let mut ranges = Vec::new();
    for (family, mut starts) in [Family::V4, Family::V6].into_iter().zip(cuts) {
        starts.sort_unstable();
        starts.dedup();
        for (i, &first) in starts.iter().enumerate() {
            let last = starts.get(i + 1).map_or(family.last(), |next| next - 1);
            ranges.push(AddressRange {
                family,
                first,
                last,
            });
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::IPBlock;

    fn block(cidr: &str, except: &[&str]) -> Block {
        Block::parse(&IPBlock {
            cidr: cidr.into(),
            except: Some(except.iter().map(|e| e.to_string()).collect()),
        })
        .expect("block")
    }

    #[test]
    fn blocks_cut_the_families_into_ranges_each_rule_covers_wholly() {
        let blocks = [
            block("10.0.0.0/8", &["10.1.0.0/16"]),
            block("0.0.0.0/0", &[]),
        ];
        let ranges = split(&blocks);
        let shown: Vec<String> = ranges.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "0.0.0.0/5,8.0.0.0/7",
                "10.0.0.0/16",
                "10.1.0.0/16",
                "10.2.0.0/15,10.4.0.0/14,10.8.0.0/13,10.16.0.0/12,10.32.0.0/11,10.64.0.0/10,10.128.0.0/9",
                "11.0.0.0/8,12.0.0.0/6,16.0.0.0/4,32.0.0.0/3,64.0.0.0/2,128.0.0.0/1",
                "::/0",
            ]
        );
        let in_first: Vec<bool> = ranges.iter().map(|r| r.in_block(&blocks[0])).collect();
        assert_eq!(in_first, [false, true, false, true, false, false]);
        assert!(ranges[2].contains("10.1.2.3".parse().expect("ip")));
        assert!(ranges[0].touches(&ranges[1]) && !ranges[4].touches(&ranges[5]));
    }

    #[test]
    fn no_blocks_leave_the_two_families_whole() {
        let shown: Vec<String> = split([]).iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["0.0.0.0/0", "::/0"]);
        let host = split(&[block("fd00::1/128", &[])]);
        assert_eq!(
            host.len(),
            4,
            "IPv4 whole, IPv6 before, at and after the host"
        );
        assert_eq!(host[2].to_string(), "fd00::1/128");
        assert!(host[1].to_string().starts_with("::/1,8000::/2,"));
        assert!(host[3].to_string().starts_with("fd00::2/127,fd00::4/126,"));
        assert!(host.iter().any(|r| r.to_string() == "fd00::1/128"));
    }
}
