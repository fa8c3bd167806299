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

/// The region table with each country's region and each region's health.
#[derive(Debug, Clone)]
pub struct RegionRouter {
    regions: Vec<Region>,
    by_country: HashMap<String, usize>,
    unhealthy: HashSet<String>,
    default_index: usize,
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

    /// Marks a region healthy or not; unhealthy regions are skipped.
    pub fn set_healthy(&mut self, id: &str, healthy: bool) {
        if healthy {
            self.unhealthy.remove(id);
        } else {
            self.unhealthy.insert(id.to_owned());
        }
    }

    /// The region for a player. An unknown `preferred` is an error (the player asked for
    /// something that does not exist); unknown headers are ignored. When the chosen region is
    /// unhealthy, the next candidate of the chain is tried, then the first healthy region.
    pub fn pick(&self, hints: &RegionHints<'_>) -> Result<&Region, RoutingError> {
        if let Some(preferred) = hints.preferred
            && self.get(preferred).is_none()
        {
            return Err(RoutingError::UnknownRegion(preferred.to_owned()));
        }
        let country = hints
            .country
            .and_then(|c| self.by_country.get(&c.to_ascii_uppercase()))
            .map(|&i| &self.regions[i]);
        [hints.preferred.and_then(|id| self.get(id)), hints.user_region.and_then(|id| self.get(id)), country]
            .into_iter()
            .flatten()
            .chain(std::iter::once(&self.regions[self.default_index]))
            .chain(self.regions.iter())
            .find(|region| !self.unhealthy.contains(&region.id))
            .ok_or(RoutingError::NoHealthyRegion)
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
        router.pick(&RegionHints { preferred, user_region: user, country }).unwrap().id.clone()
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
    fn unhealthy_regions_are_skipped_and_unknown_preferences_refused() {
        let mut router = RegionRouter::new(default_regions());
        router.set_healthy("eu-central-1", false);
        assert_eq!(pick(&router, None, None, Some("DE")), "us-east-1");
        router.set_healthy("us-east-1", false);
        assert_eq!(pick(&router, None, None, None), "us-west-2");
        assert_eq!(
            router.pick(&RegionHints { preferred: Some("mars-1"), ..Default::default() }).unwrap_err(),
            RoutingError::UnknownRegion("mars-1".into())
        );
    }
}
