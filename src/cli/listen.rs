//! The flags of a process's listeners: `--listen`, `--admin-listen`, the header timeout, trusted
//! proxies and TLS, declared once for every command that serves HTTP.

use std::net::SocketAddr;

use clap::Args;

/// `--admin-listen` of the roles that serve no HTTP of their own (tick generator, archiver,
/// projector).
#[derive(Debug, Args)]
pub(crate) struct AdminListenArgs {
    /// Serve `/metrics`, `/healthz` and `/readyz` (200 once the role joined its consumer group,
    /// 503 before) on this address, e.g. 127.0.0.1:9091 [default: none].
    #[arg(long = "admin-listen", env = "TICKCAST_ADMIN_LISTEN", value_name = "ADDR")]
    pub(crate) admin_listen: Option<SocketAddr>,
}

/// `--listen`: where a process serves HTTP and WebSocket.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// Address for HTTP and WebSocket [default: 127.0.0.1:8080; a gateway 127.0.0.1:8081,
    /// replay serve 127.0.0.1:8090].
    #[arg(long = "listen", env = "TICKCAST_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Serve `/metrics` (and `/healthz`) on this address instead, e.g. 127.0.0.1:9090, so the
    /// public listener does not show it.
    #[arg(long, env = "TICKCAST_ADMIN_LISTEN", value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// How long a client has to send a request's headers (also how long a kept-alive
    /// connection may sit idle); 0 for no limit.
    #[arg(long, env = "TICKCAST_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    header_read_timeout: std::time::Duration,
    /// Proxies (addresses or CIDR blocks, comma-separated) whose X-Forwarded-For names the
    /// client; limits per client address key on it. Default: none, the peer is the client.
    #[arg(long, env = "TICKCAST_TRUSTED_PROXIES", default_value = "", value_parser = parse_trusted_proxies)]
    trusted_proxies: tickcast_http::client_addr::TrustedProxies,
    /// PEM certificate chain (leaf first): serve HTTPS and WSS on every listener of this
    /// process with it (needs --tls-key).
    #[arg(long, env = "TICKCAST_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TICKCAST_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

fn parse_trusted_proxies(list: &str) -> Result<tickcast_http::client_addr::TrustedProxies, String> {
    tickcast_http::client_addr::TrustedProxies::parse(list)
}

impl ListenArgs {
    /// The admin listener's address, if `/metrics` is moved there.
    pub(crate) const fn admin(&self) -> Option<SocketAddr> {
        self.admin_listen
    }

    pub(crate) fn http_config(&self) -> anyhow::Result<tickcast_http::HttpConfig> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(tickcast_http::tls::server_config(cert, key)?),
            _ => None,
        };
        Ok(tickcast_http::HttpConfig {
            header_read_timeout: Some(self.header_read_timeout).filter(|t| !t.is_zero()),
            trusted_proxies: self.trusted_proxies.clone(),
            tls,
        })
    }

    /// `https` with --tls-cert, else `http`: how this process's own addresses are printed.
    pub(crate) const fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() { "https" } else { "http" }
    }

    /// `wss` with --tls-cert, else `ws`.
    pub(crate) const fn ws_scheme(&self) -> &'static str {
        if self.tls_cert.is_some() { "wss" } else { "ws" }
    }

    /// The address asked for, or 127.0.0.1 with the command's default port.
    pub(crate) fn or_port(&self, default_port: u16) -> SocketAddr {
        self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }
}
