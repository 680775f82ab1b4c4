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
}
