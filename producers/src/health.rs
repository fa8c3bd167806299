//! Region health at the edge: each gateway instance of each region answers `/readyz`, polled
//! every [`POLL_EVERY`]; an instance that does not answer 200 gets no new games (the router
//! places them on the region's other ready instances), and a region with none gets no new
//! games (the router sends them to the nearest ready region) until one answers again.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Edge, Error};

/// How often each gateway is asked.
const POLL_EVERY: Duration = Duration::from_secs(2);
/// How long an answer may take before the gateway counts as not ready.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// Where a gateway at `ws_endpoint` (`ws://host:port/ws/region`) answers `/readyz`; `None` for
/// `wss://` (this build's HTTP client speaks no TLS: such regions are taken as ready) and for
/// what is not a URL.
fn readyz_of(ws_endpoint: &str) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(ws_endpoint).ok()?;
    if url.scheme() != "ws" {
        return None;
    }
    url.set_scheme("http").ok()?;
    url.set_path("/readyz");
    url.set_query(None);
    Some(url)
}

impl Edge {
    /// Polls every region's gateway until `shutdown`, marking regions ready or not.
    pub async fn watch_gateways(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), Error> {
        // Every gateway instance of every region: (region, instance, its /readyz).
        let targets: Vec<(String, String, reqwest::Url)> = {
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
        let http = reqwest::Client::builder()
            .timeout(ANSWER_WITHIN)
            .build()
            .map_err(|e| Error::Health(e.to_string()))?;
        let mut every = tokio::time::interval(POLL_EVERY);
        while shutdown.run_until_cancelled(every.tick()).await.is_some() {
            let answers = futures_util::future::join_all(targets.iter().map(|(region, instance, url)| {
                let http = http.clone();
                async move {
                    let ready = http.get(url.clone()).send().await.is_ok_and(|r| r.status().is_success());
                    (region, instance, ready)
                }
            }))
            .await;
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_s_readiness_is_asked_where_its_websocket_is() {
        assert_eq!(
            readyz_of("ws://10.0.0.5:8081/ws/eu-west-1").unwrap().as_str(),
            "http://10.0.0.5:8081/readyz"
        );
        assert!(readyz_of("wss://eu.example.com/ws/eu-west-1").is_none());
        assert!(readyz_of("").is_none());
    }
}
