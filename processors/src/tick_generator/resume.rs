//! Taking over running sessions: a session found running when its `game-events` partition is
//! read continues after the last step its tick topic holds (no earlier than where it moved to
//! its region, if it moved), once the partition's history is complete.

use std::collections::HashMap;

use tickcast_eventlog::StartFrom;
use tickcast_schemas::event::{Event, EventBody};

use super::{ENDED, TickGenerator};
use crate::Error;

impl TickGenerator {
    /// `partitions` are read up to where they ended when assigned: resume the running sessions
    /// that waited for it.
    pub(super) async fn caught_up_with(&mut self, partitions: &[u32]) -> Result<(), Error> {
        let mut resumed = Vec::new();
        for partition in partitions {
            self.caught_up.insert(*partition);
            resumed.extend(self.waiting.remove(partition).unwrap_or_default());
        }
        tracing::info!(?partitions, resumed = resumed.len(), "game-events caught up");
        if !resumed.is_empty() {
            self.resume_from_tick_topics(resumed).await?;
        }
        Ok(())
    }

    /// Continues sessions that were already running after the last step their tick topic holds.
    pub(super) async fn resume_from_tick_topics(&mut self, ids: Vec<String>) -> Result<(), Error> {
        let mut drained = Vec::new();
        let mut by_topic: HashMap<String, (i64, Vec<String>)> = HashMap::new();
        for id in ids {
            let Some(s) = self.sessions.get(&id) else {
                continue;
            };
            let entry = by_topic.entry(s.ticks_topic.clone()).or_insert((i64::MAX, Vec::new()));
            entry.0 = entry.0.min(s.schedule.created().start_at);
            entry.1.push(id);
        }
        for (topic, (since, ids)) in by_topic {
            let mut last_steps: HashMap<String, i64> = ids.iter().map(|id| (id.clone(), -1)).collect();
            let mut scan = self.log.scan(&topic, StartFrom::Timestamp(since)).await?;
            while let Some(batch) = scan.next_batch().await? {
                for record in &batch {
                    let Some(step) = last_steps.get_mut(&*record.key) else { continue };
                    match Event::from_bytes(&record.payload) {
                        Ok(Event { body: EventBody::Tick(tick), .. }) => *step = (*step).max(tick.step),
                        // Its end is in the tick topic: it is over, whatever game-events says yet.
                        Ok(Event { body: EventBody::SessionEnded(_), .. }) => *step = ENDED,
                        _ => {}
                    }
                }
            }
            for (id, last_step) in last_steps {
                if last_step == ENDED {
                    tracing::info!(session = %id, "not resuming a session whose end is logged");
                    self.sessions.remove(&id);
                    self.positions_moved();
                    continue;
                }
                let Some(active) = self.sessions.get_mut(&id) else {
                    continue;
                };
                let last_step = last_step.max(active.resume_floor);
                tracing::info!(session = %id, resume_at = last_step + 1, "resuming a running session");
                active.schedule.resume_at(last_step + 1);
                active.awaiting_resume = false;
                if self.regions.is_drained(&active.region) {
                    drained.push(id.clone());
                }
                self.push_deadline(&id);
            }
        }
        // Resumed in a region drained meanwhile: they move now.
        for id in drained {
            self.move_session(&id).await?;
        }
        Ok(())
    }
}
