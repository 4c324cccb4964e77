//! Unit tests of the rate limiter: bucket math, the local store, reload, URLs and headers.
