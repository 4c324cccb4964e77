//! The request path normaliser (`routing::path::normalize`, default policy).
//!
//! Input: the path (non-UTF-8 inputs are skipped: the normaliser takes a `&str`).
//!
//! Invariants: it never panics; a normalised path is a fixed point (normalising it again
//! gives it back) and holds no `/./`, `/../` or `//`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracegate::routing::path::{normalize, PathPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let policy = PathPolicy::default();
    let Ok(out) = normalize(path, &policy) else {
        return;
    };
    for bad in ["/./", "/../", "//"] {
        assert!(
            !out.contains(bad),
            "{path:?} normalised to {out:?}, which holds {bad:?}"
        );
    }
    match normalize(&out, &policy) {
        Ok(again) => assert_eq!(again, out, "{path:?} -> {out:?} is not a fixed point"),
        Err(e) => panic!("{path:?} -> {out:?}, which is then refused: {e:?}"),
    }
});
