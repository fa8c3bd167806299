//! What `tickcast up` can carry, learned from what it costs (`--max-players auto`): the ticks
//! a second the machine can deliver on time, from the machine's CPU per delivered tick and the
//! cores it has. Admission ([`tickcast_producers::admission`]) counts the ticks a second its
//! admitted players take against it, so a burst of games is refused at the door.
//!
//! The machine's CPU, not only the process's: whatever else runs there and grows with the
//! players (a load client on the same cores, a proxy) takes the same cores. Learned only once
//! the process delivers at least [`LEARN_FROM_SHARE`] of the cold estimate, where the fixed
//! costs of an idle machine weigh little (an average over a light load would be far above the
//! cost of one more tick, and refuse players the machine can carry); until then the capacity is
//! the cold estimate, [`COLD_PER_CORE_PER_S`] per core.
//!
//! What it learns it remembers in the data directory (`capacity.json`), so the next start on
//! the same machine begins from the measured capacity instead of the cold estimate: a burst
//! right after a restart is then judged by what this machine carries, not by a guess. A file
//! written on a machine with another number of cores is ignored.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickcast_schemas::load::ProcessLoad;
use tokio_util::sync::CancellationToken;

/// Ticks a second one core delivers on time, assumed until the process has measured itself: a
/// release build on the machines of BENCHMARKS.md delivers a tick for 8–17 µs of its own CPU
/// and a load client on the same cores takes about 6 µs more, so 50,000 a second per core
/// (20 µs each, at [`TARGET_SHARE`] of the core) is what such a machine carries with its load
/// client beside it.
const COLD_PER_CORE_PER_S: f64 = 50_000.0;

/// The share of the machine's cores the delivered ticks may take: the rest is headroom for
/// bursts of joins, log checkpoints and the scheduler's own jitter.
const TARGET_SHARE: f64 = 0.8;

/// The share of the cold estimate the process must deliver before the machine's CPU per tick is
/// measured, not assumed.
const LEARN_FROM_SHARE: f64 = 0.4;

/// How often the estimate is updated, and over how long a window it is measured.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const WINDOW: usize = 10;

/// The series admission's capacity is exposed as.
const CAPACITY: &str = "tickcast_capacity_ticks_per_second";

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// The machine's busy CPU time, in clock ticks (`/proc/stat`).
    machine_busy: u64,
    delivered: u64,
}

/// Where a data directory keeps the capacity learned there.
pub(crate) fn remembered_at(data_dir: &Path) -> PathBuf {
    data_dir.join("capacity.json")
}

/// The capacity remembered at `path` (`{"ticksPerSecond", "cores", "learnedAtMs"}`), if it was
/// learned on as many cores as this machine has.
fn recall(path: &Path, cores: f64) -> Option<f64> {
    let remembered: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let capacity = remembered["ticksPerSecond"].as_f64().filter(|c| *c >= 1.0)?;
    (remembered["cores"].as_f64() == Some(cores)).then_some(capacity)
}

/// Writes what was learned to `path` (a new file renamed over the old, so a crash leaves one or
/// the other whole). A failure costs only the memory of it: it is logged, not fatal.
fn remember(path: &Path, cores: f64, capacity: f64) {
    let learned_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let remembered =
        serde_json::json!({ "ticksPerSecond": capacity, "cores": cores, "learnedAtMs": learned_at_ms });
    let json = serde_json::to_vec_pretty(&remembered).expect("plain numbers serialize");
    let fresh = path.with_extension("json.new");
    if let Err(error) = std::fs::write(&fresh, json).and_then(|()| std::fs::rename(&fresh, path)) {
        tracing::warn!(path = %path.display(), %error, "cannot remember the capacity learned");
    }
}

/// The cold estimate for `cores`.
fn cold_capacity(cores: f64) -> f64 {
    cores * COLD_PER_CORE_PER_S
}

/// The capacity measured between two samples, if enough ticks were delivered to measure it.
fn measured_capacity(from: Sample, to: Sample, cores: f64, clock_ticks_per_s: f64) -> Option<f64> {
    let seconds = to.at.duration_since(from.at).as_secs_f64();
    let delivered = to.delivered.saturating_sub(from.delivered) as f64;
    if seconds <= 0.0 || delivered / seconds < LEARN_FROM_SHARE * cold_capacity(cores) {
        return None;
    }
    let busy_s = to.machine_busy.saturating_sub(from.machine_busy) as f64 / clock_ticks_per_s;
    let per_tick_s = busy_s / delivered;
    (per_tick_s > 0.0).then(|| cores * TARGET_SHARE / per_tick_s)
}

/// The machine's busy CPU time in clock ticks: every CPU's time but idle and iowait.
fn machine_busy() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some(total.saturating_sub(idle))
}

/// Keeps `load`'s capacity current until `shutdown`, starting from what `remembered` (a
/// `capacity.json`) holds, and keeping what it learns there.
pub(crate) async fn learn(
    load: Arc<ProcessLoad>,
    remembered: PathBuf,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
    // USER_HZ, the unit of /proc/stat: 100 on every Linux architecture tickcast builds for.
    let clock_ticks_per_s = 100.0;
    let mut capacity = match recall(&remembered, cores) {
        Some(capacity) => {
            tracing::info!(ticks_per_s = capacity as u64, "capacity as learned on an earlier run");
            capacity
        }
        None => cold_capacity(cores),
    };
    publish(&load, capacity);
    let mut window: VecDeque<Sample> = VecDeque::with_capacity(WINDOW + 1);
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = every.tick() => {}
        }
        let Some(machine_busy) = machine_busy() else {
            // No /proc (not Linux): the cold estimate stays.
            continue;
        };
        window.push_back(Sample { at: Instant::now(), machine_busy, delivered: load.delivered() });
        if window.len() > WINDOW {
            window.pop_front();
        }
        let (Some(&from), Some(&to)) = (window.front(), window.back()) else { continue };
        if let Some(measured) = measured_capacity(from, to, cores, clock_ticks_per_s)
            && (measured - capacity).abs() > capacity * 0.02
        {
            capacity = measured;
            publish(&load, capacity);
            remember(&remembered, cores, capacity);
            tracing::debug!(
                ticks_per_s = capacity as u64,
                "capacity learned from the CPU per delivered tick"
            );
        }
    }
}

fn publish(load: &ProcessLoad, capacity: f64) {
    load.set_capacity_per_s(capacity.max(1.0) as u64);
    metrics::gauge!(CAPACITY).set(capacity);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capacity_is_measured_only_under_load() {
        let t0 = Instant::now();
        let at = |s: u64, busy: u64, delivered: u64| Sample {
            at: t0 + Duration::from_secs(s),
            machine_busy: busy,
            delivered,
        };
        // 10 s, 50,000 ticks a second, 1.2 cores busy (1,200 clock ticks): 24 µs a tick, so
        // 2 cores at 80 % carry 66,666 a second.
        let measured = measured_capacity(at(0, 0, 0), at(10, 1_200, 500_000), 2.0, 100.0).unwrap();
        assert!((measured - 66_666.0).abs() < 1.0, "{measured}");
        // 30,000 ticks a second, under 40 % of the cold 100,000: fixed costs would weigh too
        // much, nothing is learned.
        assert_eq!(measured_capacity(at(0, 0, 0), at(10, 900, 300_000), 2.0, 100.0), None);
        assert_eq!(cold_capacity(2.0), 100_000.0);
    }

    #[test]
    fn a_capacity_is_recalled_only_on_as_many_cores_as_it_was_learned_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = remembered_at(dir.path());
        assert_eq!(recall(&path, 2.0), None, "nothing learned yet");
        remember(&path, 2.0, 61_234.5);
        assert_eq!(recall(&path, 2.0), Some(61_234.5));
        assert_eq!(recall(&path, 4.0), None, "another machine");
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(recall(&path, 2.0), None, "a damaged file is ignored");
    }
}
