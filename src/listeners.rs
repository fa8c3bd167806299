//! The listeners of a command: its main HTTP(S) listener, the admin listener (`/metrics`,
//! `/healthz`, `/readyz`) when it has one of its own, and the one Prometheus recorder behind
//! `/metrics`. Each serves until the command's shutdown, as one of its roles.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tickcast_http::HttpConfig;
use tokio_util::sync::CancellationToken;

use crate::cli::ListenArgs;
use crate::shutdown::Roles;

/// Bucket bounds of every histogram in milliseconds (the `_ms` series: tick lateness, gateway
/// lag), so dashboards and alerts can take any quantile over any set of processes: from 1 ms, a
/// tick's fair share, to 10 s, a hand-over.
const MS_BUCKETS: [f64; 14] =
    [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0, 30_000.0];

/// Installs the process's Prometheus recorder (histograms of `_ms` series with [`MS_BUCKETS`])
/// and folds its histograms every 5 s until `shutdown`; `None` if a recorder was installed first.
pub(crate) fn install_metrics(shutdown: &CancellationToken) -> Option<PrometheusHandle> {
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_ms".into()), &MS_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .ok();
    if let Some(handle) = prometheus.clone() {
        // Histograms accumulate samples until upkeep folds them into their summaries.
        let token = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            while token.run_until_cancelled(every.tick()).await.is_some() {
                handle.run_upkeep();
            }
        });
    }
    prometheus
}

impl Roles {
    /// Serves `/metrics`, `/healthz` and `/readyz` on `admin` (plain HTTP) until shutdown: the
    /// one listener of a role that serves nothing else (tick generator, archiver, projector).
    pub(crate) async fn serve_admin(&mut self, admin: SocketAddr) -> anyhow::Result<SocketAddr> {
        let config = tickcast_http::HttpConfig {
            header_read_timeout: Some(Duration::from_secs(10)),
            trusted_proxies: tickcast_http::client_addr::TrustedProxies::default(),
            tls: None,
        };
        self.spawn_admin(admin, config, "http").await
    }

    /// What renders `/metrics` on the main listener: nothing when `listen` moves it to an admin
    /// listener of its own.
    pub(crate) fn metrics_on(&self, listen: &ListenArgs) -> Option<PrometheusHandle> {
        if listen.admin().is_some() { None } else { self.prometheus.clone() }
    }

    /// Binds `addr` and serves `app` until shutdown; returns the bound address.
    pub(crate) async fn serve(
        &mut self,
        listen: &ListenArgs,
        default_port: u16,
        app: Router,
    ) -> anyhow::Result<SocketAddr> {
        let addr = listen.or_port(default_port);
        let config = listen.http_config()?;
        if let Some(admin) = listen.admin() {
            self.spawn_admin(admin, config.clone(), listen.scheme()).await?;
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}; pick another with --listen"))?;
        let bound = listener.local_addr()?;
        let token = self.shutdown.clone();
        self.tasks.spawn(async move {
            tickcast_http::serve(listener, app, config, token).await.context("HTTP server failed")
        });
        Ok(bound)
    }

    /// Binds `admin` and serves `/metrics`, `/healthz` and `/readyz` there until shutdown.
    async fn spawn_admin(
        &mut self,
        admin: SocketAddr,
        config: HttpConfig,
        scheme: &str,
    ) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(admin)
            .await
            .with_context(|| format!("cannot listen on {admin}; pick another with --admin-listen"))?;
        let bound = listener.local_addr()?;
        crate::roles::announce(&format!("admin (/metrics, /healthz, /readyz) on {scheme}://{bound}"));
        let app = crate::routes::admin_routes(self.prometheus.clone(), self.readiness());
        let token = self.shutdown.clone();
        self.tasks.spawn(async move {
            tickcast_http::serve(listener, app, config, token).await.context("admin HTTP server failed")
        });
        Ok(bound)
    }
}
