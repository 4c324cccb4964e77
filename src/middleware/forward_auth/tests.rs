use super::*;

fn auth(trust: bool, response_headers: &[&str]) -> ForwardAuth {
    ForwardAuth::new(ForwardAuthSettings {
        address: "http://auth.internal:9091/verify?rd=1".parse().unwrap(),
        response_headers: response_headers
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
            .collect(),
        timeout: Duration::from_secs(2),
        trust_forward_header: trust,
    })
    .unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The values sent under `name`, joined with ", " (None: not sent).
fn sent(h: &HeaderMap, name: &str) -> Option<String> {
    let v: Vec<&str> = h
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    (!v.is_empty()).then(|| v.join(", "))
}

#[test]
fn the_sub_request_carries_the_clients_end_to_end_headers() {
    let incoming = headers(&[
        ("host", "app.example"),
        ("cookie", "session=1"),
        ("cookie", "theme=dark"),
        ("authorization", "Bearer t"),
        ("accept", "text/html"),
        ("content-length", "12"),
        ("transfer-encoding", "chunked"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "listed in Connection"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x-sum"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic eA=="),
        ("proxy-connection", "keep-alive"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-prefix", "/admin"),
        ("x-real-ip", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6"),
        (
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-01",
        ),
        ("tracestate", "client=1"),
    ]);
    let method = Method::POST;
    let ours = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let req = AuthRequest {
        method: &method,
        scheme: "https",
        host: Some("app.example"),
        uri: "/a/b?c=d&e",
        client_ip: Some("203.0.113.7".parse().unwrap()),
        headers: &incoming,
        traceparent: Some(HeaderValue::from_static(ours)),
        tracestate: None,
    };
    let h = auth(false, &[]).headers_for(&req);
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "host",
            Some("auth.internal:9091"),
            "Host is the auth address's authority",
        ),
        (
            "cookie",
            Some("session=1, theme=dark"),
            "end-to-end headers, every value",
        ),
        (
            "authorization",
            Some("Bearer t"),
            "the credential the auth server checks",
        ),
        ("accept", Some("text/html"), "any other end-to-end header"),
        ("content-length", None, "no body is sent"),
        ("transfer-encoding", None, "no body is sent"),
        ("connection", None, "hop-by-hop"),
        ("x-hop", None, "listed in Connection, so hop-by-hop"),
        ("keep-alive", None, "hop-by-hop"),
        ("te", None, "hop-by-hop"),
        ("trailer", None, "hop-by-hop"),
        ("upgrade", None, "hop-by-hop"),
        ("proxy-authorization", None, "meant for this proxy"),
        ("proxy-connection", None, "hop-by-hop"),
        ("x-forwarded-method", Some("POST"), "the client's method"),
        (
            "x-forwarded-proto",
            Some("https"),
            "how the client reached the proxy",
        ),
        (
            "x-forwarded-host",
            Some("app.example"),
            "the client's host, not the client's claim",
        ),
        (
            "x-forwarded-uri",
            Some("/a/b?c=d&e"),
            "path and query as sent",
        ),
        (
            "x-forwarded-for",
            Some("203.0.113.7"),
            "the resolved client IP replaces the claim",
        ),
        ("x-forwarded-prefix", None, "an untrusted forwarding header"),
        ("x-real-ip", None, "an untrusted forwarding header"),
        ("forwarded", None, "an untrusted forwarding header"),
        (
            "traceparent",
            Some(ours),
            "the caller's trace context replaces the client's",
        ),
        (
            "tracestate",
            None,
            "the client's tracestate belongs to the client's traceparent",
        ),
    ];
    for (name, want, why) in cases {
        assert_eq!(sent(&h, name).as_deref(), *want, "{name}: {why}");
    }
}

#[test]
fn trusted_forwarding_headers_are_kept() {
    let incoming = headers(&[
        ("x-forwarded-for", "198.51.100.1, 10.0.0.2"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-prefix", "/app"),
        (
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-01",
        ),
        ("tracestate", "client=1"),
    ]);
    let req = AuthRequest {
        method: &Method::GET,
        scheme: "https",
        host: None,
        uri: "/",
        client_ip: Some("10.0.0.2".parse().unwrap()),
        headers: &incoming,
        traceparent: None,
        tracestate: None,
    };
    let h = auth(true, &[]).headers_for(&req);
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "x-forwarded-for",
            Some("198.51.100.1, 10.0.0.2"),
            "the incoming chain, as it is",
        ),
        ("x-forwarded-proto", Some("http"), "the incoming value wins"),
        ("x-forwarded-prefix", Some("/app"), "kept"),
        (
            "x-forwarded-method",
            Some("GET"),
            "absent, so set from the request",
        ),
        (
            "x-forwarded-uri",
            Some("/"),
            "absent, so set from the request",
        ),
        ("x-forwarded-host", None, "no host known, none claimed"),
        (
            "traceparent",
            Some("00-11111111111111111111111111111111-2222222222222222-01"),
            "no trace context of ours: the client's goes on",
        ),
        ("tracestate", Some("client=1"), "with its tracestate"),
    ];
    for (name, want, why) in cases {
        assert_eq!(sent(&h, name).as_deref(), *want, "{name}: {why}");
    }
    let req = AuthRequest {
        client_ip: None,
        headers: &HeaderMap::new(),
        traceparent: Some(HeaderValue::from_static("00-1-2-01")),
        tracestate: Some(HeaderValue::from_static("ours=1")),
        ..req
    };
    let h = auth(false, &[]).headers_for(&req);
    assert_eq!(
        sent(&h, "x-forwarded-for"),
        None,
        "no client IP, no X-Forwarded-For"
    );
    assert_eq!(sent(&h, "tracestate").as_deref(), Some("ours=1"));
}

#[test]
fn deny_answers_lose_hop_by_hop_and_framing_headers() {
    let answer = headers(&[
        ("location", "/login"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("www-authenticate", "Bearer"),
        ("content-type", "text/html"),
        ("content-length", "42"),
        ("transfer-encoding", "chunked"),
        ("connection", "close, x-conn"),
        ("x-conn", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-authenticate", "Basic"),
        ("upgrade", "h2c"),
        ("trailer", "x-sum"),
    ]);
    let got = end_to_end(&answer);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "location",
            "set-cookie",
            "set-cookie",
            "www-authenticate",
            "content-type"
        ],
        "end-to-end headers in order, every value; hop-by-hop, Connection-listed and framing \
         headers dropped"
    );
    let out = auth(false, &["x-user"]).outcome(302, answer, Bytes::from_static(b"go"));
    let AuthOutcome::Deny {
        status,
        headers,
        body,
    } = out
    else {
        panic!("302 is a deny: {out:?}");
    };
    assert_eq!((status, &body[..]), (302, &b"go"[..]));
    assert_eq!(headers, got);
}

#[test]
fn pass_answers_copy_only_the_configured_headers() {
    let answer = headers(&[
        ("x-user", "alice"),
        ("x-groups", "a"),
        ("x-groups", "b"),
        ("x-other", "not configured"),
        ("set-cookie", "s=1"),
    ]);
    let fa = auth(false, &["x-user", "x-groups", "x-email"]);
    let cases: &[(u16, bool, &str)] = &[
        (200, true, "200 passes"),
        (204, true, "any 2xx passes"),
        (299, true, "any 2xx passes"),
        (301, false, "a redirect is returned to the client"),
        (401, false, "401 denies"),
        (500, false, "an auth server error denies, as Traefik does"),
        (199, false, "not 2xx"),
    ];
    for (status, pass, why) in cases {
        let out = fa.outcome(*status, answer.clone(), Bytes::new());
        assert_eq!(
            matches!(out, AuthOutcome::Pass { .. }),
            *pass,
            "{status}: {why}"
        );
    }
    let AuthOutcome::Pass { set, remove } = fa.outcome(200, answer, Bytes::new()) else {
        unreachable!()
    };
    let set: Vec<(&str, &str)> = set
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        set,
        [("x-user", "alice"), ("x-groups", "a"), ("x-groups", "b")]
    );
    let remove: Vec<&str> = remove.iter().map(|n| n.as_str()).collect();
    assert_eq!(
        remove,
        ["x-user", "x-groups", "x-email"],
        "every configured name, so a client's own X-Email does not reach the upstream"
    );
}

#[test]
fn settings_are_checked() {
    let ok = ForwardAuthSettings {
        address: "http://127.0.0.1:4181".parse().unwrap(),
        response_headers: vec![HeaderName::from_static("x-user")],
        timeout: Duration::from_secs(2),
        trust_forward_header: false,
    };
    let fa = ForwardAuth::new(ok.clone()).unwrap();
    assert_eq!(
        fa.address(),
        &"http://127.0.0.1:4181/".parse::<Uri>().unwrap()
    );
    assert_eq!(fa.host, "127.0.0.1:4181");
    let cases: Vec<(ForwardAuthSettings, &str, &str)> = vec![
        (
            ForwardAuthSettings {
                address: "https://auth.example/verify".parse().unwrap(),
                ..ok.clone()
            },
            "https:// auth servers are not supported",
            "no TLS client here",
        ),
        (
            ForwardAuthSettings {
                address: "/verify".parse().unwrap(),
                ..ok.clone()
            },
            "give an absolute http:// address",
            "a path alone",
        ),
        (
            ForwardAuthSettings {
                address: "ftp://auth.example/".parse().unwrap(),
                ..ok.clone()
            },
            "scheme \"ftp\" is not http://",
            "another scheme",
        ),
        (
            ForwardAuthSettings {
                address: "http://user:pw@auth.example/".parse().unwrap(),
                ..ok.clone()
            },
            "user information in the address is not supported",
            "it would end up in Host",
        ),
        (
            ForwardAuthSettings {
                timeout: Duration::ZERO,
                ..ok.clone()
            },
            "timeout: must be more than 0",
            "every check would fail",
        ),
        (
            ForwardAuthSettings {
                response_headers: vec![header::CONNECTION],
                ..ok.clone()
            },
            "response_headers: connection cannot be copied",
            "hop-by-hop",
        ),
        (
            ForwardAuthSettings {
                response_headers: vec![header::CONTENT_LENGTH],
                ..ok.clone()
            },
            "content-length cannot be copied",
            "framing",
        ),
    ];
    for (s, want, why) in cases {
        let e = ForwardAuth::new(s).expect_err(why);
        assert!(e.contains(want), "{why}: {e:?} lacks {want:?}");
    }
}

#[tokio::test]
async fn an_unreachable_auth_server_is_a_502() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let fa = ForwardAuth::new(ForwardAuthSettings {
        address: format!("http://127.0.0.1:{port}/").parse().unwrap(),
        response_headers: vec![],
        timeout: Duration::from_secs(2),
        trust_forward_header: false,
    })
    .unwrap();
    let h = HeaderMap::new();
    let call = fa
        .check(&AuthRequest {
            method: &Method::GET,
            scheme: "http",
            host: None,
            uri: "/",
            client_ip: None,
            headers: &h,
            traceparent: None,
            tracestate: None,
        })
        .await;
    let AuthOutcome::Failed {
        status,
        error_type,
        message,
    } = &call.outcome
    else {
        panic!("{call:?}");
    };
    assert_eq!(
        (*status, *error_type),
        (502, "connection_refused"),
        "{message}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert_eq!((call.status, call.peer), (None, None));
    assert!(call.end >= call.start);
}
