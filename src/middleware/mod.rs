//! Route middlewares: the cores of `basic_auth` (htpasswd bcrypt) and `forward_auth` (an
//! external auth server, Traefik's contract).

pub mod basic_auth;
pub mod forward_auth;
