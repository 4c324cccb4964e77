//! Route middlewares (`rate_limit`, …): what a route does to a request besides routing it.

pub mod rate_limit;
