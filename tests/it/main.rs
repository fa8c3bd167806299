//! tickcast end to end, through real sockets: `tickcast up` as a child process, players as
//! WebSocket clients.

mod archive;
mod bad_input;
mod bots;
mod capacity;
mod cli;
mod cluster;
mod dashboards;
mod ended_games;
mod game;
mod gateways;
mod generators;
mod hostile;
mod infra;
mod kafka;
mod kafka_tls;
mod kinesis;
mod latency;
mod matchmaking;
mod migration;
mod pace;
mod projections;
mod quickstart;
mod regions;
mod replay;
mod restart;
mod retention;
mod secrecy;
mod split_roles;
mod support;
mod tls;
