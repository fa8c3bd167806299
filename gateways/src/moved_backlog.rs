//! The steps of a moved session that this gateway never held: a player resuming in the
//! session's new region from before the move gets them from the tick topics of the regions it
//! left, read from the log, then what this gateway holds.

use std::collections::BTreeMap;

use tickcast_eventlog::StartFrom;
use tickcast_schemas::event::{Event, EventBody};
use tickcast_schemas::sessions::SessionInfo;
use tickcast_schemas::topics;

use crate::hub::HeldTick;
use crate::{Gateway, now_ms};

/// How long before a session's start its first tick record may be stamped (clocks of writers).
const START_MARGIN_MS: i64 = 60_000;

impl Gateway {
    /// The steps after `after` and before the session moved here, from the regions it left, in
    /// step order. A read that fails leaves them out, and says so in the log: the player's
    /// check at the end then shows the hole.
    pub(crate) async fn steps_before_the_move(&self, session: &SessionInfo, after: i64) -> Vec<HeldTick> {
        let Some(moved_at) = session.moved_at_step() else { return Vec::new() };
        if after + 1 >= moved_at {
            return Vec::new();
        }
        let mut found: BTreeMap<i64, HeldTick> = BTreeMap::new();
        let now = now_ms();
        for (region, _) in &session.moved_from {
            let topic = topics::ticks(region);
            let read = async {
                let mut scan =
                    self.log.scan(&topic, StartFrom::Timestamp(session.start_at - START_MARGIN_MS)).await?;
                while let Some(batch) = scan.next_batch().await? {
                    for record in batch.iter().filter(|r| *r.key == *session.session_id) {
                        if let Ok(Event { body: EventBody::Tick(t), .. }) = Event::from_bytes(&record.payload)
                            && t.step > after
                            && t.step < moved_at
                        {
                            found.entry(t.step).or_insert(HeldTick::of(&t, now));
                        }
                    }
                }
                Ok::<(), tickcast_eventlog::Error>(())
            };
            if let Err(error) = read.await {
                tracing::warn!(%error, session = %session.session_id, %topic, "cannot read the steps before the session moved here");
            }
        }
        found.into_values().collect()
    }
}
