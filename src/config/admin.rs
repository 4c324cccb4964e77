//! `admin`: the admin listener's address and its trace viewer, into [`AdminSettings`]. No
//! `admin` key, no admin listener; `admin: {}` listens on [`defaults::ADMIN_LISTEN`]. The
//! viewer is on when `admin.traces` is there (`traces: {}` takes the defaults of
//! [`StoreSettings`]).

use super::check::{count_in, parse_size, Ctx};
use super::defaults;
use super::file::FileAdmin;
use super::ConfigError;
use crate::admin::{AdminSettings, ViewerSettings};
use crate::listeners::ListenerSpec;
use crate::trace::store::StoreSettings;
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
    let viewer = check_viewer(c, f)?;
    Ok(Some(AdminSettings { listen, viewer }))
}

/// Checks `admin.traces`, `admin.otlp_intake` and `admin.trace_url`. The intake and the link
/// belong to the viewer, so either without `admin.traces` is refused rather than ignored.
fn check_viewer(c: &Ctx<'_>, f: &FileAdmin) -> Result<Option<ViewerSettings>, ConfigError> {
    let Some(t) = &f.traces else {
        if f.otlp_intake == Some(true) {
            return Err(c.err(
                "admin.otlp_intake",
                "the OTLP intake keeps spans in the trace viewer: add admin.traces (`traces: {}` \
                 for the defaults)",
            ));
        }
        if f.trace_url.is_some() {
            return Err(c.err(
                "admin.trace_url",
                "the link belongs to the trace viewer: add admin.traces (`traces: {}` for the \
                 defaults)",
            ));
        }
        return Ok(None);
    };
    let d = StoreSettings::default();
    let max_traces = c.count_in(
        "admin.traces.max_traces",
        t.max_traces,
        d.max_traces,
        1..=1_000_000,
    )?;
    let max_bytes = match &t.max_bytes {
        None => d.max_bytes as u64,
        Some(v) => parse_size(v).map_err(|r| c.err("admin.traces.max_bytes", r))?,
    };
    let max_bytes = count_in(max_bytes, &((1 << 20)..=(64 << 30))).map_err(|r| {
        c.err(
            "admin.traces.max_bytes",
            format!("{r} bytes (1MiB to 64GiB)"),
        )
    })?;
    let keep_errors = c.count_in(
        "admin.traces.keep_errors",
        t.keep_errors,
        d.keep_errors,
        0..=100_000,
    )?;
    let keep_slow = c.count_in("admin.traces.keep_slow", t.keep_slow, d.keep_slow, 0..=1000)?;
    let trace_url = match &f.trace_url {
        None => None,
        Some(u) => {
            let u = u.trim();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(c.err(
                    "admin.trace_url",
                    format!("{u:?} is not an http:// or https:// URL"),
                ));
            }
            if !u.contains("{trace_id}") {
                return Err(c.err(
                    "admin.trace_url",
                    format!(
                        "{u:?} has no {{trace_id}}: e.g. http://jaeger:16686/trace/{{trace_id}}"
                    ),
                ));
            }
            if u.chars().any(|ch| {
                ch.is_whitespace() || ch.is_control() || ch == '"' || ch == '<' || ch == '>'
            }) {
                return Err(c.err(
                    "admin.trace_url",
                    format!("{u:?} has a space, a quote or an angle bracket"),
                ));
            }
            Some(u.to_owned())
        }
    };
    Ok(Some(ViewerSettings {
        store: StoreSettings {
            max_traces,
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            keep_errors,
            keep_slow,
        },
        otlp_intake: f.otlp_intake.unwrap_or(false),
        trace_url,
    }))
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
    fn viewer_keys() {
        use crate::trace::store::StoreSettings;
        let l = "listen: [\"127.0.0.1:8080\"]\n";
        let c = load(&format!("{l}admin: {{ traces: {{}} }}\n")).unwrap();
        let v = c
            .admin
            .unwrap()
            .viewer
            .expect("traces: {} turns the viewer on");
        assert_eq!(v.store, StoreSettings::default(), "with the defaults");
        assert!(!v.otlp_intake, "the intake is off by default");
        assert_eq!(v.trace_url, None);
        let c = load(&format!(
            "{l}admin:\n  traces: {{ max_traces: 50, max_bytes: 8MiB, keep_errors: 0, keep_slow: 3 }}\n  \
             otlp_intake: true\n  trace_url: \"https://jaeger.example/trace/{{trace_id}}\"\n",
        ))
        .unwrap();
        let v = c.admin.unwrap().viewer.unwrap();
        assert_eq!(
            v.store,
            StoreSettings {
                max_traces: 50,
                max_bytes: 8 << 20,
                keep_errors: 0,
                keep_slow: 3
            }
        );
        assert!(v.otlp_intake);
        assert_eq!(
            v.trace_url.as_deref(),
            Some("https://jaeger.example/trace/{trace_id}")
        );
        assert!(
            load(&format!("{l}admin: {{}}\n"))
                .unwrap()
                .admin
                .unwrap()
                .viewer
                .is_none(),
            "off without traces"
        );
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
            (
                "admin: { otlp_intake: true }",
                "admin.otlp_intake",
                "add admin.traces",
                "the intake needs the viewer",
            ),
            (
                "admin: { trace_url: \"http://j/trace/{trace_id}\" }",
                "admin.trace_url",
                "add admin.traces",
                "the link needs the viewer",
            ),
            (
                "admin: { traces: { max_traces: 0 } }",
                "admin.traces.max_traces",
                "at least 1",
                "an empty ring",
            ),
            (
                "admin: { traces: { max_bytes: 1KiB } }",
                "admin.traces.max_bytes",
                "1MiB to 64GiB",
                "too small to hold a trace",
            ),
            (
                "admin: { traces: { max_bytes: lots } }",
                "admin.traces.max_bytes",
                "invalid size",
                "not a size",
            ),
            (
                "admin: { traces: { keep_slow: 5000 } }",
                "admin.traces.keep_slow",
                "at most 1000",
                "too many per route",
            ),
            (
                "admin: { traces: { max: 1 } }",
                "admin.traces.max",
                "unknown field `max`",
                "an unknown key",
            ),
            (
                "admin: { traces: {}, trace_url: \"jaeger:16686/trace/{trace_id}\" }",
                "admin.trace_url",
                "not an http:// or https:// URL",
                "no scheme",
            ),
            (
                "admin: { traces: {}, trace_url: \"http://jaeger:16686/search\" }",
                "admin.trace_url",
                "has no {trace_id}",
                "the link must name the trace",
            ),
            (
                "admin: { traces: {}, trace_url: \"http://j/t/{trace_id}\\\"onclick\" }",
                "admin.trace_url",
                "a quote",
                "nothing that could leave an attribute",
            ),
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
