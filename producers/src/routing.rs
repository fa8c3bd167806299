//! Region selection (docs/protocol.md, "Edge"): preferredRegion → `x-user-region` → `cf-ipcountry` → default,
//! skipping unhealthy and drained regions. Plain data in, a decision out.

use std::collections::HashMap;

use tickcast_schemas::region_events::{DrainReason, RegionStates};
use tickcast_schemas::regions::{Region, by_distance_from};

/// What the request says about where the player is.
#[derive(Debug, Default, Clone)]
pub struct RegionHints<'a> {
    /// `preferredRegion` from the body: the player's explicit choice.
    pub preferred: Option<&'a str>,
    /// `x-user-region` header, set by a CDN or a proxy that knows better.
    pub user_region: Option<&'a str>,
    /// `cf-ipcountry` header: ISO alpha-2 country code.
    pub country: Option<&'a str>,
}

/// Why no region could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("unknown preferredRegion {0:?}")]
    UnknownRegion(String),
    #[error("no healthy region is available (the others are down or drained)")]
    NoHealthyRegion,
}

/// Which hint chose the region a game was meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutedBy {
    /// `preferredRegion` in the request.
    Preferred,
    /// `x-user-region`.
    Header,
    /// `cf-ipcountry`.
    Country,
    /// None applied: the table's first region.
    Default,
}

/// The region a game goes to, and how it was chosen (the ticket's `routing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub region: Region,
    pub by: RoutedBy,
    /// Regions passed over as unhealthy, the one the hints chose first.
    pub skipped: Vec<String>,
}

/// The region table with each country's region, each region's gateway instances and which of
/// them are not ready.
#[derive(Debug, Clone)]
pub struct RegionRouter {
    /// One entry per region id (the first `--gateway` of a region gives its place in the order).
    regions: Vec<Region>,
    by_country: HashMap<String, usize>,
    /// Every gateway instance of each region, in the order given (`tickcast up`'s regions each
    /// have one, the empty endpoint: the process itself).
    instances: HashMap<String, Vec<Instance>>,
    default_index: usize,
    /// Regions drained (by an operator, or found unhealthy for the failover time), as the log
    /// says: new games avoid them as they avoid unhealthy ones.
    states: RegionStates,
}

/// One gateway of a region.
#[derive(Debug, Clone)]
struct Instance {
    ws_endpoint: String,
    /// Whether its last `/readyz` answered 200 (until the first poll, it counts as ready).
    ready: bool,
}

/// The weight of `instance` for `game_id` in rendezvous (highest random weight) hashing: each
/// game goes to the ready instance with the highest weight, so all its players meet there and
/// only the games of an instance that goes away move. SHA-256, so every edge agrees.
fn rendezvous_weight(game_id: &str, instance: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(game_id).chain_update([0]).chain_update(instance).finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

impl RegionRouter {
    /// A router over `regions`; the first one is the default.
    ///
    /// # Panics
    /// If `regions` is empty (configuration is validated before this is built).
    #[must_use]
    pub fn new(regions: Vec<Region>) -> Self {
        assert!(!regions.is_empty(), "a router needs at least one region");
        let mut instances: HashMap<String, Vec<Instance>> = HashMap::new();
        let mut unique: Vec<Region> = Vec::new();
        for region in regions {
            let of_region = instances.entry(region.id.clone()).or_default();
            if !of_region.iter().any(|i| i.ws_endpoint == region.ws_endpoint) {
                of_region.push(Instance { ws_endpoint: region.ws_endpoint.clone(), ready: true });
            }
            if !unique.iter().any(|r| r.id == region.id) {
                unique.push(region);
            }
        }
        let mut by_country = HashMap::new();
        for (index, region) in unique.iter().enumerate() {
            for country in &region.countries {
                by_country.entry(country.to_ascii_uppercase()).or_insert(index);
            }
        }
        Self { regions: unique, by_country, instances, default_index: 0, states: RegionStates::default() }
    }

    #[must_use]
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// Whether `id` counts as healthy: some instance of it is ready (a region this router does
    /// not know has none, so it does not).
    #[must_use]
    pub fn is_healthy(&self, id: &str) -> bool {
        self.instances.get(id).is_some_and(|all| all.iter().any(|i| i.ready))
    }

    /// Takes the regions' states as read from the log.
    pub fn set_states(&mut self, states: RegionStates) {
        self.states = states;
    }

    /// Folds a `region_drained` or `region_restored` in; returns whether a state changed.
    pub fn apply(&mut self, body: &tickcast_schemas::EventBody) -> bool {
        self.states.apply(body)
    }

    /// Why `id` is drained, if it is.
    #[must_use]
    pub fn drained(&self, id: &str) -> Option<DrainReason> {
        self.states.drained(id)
    }

    /// `"active"` or `"drained"`, as `GET /edge/regions` says.
    #[must_use]
    pub fn state(&self, id: &str) -> &'static str {
        if self.states.is_drained(id) { "drained" } else { "active" }
    }

    /// Whether new games may go to `id`: it is healthy and not drained.
    #[must_use]
    pub fn is_available(&self, id: &str) -> bool {
        self.is_healthy(id) && !self.states.is_drained(id)
    }

    /// Marks every instance of a region ready or not (the tests' shorthand; the edge's poller
    /// marks instances one by one).
    #[cfg(test)]
    fn set_healthy(&mut self, id: &str, healthy: bool) {
        for instance in self.instances.get_mut(id).into_iter().flatten() {
            instance.ready = healthy;
        }
    }

    /// Marks one gateway instance of `region` ready or not.
    pub fn set_ready(&mut self, region: &str, instance: &str, ready: bool) {
        let all = self.instances.get_mut(region).into_iter().flatten();
        for known in all.filter(|i| i.ws_endpoint == instance) {
            known.ready = ready;
        }
    }

    /// Every (region id, instance) pair.
    pub fn instances(&self) -> impl Iterator<Item = (&str, &str)> {
        self.instances
            .iter()
            .flat_map(|(region, all)| all.iter().map(move |i| (region.as_str(), i.ws_endpoint.as_str())))
    }

    /// The instance of `region` that serves `game_id`: the ready one of highest rendezvous
    /// weight (stable while the set of ready instances is); when none is ready, of all.
    #[must_use]
    pub fn instance_for(&self, region: &str, game_id: &str) -> Option<&str> {
        let all = self.instances.get(region)?;
        let any_ready = all.iter().any(|i| i.ready);
        all.iter()
            .filter(|i| i.ready || !any_ready)
            .max_by_key(|i| rendezvous_weight(game_id, &i.ws_endpoint))
            .map(|i| i.ws_endpoint.as_str())
    }

    /// The region for a player: the first of `preferred`, `x-user-region`, the country's region
    /// and the default that applies; if it is unhealthy or drained, the nearest available region
    /// (then the table's order, for regions whose place is not known). An unknown `preferred` is an error
    /// (the player asked for something that does not exist); unknown headers are ignored.
    pub fn pick(&self, hints: &RegionHints<'_>) -> Result<Routed, RoutingError> {
        if let Some(preferred) = hints.preferred
            && self.get(preferred).is_none()
        {
            return Err(RoutingError::UnknownRegion(preferred.to_owned()));
        }
        let country = hints
            .country
            .and_then(|c| self.by_country.get(&c.to_ascii_uppercase()))
            .map(|&i| &self.regions[i]);
        let (chosen, by) = [
            (hints.preferred.and_then(|id| self.get(id)), RoutedBy::Preferred),
            (hints.user_region.and_then(|id| self.get(id)), RoutedBy::Header),
            (country, RoutedBy::Country),
        ]
        .into_iter()
        .find_map(|(region, by)| region.map(|r| (r, by)))
        .unwrap_or((&self.regions[self.default_index], RoutedBy::Default));
        let mut others: Vec<&Region> = self.regions.iter().filter(|r| r.id != chosen.id).collect();
        others.sort_by(|a, b| by_distance_from(&chosen.id, &a.id, &b.id));
        let mut skipped = Vec::new();
        for region in std::iter::once(chosen).chain(others) {
            if self.is_available(&region.id) {
                return Ok(Routed { region: region.clone(), by, skipped });
            }
            skipped.push(region.id.clone());
        }
        Err(RoutingError::NoHealthyRegion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_schemas::regions::default_regions;

    fn pick(
        router: &RegionRouter,
        preferred: Option<&str>,
        user: Option<&str>,
        country: Option<&str>,
    ) -> String {
        router.pick(&RegionHints { preferred, user_region: user, country }).unwrap().region.id
    }

    #[test]
    fn priority_is_preferred_then_header_then_country_then_default() {
        let router = RegionRouter::new(default_regions());
        assert_eq!(pick(&router, Some("sa-east-1"), Some("eu-west-1"), Some("JP")), "sa-east-1");
        assert_eq!(pick(&router, None, Some("eu-west-1"), Some("JP")), "eu-west-1");
        assert_eq!(pick(&router, None, Some("mars-1"), Some("jp")), "ap-northeast-1");
        assert_eq!(pick(&router, None, None, Some("DE")), "eu-central-1");
        assert_eq!(pick(&router, None, None, Some("XX")), "us-east-1");
        assert_eq!(pick(&router, None, None, None), "us-east-1");
    }

    #[test]
    fn a_drained_region_s_games_go_to_the_nearest_active_one_until_it_is_restored() {
        use tickcast_schemas::EventBody;
        use tickcast_schemas::region_events::{RegionDrained, RegionRestored};
        let mut router = RegionRouter::new(default_regions());
        let drain = EventBody::RegionDrained(RegionDrained {
            region: "eu-central-1".into(),
            reason: DrainReason::Operator,
        });
        assert!(router.apply(&drain));
        assert_eq!((router.state("eu-central-1"), router.state("eu-west-1")), ("drained", "active"));
        let routed = router.pick(&RegionHints { country: Some("DE"), ..Default::default() }).unwrap();
        assert_eq!(
            (routed.region.id.as_str(), routed.skipped),
            ("eu-west-1", vec!["eu-central-1".to_owned()])
        );
        assert!(router.apply(&EventBody::RegionRestored(RegionRestored { region: "eu-central-1".into() })));
        assert_eq!(pick(&router, None, None, Some("DE")), "eu-central-1");
    }

    #[test]
    fn an_unhealthy_region_s_games_go_to_the_nearest_healthy_one() {
        let mut router = RegionRouter::new(default_regions());
        router.set_healthy("eu-central-1", false);
        let routed = router.pick(&RegionHints { country: Some("DE"), ..Default::default() }).unwrap();
        assert_eq!(routed.region.id, "eu-west-1", "Frankfurt's nearest is Dublin");
        assert_eq!((routed.by, routed.skipped), (RoutedBy::Country, vec!["eu-central-1".to_owned()]));
        router.set_healthy("eu-west-1", false);
        let routed =
            router.pick(&RegionHints { preferred: Some("eu-central-1"), ..Default::default() }).unwrap();
        assert_eq!(routed.region.id, "us-east-1");
        assert_eq!(routed.skipped, ["eu-central-1", "eu-west-1"]);
        assert_eq!(routed.by, RoutedBy::Preferred);
        router.set_healthy("eu-central-1", true);
        let routed = router.pick(&RegionHints { country: Some("DE"), ..Default::default() }).unwrap();
        assert_eq!(
            (routed.region.id.as_str(), routed.skipped.len()),
            ("eu-central-1", 0),
            "back once healthy"
        );
        assert_eq!(
            router.pick(&RegionHints { preferred: Some("mars-1"), ..Default::default() }).unwrap_err(),
            RoutingError::UnknownRegion("mars-1".into())
        );
        for region in default_regions() {
            router.set_healthy(&region.id, false);
        }
        assert_eq!(router.pick(&RegionHints::default()).unwrap_err(), RoutingError::NoHealthyRegion);
    }

    #[test]
    fn games_spread_over_a_region_s_ready_instances_and_only_a_lost_instance_s_games_move() {
        let gateway =
            |id: &str, url: &str| Region { id: id.into(), ws_endpoint: url.into(), countries: vec![] };
        let (a, b, c) = ("ws://a/ws/eu-west-1", "ws://b/ws/eu-west-1", "ws://c/ws/eu-west-1");
        let mut router = RegionRouter::new(vec![
            gateway("eu-west-1", a),
            gateway("eu-west-1", b),
            gateway("eu-west-1", c),
            gateway("us-east-1", "ws://d/ws/us-east-1"),
        ]);
        assert_eq!(router.regions().len(), 2, "one entry per region");
        let games: Vec<String> = (0..300).map(|i| format!("game-{i}")).collect();
        let placed: Vec<String> =
            games.iter().map(|g| router.instance_for("eu-west-1", g).unwrap().to_owned()).collect();
        for instance in [a, b, c] {
            let count = placed.iter().filter(|p| *p == instance).count();
            assert!((60..=140).contains(&count), "{instance} has {count} of 300 games");
        }
        router.set_ready("eu-west-1", b, false);
        assert!(router.is_healthy("eu-west-1"));
        for (game, before) in games.iter().zip(&placed) {
            let now = router.instance_for("eu-west-1", game).unwrap();
            if before == b {
                assert_ne!(now, b, "b's games move");
            } else {
                assert_eq!(now, before, "the others' games stay where they were");
            }
        }
        router.set_ready("eu-west-1", b, true);
        let again: Vec<&str> = games.iter().map(|g| router.instance_for("eu-west-1", g).unwrap()).collect();
        assert_eq!(again, placed, "stable while the set of instances is");
        for instance in [a, b, c] {
            router.set_ready("eu-west-1", instance, false);
        }
        assert!(!router.is_healthy("eu-west-1"));
    }
}
