//! `tickcast`: one binary for every role.
//!
//! `tickcast up` runs the edge, a gateway per region, the tick generator and the archiver in one
//! process on the embedded log; `edge`, `gateway`, `tick-generator` and `archiver` run one role
//! each; `topics create` prepares a Kafka cluster; `replay` reads games back; `engine` evaluates
//! the engine for a seed; `bots` is the load client. Errors end here as `anyhow` with a message
//! that says what to fix.
//!
//! # Layout
//! - `cli`: the flags, with the design's environment names.
//! - `config`: flags to the roles' configurations, with cross-field checks.
//! - `roles`: the role commands; `shutdown`: the tree they run under.
//! - `secret`: the join-token secret; `routes`: the routes every HTTP role serves.
//! - `replay`, `tools`: the commands that are not roles.

mod capacity;
mod cli;
mod config;
mod listeners;
mod regions;
mod replay;
mod roles;
mod routes;
mod secret;
mod shutdown;
mod tools;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_logs(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A reader that stopped reading (`| head`) is not an error worth a message.
        Err(error)
            if error.chain().any(|e| {
                e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log lines to stderr, filtered by `RUST_LOG` (info by default): text, with colours only when
/// stderr is a terminal (a file or a collector gets no escape codes), or one JSON object a line.
fn init_logs(format: cli::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        cli::LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
}

async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    use cli::{Command, StreamsCommand, TablesCommand, TopicsCommand};
    match cli.command {
        Command::Engine(args) => tools::engine(&args),
        Command::Bots(args) => tools::bots(args).await,
        Command::Replay(command) => replay::run(command).await,
        Command::Up(args) => roles::up(*args).await,
        Command::Edge(args) => roles::edge(args).await,
        Command::Gateway(args) => roles::gateway(args).await,
        Command::TickGenerator(args) => roles::tick_generator(args).await,
        Command::Archiver(args) => roles::archiver(args).await,
        Command::Topics(TopicsCommand::Create { log, partitions, replication, retention, regions }) => {
            roles::create_topics(&log, partitions, replication, retention, &regions).await
        }
        Command::Projector(args) => roles::projector(args).await,
        Command::Matchmaker(args) => roles::matchmaker(args).await,
        Command::Tables(TablesCommand::Create { store }) => roles::create_tables(&store).await,
        Command::Streams(StreamsCommand::Create { log, shards, retention, regions }) => {
            roles::create_streams(&log, shards, retention, &regions).await
        }
        Command::Regions(command) => regions::run(command).await,
    }
}
