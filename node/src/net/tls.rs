//! Identity and TLS: the district CA (rcgen), node certificates that name the node,
//! and rustls 0.23 configurations (ring provider, TLS 1.3 only, mutual authentication)
//! whose verifiers also refuse revoked nodes and nodes of another district.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use yichuang_shared::ids::{NodeId, Role};

/// The name every node certificate carries as a DNS SAN and every client asks for.
/// Nodes are found by address, not by name; the identity that matters is in the URI SAN.
pub const SERVER_NAME: &str = "node.yichuang";
/// The scheme and authority of the URI SAN that names a node.
const URI_PREFIX: &str = "yichuang://node/";
/// Years a certificate is valid. Revocation, not expiry, is how a node is removed;
/// a long life means a center offline for months never finds itself locked out.
const CERT_VALID_YEARS: i64 = 20;
/// Days before "now" a certificate becomes valid, so a node whose clock is a day
/// behind still accepts a certificate issued a minute ago.
const CERT_BACKDATE_DAYS: i64 = 2;
/// Longest node name, staff id or center code written into a certificate.
const FIELD_MAX_BYTES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("reading {what}: {detail}")]
    Pem { what: &'static str, detail: String },
    #[error("the certificate does not name a Yichuang node: {0}")]
    NotANode(String),
    #[error(
        "invalid {what} {value:?}: letters, digits, '-', '_' and '.' only, at most {FIELD_MAX_BYTES} bytes"
    )]
    Field { what: &'static str, value: String },
    #[error("verifier: {0}")]
    Verifier(String),
}

/// The rustls provider, chosen explicitly: ring, never aws-lc.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Who a certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    pub node_id: NodeId,
    pub name: String,
    pub role: Role,
    pub district: String,
    pub center: String,
    pub staff: String,
}

impl NodeIdentity {
    /// `yichuang://node/<id>?role=…&district=…&center=…&staff=…&name=…`
    pub fn to_uri(&self) -> String {
        format!(
            "{URI_PREFIX}{}?role={}&district={}&center={}&staff={}&name={}",
            self.node_id,
            self.role,
            pct_encode(&self.district),
            pct_encode(&self.center),
            pct_encode(&self.staff),
            pct_encode(&self.name)
        )
    }

    pub fn from_uri(uri: &str) -> Result<NodeIdentity, TlsError> {
        let bad = || TlsError::NotANode(format!("unexpected identity {uri:?}"));
        let rest = uri.strip_prefix(URI_PREFIX).ok_or_else(bad)?;
        let (id, query) = rest.split_once('?').ok_or_else(bad)?;
        let node_id: NodeId = id.parse().map_err(|_| bad())?;
        let (mut role, mut district, mut center, mut staff, mut name) =
            (None, None, None, None, None);
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').ok_or_else(bad)?;
            let v = pct_decode(v).ok_or_else(bad)?;
            match k {
                "role" => role = Some(v.parse::<Role>().map_err(|_| bad())?),
                "district" => district = Some(v),
                "center" => center = Some(v),
                "staff" => staff = Some(v),
                "name" => name = Some(v),
                _ => {}
            }
        }
        Ok(NodeIdentity {
            node_id,
            role: role.ok_or_else(bad)?,
            district: district.ok_or_else(bad)?,
            center: center.ok_or_else(bad)?,
            staff: staff.unwrap_or_default(),
            name: name.unwrap_or_default(),
        })
    }

    /// Reads the identity out of a DER certificate. Only called on certificates the
    /// CA check has already accepted, so the DER is well formed and ours.
    pub fn from_cert(der: &[u8]) -> Result<NodeIdentity, TlsError> {
        let uris = der::san_uris(der)
            .ok_or_else(|| TlsError::NotANode("unreadable subject alternative names".into()))?;
        let uri = uris
            .iter()
            .find(|u| u.starts_with(URI_PREFIX))
            .ok_or_else(|| TlsError::NotANode("no yichuang://node/ name".into()))?;
        NodeIdentity::from_uri(uri)
    }

    fn check_fields(&self) -> Result<(), TlsError> {
        for (what, value) in [
            ("district", &self.district),
            ("center", &self.center),
            ("staff id", &self.staff),
        ] {
            let fine = value.len() <= FIELD_MAX_BYTES
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !fine {
                return Err(TlsError::Field {
                    what,
                    value: value.clone(),
                });
            }
        }
        if self.name.len() > FIELD_MAX_BYTES * 2 || self.name.is_empty() {
            return Err(TlsError::Field {
                what: "node name",
                value: self.name.clone(),
            });
        }
        Ok(())
    }
}

fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pct_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A PEM certificate and its PEM private key.
#[derive(Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertPair { key: [elided] }")
    }
}

fn ca_params(district: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("Yichuang district {district} CA"),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Yichuang");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(CERT_BACKDATE_DAYS);
    params.not_after = now + time::Duration::days(365 * CERT_VALID_YEARS);
}

/// Makes a district CA: a fresh key and a self-signed certificate.
pub fn make_ca(district: &str) -> Result<CertPair, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = ca_params(district);
    validity(&mut params);
    let cert = params.self_signed(&key)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a node certificate signed by the district CA. The issuer is rebuilt from
/// the district code and the CA key: same name, same key, so the chain verifies.
pub fn issue_node_cert(ca_key_pem: &str, who: &NodeIdentity) -> Result<CertPair, TlsError> {
    who.check_fields()?;
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params(&who.district), ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, who.name.as_str());
    params.distinguished_name.push(
        DnType::OrganizationalUnitName,
        format!("{} {}", who.role, who.center),
    );
    params.subject_alt_names = vec![
        SanType::DnsName(SERVER_NAME.try_into()?),
        SanType::URI(who.to_uri().try_into()?),
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| TlsError::Verifier(format!("random source: {e}")))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    validity(&mut params);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

pub fn cert_from_pem(pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem {
        what: "certificate",
        detail: e.to_string(),
    })
}

pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem {
        what: "private key",
        detail: e.to_string(),
    })
}

/// What a node trusts: the district and its CA, and the nodes revoked so far. The
/// revoked set is swapped whole when the `ref-nodes` document changes; verifiers read
/// it on every handshake.
#[derive(Debug)]
pub struct Trust {
    pub district: String,
    pub ca: CertificateDer<'static>,
    revoked: RwLock<Arc<HashSet<NodeId>>>,
}

impl Trust {
    pub fn new(district: String, ca: CertificateDer<'static>) -> Arc<Trust> {
        Arc::new(Trust {
            district,
            ca,
            revoked: RwLock::new(Arc::new(HashSet::new())),
        })
    }

    pub fn set_revoked(&self, revoked: HashSet<NodeId>) {
        // A poisoned lock only means a reader panicked; the set itself is whole.
        let mut guard = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        *guard = Arc::new(revoked);
    }

    pub fn is_revoked(&self, id: &NodeId) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        Ok(Arc::new(roots))
    }

    /// The checks beyond the CA signature: a node of this district, not revoked.
    fn check_node(&self, end_entity: &CertificateDer<'_>) -> Result<NodeIdentity, rustls::Error> {
        let who = NodeIdentity::from_cert(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if who.district != self.district {
            tracing::warn!(node = %who.node_id, district = %who.district, "refused a node of another district");
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        if self.is_revoked(&who.node_id) {
            tracing::warn!(node = %who.node_id, "refused a revoked node");
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(who)
    }
}

/// The signature checks of a handshake, left to the WebPKI verifier in `self.inner`:
/// the client and server verifiers differ only in how they check the certificate.
macro_rules! delegate_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// The CA check of rustls' WebPKI client verifier, then [`Trust::check_node`].
#[derive(Debug)]
struct NodeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust: Arc<Trust>,
}

impl ClientCertVerifier for NodeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.trust.check_node(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    delegate_signature_checks!();
}

/// The WebPKI server verifier against the district CA, then [`Trust::check_node`]:
/// a center or laptop never syncs with a revoked or foreign node either.
#[derive(Debug)]
struct NodeServerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    trust: Arc<Trust>,
}

impl ServerCertVerifier for NodeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.trust.check_node(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    delegate_signature_checks!();
}

/// A node's own certificate and key, parsed.
#[derive(Debug)]
pub struct Credentials {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub identity: NodeIdentity,
}

impl Credentials {
    pub fn from_pem(pair: &CertPair) -> Result<Credentials, TlsError> {
        let cert = cert_from_pem(&pair.cert_pem)?;
        let key = key_from_pem(&pair.key_pem)?;
        let identity = NodeIdentity::from_cert(&cert)?;
        Ok(Credentials {
            cert,
            key,
            identity,
        })
    }
}

/// TLS for accepting: TLS 1.3, client certificate required and checked.
pub fn server_config(
    creds: &Credentials,
    trust: &Arc<Trust>,
    alpn: &[u8],
) -> Result<rustls::ServerConfig, TlsError> {
    let inner = WebPkiClientVerifier::builder_with_provider(trust.roots()?, provider())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier = Arc::new(NodeClientVerifier {
        inner,
        trust: trust.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![creds.cert.clone()], creds.key.clone_key())?;
    config.alpn_protocols = vec![alpn.to_vec()];
    // No resumption: a resumed session skips the certificate check, and with it the
    // revocation check. A full handshake per connection is cheap at our scale.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// TLS for dialing: TLS 1.3, our certificate offered, the server's checked.
pub fn client_config(
    creds: &Credentials,
    trust: &Arc<Trust>,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TlsError> {
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(trust.roots()?, provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier = Arc::new(NodeServerVerifier {
        inner,
        trust: trust.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![creds.cert.clone()], creds.key.clone_key())?;
    config.alpn_protocols = vec![alpn.to_vec()];
    // See `server_config`: every connection verifies both certificates afresh.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Just enough DER to read the URI entries of a certificate's subject alternative
/// names. Lengths are checked against the bytes left; nothing is allocated but the
/// strings found.
mod der {
    /// id-ce-subjectAltName, 2.5.29.17.
    const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
    const TAG_SEQUENCE: u8 = 0x30;
    const TAG_OID: u8 = 0x06;
    const TAG_BOOLEAN: u8 = 0x01;
    const TAG_OCTET_STRING: u8 = 0x04;
    const TAG_EXTENSIONS: u8 = 0xa3;
    const TAG_SAN_URI: u8 = 0x86;

    /// One TLV: (tag, content, rest).
    fn read(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = buf.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    pub fn san_uris(cert: &[u8]) -> Option<Vec<String>> {
        let (tag, cert, _) = read(cert)?;
        if tag != TAG_SEQUENCE {
            return None;
        }
        let (tag, mut tbs, _) = read(cert)?;
        if tag != TAG_SEQUENCE {
            return None;
        }
        while !tbs.is_empty() {
            let (tag, content, rest) = read(tbs)?;
            tbs = rest;
            if tag != TAG_EXTENSIONS {
                continue;
            }
            let (_, mut exts, _) = read(content)?;
            while !exts.is_empty() {
                let (_, ext, rest) = read(exts)?;
                exts = rest;
                let (tag, oid, mut ext) = read(ext)?;
                if tag != TAG_OID || oid != OID_SAN {
                    continue;
                }
                let (mut tag, mut value, rest) = read(ext)?;
                if tag == TAG_BOOLEAN {
                    ext = rest;
                    (tag, value, _) = read(ext)?;
                }
                if tag != TAG_OCTET_STRING {
                    return None;
                }
                let (_, mut names, _) = read(value)?;
                let mut out = Vec::new();
                while !names.is_empty() {
                    let (tag, name, rest) = read(names)?;
                    names = rest;
                    if tag == TAG_SAN_URI {
                        out.push(String::from_utf8(name.to_vec()).ok()?);
                    }
                }
                return Some(out);
            }
        }
        Some(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> NodeIdentity {
        NodeIdentity {
            node_id: NodeId([1, 2, 3, 4, 5, 6, 7, 8]),
            name: "center 003 窗口".into(),
            role: Role::Laptop,
            district: "440399".into(),
            center: "003".into(),
            staff: "S01".into(),
        }
    }

    #[test]
    fn identity_round_trips_through_a_certificate() {
        let ca = make_ca("440399").unwrap();
        let pair = issue_node_cert(&ca.key_pem, &who()).unwrap();
        let creds = Credentials::from_pem(&pair).unwrap();
        assert_eq!(creds.identity, who());
        assert_eq!(NodeIdentity::from_uri(&who().to_uri()).unwrap(), who());
    }

    #[test]
    fn bad_fields_and_uris_are_refused() {
        let ca = make_ca("440399").unwrap();
        let mut w = who();
        w.staff = "S 01&x".into();
        assert!(issue_node_cert(&ca.key_pem, &w).is_err());
        for bad in [
            "",
            "yichuang://node/zz?role=hub",
            "yichuang://node/0102030405060708?role=boss&district=1&center=1",
            "https://x",
        ] {
            assert!(NodeIdentity::from_uri(bad).is_err(), "{bad}");
        }
        assert!(der::san_uris(&[0x30, 0x85, 1, 2]).is_none());
    }
}
