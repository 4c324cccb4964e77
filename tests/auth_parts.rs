//! The auth middlewares' cores against real parts: a users file written by Apache's own
//! `htpasswd -B`, and a real HTTP/1.1 auth server on a loopback port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tracegate::middleware::basic_auth::{BasicAuth, BasicAuthSettings};
use tracegate::middleware::forward_auth::{
    AuthCall, AuthOutcome, AuthRequest, ForwardAuth, ForwardAuthSettings,
};

/// Runs `htpasswd` with `args`; panics with what to install when it is not there.
fn htpasswd(args: &[&str]) {
    let status = Command::new("htpasswd")
        .args(args)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run htpasswd ({e}): install Debian's apache2-utils \
                 (`apt-get install apache2-utils`, or scripts/deps.sh)"
            )
        });
    assert!(status.success(), "htpasswd {args:?}: {status}");
}

fn basic(user_pass: &str) -> HeaderValue {
    let b64 = base64::engine::general_purpose::STANDARD.encode(user_pass);
    HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
}

#[test]
fn basic_auth_reads_what_htpasswd_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let path = file.to_str().unwrap();
    htpasswd(&["-B", "-b", "-c", path, "alice", "correct horse"]);
    htpasswd(&["-B", "-b", path, "bob", "p:ss wörd"]);
    let text = std::fs::read_to_string(&file).unwrap();
    let cost = &text.lines().next().unwrap()["alice:$2y$".len()..][..2];
    eprintln!("htpasswd -B writes $2y$ hashes of cost {cost}");

    let auth = BasicAuth::load(BasicAuthSettings {
        users_file: file.clone(),
        realm: "Staff only".into(),
        pass_credentials: false,
    })
    .unwrap();
    assert_eq!(auth.users(), 2);
    assert_eq!(
        auth.challenge(),
        r#"Basic realm="Staff only", charset="UTF-8""#
    );

    let started = Instant::now();
    let alice = basic("alice:correct horse");
    assert_eq!(auth.check(Some(&alice)).as_deref(), Some("alice"));
    let first = started.elapsed();
    let started = Instant::now();
    assert_eq!(auth.check(Some(&alice)).as_deref(), Some("alice"));
    let cached = started.elapsed();
    eprintln!("bcrypt cost {cost}: first check {first:?}, cached check {cached:?}");

    let started = Instant::now();
    assert_eq!(auth.check(Some(&basic("alice:correct horsE"))), None);
    let wrong = started.elapsed();
    let started = Instant::now();
    assert_eq!(auth.check(Some(&basic("mallory:correct horse"))), None);
    let unknown = started.elapsed();
    eprintln!("wrong password {wrong:?}, unknown user {unknown:?}");
    assert_eq!(
        auth.check(Some(&basic("bob:p:ss wörd"))).as_deref(),
        Some("bob"),
        "a UTF-8 password with a colon, as htpasswd hashed it"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bob = basic("bob:p:ss wörd");
        assert_eq!(auth.check_async(Some(&bob)).await.as_deref(), Some("bob"));
        assert_eq!(auth.check_async(Some(&basic("bob:nope"))).await, None);
    });

    // htpasswd -m (Apache MD5) lines are refused at load, naming the line.
    htpasswd(&["-m", "-b", path, "carol", "x"]);
    let e = BasicAuth::load(BasicAuthSettings {
        users_file: file,
        realm: "r".into(),
        pass_credentials: false,
    })
    .unwrap_err();
    assert!(e.contains("line 3 (user \"carol\"): Apache MD5"), "{e}");
}

/// What the auth server saw of one sub-request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
}

/// An auth server that decides by `X-Forwarded-Uri`, as real ones do: `/ok` passes as alice,
/// `/private` redirects to the login page, `/slow` never answers. Counts accepted connections.
async fn auth_server() -> (SocketAddr, Arc<AtomicUsize>, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (a, s) = (Arc::clone(&accepted), Arc::clone(&seen));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let s = Arc::clone(&s);
                    async move { Ok::<_, Infallible>(answer(req, &s).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted, seen)
}

async fn answer(req: Request<Incoming>, seen: &Mutex<Vec<Seen>>) -> Response<Full<Bytes>> {
    let uri = req
        .headers()
        .get("x-forwarded-uri")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    seen.lock().unwrap().push(Seen {
        method: req.method().clone(),
        path: req.uri().to_string(),
        headers: req.headers().clone(),
    });
    match uri.as_str() {
        "/ok" => Response::builder()
            .status(200)
            .header("x-user", "alice")
            .header("x-groups", "admins")
            .header("x-not-configured", "1")
            .body(Full::new(Bytes::from_static(b"ok")))
            .unwrap(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Response::new(Full::new(Bytes::new()))
        }
        _ => Response::builder()
            .status(302)
            .header("location", "/login")
            .header("set-cookie", "rd=/private; Path=/")
            .header("content-type", "text/html")
            .header("keep-alive", "timeout=5")
            .body(Full::new(Bytes::from_static(
                b"<a href=\"/login\">log in</a>",
            )))
            .unwrap(),
    }
}

async fn check(fa: &ForwardAuth, uri: &str, headers: &HeaderMap) -> AuthCall {
    fa.check(&AuthRequest {
        method: &Method::DELETE,
        scheme: "https",
        host: Some("app.example"),
        uri,
        client_ip: Some("203.0.113.9".parse().unwrap()),
        headers,
        traceparent: Some(HeaderValue::from_static(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )),
        tracestate: Some(HeaderValue::from_static("tg=1")),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_against_a_real_auth_server() {
    let (addr, accepted, seen) = auth_server().await;
    let fa = ForwardAuth::new(ForwardAuthSettings {
        address: format!("http://{addr}/verify?rd=1").parse().unwrap(),
        response_headers: vec![
            HeaderName::from_static("x-user"),
            HeaderName::from_static("x-groups"),
        ],
        timeout: Duration::from_millis(300),
        trust_forward_header: false,
    })
    .unwrap();
    let mut client_headers = HeaderMap::new();
    client_headers.insert("host", HeaderValue::from_static("app.example"));
    client_headers.insert("cookie", HeaderValue::from_static("session=abc"));
    client_headers.insert("x-user", HeaderValue::from_static("mallory"));
    client_headers.insert("content-length", HeaderValue::from_static("5"));
    client_headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));

    let call = check(&fa, "/ok", &client_headers).await;
    assert_eq!(call.status, Some(200));
    assert_eq!(call.peer, Some(addr));
    assert!(call.end >= call.start);
    let AuthOutcome::Pass { set, remove } = &call.outcome else {
        panic!("200 passes: {call:?}");
    };
    assert_eq!(
        set,
        &[
            (
                HeaderName::from_static("x-user"),
                HeaderValue::from_static("alice")
            ),
            (
                HeaderName::from_static("x-groups"),
                HeaderValue::from_static("admins")
            ),
        ],
        "only the configured response_headers"
    );
    assert_eq!(remove.len(), 2, "the client's own x-user is to be removed");

    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.method, Method::GET, "the sub-request is a GET");
    assert_eq!(s.path, "/verify?rd=1", "the address's path and query");
    let want = [
        ("host", addr.to_string()),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
        ),
        ("tracestate", "tg=1".to_string()),
        ("x-forwarded-method", "DELETE".to_string()),
        ("x-forwarded-proto", "https".to_string()),
        ("x-forwarded-host", "app.example".to_string()),
        ("x-forwarded-uri", "/ok".to_string()),
        ("x-forwarded-for", "203.0.113.9".to_string()),
        ("cookie", "session=abc".to_string()),
    ];
    for (name, value) in want {
        assert_eq!(
            s.headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value.as_str()),
            "{name}"
        );
    }
    assert_eq!(s.headers.get_all("x-forwarded-for").iter().count(), 1);
    assert!(
        s.headers.get("content-length").is_none(),
        "no body, no Content-Length"
    );

    let call = check(&fa, "/private", &client_headers).await;
    let AuthOutcome::Deny {
        status,
        headers,
        body,
    } = &call.outcome
    else {
        panic!("302 denies: {call:?}");
    };
    assert_eq!(*status, 302);
    assert_eq!(call.status, Some(302));
    assert_eq!(&body[..], b"<a href=\"/login\">log in</a>");
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"location") && names.contains(&"set-cookie"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"keep-alive") && !names.contains(&"content-length"),
        "hop-by-hop and framing headers are not passed on: {names:?}"
    );
    let location = headers.iter().find(|(n, _)| n == "location").unwrap();
    assert_eq!(location.1, "/login", "Location as the auth server sent it");

    // Keep-alive: every check so far and the next ones share one connection.
    let started = Instant::now();
    let rounds = 200;
    for i in 0..rounds {
        let uri = if i % 2 == 0 { "/ok" } else { "/private" };
        let call = check(&fa, uri, &client_headers).await;
        assert!(call.status.is_some(), "{call:?}");
    }
    eprintln!(
        "{rounds} checks over one keep-alive connection: {:?} each",
        started.elapsed() / rounds
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one pooled keep-alive connection"
    );

    // Called from another runtime (Pingora runs several), the pooled connection still serves.
    let fa = Arc::new(fa);
    let other = Arc::clone(&fa);
    let h = client_headers.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let call = check(&other, "/ok", &h).await;
            assert_eq!(call.status, Some(200), "{call:?}");
        });
    })
    .join()
    .unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the same connection");

    // An auth server that does not answer: Failed 504, soon after the timeout.
    let started = Instant::now();
    let call = check(&fa, "/slow", &client_headers).await;
    let took = started.elapsed();
    let AuthOutcome::Failed {
        status,
        error_type,
        message,
    } = &call.outcome
    else {
        panic!("no answer is a failure: {call:?}");
    };
    assert_eq!((*status, *error_type), (504, "timeout"), "{message}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "the timeout is kept: {took:?}"
    );
    assert_eq!(call.status, None);

    // The next check works again (on a new connection: the timed-out one was dropped).
    let call = check(&fa, "/ok", &client_headers).await;
    assert_eq!(call.status, Some(200), "{call:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
