//! Whose delay is it: the bots' own event-loop lag (a load client on the same cores is part of
//! what it measures), and the server's reported lag (its gateways' `tickcast_gateway_lag_ms`,
//! read from `/metrics` at the edge), over the measured window.

use std::time::Duration;

use tokio::time::Instant;

use crate::stats::LatenessHistogram;

/// How often the bots' event loop is probed.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// How often the server's metrics are read.
const SCRAPE_EVERY: Duration = Duration::from_millis(500);

/// What the lag watch saw.
#[derive(Debug)]
pub(crate) struct LagSeen {
    /// How late the bots' own timers fired.
    pub(crate) bots: LatenessHistogram,
    /// The server's worst gateway lag per scrape; empty if it exports none.
    pub(crate) server: LatenessHistogram,
    pub(crate) server_scrapes: u64,
    /// RTT samples the server did not judge because it lagged, during the window.
    pub(crate) samples_not_judged: u64,
}

/// Watches both lags until `until` (monotonic).
pub(crate) async fn watch(http: reqwest::Client, edge: String, until: Instant) -> LagSeen {
    let url = format!("{edge}/metrics");
    let bots = LatenessHistogram::default();
    let server = LatenessHistogram::default();
    let mut server_scrapes = 0;
    let (mut first_not_judged, mut last_not_judged) = (None, 0.0);
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_scrape = Instant::now();
    while Instant::now() < until {
        let scheduled = probe.tick().await;
        bots.record(scheduled.elapsed().as_micros() as i64);
        if Instant::now() < next_scrape {
            continue;
        }
        next_scrape += SCRAPE_EVERY;
        let Ok(response) = http.get(&url).timeout(SCRAPE_EVERY).send().await else { continue };
        let Ok(text) = response.text().await else { continue };
        let (lag, not_judged) = parse(&text);
        if let Some(lag_ms) = lag {
            server.record((lag_ms * 1000.0) as i64);
            server_scrapes += 1;
        }
        first_not_judged.get_or_insert(not_judged);
        last_not_judged = not_judged;
    }
    let samples_not_judged = (last_not_judged - first_not_judged.unwrap_or(0.0)).max(0.0) as u64;
    LagSeen { bots, server, server_scrapes, samples_not_judged }
}

/// The worst `tickcast_gateway_lag_ms` of any region, and the not-judged samples so far.
fn parse(text: &str) -> (Option<f64>, f64) {
    let value = |line: &str| line.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok());
    let lag = text
        .lines()
        .filter(|l| l.starts_with("tickcast_gateway_lag_ms"))
        .filter_map(value)
        .fold(None, |worst: Option<f64>, v| Some(worst.map_or(v, |w| w.max(v))));
    let not_judged = text
        .lines()
        .filter(|l| l.starts_with("tickcast_gateway_latency_samples_not_judged_total"))
        .filter_map(value)
        .sum();
    (lag, not_judged)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_worst_region_and_the_not_judged_count() {
        let text = "# TYPE x gauge\ntickcast_gateway_lag_ms{region=\"a\"} 3.5\ntickcast_gateway_lag_ms{region=\"b\"} 71\n\
                    tickcast_gateway_latency_samples_not_judged_total 12\n";
        assert_eq!(super::parse(text), (Some(71.0), 12.0));
        assert_eq!(super::parse(""), (None, 0.0));
    }
}
