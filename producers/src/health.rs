//! Region health at the edge: each gateway instance of each region answers `/readyz`, polled
//! every [`POLL_EVERY`]; an instance that does not answer 200 gets no new games (the router
//! places them on the region's other ready instances), and a region with none gets no new
//! games (the router sends them to the nearest ready region) until one answers again.
//!
//! A region with no ready gateway for `region_failover_after` (10 s by default) is drained with
//! reason `unhealthy` (`region_drained`, in the log: its running games move to another region),
//! and restored once one of its gateways is ready again. A region an operator drained stays
//! drained whatever its health.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickcast_schemas::event::DrainReason;

use tokio_util::sync::CancellationToken;

use crate::{Edge, Error};

/// How often each gateway is asked.
const POLL_EVERY: Duration = Duration::from_secs(2);
/// How long an answer may take before the gateway counts as not ready.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// Where a gateway at `ws_endpoint` (`ws://host:port/ws/region`, or `wss://`) answers `/readyz`:
/// its host, port and whether over TLS; `None` for what is not a WebSocket URL (the empty
/// endpoint of `tickcast up`'s own gateways).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Readyz {
    host: String,
    port: u16,
    tls: bool,
}

fn readyz_of(ws_endpoint: &str) -> Option<Readyz> {
    let uri: http::Uri = ws_endpoint.parse().ok()?;
    let tls = match uri.scheme_str()? {
        "ws" => false,
        "wss" => true,
        _ => return None,
    };
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_owned();
    Some(Readyz { port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }), host, tls })
}

/// Whether the gateway answers `GET /readyz` with 200 within [`ANSWER_WITHIN`].
async fn answers_ready(target: &Readyz, tls: &tokio_rustls::TlsConnector) -> bool {
    tokio::time::timeout(ANSWER_WITHIN, ask(target, tls)).await.is_ok_and(|status| status == Some(200))
}

async fn ask(target: &Readyz, tls: &tokio_rustls::TlsConnector) -> Option<u16> {
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await.ok()?;
    let authority = format!("{}:{}", target.host, target.port);
    if target.tls {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone()).ok()?;
        let stream = tls.connect(name, tcp).await.ok()?;
        get_readyz(hyper_util::rt::TokioIo::new(stream), &authority).await
    } else {
        get_readyz(hyper_util::rt::TokioIo::new(tcp), &authority).await
    }
}

/// One `GET /readyz` on a fresh HTTP/1.1 connection; its status.
async fn get_readyz<S>(io: S, authority: &str) -> Option<u16>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, String>(io).await.ok()?;
    // Drives the connection; it ends with the answer (the sender is dropped after it).
    tokio::spawn(connection);
    let request = http::Request::get("/readyz")
        .header(http::header::HOST, authority)
        .header(http::header::CONNECTION, "close")
        .body(String::new())
        .ok()?;
    Some(sender.send_request(request).await.ok()?.status().as_u16())
}

impl Edge {
    /// TLS for `wss://` gateways' `/readyz`: the system's root certificates, and those of
    /// `gateway_ca` (PEM) when given (a private CA, a self-signed gateway).
    fn gateway_tls(&self) -> Result<rustls::ClientConfig, Error> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped: a private CA may be all that is needed.
        let system = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(system.certs);
        if let Some(path) = &self.config.gateway_ca {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| Error::Health(format!("cannot read --gateway-ca {}: {e}", path.display())))?;
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| Error::Health(format!("--gateway-ca {}: {e}", path.display())))?;
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Health(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }

    /// Polls every region's gateway until `shutdown`, marking regions ready or not.
    pub async fn watch_gateways(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), Error> {
        // Every gateway instance of every region: (region, instance, where its /readyz is).
        let targets: Vec<(String, String, Readyz)> = {
            let router = self.router.read().unwrap();
            router
                .instances()
                .filter_map(|(region, instance)| {
                    readyz_of(instance).map(|url| (region.to_owned(), instance.to_owned(), url))
                })
                .collect()
        };
        if targets.is_empty() {
            return Ok(());
        }
        let tls = tokio_rustls::TlsConnector::from(Arc::new(self.gateway_tls()?));
        let mut regions: Vec<String> = targets.iter().map(|(region, _, _)| region.clone()).collect();
        regions.dedup();
        // Since when each region has had no ready gateway.
        let mut unready_since: HashMap<String, Instant> = HashMap::new();
        let mut every = tokio::time::interval(POLL_EVERY);
        while shutdown.run_until_cancelled(every.tick()).await.is_some() {
            let answers = futures_util::future::join_all(targets.iter().map(|(region, instance, target)| {
                let tls = &tls;
                async move { (region, instance, answers_ready(target, tls).await) }
            }))
            .await;
            self.mark_ready(answers);
            for region in &regions {
                self.fail_over(region, &mut unready_since).await;
            }
        }
        Ok(())
    }

    /// Marks each gateway instance ready or not, as it answered; says when a region's health
    /// changes.
    fn mark_ready(&self, answers: Vec<(&String, &String, bool)>) {
        let mut router = self.router.write().unwrap();
        for (region, instance, ready) in answers {
            let was = router.is_healthy(region);
            router.set_ready(region, instance, ready);
            match (was, router.is_healthy(region)) {
                (false, true) => {
                    tracing::info!(region, "the region has a ready gateway again: new games go there");
                }
                (true, false) => tracing::warn!(
                    region,
                    "the region has no ready gateway: new games go to the nearest ready region"
                ),
                _ => {}
            }
        }
    }

    /// Drains `region` once it has had no ready gateway for the failover time; restores it
    /// once it has one again, if that is why it was drained. A failed write is tried again at
    /// the next poll.
    async fn fail_over(&self, region: &str, unready_since: &mut HashMap<String, Instant>) {
        let (healthy, drained) = {
            let router = self.router.read().unwrap();
            (router.is_healthy(region), router.drained(region))
        };
        if healthy {
            unready_since.remove(region);
            if drained == Some(DrainReason::Unhealthy) && self.restore_region(region).await.is_ok() {
                tracing::info!(region, "the region is restored: its gateways are ready again");
            }
            return;
        }
        let since = *unready_since.entry(region.to_owned()).or_insert_with(Instant::now);
        if drained.is_none() && since.elapsed() >= self.config.region_failover_after {
            match self.drain_region(region, DrainReason::Unhealthy).await {
                Ok(_) => tracing::warn!(
                    region,
                    "the region has had no ready gateway for the failover time: drained, its games move"
                ),
                // The last active region stays, unhealthy or not: said once, when it went down.
                Err(refused) if refused.code == "last_region" => {}
                Err(refused) => {
                    tracing::warn!(region, reason = %refused.message, "cannot drain the unhealthy region")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_s_readiness_is_asked_where_its_websocket_is() {
        assert_eq!(
            readyz_of("ws://10.0.0.5:8081/ws/eu-west-1"),
            Some(Readyz { host: "10.0.0.5".into(), port: 8081, tls: false })
        );
        assert_eq!(
            readyz_of("wss://eu.example.com/ws/eu-west-1"),
            Some(Readyz { host: "eu.example.com".into(), port: 443, tls: true })
        );
        assert!(readyz_of("").is_none());
    }
}
