//! Helpers shared by the unit tests: random input for the "never panics" loops of parsers.

use rand::Rng;

/// Fewer than `max` bytes, each drawn from `alphabet`.
pub(crate) fn random_bytes(rng: &mut impl Rng, alphabet: &[u8], max: usize) -> Vec<u8> {
    let n = rng.random_range(0..max);
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
        .collect()
}

/// [`random_bytes`] read as UTF-8, invalid sequences replaced: text as a header value, a host
/// or a path could arrive.
pub(crate) fn random_text(rng: &mut impl Rng, alphabet: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&random_bytes(rng, alphabet, max)).into_owned()
}
