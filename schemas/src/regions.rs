//! The region table: which regions exist, where their gateways listen, which countries they serve.

use serde::{Deserialize, Serialize};

/// One region's entry in the table (`TICKCAST_REGIONS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Region {
    /// Region id, e.g. `eu-west-1`; also the suffix of its tick topic.
    pub id: String,
    /// Absolute `ws://` or `wss://` URL of the region's gateway; empty when the serving process
    /// fills it in from its own listen address (as `tickcast up` does).
    #[serde(default)]
    pub ws_endpoint: String,
    /// ISO 3166 alpha-2 country codes routed here by `cf-ipcountry`.
    #[serde(default)]
    pub countries: Vec<String>,
}

/// The original design's eight regions, with the countries each one is nearest to.
#[must_use]
pub fn default_regions() -> Vec<Region> {
    let table: [(&str, &[&str]); 8] = [
        (
            "us-east-1",
            &["US", "CA", "MX", "CU", "DO", "PR", "JM", "BS", "PA", "CR", "GT", "HN", "NI", "SV", "BZ"],
        ),
        ("us-west-2", &[]),
        ("eu-west-1", &["IE", "GB", "FR", "ES", "PT", "BE", "NL", "LU", "IS", "MA"]),
        (
            "eu-central-1",
            &[
                "DE", "AT", "CH", "IT", "PL", "CZ", "SK", "HU", "SI", "HR", "DK", "SE", "NO", "FI", "EE",
                "LV", "LT", "RO", "BG", "GR", "RS", "UA", "TR", "IL", "EG", "ZA", "NG", "KE",
            ],
        ),
        ("ap-northeast-1", &["JP", "KR", "TW", "CN", "HK", "MO", "MN"]),
        ("ap-southeast-1", &["SG", "MY", "ID", "TH", "VN", "PH", "AU", "NZ", "KH", "LA", "MM"]),
        ("ap-south-1", &["IN", "PK", "BD", "LK", "NP", "AE", "SA", "QA", "KW", "OM", "BH"]),
        ("sa-east-1", &["BR", "AR", "CL", "CO", "PE", "UY", "PY", "BO", "EC", "VE"]),
    ];
    table
        .iter()
        .map(|(id, countries)| Region {
            id: (*id).to_owned(),
            ws_endpoint: String::new(),
            countries: countries.iter().map(|c| (*c).to_owned()).collect(),
        })
        .collect()
}

/// A region table or gateway entry that cannot be used, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionTableError {
    #[error("region id {0:?} must be letters, digits, '-' or '_'")]
    BadId(String),
    #[error("region {id}: the endpoint {endpoint:?} must be a ws:// or wss:// URL")]
    BadEndpoint { id: String, endpoint: String },
    #[error("expected REGION=ws://HOST:PORT/ws/REGION")]
    NotRegionEqualsUrl,
    #[error("the region table lists no region")]
    Empty,
}

impl Region {
    /// Region `id` served at `ws_endpoint`, routed the countries of the default region of that
    /// id (none for a region of its own).
    #[must_use]
    pub fn named(id: &str, ws_endpoint: &str) -> Self {
        let countries =
            default_regions().into_iter().find(|r| r.id == id).map(|r| r.countries).unwrap_or_default();
        Self { id: id.to_owned(), ws_endpoint: ws_endpoint.to_owned(), countries }
    }
}

/// Parses a region table (`TICKCAST_REGIONS`): comma-separated `id` or `id=ws://…` entries.
/// `id` entries take the default region's countries when it is one of the eight; `id=URL` sets
/// the gateway's public WebSocket URL. None or blank is the eight default regions.
pub fn parse_table(spec: Option<&str>) -> Result<Vec<Region>, RegionTableError> {
    let Some(spec) = spec.filter(|s| !s.trim().is_empty()) else {
        return Ok(default_regions());
    };
    let mut table = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, endpoint) = entry.split_once('=').map_or((entry, ""), |(i, e)| (i.trim(), e.trim()));
        check_id(id)?;
        if !(endpoint.is_empty() || is_ws_url(endpoint)) {
            return Err(RegionTableError::BadEndpoint { id: id.to_owned(), endpoint: endpoint.to_owned() });
        }
        table.push(Region::named(id, endpoint));
    }
    if table.is_empty() {
        return Err(RegionTableError::Empty);
    }
    Ok(table)
}

/// Parses a gateway players of a region connect to: `REGION=ws://HOST:PORT/ws/REGION`.
pub fn parse_gateway(entry: &str) -> Result<Region, RegionTableError> {
    let Some((id, url)) = entry.split_once('=') else {
        return Err(RegionTableError::NotRegionEqualsUrl);
    };
    let (id, url) = (id.trim(), url.trim());
    check_id(id)?;
    if !is_ws_url(url) {
        return Err(RegionTableError::BadEndpoint { id: id.to_owned(), endpoint: url.to_owned() });
    }
    Ok(Region::named(id, url))
}

fn check_id(id: &str) -> Result<(), RegionTableError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(RegionTableError::BadId(id.to_owned()));
    }
    Ok(())
}

fn is_ws_url(url: &str) -> bool {
    url.starts_with("ws://") || url.starts_with("wss://")
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

/// How two regions compare by their distance from `from`: nearer first; regions whose place is
/// not known come after the known ones, in the order they are given (the sort is stable).
#[must_use]
pub fn by_distance_from(from: &str, a: &str, b: &str) -> std::cmp::Ordering {
    match (distance(from, a), distance(from, b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// The region of `candidates` nearest to `from` (other than `from`) that `usable` accepts.
#[must_use]
pub fn nearest<'a>(from: &str, candidates: &'a [String], usable: impl Fn(&str) -> bool) -> Option<&'a str> {
    let mut others: Vec<&String> = candidates.iter().filter(|c| c.as_str() != from && usable(c)).collect();
    others.sort_by(|a, b| by_distance_from(from, a, b));
    others.first().map(|c| c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_names_regions_and_endpoints() {
        assert_eq!(parse_table(None).unwrap(), default_regions());
        assert_eq!(parse_table(Some("  ")).unwrap(), default_regions());
        let table = parse_table(Some("eu-west-1=ws://h:1/ws/eu-west-1, lab")).unwrap();
        assert_eq!(table[0].ws_endpoint, "ws://h:1/ws/eu-west-1");
        assert!(table[0].countries.contains(&"FR".to_owned()), "a default region keeps its countries");
        assert_eq!(table[1], Region { id: "lab".into(), ws_endpoint: String::new(), countries: vec![] });
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        assert_eq!(parse_table(Some("a b")), Err(RegionTableError::BadId("a b".into())));
        assert!(matches!(parse_table(Some("x=http://h")), Err(RegionTableError::BadEndpoint { .. })));
        assert_eq!(parse_table(Some(",")), Err(RegionTableError::Empty));
        assert_eq!(parse_gateway("eu-west-1"), Err(RegionTableError::NotRegionEqualsUrl));
        assert!(matches!(parse_gateway("eu-west-1=http://h"), Err(RegionTableError::BadEndpoint { .. })));
        assert_eq!(parse_gateway("eu-west-1=wss://h/ws/eu-west-1").unwrap().id, "eu-west-1");
    }
}
