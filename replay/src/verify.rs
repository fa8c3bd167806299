//! Verification: every logged tick recomputed with the engine from its session's
//! `session_created`, and its `scheduledAt` from the paced schedule (the start's pace and each
//! `tick_rate_changed`, itself checked: at a round's start, within the session's bounds, one step
//! of its pace after the step before); the revealed seed against its `seedHash`; no step missing
//! or doubled.

use std::collections::BTreeMap;

use serde::Serialize;
use tickcast_engine::{seed_hash, state_at};
use tickcast_schemas::event::{EventBody, SessionCreated};
use tickcast_schemas::pace::PaceSchedule;

use crate::{Logged, Position};

/// Something wrong in the log, at the event that shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub session_id: String,
    /// The event that shows the problem (for a missing step: the first event after the gap).
    pub at: String,
    pub step: Option<i64>,
    pub what: String,
    #[serde(skip)]
    position: Option<Position>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} session {}", self.at, self.session_id)?;
        if let Some(step) = self.step {
            write!(f, " step {step}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// What verifying one session found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCheck {
    pub ticks: u64,
    pub ended: bool,
    pub problems: Vec<Problem>,
}

fn problem(session_id: &str, position: Option<&Position>, step: Option<i64>, what: String) -> Problem {
    Problem {
        session_id: session_id.to_owned(),
        at: position.map_or_else(|| "end of log".to_owned(), ToString::to_string),
        step,
        what,
        position: position.cloned(),
    }
}

/// The session's paced schedule from its `tick_rate_changed` events (each logged twice: the
/// fact and its copy for players), each change checked against the schedule before it.
fn paced_schedule(
    session_id: &str,
    created: &SessionCreated,
    events: &[Logged],
    problems: &mut Vec<Problem>,
) -> PaceSchedule {
    let params = created.engine_params();
    let mut changes: Vec<(&Logged, &tickcast_schemas::event::TickRateChanged)> = events
        .iter()
        .filter_map(|l| match &l.event.body {
            EventBody::TickRateChanged(c) => Some((l, c)),
            _ => None,
        })
        .collect();
    changes.sort_by_key(|(_, c)| c.from_step);
    let mut paces = PaceSchedule::new(created.start_at, created.tick_ms);
    for (logged, change) in changes {
        let at = Some(&logged.position);
        let step = Some(change.from_step);
        if let Some(known) = paces.paces().iter().find(|p| p.from_step == change.from_step) {
            if *known != change.pace() {
                problems.push(problem(session_id, at, step, "two different pace changes at one step".into()));
            }
            continue;
        }
        let mut wrong = Vec::new();
        if change.from_step <= 0 || !state_at(&params, change.from_step - 1).broken {
            wrong.push("is not at a round's start".to_owned());
        }
        if change.tick_ms < created.tick_ms || change.tick_ms > created.slowest_tick_ms() {
            wrong.push(format!(
                "tickMs {} is outside the session's {}–{} ms",
                change.tick_ms,
                created.tick_ms,
                created.slowest_tick_ms()
            ));
        }
        let due = paces.pace_from(change.from_step, change.tick_ms).scheduled_at;
        if change.scheduled_at != due {
            wrong.push(format!(
                "scheduledAt {} but one step of its pace after the step before is {due}",
                change.scheduled_at
            ));
        }
        if !wrong.is_empty() {
            problems.push(problem(session_id, at, step, format!("pace change {}", wrong.join("; "))));
        }
        paces.record(change.pace());
    }
    paces
}

/// Verifies one session's events (in log order). Problems come in the order of the events
/// that show them.
#[must_use]
pub fn verify_session(session_id: &str, events: &[Logged]) -> SessionCheck {
    let mut check = SessionCheck::default();
    let Some(created) = crate::session_created(events) else {
        let first = events.first().map(|l| &l.position);
        check.problems.push(problem(
            session_id,
            first,
            None,
            "events for a session with no session_created".into(),
        ));
        return check;
    };
    let params = created.engine_params();
    let paces = paced_schedule(session_id, created, events, &mut check.problems);
    // step → where it was logged, to find doubles and gaps.
    let mut steps: BTreeMap<i64, Position> = BTreeMap::new();
    let mut last_step = None;
    for logged in events {
        let at = Some(&logged.position);
        match &logged.event.body {
            EventBody::Tick(tick) => {
                check.ticks += 1;
                let want = state_at(&params, tick.step);
                let got = (tick.value, tick.round, tick.broken);
                if got != (want.value, want.round, want.broken) {
                    check.problems.push(problem(
                        session_id,
                        at,
                        Some(tick.step),
                        format!(
                            "logged value {} round {} broken {}, the engine says value {} round {} broken {}",
                            got.0, got.1, got.2, want.value, want.round, want.broken
                        ),
                    ));
                }
                let due = paces.scheduled_at(tick.step);
                if tick.scheduled_at != due {
                    let pace = paces.in_force_at(tick.step);
                    check.problems.push(problem(
                        session_id,
                        at,
                        Some(tick.step),
                        format!(
                            "scheduledAt {} but the paced schedule says {due} (the pace of {} ms from step {} at {})",
                            tick.scheduled_at, pace.tick_ms, pace.from_step, pace.scheduled_at
                        ),
                    ));
                }
                if let Some(first) = steps.get(&tick.step) {
                    check.problems.push(problem(
                        session_id,
                        at,
                        Some(tick.step),
                        format!("step doubled (first at {first})"),
                    ));
                } else {
                    steps.insert(tick.step, logged.position.clone());
                }
            }
            EventBody::SessionEnded(ended) => {
                check.ended = true;
                last_step = Some(ended.last_step);
                if seed_hash(ended.seed) != created.seed_hash {
                    check.problems.push(problem(
                        session_id,
                        at,
                        None,
                        format!(
                            "revealed seed {} does not hash to the seedHash {}",
                            ended.seed, created.seed_hash
                        ),
                    ));
                }
                if ended.seed != created.seed {
                    check.problems.push(problem(
                        session_id,
                        at,
                        None,
                        "revealed seed differs from the session's seed".into(),
                    ));
                }
            }
            _ => {}
        }
    }
    // Every step from 0 to the last must be there: the end's lastStep, or for a running
    // session the newest step logged.
    let end = last_step.or_else(|| steps.keys().next_back().copied()).unwrap_or(-1);
    let mut expected = 0;
    for (&step, position) in steps.range(..=end) {
        if step > expected {
            let what = if step == expected + 1 {
                format!("step {expected} missing")
            } else {
                format!("steps {expected} to {} missing", step - 1)
            };
            check.problems.push(problem(session_id, Some(position), Some(expected), what));
        }
        expected = step + 1;
    }
    if expected <= end {
        let end_at = events
            .iter()
            .rev()
            .find(|l| matches!(l.event.body, EventBody::SessionEnded(_)))
            .map(|l| &l.position);
        check.problems.push(problem(
            session_id,
            end_at,
            Some(expected),
            format!("steps {expected} to {end} missing"),
        ));
    }
    check.problems.sort_by(|a, b| a.position.cmp(&b.position));
    check
}
