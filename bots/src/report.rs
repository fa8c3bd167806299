//! What a run measured: the [`Report`], for people ([`Report::human`]) and as JSON.

use serde::Serialize;

use crate::stats::LatenessHistogram;

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub sessions: usize,
    pub players: usize,
    pub arrival: crate::Arrival,
    pub tick_ms: i64,
    /// The slowest pace of adaptive games (`maxTickMs`); absent for fixed-pace games.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tick_ms: Option<i64>,
    pub duration_s: f64,
    pub rtt_ms: u64,
    pub jitter_ms: u64,
    pub connected: u64,
    pub connect_failures: u64,
    /// Players the edge refused up front (503 `at_capacity`), never connected.
    pub refused: u64,
    /// Steps expected by players that were not kicked.
    pub expected_steps: u64,
    pub delivered_steps: u64,
    pub missing_steps: u64,
    pub duplicate_steps: u64,
    pub out_of_order_steps: u64,
    /// Players that received every expected step.
    pub complete_players: u64,
    pub kicks: u64,
    pub errors: u64,
    /// Lateness (receive − scheduledAt) of live ticks: those scheduled at or after their player
    /// sent its join. Earlier ones are history a server may replay on join.
    pub lateness_ms: Lateness,
    /// Ticks scheduled before their player sent its join (replayed history): delivered, and
    /// counted here rather than in `lateness_ms`.
    pub backlog_ticks: u64,
    /// Adaptive games: the pace their players ended at, and how many changes they were told of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pace: Option<PaceReached>,
    /// serverTimestamp − scheduledAt (ms resolution): lateness before the gateway wrote the tick.
    pub server_lateness_ms: Lateness,
    /// Frames received by all bots during the measured window.
    pub window_messages: u64,
    pub window_s: f64,
    pub bots_cpu_us_per_message: f64,
    /// How late the bots' own timers fired during the window: the instrument's own delay.
    pub bots_lag_ms: Option<Lateness>,
    /// The server's worst gateway lag, read from its `/metrics` twice a second.
    pub server_lag_ms: Option<Lateness>,
    /// RTT samples the server measured but did not judge because it lagged.
    pub samples_not_judged: u64,
    pub server: Option<ServerUsage>,
}

/// The pace adaptive games reached: each player's last pace (the one in force when it left).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaceReached {
    /// Players told of at least one change (`tick_rate`).
    pub players_slowed: u64,
    pub changes_told: u64,
    pub final_p50_ms: i64,
    pub final_max_ms: i64,
}

impl PaceReached {
    pub(crate) fn of(outcomes: &[crate::player::PlayerOutcome], fastest_ms: i64) -> Self {
        let mut last: Vec<i64> =
            outcomes.iter().filter(|o| o.connected).map(|o| o.pace_ms.unwrap_or(fastest_ms)).collect();
        last.sort_unstable();
        Self {
            players_slowed: outcomes.iter().filter(|o| o.pace_changes > 0).count() as u64,
            changes_told: outcomes.iter().map(|o| o.pace_changes).sum(),
            final_p50_ms: last.get(last.len() / 2).copied().unwrap_or(fastest_ms),
            final_max_ms: last.last().copied().unwrap_or(fastest_ms),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Lateness {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// Ticks received before their scheduled time (clock skew between machines).
    pub early: u64,
}

impl Lateness {
    pub(crate) fn of(h: &LatenessHistogram) -> Self {
        Self {
            p50: h.quantile_ms(0.5),
            p99: h.quantile_ms(0.99),
            p999: h.quantile_ms(0.999),
            max: h.max_ms(),
            early: h.early(),
        }
    }
}

/// The server process's cost, from `/proc`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerUsage {
    pub cpu_us_per_message: f64,
    pub cpu_percent: f64,
    pub rss_kib: u64,
    pub rss_baseline_kib: u64,
    pub rss_per_player_kib: f64,
}

impl Report {
    /// A summary for people.
    #[must_use]
    pub fn human(&self) -> String {
        let mut out = format!(
            "{} sessions × {} players = {} players, tick {} ms, measured {:.0} s each (added RTT {} ms ± {} ms)\n",
            self.sessions,
            self.players / self.sessions.max(1),
            self.players,
            self.tick_ms,
            self.duration_s,
            self.rtt_ms,
            self.jitter_ms
        );
        out += &format!(
            "connected {} / {} (refused as at capacity {}, connect failures {}), kicked {}, error frames {}\n",
            self.connected, self.players, self.refused, self.connect_failures, self.kicks, self.errors
        );
        out += &format!(
            "steps: expected {}, delivered {}, missing {}, duplicate {}, out of order {}; {} of {} players got every step\n",
            self.expected_steps,
            self.delivered_steps,
            self.missing_steps,
            self.duplicate_steps,
            self.out_of_order_steps,
            self.complete_players,
            self.players
        );
        out += &format!(
            "live-tick lateness (receive − scheduledAt): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} ticks of history replayed on join, not counted)\n",
            self.lateness_ms.p50,
            self.lateness_ms.p99,
            self.lateness_ms.p999,
            self.lateness_ms.max,
            self.backlog_ticks
        );
        if let Some(pace) = &self.pace {
            out += &format!(
                "adaptive pace ({}–{} ms): {} players told of {} changes; pace at the end p50 {} ms, max {} ms\n",
                self.tick_ms,
                self.max_tick_ms.unwrap_or(self.tick_ms),
                pace.players_slowed,
                pace.changes_told,
                pace.final_p50_ms,
                pace.final_max_ms
            );
        }
        out += &format!(
            "  of which before the gateway wrote it (serverTimestamp − scheduledAt): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n",
            self.server_lateness_ms.p50, self.server_lateness_ms.p99, self.server_lateness_ms.max
        );
        out += &format!(
            "bots: {:.2} µs CPU per message ({} messages in {:.1} s)\n",
            self.bots_cpu_us_per_message, self.window_messages, self.window_s
        );
        if let Some(lag) = &self.bots_lag_ms {
            out += &format!("bots' own lag (late timers): p99 {:.1} ms, max {:.1} ms\n", lag.p99, lag.max);
        }
        if let Some(lag) = &self.server_lag_ms {
            out += &format!(
                "server's gateway lag: p99 {:.1} ms, max {:.1} ms; {} RTT samples not judged while it lagged\n",
                lag.p99, lag.max, self.samples_not_judged
            );
        }
        if let Some(server) = &self.server {
            out += &format!(
                "server: {:.2} µs CPU per message ({:.0}% of a core), RSS {} KiB ({:.1} KiB per player over a {} KiB baseline)\n",
                server.cpu_us_per_message,
                server.cpu_percent,
                server.rss_kib,
                server.rss_per_player_kib,
                server.rss_baseline_kib
            );
        }
        out
    }
}
