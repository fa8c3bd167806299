//! Emitting what is due: each round pops the sessions whose deadline has come, asks their
//! schedules for the due countdowns, ticks and ends (and, for adaptive sessions, each round's
//! pace), and writes them in the order a crash needs (ticks, then the end or the pace change as
//! a fact, then its copy for players).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::time::Duration;

use tickcast_eventlog::{Durability, NewRecord};
use tickcast_schemas::event::{Countdown, EventBody, SessionEnded, Tick, TickRateChanged};
use tickcast_schemas::topics::GAME_EVENTS;

use super::{TickGenerator, event_record};
use crate::schedule::Emission;
use crate::{Error, metrics, now_ms};

/// Ticks of one session emitted per round, at most: a session far behind (after a hand-over)
/// catches up over several rounds, and between them the generator reads and can stop.
const TICKS_PER_ROUND: usize = 2;
/// A round of emissions that takes longer than this means the generator is behind.
const BEHIND_AFTER_MS: i64 = 1_000;

impl TickGenerator {
    /// Emits everything due at `now` and writes it.
    pub(super) async fn emit_due(&mut self, now: i64) -> Result<(), Error> {
        let mut ticks: HashMap<String, Vec<NewRecord>> = HashMap::new();
        let mut facts = Vec::new();
        // Copies of facts for the players, written after the facts: ends and pace changes.
        let mut copies: HashMap<String, Vec<NewRecord>> = HashMap::new();
        let mut emissions = Vec::new();
        let mut emitted = Vec::new();
        let emitted_at = now_ms();
        while let Some(Reverse((deadline, _))) = self.deadlines.peek() {
            if !deadline.is_due(now) {
                break;
            }
            let Reverse((deadline, id)) = self.deadlines.pop().expect("peeked");
            let Some(active) = self.sessions.get_mut(&id) else {
                continue;
            };
            if active.schedule.next_deadline() != Some(deadline) {
                continue; // stale entry; the current one is elsewhere in the heap
            }
            active.schedule.emit_due_at_most(now, TICKS_PER_ROUND, &mut emissions);
            let seed = active.schedule.created().seed;
            let mut newest_tick_late_ms = None;
            for emission in emissions.drain(..) {
                let body = match emission {
                    Emission::Countdown { remaining_ms } => EventBody::Countdown(Countdown { remaining_ms }),
                    Emission::RoundStarts { from_step } => {
                        let decision = active.pace.as_mut().and_then(|policy| policy.decide(now));
                        let Some(pace) = active.schedule.decide_pace(from_step, decision.map(|d| d.tick_ms))
                        else {
                            continue;
                        };
                        let decision = decision.expect("a change comes from a decision");
                        tracing::info!(session = %id, from_step, tick_ms = pace.tick_ms, reason = decision.reason.as_str(), "pace changed");
                        metrics::pace_changed(&active.region, decision.reason);
                        // A fact first (a restart recomputes the schedule from it), then its copy
                        // for players, before the round's first tick (a later emission round).
                        let changed = TickRateChanged {
                            from_step,
                            scheduled_at: pace.scheduled_at,
                            tick_ms: pace.tick_ms,
                            reason: decision.reason,
                            worst_rtt_ms: decision.worst_rtt_ms,
                        };
                        let record =
                            event_record(&self.source, &id, now, EventBody::TickRateChanged(changed));
                        facts.push(record.clone());
                        copies.entry(active.ticks_topic.clone()).or_default().push(record);
                        continue;
                    }
                    Emission::Tick { step, state, scheduled_at } => {
                        active.series.tick(emitted_at - scheduled_at);
                        newest_tick_late_ms = Some(emitted_at - scheduled_at);
                        if let Some(policy) = &mut active.pace {
                            policy.tick_emitted(emitted_at - scheduled_at);
                        }
                        EventBody::Tick(Tick {
                            step,
                            value: state.value,
                            round: state.round,
                            broken: state.broken,
                            scheduled_at,
                            emitted_at,
                        })
                    }
                    Emission::Ended { reason, last_step } => {
                        metrics::session_ended(reason);
                        EventBody::SessionEnded(SessionEnded { reason, last_step, seed })
                    }
                };
                let ended = matches!(body, EventBody::SessionEnded(_));
                let record = event_record(&self.source, &id, now, body);
                if ended {
                    facts.push(record.clone());
                    copies.entry(active.ticks_topic.clone()).or_default().push(record);
                } else {
                    ticks.entry(active.ticks_topic.clone()).or_default().push(record);
                }
            }
            // How late the newest step is, not the oldest: steps missed while no generator ran
            // (a restart catching up) say nothing about how loaded this process is now.
            if let (Some(late_ms), Some(saturation)) = (newest_tick_late_ms, &self.config.saturation) {
                saturation.lag.report(Duration::from_millis(late_ms.max(0) as u64), emitted_at * 1000);
            }
            if active.schedule.is_ended() {
                tracing::info!(session = %id, last_step = active.schedule.last_step(), "session ended");
                self.sessions.remove(&id);
                self.positions_moved();
            } else {
                emitted.push(id);
            }
        }
        // Their next deadlines go back only now: one still due (a session catching up) waits
        // for the next round instead of emitting again in this one.
        for id in &emitted {
            self.push_deadline(id);
        }
        // Order matters across a crash: the last ticks, then the end as a fact, then its copy for
        // players. A generator that restarts after the ticks but before the fact finds the last
        // round already broken and ends the session at once (see `SessionSchedule::resume_at`).
        for (topic, records) in ticks {
            self.log.append(&topic, records, Durability::Relaxed).await?;
        }
        metrics::sessions_active(self.sessions.len());
        if !facts.is_empty() {
            self.log.append(GAME_EVENTS, facts, Durability::Durable).await?;
        }
        for (topic, records) in copies {
            self.log.append(&topic, records, Durability::Relaxed).await?;
        }
        let behind = self.deadlines.peek().is_some_and(|Reverse((deadline, _))| deadline.is_due(now));
        if behind || now_ms() - emitted_at > BEHIND_AFTER_MS {
            self.steady_since = now_ms();
        }
        Ok(())
    }
}
