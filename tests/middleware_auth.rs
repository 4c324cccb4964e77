//! `basic_auth` and `forward_auth` on the real binary: a users file written by Apache's
//! `htpasswd -B`, a real auth server in the test that checks what it was sent (the
//! `traceparent` of the proxy's auth span, `X-Forwarded-*`), and what the upstream, the client,
//! the exported spans and the access log see.

mod common;

use common::{http_get, OtlpReceiver, Proxy, Upstream};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn htpasswd(args: &[&str]) {
    let status = std::process::Command::new("htpasswd")
        .args(args)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run htpasswd ({e}): install Debian's apache2-utils (scripts/deps.sh)")
        });
    assert!(status.success());
}

fn basic(user_pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

#[test]
fn basic_auth_asks_refuses_and_keeps_the_password_from_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("htpasswd");
    let path = users.to_str().unwrap();
    htpasswd(&["-B", "-b", "-c", path, "alice", "s3cret"]);
    let up = Upstream::start("app");
    let p = Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\ntelemetry: {{ exporter: {{ protocol: none }} }}\n\
         middlewares:\n  login: {{ basic_auth: {{ users_file: \"{path}\", realm: edge }} }}\n  \
         pass: {{ basic_auth: {{ users_file: \"{path}\", realm: edge, pass_credentials: true }} }}\n\
         routes:\n  - {{ name: keep, match: {{ path_prefix: /keep }}, middlewares: [pass], upstream: app }}\n  \
         - {{ name: all, match: {{ path_prefix: / }}, middlewares: [login], upstream: app }}\n\
         upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        up.addr()
    ));
    let r = http_get(&p.addr(), "/a", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"edge\", charset=\"UTF-8\"")
    );
    let wrong = basic("alice:nope");
    assert_eq!(
        http_get(&p.addr(), "/b", &[("authorization", &wrong)]).status,
        401
    );
    let right = basic("alice:s3cret");
    assert_eq!(
        http_get(&p.addr(), "/c", &[("authorization", &right)]).status,
        200
    );
    assert_eq!(
        http_get(&p.addr(), "/keep/d", &[("authorization", &right)]).status,
        200
    );
    let reqs = up.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path_and_query.as_str()).collect();
    assert_eq!(
        paths,
        ["/c", "/keep/d"],
        "refused requests never reach the upstream"
    );
    assert_eq!(
        reqs[0].header("authorization"),
        None,
        "the password stays at the edge"
    );
    assert_eq!(
        reqs[1].header("authorization"),
        Some(right.as_str()),
        "pass_credentials"
    );
}

/// What the auth server saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A real auth server: `X-Forwarded-Uri: /ok…` passes as alice, anything else is sent to the
/// login page with a 302.
fn auth_server() -> (String, Arc<Mutex<Vec<Seen>>>, std::thread::JoinHandle<()>) {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap().to_string();
    std_listener.set_nonblocking(true).unwrap();
    let s = Arc::clone(&seen);
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let s = Arc::clone(&s);
                        async move {
                            let seen = Seen {
                                path: req.uri().to_string(),
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect(),
                            };
                            let ok = seen
                                .header("x-forwarded-uri")
                                .is_some_and(|u| u.starts_with("/ok"));
                            s.lock().unwrap().push(seen);
                            let resp = if ok {
                                hyper::Response::builder()
                                    .status(200)
                                    .header("x-user", "alice")
                                    .body(Full::new(Bytes::from_static(b"")))
                            } else {
                                hyper::Response::builder()
                                    .status(302)
                                    .header("location", "https://login.example/?rd=1")
                                    .header("content-type", "text/html")
                                    .body(Full::new(Bytes::from_static(b"<a>log in</a>")))
                            };
                            Ok::<_, Infallible>(resp.unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    (addr, seen, handle)
}

#[test]
fn forward_auth_is_traced_passes_its_headers_and_returns_other_answers_as_they_are() {
    let rx = OtlpReceiver::grpc();
    let up = Upstream::start("app");
    let (auth, seen, _server) = auth_server();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let p = Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\n\
         telemetry: {{ exporter: {{ protocol: grpc, endpoint: \"{}\" }}, batch: {{ scheduled_delay: 20ms }} }}\n\
         access_log: {{ path: \"{}\", format: json }}\n\
         middlewares:\n  sso: {{ forward_auth: {{ address: \"http://{auth}/verify\", response_headers: [x-user], timeout: 2s }} }}\n\
         routes:\n  - {{ name: app, match: {{ path_prefix: / }}, middlewares: [sso], upstream: app }}\n\
         upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        rx.endpoint(),
        log.display(),
        up.addr()
    ));
    // A client's own X-User is never believed.
    let r = http_get(
        &p.addr(),
        "/ok/page?x=1",
        &[("x-user", "mallory"), ("cookie", "sid=1")],
    );
    assert_eq!(r.status, 200);
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].header_values("x-user"),
        ["alice"],
        "the auth server's answer"
    );

    let r = http_get(&p.addr(), "/private", &[]);
    assert_eq!(r.status, 302, "the auth server's answer, as it is");
    assert_eq!(r.header("location"), Some("https://login.example/?rd=1"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.body_str(), "<a>log in</a>");
    assert_eq!(
        up.requests().len(),
        1,
        "a refused request never reaches the upstream"
    );

    // What the auth server got: Traefik's contract and this trace's context.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!(first.path, "/verify");
    assert_eq!(first.header("x-forwarded-method"), Some("GET"));
    assert_eq!(first.header("x-forwarded-proto"), Some("http"));
    assert_eq!(first.header("x-forwarded-uri"), Some("/ok/page?x=1"));
    assert_eq!(first.header("x-forwarded-for"), Some("127.0.0.1"));
    assert!(first.header("x-forwarded-host").is_some());
    assert_eq!(
        first.header("cookie"),
        Some("sid=1"),
        "the original headers go along"
    );
    let traceparent = first
        .header("traceparent")
        .expect("the auth call is traced");

    // The spans: the SERVER span, the auth call's CLIENT span under it (the traceparent the auth
    // server got names it), and the upstream attempt.
    let spans = rx.wait_for_spans(3 + 2, WAIT);
    let server = spans
        .iter()
        .find(|s| s.is_server() && s.attr_str("url.path") == Some("/ok/page"))
        .unwrap();
    let auth_span = spans
        .iter()
        .find(|s| s.is_client() && s.trace_id == server.trace_id && s.name == "GET sso")
        .expect("a CLIENT span named for the middleware");
    assert_eq!(auth_span.parent_span_id, server.span_id);
    assert_eq!(
        traceparent,
        format!("00-{}-{}-03", server.trace_id, auth_span.span_id),
        "the auth server's parent is the auth span"
    );
    assert_eq!(auth_span.attr_str("tracegate.middleware"), Some("sso"));
    assert_eq!(auth_span.attr_int("http.response.status_code"), Some(200));
    let denied = spans
        .iter()
        .find(|s| s.is_server() && s.attr_str("url.path") == Some("/private"))
        .unwrap();
    assert_eq!(denied.attr_str("tracegate.middleware"), Some("sso"));
    assert_eq!(denied.attr_int("http.response.status_code"), Some(302));

    // The access log has the auth call's time.
    let lines = common::wait_for_json_lines(&log, 2, WAIT);
    assert!(
        lines
            .iter()
            .all(|l| l["forward_auth_ms"].as_f64().is_some()),
        "{lines:?}"
    );
    assert_eq!(lines[1]["tracegate.middleware"], "sso");

    // An auth server that is gone: 502, not a pass.
    let dead = common::dead_addr();
    let p2 = Proxy::start(&format!(
        "listen: [\"127.0.0.1:0\"]\ntelemetry: {{ exporter: {{ protocol: none }} }}\n\
         middlewares:\n  sso: {{ forward_auth: {{ address: \"http://{dead}/verify\" }} }}\n\
         routes:\n  - {{ name: app, match: {{ path_prefix: / }}, middlewares: [sso], upstream: app }}\n\
         upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        up.addr()
    ));
    assert_eq!(http_get(&p2.addr(), "/ok/x", &[]).status, 502);
    assert_eq!(up.requests().len(), 1);
}
