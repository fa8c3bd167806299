//! The HTTP/1.1 server every tickcast process uses (the edge, the gateways, the admin
//! listeners, `replay serve`), in plain text or TLS, and who a request comes from.
//!
//! It owns how connections are accepted and timed out, the TLS configuration and sessions, and
//! the client address behind trusted proxies. It must not know any route: each process mounts
//! its own `Router`, and the gateway takes upgraded sockets over from here.
//!
//! # Layout
//! - [`server`]: the server; upgraded connections are handed over as the `TcpStream`s they are.
//! - [`tls`]: rustls configuration from PEM files, and a TLS session driven over a raw socket.
//! - [`client_addr`]: the peer, or the first untrusted `X-Forwarded-For` hop behind a trusted
//!   proxy.

pub mod client_addr;
pub mod server;
pub mod tls;

pub use server::{HttpConfig, serve};
