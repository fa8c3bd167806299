//! What adaptive sessions' pace policies read from `game-events`: their pace changes (this
//! generator's own, read back, or an earlier owner's after a restart or a hand-over), their
//! players' RTT samples and kicks. Fixed-pace sessions never get here: their samples are not
//! even decoded.

use tickcast_schemas::event::{EventBody, RttSample};

use super::TickGenerator;

impl TickGenerator {
    /// Applies one of `session_id`'s events that its pace depends on, logged at `at`.
    pub(super) fn pace_input(&mut self, session_id: &str, at: i64, body: EventBody) {
        let Some(session) = self.sessions.get_mut(session_id) else { return };
        match body {
            EventBody::TickRateChanged(changed) => {
                session.schedule.record_pace(changed.pace());
                if let Some(policy) = &mut session.pace
                    && session.schedule.paces().latest().from_step == changed.from_step
                {
                    // The latest logged is the one in force.
                    policy.recorded(changed.tick_ms, changed.reason, at);
                }
                // Read while resuming, it may move the next deadline.
                self.push_deadline(session_id);
            }
            EventBody::LatencySamples(batch) => {
                if let Some(policy) = &mut session.pace {
                    batch.samples.iter().for_each(|sample| policy.sampled(sample));
                }
            }
            EventBody::LatencySampled(one) => {
                if let Some(policy) = &mut session.pace {
                    policy.sampled(&RttSample { connection_id: one.connection_id, rtt_ms: one.rtt_ms, at });
                }
            }
            EventBody::PlayerKicked(kicked) => {
                if let Some(policy) = &mut session.pace {
                    policy.left(&kicked.connection_id, at);
                }
            }
            _ => {}
        }
    }
}
