//! Who is matched with whom, sans I/O (docs/protocol.md, "Matchmaking"): the rules, and the
//! best match the tickets waiting at an instant allow.
//!
//! A match is a group of `min_players`–`max_players` tickets and one region where every member's
//! round trip is within `max_latency_ms`, and the spread — the highest member latency there minus
//! the lowest — is within the spread limit: `max_spread_ms`, doubled for every `expand_after_ms`
//! its oldest member has waited, never past `max_latency_ms`. A group forms at once when full;
//! one not full forms once its oldest member has waited `fill_after_ms`. Among the groups that
//! may form, the biggest wins, then the one whose worst latency is lowest, then the one in a
//! member's preferred region. Latency belongs to a region a player measured: a player close to
//! none is never matched, and expires after `timeout_ms`.

use std::collections::{BTreeMap, BTreeSet};

/// The matchmaking rules (`TICKCAST_MATCH_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchRules {
    pub min_players: usize,
    pub max_players: usize,
    pub max_latency_ms: u64,
    pub max_spread_ms: u64,
    pub expand_after_ms: i64,
    pub fill_after_ms: i64,
    pub timeout_ms: i64,
}

impl Default for MatchRules {
    fn default() -> Self {
        Self {
            min_players: 2,
            max_players: 10,
            max_latency_ms: 100,
            max_spread_ms: 25,
            expand_after_ms: 10_000,
            fill_after_ms: 5_000,
            timeout_ms: 60_000,
        }
    }
}

/// A ticket waiting for a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub ticket_id: String,
    /// Round trips to the regions it measured, ms.
    pub latencies: BTreeMap<String, u64>,
    pub preferred_region: Option<String>,
    /// When it was requested (epoch ms).
    pub since: i64,
}

/// How good a group is: its size, then the lower its worst latency, then whether it plays in a
/// member's preferred region — the greater the better.
type Score = (usize, std::cmp::Reverse<u64>, bool);

/// A group that may play together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub region: String,
    /// Its tickets, by latency to the region.
    pub ticket_ids: Vec<String>,
    pub worst_latency_ms: u64,
}

impl MatchRules {
    /// Checks the rules against each other; the message says what to fix.
    pub fn check(&self) -> Result<(), String> {
        if self.min_players < 2 || self.min_players > self.max_players {
            return Err(format!(
                "TICKCAST_MATCH_MIN_PLAYERS ({}) must be at least 2 and at most TICKCAST_MATCH_MAX_PLAYERS ({})",
                self.min_players, self.max_players
            ));
        }
        if self.expand_after_ms <= 0 || self.timeout_ms <= 0 {
            return Err("TICKCAST_MATCH_EXPAND_AFTER and TICKCAST_MATCH_TIMEOUT must be positive".into());
        }
        Ok(())
    }

    /// The spread a group may have once its oldest member has waited `waited_ms`.
    #[must_use]
    pub fn spread_limit(&self, waited_ms: i64) -> u64 {
        let doublings = (waited_ms.max(0) / self.expand_after_ms.max(1)).min(32) as u32;
        self.max_spread_ms.saturating_mul(1u64 << doublings).min(self.max_latency_ms)
    }

    /// Tickets waited out at `now`.
    pub fn expired<'a>(&self, waiting: &'a [Waiting], now: i64) -> impl Iterator<Item = &'a Waiting> {
        let timeout = self.timeout_ms;
        waiting.iter().filter(move |w| now - w.since >= timeout)
    }

    /// The best match the tickets `waiting` allow at `now`, if any may form.
    #[must_use]
    pub fn best(&self, waiting: &[Waiting], now: i64) -> Option<Match> {
        let regions: BTreeSet<&str> =
            waiting.iter().flat_map(|w| w.latencies.keys().map(String::as_str)).collect();
        let mut best: Option<(Score, Match)> = None;
        for region in regions {
            // Those close enough to the region, nearest first.
            let mut close: Vec<(u64, &Waiting)> = waiting
                .iter()
                .filter_map(|w| w.latencies.get(region).map(|ms| (*ms, w)))
                .filter(|(ms, _)| *ms <= self.max_latency_ms)
                .collect();
            close.sort_by_key(|(ms, w)| (*ms, w.since));
            for first in 0..close.len() {
                let last_possible = (first + self.max_players).min(close.len());
                for end in (first + self.min_players)..=last_possible {
                    let group = &close[first..end];
                    let oldest = group.iter().map(|(_, w)| w.since).min().unwrap_or(now);
                    let spread = group[group.len() - 1].0 - group[0].0;
                    if spread > self.spread_limit(now - oldest) {
                        continue;
                    }
                    if group.len() < self.max_players && now - oldest < self.fill_after_ms {
                        continue;
                    }
                    let preferred = group.iter().any(|(_, w)| w.preferred_region.as_deref() == Some(region));
                    let score = (group.len(), std::cmp::Reverse(group[group.len() - 1].0), preferred);
                    if best.as_ref().is_none_or(|(s, _)| score > *s) {
                        let found = Match {
                            region: region.to_owned(),
                            ticket_ids: group.iter().map(|(_, w)| w.ticket_id.clone()).collect(),
                            worst_latency_ms: group[group.len() - 1].0,
                        };
                        best = Some((score, found));
                    }
                }
            }
        }
        best.map(|(_, found)| found)
    }

    /// Every match that may form at `now`, best first; their tickets leave `waiting`.
    pub fn form_all(&self, waiting: &mut Vec<Waiting>, now: i64) -> Vec<Match> {
        let mut formed = Vec::new();
        while let Some(found) = self.best(waiting, now) {
            waiting.retain(|w| !found.ticket_ids.contains(&w.ticket_id));
            formed.push(found);
        }
        formed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(id: &str, since: i64, latencies: &[(&str, u64)]) -> Waiting {
        Waiting {
            ticket_id: id.into(),
            latencies: latencies.iter().map(|(r, ms)| ((*r).to_owned(), *ms)).collect(),
            preferred_region: None,
            since,
        }
    }

    fn ids(found: &Match) -> Vec<&str> {
        found.ticket_ids.iter().map(String::as_str).collect()
    }

    #[test]
    fn two_latency_clusters_form_two_games_each_in_its_near_region() {
        let rules = MatchRules::default();
        let mut waiting: Vec<Waiting> = (0..4)
            .map(|i| ticket(&format!("eu{i}"), 0, &[("eu-west-1", 20 + i), ("us-east-1", 110)]))
            .chain((0..4).map(|i| ticket(&format!("us{i}"), 0, &[("eu-west-1", 120), ("us-east-1", 30 + i)])))
            .collect();
        assert!(rules.form_all(&mut waiting.clone(), 4_999).is_empty(), "not full: they wait to fill");
        let formed = rules.form_all(&mut waiting, 5_000);
        assert_eq!(formed.len(), 2);
        let eu = formed.iter().find(|m| m.region == "eu-west-1").unwrap();
        let us = formed.iter().find(|m| m.region == "us-east-1").unwrap();
        assert_eq!((ids(eu), eu.worst_latency_ms), (vec!["eu0", "eu1", "eu2", "eu3"], 23));
        assert_eq!(ids(us), ["us0", "us1", "us2", "us3"]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_full_group_forms_at_once_and_the_bigger_group_wins() {
        let rules = MatchRules { max_players: 3, ..MatchRules::default() };
        let mut waiting: Vec<Waiting> =
            (0..4).map(|i| ticket(&format!("t{i}"), 0, &[("r", 10 + i)])).collect();
        let formed = rules.form_all(&mut waiting, 1);
        assert_eq!(formed.len(), 1, "three at once; the fourth waits to fill");
        assert_eq!(ids(&formed[0]), ["t0", "t1", "t2"]);
        assert!(rules.form_all(&mut waiting, 5_000).is_empty(), "alone, it never forms: the minimum is 2");
    }

    #[test]
    fn the_spread_limit_doubles_as_the_oldest_waits_but_never_passes_the_latency_limit() {
        let rules = MatchRules::default();
        assert_eq!([0, 9_999, 10_000, 20_000, 30_000].map(|w| rules.spread_limit(w)), [25, 25, 50, 100, 100]);
        let waiting = vec![ticket("near", 0, &[("r", 10)]), ticket("far", 0, &[("r", 60)])];
        assert!(rules.best(&waiting, 9_999).is_none(), "50 ms apart: over 25");
        assert!(rules.best(&waiting, 10_000).is_some(), "the limit is 50 after 10 s");
        let too_far = vec![ticket("near", 0, &[("r", 10)]), ticket("far", 0, &[("r", 101)])];
        assert!(rules.best(&too_far, 600_000).is_none(), "over the latency limit: never");
    }

    #[test]
    fn a_player_close_to_no_region_is_never_matched_and_expires() {
        let rules = MatchRules::default();
        let waiting = vec![ticket("a", 0, &[("r", 150)]), ticket("b", 0, &[("r", 160)])];
        assert!(rules.best(&waiting, 59_999).is_none());
        assert_eq!(rules.expired(&waiting, 59_999).count(), 0);
        assert_eq!(rules.expired(&waiting, 60_000).count(), 2);
    }

    #[test]
    fn a_tie_goes_to_a_preferred_region() {
        let rules = MatchRules::default();
        let mut a = ticket("a", 0, &[("eu", 20), ("us", 20)]);
        a.preferred_region = Some("us".into());
        let b = ticket("b", 0, &[("eu", 20), ("us", 20)]);
        assert_eq!(rules.best(&[a, b], 5_000).unwrap().region, "us");
    }

    #[test]
    fn rules_that_contradict_each_other_are_refused() {
        assert!(MatchRules { min_players: 1, ..MatchRules::default() }.check().is_err());
        assert!(
            MatchRules { min_players: 11, ..MatchRules::default() }
                .check()
                .unwrap_err()
                .contains("MAX_PLAYERS")
        );
        assert!(MatchRules::default().check().is_ok());
    }
}
