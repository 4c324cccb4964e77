//! TLS material of the edge, read and checked with rustls: PEM certificates and keys, the
//! trust and client identity used towards TLS upstreams, and a handshake probe.
//!
//! A leaf: files are read and checked when the config is loaded, so a missing file, a file
//! that is not PEM or a key that does not belong to its certificate is refused before start
//! (with the key and the path). The listener certificates and their SNI index use these
//! helpers from [`crate::listeners::certs`]; the Pingora listener and peer code in
//! [`crate::proxy`] only hands the values on.
//!
//! - [`probe`]: a handshake that tells when a TLS listener is up.
//! - [`upstream`]: CA certificates and client certificates for upstream connections.

pub mod probe;
pub mod upstream;

pub use upstream::{ClientIdentity, UpstreamTls};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The crypto provider of every TLS configuration built here: ring, the one Pingora's
/// `rustls` feature builds.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM file (a regular file of at most [`crate::files::PEM_MAX_BYTES`]); the error
/// names the path.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    crate::files::read_bounded(path, crate::files::PEM_MAX_BYTES).map_err(|e| e.to_string())
}

/// The PEM certificates in `pem` (at least one), in file order.
pub(crate) fn pem_certificates(
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    for (i, c) in certs.iter().enumerate() {
        if x509_parser::parse_x509_certificate(c).is_err() {
            return Err(format!(
                "{}: certificate {} is not a valid X.509 certificate",
                path.display(),
                i + 1
            ));
        }
    }
    Ok(certs)
}

/// The PEM private key in `pem` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn pem_private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| format!("{} holds no usable PEM private key: {e}", path.display()))
}

/// A certificate chain with its private key, checked to belong together.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
    key_path: &Path,
) -> Result<rustls::sign::CertifiedKey, String> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key).map_err(|e| {
        format!(
            "{}: unsupported private key (RSA, ECDSA P-256/P-384 and Ed25519 work): {e}",
            key_path.display()
        )
    })?;
    let ck = rustls::sign::CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| {
        format!(
            "{}: the private key does not fit the certificate: {e}",
            key_path.display()
        )
    })?;
    Ok(ck)
}
