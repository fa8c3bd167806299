//! Moving running sessions out of a drained region. Every generator follows the regions'
//! states (`region_drained`, `region_restored`) on all of `game-events` — a drain is written
//! under the region's key, which lands in one partition, whoever owns the sessions — and moves
//! the sessions it owns in a drained region to the nearest active region of the table:
//!
//! 1. `session_migrated {fromRegion, toRegion, fromStep}` to `game-events`, durably: the fact
//!    the session's next owner (a hand-over, a restart) reads back, and the edges' and
//!    gateways' directories follow;
//! 2. its copy to the old region's tick topic, after the last tick written there: the old
//!    region's gateways tell their players in order, after every step they had;
//! 3. from `fromStep` on, its ticks, countdown and end go to the new region's tick topic.

use tickcast_eventlog::{Durability, Record};
use tickcast_schemas::event::{Event, EventBody, SessionMigrated};
use tickcast_schemas::topics::{self, GAME_EVENTS};

use super::TickGenerator;
use crate::{Error, metrics, now_ms};

impl TickGenerator {
    /// Records of the tail over all of `game-events` (from its start): its region events.
    pub(super) async fn regions_read(&mut self, records: Vec<Record>) -> Result<(), Error> {
        for record in records {
            if matches!(Event::peek_type(&record.payload), Some("region_drained" | "region_restored"))
                && let Ok(event) = Event::from_bytes(&record.payload)
            {
                self.region_event(&event.body).await?;
            }
        }
        Ok(())
    }

    /// A region event: folded into the regions' states; a drain moves this generator's sessions
    /// of the region.
    pub(super) async fn region_event(&mut self, body: &EventBody) -> Result<(), Error> {
        if self.regions.apply(body)
            && let EventBody::RegionDrained(drained) = body
        {
            self.move_out_of(&drained.region.clone()).await?;
        }
        Ok(())
    }

    /// Moves every running session of `region` this generator emits for (not one still
    /// waiting to learn where it got to: it moves once resumed).
    pub(super) async fn move_out_of(&mut self, region: &str) -> Result<(), Error> {
        let moving: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.region == region && !s.awaiting_resume && !s.schedule.is_ended())
            .map(|(id, _)| id.clone())
            .collect();
        for id in moving {
            self.move_session(&id).await?;
        }
        Ok(())
    }

    /// Moves one session to the nearest active region, if there is one.
    pub(super) async fn move_session(&mut self, id: &str) -> Result<(), Error> {
        let Some(active) = self.sessions.get(id) else { return Ok(()) };
        let from_region = active.region.clone();
        let regions = &self.regions;
        let Some(to_region) = tickcast_schemas::regions::nearest(&from_region, &self.config.regions, |r| {
            !regions.is_drained(r)
        })
        .map(str::to_owned) else {
            tracing::warn!(session = %id, region = %from_region, "no active region to move the session to");
            return Ok(());
        };
        let from_step = active.schedule.last_step() + 1;
        let moved =
            SessionMigrated { from_region: from_region.clone(), to_region: to_region.clone(), from_step };
        let record =
            super::event_record(&self.source, id, now_ms(), EventBody::SessionMigrated(moved.clone()));
        self.log.append(GAME_EVENTS, vec![record.clone()], Durability::Durable).await?;
        self.log.append(&topics::ticks(&from_region), vec![record], Durability::Relaxed).await?;
        self.migrated(id, &moved);
        tracing::info!(session = %id, from = %from_region, to = %to_region, from_step, "session moved");
        Ok(())
    }

    /// From now on the session's ticks go to its new region.
    pub(super) fn migrated(&mut self, id: &str, moved: &SessionMigrated) {
        let Some(active) = self.sessions.get_mut(id) else { return };
        active.region.clone_from(&moved.to_region);
        active.ticks_topic = topics::ticks(&moved.to_region);
        active.series = metrics::RegionSeries::new(&moved.to_region, &active.ticks_topic);
        // Where a resumed session starts at the least: steps before it are in the old topic.
        active.resume_floor = moved.from_step - 1;
    }
}
