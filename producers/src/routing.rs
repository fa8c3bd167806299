//! Region selection (DESIGN §6): preferredRegion → `x-user-region` → `cf-ipcountry` → default,
//! skipping unhealthy regions. Plain data in, a decision out.

use std::collections::{HashMap, HashSet};

use tickcast_schemas::regions::Region;

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
    #[error("no healthy region is available")]
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

/// The region table with each country's region and each region's health.
#[derive(Debug, Clone)]
pub struct RegionRouter {
    regions: Vec<Region>,
    by_country: HashMap<String, usize>,
    unhealthy: HashSet<String>,
    default_index: usize,
}

/// Where the AWS regions of the default table are (latitude, longitude in degrees): when the
/// chosen region is unhealthy, the nearest healthy one takes the game.
const LOCATIONS: [(&str, f64, f64); 8] = [
    ("us-east-1", 38.9, -77.4),
    ("us-west-2", 45.8, -119.7),
    ("eu-west-1", 53.3, -6.3),
    ("eu-central-1", 50.1, 8.7),
    ("ap-northeast-1", 35.7, 139.7),
    ("ap-southeast-1", 1.35, 103.8),
    ("ap-south-1", 19.1, 72.9),
    ("sa-east-1", -23.5, -46.6),
];

/// The great-circle distance between two regions in radians; `None` when either is not one
/// whose place is known.
fn distance(a: &str, b: &str) -> Option<f64> {
    let place = |id: &str| LOCATIONS.iter().find(|(r, _, _)| *r == id).map(|(_, lat, lon)| (*lat, *lon));
    let ((lat1, lon1), (lat2, lon2)) = (place(a)?, place(b)?);
    let (p1, p2, dl) = (lat1.to_radians(), lat2.to_radians(), (lon2 - lon1).to_radians());
    Some((p1.sin() * p2.sin() + p1.cos() * p2.cos() * dl.cos()).clamp(-1.0, 1.0).acos())
}

impl RegionRouter {
    /// A router over `regions`; the first one is the default.
    ///
    /// # Panics
    /// If `regions` is empty (configuration is validated before this is built).
    #[must_use]
    pub fn new(regions: Vec<Region>) -> Self {
        assert!(!regions.is_empty(), "a router needs at least one region");
        let mut by_country = HashMap::new();
        for (index, region) in regions.iter().enumerate() {
            for country in &region.countries {
                by_country.entry(country.to_ascii_uppercase()).or_insert(index);
            }
        }
        Self { regions, by_country, unhealthy: HashSet::new(), default_index: 0 }
    }

    #[must_use]
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// Whether `id` counts as healthy (unknown regions do).
    #[must_use]
    pub fn is_healthy(&self, id: &str) -> bool {
        !self.unhealthy.contains(id)
    }

    /// Marks a region healthy or not; unhealthy regions are skipped.
    pub fn set_healthy(&mut self, id: &str, healthy: bool) {
        if healthy {
            self.unhealthy.remove(id);
        } else {
            self.unhealthy.insert(id.to_owned());
        }
    }

    /// The region for a player: the first of `preferred`, `x-user-region`, the country's region
    /// and the default that applies; if it is unhealthy, the nearest healthy region (then the
    /// table's order, for regions whose place is not known). An unknown `preferred` is an error
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
        // Stable: regions at unknown distances keep the table's order, after the known ones.
        others.sort_by(|a, b| {
            let (da, db) = (distance(&chosen.id, &a.id), distance(&chosen.id, &b.id));
            match (da, db) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        });
        let mut skipped = Vec::new();
        for region in std::iter::once(chosen).chain(others) {
            if !self.unhealthy.contains(&region.id) {
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
}
