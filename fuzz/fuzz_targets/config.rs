//! Config loading from arbitrary text: `config::load_str` must return (a `Config` or a
//! `ConfigError`), never panic, within libFuzzer's `-timeout` and `-rss_limit_mb`.
//!
//! Input: the YAML text (non-UTF-8 inputs are skipped: `load` reads the file as a `String`).
//! No environment overrides. Host names in `backends` are resolved at load time, so `run.sh`
//! runs this target in a network namespace of its own (`unshare -n`): lookups fail at once
//! instead of reaching a resolver.
//!
//! Invariants: an error names the file, and its message is not empty; a config that loads,
//! loads again from the same text (loading is deterministic, nothing is consumed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use tracegate::config::load_str;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: HashMap<&str, &str> = HashMap::new();
    match load_str(text, "fuzz.yaml", &env) {
        Ok(_) => {
            assert!(
                load_str(text, "fuzz.yaml", &env).is_ok(),
                "a config that loaded once was refused the second time"
            );
        }
        Err(e) => {
            assert_eq!(e.file, "fuzz.yaml");
            assert!(!e.reason.is_empty(), "an error without a reason: {e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
});
