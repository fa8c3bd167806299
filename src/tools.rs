//! The commands that are tools rather than roles: `engine` (evaluate the engine) and `bots`
//! (the load client).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use tickcast_engine::{Params, seed_hash, state_at};
use tokio_util::sync::CancellationToken;

use crate::cli::{BotsArgs, EngineArgs};

pub(crate) fn engine(args: &EngineArgs) -> anyhow::Result<()> {
    if args.hash {
        println!("{}", seed_hash(args.seed));
        return Ok(());
    }
    let step = args.step.context("--step or --hash is required")?;
    let params = Params {
        seed: args.seed,
        min_break_steps: args.min_break_steps,
        max_break_steps: args.max_break_steps,
    };
    if let Err(error) = params.check() {
        bail!("--min-break-steps / --max-break-steps: {error}");
    }
    let state = state_at(&params, step);
    // Field order is part of the output: step, value, round, broken.
    println!(
        r#"{{"step":{step},"value":{},"round":{},"broken":{}}}"#,
        state.value, state.round, state.broken
    );
    Ok(())
}

pub(crate) async fn bots(args: BotsArgs) -> anyhow::Result<()> {
    if let Some(max) = args.max_tick_ms
        && max < args.tick_ms
    {
        bail!(
            "--max-tick-ms {max} is below --tick-ms {}: an adaptive game's slowest pace is at least its fastest",
            args.tick_ms
        );
    }
    if let (Some(min), Some(max)) = (args.min_break_steps, args.max_break_steps)
        && min > max
    {
        bail!("--min-break-steps {min} is above --max-break-steps {max}");
    }
    use std::io::IsTerminal;
    let config = tickcast_bots::BotsConfig {
        edge: args.edge.trim_end_matches('/').to_owned(),
        sessions: args.sessions as usize,
        players_per_session: args.players_per_session as usize,
        duration: args.duration,
        rtt: Duration::from_millis(args.rtt_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        tick_ms: args.tick_ms,
        max_tick_ms: args.max_tick_ms,
        break_steps: args.min_break_steps.zip(args.max_break_steps),
        connect_rate: args.connect_rate,
        server_pid: args.server_pid,
        region: args.region,
        arrival: if args.burst {
            tickcast_bots::Arrival::Burst
        } else if args.staggered {
            tickcast_bots::Arrival::Staggered
        } else {
            tickcast_bots::Arrival::Together
        },
        progress: !args.json && std::io::stderr().is_terminal(),
    };
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        crate::shutdown::wait_for_signal().await;
        signal.cancel();
    });
    let report = tickcast_bots::run(config, shutdown).await?;
    let text = if args.json { serde_json::to_string(&report)? } else { report.human() };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.trim_end());
    let imperfect =
        report.missing_steps + report.duplicate_steps + report.out_of_order_steps + report.connect_failures;
    if imperfect > 0 {
        std::process::exit(2);
    }
    Ok(())
}
