//! Tick generator (and later projector, archiver): consumers of game-events
