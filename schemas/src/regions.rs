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
