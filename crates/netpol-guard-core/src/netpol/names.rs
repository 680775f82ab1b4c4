//! The name formats the Kubernetes API validates, as it validates them.

/// An RFC 1123 label: 1-63 lowercase alphanumerics or `-`, starting and ending with an
/// alphanumeric.
pub fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// An RFC 1123 subdomain (most object names): dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// An IANA service name (a named port): 1-15 lowercase alphanumerics or `-`, at least one
/// letter, no leading, trailing or doubled `-`.
pub fn is_iana_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_the_api_server_validates_them() {
        for ok in ["a", "netpol-guard-default-deny", "a.b-c.d", "0abc"] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a..b", &"a".repeat(254)] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
        assert!(!is_dns_label(&"a".repeat(64)));
        for ok in ["dns", "dns-tcp", "http2", "a1"] {
            assert!(is_iana_service_name(ok), "{ok}");
        }
        for bad in [
            "",
            "53",
            "DNS",
            "dns_tcp",
            "-dns",
            "dns-",
            "d--ns",
            "abcdefghijklmnop",
        ] {
            assert!(!is_iana_service_name(bad), "{bad}");
        }
    }
}
