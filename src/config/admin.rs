//! `admin`: the admin listener's address, into [`AdminSettings`]. No `admin` key, no admin
//! listener; `admin: {}` listens on [`defaults::ADMIN_LISTEN`].

use super::check::Ctx;
use super::defaults;
use super::file::FileAdmin;
use super::ConfigError;
use crate::admin::AdminSettings;
use crate::listeners::ListenerSpec;
use std::net::SocketAddr;

/// Checks `admin`: an `IP:port` that no proxy listener also uses.
pub(super) fn check_admin(
    c: &Ctx<'_>,
    f: Option<&FileAdmin>,
    listeners: &[ListenerSpec],
) -> Result<Option<AdminSettings>, ConfigError> {
    let Some(f) = f else {
        return Ok(None);
    };
    let text = f.listen.as_deref().unwrap_or(defaults::ADMIN_LISTEN);
    let listen: SocketAddr = text.trim().parse().map_err(|_| {
        c.err(
            "admin.listen",
            format!("invalid address {text:?}: expected IP:port, e.g. 127.0.0.1:9901"),
        )
    })?;
    // Port 0 asks the OS for a free port, which cannot be taken twice.
    if listen.port() != 0 {
        if let Some(i) = listeners.iter().position(|l| clashes(l.addr, listen)) {
            return Err(c.err(
                "admin.listen",
                format!(
                    "{listen} is also the address of listen[{i}] ({}): the admin listener needs \
                     a port of its own",
                    listeners[i].addr
                ),
            ));
        }
    }
    Ok(Some(AdminSettings { listen }))
}

/// Two binds that cannot both succeed: the same port on the same address, or on a wildcard
/// address and any other address of the same family.
fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use std::collections::HashMap;

    fn load(yaml: &str) -> Result<super::super::Config, super::super::ConfigError> {
        let env: HashMap<&str, &str> = HashMap::new();
        load_str(yaml, "t.yaml", &env)
    }

    #[test]
    fn admin_shapes_table() {
        // (admin part, expected address, why)
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("", None, "no admin key: no admin listener"),
            ("admin: {}\n", Some("127.0.0.1:9901"), "the default address"),
            (
                "admin: { listen: \"127.0.0.1:0\" }\n",
                Some("127.0.0.1:0"),
                "port 0: the OS picks",
            ),
            (
                "admin: { listen: \"[::1]:9901\" }\n",
                Some("[::1]:9901"),
                "IPv6 loopback",
            ),
            (
                "admin: { listen: \"0.0.0.0:9901\" }\n",
                Some("0.0.0.0:9901"),
                "a non-loopback address loads (it gets a warning at start)",
            ),
            (
                "admin: { listen: \"127.0.0.1:8080\" }\n",
                Some("127.0.0.1:8080"),
                "the same port on another IP family's address is no clash",
            ),
        ];
        for (admin, want, why) in cases {
            let c = load(&format!("listen: [\"[::1]:8080\"]\n{admin}")).expect(why);
            assert_eq!(
                c.admin.map(|a| a.listen.to_string()),
                want.map(str::to_owned),
                "{why}"
            );
        }
    }

    #[test]
    fn refused_admin_table() {
        // (yaml, key, words in the reason, why)
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "admin: { listen: localhost:9901 }",
                "admin.listen",
                "expected IP:port",
                "a host name is not an address",
            ),
            (
                "admin: { listen: \"127.0.0.1\" }",
                "admin.listen",
                "expected IP:port",
                "no port",
            ),
            (
                "admin: { listen: \"127.0.0.1:8080\" }",
                "admin.listen",
                "also the address of listen[0]",
                "the proxy's own address",
            ),
            (
                "admin: { listen: \"127.0.0.1:8443\" }",
                "admin.listen",
                "listen[1] (0.0.0.0:8443)",
                "a wildcard listener holds the port on every address",
            ),
            (
                "admin: { addr: \"127.0.0.1:1\" }",
                "admin.addr",
                "unknown field `addr`",
                "unknown admin key",
            ),
            (
                "admin: { listen: 9901 }",
                "admin.listen",
                "",
                "a number is not an address",
            ),
            ("admin: []", "admin", "", "a list is not the admin map"),
        ];
        for (admin, key, words, why) in cases {
            let yaml = format!("listen: [\"127.0.0.1:8080\", \"0.0.0.0:8443\"]\n{admin}\n");
            let e = load(&yaml).expect_err(why);
            assert_eq!(e.file, "t.yaml", "{why}");
            assert_eq!(e.key, *key, "{why}: {e}");
            assert!(e.reason.contains(words), "{why}: {e}");
        }
    }
}
