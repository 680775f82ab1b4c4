//! Serving certificates: a CA and a server certificate signed by it (ECDSA P-256), for
//! `netpol-guard certs` and for `serve` without certificate flags.

use std::net::IpAddr;
use std::path::Path;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A CA and a serving certificate with its key, all PEM.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid DNS name {0:?}")]
    DnsName(String),
    #[error("at least one --dns name or --ip address is needed")]
    NoNames,
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    // an hour of slack for clocks that lag behind ours
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

/// Generates a CA and a serving certificate for `dns` names and `ips`, valid for `days`.
pub fn generate(dns: &[String], ips: &[IpAddr], days: u32) -> Result<Bundle, CertError> {
    if dns.is_empty() && ips.is_empty() {
        return Err(CertError::NoNames);
    }
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // A subject of its own for every CA: during a rotation the caBundle holds the old and
    // the new CA, and clients (Go's crypto/x509 among them) pick the issuer by subject and
    // key identifier.
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        format!(
            "netpol-guard CA {}",
            time::OffsetDateTime::now_utc().unix_timestamp_nanos()
        ),
    );
    ca.distinguished_name = name;
    validity(&mut ca, days);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    for d in dns {
        if !is_dns_name(d) {
            return Err(CertError::DnsName(d.clone()));
        }
        let name = d
            .clone()
            .try_into()
            .map_err(|_| CertError::DnsName(d.clone()))?;
        leaf.subject_alt_names.push(SanType::DnsName(name));
    }
    leaf.subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        dns.first()
            .cloned()
            .or_else(|| ips.first().map(ToString::to_string))
            .unwrap_or_default(),
    );
    leaf.distinguished_name = name;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // names the CA key that signed it (its subject key identifier)
    leaf.use_authority_key_identifier_extension = true;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut leaf, days);
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok(Bundle {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// An RFC 1123 host name (any case), optionally with a leading `*.` wildcard label.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    crate::netpol::names::is_dns_subdomain(&name.to_ascii_lowercase())
}

/// The CA as the base64 `caBundle` of a webhook configuration.
pub fn ca_bundle(bundle: &Bundle) -> String {
    base64::engine::general_purpose::STANDARD.encode(bundle.ca_pem.as_bytes())
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`.
pub fn write(bundle: &Bundle, dir: &Path) -> Result<(), CertError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| CertError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    for (name, content, private) in [
        ("ca.crt", &bundle.ca_pem, false),
        ("tls.crt", &bundle.cert_pem, false),
        ("tls.key", &bundle.key_pem, true),
    ] {
        let path = dir.join(name);
        write_file(&path, content.as_bytes(), private).map_err(err(&path))?;
    }
    Ok(())
}

fn write_file(path: &Path, content: &[u8], private: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    std::io::Write::write_all(&mut options.open(path)?, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_is_a_ca_and_a_server_cert() {
        let b = generate(
            &["netpol-guard.netpol-guard.svc".into()],
            &["127.0.0.1".parse().expect("ip")],
            30,
        )
        .expect("generate");
        assert!(b.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(b.key_pem.contains("PRIVATE KEY"));
        let der = |pem: &str| {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            CertificateDer::from_pem_slice(pem.as_bytes())
                .expect("pem")
                .to_vec()
        };
        let ca_der = der(&b.ca_pem);
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("ca parses");
        assert!(ca.is_ca());
        let leaf_der = der(&b.cert_pem);
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).expect("leaf parses");
        assert!(!leaf.is_ca());
        let sans = leaf.subject_alternative_name().expect("ext").expect("sans");
        assert_eq!(sans.value.general_names.len(), 2);
        let days = (leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp())
            / 86400;
        assert_eq!(days, 30);
        // the chain itself is verified by a real TLS client in tests/transport.rs
        assert_eq!(leaf.issuer(), ca.subject());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ca_bundle(&b))
            .expect("base64");
        assert_eq!(decoded, b.ca_pem.as_bytes());
        assert!(matches!(generate(&[], &[], 1), Err(CertError::NoNames)));
        assert!(matches!(
            generate(&["bad name".into()], &[], 1),
            Err(CertError::DnsName(_))
        ));
    }

    #[test]
    fn every_ca_has_its_own_subject_and_leaves_name_their_ca_key() {
        use x509_parser::extensions::ParsedExtension;
        let der = |pem: &str| {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            CertificateDer::from_pem_slice(pem.as_bytes())
                .expect("pem")
                .to_vec()
        };
        let names = ["netpol-guard.netpol-guard.svc".to_string()];
        let (old, new) = (
            generate(&names, &[], 30).expect("old"),
            generate(&names, &[], 30).expect("new"),
        );
        let (old_ca, new_ca, new_leaf) = (der(&old.ca_pem), der(&new.ca_pem), der(&new.cert_pem));
        let (_, old_ca) = x509_parser::parse_x509_certificate(&old_ca).expect("parses");
        let (_, new_ca) = x509_parser::parse_x509_certificate(&new_ca).expect("parses");
        let (_, new_leaf) = x509_parser::parse_x509_certificate(&new_leaf).expect("parses");
        assert_ne!(old_ca.subject().to_string(), new_ca.subject().to_string());
        let ski = new_ca
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .expect("the CA has a subject key identifier");
        let aki = new_leaf
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
            .expect("the leaf has an authority key identifier");
        assert_eq!(aki, ski);
        assert_eq!(new_leaf.issuer().to_string(), new_ca.subject().to_string());
    }
}
