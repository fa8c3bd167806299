//! The events that move games between regions (docs/operations.md, "Draining a region"): a
//! region drained by an operator or found unhealthy, a region restored, and a running session
//! moved. A region's events carry no session: their envelope's `sessionId` is empty and their
//! record's key is [`region_key`], so one region's drains and restores keep their order.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::EventBody;

/// Why a region was drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainReason {
    /// `POST /admin/regions/{region}/drain` or `tickcast regions drain`.
    Operator,
    /// No gateway of the region was ready for the failover time.
    Unhealthy,
}

impl DrainReason {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Unhealthy => "unhealthy",
        }
    }
}

/// New games avoid the region; its running games move to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionDrained {
    pub region: String,
    pub reason: DrainReason,
}

/// New games may go to the region again (games that moved away stay where they are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionRestored {
    pub region: String,
}

/// A running session moved: from `from_step` on (the first step not yet written), its ticks,
/// countdown and end are written to `to_region`'s tick topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMigrated {
    pub from_region: String,
    pub to_region: String,
    pub from_step: i64,
}

/// The record key of `region`'s events in `game-events`.
#[must_use]
pub fn region_key(region: &str) -> String {
    format!("region:{region}")
}

/// Which regions are drained, and why, folded from the region events in log order. A region
/// never drained, or restored since, is active.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionStates {
    drained: HashMap<String, DrainReason>,
}

impl RegionStates {
    /// Folds one event in; returns whether a region's state changed (other events change none).
    pub fn apply(&mut self, body: &EventBody) -> bool {
        match body {
            EventBody::RegionDrained(drained) => {
                self.drained.insert(drained.region.clone(), drained.reason) != Some(drained.reason)
            }
            EventBody::RegionRestored(restored) => self.drained.remove(&restored.region).is_some(),
            _ => false,
        }
    }

    /// Why `region` is drained, if it is.
    #[must_use]
    pub fn drained(&self, region: &str) -> Option<DrainReason> {
        self.drained.get(region).copied()
    }

    #[must_use]
    pub fn is_drained(&self, region: &str) -> bool {
        self.drained.contains_key(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn drains_and_restores_fold_in_log_order_and_round_trip_as_documented() {
        let drained = EventBody::RegionDrained(RegionDrained {
            region: "eu-west-1".into(),
            reason: DrainReason::Operator,
        });
        let event = Event::new("", 1, "edge@0", drained.clone());
        let json: serde_json::Value = serde_json::from_slice(&event.to_bytes()).unwrap();
        assert_eq!(
            (json["type"].as_str(), json["region"].as_str(), json["reason"].as_str()),
            (Some("region_drained"), Some("eu-west-1"), Some("operator"))
        );
        assert_eq!(Event::from_bytes(&event.to_bytes()).unwrap().body, drained);
        let moved = EventBody::SessionMigrated(SessionMigrated {
            from_region: "eu-west-1".into(),
            to_region: "eu-central-1".into(),
            from_step: 42,
        });
        let json: serde_json::Value =
            serde_json::from_slice(&Event::new("s", 1, "g", moved).to_bytes()).unwrap();
        assert_eq!(
            (
                json["type"].as_str(),
                json["fromRegion"].as_str(),
                json["toRegion"].as_str(),
                json["fromStep"].as_i64()
            ),
            (Some("session_migrated"), Some("eu-west-1"), Some("eu-central-1"), Some(42))
        );

        let mut states = RegionStates::default();
        assert!(states.apply(&drained));
        assert!(!states.apply(&drained), "draining twice changes nothing");
        assert_eq!(states.drained("eu-west-1"), Some(DrainReason::Operator));
        let unhealthy = EventBody::RegionDrained(RegionDrained {
            region: "eu-west-1".into(),
            reason: DrainReason::Unhealthy,
        });
        assert!(states.apply(&unhealthy), "the reason changed");
        let restored = EventBody::RegionRestored(RegionRestored { region: "eu-west-1".into() });
        assert!(states.apply(&restored) && !states.is_drained("eu-west-1"));
        assert!(!states.apply(&restored), "restoring twice changes nothing");
        assert_eq!(region_key("eu-west-1"), "region:eu-west-1");
    }
}
