//! Reading boundary features from files, for the importer.
//!
//! This module owns the file formats: it turns the bytes of a boundary file into
//! [`RawFeature`]s (properties plus a GeoJSON geometry) in file order, and nothing more.
//! Deciding which properties become a jurisdiction's id or name, and validating the
//! geometry types, is the importer's job.
//!
//! Supported inputs, detected from the content (magic bytes), not from the file name:
//! - a GeoJSON `FeatureCollection`, or a single `Feature` (read as a collection of one),
//!   plain or gzip-compressed (`.geojson`, `.json`, `.geojson.gz`);
//! - a zip archive holding one ESRI Shapefile (`.shp` + `.dbf`, optionally `.shx`, `.prj`,
//!   `.cpg`), such as a Census TIGER/Line download;
//! - through [`read_features`] only, a bare `.shp` path whose `.dbf` (and `.prj`) sit beside it.
//!
//! Shapefiles must be in geographic lon/lat. Census TIGER/Line files are NAD83 (`GEOGCS`);
//! NAD83 and WGS84 differ by about a metre, far below the precision of the bundled
//! boundaries, so NAD83 coordinates are used as WGS84 as they are. A `.prj` holding a projected
//! CRS (`PROJCS`) is refused, as is a `.shp` whose bounding box is outside lon/lat range.
//!
//! Malformed input never panics: every failure is a [`ReadError`] naming the file. Archive
//! members and gzip streams are limited to [`MAX_UNCOMPRESSED_BYTES`] once decompressed.

use std::io::{Cursor, Read};
use std::path::Path;

use geojson::{Geometry, GeometryValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use shapefile::dbase;

/// The largest decompressed size accepted for one zip member or one gzip stream: 2 GiB.
pub const MAX_UNCOMPRESSED_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// One feature as read from a file: its properties and its geometry as GeoJSON.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFeature {
    /// Zero-based position of the feature in the file (the shapefile record number).
    pub index: usize,
    /// The feature's properties (GeoJSON `properties`, or the shapefile's `.dbf` attributes
    /// in field order). Empty when the file has none.
    pub properties: Map<String, Value>,
    /// The geometry, in RFC 7946 GeoJSON terms; `None` for a null geometry / null shape.
    pub geometry: Option<Geometry>,
}

/// Why a boundary file could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read from disk.
    #[error("{name}: cannot read the file: {source}")]
    Io {
        /// The file.
        name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The gzip stream is corrupt or truncated.
    #[error("{name}: invalid or truncated gzip data: {source}")]
    Gzip {
        /// The file.
        name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The content is not well-formed JSON.
    #[error("{name}: invalid JSON: {source}")]
    Json {
        /// The file.
        name: String,
        /// The underlying error (it carries the line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The content is JSON but not a GeoJSON FeatureCollection or Feature.
    #[error("{name}: invalid GeoJSON: {message}")]
    GeoJson {
        /// The file.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The zip archive is corrupt or uses an unsupported feature.
    #[error("{name}: invalid zip archive: {source}")]
    Zip {
        /// The file.
        name: String,
        /// The underlying error.
        #[source]
        source: zip::result::ZipError,
    },
    /// The zip archive holds no `.shp` member.
    #[error("{name}: the zip archive holds no .shp file (members: {members})")]
    NoShapefileInZip {
        /// The file.
        name: String,
        /// The archive's member names, comma-separated.
        members: String,
    },
    /// The shapefile (`.shp`, `.dbf`, `.prj`) is malformed or unsupported.
    #[error("{name}: invalid shapefile: {message}")]
    Shapefile {
        /// The file.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The shapefile is not in geographic lon/lat coordinates.
    #[error(
        "{name}: the shapefile must be in geographic lon/lat coordinates (GEOGCS, e.g. WGS84 or \
         NAD83), but {detail}; reproject it first (e.g. ogr2ogr -t_srs EPSG:4326)"
    )]
    NotGeographic {
        /// The file.
        name: String,
        /// The projected CRS found, or the offending bounding box.
        detail: String,
    },
    /// A zip member or gzip stream is larger than the limit ([`MAX_UNCOMPRESSED_BYTES`] or less).
    #[error("{name}: {member} is larger than {limit} bytes uncompressed; refusing to read it")]
    TooLarge {
        /// The file.
        name: String,
        /// The member (or "the gzip content").
        member: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The content is none of the supported formats.
    #[error("{name}: unsupported format: {detail}")]
    UnsupportedFormat {
        /// The file.
        name: String,
        /// What was found instead.
        detail: String,
    },
}

/// Reads a GeoJSON FeatureCollection (plain `.geojson`/`.json`, or gzipped `.gz`, detected by
/// gzip magic bytes, not just the name) or a zipped ESRI Shapefile (`.zip` holding
/// .shp/.dbf/.shx, e.g. Census TIGER/Line), returning the features in file order.
///
/// A single GeoJSON `Feature` is read as a collection of one. A path ending in `.shp` is read
/// together with the `.dbf` (required) and `.prj` (optional) beside it.
pub fn read_features(path: &Path) -> Result<Vec<RawFeature>, ReadError> {
    let name = path.display().to_string();
    let read = |p: &Path| std::fs::read(p).map_err(|source| ReadError::Io { name: p.display().to_string(), source });
    let is_shp = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("shp"));
    if is_shp {
        let shp = read(path)?;
        let dbf = read(&sibling(path, "dbf"))?;
        let prj_path = sibling(path, "prj");
        let prj = if prj_path.exists() { Some(String::from_utf8_lossy(&read(&prj_path)?).into_owned()) } else { None };
        return read_shapefile(&shp, dbf, prj.as_deref(), &name);
    }
    let bytes = read(path)?;
    read_features_from_bytes(&bytes, &name)
}

/// Same from bytes already in memory (the admin bulk import uses it); `name` only for messages.
pub fn read_features_from_bytes(bytes: &[u8], name: &str) -> Result<Vec<RawFeature>, ReadError> {
    read_features_from_bytes_limited(bytes, name, MAX_UNCOMPRESSED_BYTES)
}

/// Like [`read_features_from_bytes`], with a smaller cap than
/// [`MAX_UNCOMPRESSED_BYTES`] on what a gzip stream or zip member may
/// decompress to (the admin bulk import passes its configured limit, so a
/// small upload cannot make the server allocate gigabytes).
pub fn read_features_from_bytes_limited(bytes: &[u8], name: &str, limit: u64) -> Result<Vec<RawFeature>, ReadError> {
    let limit = limit.min(MAX_UNCOMPRESSED_BYTES);
    if bytes.starts_with(&GZIP_MAGIC) {
        let data = gunzip(bytes, name, limit)?;
        if data.starts_with(&GZIP_MAGIC) || data.starts_with(&ZIP_MAGIC) {
            return Err(ReadError::UnsupportedFormat {
                name: name.to_owned(),
                detail: "a gzip stream must hold GeoJSON, not another archive".to_owned(),
            });
        }
        return read_json_or_err(&data, name);
    }
    if bytes.starts_with(&ZIP_MAGIC) || bytes.starts_with(&ZIP_EMPTY_MAGIC) {
        return read_zipped_shapefile(bytes, name, limit);
    }
    read_json_or_err(bytes, name)
}

/// The JSON text of a plain or gzip-compressed GeoJSON document, with a leading UTF-8 BOM
/// removed, for readers that need more of the document than [`RawFeature`]s (the registry
/// export dump keeps each geometry's exact text and a top-level foreign member).
///
/// `Ok(None)` when the content is not a JSON object (a zip archive, a shapefile, empty...);
/// [`read_features_from_bytes`] reports why such content cannot be read.
pub fn geojson_text<'a>(bytes: &'a [u8], name: &str) -> Result<Option<std::borrow::Cow<'a, [u8]>>, ReadError> {
    let data: std::borrow::Cow<'a, [u8]> = if bytes.starts_with(&GZIP_MAGIC) {
        std::borrow::Cow::Owned(gunzip(bytes, name, MAX_UNCOMPRESSED_BYTES)?)
    } else {
        bytes.into()
    };
    let start = if data.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    if data[start..].iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Ok(None);
    }
    Ok(Some(match data {
        std::borrow::Cow::Borrowed(b) => std::borrow::Cow::Borrowed(&b[start..]),
        std::borrow::Cow::Owned(mut v) => {
            v.drain(..start);
            std::borrow::Cow::Owned(v)
        }
    }))
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";
const ZIP_EMPTY_MAGIC: [u8; 4] = *b"PK\x05\x06";
const SHP_MAGIC: [u8; 4] = [0x00, 0x00, 0x27, 0x0a];

fn sibling(path: &Path, ext: &str) -> std::path::PathBuf {
    // Keep the case style of the .shp's extension (TIGER is lower case, some are upper).
    let upper = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "SHP");
    path.with_extension(if upper { ext.to_ascii_uppercase() } else { ext.to_owned() })
}

/// Decompresses a (possibly multi-member) gzip stream, up to the size limit.
fn gunzip(bytes: &[u8], name: &str, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| ReadError::Gzip { name: name.to_owned(), source })?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge { name: name.to_owned(), member: "the gzip content".to_owned(), limit });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// GeoJSON
// ---------------------------------------------------------------------------------------

/// The top level of a GeoJSON document, deserialized in one streaming pass (the `geojson`
/// crate's own `FeatureCollection` buffers the whole document because of its foreign members).
#[derive(Deserialize)]
struct TopLevel {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    features: Option<Vec<JsonFeature>>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    #[serde(default)]
    geometry: Option<Geometry>,
}

#[derive(Deserialize)]
struct JsonFeature {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    #[serde(default)]
    geometry: Option<Geometry>,
}

fn read_json_or_err(bytes: &[u8], name: &str) -> Result<Vec<RawFeature>, ReadError> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => read_geojson(text, name),
        Some(_) if bytes.starts_with(&SHP_MAGIC) => Err(ReadError::UnsupportedFormat {
            name: name.to_owned(),
            detail: "a bare .shp has no attributes without its .dbf: zip the .shp, .shx, .dbf \
                     and .prj together, or read the .shp by path"
                .to_owned(),
        }),
        Some(_) => Err(ReadError::UnsupportedFormat {
            name: name.to_owned(),
            detail: format!(
                "expected GeoJSON, gzipped GeoJSON or a zipped shapefile; the content starts with \
                 {:02x?}",
                &bytes[..bytes.len().min(8)]
            ),
        }),
        None => Err(ReadError::UnsupportedFormat { name: name.to_owned(), detail: "the content is empty".to_owned() }),
    }
}

fn read_geojson(text: &[u8], name: &str) -> Result<Vec<RawFeature>, ReadError> {
    let top: TopLevel = serde_json::from_slice(text).map_err(|source| {
        if source.is_data() {
            ReadError::GeoJson { name: name.to_owned(), message: source.to_string() }
        } else {
            ReadError::Json { name: name.to_owned(), source }
        }
    })?;
    let geojson_err = |message: String| ReadError::GeoJson { name: name.to_owned(), message };
    match top.kind.as_str() {
        "FeatureCollection" => {
            let features =
                top.features.ok_or_else(|| geojson_err("the FeatureCollection has no \"features\"".into()))?;
            features
                .into_iter()
                .enumerate()
                .map(|(index, f)| {
                    if f.kind != "Feature" {
                        return Err(geojson_err(format!(
                            "feature {index} has type {:?}, expected \"Feature\"",
                            f.kind
                        )));
                    }
                    Ok(RawFeature { index, properties: f.properties.unwrap_or_default(), geometry: f.geometry })
                })
                .collect()
        }
        "Feature" => {
            Ok(vec![RawFeature { index: 0, properties: top.properties.unwrap_or_default(), geometry: top.geometry }])
        }
        other => Err(geojson_err(format!(
            "top-level type is {other:?}; expected \"FeatureCollection\" or \"Feature\" (a bare \
             geometry has no properties to name a jurisdiction)"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Zip archives
// ---------------------------------------------------------------------------------------

fn read_zipped_shapefile(bytes: &[u8], name: &str, limit: u64) -> Result<Vec<RawFeature>, ReadError> {
    let zip_err = |source| ReadError::Zip { name: name.to_owned(), source };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_err)?;
    let members: Vec<String> = archive.file_names().map(str::to_owned).collect();
    let is_data = |m: &str, ext: &str| {
        let lower = m.to_ascii_lowercase();
        lower.ends_with(ext) && !lower.starts_with("__macosx/") && !lower.contains("/__macosx/")
    };
    let shps: Vec<&String> = members.iter().filter(|m| is_data(m, ".shp")).collect();
    let shp_name = match shps.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let mut list = members.clone();
            list.sort();
            return Err(ReadError::NoShapefileInZip {
                name: name.to_owned(),
                members: if list.is_empty() { "none".to_owned() } else { list.join(", ") },
            });
        }
        many => {
            return Err(ReadError::Shapefile {
                name: name.to_owned(),
                message: format!(
                    "the zip archive holds {} .shp files ({}); import them one at a time",
                    many.len(),
                    many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            })
        }
    };
    let stem = &shp_name[..shp_name.len() - 4];
    let find = |ext: &str| {
        members.iter().find(|m| m.len() == stem.len() + 4 && m.starts_with(stem) && is_data(m, ext)).cloned()
    };
    let dbf_name = find(".dbf").ok_or_else(|| ReadError::Shapefile {
        name: name.to_owned(),
        message: format!("the zip archive has {shp_name} but no {stem}.dbf beside it"),
    })?;
    let shp = read_member(&mut archive, &shp_name, name, limit)?;
    let dbf = read_member(&mut archive, &dbf_name, name, limit)?;
    let prj = match find(".prj") {
        Some(p) => Some(String::from_utf8_lossy(&read_member(&mut archive, &p, name, limit)?).into_owned()),
        None => None,
    };
    read_shapefile(&shp, dbf, prj.as_deref(), name)
}

fn read_member(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    member: &str,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, ReadError> {
    let too_large = || ReadError::TooLarge { name: name.to_owned(), member: member.to_owned(), limit };
    let file = archive.by_name(member).map_err(|source| ReadError::Zip { name: name.to_owned(), source })?;
    if file.size() > limit {
        return Err(too_large());
    }
    // The declared size may lie: cap the actual read too. The capacity hint is capped so
    // that a lying header cannot make us reserve memory up front.
    let mut out = Vec::with_capacity(file.size().min(64 * 1024 * 1024) as usize);
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| ReadError::Zip { name: name.to_owned(), source: zip::result::ZipError::Io(source) })?;
    if out.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Shapefiles
// ---------------------------------------------------------------------------------------

/// Reads a shapefile from its `.shp` and `.dbf` contents and optional `.prj` text.
///
/// The `.dbf`'s strings are decoded as UTF-8, lossily (the `dbase` crate is built without
/// code-page support): TIGER/Line declares UTF-8 in its `.cpg`; text in another code page
/// keeps its ASCII characters and gets U+FFFD for the others.
fn read_shapefile(shp: &[u8], mut dbf: Vec<u8>, prj: Option<&str>, name: &str) -> Result<Vec<RawFeature>, ReadError> {
    let shp_err = |message: String| ReadError::Shapefile { name: name.to_owned(), message };
    if let Some(crs) = prj.and_then(projected_crs_name) {
        return Err(ReadError::NotGeographic {
            name: name.to_owned(),
            detail: format!("its .prj holds the projected CRS {crs:?}"),
        });
    }
    let bbox = validate_shp(shp).map_err(shp_err)?;
    if let Some([xmin, ymin, xmax, ymax]) = bbox {
        const SLACK: f64 = 1e-6;
        let lon_ok = |x: f64| (-180.0 - SLACK..=180.0 + SLACK).contains(&x);
        let lat_ok = |y: f64| (-90.0 - SLACK..=90.0 + SLACK).contains(&y);
        if !(lon_ok(xmin) && lon_ok(xmax) && lat_ok(ymin) && lat_ok(ymax)) {
            return Err(ReadError::NotGeographic {
                name: name.to_owned(),
                detail: format!("its bounding box [{xmin}, {ymin}, {xmax}, {ymax}] is outside lon/lat range"),
            });
        }
    }
    // Open every code page as "undefined", which the dbase crate decodes as lossy UTF-8;
    // otherwise any code page it was not built for (e.g. the common CP1252) is an error.
    if let Some(mark) = dbf.get_mut(29) {
        *mark = 0;
    }
    // The parsers index into slices built from header values; a malformed file could
    // still make them panic. Turn that into an error rather than taking the process down.
    let parsed = std::panic::catch_unwind(|| parse_shapefile(shp, &dbf));
    let (shapes, fields, records) = match parsed {
        Ok(result) => result.map_err(shp_err)?,
        Err(_) => return Err(shp_err("malformed content (the parser failed)".to_owned())),
    };
    if shapes.len() != records.len() {
        return Err(shp_err(format!(
            "the .shp has {} shapes but the .dbf has {} records",
            shapes.len(),
            records.len()
        )));
    }
    shapes
        .into_iter()
        .zip(records)
        .enumerate()
        .map(|(index, (shape, mut record))| {
            let mut properties = Map::new();
            for field in &fields {
                let value = record.remove(field).map_or(Value::Null, field_to_json);
                properties.insert(field.clone(), value);
            }
            let geometry = shape_to_geometry(shape).map_err(|m| shp_err(format!("record {index}: {m}")))?;
            Ok(RawFeature { index, properties, geometry })
        })
        .collect()
}

type Parsed = (Vec<shapefile::Shape>, Vec<String>, Vec<dbase::Record>);

fn parse_shapefile(shp: &[u8], dbf: &[u8]) -> Result<Parsed, String> {
    let shapes =
        shapefile::ShapeReader::new(Cursor::new(shp)).and_then(|r| r.read()).map_err(|e| format!(".shp: {e}"))?;
    let mut dbf_reader = dbase::Reader::new(Cursor::new(dbf)).map_err(|e| format!(".dbf: {e}"))?;
    let fields: Vec<String> = dbf_reader.fields().iter().map(|f| f.name().to_owned()).collect();
    let records = dbf_reader.read().map_err(|e| format!(".dbf: {e}"))?;
    Ok((shapes, fields, records))
}

/// Returns the CRS name when the `.prj` WKT is a projected CRS (`PROJCS` / `PROJCRS`).
fn projected_crs_name(prj: &str) -> Option<String> {
    let wkt = prj.trim_start_matches('\u{feff}').trim_start();
    let upper = wkt.to_ascii_uppercase();
    if !(upper.starts_with("PROJCS") || upper.starts_with("PROJCRS")) {
        return None;
    }
    let name = wkt.split('"').nth(1).filter(|n| !n.is_empty()).unwrap_or("unnamed");
    Some(name.to_owned())
}

/// Walks the `.shp` records and checks that each record's part and point counts fit in the
/// record, so that the shapefile crate never sizes an allocation from a bogus count.
/// Returns the header's bounding box when the file has at least one non-null shape.
fn validate_shp(shp: &[u8]) -> Result<Option<[f64; 4]>, String> {
    if shp.len() < 100 {
        return Err(format!(".shp is {} bytes, shorter than its 100-byte header", shp.len()));
    }
    if shp[..4] != SHP_MAGIC {
        return Err(".shp does not start with the shapefile file code 9994".to_owned());
    }
    let be_i32 =
        |at: usize| -> Option<i32> { shp.get(at..at + 4).and_then(|b| b.try_into().ok()).map(i32::from_be_bytes) };
    let le_i32 =
        |at: usize| -> Option<i32> { shp.get(at..at + 4).and_then(|b| b.try_into().ok()).map(i32::from_le_bytes) };
    let le_f64 =
        |at: usize| -> Option<f64> { shp.get(at..at + 8).and_then(|b| b.try_into().ok()).map(f64::from_le_bytes) };
    let declared = be_i32(24).map_or(0, |words| i64::from(words) * 2);
    if declared < 100 || declared as u64 > shp.len() as u64 {
        return Err(format!(".shp header declares {declared} bytes but the file has {} (truncated?)", shp.len()));
    }
    let end = declared as usize;
    let mut at = 100usize;
    let mut any_shape = false;
    let mut record = 0usize;
    while at < end {
        let content_words = be_i32(at + 4).ok_or_else(|| format!("record {record}: truncated header"))?;
        let content = usize::try_from(content_words)
            .ok()
            .and_then(|w| w.checked_mul(2))
            .filter(|len| *len >= 4 && at + 8 + len <= end)
            .ok_or_else(|| format!("record {record}: bad content length {content_words}"))?;
        let start = at + 8;
        let shape_type = le_i32(start).unwrap_or(-1);
        let count = |off: usize| -> Result<usize, String> {
            let v = if off + 4 <= content { le_i32(start + off) } else { None };
            v.and_then(|v| usize::try_from(v).ok()).ok_or_else(|| format!("record {record}: bad part or point count"))
        };
        // Minimum content size for the shape's part/point arrays (x, y only; the Z and M
        // arrays come after and are bounded by the same counts).
        let needed = match shape_type {
            0 => 4,
            1 | 11 | 21 => 20,
            8 | 18 | 28 => 40usize.saturating_add(count(36)?.saturating_mul(16)),
            3 | 5 | 13 | 15 | 23 | 25 => {
                44usize.saturating_add(count(36)?.saturating_mul(4)).saturating_add(count(40)?.saturating_mul(16))
            }
            31 => 44usize.saturating_add(count(36)?.saturating_mul(8)).saturating_add(count(40)?.saturating_mul(16)),
            other => return Err(format!("record {record}: unknown shape type {other}")),
        };
        if needed > content {
            return Err(format!(
                "record {record}: its part/point counts need {needed} bytes but the record has {content}"
            ));
        }
        any_shape |= shape_type != 0;
        at = start + content;
        record += 1;
    }
    if !any_shape {
        return Ok(None);
    }
    match (le_f64(36), le_f64(44), le_f64(52), le_f64(60)) {
        (Some(a), Some(b), Some(c), Some(d)) => Ok(Some([a, b, c, d])),
        _ => Ok(None),
    }
}

/// Converts one `.dbf` value: strings and memos to strings, numbers to numbers (integral
/// values as integers), logicals to booleans, dates to `YYYY-MM-DD` strings, date-times to
/// `YYYY-MM-DDTHH:MM:SS` strings; blanks and non-finite numbers to null.
fn field_to_json(value: dbase::FieldValue) -> Value {
    use dbase::FieldValue as F;
    let number = |f: f64| {
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            Value::from(f as i64)
        } else {
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
    };
    let date = |d: dbase::Date| format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
    match value {
        F::Character(s) => s.map_or(Value::Null, Value::String),
        F::Memo(s) => Value::String(s),
        F::Numeric(n) => n.map_or(Value::Null, number),
        F::Float(n) => n.map_or(Value::Null, |f| number(f64::from(f))),
        F::Integer(i) => Value::from(i),
        F::Currency(f) | F::Double(f) => number(f),
        F::Logical(b) => b.map_or(Value::Null, Value::Bool),
        F::Date(d) => d.map_or(Value::Null, |d| Value::String(date(d))),
        F::DateTime(dt) => {
            let t = dt.time();
            Value::String(format!("{}T{:02}:{:02}:{:02}", date(dt.date()), t.hours(), t.minutes(), t.seconds()))
        }
    }
}

/// A position as GeoJSON wants it: `[x, y]` or `[x, y, z]`.
type Pos = Vec<f64>;
/// A closed ring of positions.
type Ring = Vec<Pos>;

/// Converts a shape to GeoJSON: polygons via [`group_rings`], polylines to (Multi)LineString,
/// points and multipoints to Point / MultiPoint; Z values are kept, M values dropped.
fn shape_to_geometry(shape: shapefile::Shape) -> Result<Option<Geometry>, String> {
    use shapefile::Shape as S;
    let xy = |x: f64, y: f64| vec![x, y];
    let xyz = |x: f64, y: f64, z: f64| vec![x, y, z];
    let geometry = match shape {
        S::NullShape => return Ok(None),
        S::Point(p) => GeometryValue::new_point(xy(p.x, p.y)),
        S::PointM(p) => GeometryValue::new_point(xy(p.x, p.y)),
        S::PointZ(p) => GeometryValue::new_point(xyz(p.x, p.y, p.z)),
        S::Multipoint(m) => GeometryValue::new_multi_point(m.points().iter().map(|p| xy(p.x, p.y))),
        S::MultipointM(m) => GeometryValue::new_multi_point(m.points().iter().map(|p| xy(p.x, p.y))),
        S::MultipointZ(m) => GeometryValue::new_multi_point(m.points().iter().map(|p| xyz(p.x, p.y, p.z))),
        S::Polyline(l) => lines(l.parts().iter().map(|part| part.iter().map(|p| xy(p.x, p.y)).collect())),
        S::PolylineM(l) => lines(l.parts().iter().map(|part| part.iter().map(|p| xy(p.x, p.y)).collect())),
        S::PolylineZ(l) => lines(l.parts().iter().map(|part| part.iter().map(|p| xyz(p.x, p.y, p.z)).collect())),
        S::Polygon(p) => {
            return Ok(polygons(p.rings().iter().map(|r| r.points().iter().map(|p| xy(p.x, p.y)).collect())))
        }
        S::PolygonM(p) => {
            return Ok(polygons(p.rings().iter().map(|r| r.points().iter().map(|p| xy(p.x, p.y)).collect())))
        }
        S::PolygonZ(p) => {
            return Ok(polygons(p.rings().iter().map(|r| r.points().iter().map(|p| xyz(p.x, p.y, p.z)).collect())))
        }
        S::Multipatch(_) => return Err("Multipatch shapes are not supported".to_owned()),
    };
    Ok(Some(Geometry::new(geometry)))
}

fn lines(parts: impl Iterator<Item = Vec<Pos>>) -> GeometryValue {
    let mut parts: Vec<Vec<Pos>> = parts.collect();
    if parts.len() == 1 {
        GeometryValue::new_line_string(parts.remove(0))
    } else {
        GeometryValue::new_multi_line_string(parts)
    }
}

fn polygons(rings: impl Iterator<Item = Ring>) -> Option<Geometry> {
    let mut polys = group_rings(rings.collect());
    match polys.len() {
        0 => None,
        1 => Some(Geometry::new(GeometryValue::new_polygon(polys.remove(0)))),
        _ => Some(Geometry::new(GeometryValue::new_multi_polygon(polys))),
    }
}

/// Twice the signed area of a ring (shoelace): positive for counter-clockwise.
fn signed_area2(ring: &[Pos]) -> f64 {
    ring.windows(2).map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1]).sum()
}

/// Where a point lies relative to a ring.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Inside,
    Outside,
    Boundary,
}

/// Even-odd point-in-ring test that reports points on an edge as [`Location::Boundary`].
fn locate(x: f64, y: f64, ring: &[Pos]) -> Location {
    let mut inside = false;
    for w in ring.windows(2) {
        let (x1, y1, x2, y2) = (w[0][0], w[0][1], w[1][0], w[1][1]);
        let cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1);
        if cross == 0.0 && x >= x1.min(x2) && x <= x1.max(x2) && y >= y1.min(y2) && y <= y1.max(y2) {
            return Location::Boundary;
        }
        if (y1 > y) != (y2 > y) && x < x1 + (y - y1) * (x2 - x1) / (y2 - y1) {
            inside = !inside;
        }
    }
    if inside {
        Location::Inside
    } else {
        Location::Outside
    }
}

/// Whether `hole` lies inside `outer`: decided by the hole's first vertex, or by the next
/// vertex when that one is on the outer ring's boundary (holes may touch their shell).
fn ring_contains(outer: &[Pos], hole: &[Pos]) -> bool {
    for p in hole {
        match locate(p[0], p[1], outer) {
            Location::Inside => return true,
            Location::Outside => return false,
            Location::Boundary => continue,
        }
    }
    false
}

/// Groups shapefile polygon rings into GeoJSON polygons with RFC 7946 winding.
///
/// A shapefile polygon is a flat list of rings: outer rings clockwise, holes
/// counter-clockwise. Each hole goes to the smallest outer ring that contains it (tested
/// with the hole's first vertex, see [`ring_contains`]); a "hole" inside no outer ring is
/// kept as an outer ring of its own rather than dropped. Degenerate rings (zero area) are
/// kept as outer rings. Output: one `Vec<Ring>` per polygon, exterior first and
/// counter-clockwise, holes clockwise, polygons in the order of their outer rings.
fn group_rings(rings: Vec<Ring>) -> Vec<Vec<Ring>> {
    struct Shell {
        rings: Vec<Ring>,
        area: f64,
        bbox: [f64; 4],
    }
    let bbox = |r: &[Pos]| {
        r.iter().fold([f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY], |b, p| {
            [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])]
        })
    };
    let mut shells: Vec<Shell> = Vec::new();
    let mut holes: Vec<Ring> = Vec::new();
    for ring in rings {
        if ring.is_empty() {
            continue;
        }
        let area = signed_area2(&ring);
        if area > 0.0 {
            holes.push(ring);
        } else {
            shells.push(Shell { area: area.abs(), bbox: bbox(&ring), rings: vec![ring] });
        }
    }
    let mut orphans: Vec<Ring> = Vec::new();
    for hole in holes {
        let hb = bbox(&hole);
        let best = shells
            .iter()
            .enumerate()
            .filter(|(_, s)| s.bbox[0] <= hb[0] && s.bbox[1] <= hb[1] && s.bbox[2] >= hb[2] && s.bbox[3] >= hb[3])
            .filter(|(_, s)| ring_contains(&s.rings[0], &hole))
            .min_by(|(_, a), (_, b)| a.area.total_cmp(&b.area))
            .map(|(i, _)| i);
        match best {
            Some(i) => shells[i].rings.push(hole),
            None => orphans.push(hole),
        }
    }
    let mut out: Vec<Vec<Ring>> = shells.into_iter().map(|s| s.rings).collect();
    out.extend(orphans.into_iter().map(|r| vec![r]));
    for poly in &mut out {
        for (i, ring) in poly.iter_mut().enumerate() {
            let area = signed_area2(ring);
            // Exterior counter-clockwise (positive area), holes clockwise (negative).
            if (i == 0 && area < 0.0) || (i > 0 && area > 0.0) {
                ring.reverse();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fixture(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    fn polygons_of(g: &Geometry) -> Vec<Vec<Vec<Pos>>> {
        let to = |rings: &Vec<Vec<geojson::Position>>| -> Vec<Vec<Pos>> {
            rings.iter().map(|r| r.iter().map(|p| p.as_slice().to_vec()).collect()).collect()
        };
        match &g.value {
            GeometryValue::Polygon { coordinates } => vec![to(coordinates)],
            GeometryValue::MultiPolygon { coordinates } => coordinates.iter().map(to).collect(),
            other => panic!("not a polygon: {}", other.type_name()),
        }
    }

    /// Number of records according to the .dbf header (bytes 4..8, little-endian).
    fn dbf_record_count(zip_bytes: &[u8], member: &str) -> usize {
        let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes)).expect("zip");
        let mut dbf = Vec::new();
        archive.by_name(member).expect("dbf member").read_to_end(&mut dbf).expect("read dbf");
        u32::from_le_bytes(dbf[4..8].try_into().expect("4 bytes")) as usize
    }

    #[test]
    fn reads_every_indiana_place_from_tiger_zip() {
        let path = fixture("tests/fixtures/tl_2019_18_place.zip");
        let features = read_features(&path).expect("TIGER zip reads");
        let bytes = std::fs::read(&path).expect("fixture");
        let expected = dbf_record_count(&bytes, "tl_2019_18_place.dbf");
        assert_eq!(expected, 679);
        assert_eq!(features.len(), expected);
        for (i, f) in features.iter().enumerate() {
            assert_eq!(f.index, i);
            assert_eq!(f.properties.get("STATEFP"), Some(&Value::from("18")));
            let g = f.geometry.as_ref().expect("every place has a geometry");
            for poly in polygons_of(g) {
                assert!(signed_area2(&poly[0]) > 0.0, "exterior must be CCW");
                for hole in &poly[1..] {
                    assert!(signed_area2(hole) < 0.0, "holes must be CW");
                }
            }
        }
        let total_holes: usize = features
            .iter()
            .map(|f| polygons_of(f.geometry.as_ref().expect("geometry")).iter().map(|p| p.len() - 1).sum::<usize>())
            .sum();
        assert_eq!(total_holes, 585, "every TIGER hole is kept");

        let bloomington = features
            .iter()
            .find(|f| f.properties.get("GEOID") == Some(&Value::from("1805860")))
            .expect("Bloomington is in the file");
        assert_eq!(bloomington.properties.get("NAME"), Some(&Value::from("Bloomington")));
        assert_eq!(bloomington.properties.get("NAMELSAD"), Some(&Value::from("Bloomington city")));
        assert_eq!(bloomington.properties.get("ALAND"), Some(&Value::from(60_180_425)));
        // Every .dbf field becomes a property (their order follows serde_json's map type).
        assert_eq!(bloomington.properties.len(), 16);
        assert_eq!(bloomington.properties.get("PCINECTA"), Some(&Value::from("N")));
        let g = bloomington.geometry.as_ref().expect("geometry");
        assert_eq!(g.value.type_name(), "MultiPolygon");
        let polys = polygons_of(g);
        assert_eq!(polys.len(), 3);
        assert_eq!(polys.iter().map(|p| p.len() - 1).sum::<usize>(), 3);
        // The Census internal point lies inside the city.
        let (x, y) = (-86.5242642, 39.1637003);
        let inside = polys.iter().any(|p| {
            locate(x, y, &p[0]) == Location::Inside && p[1..].iter().all(|h| locate(x, y, h) == Location::Outside)
        });
        assert!(inside);
    }

    #[test]
    fn reads_tiger_zip_from_bytes_like_from_path() {
        let path = fixture("tests/fixtures/tl_2019_18_place.zip");
        let bytes = std::fs::read(&path).expect("fixture");
        let a = read_features_from_bytes(&bytes, "upload.zip").expect("bytes");
        let b = read_features(&path).expect("path");
        assert_eq!(a, b);
    }

    #[test]
    fn reads_gzipped_geojson_states() {
        let features = read_features(&fixture("boundaries/us/states.geojson.gz")).expect("states read");
        assert_eq!(features.len(), 56);
        assert!(features.iter().all(|f| f.geometry.is_some()));
        assert!(features.iter().all(|f| f.properties.get("level") == Some(&Value::from("state"))));
    }

    #[test]
    fn gzip_is_detected_by_magic_not_name() {
        let json = br#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"id":"a"},"geometry":null}]}"#;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(json).expect("gzip");
        let gz = enc.finish().expect("gzip");
        let features = read_features_from_bytes(&gz, "named-like-plain.geojson").expect("reads");
        assert_eq!(features.len(), 1);
        assert_eq!(features[0].properties.get("id"), Some(&Value::from("a")));
        assert!(features[0].geometry.is_none());
    }

    #[test]
    fn reads_a_single_feature() {
        let json = br#" {"type":"Feature","id":7,"properties":{"name":"Square"},
            "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}}"#;
        let features = read_features_from_bytes(json, "one.geojson").expect("reads");
        assert_eq!(features.len(), 1);
        assert_eq!(features[0].index, 0);
        assert_eq!(features[0].properties.get("name"), Some(&Value::from("Square")));
        let g = features[0].geometry.as_ref().expect("geometry");
        assert_eq!(g.value.type_name(), "Polygon");
    }

    #[test]
    fn feature_with_null_properties_has_empty_map() {
        let json = br#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":null,"geometry":{"type":"Point","coordinates":[1,2]}}]}"#;
        let features = read_features_from_bytes(json, "x.json").expect("reads");
        assert!(features[0].properties.is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        let err = read_features_from_bytes(b"\x00\x01garbage\xff", "junk.bin").expect_err("junk");
        assert!(matches!(err, ReadError::UnsupportedFormat { .. }), "{err}");
        assert!(err.to_string().contains("junk.bin"));
        let err = read_features_from_bytes(b"", "empty.geojson").expect_err("empty");
        assert!(matches!(err, ReadError::UnsupportedFormat { .. }), "{err}");
        let err = read_features_from_bytes(b"{\"type\": \"Feature", "cut.geojson").expect_err("cut");
        assert!(matches!(err, ReadError::Json { .. }), "{err}");
        let err =
            read_features_from_bytes(br#"{"type":"Point","coordinates":[0,0]}"#, "pt.json").expect_err("bare geometry");
        assert!(matches!(err, ReadError::GeoJson { .. }), "{err}");
        let err = read_features_from_bytes(br#"{"type":"FeatureCollection","features":[1]}"#, "n.json")
            .expect_err("number as feature");
        assert!(matches!(err, ReadError::GeoJson { .. }), "{err}");
        let err = read_features_from_bytes(b"PK\x03\x04 not really a zip", "fake.zip").expect_err("fake zip");
        assert!(matches!(err, ReadError::Zip { .. }), "{err}");
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let bytes = std::fs::read(fixture("boundaries/us/states.geojson.gz")).expect("fixture");
        let cut = &bytes[..bytes.len() / 2];
        let err = read_features_from_bytes(cut, "states.geojson.gz").expect_err("truncated");
        assert!(matches!(err, ReadError::Gzip { .. }), "{err}");
        assert!(err.to_string().contains("states.geojson.gz"));
    }

    fn make_zip(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in members {
            let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
            w.start_file(*name, stored).expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    /// The fixture's members, for building variants of it.
    fn tiger_members() -> Vec<(String, Vec<u8>)> {
        let bytes = std::fs::read(fixture("tests/fixtures/tl_2019_18_place.zip")).expect("fixture");
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
        (0..archive.len())
            .map(|i| {
                let mut f = archive.by_index(i).expect("member");
                let mut data = Vec::new();
                f.read_to_end(&mut data).expect("read");
                (f.name().to_owned(), data)
            })
            .collect()
    }

    fn zip_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
        let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        make_zip(&refs)
    }

    #[test]
    fn zip_without_shp_is_an_error() {
        let zip = make_zip(&[("readme.txt", b"hello"), ("data.dbf", b"x")]);
        let err = read_features_from_bytes(&zip, "no-shp.zip").expect_err("no .shp");
        assert!(matches!(err, ReadError::NoShapefileInZip { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("no-shp.zip") && msg.contains("readme.txt"), "{msg}");
    }

    #[test]
    fn zip_without_dbf_is_an_error() {
        let members: Vec<_> = tiger_members().into_iter().filter(|(n, _)| !n.ends_with(".dbf")).collect();
        let err = read_features_from_bytes(&zip_of(&members), "no-dbf.zip").expect_err("no dbf");
        assert!(matches!(err, ReadError::Shapefile { .. }), "{err}");
    }

    #[test]
    fn projected_prj_is_refused() {
        let prj = br#"PROJCS["NAD83 / New York Long Island (ftUS)",GEOGCS["NAD83",DATUM["North_American_Datum_1983",SPHEROID["GRS 1980",6378137,298.257222101]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Lambert_Conformal_Conic_2SP"],UNIT["US survey foot",0.3048006096012192]]"#;
        let members: Vec<_> = tiger_members()
            .into_iter()
            .map(|(n, d)| if n.ends_with(".prj") { (n, prj.to_vec()) } else { (n, d) })
            .collect();
        let err = read_features_from_bytes(&zip_of(&members), "ny.zip").expect_err("projected");
        assert!(matches!(err, ReadError::NotGeographic { .. }), "{err}");
        assert!(err.to_string().contains("New York Long Island"), "{err}");
    }

    #[test]
    fn corrupted_shapefiles_are_errors_not_panics() {
        let members = tiger_members();
        let shp_idx = members.iter().position(|(n, _)| n.ends_with(".shp")).expect("shp");
        let dbf_idx = members.iter().position(|(n, _)| n.ends_with(".dbf")).expect("dbf");
        // Truncated .shp, truncated .dbf, and a bogus point count in the first record.
        let mut variants = Vec::new();
        let mut v = members.clone();
        v[shp_idx].1.truncate(5000);
        variants.push(v);
        let mut v = members.clone();
        v[dbf_idx].1.truncate(3000);
        variants.push(v);
        let mut v = members.clone();
        v[shp_idx].1[100 + 8 + 40..100 + 8 + 44].copy_from_slice(&i32::MAX.to_le_bytes());
        variants.push(v);
        let mut v = members.clone();
        v[shp_idx].1[100 + 8 + 36..100 + 8 + 40].copy_from_slice(&(-5i32).to_le_bytes());
        variants.push(v);
        let mut v = members.clone();
        v[dbf_idx].1[4..8].copy_from_slice(&10u32.to_le_bytes());
        variants.push(v);
        for (i, v) in variants.iter().enumerate() {
            let result = read_features_from_bytes(&zip_of(v), "broken.zip");
            assert!(result.is_err(), "variant {i} should fail");
        }
        // Every prefix of a small shapefile archive fails cleanly or reads.
        let small = make_zip(&[("a.shp", &members[shp_idx].1[..100])]);
        for len in 0..small.len() {
            let _ = read_features_from_bytes(&small[..len], "prefix.zip");
        }
    }

    fn square(x0: f64, y0: f64, size: f64, clockwise: bool) -> Ring {
        let mut r =
            vec![vec![x0, y0], vec![x0 + size, y0], vec![x0 + size, y0 + size], vec![x0, y0 + size], vec![x0, y0]];
        if clockwise {
            r.reverse();
        }
        r
    }

    #[test]
    fn groups_holes_into_their_smallest_containing_outer_ring() {
        // Shapefile order and winding: outers clockwise, holes counter-clockwise.
        let big = square(0.0, 0.0, 10.0, true);
        let hole_in_big = square(1.0, 1.0, 2.0, false);
        let island = square(4.0, 4.0, 4.0, true); // inside big's area, in its own hole
        let hole_around_island = square(3.0, 3.0, 6.0, false);
        let hole_in_island = square(5.0, 5.0, 1.0, false);
        let far = square(20.0, 0.0, 1.0, true);
        let hole_touching_far = vec![
            vec![20.0, 0.0], // on far's boundary: the next vertex decides
            vec![20.5, 0.25],
            vec![20.5, 0.5],
            vec![20.0, 0.0],
        ];
        let orphan = square(50.0, 50.0, 1.0, false);
        let polys = group_rings(vec![
            hole_in_island.clone(),
            big.clone(),
            far.clone(),
            orphan.clone(),
            island.clone(),
            hole_in_big.clone(),
            hole_around_island.clone(),
            hole_touching_far.clone(),
        ]);
        assert_eq!(polys.len(), 4);
        let rev = |mut r: Ring| {
            r.reverse();
            r
        };
        // Outer rings come back counter-clockwise, holes clockwise.
        assert_eq!(polys[0], vec![rev(big), rev(hole_in_big), rev(hole_around_island)]);
        assert_eq!(
            polys[1],
            vec![rev(far), {
                let mut h = hole_touching_far;
                if signed_area2(&h) > 0.0 {
                    h.reverse();
                }
                h
            }]
        );
        assert_eq!(polys[2], vec![rev(island), rev(hole_in_island)]);
        assert_eq!(polys[3], vec![orphan], "an uncontained hole becomes a CCW outer ring");
        for p in &polys {
            assert!(signed_area2(&p[0]) > 0.0);
            assert!(p[1..].iter().all(|h| signed_area2(h) < 0.0));
        }
    }

    #[test]
    fn locate_reports_boundary_points() {
        let sq = square(0.0, 0.0, 2.0, false);
        assert_eq!(locate(1.0, 1.0, &sq), Location::Inside);
        assert_eq!(locate(3.0, 1.0, &sq), Location::Outside);
        assert_eq!(locate(2.0, 1.0, &sq), Location::Boundary);
        assert_eq!(locate(0.0, 0.0, &sq), Location::Boundary);
    }

    #[test]
    fn dbf_values_convert_to_json() {
        use dbase::FieldValue as F;
        assert_eq!(field_to_json(F::Character(Some("x".into()))), Value::from("x"));
        assert_eq!(field_to_json(F::Character(None)), Value::Null);
        assert_eq!(field_to_json(F::Numeric(Some(42.0))), Value::from(42));
        assert_eq!(field_to_json(F::Numeric(Some(1.5))), Value::from(1.5));
        assert_eq!(field_to_json(F::Numeric(Some(f64::NAN))), Value::Null);
        assert_eq!(field_to_json(F::Logical(Some(true))), Value::from(true));
        assert_eq!(field_to_json(F::Date(Some(dbase::Date::new(9, 3, 2019)))), Value::from("2019-03-09"));
    }

    #[test]
    fn reads_shp_by_path_with_sibling_dbf() {
        let dir = std::env::temp_dir().join(format!("rdr-shp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        for (n, d) in tiger_members() {
            std::fs::write(dir.join(&n), d).expect("write member");
        }
        let features = read_features(&dir.join("tl_2019_18_place.shp")).expect("reads by path");
        assert_eq!(features.len(), 679);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = read_features(Path::new("/nonexistent/x.geojson")).expect_err("missing");
        assert!(matches!(err, ReadError::Io { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/x.geojson"));
    }
}
