//! TLS towards upstreams: which server name to send and verify, which CAs to trust and which
//! client certificate to present (mutual TLS). Read and checked at load; the proxy turns it into
//! Pingora peer options (`crate::proxy::peer`).

use rustls::pki_types::PrivateKeyDer;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

/// A client certificate chain (DER, leaf first) and its private key (DER).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub chain: Vec<Vec<u8>>,
    pub key: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .finish()
    }
}

/// The checked `upstreams.<name>.tls` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The server name sent (SNI) and verified, for every backend of the pool. `None`: each
    /// backend's host name as written in `backends`, or its IP address (verified against the
    /// certificate's IP addresses, no SNI sent).
    pub sni: Option<String>,
    /// Backends written with a host name: `(resolved address, host name)`.
    pub backend_names: Vec<(SocketAddr, String)>,
    /// Verify the upstream's certificate chain and name.
    pub verify: bool,
    /// CA certificates (DER) to trust instead of the system's roots.
    pub ca: Option<Vec<Vec<u8>>>,
    /// A client certificate for upstreams that ask for one.
    pub client: Option<ClientIdentity>,
}

impl UpstreamTls {
    /// The name to send and verify when connecting to `backend`.
    pub fn server_name(&self, backend: SocketAddr) -> String {
        if let Some(s) = &self.sni {
            return s.clone();
        }
        match self.backend_names.iter().find(|(a, _)| *a == backend) {
            Some((_, n)) => n.clone(),
            None => backend.ip().to_string(),
        }
    }
}

/// Which file of `upstreams.<name>.tls` a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTlsFile {
    Ca,
    Cert,
    Key,
}

/// Reads the CA file (at least one usable certificate).
pub fn load_ca(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = super::read(path)?;
    let certs = super::pem_certificates(path, &pem)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots
            .add(c.clone())
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(certs.into_iter().map(|c| c.to_vec()).collect())
}

/// Reads a client certificate chain and its key, checking that they belong together.
pub fn load_client(cert: &Path, key: &Path) -> Result<ClientIdentity, (UpstreamTlsFile, String)> {
    let cert_pem = super::read(cert).map_err(|e| (UpstreamTlsFile::Cert, e))?;
    let chain = super::pem_certificates(cert, &cert_pem).map_err(|e| (UpstreamTlsFile::Cert, e))?;
    let key_pem = super::read(key).map_err(|e| (UpstreamTlsFile::Key, e))?;
    let k = super::pem_private_key(key, &key_pem).map_err(|e| (UpstreamTlsFile::Key, e))?;
    let der = match &k {
        PrivateKeyDer::Pkcs8(d) => d.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Pkcs1(d) => d.secret_pkcs1_der().to_vec(),
        PrivateKeyDer::Sec1(d) => d.secret_sec1_der().to_vec(),
        _ => {
            return Err((
                UpstreamTlsFile::Key,
                format!("{}: unsupported private key format", key.display()),
            ))
        }
    };
    let ders = chain.iter().map(|c| c.to_vec()).collect();
    super::certified_key(chain, &k, key).map_err(|e| (UpstreamTlsFile::Key, e))?;
    Ok(ClientIdentity {
        chain: ders,
        key: der,
    })
}
