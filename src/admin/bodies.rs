//! Request bodies of the admin API and their validation. Every refusal is a
//! 400 naming the JSON field at fault; nothing here touches the store.

use crate::error::ApiError;
use crate::geometry;
use crate::model::{validate_id, Endpoint, EndpointType, Jurisdiction, Service, Tier, GEOREPORT_V2};
use crate::store::{now_rfc3339, StoredJurisdiction};
use geo::MultiPolygon;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::field(field, format!("`{field}` must not be empty")));
    }
    if v.chars().count() > max {
        return Err(ApiError::field(field, format!("`{field}` must be at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ApiError::field(field, format!("`{field}` must not contain control characters")));
    }
    Ok(v.to_owned())
}

fn opt_text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    v.map(|v| text(field, &v, max)).transpose()
}

/// External ids: at most 50, keys of at most 100 and values of at most 500
/// characters, none empty or with control characters (as every text field).
fn external_ids(field: &str, ids: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    if ids.len() > 50 {
        return Err(ApiError::field(field, format!("`{field}` may hold at most 50 ids")));
    }
    ids.into_iter().map(|(k, v)| Ok((text(field, &k, 100)?, text(&format!("{field}.{k}"), &v, 500)?))).collect()
}

/// An absolute `http` or `https` URL with a host.
pub fn http_url(field: &str, v: &str) -> Result<String, ApiError> {
    let v = text(field, v, 2048)?;
    let parsed = url::Url::parse(&v)
        .map_err(|e| ApiError::field(field, format!("`{field}` must be an absolute http(s) URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::field(field, format!("`{field}` must be an absolute http(s) URL")));
    }
    Ok(v)
}

fn opt_url(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    v.map(|v| http_url(field, &v)).transpose()
}

fn formats(v: Vec<String>) -> Result<Vec<String>, ApiError> {
    if v.is_empty() {
        return Err(ApiError::field("formats", "`formats` must name at least one MIME type"));
    }
    v.into_iter()
        .enumerate()
        .map(|(i, f)| {
            let f = f.trim().to_ascii_lowercase();
            let ok = f.len() <= 100
                && f.split_once('/').is_some_and(|(a, b)| {
                    let part =
                        |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
                    part(a) && part(b)
                });
            if ok {
                Ok(f)
            } else {
                Err(ApiError::field(
                    format!("formats[{i}]"),
                    "each format must be a MIME type such as application/json",
                ))
            }
        })
        .collect()
}

fn parse_geometry(field: &str, v: serde_json::Value, max_vertices: usize) -> Result<MultiPolygon<f64>, ApiError> {
    let g: geojson::Geometry = serde_json::from_value(v).map_err(|e| ApiError::BadRequest {
        code: "invalid_geometry",
        detail: format!("`{field}` is not a GeoJSON geometry: {e}"),
        field: Some(field.into()),
    })?;
    geometry::validate_strict(&g, max_vertices).map_err(|e| ApiError::BadRequest {
        code: "invalid_geometry",
        detail: e.to_string(),
        field: Some(field.into()),
    })
}

fn check_ocd_id(v: Option<String>) -> Result<Option<String>, ApiError> {
    let v = opt_text("properties.ocd_id", v, 300)?;
    if let Some(o) = &v {
        if !o.starts_with("ocd-division/") {
            return Err(ApiError::field(
                "ocd_id",
                "`ocd_id` must be an Open Civic Data division id (ocd-division/...)",
            ));
        }
    }
    Ok(v)
}

/// `POST /admin/v1/jurisdictions`: a GeoJSON Feature.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewJurisdiction)]
pub struct JurisdictionFeature {
    /// Must be `Feature`.
    #[serde(rename = "type")]
    #[schema(pattern = "^Feature$")]
    kind: String,
    /// Ignored (the id is `properties.id`).
    #[serde(default)]
    id: Option<serde_json::Value>,
    /// The record's fields.
    properties: JurisdictionProps,
    /// The boundary: a GeoJSON `Polygon` or `MultiPolygon` (WGS84 lon/lat), valid by OGC rules.
    #[schema(value_type = Object)]
    geometry: serde_json::Value,
    /// Ignored.
    #[serde(default)]
    bbox: Option<serde_json::Value>,
}

/// The properties of a new jurisdiction.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewJurisdictionProperties)]
struct JurisdictionProps {
    /// Stable key: 1 to 200 characters, no `/` or control characters.
    #[schema(min_length = 1, max_length = 200)]
    id: String,
    /// Human-readable name (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// Level of government.
    tier: Tier,
    /// An existing jurisdiction to use as parent (derived from the boundary when absent).
    #[serde(default)]
    parent: Option<String>,
    /// Open Civic Data division id (`ocd-division/...`).
    #[serde(default)]
    ocd_id: Option<String>,
    /// Codes of the source layers.
    #[serde(default)]
    external_ids: BTreeMap<String, String>,
    /// Where the boundary comes from.
    #[serde(default)]
    source: Option<String>,
    /// Licence of the boundary data.
    #[serde(default)]
    license: Option<String>,
}

impl JurisdictionFeature {
    /// Validates the feature and builds the record to store, with the parsed boundary.
    pub fn into_stored(self, max_vertices: usize) -> Result<(StoredJurisdiction, MultiPolygon<f64>), ApiError> {
        if self.kind != "Feature" {
            return Err(ApiError::field("type", "the body must be a GeoJSON Feature (`\"type\": \"Feature\"`)"));
        }
        let _ = (self.id, self.bbox);
        let p = self.properties;
        validate_id(&p.id).map_err(|e| ApiError::field("properties.id", e))?;
        let boundary = parse_geometry("geometry", self.geometry, max_vertices)?;
        let now = now_rfc3339();
        let record = Jurisdiction {
            name: text("properties.name", &p.name, 200)?,
            id: p.id,
            tier: p.tier,
            parent_override: p.parent.is_some(),
            parent: opt_text("properties.parent", p.parent, 200)?,
            ocd_id: check_ocd_id(p.ocd_id)?,
            external_ids: external_ids("properties.external_ids", p.external_ids)?,
            source: opt_text("properties.source", p.source, 500)?,
            license: opt_text("properties.license", p.license, 500)?,
            area_km2: geometry::area_km2(&boundary),
            created_at: now.clone(),
            updated_at: now,
            version: 1,
        };
        let stored = StoredJurisdiction { record, boundary: geometry::to_geojson_value(&boundary).to_string() };
        Ok((stored, boundary))
    }
}

/// `PATCH /admin/v1/jurisdictions/{id}`: fields to change; `null` clears an optional one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JurisdictionPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    parent: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    ocd_id: Option<Option<String>>,
    #[serde(default)]
    external_ids: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "double_option")]
    source: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    license: Option<Option<String>>,
    /// A new boundary: a GeoJSON `Polygon` or `MultiPolygon`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    boundary: Option<serde_json::Value>,
}

impl JurisdictionPatch {
    /// Applies the patch to the stored record, validating each given field.
    pub fn apply(self, mut j: StoredJurisdiction, max_vertices: usize) -> Result<StoredJurisdiction, ApiError> {
        let r = &mut j.record;
        if let Some(name) = self.name {
            r.name = text("name", &name, 200)?;
        }
        if let Some(parent) = self.parent {
            r.parent_override = parent.is_some();
            r.parent = opt_text("parent", parent, 200)?;
        }
        if let Some(ocd) = self.ocd_id {
            r.ocd_id =
                check_ocd_id(ocd).map_err(|_| ApiError::field("ocd_id", "`ocd_id` must start with ocd-division/"))?;
        }
        if let Some(ext) = self.external_ids {
            r.external_ids = external_ids("external_ids", ext)?;
        }
        if let Some(source) = self.source {
            r.source = opt_text("source", source, 500)?;
        }
        if let Some(license) = self.license {
            r.license = opt_text("license", license, 500)?;
        }
        if let Some(boundary) = self.boundary {
            let mp = parse_geometry("boundary", boundary, max_vertices)?;
            r.area_km2 = geometry::area_km2(&mp);
            j.boundary = geometry::to_geojson_value(&mp).to_string();
        }
        Ok(j)
    }
}

/// GeoReport v2 `keywords`: a comma-separated string or a list.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum Keywords {
    Text(String),
    List(Vec<String>),
}

/// A service as written by a client (GeoReport v2 fields).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceWrite {
    service_code: String,
    service_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: bool,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    keywords: Option<Keywords>,
    #[serde(default)]
    group: Option<String>,
}

impl ServiceWrite {
    /// Validates one service; `prefix` names its place in the body (e.g. `services[2].`).
    pub fn into_service(self, prefix: &str) -> Result<Service, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        let kind = match self.kind.as_deref().map(str::trim) {
            None | Some("") => "realtime".to_owned(),
            Some(k @ ("realtime" | "batch" | "blackbox")) => k.to_owned(),
            Some(other) => {
                return Err(ApiError::field(
                    f("type"),
                    format!("unknown service type `{other}` (expected realtime, batch or blackbox)"),
                ))
            }
        };
        let keywords = match self.keywords {
            None => Vec::new(),
            Some(Keywords::Text(t)) => {
                t.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned).collect()
            }
            Some(Keywords::List(l)) => l.into_iter().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect(),
        };
        if keywords.len() > 100 {
            return Err(ApiError::field(f("keywords"), "at most 100 keywords"));
        }
        // Each keyword: at most 100 characters, no control characters.
        let keywords = keywords.iter().map(|k| text(&f("keywords"), k, 100)).collect::<Result<Vec<_>, _>>()?;
        Ok(Service {
            service_code: text(&f("service_code"), &self.service_code, 100)?,
            service_name: text(&f("service_name"), &self.service_name, 200)?,
            description: opt_text(&f("description"), self.description, 5000)?,
            metadata: self.metadata,
            kind,
            keywords,
            group: opt_text(&f("group"), self.group, 200)?,
            source: crate::model::ServiceSource::Manual,
        })
    }
}

/// Validates a service list: each service, and unique codes.
pub fn services(list: Vec<ServiceWrite>, prefix: &str) -> Result<Vec<Service>, ApiError> {
    if list.len() > 1000 {
        return Err(ApiError::field(format!("{prefix}services"), "at most 1000 services per endpoint"));
    }
    let mut seen = HashSet::new();
    list.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.into_service(&format!("{prefix}[{i}]."))?;
            if !seen.insert(s.service_code.clone()) {
                return Err(ApiError::field(
                    format!("{prefix}[{i}].service_code"),
                    format!("duplicate service_code `{}`", s.service_code),
                ));
            }
            Ok(s)
        })
        .collect()
}

fn default_spec() -> String {
    GEOREPORT_V2.to_owned()
}

fn default_formats() -> Vec<String> {
    vec!["application/json".to_owned(), "text/xml".to_owned()]
}

/// `POST /admin/v1/jurisdictions/{id}/endpoints`: Open311 Service Discovery fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointWrite {
    #[serde(default = "default_spec")]
    specification: String,
    url: String,
    #[serde(rename = "type", default = "production")]
    kind: EndpointType,
    #[serde(default = "default_formats")]
    formats: Vec<String>,
    #[serde(default)]
    open311_jurisdiction_id: Option<String>,
    #[serde(default)]
    key_service: Option<String>,
    #[serde(default)]
    discovery_url: Option<String>,
    #[serde(default)]
    docs_url: Option<String>,
    #[serde(default)]
    terms_url: Option<String>,
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    changeset: Option<String>,
    #[serde(default)]
    services: Vec<ServiceWrite>,
}

fn production() -> EndpointType {
    EndpointType::Production
}

/// A fresh endpoint id: `ep-` and 16 random hex digits.
fn new_endpoint_id() -> String {
    format!("ep-{:016x}", rand::random::<u64>())
}

impl EndpointWrite {
    /// Validates the body and builds the endpoint of `jurisdiction_id`.
    pub fn into_endpoint(self, jurisdiction_id: &str) -> Result<Endpoint, ApiError> {
        let now = now_rfc3339();
        Ok(Endpoint {
            id: new_endpoint_id(),
            jurisdiction_id: jurisdiction_id.to_owned(),
            specification: text("specification", &self.specification, 500)?,
            url: http_url("url", &self.url)?,
            kind: self.kind,
            formats: formats(self.formats)?,
            open311_jurisdiction_id: opt_text("open311_jurisdiction_id", self.open311_jurisdiction_id, 200)?,
            key_service: opt_url("key_service", self.key_service)?,
            discovery_url: opt_url("discovery_url", self.discovery_url)?,
            docs_url: opt_url("docs_url", self.docs_url)?,
            terms_url: opt_url("terms_url", self.terms_url)?,
            contact: opt_text("contact", self.contact, 500)?,
            changeset: opt_text("changeset", self.changeset, 100)?,
            last_checked: None,
            last_ok: None,
            status: "unknown".to_owned(),
            created_at: now.clone(),
            updated_at: now,
            version: 1,
            health: crate::model::Health::default(),
            services: services(self.services, "services")?,
        })
    }
}

/// `PATCH /admin/v1/endpoints/{id}`: fields to change; `null` clears an optional one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[serde(default)]
    specification: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<EndpointType>,
    #[serde(default)]
    formats: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    open311_jurisdiction_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    key_service: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    discovery_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    docs_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    terms_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    contact: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    changeset: Option<Option<String>>,
    #[serde(default)]
    services: Option<Vec<ServiceWrite>>,
}

impl EndpointPatch {
    /// Applies the patch, validating each given field.
    pub fn apply(self, mut e: Endpoint) -> Result<Endpoint, ApiError> {
        if let Some(v) = self.specification {
            e.specification = text("specification", &v, 500)?;
        }
        if let Some(v) = self.url {
            e.url = http_url("url", &v)?;
        }
        if let Some(v) = self.kind {
            e.kind = v;
        }
        if let Some(v) = self.formats {
            e.formats = formats(v)?;
        }
        if let Some(v) = self.open311_jurisdiction_id {
            e.open311_jurisdiction_id = opt_text("open311_jurisdiction_id", v, 200)?;
        }
        if let Some(v) = self.key_service {
            e.key_service = opt_url("key_service", v)?;
        }
        if let Some(v) = self.discovery_url {
            e.discovery_url = opt_url("discovery_url", v)?;
        }
        if let Some(v) = self.docs_url {
            e.docs_url = opt_url("docs_url", v)?;
        }
        if let Some(v) = self.terms_url {
            e.terms_url = opt_url("terms_url", v)?;
        }
        if let Some(v) = self.contact {
            e.contact = opt_text("contact", v, 500)?;
        }
        if let Some(v) = self.changeset {
            e.changeset = opt_text("changeset", v, 100)?;
        }
        if let Some(v) = self.services {
            e.services = services(v, "services")?;
        }
        Ok(e)
    }
}
