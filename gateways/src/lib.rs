//! Regional WebSocket gateway: joins, tick fan-out, latency policy
