//! The admin web console: the static files of the top-level `admin/` folder,
//! embedded in the binary and served at `/admin/` (and `/admin`, which
//! redirects there).
//!
//! The console is plain HTML, CSS and ES modules with no build step; it talks
//! to the public API and to `/admin/v1/` with a bearer token that the user
//! pastes and that stays in the tab's `sessionStorage`.
//!
//! Every console response carries a strict `Content-Security-Policy` (no
//! inline script, nothing from other origins), `X-Content-Type-Options:
//! nosniff`, `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`.
//!
//! The map needs no tiles. An operator may still configure a background tile
//! layer with the environment variable [`TILE_URL_VAR`]
//! (`GEOWEBDNS_CONSOLE_TILE_URL`), an `http(s)` URL template with `{z}`, `{x}`
//! and `{y}`: the page then gets it as `data-tile-url` and the CSP allows
//! images from that one origin.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// Environment variable naming an optional map tile URL template
/// (`https://tiles.example.org/{z}/{x}/{y}.png`).
pub const TILE_URL_VAR: &str = "GEOWEBDNS_CONSOLE_TILE_URL";

/// One embedded file: its name under `/admin/`, media type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX_HTML: &str = include_str!("../admin/index.html");

/// Every file of the console except `index.html` (which is rendered per configuration).
const ASSETS: &[Asset] = &[
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../admin/app.js") },
    Asset { name: "api.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../admin/api.js") },
    Asset { name: "map.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../admin/map.js") },
    Asset { name: "style.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../admin/style.css") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_bytes!("../admin/favicon.svg") },
];

/// The console's configuration, fixed when the router is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Tile URL template and the origin it loads from, if tiles are configured.
    pub tiles: Option<(String, String)>,
}

impl ConsoleConfig {
    /// Reads [`TILE_URL_VAR`]; an unusable value is logged and ignored (the map works without tiles).
    pub fn from_env() -> Self {
        match std::env::var(TILE_URL_VAR) {
            Ok(v) if !v.trim().is_empty() => Self::with_tile_url(v.trim()).unwrap_or_else(|e| {
                tracing::warn!(variable = TILE_URL_VAR, reason = %e, "ignoring the console tile URL");
                Self::default()
            }),
            _ => Self::default(),
        }
    }

    /// A configuration with a tile URL template: an absolute `http(s)` URL with
    /// `{z}`, `{x}` and `{y}` and no quotes or spaces.
    pub fn with_tile_url(template: &str) -> Result<Self, String> {
        if ["{z}", "{x}", "{y}"].iter().any(|p| !template.contains(p)) {
            return Err("the tile URL template must contain {z}, {x} and {y}".into());
        }
        if template.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'<>;`\\".contains(c)) {
            return Err("the tile URL template contains a character that is not allowed".into());
        }
        let probe = template.replace("{z}", "0").replace("{x}", "0").replace("{y}", "0");
        let url = url::Url::parse(&probe).map_err(|e| format!("not an absolute URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("the tile URL must be http or https with a host".into());
        }
        let origin = url.origin().ascii_serialization();
        Ok(Self { tiles: Some((template.to_owned(), origin)) })
    }

    /// The `Content-Security-Policy` of console responses.
    pub fn csp(&self) -> String {
        let img = match &self.tiles {
            Some((_, origin)) => format!("'self' data: {origin}"),
            None => "'self' data:".to_owned(),
        };
        format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src {img}; connect-src 'self'; \
             font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
    }

    /// `index.html` with the tile template (if any) as the `data-tile-url` of `<body>`.
    fn index_html(&self) -> String {
        match &self.tiles {
            // The template was checked to hold no quotes or angle brackets; `&` is escaped.
            Some((template, _)) => INDEX_HTML.replacen(
                "<body>",
                &format!("<body data-tile-url=\"{}\">", template.replace('&', "&amp;")),
                1,
            ),
            None => INDEX_HTML.to_owned(),
        }
    }
}

/// The console routes, configured from the environment (see [`ConsoleConfig::from_env`]).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    router_with(ConsoleConfig::from_env())
}

/// The console routes with an explicit configuration.
pub fn router_with<S: Clone + Send + Sync + 'static>(config: ConsoleConfig) -> Router<S> {
    let headers = Arc::new(security_headers(&config));
    let index = Arc::new(config.index_html());
    let index_headers = headers.clone();
    let mut router = Router::new().route("/admin", get(|| async { Redirect::permanent("/admin/") })).route(
        "/admin/",
        get(move || {
            let (headers, index) = (index_headers.clone(), index.clone());
            async move { respond(&headers, "text/html; charset=utf-8", index.as_bytes().to_vec()) }
        }),
    );
    for asset in ASSETS {
        let headers = headers.clone();
        router = router.route(
            &format!("/admin/{}", asset.name),
            get(move || {
                let headers = headers.clone();
                async move { respond(&headers, asset.content_type, asset.body.to_vec()) }
            }),
        );
    }
    router
}

fn security_headers(config: &ConsoleConfig) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(csp) = HeaderValue::from_str(&config.csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Small files: always revalidate, so an upgraded binary's console is used at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h
}

fn respond(headers: &HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().extend(headers.clone());
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(router: Router, path: &str) -> Response {
        router.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn serves_files_with_types_and_security_headers() {
        for (path, ty) in [
            ("/admin/", "text/html; charset=utf-8"),
            ("/admin/app.js", "text/javascript; charset=utf-8"),
            ("/admin/map.js", "text/javascript; charset=utf-8"),
            ("/admin/style.css", "text/css; charset=utf-8"),
        ] {
            let res = get_path(router_with(ConsoleConfig::default()), path).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let h = res.headers();
            assert_eq!(h[header::CONTENT_TYPE], ty, "{path}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.starts_with("default-src 'self'; script-src 'self';"), "{csp}");
            assert!(csp.contains("img-src 'self' data:;"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
        }
    }

    #[tokio::test]
    async fn bare_admin_redirects() {
        let res = get_path(router_with(ConsoleConfig::default()), "/admin").await;
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(res.headers()[header::LOCATION], "/admin/");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let lower = INDEX_HTML.to_lowercase();
        for tag in lower.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap_or_default();
            assert!(open.contains(" src="), "inline <script>: {open}");
        }
        assert!(!lower.contains("style="), "inline style attribute");
        for (i, _) in lower.match_indices(" on") {
            let attr: String = lower[i + 3..].chars().take_while(char::is_ascii_alphabetic).collect();
            assert!(!lower[i + 3 + attr.len()..].starts_with('='), "inline event handler on{attr}=");
        }
        assert!(!lower.contains("http://") && !lower.contains("https://"), "no third-party URLs");
    }

    #[tokio::test]
    async fn a_tile_url_is_passed_to_the_page_and_allowed_by_the_csp() {
        let config = ConsoleConfig::with_tile_url("https://tiles.example.org/{z}/{x}/{y}.png?k=1&s=2").unwrap();
        assert!(config.csp().contains("img-src 'self' data: https://tiles.example.org;"));
        let res = get_path(router_with(config), "/admin/").await;
        let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("data-tile-url=\"https://tiles.example.org/{z}/{x}/{y}.png?k=1&amp;s=2\""), "{html}");
        assert!(ConsoleConfig::with_tile_url("https://t.example.org/{z}/{x}.png").is_err());
        assert!(ConsoleConfig::with_tile_url("javascript:{z}{x}{y}").is_err());
        assert!(ConsoleConfig::with_tile_url("https://t.example.org/{z}/{x}/{y}\"><script>").is_err());
    }
}
