//! `ipBlock` peers: CIDR parsing with the API server's rules (a CIDR, not a bare address;
//! every `except` a strict subset of `cidr`, in the same IP family).

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::IPBlock;

/// What is wrong with an `ipBlock`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpBlockError {
    #[error("cidr {value:?} is not a valid CIDR (write it as address/prefix, e.g. 10.0.0.0/8)")]
    Cidr { value: String },
    #[error("except[{index}] {value:?} is not a valid CIDR")]
    ExceptCidr { index: usize, value: String },
    #[error("except[{index}] {value} is in another IP family than cidr {cidr}")]
    FamilyMismatch {
        index: usize,
        value: String,
        cidr: String,
    },
    #[error("except[{index}] {value} is not a strict subset of cidr {cidr}")]
    NotStrictSubset {
        index: usize,
        value: String,
        cidr: String,
    },
}

/// A validated `ipBlock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

impl Block {
    /// Parses and validates an `ipBlock`, returning every problem found.
    pub fn parse(block: &IPBlock) -> Result<Self, Vec<IpBlockError>> {
        // parsed as the API server parses it: no surrounding white space
        let cidr = block
            .cidr
            .parse::<IpNet>()
            .map_err(|_| {
                vec![IpBlockError::Cidr {
                    value: block.cidr.clone(),
                }]
            })?
            .trunc();
        let mut errors = Vec::new();
        let mut except = Vec::new();
        for (index, value) in block.except.iter().flatten().enumerate() {
            let Ok(net) = value.parse::<IpNet>().map(|n| n.trunc()) else {
                errors.push(IpBlockError::ExceptCidr {
                    index,
                    value: value.clone(),
                });
                continue;
            };
            let same_family = matches!(
                (cidr, net),
                (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
            );
            if !same_family {
                errors.push(IpBlockError::FamilyMismatch {
                    index,
                    value: value.clone(),
                    cidr: block.cidr.clone(),
                });
            } else if !(cidr.contains(&net) && net.prefix_len() > cidr.prefix_len()) {
                errors.push(IpBlockError::NotStrictSubset {
                    index,
                    value: value.clone(),
                    cidr: block.cidr.clone(),
                });
            } else {
                except.push(net);
            }
        }
        if errors.is_empty() {
            Ok(Self { cidr, except })
        } else {
            Err(errors)
        }
    }

    /// Whether traffic to/from `ip` is matched: inside `cidr` and outside every `except`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(&ip) && !self.except.iter().any(|e| e.contains(&ip))
    }

    /// Whether the block is a whole address family (`0.0.0.0/0` or `::/0`).
    pub fn is_everything(&self) -> bool {
        self.cidr.prefix_len() == 0
    }

    /// Whether the block is all of IPv4 (`0.0.0.0/0`, no except) ...
    pub fn is_all_v4(&self) -> bool {
        self.is_everything() && self.except.is_empty() && self.cidr.addr().is_ipv4()
    }

    /// ... or all of IPv6 (`::/0`, no except).
    pub fn is_all_v6(&self) -> bool {
        self.is_everything() && self.except.is_empty() && self.cidr.addr().is_ipv6()
    }
}

/// The IP families of the cluster's pods and Services: what an `ipBlock` of a whole family
/// (`0.0.0.0/0`, `::/0`) leaves out depends on it. In an IPv4 cluster `::/0` admits no
/// peer at all; in a dual-stack one each of them admits half of the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum IpFamilies {
    /// Not known (offline without `--ip-families`, or the cluster not read yet).
    #[default]
    Unknown,
    V4,
    V6,
    Dual,
}

/// Whether a set of whole-family blocks stands for every address of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Everywhere {
    Yes,
    No,
    /// It does in some clusters and not in others: the condition, for a message.
    Depends(String),
}

impl IpFamilies {
    /// The families a Service lists in `spec.ipFamilies` (`IPv4`, `IPv6`).
    pub fn of_service(families: &[String]) -> Self {
        let v4 = families.iter().any(|f| f == "IPv4");
        let v6 = families.iter().any(|f| f == "IPv6");
        match (v4, v6) {
            (true, true) => Self::Dual,
            (true, false) => Self::V4,
            (false, true) => Self::V6,
            (false, false) => Self::Unknown,
        }
    }

    /// Parses `ipv4`, `ipv6` or `dual`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ipv4" | "IPv4" => Some(Self::V4),
            "ipv6" | "IPv6" => Some(Self::V6),
            "dual" | "dual-stack" => Some(Self::Dual),
            _ => None,
        }
    }

    /// Whether whole-family blocks of IPv4 (`v4`) and IPv6 (`v6`) are every address. Both
    /// families always are; one of them is in a cluster of that family alone, and is not in
    /// one of the other. In a dual-stack cluster one family admits half of the traffic, and
    /// whether losing the other half breaks the cluster depends on which family its
    /// Services and DNS use; where the families are unknown, on what they are. Both are the
    /// condition, for a warning.
    pub fn everywhere(self, v4: bool, v6: bool) -> Everywhere {
        let certain = |yes: bool| if yes { Everywhere::Yes } else { Everywhere::No };
        let (has, only, lacks) = if v4 {
            ("0.0.0.0/0", "IPv4", "IPv6")
        } else {
            ("::/0", "IPv6", "IPv4")
        };
        match self {
            Self::V4 => certain(v4),
            Self::V6 => certain(v6),
            Self::Dual | Self::Unknown if v4 == v6 => certain(v4),
            Self::Dual => Everywhere::Depends(format!(
                "{has} admits no {lacks} peer: in this dual-stack cluster {lacks} traffic is \
                 locked out, which breaks what reaches these pods over {lacks} (which family \
                 the cluster's Services and DNS use is not known here)"
            )),
            Self::Unknown => Everywhere::Depends(format!(
                "{has} is every address only in an {only}-only cluster: it admits no {lacks} \
                 peer (a dual-stack or {lacks} cluster loses that traffic; the cluster's IP \
                 families are not known here: --ip-families ipv4|ipv6|dual decides)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(cidr: &str, except: &[&str]) -> IPBlock {
        IPBlock {
            cidr: cidr.into(),
            except: (!except.is_empty()).then(|| except.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn validation_table() {
        let ok = [
            block("10.0.0.0/8", &[]),
            block("10.0.0.0/8", &["10.1.0.0/16", "10.2.3.4/32"]),
            block("0.0.0.0/0", &["169.254.169.254/32"]),
            block("fd00::/8", &["fd00:ec2::254/128"]),
            // host bits set: accepted by the API server, read as the network
            block("10.1.2.3/8", &[]),
        ];
        for b in ok {
            assert!(Block::parse(&b).is_ok(), "{b:?}");
        }
        let bad = [
            (block("10.0.0.1", &[]), "is not a valid CIDR"),
            (block("10.0.0.0/33", &[]), "is not a valid CIDR"),
            (block("banana", &[]), "is not a valid CIDR"),
            (block("10.0.0.0/8", &["10.0.0.0/8"]), "strict subset"),
            (block("10.0.0.0/8", &["192.168.0.0/16"]), "strict subset"),
            (block("10.0.0.0/16", &["10.0.0.0/8"]), "strict subset"),
            (block("10.0.0.0/8", &["fd00::/8"]), "IP family"),
            (block("10.0.0.0/8", &["10.0.0.0/33"]), "is not a valid CIDR"),
        ];
        for (b, want) in bad {
            let errs = Block::parse(&b).expect_err("must be invalid");
            assert!(errs[0].to_string().contains(want), "{b:?}: {errs:?}");
        }
    }

    #[test]
    fn containment() {
        let b = Block::parse(&block("0.0.0.0/0", &["169.254.0.0/16"])).expect("valid");
        assert!(b.is_everything());
        assert!(b.contains("8.8.8.8".parse().expect("ip")));
        assert!(!b.contains("169.254.169.254".parse().expect("ip")));
        assert!(!b.contains("::1".parse().expect("ip")));
    }

    #[test]
    fn whole_families_are_everywhere_only_where_they_cover_the_cluster() {
        use IpFamilies::*;
        let depends = |e: Everywhere| matches!(e, Everywhere::Depends(_));
        // (families, 0.0.0.0/0 present, ::/0 present) -> every address?
        let table = [
            (V4, true, false, Some(true)),
            (V4, false, true, Some(false)),
            (V6, false, true, Some(true)),
            (V6, true, false, Some(false)),
            (Dual, true, false, None),
            (Dual, false, true, None),
            (Dual, true, true, Some(true)),
            (Unknown, true, true, Some(true)),
            (Unknown, false, false, Some(false)),
            (Unknown, true, false, None),
            (Unknown, false, true, None),
        ];
        for (families, v4, v6, want) in table {
            let got = families.everywhere(v4, v6);
            match want {
                Some(true) => assert_eq!(got, Everywhere::Yes, "{families:?} {v4} {v6}"),
                Some(false) => assert_eq!(got, Everywhere::No, "{families:?} {v4} {v6}"),
                None => assert!(depends(got), "{families:?} {v4} {v6}"),
            }
        }
        let Everywhere::Depends(why) = Unknown.everywhere(false, true) else {
            unreachable!()
        };
        assert!(
            why.contains("::/0") && why.contains("no IPv4 peer"),
            "{why}"
        );
        assert_eq!(
            IpFamilies::of_service(&["IPv6".into(), "IPv4".into()]),
            Dual
        );
        assert_eq!(IpFamilies::parse("ipv6"), Some(V6));
    }
}
