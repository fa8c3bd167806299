//! A self-contained HTML report with SVG plots: value curves with breaks, the pace of adaptive
//! sessions, round lengths against the engine's expected distribution, RTT per region, kicks and
//! warnings over time, and the tick generator's lateness.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;
use tickcast_schemas::event::{EventBody, LatencyStatus};

use crate::History;
use crate::catalog::{SessionSummary, sessions};

/// Value curves drawn at most (the first sessions, in start order).
const MAX_CURVES: usize = 6;
const WIDTH: u32 = 720;
const HEIGHT: u32 = 260;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Draws one chart into an SVG string; a drawing error becomes a note instead of a chart.
fn svg(
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> String {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string()).and_then(|()| draw(root))
    };
    match result {
        Ok(()) => out,
        Err(error) => format!("<p>(chart not drawn: {})</p>", escape(&error)),
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The report for `selected` sessions (all when empty), as one HTML document.
#[must_use]
pub fn report(history: &History, selected: &[String]) -> String {
    let summaries: Vec<SessionSummary> = sessions(history)
        .into_iter()
        .filter(|s| selected.is_empty() || selected.contains(&s.session_id))
        .collect();
    let ids: Vec<&str> = summaries.iter().map(|s| s.session_id.as_str()).collect();
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tickcast report</title>\
         <style>body{font:15px/1.4 system-ui,sans-serif;max-width:760px;margin:24px auto;color:#1d2330}\
         table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}\
         h2{margin-top:32px}</style></head><body><h1>tickcast report</h1>",
    );
    let _ = write!(html, "<p>{} session(s).</p>", summaries.len());
    html += "<table><tr><th>session</th><th>region</th><th>players</th><th>rounds</th><th>ticks</th><th>kicks</th><th>end</th></tr>";
    for s in &summaries {
        let end = s.end_reason.map_or("running".to_owned(), |r| {
            serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        });
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.session_id),
            escape(&s.region),
            s.players,
            s.rounds,
            s.ticks,
            s.kicks,
            end
        );
    }
    html += "</table>";

    html += "<h2>Value over steps</h2><p>Red marks are breaks (the value falls to 0 and a round ends).</p>";
    for id in ids.iter().take(MAX_CURVES) {
        let _ = write!(html, "<h3>{}</h3>{}", escape(id), value_curve(history, id));
    }
    html += "<h2>Pace</h2><p>ms per step over steps: an adaptive session's pace changes at a round's start (<code>tick_rate_changed</code>), for its players' latency or its generator's load.</p>";
    let mut paced = 0;
    for id in &ids {
        if let Some(chart) = pace_curve(history, id) {
            let _ = write!(html, "<h3>{}</h3>{chart}", escape(id));
            paced += 1;
            if paced == MAX_CURVES {
                break;
            }
        }
    }
    if paced == 0 {
        html += "<p>No adaptive sessions.</p>";
    }
    html += "<h2>Round lengths</h2><p>Observed rounds against the engine's distribution: every length from minBreakSteps to maxBreakSteps is equally likely.</p>";
    html += &round_lengths(history, &ids);
    html += "<h2>RTT per region</h2>";
    html += &rtt_per_region(history, &ids);
    html += "<h2>Kicks and warnings over time</h2>";
    html += &kicks_over_time(history, &ids);
    html += "<h2>Tick lateness</h2><p>emittedAt − scheduledAt of every tick: how late the tick generator woke.</p>";
    html += &lateness(history, &ids);
    html += "</body></html>\n";
    html
}

fn value_curve(history: &History, id: &str) -> String {
    let ticks: Vec<(i64, u64, bool)> = history.sessions[id]
        .iter()
        .filter_map(|l| match &l.event.body {
            EventBody::Tick(t) => Some((t.step, t.value, t.broken)),
            _ => None,
        })
        .collect();
    if ticks.is_empty() {
        return "<p>No ticks.</p>".into();
    }
    let last = ticks.iter().map(|t| t.0).max().unwrap_or(0);
    let top = ticks.iter().map(|t| t.1).max().unwrap_or(1).max(1);
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0..last + 1, 0..top + 1)
            .map_err(err)?;
        chart.configure_mesh().x_desc("step").y_desc("value").draw().map_err(err)?;
        chart.draw_series(LineSeries::new(ticks.iter().map(|t| (t.0, t.1)), &BLUE)).map_err(err)?;
        chart
            .draw_series(
                ticks.iter().filter(|t| t.2).map(|t| PathElement::new(vec![(t.0, 0), (t.0, top + 1)], RED)),
            )
            .map_err(err)?;
        Ok(())
    })
}

/// The pace of an adaptive session (or one whose pace changed) over its steps, with each
/// change's reason; `None` for a fixed pace.
fn pace_curve(history: &History, id: &str) -> Option<String> {
    let events = &history.sessions[id];
    let created = crate::session_created(events)?;
    let changes: Vec<(i64, i64, &'static str)> = events
        .iter()
        .filter_map(|l| match &l.event.body {
            EventBody::TickRateChanged(c) => Some((c.from_step, c.tick_ms, c.reason.as_str())),
            _ => None,
        })
        .collect();
    if !created.is_adaptive() && changes.is_empty() {
        return None;
    }
    let last = events
        .iter()
        .filter_map(|l| match &l.event.body {
            EventBody::Tick(t) => Some(t.step),
            _ => None,
        })
        .max()
        .unwrap_or(0)
        .max(changes.last().map_or(0, |c| c.0));
    // A step line: each pace holds until the next change.
    let mut points = vec![(0, created.tick_ms)];
    for &(from_step, tick_ms, _) in &changes {
        points.push((from_step, points.last().map_or(tick_ms, |p| p.1)));
        points.push((from_step, tick_ms));
    }
    points.push((last + 1, points.last().map_or(created.tick_ms, |p| p.1)));
    let top = created.slowest_tick_ms().max(points.iter().map(|p| p.1).max().unwrap_or(0));
    let by_load = changes.iter().filter(|c| c.2 == "load").count();
    let chart = svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0..last + 1, 0..top + top / 10 + 1)
            .map_err(err)?;
        chart.configure_mesh().x_desc("step").y_desc("ms per step").draw().map_err(err)?;
        chart.draw_series(LineSeries::new(points.iter().copied(), BLUE.stroke_width(2))).map_err(err)?;
        Ok(())
    });
    Some(format!(
        "<p>{} change(s) ({} for latency, {by_load} for load), {}–{} ms.</p>{chart}",
        changes.len(),
        changes.len() - by_load,
        created.tick_ms,
        created.slowest_tick_ms()
    ))
}

fn round_lengths(history: &History, ids: &[&str]) -> String {
    let mut observed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut bounds = None;
    for id in ids {
        let events = &history.sessions[*id];
        let Some(created) = crate::session_created(events) else {
            continue;
        };
        // Pool only sessions with the first session's bounds: one expected distribution.
        let these = (created.min_break_steps, created.max_break_steps);
        if *bounds.get_or_insert(these) != these {
            continue;
        }
        let mut round_start = 0i64;
        for l in events {
            if let EventBody::Tick(t) = &l.event.body
                && t.broken
            {
                *observed.entry((t.step - round_start + 1) as u64).or_default() += 1;
                round_start = t.step + 1;
            }
        }
    }
    let (Some((min, max)), false) = (bounds, observed.is_empty()) else {
        return "<p>No completed rounds.</p>".into();
    };
    let rounds: u64 = observed.values().sum();
    let expected = rounds as f64 / (max - min + 1) as f64;
    let top = observed.values().copied().max().unwrap_or(1) as f64;
    let top = top.max(expected) * 1.15;
    let chart = svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(min as f64 - 0.5..max as f64 + 0.5, 0.0..top)
            .map_err(err)?;
        chart.configure_mesh().x_desc("round length (steps)").y_desc("rounds").draw().map_err(err)?;
        chart
            .draw_series(observed.iter().map(|(&len, &count)| {
                Rectangle::new(
                    [(len as f64 - 0.4, 0.0), (len as f64 + 0.4, count as f64)],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(min as f64 - 0.5, expected), (max as f64 + 0.5, expected)],
                RED.stroke_width(2),
            ))
            .map_err(err)?;
        Ok(())
    });
    format!(
        "<p>{rounds} rounds of length {min}–{max}; red: the expected count per length ({expected:.2}).</p>{chart}"
    )
}

fn rtt_per_region(history: &History, ids: &[&str]) -> String {
    const BIN_MS: u64 = 5;
    const LAST_BIN: u64 = 60; // 300 ms and above in the last bin
    let mut by_region: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for id in ids {
        let events = &history.sessions[*id];
        let region = crate::session_created(events).map(|c| c.region.clone());
        let bins =
            by_region.entry(region.unwrap_or_default()).or_insert_with(|| vec![0; LAST_BIN as usize + 1]);
        for l in events {
            for (_, rtt_ms, _) in l.event.rtt_samples() {
                bins[(rtt_ms / BIN_MS).min(LAST_BIN) as usize] += 1;
            }
        }
    }
    by_region.retain(|_, bins| bins.iter().any(|&b| b > 0));
    if by_region.is_empty() {
        return "<p>No latency samples.</p>".into();
    }
    let top = by_region.values().flatten().copied().max().unwrap_or(1);
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    let mut legend = String::from("<p>");
    for (i, region) in by_region.keys().enumerate() {
        let color = palette[i % palette.len()];
        let _ = write!(
            legend,
            "<span style=\"color:rgb({},{},{})\">■ {}</span> ",
            color.0,
            color.1,
            color.2,
            escape(region)
        );
    }
    legend += "(bins of 5 ms; the last bin holds 300 ms and more)</p>";
    let chart = svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0..LAST_BIN * BIN_MS + BIN_MS, 0..top + 1)
            .map_err(err)?;
        chart.configure_mesh().x_desc("RTT (ms)").y_desc("samples").draw().map_err(err)?;
        for (i, bins) in by_region.values().enumerate() {
            let color = palette[i % palette.len()];
            let points = bins.iter().enumerate().map(|(b, &count)| (b as u64 * BIN_MS, count));
            chart.draw_series(LineSeries::new(points, color.stroke_width(2))).map_err(err)?;
        }
        Ok(())
    });
    legend + &chart
}

fn kicks_over_time(history: &History, ids: &[&str]) -> String {
    const BUCKET_MS: i64 = 10_000;
    let mut kicks: BTreeMap<i64, u64> = BTreeMap::new();
    let mut warnings: BTreeMap<i64, u64> = BTreeMap::new();
    let mut first = i64::MAX;
    for id in ids {
        for l in &history.sessions[*id] {
            first = first.min(l.event.at);
            match &l.event.body {
                EventBody::PlayerKicked(_) => *kicks.entry(l.event.at).or_default() += 1,
                EventBody::LatencyWarned(w) if w.status == LatencyStatus::Warning => {
                    *warnings.entry(l.event.at).or_default() += 1;
                }
                _ => {}
            }
        }
    }
    if kicks.is_empty() && warnings.is_empty() {
        return "<p>No kicks and no latency warnings.</p>".into();
    }
    let bucket = |m: &BTreeMap<i64, u64>| {
        let mut b: BTreeMap<i64, u64> = BTreeMap::new();
        for (at, n) in m {
            *b.entry((at - first) / BUCKET_MS).or_default() += n;
        }
        b
    };
    let (kicks, warnings) = (bucket(&kicks), bucket(&warnings));
    let last = kicks.keys().chain(warnings.keys()).copied().max().unwrap_or(0);
    let top = kicks.values().chain(warnings.values()).copied().max().unwrap_or(1);
    let chart = svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0..last + 1, 0..top + 1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time (10 s buckets from the first event)")
            .y_desc("count")
            .draw()
            .map_err(err)?;
        let series = |m: &BTreeMap<i64, u64>| {
            (0..=last).map(|b| (b, m.get(&b).copied().unwrap_or(0))).collect::<Vec<_>>()
        };
        chart.draw_series(LineSeries::new(series(&kicks), RED.stroke_width(2))).map_err(err)?;
        chart.draw_series(LineSeries::new(series(&warnings), BLUE.stroke_width(2))).map_err(err)?;
        Ok(())
    });
    format!(
        "<p><span style=\"color:red\">■ kicks</span> <span style=\"color:blue\">■ warnings</span></p>{chart}"
    )
}

fn lateness(history: &History, ids: &[&str]) -> String {
    let mut samples: Vec<i64> = ids
        .iter()
        .flat_map(|id| history.sessions[*id].iter())
        .filter_map(|l| match &l.event.body {
            EventBody::Tick(t) => Some(t.emitted_at - t.scheduled_at),
            _ => None,
        })
        .collect();
    if samples.is_empty() {
        return "<p>No ticks.</p>".into();
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((q * samples.len() as f64) as usize).min(samples.len() - 1)];
    let table = format!(
        "<table><tr><th>ticks</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th></tr>\
         <tr><td>{}</td><td>{} ms</td><td>{} ms</td><td>{} ms</td><td>{} ms</td></tr></table>",
        samples.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    );
    let mut bins: BTreeMap<i64, u64> = BTreeMap::new();
    for &s in &samples {
        *bins.entry(s.clamp(0, 100)).or_default() += 1;
    }
    let top = bins.values().copied().max().unwrap_or(1);
    let chart = svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0i64..101, 0..top + 1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("lateness (ms; 100 = 100 and more)")
            .y_desc("ticks")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                bins.iter().map(|(&ms, &n)| Rectangle::new([(ms, 0), (ms + 1, n)], BLUE.mix(0.6).filled())),
            )
            .map_err(err)?;
        Ok(())
    });
    table + &chart
}
