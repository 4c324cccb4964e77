//! Checking `listen`: addresses, TLS certificates, HTTP/2 and the HTTP→HTTPS redirect, into
//! [`ListenerSpec`]s. Certificate files are read and checked here, so a bad file stops the load
//! with the key and the path.

use super::check::Ctx;
use super::defaults;
use super::file::{FileListen, FileListener, FileRedirectHttps};
use super::ConfigError;
use crate::listeners::{CertFile, CertStore, ListenerSpec, ListenerTls, LoadedCert, RedirectHttps};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub(super) fn check_listen(
    c: &Ctx<'_>,
    listen: &[FileListen],
) -> Result<Vec<ListenerSpec>, ConfigError> {
    if listen.is_empty() {
        return Err(c.err(
            "listen",
            "at least one address is required, e.g. [\"127.0.0.1:8080\"]",
        ));
    }
    let first_tls = listen
        .iter()
        .position(|l| matches!(l, FileListen::Listener(FileListener { tls: Some(_), .. })));
    let mut out: Vec<ListenerSpec> = Vec::with_capacity(listen.len());
    let mut seen = std::collections::HashSet::with_capacity(listen.len());
    for (i, l) in listen.iter().enumerate() {
        let spec = match l {
            FileListen::Addr(a) => ListenerSpec {
                addr: parse_addr(c, &format!("listen[{i}]"), a)?,
                tls: None,
                http2: defaults::H2C,
                redirect_https: None,
                max_connections: None,
            },
            FileListen::Listener(f) => listener(c, i, f, first_tls)?,
        };
        if spec.addr.port() != 0 && !seen.insert(spec.addr) {
            return Err(c.err(
                format!("listen[{i}]"),
                format!("{} is listed twice", spec.addr),
            ));
        }
        out.push(spec);
    }
    Ok(out)
}

fn parse_addr(c: &Ctx<'_>, key: &str, a: &str) -> Result<SocketAddr, ConfigError> {
    a.trim().parse().map_err(|_| {
        c.err(
            key,
            format!("invalid address {a:?}: expected IP:port, e.g. 0.0.0.0:8080 or [::]:8080"),
        )
    })
}

fn listener(
    c: &Ctx<'_>,
    i: usize,
    f: &FileListener,
    first_tls: Option<usize>,
) -> Result<ListenerSpec, ConfigError> {
    let key = format!("listen[{i}]");
    let addr = parse_addr(c, &format!("{key}.addr"), &f.addr)?;
    let tls = match &f.tls {
        None => None,
        Some(t) => {
            if t.certificates.is_empty() {
                return Err(c.err(
                    format!("{key}.tls.certificates"),
                    "at least one certificate is required: [{ cert_file: …, key_file: … }]",
                ));
            }
            let mut certs = Vec::with_capacity(t.certificates.len());
            for (j, cert) in t.certificates.iter().enumerate() {
                let loaded =
                    LoadedCert::load(Path::new(&cert.cert_file), Path::new(&cert.key_file))
                        .map_err(|(which, reason)| {
                            let field = match which {
                                CertFile::Cert => "cert_file",
                                CertFile::Key => "key_file",
                            };
                            c.err(format!("{key}.tls.certificates[{j}].{field}"), reason)
                        })?;
                certs.push(loaded);
            }
            let store = CertStore::new(certs).expect("at least one certificate was loaded");
            Some(ListenerTls {
                store: Arc::new(store),
            })
        }
    };
    let http2 = f.http2.unwrap_or(if tls.is_some() {
        defaults::HTTP2_TLS
    } else {
        defaults::H2C
    });
    let redirect_https = match f.redirect_https {
        None | Some(FileRedirectHttps::Enabled(false)) => None,
        Some(_) if tls.is_some() => {
            return Err(c.err(
                format!("{key}.redirect_https"),
                "only applies to a plain listener: this one already serves HTTPS",
            ))
        }
        Some(FileRedirectHttps::Enabled(true)) => Some(match first_tls {
            Some(t) => RedirectHttps::Listener(t),
            None => RedirectHttps::Port(defaults::REDIRECT_HTTPS_PORT),
        }),
        Some(FileRedirectHttps::Port(p)) => match u16::try_from(p) {
            Ok(p) if p > 0 => Some(RedirectHttps::Port(p)),
            _ => {
                return Err(c.err(
                    format!("{key}.redirect_https"),
                    format!("{p} is not a port: expected true, false or 1-65535"),
                ))
            }
        },
    };
    let max_connections = match f.max_connections {
        None => None,
        Some(n @ 1..=10_000_000) => Some(n),
        Some(_) => {
            return Err(c.err(
                format!("{key}.max_connections"),
                "must be from 1 to 10000000",
            ))
        }
    };
    Ok(ListenerSpec {
        addr,
        tls,
        http2,
        redirect_https,
        max_connections,
    })
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;
    use std::collections::HashMap;

    fn no_env() -> HashMap<&'static str, &'static str> {
        HashMap::new()
    }

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn write(&self, name: &str, body: &[u8]) -> String {
            let p = self.dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p.display().to_string()
        }
        /// A certificate for `names` and its key; returns the two paths.
        fn cert(&self, tag: &str, names: &[&str]) -> (String, String) {
            let c = rcgen::generate_simple_self_signed(
                names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap();
            (
                self.write(&format!("{tag}.pem"), c.cert.pem().as_bytes()),
                self.write(
                    &format!("{tag}-key.pem"),
                    c.signing_key.serialize_pem().as_bytes(),
                ),
            )
        }
    }

    #[test]
    fn listener_shapes_load() {
        let f = Files::new();
        let (a, ak) = f.cert("a", &["a.test"]);
        let (b, bk) = f.cert("b", &["*.b.test"]);
        let yaml = format!(
            r#"
listen:
  - "127.0.0.1:8080"
  - addr: "127.0.0.1:8081"
    redirect_https: true
  - addr: "127.0.0.1:8443"
    tls:
      certificates:
        - {{ cert_file: "{a}", key_file: "{ak}" }}
        - {{ cert_file: "{b}", key_file: "{bk}" }}
  - addr: "127.0.0.1:8444"
    tls: {{ certificates: [{{ cert_file: "{a}", key_file: "{ak}" }}] }}
    http2: false
  - {{ addr: "127.0.0.1:8082", http2: true, redirect_https: 8443 }}
"#
        );
        let c = load_str(&yaml, "t.yaml", &no_env()).unwrap();
        let l = &c.listeners;
        // (listener, tls, http2, redirect, why)
        let cases: &[(usize, bool, bool, Option<RedirectHttps>, &str)] = &[
            (0, false, false, None, "a plain string: no TLS, no h2c"),
            (
                1,
                false,
                false,
                Some(RedirectHttps::Listener(2)),
                "true: the first TLS listener",
            ),
            (2, true, true, None, "TLS: ALPN h2 on by default"),
            (3, true, false, None, "http2: false turns ALPN h2 off"),
            (
                4,
                false,
                true,
                Some(RedirectHttps::Port(8443)),
                "h2c on, redirect to a port",
            ),
        ];
        for (i, tls, h2, redirect, why) in cases {
            assert_eq!(l[*i].tls.is_some(), *tls, "{why}");
            assert_eq!(l[*i].http2, *h2, "{why}");
            assert_eq!(l[*i].redirect_https, *redirect, "{why}");
        }
        let store = &l[2].tls.as_ref().unwrap().store;
        assert_eq!(store.certificates().len(), 2);
        assert_eq!(store.select(Some("x.b.test")), 1);
        // Without a TLS listener, `true` means port 443.
        let c = load_str(
            "listen: [{ addr: \"127.0.0.1:80\", redirect_https: true }]\n",
            "t.yaml",
            &no_env(),
        )
        .unwrap();
        assert_eq!(
            c.listeners[0].redirect_https,
            Some(RedirectHttps::Port(443))
        );
    }

    #[test]
    fn refused_listeners_table() {
        let f = Files::new();
        let (a, ak) = f.cert("a", &["a.test"]);
        let (_, other_key) = f.cert("o", &["o.test"]);
        let not_pem = f.write("not.pem", b"hello\n");
        let garbage_pem = f.write(
            "garbage.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        // A certificate that names nothing: no SAN, no common name.
        let nameless = {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name = rcgen::DistinguishedName::new();
            let k = rcgen::KeyPair::generate().unwrap();
            let cert = p.self_signed(&k).unwrap();
            (
                f.write("nameless.pem", cert.pem().as_bytes()),
                f.write("nameless-key.pem", k.serialize_pem().as_bytes()),
            )
        };
        let tls = |cert: &str, key: &str| {
            format!("listen: [{{ addr: \"127.0.0.1:1\", tls: {{ certificates: [{{ cert_file: \"{cert}\", key_file: \"{key}\" }}] }} }}]\n")
        };
        // (yaml, key, words in the reason, why)
        let cases: Vec<(String, &str, String, &str)> = vec![
            (tls("/nonexistent/c.pem", &ak), "listen[0].tls.certificates[0].cert_file", "cannot read /nonexistent/c.pem".into(), "missing certificate file"),
            (tls(&a, "/nonexistent/k.pem"), "listen[0].tls.certificates[0].key_file", "cannot read /nonexistent/k.pem".into(), "missing key file"),
            (tls(&not_pem, &ak), "listen[0].tls.certificates[0].cert_file", format!("{not_pem} holds no PEM certificate"), "certificate file without PEM"),
            (tls(&garbage_pem, &ak), "listen[0].tls.certificates[0].cert_file", "not a valid X.509 certificate".into(), "PEM that is not a certificate"),
            (tls(&a, &not_pem), "listen[0].tls.certificates[0].key_file", format!("{not_pem} holds no usable PEM private key"), "key file without PEM"),
            (tls(&a, &a), "listen[0].tls.certificates[0].key_file", "no usable PEM private key".into(), "a certificate where the key should be"),
            (tls(&a, &other_key), "listen[0].tls.certificates[0].key_file", format!("{other_key}: the private key does not fit the certificate"), "the key of another certificate"),
            (tls(&nameless.0, &nameless.1), "listen[0].tls.certificates[0].cert_file", "names no host".into(), "a certificate naming nothing"),
            ("listen: [{ addr: \"127.0.0.1:1\", tls: { certificates: [] } }]\n".into(), "listen[0].tls.certificates", "at least one certificate".into(), "TLS without certificates"),
            ("listen: [{ addr: \"127.0.0.1:1\", tls: {} }]\n".into(), "listen[0].tls", "missing field `certificates`".into(), "TLS without the certificates key"),
            ("listen: [{ addr: \"127.0.0.1:1\", tsl: {} }]\n".into(), "listen[0].tsl", "unknown field `tsl`".into(), "a typo inside a listener keeps its key"),
            (format!("listen: [{{ addr: \"127.0.0.1:1\", tls: {{ certificates: [{{ cert_file: \"{a}\", key: \"{ak}\" }}] }} }}]\n"), "listen[0].tls.certificates[0].key", "unknown field `key`".into(), "a typo in a certificate entry"),
            ("listen: [{ http2: true }]\n".into(), "listen[0]", "missing field `addr`".into(), "a listener without address"),
            ("listen: [{ addr: \"localhost:80\" }]\n".into(), "listen[0].addr", "expected IP:port".into(), "a host name is not an address"),
            ("listen: [7]\n".into(), "listen[0]", "an address \"IP:port\" or a listener".into(), "a number is neither shape"),
            (format!("listen: [{{ addr: \"127.0.0.1:1\", redirect_https: true, tls: {{ certificates: [{{ cert_file: \"{a}\", key_file: \"{ak}\" }}] }} }}]\n"), "listen[0].redirect_https", "only applies to a plain listener".into(), "redirecting HTTPS to itself"),
            ("listen: [{ addr: \"127.0.0.1:1\", redirect_https: 70000 }]\n".into(), "listen[0].redirect_https", "not a port".into(), "port out of range"),
            ("listen: [{ addr: \"127.0.0.1:1\", redirect_https: 0 }]\n".into(), "listen[0].redirect_https", "not a port".into(), "port 0"),
            ("listen: [{ addr: \"127.0.0.1:1\", redirect_https: -1 }]\n".into(), "listen[0].redirect_https", "not a port".into(), "negative port"),
            ("listen: [{ addr: \"127.0.0.1:1\", redirect_https: yes }]\n".into(), "listen[0].redirect_https", "true, false or the HTTPS port".into(), "a word"),
            ("listen: [{ addr: \"127.0.0.1:1\", http2: 2 }]\n".into(), "listen[0].http2", "".into(), "http2 is a boolean"),
            ("listen: [\"127.0.0.1:9\", { addr: \"127.0.0.1:9\" }]\n".into(), "listen[1]", "listed twice".into(), "the same address twice, in both shapes"),
        ];
        for (yaml, key, reason, why) in &cases {
            let e = load_str(yaml, "bad.yaml", &no_env()).expect_err(why);
            assert_eq!(e.file, "bad.yaml", "{why}");
            assert_eq!(&e.key, key, "{why}: {e}");
            assert!(e.reason.contains(reason.as_str()), "{why}: {e}");
            assert!(
                !e.to_string().contains("PRIVATE KEY"),
                "{why}: key material in {e}"
            );
        }
    }
}
