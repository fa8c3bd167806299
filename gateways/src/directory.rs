//! The gateway's session directory: this region's sessions and who is connected to each, fed
//! from `game-events`. Joins wait on it for a session just created; a change of a session's
//! players becomes a `players` frame to its members on every shard.

use std::sync::Arc;

use tickcast_eventlog::Record;
use tickcast_schemas::event::{Event, EventBody};
use tickcast_schemas::protocol::ServerMessage;
use tickcast_schemas::sessions::SessionInfo;

use crate::Gateway;
use crate::dispatch::Outgoing;
use crate::fanout::{self, Command};

impl Gateway {
    /// Applies a batch of `game-events` records to the directory.
    pub(crate) fn follow_sessions(&self, records: &[Record]) {
        let mut directory = self.directory.lock().unwrap();
        let mut changed_players = Vec::new();
        for record in records {
            if !matches!(
                Event::peek_type(&record.payload),
                Some(
                    "session_created"
                        | "session_ended"
                        | "session_migrated"
                        | "tick_rate_changed"
                        | "player_joined"
                        | "player_kicked"
                        | "player_left"
                ) | None
            ) {
                continue;
            }
            match Event::from_bytes(&record.payload) {
                Ok(event) => {
                    // Every region's sessions are kept: one may move here (`session_migrated`).
                    if let EventBody::PlayerJoined(joined) = &event.body
                        && joined.gateway_id != self.gateway_id
                    {
                        // One live connection per player and session, whichever gateway has it.
                        self.joined_elsewhere(&event.session_id, &joined.user_id);
                    }
                    if directory.apply(&event) {
                        changed_players.push(event.session_id);
                    }
                }
                Err(error) => {
                    tracing::warn!(position = %record.position, %error, "skipping undecodable game event")
                }
            }
        }
        // Tell each changed session's players who is in it now (whichever gateway they use).
        changed_players.sort();
        changed_players.dedup();
        let notices: Vec<Outgoing> = changed_players
            .into_iter()
            .filter_map(|session_id| {
                let players = directory.get(&session_id)?.players();
                let frame = fanout::text_frame(ServerMessage::Players { players }.to_json());
                Some(Outgoing::Broadcast { session_id, frame })
            })
            .collect();
        drop(directory);
        self.directory_version.send_modify(|v| *v += 1);
        if !notices.is_empty() {
            let notices = Arc::new(notices);
            for shard in &self.shards {
                let _ = shard.send(Command::Forward(Arc::clone(&notices), std::time::Instant::now()));
            }
        }
    }

    /// The session, waiting up to `join_wait` for it to arrive from game-events.
    pub(crate) async fn wait_for_session(&self, session_id: &str) -> Option<SessionInfo> {
        let mut version = self.directory_version.subscribe();
        let deadline = tokio::time::Instant::now() + self.config.join_wait;
        loop {
            if let Some(info) = self.directory.lock().unwrap().get(session_id) {
                return Some(info.clone());
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }
}
