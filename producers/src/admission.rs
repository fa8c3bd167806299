//! Admission control: new players are refused up front (503 `at_capacity` with `Retry-After`)
//! when the process cannot carry them, so the players already admitted keep their ticks on
//! time. Degrading everyone is the failure this prevents.
//!
//! Two signals, the first read before anything plays:
//! - **What was admitted.** Every ticket handed out for a game that has not ended counts — games
//!   still counting down included — as one player and as the ticks a second it will be sent
//!   (1000 / `tickMs`). A new player is refused when the players would pass `max_players`
//!   (`--max-players`), or their ticks a second the capacity the process learned from its own
//!   CPU per delivered tick ([`ProcessLoad::capacity_per_s`]). A burst of games is then refused
//!   at the door, before any of them plays and shows as lag. A game's players are released when
//!   its `session_ended` is read; a player who never connects counts until then.
//! - **What is measured.** In `tickcast up`, every gateway (how late its event loop's timers
//!   fire, how old its fan-out queues are) and the tick generator (how late it emits each
//!   session's newest step) report their lag. The process counts as saturated once lags over
//!   the gauge's threshold have lasted its `sustain` in a row (a lone spike — a page fault, a log
//!   checkpoint — is not saturation), and stays so until `hold` has passed without that. A
//!   process serving fewer than `min_players` is never saturated by its players: its lag has
//!   another cause (a debug build, a busy neighbour), and refusing games would not cure it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tickcast_schemas::load::ProcessLoad;

use crate::{ApiError, metrics};

/// How long after its start a process is not judged by its lag: starting (reading its log
/// back, the first connections, a browser opening beside it) lags without the process being
/// full.
pub const STARTUP_GRACE: Duration = Duration::from_secs(10);

/// What a player refused because the admitted players fill the process is told to wait: room
/// comes back as games end, which takes longer than a lag passing.
const FULL_RETRY_AFTER_S: u32 = 10;

/// How admission is configured.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// How long the process stays saturated after its last lag over the limit (also the
    /// `Retry-After` of a refusal by lag). `None`: the lag is not a signal.
    pub hold: Option<Duration>,
    /// Players the process must serve before its lag counts as saturation.
    pub min_players: u64,
    /// Players admitted at most, over all running and counting-down games; 0 for no limit.
    pub max_players: u64,
}

/// The edge's view of the process's load.
#[derive(Debug)]
pub struct Admission {
    load: Arc<ProcessLoad>,
    limits: AdmissionLimits,
    /// Epoch µs before which the lag refuses nothing (`STARTUP_GRACE` after creation).
    judged_from_us: i64,
    /// Whether the last check refused, so the log says when refusing starts and stops, once.
    refusing: AtomicBool,
    /// The players of the games that have not ended. Locked briefly per start and join (and per
    /// `session_ended`), never across an await.
    admitted: Mutex<Admitted>,
}

/// The players admitted to games that have not ended.
#[derive(Debug, Default)]
struct Admitted {
    sessions: HashMap<String, AdmittedSession>,
    players: u64,
    /// Σ 1000 / tickMs over the players, in thousandths of a tick a second (integers, so
    /// releasing a game takes away exactly what admitting it added).
    milliticks_per_s: u64,
}

#[derive(Debug)]
struct AdmittedSession {
    milliticks_per_s: u64,
    users: HashSet<String>,
}

/// What one player of a game with steps of `tick_ms` costs, in thousandths of a tick a second.
fn milliticks_per_s(tick_ms: i64) -> u64 {
    1_000_000 / tick_ms.max(1) as u64
}

impl Admission {
    /// An admission whose lag signal is judged from `STARTUP_GRACE` after `now_us` (epoch µs).
    #[must_use]
    pub fn new(load: Arc<ProcessLoad>, limits: AdmissionLimits, now_us: i64) -> Self {
        let judged_from_us = now_us + STARTUP_GRACE.as_micros() as i64;
        metrics::admitted(0, 0.0);
        Self {
            load,
            limits,
            judged_from_us,
            refusing: AtomicBool::new(false),
            admitted: Mutex::new(Admitted::default()),
        }
    }

    /// The refusal of any new game or player at `now_us` (epoch µs), while the process's lag
    /// says it is saturated.
    pub(crate) fn check(&self, now_us: i64) -> Result<(), ApiError> {
        let Some(hold) = self.limits.hold else { return Ok(()) };
        let since_us = (now_us - hold.as_micros() as i64).max(self.judged_from_us);
        let saturated = now_us >= self.judged_from_us
            && self.load.players() >= self.limits.min_players
            && self.load.lag.sustained_since(since_us);
        if self.refusing.swap(saturated, Ordering::Relaxed) != saturated {
            metrics::saturated(saturated);
            if saturated {
                tracing::warn!(
                    threshold_ms = self.load.lag.threshold().as_millis() as u64,
                    sustain_ms = self.load.lag.sustain().as_millis() as u64,
                    hold_s = hold.as_secs(),
                    "the process is saturated: new games and players are refused (503 at_capacity)"
                );
            } else {
                tracing::info!("the process has capacity again: new games and players are admitted");
            }
        }
        if !saturated {
            return Ok(());
        }
        let retry_after_s = hold.as_secs().clamp(1, u64::from(u32::MAX)) as u32;
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "at_capacity",
            format!(
                "this server is at capacity (its own lag stayed over {} ms for {} ms within the last {} s); the games already running keep their players; retry in {retry_after_s} s",
                self.load.lag.threshold().as_millis(),
                self.load.lag.sustain().as_millis(),
                hold.as_secs()
            ),
        )
        .retry_after(retry_after_s))
    }

    /// Admits `user_id` to `session_id` (steps of `tick_ms`), or refuses it because the
    /// admitted players fill the process. A player already admitted to that game is admitted
    /// again at no cost (a second ticket, a reconnect).
    pub(crate) fn admit_player(&self, session_id: &str, user_id: &str, tick_ms: i64) -> Result<(), ApiError> {
        let cost = milliticks_per_s(tick_ms);
        let mut admitted = self.admitted.lock().unwrap();
        if admitted.sessions.get(session_id).is_some_and(|s| s.users.contains(user_id)) {
            return Ok(());
        }
        // After a restart the tickets of running games are unknown, but their players
        // reconnect: whoever is connected counts too.
        let players = admitted.players.max(self.load.players());
        let max = self.limits.max_players;
        if max > 0 && players + 1 > max {
            return Err(full(format!(
                "this server admits at most {max} players (--max-players) and has admitted {players}; the games already running keep their players; retry in {FULL_RETRY_AFTER_S} s"
            )));
        }
        if let Some(capacity) = self.load.capacity_per_s()
            && admitted.milliticks_per_s + cost > capacity.saturating_mul(1000)
        {
            return Err(full(format!(
                "this server can deliver about {capacity} ticks a second on time (learned from its CPU per delivered tick) and its admitted players take {}; the games already running keep their players; retry in {FULL_RETRY_AFTER_S} s",
                admitted.milliticks_per_s / 1000
            )));
        }
        let session = admitted
            .sessions
            .entry(session_id.to_owned())
            .or_insert_with(|| AdmittedSession { milliticks_per_s: cost, users: HashSet::new() });
        session.users.insert(user_id.to_owned());
        let cost = session.milliticks_per_s;
        admitted.players += 1;
        admitted.milliticks_per_s += cost;
        metrics::admitted(admitted.players, admitted.milliticks_per_s as f64 / 1000.0);
        Ok(())
    }

    /// The game ended (or was never created): its players' places are free again.
    pub fn release(&self, session_id: &str) {
        let mut admitted = self.admitted.lock().unwrap();
        if let Some(session) = admitted.sessions.remove(session_id) {
            let players = session.users.len() as u64;
            admitted.players -= players;
            admitted.milliticks_per_s -= session.milliticks_per_s * players;
            metrics::admitted(admitted.players, admitted.milliticks_per_s as f64 / 1000.0);
        }
    }

    /// Players admitted to games that have not ended.
    #[must_use]
    pub fn admitted_players(&self) -> u64 {
        self.admitted.lock().unwrap().players
    }
}

fn full(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "at_capacity", message).retry_after(FULL_RETRY_AFTER_S)
}

#[cfg(test)]
mod tests {
    use tickcast_schemas::load::LagGauge;

    use super::*;

    fn limits(max_players: u64) -> AdmissionLimits {
        AdmissionLimits { hold: Some(Duration::from_secs(3)), min_players: 1, max_players }
    }

    #[test]
    fn a_saturated_process_refuses_until_the_hold_has_passed() {
        let load = Arc::new(ProcessLoad::new(LagGauge::sustained(
            Duration::from_millis(25),
            Duration::from_millis(100),
        )));
        let gauge = &load.lag;
        load.player_joined();
        let start = 1_000_000_000_000;
        let admission = Admission::new(Arc::clone(&load), limits(0), start);
        // A start's lag is not judged, now or later.
        gauge.report(Duration::from_millis(900), start + 1_000_000);
        assert!(admission.check(start + 1_000_000).is_ok(), "within the startup grace");
        assert!(
            admission.check(start + 10_000_000).is_ok(),
            "a lag from the startup grace is not held against it"
        );
        let t0 = start + 20_000_000;
        assert!(admission.check(t0).is_ok(), "never lagged");
        gauge.report(Duration::from_millis(10), t0);
        assert!(admission.check(t0).is_ok(), "under the threshold");
        gauge.report(Duration::from_millis(40), t0);
        assert!(admission.check(t0).is_ok(), "one spike is not saturation");
        gauge.report(Duration::from_millis(150), t0);
        let refused = admission.check(t0 + 1_000).unwrap_err();
        assert_eq!(
            (refused.status, refused.code, refused.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, "at_capacity", Some(3))
        );
        assert!(admission.check(t0 + 2_999_999).is_err(), "still within the hold");
        assert!(admission.check(t0 + 3_000_001).is_ok(), "the hold has passed without another lag");
        // With no players, a lag is not the players' load.
        gauge.report(Duration::from_millis(150), t0 + 4_000_000);
        assert!(admission.check(t0 + 4_000_001).is_err());
        load.player_left();
        assert!(admission.check(t0 + 4_000_002).is_ok(), "nobody to protect, nobody refused");
    }

    #[test]
    fn players_past_the_limit_are_refused_until_a_game_ends() {
        let load = Arc::new(ProcessLoad::new(LagGauge::new(Duration::from_millis(5))));
        let admission = Admission::new(Arc::clone(&load), limits(3), 0);
        admission.admit_player("g1", "a", 100).unwrap();
        admission.admit_player("g1", "b", 100).unwrap();
        admission.admit_player("g1", "a", 100).expect("a second ticket of an admitted player is free");
        admission.admit_player("g2", "c", 100).unwrap();
        let refused = admission.admit_player("g2", "d", 100).unwrap_err();
        assert_eq!(
            (refused.status, refused.code, refused.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, "at_capacity", Some(FULL_RETRY_AFTER_S))
        );
        assert!(refused.message.contains("--max-players"), "{}", refused.message);
        assert!(admission.admit_player("g3", "e", 100).is_err(), "a new game too");
        admission.release("g1");
        assert_eq!(admission.admitted_players(), 1);
        admission.admit_player("g2", "d", 100).unwrap();
        admission.admit_player("g3", "e", 100).unwrap();
        // Connected players count even when their tickets are not known (after a restart).
        admission.release("g2");
        admission.release("g3");
        for _ in 0..3 {
            load.player_joined();
        }
        assert!(admission.admit_player("g4", "f", 100).is_err());
    }

    #[test]
    fn the_learned_capacity_bounds_the_ticks_admitted_a_second() {
        let load = Arc::new(ProcessLoad::new(LagGauge::new(Duration::from_millis(5))));
        let admission = Admission::new(Arc::clone(&load), limits(0), 0);
        for i in 0..100 {
            admission.admit_player("g1", &format!("p{i}"), 10).unwrap();
        }
        assert_eq!(admission.admitted_players(), 100, "nothing learned yet: no bound but the limit");
        load.set_capacity_per_s(10_051); // 100 players at 100 Hz take 10,000
        for i in 0..5 {
            admission.admit_player("g2", &format!("p{i}"), 100).unwrap();
        }
        let refused = admission.admit_player("g2", "p5", 100).unwrap_err();
        assert!(refused.message.contains("10051 ticks a second"), "{}", refused.message);
        admission.admit_player("g3", "slow", 1000).expect("a game of 1 Hz still fits");
        admission.release("g1");
        admission.admit_player("g2", "p5", 100).unwrap();
    }
}
