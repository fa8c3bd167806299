//! `tickcast replay`: reads games back from the log or the archive and prints, exports,
//! verifies, reports or re-broadcasts them.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cli::{ReplayCommand, SessionArg};
use crate::shutdown::Roles;

pub(crate) async fn run(command: ReplayCommand) -> anyhow::Result<()> {
    let source = match &command {
        ReplayCommand::Sessions { source, .. }
        | ReplayCommand::Timeline { source, .. }
        | ReplayCommand::Export { source, .. }
        | ReplayCommand::Report { source, .. }
        | ReplayCommand::Serve { source, .. }
        | ReplayCommand::Verify { source, .. } => source,
    };
    let history = match &source.archive.dir {
        Some(dir) => tickcast_replay::archive::load(dir)
            .with_context(|| format!("cannot read the archive {}", dir.display()))?,
        None => {
            let url = &source.log.url;
            let log = tickcast_eventlog::open_read_only(url)
                .with_context(|| format!("cannot open the event log {url}"))?;
            // A spinner on long reads, for people (not when stderr is a file or a pipe).
            let spinner = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                let spinner = indicatif::ProgressBar::new_spinner();
                spinner.enable_steady_tick(Duration::from_millis(120));
                spinner
            } else {
                indicatif::ProgressBar::hidden()
            };
            let mut progress = |read: u64| spinner.set_message(format!("read {read} records"));
            let history = tickcast_replay::History::load_with_progress(log.as_ref(), &mut progress).await?;
            spinner.finish_and_clear();
            history
        }
    };
    let mut out = std::io::stdout().lock();
    match command {
        ReplayCommand::Sessions { json, .. } => {
            for s in tickcast_replay::catalog::sessions(&history) {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&s)?)?;
                } else {
                    let end = s.end_reason.map_or_else(
                        || "running".to_owned(),
                        |r| {
                            serde_json::to_value(r)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        },
                    );
                    writeln!(
                        out,
                        "{}  {:<14}  start {}  players {:>3}  rounds {:>4}  ticks {:>6}  kicks {:>2}  {}",
                        s.session_id, s.region, s.start_at, s.players, s.rounds, s.ticks, s.kicks, end
                    )?;
                }
            }
        }
        ReplayCommand::Timeline { session: SessionArg { id: session }, json, .. } => {
            let events = history.session(&session)?;
            let start = tickcast_replay::session_created(events).map(|c| c.start_at);
            for logged in events {
                let value = serde_json::to_value(&logged.event)?;
                if json {
                    writeln!(out, "{value}")?;
                    continue;
                }
                let mut fields = value.as_object().cloned().unwrap_or_default();
                for envelope in ["v", "id", "type", "sessionId", "at", "source"] {
                    fields.remove(envelope);
                }
                let relative = start
                    .map_or(String::new(), |s| format!("{:+.3}s", (logged.event.at - s) as f64 / 1000.0));
                writeln!(
                    out,
                    "{:>10}  {:<24}  {:<16}  {}",
                    relative,
                    logged.position.to_string(),
                    logged.event.kind(),
                    serde_json::Value::Object(fields)
                )?;
            }
        }
        ReplayCommand::Export { kind, format, out: path, only_session, from, to, .. } => {
            let filter = tickcast_replay::export::Filter { session: only_session, from_ms: from, to_ms: to };
            let rows = tickcast_replay::export::export(&history, kind, &filter, format, &path)?;
            writeln!(out, "wrote {rows} rows to {}", path.display())?;
        }
        ReplayCommand::Report { out: path, which, .. } => {
            let selected: Vec<String> = which.session.into_iter().collect();
            if let Some(id) = selected.first() {
                history.session(id)?;
            }
            let html = tickcast_replay::report::report(&history, &selected);
            std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "wrote {}", path.display())?;
        }
        ReplayCommand::Serve { session: SessionArg { id: session }, speed, listen, .. } => {
            if !(speed.is_finite() && speed > 0.0) {
                bail!("--speed must be a positive number, e.g. 10");
            }
            let playback = tickcast_replay::serve::Playback::of(&history, &session)?;
            drop(out);
            let mut roles = Roles::new();
            let addr = roles.serve(&listen, 8090, tickcast_replay::serve::router(playback, speed)).await?;
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(
                stdout,
                "replaying session {session} at {speed}x on {}://{addr}/ws (send join to watch)",
                listen.ws_scheme()
            );
            let _ = stdout.flush();
            drop(stdout);
            return roles.wait().await;
        }
        ReplayCommand::Verify { which, .. } => {
            let ids: Vec<String> = match which.session {
                Some(id) => {
                    history.session(&id)?;
                    vec![id]
                }
                None => history.sessions.keys().cloned().collect(),
            };
            let (mut ticks, mut problems) = (0, Vec::new());
            let running: Vec<&String> = ids.iter().filter(|id| history.seed_withheld.contains(*id)).collect();
            for id in &running {
                writeln!(
                    out,
                    "session {id} is still running in the archive: its seed is not there until it ends, so its ticks are not recomputed"
                )?;
            }
            for id in ids.iter().filter(|id| !history.seed_withheld.contains(*id)) {
                let check = tickcast_replay::verify::verify_session(id, history.session(id)?);
                ticks += check.ticks;
                problems.extend(check.problems);
            }
            if let Some(first) = problems.first() {
                for p in &problems {
                    writeln!(out, "{p}")?;
                }
                bail!("verification failed: {} problem(s); the first: {first}", problems.len());
            }
            writeln!(
                out,
                "verified {} session(s), {ticks} ticks: every tick matches the engine, no step is missing or doubled, every revealed seed matches its seedHash",
                ids.len() - running.len()
            )?;
        }
    }
    Ok(())
}
