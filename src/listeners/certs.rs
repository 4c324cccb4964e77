//! Certificates of TLS listeners, chosen per connection by the server name the client sends
//! (SNI, RFC 6066 §3), as Traefik and Caddy do: the names come from the certificates
//! themselves, not from a separate list.
//!
//! - A certificate's names are its subjectAltName DNS names (RFC 5280 §4.2.1.6), or its subject
//!   common name when it has no subjectAltName names at all (legacy certificates).
//! - An exact name wins over a wildcard; a wildcard `*.example.com` covers exactly one label
//!   (`a.example.com`, not `example.com` nor `a.b.example.com`; RFC 6125 §6.4.3).
//! - Names are compared without case and without a trailing dot. When two certificates name
//!   the same host, the one listed first wins.
//! - A client that sends no SNI (e.g. it connected by IP address) or asks for a name no
//!   certificate has gets the listener's **first** certificate, the default.
//!
//! The store a listener uses sits behind an [`ArcSwap`], so a reload can replace the
//! certificates of running listeners ([`ListenerCertificates::replace`]); handshakes in progress
//! keep the certificate they picked.

use super::ListenerSpec;
use crate::tls;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which file of a certificate entry a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertFile {
    Cert,
    Key,
}

/// One certificate chain with its key, read and checked, and the names it is valid for.
#[derive(Clone)]
pub struct LoadedCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// DNS names (lower case, wildcards as written: `*.example.com`) the leaf certificate names.
    pub names: Vec<String>,
    /// IP addresses in the leaf certificate's subjectAltName.
    pub ips: Vec<IpAddr>,
    /// When the leaf certificate expires (its notAfter), as a Unix time in seconds.
    pub not_after: Option<i64>,
    key: Arc<CertifiedKey>,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        f.debug_struct("LoadedCert")
            .field("cert_path", &self.cert_path)
            .field("names", &self.names)
            .field("ips", &self.ips)
            .finish()
    }
}

impl LoadedCert {
    /// Reads a PEM certificate chain (leaf first) and its PEM private key, checks that they
    /// belong together and that the leaf names at least one host or address.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, (CertFile, String)> {
        let cert_pem = tls::read(cert_path).map_err(|e| (CertFile::Cert, e))?;
        let chain = tls::pem_certificates(cert_path, &cert_pem).map_err(|e| (CertFile::Cert, e))?;
        let key_pem = tls::read(key_path).map_err(|e| (CertFile::Key, e))?;
        let key = tls::pem_private_key(key_path, &key_pem).map_err(|e| (CertFile::Key, e))?;
        let (names, ips) = leaf_names(&chain[0]);
        let not_after = x509_parser::parse_x509_certificate(&chain[0])
            .ok()
            .map(|(_, c)| c.validity().not_after.timestamp());
        if names.is_empty() && ips.is_empty() {
            return Err((
                CertFile::Cert,
                format!(
                    "{}: the certificate names no host (no subjectAltName DNS name or IP \
                     address, no common name), so no client could be given it",
                    cert_path.display()
                ),
            ));
        }
        let key = tls::certified_key(chain, &key, key_path).map_err(|e| (CertFile::Key, e))?;
        Ok(LoadedCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            names,
            ips,
            not_after,
            key: Arc::new(key),
        })
    }
}

/// The DNS names and IP addresses of a leaf certificate: its subjectAltName entries, or its
/// common names when it has no subjectAltName name at all.
fn leaf_names(der: &[u8]) -> (Vec<String>, Vec<IpAddr>) {
    use x509_parser::extensions::GeneralName;
    let mut names = Vec::new();
    let mut ips = Vec::new();
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return (names, ips);
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(s) => push_name(&mut names, s),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                    16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if names.is_empty() && ips.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                push_name(&mut names, s);
            }
        }
    }
    (names, ips)
}

fn push_name(names: &mut Vec<String>, s: &str) {
    let n = normalize(s).into_owned();
    if !n.is_empty() && !names.contains(&n) {
        names.push(n);
    }
}

/// Lower case, no trailing dot; borrows when nothing changes (the common case: rustls already
/// hands over SNI in lower case).
fn normalize(name: &str) -> std::borrow::Cow<'_, str> {
    let name = name.trim_end_matches('.');
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// The certificates of one listener and the index from host name to certificate.
pub struct CertStore {
    certs: Vec<LoadedCert>,
    exact: HashMap<Box<str>, usize>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<Box<str>, usize>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.certs).finish()
    }
}

impl CertStore {
    /// The store for `certs`, the first being the default. `None` when `certs` is empty.
    pub fn new(certs: Vec<LoadedCert>) -> Option<CertStore> {
        if certs.is_empty() {
            return None;
        }
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, c) in certs.iter().enumerate() {
            for n in &c.names {
                match n.strip_prefix("*.") {
                    Some(parent) if !parent.is_empty() && !parent.contains('*') => {
                        wildcard.entry(parent.into()).or_insert(i);
                    }
                    // A partial wildcard (`f*.example.com`) is not matched (RFC 6125 §7.2).
                    _ if n.contains('*') => {}
                    _ => {
                        exact.entry(n.as_str().into()).or_insert(i);
                    }
                }
            }
        }
        Some(CertStore {
            certs,
            exact,
            wildcard,
        })
    }

    /// The certificates, in configured order (the first is the default).
    pub fn certificates(&self) -> &[LoadedCert] {
        &self.certs
    }

    /// The index of the certificate for a client that asked for `sni`.
    pub fn select(&self, sni: Option<&str>) -> usize {
        let Some(sni) = sni else {
            return 0;
        };
        let name = normalize(sni);
        if let Some(&i) = self.exact.get(name.as_ref()) {
            return i;
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(&i) = self.wildcard.get(parent) {
                return i;
            }
        }
        0
    }
}

/// A rustls certificate resolver reading the listener's current [`CertStore`].
pub struct CertResolver {
    store: ArcSwap<CertStore>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("store", &self.store.load())
            .finish()
    }
}

impl CertResolver {
    pub fn new(store: Arc<CertStore>) -> Self {
        CertResolver {
            store: ArcSwap::new(store),
        }
    }

    /// Replaces the certificates; the next handshake uses the new ones.
    pub fn replace(&self, store: Arc<CertStore>) {
        self.store.store(store);
    }

    /// The store in use now.
    pub fn current(&self) -> Arc<CertStore> {
        self.store.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let store = self.store.load();
        let i = store.select(hello.server_name());
        Some(Arc::clone(&store.certs[i].key))
    }
}

/// The certificate resolvers of a running server's TLS listeners, by listener position. A
/// config reload hands its new checked config to [`ListenerCertificates::replace`].
#[derive(Clone, Debug, Default)]
pub struct ListenerCertificates {
    /// `(configured address, resolver for TLS listeners)`, in `listen` order.
    listeners: Vec<(SocketAddr, Option<Arc<CertResolver>>)>,
}

impl ListenerCertificates {
    /// A resolver for each TLS listener, holding its configured certificates.
    pub fn new(listeners: &[ListenerSpec]) -> Self {
        ListenerCertificates {
            listeners: listeners
                .iter()
                .map(|l| {
                    let r = l
                        .tls
                        .as_ref()
                        .map(|t| Arc::new(CertResolver::new(Arc::clone(&t.store))));
                    (l.addr, r)
                })
                .collect(),
        }
    }

    /// Each listener's configured address and, for a TLS listener, its resolver, in `listen`
    /// order.
    pub fn listeners(&self) -> impl Iterator<Item = (SocketAddr, Option<&Arc<CertResolver>>)> {
        self.listeners.iter().map(|(a, r)| (*a, r.as_ref()))
    }

    /// The resolver of the listener at position `i` of `listen`, if it is a TLS listener.
    pub fn resolver(&self, i: usize) -> Option<&Arc<CertResolver>> {
        self.listeners.get(i).and_then(|(_, r)| r.as_ref())
    }

    /// Swaps in the certificates of `new`, the listeners of a newly loaded and checked config
    /// (their files were read and checked by the loader). Listeners cannot change while the
    /// server runs: if `new` has other addresses, or turns TLS on or off on one, nothing is
    /// replaced and the error says which listener differs. Returns how many listeners got new
    /// certificates.
    pub fn replace(&self, new: &[ListenerSpec]) -> Result<usize, String> {
        if new.len() != self.listeners.len() {
            return Err(format!(
                "listeners cannot change while running: {} configured, {} running (restart to \
                 change them)",
                new.len(),
                self.listeners.len()
            ));
        }
        for (i, ((addr, resolver), l)) in self.listeners.iter().zip(new).enumerate() {
            if *addr != l.addr || resolver.is_some() != l.tls.is_some() {
                return Err(format!(
                    "listen[{i}]: listeners cannot change while running ({addr}{} running, \
                     {}{} configured; restart to change them)",
                    if resolver.is_some() { " with tls" } else { "" },
                    l.addr,
                    if l.tls.is_some() { " with tls" } else { "" },
                ));
            }
        }
        let mut n = 0;
        for ((_, resolver), l) in self.listeners.iter().zip(new) {
            if let (Some(r), Some(t)) = (resolver, &l.tls) {
                r.replace(Arc::clone(&t.store));
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `names`, written to `dir`; returns the loaded entry.
    pub(crate) fn cert_for(dir: &Path, tag: &str, names: &[&str]) -> LoadedCert {
        let c = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cp = dir.join(format!("{tag}.pem"));
        let kp = dir.join(format!("{tag}-key.pem"));
        std::fs::write(&cp, c.cert.pem()).unwrap();
        std::fs::write(&kp, c.signing_key.serialize_pem()).unwrap();
        LoadedCert::load(&cp, &kp).unwrap()
    }

    #[test]
    fn sni_selection_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(vec![
            cert_for(dir.path(), "default", &["default.test"]),
            cert_for(dir.path(), "a", &["a.example.com", "A2.example.com"]),
            cert_for(dir.path(), "wild", &["*.example.com"]),
            cert_for(dir.path(), "b", &["b.example.com", "a.example.com"]),
            cert_for(dir.path(), "partial", &["f*.other.test"]),
        ])
        .unwrap();
        // (sni, expected certificate index, why)
        let cases: &[(Option<&str>, usize, &str)] = &[
            (None, 0, "no SNI: the default (first) certificate"),
            (Some("unknown.test"), 0, "an unknown name: the default"),
            (Some("a.example.com"), 1, "exact name"),
            (
                Some("A.Example.COM."),
                1,
                "case and a trailing dot do not matter",
            ),
            (
                Some("a2.example.com"),
                1,
                "a SAN written in upper case is matched without case",
            ),
            (
                Some("b.example.com"),
                3,
                "exact beats the wildcard listed before it",
            ),
            (Some("c.example.com"), 2, "one label under a wildcard"),
            (
                Some("x.c.example.com"),
                0,
                "a wildcard covers one label only",
            ),
            (
                Some("example.com"),
                0,
                "a wildcard does not cover the bare parent",
            ),
            (
                Some("foo.other.test"),
                0,
                "partial wildcards are not matched",
            ),
            (
                Some("default.test"),
                0,
                "the default is found by its name too",
            ),
        ];
        for (sni, want, why) in cases {
            assert_eq!(store.select(*sni), *want, "{why}: {sni:?}");
        }
    }

    #[test]
    fn names_come_from_san_then_common_name() {
        let dir = tempfile::tempdir().unwrap();
        let c = cert_for(dir.path(), "ip", &["127.0.0.1", "Host.Test"]);
        assert_eq!(c.names, vec!["host.test".to_string()]);
        assert_eq!(c.ips, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        // A certificate without subjectAltName: its common name is used.
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "legacy.test");
        let k = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&k).unwrap();
        assert_eq!(leaf_names(cert.der()).0, vec!["legacy.test".to_string()]);
    }

    #[test]
    fn a_reload_replaces_certificates_but_not_listeners() {
        let dir = tempfile::tempdir().unwrap();
        let listener = |addr: &str, cert: Option<LoadedCert>| ListenerSpec {
            addr: addr.parse().unwrap(),
            tls: cert.map(|c| super::super::ListenerTls {
                store: Arc::new(CertStore::new(vec![c]).unwrap()),
            }),
            http2: false,
            redirect_https: None,
            max_connections: None,
        };
        let listeners = |tag: &str, names: &[&str], addr: &str| {
            vec![
                listener("127.0.0.1:0", None),
                listener(addr, Some(cert_for(dir.path(), tag, names))),
            ]
        };
        let first = listeners("old", &["old.test"], "127.0.0.1:8443");
        let certs = ListenerCertificates::new(&first);
        assert!(
            certs.resolver(0).is_none(),
            "the plain listener has no resolver"
        );
        let resolver = Arc::clone(certs.resolver(1).unwrap());
        let names = |r: &CertResolver| r.current().certificates()[0].names.clone();
        assert_eq!(names(&resolver), ["old.test"]);

        let renewed = listeners("new", &["new.test"], "127.0.0.1:8443");
        assert_eq!(certs.replace(&renewed), Ok(1));
        assert_eq!(
            names(&resolver),
            ["new.test"],
            "the running listener now has the new one"
        );

        // (listeners, why) that may not be applied while running; nothing changes.
        let moved = listeners("x", &["x.test"], "127.0.0.1:9443");
        let fewer = vec![listener("127.0.0.1:0", None)];
        let plain = vec![
            listener("127.0.0.1:0", None),
            listener("127.0.0.1:8443", None),
        ];
        for (l, why) in [
            (moved, "another address"),
            (fewer, "a listener less"),
            (plain, "TLS turned off"),
        ] {
            let e = certs.replace(&l).expect_err(why);
            assert!(e.contains("cannot change while running"), "{why}: {e}");
            assert_eq!(
                names(&resolver),
                ["new.test"],
                "{why}: nothing was replaced"
            );
        }
    }

    #[test]
    fn never_panics_on_arbitrary_names_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::new(vec![cert_for(dir.path(), "d", &["*.x.test"])]).unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let alphabet = b"*.-aZ.\xff\x00x";
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 60)) % alphabet.len() as u64) as usize])
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            assert!(store.select(Some(&s)) < 1);
            let _ = leaf_names(&bytes);
        }
    }
}
