//! Replay and analytics over the log (placeholder until replay lands)
