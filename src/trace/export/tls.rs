//! TLS to the collector: the trusted CA certificates and the optional client certificate, read
//! and checked once when the config is loaded, then turned into the TLS configuration of the
//! gRPC channel (tonic) or of the HTTP client (reqwest).
//!
//! TLS is rustls with the ring provider, the one Pingora's `rustls` feature already builds.
//! Without a CA file, the platform's trusted roots are used (`rustls-native-certs`); with one,
//! only the certificates in that file are trusted (as `OTEL_EXPORTER_OTLP_CERTIFICATE` means in
//! the OpenTelemetry SDKs).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Which of the TLS files a problem is about, so the config can name its key or variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// The trusted CA certificates.
    Ca,
    /// The client certificate chain.
    Cert,
    /// The client private key.
    Key,
}

/// PEM text of the trusted CAs and of the client identity. The private key is never printed
/// (`Debug` shows sizes only).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificates to trust instead of the platform's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and private key, for collectors that ask for one (mTLS).
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_pem_bytes", &self.ca_pem.as_ref().map(Vec::len))
            .field("client_identity", &self.client_identity.is_some())
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM file: a regular file of at most [`crate::files::PEM_MAX_BYTES`].
fn read(which: TlsFile, path: &Path) -> Result<Vec<u8>, (TlsFile, String)> {
    crate::files::read_bounded(path, crate::files::PEM_MAX_BYTES)
        .map_err(|e| (which, e.to_string()))
}

fn certificates(
    which: TlsFile,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, (TlsFile, String)> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (which, format!("{} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err((
            which,
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

impl TlsSettings {
    /// Reads and checks the files: the CA file must hold at least one certificate, the
    /// certificate file a chain and the key file a private key that matches it. Certificate and
    /// key come together or not at all (the caller checks that and passes both or neither).
    pub fn load(
        ca_file: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<TlsSettings, (TlsFile, String)> {
        let mut out = TlsSettings::default();
        if let Some(path) = ca_file {
            let pem = read(TlsFile::Ca, path)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(TlsFile::Ca, path, &pem)? {
                roots.add(cert).map_err(|e| {
                    (
                        TlsFile::Ca,
                        format!("{}: not a usable CA certificate: {e}", path.display()),
                    )
                })?;
            }
            out.ca_pem = Some(pem);
        }
        if let Some((cert_path, key_path)) = client {
            let cert_pem = read(TlsFile::Cert, cert_path)?;
            let key_pem = read(TlsFile::Key, key_path)?;
            certificates(TlsFile::Cert, cert_path, &cert_pem)?;
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                (
                    TlsFile::Key,
                    format!(
                        "{} holds no usable PEM private key: {e}",
                        key_path.display()
                    ),
                )
            })?;
            out.client_identity = Some((cert_pem, key_pem));
            // Building the client config checks that the key belongs to the certificate.
            out.rustls_config().map_err(|e| (TlsFile::Key, e))?;
        }
        Ok(out)
    }

    /// The rustls client configuration for HTTP/1.1 (used by the HTTP exporters).
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| format!("CA file: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("CA certificate: {e}"))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(
                        "no trusted root certificates found on this system; set a CA file".into(),
                    );
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots);
        match &self.client_identity {
            None => Ok(builder.with_no_client_auth()),
            Some((cert_pem, key_pem)) => {
                let certs = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("client certificate: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|e| format!("client key: {e}"))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("the client key does not fit the certificate: {e}"))
            }
        }
    }

    /// A client configuration that trusts no server, for clients that never use TLS.
    pub fn no_tls_config() -> rustls::ClientConfig {
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    }

    /// The TLS configuration of the gRPC channel.
    pub fn tonic_config(&self) -> tonic::transport::ClientTlsConfig {
        let mut c = tonic::transport::ClientTlsConfig::new();
        c = match &self.ca_pem {
            Some(pem) => c.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => c.with_native_roots(),
        };
        if let Some((cert, key)) = &self.client_identity {
            c = c.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        c
    }
}
