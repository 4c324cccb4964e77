//! Checking `upstreams.<name>.tls`: the server name, verification, the CA file and the client
//! certificate, into an [`UpstreamTls`]. Files are read and checked here.

use super::check::Ctx;
use super::defaults;
use super::file::FileUpstream;
use super::ConfigError;
use crate::tls::upstream::{load_ca, load_client, UpstreamTlsFile};
use crate::tls::UpstreamTls;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The TLS settings of upstream `key` (`upstreams.<name>`), whose `backends` were resolved to
/// `resolved` (same order). `None` when the upstream has no `tls`.
pub(super) fn check_tls(
    c: &Ctx<'_>,
    key: &str,
    u: &FileUpstream,
    resolved: &[SocketAddr],
) -> Result<Option<UpstreamTls>, ConfigError> {
    let Some(t) = &u.tls else {
        return Ok(None);
    };
    let sni = match &t.sni {
        None => None,
        Some(s) => {
            let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
            if rustls::pki_types::ServerName::try_from(s.as_str()).is_err() {
                return Err(c.err(
                    format!("{key}.tls.sni"),
                    format!("{s:?} is not a host name or IP address"),
                ));
            }
            Some(s)
        }
    };
    let backend_names = u
        .backends
        .iter()
        .zip(resolved)
        .filter_map(|(raw, addr)| {
            let (host, _) = crate::net::split_host_port(raw.addr.trim());
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            (!bare.is_empty() && bare.parse::<IpAddr>().is_err())
                .then(|| (*addr, bare.to_ascii_lowercase()))
        })
        .collect();
    let ca = match &t.ca_file {
        None => None,
        Some(p) => Some(load_ca(Path::new(p)).map_err(|r| c.err(format!("{key}.tls.ca_file"), r))?),
    };
    let client =
        match (&t.cert_file, &t.key_file) {
            (None, None) => None,
            (Some(cert), Some(k)) => Some(load_client(Path::new(cert), Path::new(k)).map_err(
                |(which, r)| {
                    let field = match which {
                        UpstreamTlsFile::Ca => "ca_file",
                        UpstreamTlsFile::Cert => "cert_file",
                        UpstreamTlsFile::Key => "key_file",
                    };
                    c.err(format!("{key}.tls.{field}"), r)
                },
            )?),
            (Some(_), None) => {
                return Err(c.err(
                    format!("{key}.tls.cert_file"),
                    "the client key (key_file) is missing: a client certificate needs both",
                ))
            }
            (None, Some(_)) => return Err(c.err(
                format!("{key}.tls.key_file"),
                "the client certificate (cert_file) is missing: a client certificate needs both",
            )),
        };
    Ok(Some(UpstreamTls {
        sni,
        backend_names,
        verify: t.verify.unwrap_or(defaults::UPSTREAM_TLS_VERIFY),
        ca,
        client,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use std::collections::HashMap;

    fn no_env() -> HashMap<&'static str, &'static str> {
        HashMap::new()
    }

    #[test]
    fn upstream_tls_loads_and_is_refused_table() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p.display().to_string()
        };
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["o.test".into()]).unwrap();
        let ca_pem = write("ca.pem", ca.cert.pem().as_bytes());
        let key_pem = write("key.pem", ca.signing_key.serialize_pem().as_bytes());
        let other_key = write("o-key.pem", other.signing_key.serialize_pem().as_bytes());
        let not_pem = write("not.pem", b"text\n");
        let up = |tls: &str| {
            format!("listen: [\"127.0.0.1:1\"]\nupstreams: {{ a: {{ backends: [\"127.0.0.1:9\", \"localhost:10\"], tls: {tls} }} }}\n")
        };

        let c = load_str(&up("{}"), "t.yaml", &no_env()).unwrap();
        let t = c.upstreams[0].tls.as_ref().unwrap();
        assert!(t.verify, "verification is on by default");
        assert_eq!(t.sni, None);
        assert_eq!(
            t.server_name("127.0.0.1:9".parse().unwrap()),
            "127.0.0.1",
            "an IP backend is verified by its address"
        );
        assert_eq!(
            t.server_name(c.upstreams[0].backends[1]),
            "localhost",
            "a named backend sends and verifies its name"
        );
        assert!(!c.upstreams[0].http2);
        let c = load_str(
            &up(&format!("{{ sni: API.Internal, verify: false, ca_file: \"{ca_pem}\", cert_file: \"{ca_pem}\", key_file: \"{key_pem}\" }}, http2: true")),
            "t.yaml",
            &no_env(),
        )
        .unwrap();
        let t = c.upstreams[0].tls.as_ref().unwrap();
        assert_eq!(t.sni.as_deref(), Some("api.internal"));
        assert_eq!(t.server_name(c.upstreams[0].backends[1]), "api.internal");
        assert!(!t.verify && t.ca.is_some() && t.client.is_some());
        assert!(c.upstreams[0].http2);
        assert!(
            !format!("{c:?}").contains("PRIVATE"),
            "key material in Debug"
        );

        // (tls value, key, words in the reason, why)
        let cases = [
            (
                "{ ca_file: /nonexistent/ca.pem }".to_string(),
                "upstreams.a.tls.ca_file",
                "cannot read /nonexistent/ca.pem",
                "missing CA file",
            ),
            (
                format!("{{ ca_file: \"{not_pem}\" }}"),
                "upstreams.a.tls.ca_file",
                "holds no PEM certificate",
                "CA file without PEM",
            ),
            (
                format!("{{ cert_file: \"{ca_pem}\" }}"),
                "upstreams.a.tls.cert_file",
                "client key (key_file) is missing",
                "certificate without key",
            ),
            (
                format!("{{ key_file: \"{key_pem}\" }}"),
                "upstreams.a.tls.key_file",
                "client certificate (cert_file) is missing",
                "key without certificate",
            ),
            (
                format!("{{ cert_file: \"{ca_pem}\", key_file: \"{other_key}\" }}"),
                "upstreams.a.tls.key_file",
                "does not fit",
                "key of another certificate",
            ),
            (
                format!("{{ cert_file: \"{not_pem}\", key_file: \"{key_pem}\" }}"),
                "upstreams.a.tls.cert_file",
                "holds no PEM certificate",
                "client certificate without PEM",
            ),
            (
                "{ sni: \"bad name!\" }".to_string(),
                "upstreams.a.tls.sni",
                "not a host name",
                "invalid SNI",
            ),
            (
                "{ verify: maybe }".to_string(),
                "upstreams.a.tls.verify",
                "",
                "verify is a boolean",
            ),
            (
                "{ insecure: true }".to_string(),
                "upstreams.a.tls.insecure",
                "unknown field",
                "unknown key",
            ),
        ];
        for (tls, key, reason, why) in cases {
            let e = load_str(&up(&tls), "bad.yaml", &no_env()).expect_err(why);
            assert_eq!(e.key, key, "{why}: {e}");
            assert!(e.reason.contains(reason), "{why}: {e}");
        }
    }
}
