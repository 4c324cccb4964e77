//! [`TestCa`]: TLS certificates made per test.
//!
//! A CA, a server certificate it signed for `localhost` and `127.0.0.1`, and a client
//! certificate it signed: as files for the proxy's config (`ca_file`, client certificate and
//! key), and as server TLS settings (rustls and tonic) for the harness's own servers, the OTLP
//! receivers in `receivers.rs` and the TLS upstreams in `edge.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;

/// A certificate authority made for one test, a server certificate it signed for
/// `localhost` and `127.0.0.1`, and a client certificate it signed. The CA certificate is
/// written to `ca.pem` in a temporary directory, for the proxy's `ca_file`, and the client
/// certificate and key to `client.pem` and `client-key.pem`.
pub struct TestCa {
    dir: TempDir,
    ca_path: PathBuf,
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tracegate test CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let mut client_params =
            CertificateParams::new(vec!["tracegate".to_string()]).expect("client params");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "tracegate client");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .expect("client certificate");
        let dir = tempfile::Builder::new()
            .prefix("tracegate-ca-")
            .tempdir()
            .expect("create temp dir");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).expect("write ca.pem");
        std::fs::write(dir.path().join("client.pem"), client_cert.pem()).expect("client.pem");
        std::fs::write(
            dir.path().join("client-key.pem"),
            client_key.serialize_pem(),
        )
        .expect("client-key.pem");
        TestCa {
            dir,
            ca_path,
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    /// The client certificate and key this CA signed (PEM files).
    pub fn client_files(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("client.pem"),
            self.dir.path().join("client-key.pem"),
        )
    }

    /// The CA certificate (PEM file).
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The temporary directory holding `ca.pem`, for more test files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn rustls_server_config(
        &self,
        require_client_cert: bool,
    ) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("server certificate PEM");
        let key =
            PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).expect("server key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(c.expect("CA PEM")).expect("CA certificate");
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(certs, key)
            .expect("server TLS config");
        Arc::new(config)
    }

    pub(super) fn acceptor(&self, require_client_cert: bool) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.rustls_server_config(require_client_cert))
    }

    pub(super) fn tonic_tls(&self, require_client_cert: bool) -> tonic::transport::ServerTlsConfig {
        let mut c = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&self.server_cert_pem, &self.server_key_pem),
        );
        if require_client_cert {
            c = c.client_ca_root(tonic::transport::Certificate::from_pem(&self.ca_pem));
        }
        c
    }
}
