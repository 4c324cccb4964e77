//! The `basic_auth` middleware's core: an htpasswd users file of bcrypt hashes (Apache's
//! `htpasswd -B`), the check of a `Basic` credential (RFC 7617) against it, the challenge a
//! refused client gets, and a small cache of verified credentials.
//!
//! bcrypt is slow on purpose (a few milliseconds at `htpasswd -B`'s default cost 5, about 90 ms
//! at cost 10 and 200 ms at cost 12 on a 2-core VM), so [`BasicAuth::check_async`] verifies on tokio's blocking pool, at most one
//! per core at a time, never on a worker thread's event loop.
//! nginx (`auth_basic`) and Traefik (`basicAuth`) verify on every request; here a verified
//! `Authorization` value is remembered for [`CACHE_TTL`] (at most [`CACHE_CAPACITY`] of them),
//! so a logged-in client, which sends the same header on every request, pays bcrypt about once
//! per five minutes instead of per request. The cache holds no credential in the clear: its key
//! is an HMAC-SHA-256 of the header value under a random key of the process. Failed attempts are
//! never cached, and a reload builds a new [`BasicAuth`] with an empty cache, so a changed or
//! removed password stops working at the reload.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::HeaderValue;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::files;

/// The largest users file: 4 MiB, some 50,000 users of 80-byte lines.
pub const USERS_MAX_BYTES: u64 = 4 << 20;
/// How long a verified `Authorization` value is accepted without bcrypt again.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// How many verified `Authorization` values are remembered at most.
pub const CACHE_CAPACITY: usize = 1024;
/// The lowest and highest bcrypt cost accepted in a users file: `htpasswd -C`'s own range. A
/// higher cost (one verification at cost 20 takes about a minute) would let any client with a
/// user name keep a core busy per request.
pub const COST_RANGE: std::ops::RangeInclusive<u32> = 4..=17;

/// How many bcrypt verifications [`BasicAuth::check_async`] runs at once, at most, per users
/// file: the machine's cores. More would only queue on the cores while holding blocking-pool
/// threads; a flood of wrong passwords then waits here instead of starving the rest.
fn max_concurrent_verifications() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// What the config says about one `basic_auth` middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuthSettings {
    /// The htpasswd file: `user:hash` lines, bcrypt hashes only.
    pub users_file: PathBuf,
    /// The protection space named in the challenge (`WWW-Authenticate: Basic realm="…"`).
    pub realm: String,
    /// Whether the upstream request keeps the client's `Authorization` header.
    pub pass_credentials: bool,
}

/// One listed user: the name, its SHA-256 (compared in constant time) and the bcrypt hash.
struct User {
    name: String,
    name_digest: [u8; 32],
    hash: Arc<str>,
}

struct CacheEntry {
    user: String,
    expires: Instant,
}

/// A loaded users file and its cache of verified credentials. `Send + Sync`; one per
/// middleware and config generation.
pub struct BasicAuth {
    users: Vec<User>,
    /// Verified for a name that is not listed, so that an unknown user costs what a wrong
    /// password does: a valid bcrypt hash of the file's most common cost.
    dummy_hash: Arc<str>,
    challenge: HeaderValue,
    pass_credentials: bool,
    cache_key: ring::hmac::Key,
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
    permits: Arc<tokio::sync::Semaphore>,
    /// bcrypt verifications run (cache hits run none).
    verifications: Arc<AtomicU64>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.len())
            .field("challenge", &self.challenge)
            .field("pass_credentials", &self.pass_credentials)
            .finish_non_exhaustive()
    }
}

/// The verification one credential still needs.
struct Pending {
    key: [u8; 32],
    /// The listed user, or None for an unknown name (verified against the dummy hash).
    user: Option<String>,
    password: Vec<u8>,
    hash: Arc<str>,
}

enum Step {
    Refuse,
    Cached(String),
    Verify(Pending),
}

impl BasicAuth {
    /// Reads and checks the htpasswd file now (at config load and on every reload). Err(reason)
    /// for a missing/unreadable file, a line that is not `user:hash`, a hash that is not bcrypt
    /// ($2y$/$2b$/$2a$), naming the line. Comment lines (`#`) and blank lines are skipped; a
    /// third field (`user:hash:comment`, as nginx reads them) is ignored.
    pub fn load(settings: BasicAuthSettings) -> Result<BasicAuth, String> {
        let challenge = challenge_value(&settings.realm)?;
        let bytes = files::read_bounded(&settings.users_file, USERS_MAX_BYTES)
            .map_err(|e| e.to_string())?;
        let path = settings.users_file.display();
        let users = parse_users(&bytes).map_err(|e| format!("{path}: {e}"))?;
        let dummy_hash = dummy_hash(most_common_cost(&users)).into();
        let rng = ring::rand::SystemRandom::new();
        let cache_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .map_err(|_| "no randomness for the credential cache's key".to_string())?;
        Ok(BasicAuth {
            users,
            dummy_hash,
            challenge,
            pass_credentials: settings.pass_credentials,
            cache_key,
            cache: Mutex::new(HashMap::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(max_concurrent_verifications())),
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The user when `authorization` is a valid `Basic` credential (RFC 7617) for a listed
    /// user. Runs bcrypt on the calling thread when the credential is not cached: from async
    /// code use [`BasicAuth::check_async`].
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Option<String> {
        match self.step(authorization) {
            Step::Refuse => None,
            Step::Cached(user) => Some(user),
            Step::Verify(p) => {
                let ok = verify(&self.verifications, &p.password, &p.hash);
                self.finish(p, ok)
            }
        }
    }

    /// [`BasicAuth::check`] for async callers: a cached credential is answered at once, any
    /// other is verified on tokio's blocking pool (`spawn_blocking`), so the caller's worker
    /// thread goes on serving other requests meanwhile. Needs a tokio runtime.
    pub async fn check_async(&self, authorization: Option<&HeaderValue>) -> Option<String> {
        let p = match self.step(authorization) {
            Step::Refuse => return None,
            Step::Cached(user) => return Some(user),
            Step::Verify(p) => p,
        };
        let _permit = self.permits.acquire().await.ok()?;
        let counter = Arc::clone(&self.verifications);
        let hash = Arc::clone(&p.hash);
        let password = p.password.clone();
        let ok = tokio::task::spawn_blocking(move || verify(&counter, &password, &hash))
            .await
            .unwrap_or(false);
        self.finish(p, ok)
    }

    /// `Basic realm="…", charset="UTF-8"` (RFC 7617 §2), the realm quoted and escaped.
    pub fn challenge(&self) -> HeaderValue {
        self.challenge.clone()
    }

    /// Whether the upstream request keeps the client's `Authorization` header.
    pub fn pass_credentials(&self) -> bool {
        self.pass_credentials
    }

    /// How many users the file lists.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Everything before bcrypt: parse the header, consult the cache, find the user.
    fn step(&self, authorization: Option<&HeaderValue>) -> Step {
        let Some(value) = authorization else {
            return Step::Refuse;
        };
        let Some((name, password)) = parse_basic(value.as_bytes()) else {
            return Step::Refuse;
        };
        let key = self.key_of(value.as_bytes());
        if let Some(user) = self.cached(&key) {
            return Step::Cached(user);
        }
        let found = self.find(&name);
        let hash = match found {
            Some(i) => Arc::clone(&self.users[i].hash),
            None => Arc::clone(&self.dummy_hash),
        };
        Step::Verify(Pending {
            key,
            user: found.map(|i| self.users[i].name.clone()),
            password: password.into_bytes(),
            hash,
        })
    }

    /// The verification's result: the user when listed and verified (then cached).
    fn finish(&self, p: Pending, ok: bool) -> Option<String> {
        let user = p.user.filter(|_| ok)?;
        self.remember(p.key, user.clone());
        Some(user)
    }

    /// The index of the user named `name`. Every listed name is compared, each through its
    /// SHA-256 in constant time, so the time taken says neither whether nor where the name is
    /// listed, nor how much of it matched.
    fn find(&self, name: &str) -> Option<usize> {
        let digest = sha256(name.as_bytes());
        let mut index = 0u64;
        let mut any = subtle::Choice::from(0);
        for (i, u) in self.users.iter().enumerate() {
            let hit = u.name_digest.ct_eq(&digest);
            index.conditional_assign(&(i as u64), hit);
            any |= hit;
        }
        bool::from(any).then_some(index as usize)
    }

    fn key_of(&self, authorization: &[u8]) -> [u8; 32] {
        let tag = ring::hmac::sign(&self.cache_key, authorization);
        let mut key = [0u8; 32];
        key.copy_from_slice(tag.as_ref());
        key
    }

    fn cached(&self, key: &[u8; 32]) -> Option<String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(key)?;
        if entry.expires > Instant::now() {
            return Some(entry.user.clone());
        }
        cache.remove(key);
        None
    }

    /// Remembers a verified credential. When full: expired entries go first, then the one that
    /// expires soonest (a linear scan of at most [`CACHE_CAPACITY`], on a miss only).
    fn remember(&self, key: [u8; 32], user: String) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&key) {
            cache.retain(|_, e| e.expires > now);
            if cache.len() >= CACHE_CAPACITY {
                if let Some(oldest) = cache.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k) {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(
            key,
            CacheEntry {
                user,
                expires: now + CACHE_TTL,
            },
        );
    }
}

fn verify(counter: &AtomicU64, password: &[u8], hash: &str) -> bool {
    counter.fetch_add(1, Ordering::Relaxed);
    bcrypt::verify(password, hash).unwrap_or(false)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `user` and `password` from an `Authorization` value: `Basic` (any case), one or more
/// spaces, the base64 of `user:password` (RFC 7617 §2), UTF-8 (the challenge says so). The
/// user-id is everything before the first colon; it cannot be empty.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let token = rest.trim_ascii();
    if token.is_empty() || token.contains(&b' ') {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some((user.to_string(), password.to_string()))
}

/// The challenge for `realm`: `Basic realm="…", charset="UTF-8"`, with `"` and `\` escaped
/// (a quoted-string, RFC 9110 §5.6.4). Control characters and non-ASCII are refused: they have
/// no portable meaning in a header.
fn challenge_value(realm: &str) -> Result<HeaderValue, String> {
    if let Some(c) = realm.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "realm {realm:?} has {c:?}: a realm is printable ASCII"
        ));
    }
    let mut v = String::with_capacity(realm.len() + 32);
    v.push_str("Basic realm=\"");
    for c in realm.chars() {
        if c == '"' || c == '\\' {
            v.push('\\');
        }
        v.push(c);
    }
    v.push_str("\", charset=\"UTF-8\"");
    HeaderValue::from_str(&v).map_err(|e| format!("realm {realm:?}: {e}"))
}

/// The users of an htpasswd file. Err names the line (1-based) and what is wrong with it.
fn parse_users(bytes: &[u8]) -> Result<Vec<User>, String> {
    let mut users: Vec<User> = Vec::new();
    let mut lines_of: HashMap<String, usize> = HashMap::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        let line = std::str::from_utf8(raw)
            .map_err(|_| format!("line {n} is not UTF-8"))?
            .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("line {n} is not `user:hash` (no colon)"))?;
        if name.is_empty() {
            return Err(format!("line {n} has no user name before the colon"));
        }
        let hash = rest.split(':').next().unwrap_or_default();
        check_hash(hash).map_err(|why| format!("line {n} (user {name:?}): {why}"))?;
        if let Some(first) = lines_of.insert(name.to_string(), n) {
            return Err(format!(
                "line {n}: user {name:?} is already on line {first}"
            ));
        }
        users.push(User {
            name: name.to_string(),
            name_digest: sha256(name.as_bytes()),
            hash: hash.into(),
        });
    }
    Ok(users)
}

/// Accepts a bcrypt hash as `htpasswd -B` and other bcrypt tools write it. `$2x$` (the hashes
/// of the buggy pre-2011 crypt_blowfish) is refused: this bcrypt would not verify them the same.
fn check_hash(hash: &str) -> Result<(), String> {
    let prefix = hash.get(..4).unwrap_or(hash);
    if !matches!(prefix, "$2y$" | "$2b$" | "$2a$") {
        let scheme = match hash {
            h if h.starts_with("$apr1$") => "Apache MD5 ($apr1$, htpasswd -m)".to_string(),
            h if h.starts_with("{SHA}") => "SHA-1 ({SHA}, htpasswd -s)".to_string(),
            h if h.starts_with("$5$") => "SHA-256 crypt ($5$, htpasswd -2)".to_string(),
            h if h.starts_with("$6$") => "SHA-512 crypt ($6$, htpasswd -5)".to_string(),
            h if h.starts_with("$2x$") => "bcrypt $2x$ (old crypt_blowfish bug)".to_string(),
            "" => "an empty hash".to_string(),
            _ => "not a bcrypt hash".to_string(),
        };
        return Err(format!(
            "{scheme}; only bcrypt ($2y$, $2b$, $2a$) is accepted: write the file with `htpasswd -B`"
        ));
    }
    let parts: bcrypt::HashParts = hash
        .parse()
        .map_err(|e| format!("not a valid bcrypt hash: {e}"))?;
    let cost = parts.get_cost();
    if !COST_RANGE.contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is outside {}..={}",
            COST_RANGE.start(),
            COST_RANGE.end()
        ));
    }
    Ok(())
}

/// The cost most users' hashes have (the higher on a tie); `htpasswd -B`'s default, 5, for an
/// empty file.
fn most_common_cost(users: &[User]) -> u32 {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for u in users {
        if let Ok(p) = u.hash.parse::<bcrypt::HashParts>() {
            *counts.entry(p.get_cost()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(cost, n)| (*n, *cost))
        .map_or(5, |(cost, _)| cost)
}

/// A valid bcrypt hash of `cost` that no password is known for: the salt and digest of
/// `htpasswd -B -C 4` for a random password that was thrown away, the cost written in (the time
/// bcrypt takes depends on the cost alone, and the digest matches no password at another cost).
fn dummy_hash(cost: u32) -> String {
    format!("$2y${cost:02}$yVrwoourHVRkTi3COPLzGuDNqq9eYW1rOQ7xtu4GCcu8QFogEjmPS")
}

#[cfg(test)]
mod tests;
