//! `tickcast regions drain|restore REGION --log URL`: the operator's region switch for split
//! deployments. It writes the same events as the edge's `POST /admin/regions/{region}/drain`
//! and `/restore`, after reading the regions' states from the log: draining the last active
//! region is refused, and draining a drained region (or restoring an active one) writes nothing.

use anyhow::{Context, bail};
use tickcast_eventlog::{Durability, NewRecord};
use tickcast_schemas::event::{DrainReason, Event, EventBody, RegionDrained, RegionRestored};
use tickcast_schemas::region_events::region_key;
use tickcast_schemas::topics::GAME_EVENTS;

use crate::cli::RegionsCommand;
use crate::config::{open_log, region_table};
use crate::roles::announce;

pub(crate) async fn run(command: RegionsCommand) -> anyhow::Result<()> {
    let (region, log_args, regions, drain) = match command {
        RegionsCommand::Drain { region, log, regions } => (region, log, regions, true),
        RegionsCommand::Restore { region, log, regions } => (region, log, regions, false),
    };
    let table = region_table(&regions)?;
    if !table.iter().any(|r| r.id == region) {
        let ids: Vec<&str> = table.iter().map(|r| r.id.as_str()).collect();
        bail!(
            "no region {region:?} in the region table ({}): give one of them, or the table with --regions",
            ids.join(", ")
        );
    }
    let log = open_log(&log_args, None)?;
    let states = tickcast_producers::region_states(log.as_ref())
        .await
        .context("cannot read the regions' states from game-events")?;
    let body = if drain {
        if states.is_drained(&region) {
            announce(&format!("{region} is drained already"));
            return Ok(());
        }
        if table.iter().all(|r| r.id == region || states.is_drained(&r.id)) {
            bail!("{region} is the last active region: restore another before draining it");
        }
        EventBody::RegionDrained(RegionDrained { region: region.clone(), reason: DrainReason::Operator })
    } else {
        if !states.is_drained(&region) {
            announce(&format!("{region} is active already"));
            return Ok(());
        }
        EventBody::RegionRestored(RegionRestored { region: region.clone() })
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let event = Event::new("", now, "tickcast@regions", body);
    let record = NewRecord { key: region_key(&region), timestamp_ms: now, payload: event.to_bytes().into() };
    log.append(GAME_EVENTS, vec![record], Durability::Durable)
        .await
        .with_context(|| format!("cannot write {} to {GAME_EVENTS}", event.kind()))?;
    let state = if drain {
        "drained: new games avoid it, its running games move"
    } else {
        "active: new games may go there again"
    };
    announce(&format!("{region} is {state}"));
    Ok(())
}
