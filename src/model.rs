//! The registry's data model: jurisdictions, their Open311 endpoints and the
//! GeoReport v2 services each endpoint offers.
//!
//! These types are shared by the store, the index and the HTTP layer. They
//! hold no geometry logic: boundaries are `geo::MultiPolygon<f64>` in WGS84
//! lon/lat (RFC 7946 axis order) and live in [`crate::geometry`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The level of government a jurisdiction belongs to. Answers are ordered by
/// [`Tier::rank`]: country first, `other` last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// A sovereign country.
    Country,
    /// A state, province or other first-level subdivision.
    State,
    /// A county or county equivalent (second level).
    County,
    /// A city, town, borough or other municipality.
    Place,
    /// A special-purpose district (school, police, council, transit...).
    SpecialDistrict,
    /// Anything else that serves an area.
    Other,
}

impl Tier {
    /// Every tier, in rank order.
    pub const ALL: [Tier; 6] =
        [Tier::Country, Tier::State, Tier::County, Tier::Place, Tier::SpecialDistrict, Tier::Other];

    /// Sort rank: 0 for country, growing towards more local tiers.
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// The stable lower-case name used in JSON, SQL and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Country => "country",
            Tier::State => "state",
            Tier::County => "county",
            Tier::Place => "place",
            Tier::SpecialDistrict => "special_district",
            Tier::Other => "other",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown tier name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown tier `{0}` (expected one of country, state, county, place, special_district, other)")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownTier(s.to_owned()))
    }
}

/// A jurisdiction without its boundary geometry (the geometry is kept apart,
/// as GeoJSON text in the store and as prepared polygons in the index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = JurisdictionRecord)]
pub struct Jurisdiction {
    /// Stable key, e.g. `us-county:18105`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Level of government.
    pub tier: Tier,
    /// The smallest containing jurisdiction of a higher tier, if any.
    pub parent: Option<String>,
    /// True when `parent` was set explicitly rather than computed.
    #[serde(skip)]
    pub parent_override: bool,
    /// Open Civic Data division id, unique when present.
    pub ocd_id: Option<String>,
    /// Codes of the source layers (FIPS, GEOID, ISO 3166-2, ...).
    pub external_ids: BTreeMap<String, String>,
    /// Where the boundary comes from.
    pub source: Option<String>,
    /// Licence of the boundary data.
    pub license: Option<String>,
    /// Geodesic area of the boundary in km², used to order answers.
    pub area_km2: f64,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change to this record or its boundary
    /// (`last_updated` in JSON; `updated_at` is read too).
    #[serde(rename = "last_updated", alias = "updated_at")]
    pub updated_at: String,
    /// Record version, incremented on each change (basis of its ETag).
    pub version: i64,
}

/// Whether an endpoint is meant for real requests or for testing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointType {
    /// Live server: requests reach the government's CRM.
    Production,
    /// Test or sandbox server.
    Test,
}

impl EndpointType {
    /// The stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointType::Production => "production",
            EndpointType::Test => "test",
        }
    }
}

impl FromStr for EndpointType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "production" => Ok(EndpointType::Production),
            "test" => Ok(EndpointType::Test),
            other => Err(format!("unknown endpoint type `{other}` (expected production or test)")),
        }
    }
}

/// An Open311 server, described with the fields of the Open311 Service
/// Discovery document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// Stable key of the endpoint.
    pub id: String,
    /// The jurisdiction this endpoint serves.
    pub jurisdiction_id: String,
    /// Specification URL, e.g. `http://wiki.open311.org/GeoReport_v2`.
    pub specification: String,
    /// Base URL of the API.
    pub url: String,
    /// `production` or `test`.
    #[serde(rename = "type")]
    pub kind: EndpointType,
    /// MIME types the server answers in.
    pub formats: Vec<String>,
    /// The `jurisdiction_id` parameter the server expects, if any.
    pub open311_jurisdiction_id: Option<String>,
    /// Where to request an API key.
    pub key_service: Option<String>,
    /// The server's Service Discovery document, if it publishes one.
    pub discovery_url: Option<String>,
    /// Human documentation of the API.
    pub docs_url: Option<String>,
    /// Terms of use.
    pub terms_url: Option<String>,
    /// Who to contact about the server.
    pub contact: Option<String>,
    /// Discovery `changeset`: when the server's description last changed.
    pub changeset: Option<String>,
    /// Last health check time (RFC 3339).
    pub last_checked: Option<String>,
    /// Last time a health check succeeded (RFC 3339).
    pub last_ok: Option<String>,
    /// Health status (`unknown`, `up`, `down`).
    pub status: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change (`last_updated` in JSON; `updated_at` is read too).
    #[serde(rename = "last_updated", alias = "updated_at")]
    pub updated_at: String,
    /// Record version, incremented on each change.
    pub version: i64,
    /// Details of the last harvest attempt (see [`Health`]).
    #[serde(flatten, default)]
    pub health: Health,
    /// The services this endpoint offers.
    pub services: Vec<Service>,
}

/// What the harvester learnt the last time it fetched an endpoint's service
/// list (besides `last_checked`, `last_ok` and `status` on the endpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// HTTP status of the last attempt, if a response came back.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Time the last attempt took, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Why the last attempt failed; `None` after a success.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// `ETag` of the last service list fetched, for a conditional GET (internal).
    #[serde(skip)]
    pub etag: Option<String>,
    /// `Last-Modified` of the last service list fetched (internal).
    #[serde(skip)]
    pub last_modified: Option<String>,
}

/// Where a service entry comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceSource {
    /// Entered through the admin API (or an import); the harvester never touches it.
    #[default]
    Manual,
    /// Read from the endpoint's own `services.json` by the harvester.
    Harvested,
}

impl ServiceSource {
    /// The stable lower-case name used in JSON and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceSource::Manual => "manual",
            ServiceSource::Harvested => "harvested",
        }
    }
}

/// A GeoReport v2 service offered by an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Service {
    /// Unique code of the service on its endpoint.
    pub service_code: String,
    /// Human-readable name.
    pub service_name: String,
    /// Longer description.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether the service defines extra attributes.
    #[serde(default)]
    pub metadata: bool,
    /// `realtime`, `batch` or `blackbox`.
    #[serde(rename = "type", default = "default_service_type")]
    pub kind: String,
    /// Search keywords.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Category the service belongs to.
    #[serde(default)]
    pub group: Option<String>,
    /// Entered by hand or harvested from the endpoint.
    #[serde(default)]
    pub source: ServiceSource,
}

fn default_service_type() -> String {
    "realtime".to_owned()
}

/// The GeoReport v2 specification URL most endpoints declare.
pub const GEOREPORT_V2: &str = "http://wiki.open311.org/GeoReport_v2";

/// Checks a jurisdiction or endpoint id: 1 to 200 characters, no control
/// characters and no `/` (ids are used as URL path segments).
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 200 {
        return Err(format!("id must have 1 to 200 characters, got {}", id.len()));
    }
    if id.chars().any(|c| c.is_control() || c == '/') {
        return Err(format!("id `{}` contains a control character or `/`", id.escape_debug()));
    }
    Ok(())
}
