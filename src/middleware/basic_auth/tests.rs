use super::*;
use std::io::Write;

/// A users file in a temporary directory (kept alive by the returned guard).
fn users_file(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    (dir, path)
}

fn settings(path: PathBuf, realm: &str) -> BasicAuthSettings {
    BasicAuthSettings {
        users_file: path,
        realm: realm.to_string(),
        pass_credentials: false,
    }
}

/// Cost 4, the lowest: each verification takes about a millisecond.
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn basic(user_pass: &[u8]) -> HeaderValue {
    let b64 = base64::engine::general_purpose::STANDARD.encode(user_pass);
    HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
}

#[test]
fn users_files_are_read_or_refused_with_the_line() {
    let alice = format!("alice:{}", hash("a"));
    let bob = format!("bob:{}", hash("b"));
    let b2y = hash("x").replacen("$2b$", "$2y$", 1);
    let b2a = hash("x").replacen("$2b$", "$2a$", 1);
    let cost18 = hash("x").replacen("$04$", "$18$", 1);
    let cases: Vec<(String, Result<usize, &str>, &str)> = vec![
        (format!("{alice}\n{bob}\n"), Ok(2), "two users"),
        (
            format!("# users\n\n{alice}\r\n   \n  # indented comment\n{bob}"),
            Ok(2),
            "comments, blank lines, CRLF and no final newline",
        ),
        (
            format!("carol:{b2y}\ndave:{b2a}\n"),
            Ok(2),
            "$2y$ (htpasswd) and $2a$ are bcrypt too",
        ),
        (
            format!("{alice}:Alice Liddell\n"),
            Ok(1),
            "nginx's third field, a comment",
        ),
        (String::new(), Ok(0), "an empty file lists nobody"),
        (
            format!("{alice}\nbob\n"),
            Err("line 2 is not `user:hash` (no colon)"),
            "a line without a colon",
        ),
        (
            format!(":{}\n", hash("x")),
            Err("line 1 has no user name"),
            "an empty user name",
        ),
        (
            "# x\nalice:$apr1$Vp4n1dNe$g7t6t2QBm2NTa0kWL3N0B/\n".to_string(),
            Err("line 2 (user \"alice\"): Apache MD5 ($apr1$, htpasswd -m); only bcrypt"),
            "htpasswd -m is refused, not silently never matching",
        ),
        (
            "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n".to_string(),
            Err("line 1 (user \"alice\"): SHA-1 ({SHA}, htpasswd -s)"),
            "htpasswd -s",
        ),
        (
            "alice:$6$salt$hash\n".to_string(),
            Err("SHA-512 crypt ($6$, htpasswd -5)"),
            "htpasswd -5",
        ),
        (
            "alice:plaintext\n".to_string(),
            Err("line 1 (user \"alice\"): not a bcrypt hash"),
            "a plain-text password (htpasswd -p)",
        ),
        (
            "alice:\n".to_string(),
            Err("line 1 (user \"alice\"): an empty hash"),
            "no hash at all",
        ),
        (
            format!("alice:{}\n", hash("x").replacen("$2b$", "$2x$", 1)),
            Err("bcrypt $2x$"),
            "the crypt_blowfish bug variant",
        ),
        (
            "alice:$2y$05$tooshort\n".to_string(),
            Err("line 1 (user \"alice\"): not a valid bcrypt hash"),
            "a truncated bcrypt hash",
        ),
        (
            format!("alice:{cost18}\n"),
            Err("bcrypt cost 18 is outside 4..=17"),
            "a cost that would take a core for seconds per request",
        ),
        (
            format!("{alice}\n{bob}\n{alice}\n"),
            Err("line 3: user \"alice\" is already on line 1"),
            "a user listed twice",
        ),
        (
            "alice:\u{fffd}\n".to_string(),
            Err("line 1 (user \"alice\"): not a bcrypt hash"),
            "non-ASCII in the hash",
        ),
    ];
    for (content, want, why) in cases {
        let (_dir, path) = users_file(&content);
        let got = BasicAuth::load(settings(path, "r")).map(|a| a.users());
        match (got, want) {
            (Ok(n), Ok(w)) => assert_eq!(n, w, "{why}"),
            (Err(e), Err(w)) => assert!(e.contains(w), "{why}: {e:?} lacks {w:?}"),
            (got, want) => panic!("{why}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn unreadable_files_and_bad_realms_are_refused() {
    let (dir, path) = users_file(&format!("alice:{}\n", hash("a")));
    let mut latin1 = b"alice:".to_vec();
    latin1.extend_from_slice(b"\xe9\n");
    let latin1_path = dir.path().join("latin1");
    std::fs::write(&latin1_path, latin1).unwrap();
    let cases: Vec<(BasicAuthSettings, &str, &str)> = vec![
        (
            settings(dir.path().join("missing"), "r"),
            "cannot read",
            "a missing file",
        ),
        (
            settings(dir.path().to_path_buf(), "r"),
            "is not a regular file but a directory",
            "a directory (files::read_bounded)",
        ),
        (
            settings(latin1_path, "r"),
            "line 1 is not UTF-8",
            "a Latin-1 file",
        ),
        (
            settings(path.clone(), "a\r\nSet-Cookie: x"),
            "a realm is printable ASCII",
            "CR LF would split the header",
        ),
        (
            settings(path, "Zürich"),
            "a realm is printable ASCII",
            "non-ASCII has no portable meaning in a header",
        ),
    ];
    for (s, want, why) in cases {
        let e = BasicAuth::load(s).expect_err(why);
        assert!(e.contains(want), "{why}: {e:?} lacks {want:?}");
    }
}

#[test]
fn credentials_are_checked() {
    let content = format!(
        "alice:{}\nbob:{}\nemma:{}\nfred:{}\n",
        hash("s3cret"),
        hash("p:ss wörd"),
        hash(""),
        hash("pw")
    );
    let (_dir, path) = users_file(&content);
    let auth = BasicAuth::load(settings(path, "r")).unwrap();
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let raw = |s: String| Some(HeaderValue::from_str(&s).unwrap());
    let cases: Vec<(Option<HeaderValue>, Option<&str>, &str)> = vec![
        (
            Some(basic(b"alice:s3cret")),
            Some("alice"),
            "the right password",
        ),
        (
            Some(basic("bob:p:ss wörd".as_bytes())),
            Some("bob"),
            "the password is everything after the first colon, UTF-8",
        ),
        (
            Some(basic(b"emma:")),
            Some("emma"),
            "an empty password when the hash is of one",
        ),
        (Some(basic(b"alice:wrong")), None, "a wrong password"),
        (
            Some(basic(b"alice:S3CRET")),
            None,
            "passwords are case-sensitive",
        ),
        (
            Some(basic(b"Alice:s3cret")),
            None,
            "user names are case-sensitive",
        ),
        (Some(basic(b"mallory:s3cret")), None, "an unknown user"),
        (Some(basic(b":s3cret")), None, "an empty user name"),
        (
            Some(basic(b"alices3cret")),
            None,
            "no colon in the decoded credential",
        ),
        (
            Some(basic(b"alice:\xffs3cret")),
            None,
            "non-UTF-8 in the decoded credential",
        ),
        (None, None, "no Authorization header"),
        (
            raw(format!("basic {}", b64(b"alice:s3cret"))),
            Some("alice"),
            "the scheme in lower case",
        ),
        (
            raw(format!("BASIC {}", b64(b"alice:s3cret"))),
            Some("alice"),
            "the scheme in upper case",
        ),
        (
            raw(format!("Basic   {}", b64(b"alice:s3cret"))),
            Some("alice"),
            "several spaces after the scheme (1*SP)",
        ),
        (
            raw(format!("Bearer {}", b64(b"alice:s3cret"))),
            None,
            "another scheme",
        ),
        (
            raw(format!("Basic{}", b64(b"alice:s3cret"))),
            None,
            "no space after the scheme",
        ),
        (raw("Basic".to_string()), None, "the scheme alone"),
        (raw("Basic ".to_string()), None, "the scheme and a space"),
        (raw("Basic !!!!".to_string()), None, "not base64"),
        (
            Some(basic(b"fred:pw")),
            Some("fred"),
            "padded base64 (`fred:pw` needs two `=`)",
        ),
        (
            raw(format!("Basic {}", b64(b"fred:pw").trim_end_matches('='))),
            None,
            "unpadded base64 (RFC 7617 uses RFC 4648 base64 with padding)",
        ),
        (
            raw(format!("Basic {} x", b64(b"alice:s3cret"))),
            None,
            "something after the token",
        ),
        (
            Some(HeaderValue::from_bytes(b"Basic \xe9\xe9\xe9\xe9").unwrap()),
            None,
            "non-ASCII in the header value",
        ),
    ];
    for (value, want, why) in cases {
        assert_eq!(auth.check(value.as_ref()).as_deref(), want, "{why}");
    }
}

#[test]
fn challenges_quote_and_escape_the_realm() {
    let (_dir, path) = users_file("");
    let cases = [
        (
            "Staff",
            r#"Basic realm="Staff", charset="UTF-8""#,
            "a plain realm",
        ),
        (
            "",
            r#"Basic realm="", charset="UTF-8""#,
            "an empty realm is still quoted",
        ),
        (
            r#"say "hi""#,
            r#"Basic realm="say \"hi\"", charset="UTF-8""#,
            "a double quote is escaped",
        ),
        (
            r"C:\staff",
            r#"Basic realm="C:\\staff", charset="UTF-8""#,
            "a backslash is escaped",
        ),
        (
            "a, b=c",
            r#"Basic realm="a, b=c", charset="UTF-8""#,
            "commas and equals signs stay inside the quotes",
        ),
    ];
    for (realm, want, why) in cases {
        let auth = BasicAuth::load(settings(path.clone(), realm)).unwrap();
        assert_eq!(auth.challenge(), want, "{why}");
    }
}

#[test]
fn verified_credentials_are_cached_and_failures_are_not() {
    let (_dir, path) = users_file(&format!("alice:{}\n", hash("s3cret")));
    let auth = BasicAuth::load(BasicAuthSettings {
        pass_credentials: true,
        ..settings(path, "r")
    })
    .unwrap();
    assert!(auth.pass_credentials());
    let count = || auth.verifications.load(Ordering::Relaxed);
    let good = basic(b"alice:s3cret");
    assert_eq!(auth.check(Some(&good)).as_deref(), Some("alice"));
    assert_eq!(count(), 1, "the first check runs bcrypt");
    for _ in 0..5 {
        assert_eq!(auth.check(Some(&good)).as_deref(), Some("alice"));
    }
    assert_eq!(count(), 1, "cache hits run no bcrypt");

    let wrong = basic(b"alice:wrong");
    assert_eq!(auth.check(Some(&wrong)), None);
    assert_eq!(auth.check(Some(&wrong)), None);
    assert_eq!(count(), 3, "a wrong password is verified every time");

    let unknown = basic(b"mallory:s3cret");
    assert_eq!(auth.check(Some(&unknown)), None);
    assert_eq!(auth.check(Some(&unknown)), None);
    assert_eq!(
        count(),
        5,
        "an unknown user is verified against the dummy hash, every time"
    );

    // Another spelling of the same credential is another header value: verified once more.
    let lower =
        HeaderValue::from_str(&good.to_str().unwrap().replacen("Basic", "basic", 1)).unwrap();
    assert_eq!(auth.check(Some(&lower)).as_deref(), Some("alice"));
    assert_eq!(count(), 6);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(
            auth.check_async(Some(&good)).await.as_deref(),
            Some("alice")
        );
        assert_eq!(count(), 6, "check_async shares the cache");
        assert_eq!(auth.check_async(Some(&wrong)).await, None);
        assert_eq!(count(), 7, "check_async verifies misses");
        assert_eq!(auth.check_async(None).await, None);
        assert_eq!(count(), 7, "no header, no bcrypt");
    });

    // The cache holds keyed digests of the header, never the header itself.
    let cache = auth.cache.lock().unwrap();
    assert_eq!(cache.len(), 2);
    assert!(!cache.contains_key(&sha256(good.as_bytes())));
}

#[test]
fn check_async_verifies_off_the_event_loop() {
    let (_dir, path) = users_file(&format!("alice:{}\n", hash("s3cret")));
    let auth = Arc::new(BasicAuth::load(settings(path, "r")).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // On a single-threaded runtime, a ticker keeps running while 8 verifications are
        // under way only if they run elsewhere (the blocking pool).
        let ticks = Arc::new(AtomicU64::new(0));
        let t = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        let mut checks = Vec::new();
        for i in 0..8 {
            let auth = Arc::clone(&auth);
            checks.push(tokio::spawn(async move {
                let v = basic(format!("alice:wrong{i}").as_bytes());
                auth.check_async(Some(&v)).await
            }));
        }
        for c in checks {
            assert_eq!(c.await.unwrap(), None);
        }
        ticker.abort();
        assert!(ticks.load(Ordering::Relaxed) > 8, "the event loop went on");
    });
    assert_eq!(auth.verifications.load(Ordering::Relaxed), 8);
}

#[test]
fn the_cache_is_bounded_and_entries_expire() {
    let (_dir, path) = users_file("");
    let auth = BasicAuth::load(settings(path, "r")).unwrap();
    for i in 0..CACHE_CAPACITY + 10 {
        auth.remember(auth.key_of(i.to_string().as_bytes()), "u".into());
    }
    assert_eq!(auth.cache.lock().unwrap().len(), CACHE_CAPACITY);
    let last = auth.key_of((CACHE_CAPACITY + 9).to_string().as_bytes());
    assert!(auth.cached(&last).is_some(), "the newest entry stays");
    let first = auth.key_of(b"0");
    assert!(auth.cached(&first).is_none(), "the oldest went first");

    let key = auth.key_of(b"expired");
    auth.cache.lock().unwrap().insert(
        key,
        CacheEntry {
            user: "u".into(),
            expires: Instant::now() - Duration::from_secs(1),
        },
    );
    assert!(auth.cached(&key).is_none(), "an expired entry is not used");
    assert!(
        !auth.cache.lock().unwrap().contains_key(&key),
        "and is dropped"
    );
}

#[test]
fn unknown_users_cost_a_verification_of_the_files_cost() {
    for cost in COST_RANGE {
        let h = dummy_hash(cost);
        check_hash(&h).unwrap_or_else(|e| panic!("dummy hash of cost {cost}: {e}"));
        assert_eq!(h.parse::<bcrypt::HashParts>().unwrap().get_cost(), cost);
    }
    assert!(
        bcrypt::verify("", &dummy_hash(4)).is_ok(),
        "bcrypt accepts it"
    );
    let h5 = bcrypt::hash("x", 5).unwrap();
    let h6 = bcrypt::hash("x", 6).unwrap();
    let content = format!("a:{h5}\nb:{h6}\nc:{h6}\n");
    let users = parse_users(content.as_bytes()).unwrap();
    assert_eq!(most_common_cost(&users), 6, "the cost most users have");
    assert_eq!(most_common_cost(&users[..2]), 6, "the higher on a tie");
    assert_eq!(
        most_common_cost(&[]),
        5,
        "htpasswd -B's default for no users"
    );
}
