//! Network core of the Open311 services harvester: one hardened HTTP GET.
//!
//! [`Fetcher::get`] fetches an endpoint document under a [`FetchPolicy`]:
//!
//! * **SSRF guard.** Only `http`/`https` URLs with a host and without userinfo are accepted. Every address
//!   the client connects to must be public (see [`classify_ip`]) unless the policy opens loopback
//!   (`allow_loopback`) or everything (`allow_private`). Host names are checked *after* DNS resolution by a
//!   custom [`reqwest::dns::Resolve`] that drops blocked addresses (and fails with [`FetchError::Blocked`]
//!   when none is left), so DNS rebinding cannot slip a private address in: the addresses checked are the
//!   ones the connector is given. reqwest does not call the resolver for IP-literal hosts, so those are
//!   checked here before each request (the same check runs on every redirect hop, before connecting).
//! * **Redirects** are followed manually (reqwest's own policy is `none`), at most `max_redirects` times.
//!   Each `Location` is resolved against the current URL and re-validated. An `https` → `http` downgrade is
//!   **refused** ([`FetchError::BadRedirect`]); `http` → `https` upgrades and cross-host redirects are allowed.
//! * **No credentials, ever:** URLs with userinfo are refused, there is no cookie store, no `Authorization`
//!   header is set, no `Referer` is sent and proxies from the environment are ignored.
//! * **Bounded work:** the whole fetch (DNS, connects, every redirect hop and the body) runs under one
//!   `timeout`; the body is streamed and aborted with [`FetchError::TooLarge`] as soon as it exceeds
//!   `max_bytes` (a `Content-Length` above the limit is refused before reading anything). No
//!   `Accept-Encoding` is sent, so there is no decompression bomb to worry about.
//!
//! Also here: [`services_url`] (GeoReport v2 `services.json`/`services.xml` URL of an endpoint) and
//! [`backoff`] (retry delay after consecutive failures).

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};
use reqwest::StatusCode;
use url::{Host, Url};

/// Longest error text kept from an underlying library error.
const MAX_CAUSE_CHARS: usize = 200;
/// Longest validator (ETag / Last-Modified) value kept from a response.
const MAX_VALIDATOR_BYTES: usize = 1024;

/// Limits and permissions of a [`Fetcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Deadline for the whole fetch: DNS, connects, all redirect hops and the complete body.
    pub timeout: Duration,
    /// Largest accepted response body, in bytes.
    pub max_bytes: usize,
    /// Most redirects followed before [`FetchError::TooManyRedirects`].
    pub max_redirects: usize,
    /// Permit loopback addresses (127.0.0.0/8, ::1) and nothing else non-public. For tests and local dev.
    pub allow_loopback: bool,
    /// Permit every address, including private, link-local and loopback ones. For closed networks only.
    pub allow_private: bool,
    /// `User-Agent` header sent with every request.
    pub user_agent: String,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_bytes: 1024 * 1024,
            max_redirects: 3,
            allow_loopback: false,
            allow_private: false,
            user_agent: concat!("geowebdns-harvester/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl FetchPolicy {
    /// Whether this policy lets the fetcher connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        AddrRules::from(self).permits(ip)
    }
}

/// Cache validators of a document, for a conditional GET (`If-None-Match` / `If-Modified-Since`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` response header, verbatim (quotes and `W/` included).
    pub etag: Option<String>,
    /// The `Last-Modified` response header, verbatim.
    pub last_modified: Option<String>,
}

impl Validators {
    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }

    fn from_headers(headers: &HeaderMap) -> Self {
        let get = |name| {
            headers
                .get(name)
                .filter(|v: &&HeaderValue| v.len() <= MAX_VALIDATOR_BYTES)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self { etag: get(ETAG), last_modified: get(LAST_MODIFIED) }
    }
}

/// A successfully fetched (2xx) document.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// Final HTTP status (2xx).
    pub status: u16,
    /// The `Content-Type` header of the final response, verbatim.
    pub content_type: Option<String>,
    /// The complete body (at most `max_bytes`).
    pub body: Bytes,
    /// Validators to send next time.
    pub validators: Validators,
    /// URL of the final response, after redirects.
    pub final_url: Url,
    /// Time from the start of the fetch to the end of the body.
    pub latency: Duration,
}

/// Result of a successful [`Fetcher::get`].
#[derive(Debug, Clone, PartialEq)]
pub enum FetchOutcome {
    /// The server answered 304: the document is unchanged since the validators sent.
    NotModified {
        /// Time from the start of the fetch to the 304 response.
        latency: Duration,
        /// Validators from the 304 response, falling back to the ones sent for any it omitted.
        validators: Validators,
    },
    /// The server sent the document.
    Fetched(Fetched),
}

/// Why a fetch failed. `Display` is a short, human message fit to store as an endpoint's error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not fetchable: scheme not http/https, userinfo present, no host, unparsable.
    #[error("bad URL: {reason}")]
    BadUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The host is, or resolves only to, an address the policy does not permit.
    #[error("blocked non-public address {addr} for host {host}")]
    Blocked {
        /// Host name or IP literal as written in the URL.
        host: String,
        /// The refused address (the first one, if several were refused).
        addr: IpAddr,
    },
    /// The host name could not be resolved.
    #[error("DNS lookup failed for {host}: {message}")]
    Dns {
        /// Host name that failed to resolve.
        host: String,
        /// Resolver's message.
        message: String,
    },
    /// Connecting failed (refused, reset, TLS handshake, ...).
    #[error("connection failed: {message}")]
    Connect {
        /// Underlying cause.
        message: String,
    },
    /// The whole fetch did not finish within the policy's timeout.
    #[error("timed out after {} ms", .after.as_millis())]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// The body is (or announced to be) larger than the policy allows.
    #[error("response larger than {limit} bytes")]
    TooLarge {
        /// The policy's `max_bytes`.
        limit: usize,
    },
    /// More redirects than the policy allows.
    #[error("more than {limit} redirects")]
    TooManyRedirects {
        /// The policy's `max_redirects`.
        limit: usize,
    },
    /// The final response was an error (4xx/5xx) or another status that is neither 2xx, 304 nor a redirect.
    #[error("HTTP status {status}")]
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// A redirect could not be followed: no/invalid `Location`, https→http downgrade, unsupported target URL.
    #[error("bad redirect: {reason}")]
    BadRedirect {
        /// What is wrong with it.
        reason: String,
    },
    /// Anything else (body read error, client construction, invalid header).
    #[error("{message}")]
    Other {
        /// Description.
        message: String,
    },
}

impl FetchError {
    /// The HTTP status for [`FetchError::HttpStatus`], else `None`.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::HttpStatus { status } => Some(*status),
            _ => None,
        }
    }

    /// A short stable name of the kind of failure (the `error` label of the
    /// harvest metric): `bad_url`, `blocked`, `dns`, `connect`, `timeout`,
    /// `too_large`, `too_many_redirects`, `http_status`, `bad_redirect` or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadUrl { .. } => "bad_url",
            Self::Blocked { .. } => "blocked",
            Self::Dns { .. } => "dns",
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::TooLarge { .. } => "too_large",
            Self::TooManyRedirects { .. } => "too_many_redirects",
            Self::HttpStatus { .. } => "http_status",
            Self::BadRedirect { .. } => "bad_redirect",
            Self::Other { .. } => "other",
        }
    }

    /// Whether retrying later may help (network trouble, timeouts, 5xx, 408, 429), as opposed to a
    /// configuration problem (bad URL, blocked address, 4xx, oversize document, redirect trouble).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Dns { .. } | Self::Connect { .. } | Self::Timeout { .. } | Self::Other { .. } => true,
            Self::HttpStatus { status } => *status >= 500 || *status == 408 || *status == 429,
            Self::BadUrl { .. }
            | Self::Blocked { .. }
            | Self::TooLarge { .. }
            | Self::TooManyRedirects { .. }
            | Self::BadRedirect { .. } => false,
        }
    }
}

/// Document format of a GeoReport v2 resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `.json`
    Json,
    /// `.xml`
    Xml,
}

impl Format {
    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Xml => "xml",
        }
    }

    /// A suitable `Accept` header value for [`Fetcher::get`].
    pub fn accept(self) -> &'static str {
        match self {
            Self::Json => "application/json, text/json;q=0.9, */*;q=0.1",
            Self::Xml => "application/xml, text/xml;q=0.9, */*;q=0.1",
        }
    }
}

/// The GeoReport v2 service-list URL of an endpoint: `{base_url}/services.{json|xml}[?jurisdiction_id=..]`.
///
/// `base_url` may or may not end in `/`; if its last path segment already is `services.json` or
/// `services.xml`, it is replaced. Any fragment is dropped, an existing query is kept. A non-blank
/// `jurisdiction_id` is appended as a form-encoded query pair. The URL's scheme, userinfo and host are
/// checked as in [`validate_url`], but not its address (that depends on the fetch policy).
pub fn services_url(base_url: &str, jurisdiction_id: Option<&str>, format: Format) -> Result<Url, FetchError> {
    let mut url =
        Url::parse(base_url.trim()).map_err(|e| FetchError::BadUrl { reason: format!("cannot parse {e}") })?;
    check_url_shape(&url)?;
    url.set_fragment(None);
    let replace_last = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .is_some_and(|last| last == "services.json" || last == "services.xml");
    {
        let mut segments =
            url.path_segments_mut().map_err(|()| FetchError::BadUrl { reason: "URL cannot be a base".to_owned() })?;
        segments.pop_if_empty();
        if replace_last {
            segments.pop();
        }
        segments.push(&format!("services.{}", format.extension()));
    }
    if let Some(jurisdiction) = jurisdiction_id.map(str::trim).filter(|j| !j.is_empty()) {
        url.query_pairs_mut().append_pair("jurisdiction_id", jurisdiction);
    }
    Ok(url)
}

/// Delay before the next attempt after `consecutive_failures` failures in a row.
///
/// `0` failures → no delay; `n` failures → `base * 2^(n-1)`, capped at `max` (never overflows; a `base`
/// above `max` yields `max`). Callers wanting jitter add it on top.
pub fn backoff(consecutive_failures: u32, base: Duration, max: Duration) -> Duration {
    if consecutive_failures == 0 {
        return Duration::ZERO;
    }
    1u32.checked_shl(consecutive_failures - 1)
        .and_then(|factor| base.checked_mul(factor))
        .map_or(max, |delay| delay.min(max))
}

/// Network class of an IP address, as used by the SSRF guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpClass {
    /// Globally routable unicast.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7, deprecated site-local fec0::/10, local-use NAT64 64:ff9b:1::/48.
    Private,
    /// 169.254/16 (incl. cloud metadata 169.254.169.254), fe80::/10.
    LinkLocal,
    /// 0.0.0.0, ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 224/4, ff00::/8.
    Multicast,
    /// Carrier-grade NAT shared space 100.64/10.
    SharedAddressSpace,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48.
    Benchmarking,
    /// Anything else not publicly routable: 0/8, 240/4, 192.0.0/24, 192.88.99/24, ::/96, 100::/64,
    /// 2001::/23, and IPv6 outside 2000::/3.
    Reserved,
}

/// Classifies `ip`. IPv4-mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`)
/// IPv6 addresses are classified by the IPv4 address they embed.
pub fn classify_ip(ip: IpAddr) -> IpClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> IpClass {
    if ip.is_unspecified() {
        return IpClass::Unspecified;
    }
    if ip.is_broadcast() {
        return IpClass::Broadcast;
    }
    match ip.octets() {
        [0, ..] | [192, 0, 0, _] | [192, 88, 99, _] | [240..=255, ..] => IpClass::Reserved,
        [127, ..] => IpClass::Loopback,
        [10, ..] | [192, 168, ..] => IpClass::Private,
        [172, b, ..] if (16..=31).contains(&b) => IpClass::Private,
        [169, 254, ..] => IpClass::LinkLocal,
        [100, b, ..] if (64..=127).contains(&b) => IpClass::SharedAddressSpace,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => IpClass::Documentation,
        [198, 18 | 19, ..] => IpClass::Benchmarking,
        [224..=239, ..] => IpClass::Multicast,
        _ => IpClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> IpClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip.is_unspecified() {
        return IpClass::Unspecified;
    }
    if ip.is_loopback() {
        return IpClass::Loopback;
    }
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        classify_v4(Ipv4Addr::new(a, b, c, d))
    };
    match ip.segments() {
        [0, 0, 0, 0, 0, 0, _, _] => IpClass::Reserved,
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0x64, 0xff9b, 1, ..] => IpClass::Private,
        [0x100, 0, 0, 0, ..] => IpClass::Reserved,
        [0x2001, 0x0db8, ..] => IpClass::Documentation,
        [0x2001, 2, 0, ..] => IpClass::Benchmarking,
        [0x2001, b, ..] if b < 0x200 => IpClass::Reserved,
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        [0x3fff, b, ..] if b < 0x1000 => IpClass::Documentation,
        [a, ..] if a & 0xfe00 == 0xfc00 => IpClass::Private,
        [a, ..] if a & 0xffc0 == 0xfe80 => IpClass::LinkLocal,
        [a, ..] if a & 0xffc0 == 0xfec0 => IpClass::Private,
        [a, ..] if a & 0xff00 == 0xff00 => IpClass::Multicast,
        [a, ..] if a & 0xe000 == 0x2000 => IpClass::Public,
        _ => IpClass::Reserved,
    }
}

/// Checks that `url` may be fetched under `policy`: http/https, a host, no userinfo, and — for IP-literal
/// hosts — a permitted address. Host names are checked later, on their resolved addresses.
pub fn validate_url(url: &Url, policy: &FetchPolicy) -> Result<(), FetchError> {
    check_url_shape(url)?;
    let addr = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(_)) | None => return Ok(()),
    };
    if policy.permits(addr) {
        Ok(())
    } else {
        Err(FetchError::Blocked { host: url.host_str().unwrap_or_default().to_owned(), addr })
    }
}

fn check_url_shape(url: &Url) -> Result<(), FetchError> {
    let bad = |reason: &str| Err(FetchError::BadUrl { reason: reason.to_owned() });
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::BadUrl { reason: format!("scheme {:?} is not http or https", url.scheme()) });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("credentials in URL are not allowed");
    }
    match url.host_str() {
        None | Some("") => bad("no host"),
        Some(_) => Ok(()),
    }
}

/// The two address permissions of a policy, copied into the resolver.
#[derive(Debug, Clone, Copy)]
struct AddrRules {
    allow_loopback: bool,
    allow_private: bool,
}

impl From<&FetchPolicy> for AddrRules {
    fn from(policy: &FetchPolicy) -> Self {
        Self { allow_loopback: policy.allow_loopback, allow_private: policy.allow_private }
    }
}

impl AddrRules {
    fn permits(self, ip: IpAddr) -> bool {
        match classify_ip(ip) {
            IpClass::Public => true,
            IpClass::Loopback => self.allow_loopback || self.allow_private,
            _ => self.allow_private,
        }
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Resolver error: every address of the host is blocked. Found again in the reqwest error's source chain.
#[derive(Debug)]
struct BlockedAddr {
    host: String,
    addr: IpAddr,
}

impl fmt::Display for BlockedAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves only to blocked addresses such as {}", self.host, self.addr)
    }
}

impl StdError for BlockedAddr {}

/// Resolver error: the lookup itself failed.
#[derive(Debug)]
struct DnsFailure {
    host: String,
    message: String,
}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot resolve {}: {}", self.host, self.message)
    }
}

impl StdError for DnsFailure {}

/// DNS resolver that hands the connector only the addresses the policy permits.
struct GuardedResolver {
    rules: AddrRules,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = self.rules;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let lookup = tokio::net::lookup_host((host.as_str(), 0)).await.map(Iterator::collect::<Vec<_>>);
            let resolved = lookup.map_err(|e| DnsFailure { host: host.clone(), message: truncate(&e.to_string()) })?;
            let permitted = permitted_addrs(host, resolved, rules)?;
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The resolved addresses the rules permit; an error naming the first refused one when none is left.
fn permitted_addrs(
    host: String,
    resolved: impl IntoIterator<Item = SocketAddr>,
    rules: AddrRules,
) -> Result<Vec<SocketAddr>, BoxError> {
    let mut permitted = Vec::new();
    let mut first_blocked = None;
    for addr in resolved {
        if rules.permits(addr.ip()) {
            permitted.push(addr);
        } else if first_blocked.is_none() {
            first_blocked = Some(addr.ip());
        }
    }
    if permitted.is_empty() {
        return Err(match first_blocked {
            Some(addr) => Box::new(BlockedAddr { host, addr }),
            None => Box::new(DnsFailure { host, message: "no addresses".to_owned() }),
        });
    }
    Ok(permitted)
}

/// HTTP client enforcing a [`FetchPolicy`]. Cheap to clone (shares the connection pool).
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

impl Fetcher {
    /// Builds a fetcher. Fails only if the HTTP client cannot be constructed (e.g. TLS backend init).
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .user_agent(policy.user_agent.clone())
            .connect_timeout(policy.timeout)
            .dns_resolver(Arc::new(GuardedResolver { rules: AddrRules::from(&policy) }))
            .build()
            .map_err(|e| FetchError::Other { message: format!("cannot build HTTP client: {}", root_cause(&e)) })?;
        Ok(Self { client, policy: Arc::new(policy) })
    }

    /// The policy this fetcher enforces.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// GETs `url` with the given `Accept` header, sending `validators` as `If-None-Match` /
    /// `If-Modified-Since`, following redirects and enforcing the policy (see the module docs).
    ///
    /// Returns [`FetchOutcome::NotModified`] on 304, [`FetchOutcome::Fetched`] on 2xx, and an error for
    /// everything else.
    pub async fn get(&self, url: &Url, accept: &str, validators: &Validators) -> Result<FetchOutcome, FetchError> {
        let started = Instant::now();
        let timeout = self.policy.timeout;
        match tokio::time::timeout(timeout, self.get_inner(url, accept, validators, started)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(FetchError::Timeout { after: timeout }),
        }
    }

    async fn get_inner(
        &self,
        url: &Url,
        accept: &str,
        validators: &Validators,
        started: Instant,
    ) -> Result<FetchOutcome, FetchError> {
        let headers = request_headers(accept, validators)?;
        let mut current = url.clone();
        validate_url(&current, &self.policy)?;
        let mut redirects = 0usize;
        loop {
            let mut response = self
                .client
                .get(current.clone())
                .headers(headers.clone())
                .send()
                .await
                .map_err(|e| self.map_error(&e))?;
            let status = response.status();
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                if redirects >= self.policy.max_redirects {
                    return Err(FetchError::TooManyRedirects { limit: self.policy.max_redirects });
                }
                current = redirect_target(&current, response.headers(), &self.policy)?;
                redirects += 1;
                continue;
            }
            if status == StatusCode::NOT_MODIFIED {
                let fresh = Validators::from_headers(response.headers());
                return Ok(FetchOutcome::NotModified {
                    latency: started.elapsed(),
                    validators: Validators {
                        etag: fresh.etag.or_else(|| validators.etag.clone()),
                        last_modified: fresh.last_modified.or_else(|| validators.last_modified.clone()),
                    },
                });
            }
            if !status.is_success() {
                return Err(FetchError::HttpStatus { status: status.as_u16() });
            }

            let limit = self.policy.max_bytes;
            let announced = response.content_length();
            if announced.is_some_and(|len| len > limit as u64) {
                return Err(FetchError::TooLarge { limit });
            }
            let content_type = response.headers().get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()));
            let content_type = content_type.map(|ct| ct.into_owned());
            let validators = Validators::from_headers(response.headers());
            let initial = announced.map_or(0, |len| len as usize).min(limit).min(64 * 1024);
            let mut body = BytesMut::with_capacity(initial);
            while let Some(chunk) = response.chunk().await.map_err(|e| self.map_error(&e))? {
                if body.len().saturating_add(chunk.len()) > limit {
                    return Err(FetchError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(FetchOutcome::Fetched(Fetched {
                status: status.as_u16(),
                content_type,
                body: body.freeze(),
                validators,
                final_url: current,
                latency: started.elapsed(),
            }));
        }
    }

    fn map_error(&self, error: &reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(err) = source {
            if let Some(blocked) = err.downcast_ref::<BlockedAddr>() {
                return FetchError::Blocked { host: blocked.host.clone(), addr: blocked.addr };
            }
            if let Some(dns) = err.downcast_ref::<DnsFailure>() {
                return FetchError::Dns { host: dns.host.clone(), message: dns.message.clone() };
            }
            source = err.source();
        }
        if error.is_timeout() {
            FetchError::Timeout { after: self.policy.timeout }
        } else if error.is_connect() {
            FetchError::Connect { message: root_cause(error) }
        } else if error.is_body() || error.is_decode() {
            FetchError::Other { message: format!("error reading body: {}", root_cause(error)) }
        } else {
            FetchError::Other { message: root_cause(error) }
        }
    }
}

fn request_headers(accept: &str, validators: &Validators) -> Result<HeaderMap, FetchError> {
    let mut headers = HeaderMap::new();
    let accept = HeaderValue::from_str(accept)
        .map_err(|_| FetchError::Other { message: "invalid Accept header value".to_owned() })?;
    headers.insert(ACCEPT, accept);
    // Unusable stored validators are skipped, not fatal: the fetch is then unconditional.
    if let Some(etag) = validators.etag.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(IF_NONE_MATCH, etag);
    }
    if let Some(date) = validators.last_modified.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(IF_MODIFIED_SINCE, date);
    }
    Ok(headers)
}

/// Where a redirect response points, validated: relative `Location`s are resolved against `current`,
/// https→http is refused, the target must pass [`validate_url`].
fn redirect_target(current: &Url, headers: &HeaderMap, policy: &FetchPolicy) -> Result<Url, FetchError> {
    let bad = |reason: String| FetchError::BadRedirect { reason };
    let location = headers.get(LOCATION).ok_or_else(|| bad("no Location header".to_owned()))?;
    let location = std::str::from_utf8(location.as_bytes()).map_err(|_| bad("Location is not UTF-8".to_owned()))?;
    let mut next = current.join(location.trim()).map_err(|e| bad(format!("invalid Location: {e}")))?;
    next.set_fragment(None);
    if current.scheme() == "https" && next.scheme() == "http" {
        return Err(bad("refusing https to http downgrade".to_owned()));
    }
    match validate_url(&next, policy) {
        Ok(()) => Ok(next),
        Err(FetchError::BadUrl { reason }) => Err(bad(format!("target: {reason}"))),
        Err(other) => Err(other),
    }
}

/// Display of the innermost source of `error`, shortened.
fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut innermost = error;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    truncate(&innermost.to_string())
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_CAUSE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;

    use axum::extract::{Path, Query};
    use axum::http::{header, HeaderMap as AxHeaders, StatusCode as AxStatus};
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::get;
    use axum::Router;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::super::parse::{parse_services, ParseError};
    use super::*;

    const ETAG_V1: &str = "\"v1\"";
    const LAST_MOD: &str = "Tue, 01 Apr 2025 10:00:00 GMT";
    const SERVICES_JSON: &str = r#"[
        {"service_code":"001","service_name":"Pothole","description":"Holes in the road","metadata":false,
         "type":"realtime","keywords":"road, hole","group":"Streets"},
        {"service_code":"002","service_name":"Graffiti","metadata":"true","type":"batch","keywords":"paint",
         "group":"Cleaning"}
    ]"#;
    const CITY_JSON: &str = r#"[{"service_code":"C1","service_name":"City tree","metadata":false,"type":"realtime"}]"#;
    const SERVICES_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
        <services>
          <service><service_code>001</service_code><service_name>Pothole</service_name>
            <description>Holes in the road</description><metadata>false</metadata><type>realtime</type>
            <keywords>road, hole</keywords><group>Streets</group></service>
          <service><service_code>002</service_code><service_name>Graffiti</service_name>
            <metadata>true</metadata><type>batch</type><keywords>paint</keywords><group>Cleaning</group></service>
        </services>"#;
    const CITY_XML: &str = "<services><service><service_code>C1</service_code>\
        <service_name>City tree</service_name></service></services>";

    fn conditional_hit(headers: &AxHeaders) -> bool {
        headers.get(header::IF_NONE_MATCH).is_some_and(|v| v == ETAG_V1)
            || headers.get(header::IF_MODIFIED_SINCE).is_some_and(|v| v == LAST_MOD)
    }

    fn document(headers: &AxHeaders, content_type: &'static str, body: &'static str) -> Response {
        if conditional_hit(headers) {
            return (AxStatus::NOT_MODIFIED, [(header::ETAG, ETAG_V1)]).into_response();
        }
        ([(header::CONTENT_TYPE, content_type), (header::ETAG, ETAG_V1), (header::LAST_MODIFIED, LAST_MOD)], body)
            .into_response()
    }

    fn is_city(query: &HashMap<String, String>) -> bool {
        query.get("jurisdiction_id").map(String::as_str) == Some("city.example")
    }

    fn found(location: &str) -> Response {
        (AxStatus::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
    }

    /// A GeoReport v2 test server with misbehaving routes, on 127.0.0.1:0.
    async fn start_server() -> SocketAddr {
        let app = Router::new()
            .route(
                "/open311/v2/services.json",
                get(|Query(q): Query<HashMap<String, String>>, headers: AxHeaders| async move {
                    let body = if is_city(&q) { CITY_JSON } else { SERVICES_JSON };
                    document(&headers, "application/json; charset=utf-8", body)
                }),
            )
            .route(
                "/open311/v2/services.xml",
                get(|Query(q): Query<HashMap<String, String>>, headers: AxHeaders| async move {
                    let body = if is_city(&q) { CITY_XML } else { SERVICES_XML };
                    document(&headers, "text/xml; charset=utf-8", body)
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "[]"
                }),
            )
            .route("/garbage", get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{this is not json") }))
            .route(
                "/html",
                get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html><body>Please log in</body></html>") }),
            )
            .route("/fail", get(|| async { (AxStatus::INTERNAL_SERVER_ERROR, "boom") }))
            .route("/gone", get(|| async { AxStatus::NOT_FOUND }))
            .route("/redirect/private", get(|| async { found("http://10.0.0.1/services.json") }))
            .route("/redirect/metadata", get(|| async { found("http://169.254.169.254/latest/meta-data") }))
            .route("/redirect/mapped", get(|| async { found("http://[::ffff:10.0.0.1]/") }))
            .route("/redirect/ftp", get(|| async { found("ftp://127.0.0.1/services.json") }))
            .route("/redirect/userinfo", get(|| async { found("http://user:secret@127.0.0.1/services.json") }))
            .route("/redirect/none", get(|| async { AxStatus::FOUND }))
            .route(
                "/redirect/loop/{n}",
                get(|Path(n): Path<u32>| async move { found(&format!("/redirect/loop/{}", n + 1)) }),
            )
            .route(
                "/open311/moved",
                get(|| async { Redirect::permanent("v2/services.json?jurisdiction_id=city.example") }),
            )
            .route(
                "/headers",
                get(|headers: AxHeaders| async move {
                    let get = |name: header::HeaderName| {
                        headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned()
                    };
                    let names = [header::AUTHORIZATION, header::COOKIE, header::REFERER, header::PROXY_AUTHORIZATION];
                    let present: Vec<&str> =
                        names.iter().filter(|n| headers.contains_key(*n)).map(|n| n.as_str()).collect();
                    format!("{}|{}|{}", get(header::USER_AGENT), get(header::ACCEPT), present.join(","))
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// A raw HTTP/1.1 server answering every connection (at most 4) with `head`, then writing `chunk` every
    /// `interval` until the client goes away or 5 s have passed.
    async fn start_raw_server(head: &'static str, chunk: Vec<u8>, interval: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let chunk = chunk.clone();
                tokio::spawn(async move {
                    let mut request = vec![0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let started = Instant::now();
                    while started.elapsed() < Duration::from_secs(5) {
                        if stream.write_all(&chunk).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(interval).await;
                    }
                });
            }
        });
        addr
    }

    /// One HTTP/1.1 chunked-encoding frame carrying `data`.
    fn chunk_frame(data: &[u8]) -> Vec<u8> {
        let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
        frame.extend_from_slice(data);
        frame.extend_from_slice(b"\r\n");
        frame
    }

    fn loopback_policy() -> FetchPolicy {
        FetchPolicy { timeout: Duration::from_secs(5), allow_loopback: true, ..FetchPolicy::default() }
    }

    fn fetcher(policy: FetchPolicy) -> Fetcher {
        Fetcher::new(policy).unwrap()
    }

    fn url(addr: SocketAddr, path: &str) -> Url {
        Url::parse(&format!("http://{addr}{path}")).unwrap()
    }

    async fn fetch(fetcher: &Fetcher, url: &Url) -> Result<FetchOutcome, FetchError> {
        fetcher.get(url, Format::Json.accept(), &Validators::default()).await
    }

    fn fetched(outcome: FetchOutcome) -> Fetched {
        match outcome {
            FetchOutcome::Fetched(doc) => doc,
            FetchOutcome::NotModified { .. } => panic!("unexpected 304"),
        }
    }

    #[tokio::test]
    async fn georeport_json_without_and_with_jurisdiction() {
        let addr = start_server().await;
        let fetcher = fetcher(loopback_policy());
        let base = format!("http://{addr}/open311/v2/");

        let doc = fetched(fetch(&fetcher, &services_url(&base, None, Format::Json).unwrap()).await.unwrap());
        assert_eq!(doc.status, 200);
        assert_eq!(doc.content_type.as_deref(), Some("application/json; charset=utf-8"));
        assert_eq!(doc.validators, Validators { etag: Some(ETAG_V1.into()), last_modified: Some(LAST_MOD.into()) });
        let services = parse_services(&doc.body, doc.content_type.as_deref()).unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0].keywords, ["road", "hole"]);
        assert!(services[1].metadata);
        assert_eq!(services[1].kind, "batch");

        let with = services_url(&base, Some("city.example"), Format::Json).unwrap();
        let doc = fetched(fetch(&fetcher, &with).await.unwrap());
        assert_eq!(doc.final_url, with);
        let services = parse_services(&doc.body, doc.content_type.as_deref()).unwrap();
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].service_code, "C1");
        assert_eq!(services[0].kind, "realtime");
    }

    #[tokio::test]
    async fn georeport_xml_without_and_with_jurisdiction() {
        let addr = start_server().await;
        let fetcher = fetcher(loopback_policy());
        let base = format!("http://{addr}/open311/v2");

        let url = services_url(&base, None, Format::Xml).unwrap();
        let doc = fetched(fetcher.get(&url, Format::Xml.accept(), &Validators::default()).await.unwrap());
        let services = parse_services(&doc.body, doc.content_type.as_deref()).unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0].description.as_deref(), Some("Holes in the road"));
        assert_eq!(services[0].group.as_deref(), Some("Streets"));
        assert!(!services[0].metadata);
        assert!(services[1].metadata);

        let url = services_url(&base, Some("city.example"), Format::Xml).unwrap();
        let doc = fetched(fetcher.get(&url, Format::Xml.accept(), &Validators::default()).await.unwrap());
        let services = parse_services(&doc.body, doc.content_type.as_deref()).unwrap();
        assert_eq!(services.iter().map(|s| s.service_code.as_str()).collect::<Vec<_>>(), ["C1"]);
    }

    #[tokio::test]
    async fn conditional_get_with_etag_is_not_modified() {
        let addr = start_server().await;
        let fetcher = fetcher(loopback_policy());
        let url = url(addr, "/open311/v2/services.json");
        let first = fetched(fetch(&fetcher, &url).await.unwrap());
        let sent = Validators { etag: first.validators.etag.clone(), last_modified: None };
        match fetcher.get(&url, Format::Json.accept(), &sent).await.unwrap() {
            FetchOutcome::NotModified { validators, latency } => {
                assert_eq!(validators.etag.as_deref(), Some(ETAG_V1));
                assert!(latency < Duration::from_secs(5));
            }
            FetchOutcome::Fetched(_) => panic!("expected 304"),
        }
        // A stale ETag gets the full document.
        let stale = Validators { etag: Some("\"v0\"".into()), last_modified: None };
        assert!(matches!(fetcher.get(&url, "application/json", &stale).await.unwrap(), FetchOutcome::Fetched(_)));
    }

    #[tokio::test]
    async fn conditional_get_with_last_modified_keeps_sent_validators() {
        let addr = start_server().await;
        let fetcher = fetcher(loopback_policy());
        let sent = Validators { etag: None, last_modified: Some(LAST_MOD.into()) };
        let outcome = fetcher.get(&url(addr, "/open311/v2/services.xml"), "text/xml", &sent).await.unwrap();
        let FetchOutcome::NotModified { validators, .. } = outcome else { panic!("expected 304") };
        // The 304 carries only an ETag; the sent Last-Modified is kept.
        assert_eq!(validators, Validators { etag: Some(ETAG_V1.into()), last_modified: Some(LAST_MOD.into()) });
    }

    #[tokio::test]
    async fn slow_server_times_out_within_bound() {
        let addr = start_server().await;
        let timeout = Duration::from_millis(300);
        let fetcher = fetcher(FetchPolicy { timeout, ..loopback_policy() });
        let started = Instant::now();
        let err = fetch(&fetcher, &url(addr, "/slow")).await.unwrap_err();
        assert_eq!(err, FetchError::Timeout { after: timeout });
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
        assert_eq!(err.to_string(), "timed out after 300 ms");
    }

    #[tokio::test]
    async fn endless_body_is_too_large() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let addr = start_raw_server(head, chunk_frame(&[b' '; 8192]), Duration::from_millis(1)).await;
        let limit = 64 * 1024;
        let fetcher = fetcher(FetchPolicy { timeout: Duration::from_secs(3), max_bytes: limit, ..loopback_policy() });
        let started = Instant::now();
        let err = fetch(&fetcher, &url(addr, "/")).await.unwrap_err();
        assert_eq!(err, FetchError::TooLarge { limit });
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn slow_drip_body_times_out() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let addr = start_raw_server(head, chunk_frame(b" "), Duration::from_millis(20)).await;
        let timeout = Duration::from_millis(300);
        let fetcher = fetcher(FetchPolicy { timeout, ..loopback_policy() });
        let started = Instant::now();
        let err = fetch(&fetcher, &url(addr, "/")).await.unwrap_err();
        assert_eq!(err, FetchError::Timeout { after: timeout });
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn gigantic_content_length_is_refused_before_reading() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n";
        let addr = start_raw_server(head, b"[".to_vec(), Duration::from_millis(100)).await;
        let fetcher = fetcher(FetchPolicy { timeout: Duration::from_secs(3), ..loopback_policy() });
        let started = Instant::now();
        let err = fetch(&fetcher, &url(addr, "/")).await.unwrap_err();
        assert_eq!(err, FetchError::TooLarge { limit: 1024 * 1024 });
        assert_eq!(err.to_string(), "response larger than 1048576 bytes");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn garbage_body_is_a_parse_error() {
        let addr = start_server().await;
        let doc = fetched(fetch(&fetcher(loopback_policy()), &url(addr, "/garbage")).await.unwrap());
        let err = parse_services(&doc.body, doc.content_type.as_deref()).unwrap_err();
        assert!(matches!(err, ParseError::Json { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn html_is_a_content_type_error() {
        let addr = start_server().await;
        let doc = fetched(fetch(&fetcher(loopback_policy()), &url(addr, "/html")).await.unwrap());
        let err = parse_services(&doc.body, doc.content_type.as_deref()).unwrap_err();
        assert_eq!(err, ParseError::ContentType { content_type: "text/html".into() });
    }

    #[tokio::test]
    async fn error_statuses_are_http_status() {
        let addr = start_server().await;
        let fetcher = fetcher(loopback_policy());
        let err = fetch(&fetcher, &url(addr, "/fail")).await.unwrap_err();
        assert_eq!(err, FetchError::HttpStatus { status: 500 });
        assert_eq!(err.http_status(), Some(500));
        assert!(err.is_transient());
        assert_eq!(err.to_string(), "HTTP status 500");
        let err = fetch(&fetcher, &url(addr, "/gone")).await.unwrap_err();
        assert_eq!(err.http_status(), Some(404));
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn redirects_to_non_public_addresses_are_blocked() {
        let addr = start_server().await;
        let fetcher = fetcher(loopback_policy());
        let cases = [
            ("/redirect/private", "10.0.0.1", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            ("/redirect/metadata", "169.254.169.254", IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254))),
            ("/redirect/mapped", "[::ffff:a00:1]", "::ffff:10.0.0.1".parse().unwrap()),
        ];
        for (path, host, blocked) in cases {
            let started = Instant::now();
            let err = fetch(&fetcher, &url(addr, path)).await.unwrap_err();
            assert_eq!(err, FetchError::Blocked { host: host.into(), addr: blocked }, "{path}");
            // Refused before any connection attempt: no connect timeout was waited for.
            assert!(started.elapsed() < Duration::from_secs(1), "{path}");
        }
    }

    #[tokio::test]
    async fn redirect_chain_longer_than_limit_fails() {
        let addr = start_server().await;
        let fetcher = fetcher(FetchPolicy { max_redirects: 3, ..loopback_policy() });
        let err = fetch(&fetcher, &url(addr, "/redirect/loop/0")).await.unwrap_err();
        assert_eq!(err, FetchError::TooManyRedirects { limit: 3 });
        let none = self::fetcher(FetchPolicy { max_redirects: 0, ..loopback_policy() });
        let err = fetch(&none, &url(addr, "/open311/moved")).await.unwrap_err();
        assert_eq!(err, FetchError::TooManyRedirects { limit: 0 });
    }

    #[tokio::test]
    async fn relative_redirect_to_loopback_path_is_followed() {
        let addr = start_server().await;
        let fetcher = fetcher(loopback_policy());
        let doc = fetched(fetch(&fetcher, &url(addr, "/open311/moved")).await.unwrap());
        assert_eq!(doc.final_url, url(addr, "/open311/v2/services.json?jurisdiction_id=city.example"));
        let services = parse_services(&doc.body, doc.content_type.as_deref()).unwrap();
        assert_eq!(services[0].service_code, "C1");
    }

    #[tokio::test]
    async fn unusable_redirects_are_bad_redirects() {
        let addr = start_server().await;
        let fetcher = fetcher(loopback_policy());
        for path in ["/redirect/ftp", "/redirect/userinfo", "/redirect/none"] {
            let err = fetch(&fetcher, &url(addr, path)).await.unwrap_err();
            assert!(matches!(err, FetchError::BadRedirect { .. }), "{path}: {err:?}");
        }
    }

    #[tokio::test]
    async fn default_policy_blocks_loopback_literal_and_localhost() {
        let addr = start_server().await;
        let fetcher = fetcher(FetchPolicy { timeout: Duration::from_secs(3), ..FetchPolicy::default() });
        let err = fetch(&fetcher, &url(addr, "/open311/v2/services.json")).await.unwrap_err();
        assert_eq!(err, FetchError::Blocked { host: "127.0.0.1".into(), addr: IpAddr::V4(Ipv4Addr::LOCALHOST) });

        let by_name = Url::parse(&format!("http://localhost:{}/open311/v2/services.json", addr.port())).unwrap();
        match fetch(&fetcher, &by_name).await.unwrap_err() {
            FetchError::Blocked { host, addr } => {
                assert_eq!(host, "localhost");
                assert_eq!(classify_ip(addr), IpClass::Loopback);
            }
            other => panic!("expected Blocked, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn localhost_is_resolved_and_allowed_with_allow_loopback() {
        let addr = start_server().await;
        let url = Url::parse(&format!("http://localhost:{}/open311/v2/services.json", addr.port())).unwrap();
        let doc = fetched(fetch(&fetcher(loopback_policy()), &url).await.unwrap());
        assert_eq!(doc.status, 200);
    }

    #[tokio::test]
    async fn no_credentials_or_referer_are_sent() {
        let addr = start_server().await;
        let fetcher = fetcher(loopback_policy());
        let doc =
            fetched(fetcher.get(&url(addr, "/headers"), "application/json", &Validators::default()).await.unwrap());
        let expected = format!("geowebdns-harvester/{}|application/json|", env!("CARGO_PKG_VERSION"));
        assert_eq!(std::str::from_utf8(&doc.body).unwrap(), expected);
    }

    #[tokio::test]
    async fn refused_connection_is_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = fetch(&fetcher(loopback_policy()), &url(addr, "/")).await.unwrap_err();
        assert!(matches!(err, FetchError::Connect { .. }), "{err:?}");
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn bad_urls_are_refused_without_network() {
        let fetcher = fetcher(FetchPolicy::default());
        for bad in ["ftp://example.org/services.json", "http://user:pw@example.org/", "file:///etc/passwd"] {
            let err = fetch(&fetcher, &Url::parse(bad).unwrap()).await.unwrap_err();
            assert!(matches!(err, FetchError::BadUrl { .. }), "{bad}: {err:?}");
        }
        let err = fetch(&fetcher, &Url::parse("http://[::1]:9/").unwrap()).await.unwrap_err();
        assert_eq!(err, FetchError::Blocked { host: "[::1]".into(), addr: IpAddr::V6(Ipv6Addr::LOCALHOST) });
    }

    #[test]
    fn redirect_target_rules() {
        let policy = loopback_policy();
        let location = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(LOCATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        let https = Url::parse("https://open311.example/v2/services.json").unwrap();
        let err = redirect_target(&https, &location("http://open311.example/v2/services.json"), &policy).unwrap_err();
        assert!(matches!(err, FetchError::BadRedirect { .. }), "{err:?}");
        let next = redirect_target(&https, &location("../v3/services.json#frag"), &policy).unwrap();
        assert_eq!(next.as_str(), "https://open311.example/v3/services.json");
        let http = Url::parse("http://open311.example/v2/services.json").unwrap();
        let next = redirect_target(&http, &location("https://other.example/x"), &policy).unwrap();
        assert_eq!(next.as_str(), "https://other.example/x");
        let err = redirect_target(&http, &location("http://[fe80::1]/"), &policy).unwrap_err();
        assert!(matches!(err, FetchError::Blocked { .. }), "{err:?}");
    }

    #[test]
    fn resolver_keeps_only_permitted_addresses() {
        let strict = AddrRules::from(&FetchPolicy::default());
        let sock = |s: &str| SocketAddr::new(s.parse().unwrap(), 0);
        // A rebinding-style answer mixing public and private addresses: only the public one reaches the connector.
        let mixed = [sock("10.0.0.1"), sock("8.8.8.8"), sock("169.254.169.254"), sock("2606:4700::1")];
        let kept = permitted_addrs("mixed.example".into(), mixed, strict).unwrap();
        assert_eq!(kept, [sock("8.8.8.8"), sock("2606:4700::1")]);
        let err = permitted_addrs("evil.example".into(), [sock("127.0.0.1"), sock("::1")], strict).unwrap_err();
        let blocked = err.downcast_ref::<BlockedAddr>().unwrap();
        assert_eq!((blocked.host.as_str(), blocked.addr), ("evil.example", IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let err = permitted_addrs("empty.example".into(), [], strict).unwrap_err();
        assert!(err.downcast_ref::<DnsFailure>().is_some());
    }

    #[tokio::test]
    async fn resolver_checks_resolved_localhost() {
        use reqwest::dns::Resolve;
        let name = || "localhost".parse::<reqwest::dns::Name>().unwrap();
        let strict = GuardedResolver { rules: AddrRules::from(&FetchPolicy::default()) };
        let err = strict.resolve(name()).await.err().unwrap();
        assert!(err.downcast_ref::<BlockedAddr>().is_some(), "{err}");
        let loopback = GuardedResolver { rules: AddrRules::from(&loopback_policy()) };
        let addrs: Vec<SocketAddr> = loopback.resolve(name()).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn ip_classification_table() {
        use IpClass::*;
        let table: &[(&str, IpClass)] = &[
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("93.184.216.34", Public),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("172.15.255.255", Public),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("100.63.255.255", Public),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("100.128.0.1", Public),
            ("192.0.0.8", Reserved),
            ("192.0.2.10", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.99", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("198.20.0.1", Public),
            ("192.88.99.1", Reserved),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            ("::", Unspecified),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:8.8.8.8", Public),
            ("::10.0.0.1", Reserved),
            ("64:ff9b::10.0.0.1", Private),
            ("64:ff9b::8.8.8.8", Public),
            ("64:ff9b:1::1", Private),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("2001:2::1", Benchmarking),
            ("2001:db8::1", Documentation),
            ("2002:0a00:0001::1", Private),
            ("2002:0808:0808::1", Public),
            ("3fff::1", Documentation),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001::200e", Public),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("4000::1", Reserved),
            ("1234::1", Reserved),
        ];
        for (text, class) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify_ip(ip), *class, "{text}");
        }
    }

    #[test]
    fn policies_open_exactly_what_they_say() {
        let strict = FetchPolicy::default();
        let loopback = FetchPolicy { allow_loopback: true, ..FetchPolicy::default() };
        let open = FetchPolicy { allow_private: true, ..FetchPolicy::default() };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for public in ["8.8.8.8", "2606:4700:4700::1111"] {
            assert!(strict.permits(ip(public)) && loopback.permits(ip(public)) && open.permits(ip(public)));
        }
        for lo in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(!strict.permits(ip(lo)), "{lo}");
            assert!(loopback.permits(ip(lo)), "{lo}");
            assert!(open.permits(ip(lo)), "{lo}");
        }
        for private in ["10.0.0.1", "169.254.169.254", "fe80::1", "::ffff:10.0.0.1", "100.64.0.1", "0.0.0.0"] {
            assert!(!strict.permits(ip(private)), "{private}");
            assert!(!loopback.permits(ip(private)), "{private}");
            assert!(open.permits(ip(private)), "{private}");
        }
    }

    #[test]
    fn services_url_variants() {
        let json = |base: &str, j: Option<&str>| services_url(base, j, Format::Json).map(|u| u.to_string());
        assert_eq!(json("https://o.example/open311/v2", None).unwrap(), "https://o.example/open311/v2/services.json");
        assert_eq!(json("https://o.example/open311/v2/", None).unwrap(), "https://o.example/open311/v2/services.json");
        assert_eq!(json("https://o.example", None).unwrap(), "https://o.example/services.json");
        assert_eq!(
            json("https://o.example/v2/services.xml", Some("city.example")).unwrap(),
            "https://o.example/v2/services.json?jurisdiction_id=city.example"
        );
        assert_eq!(
            json(" https://o.example/v2/?api=1#frag ", Some(" a b&c=d ")).unwrap(),
            "https://o.example/v2/services.json?api=1&jurisdiction_id=a+b%26c%3Dd"
        );
        assert_eq!(json("https://o.example/v2/", Some("  ")).unwrap(), "https://o.example/v2/services.json");
        assert_eq!(
            services_url("http://o.example/v2", Some("x"), Format::Xml).unwrap().as_str(),
            "http://o.example/v2/services.xml?jurisdiction_id=x"
        );
        for bad in ["not a url", "ftp://o.example/", "https://u:p@o.example/", "mailto:a@b.example"] {
            assert!(matches!(json(bad, None), Err(FetchError::BadUrl { .. })), "{bad}");
        }
    }

    #[test]
    fn backoff_is_exponential_capped_and_total() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(24 * 3600);
        assert_eq!(backoff(0, base, max), Duration::ZERO);
        assert_eq!(backoff(1, base, max), base);
        assert_eq!(backoff(2, base, max), base * 2);
        assert_eq!(backoff(5, base, max), base * 16);
        assert_eq!(backoff(11, base, max), base * 1024);
        assert_eq!(backoff(12, base, max), max);
        assert_eq!(backoff(32, base, max), max);
        assert_eq!(backoff(u32::MAX, base, max), max);
        assert_eq!(backoff(40, Duration::MAX, Duration::MAX), Duration::MAX);
        assert_eq!(backoff(1, Duration::from_secs(10), Duration::from_secs(5)), Duration::from_secs(5));
        let mut previous = Duration::ZERO;
        for n in 0..100 {
            let delay = backoff(n, base, max);
            assert!(delay >= previous && delay <= max);
            previous = delay;
        }
    }

    #[test]
    fn error_texts_are_short_and_human() {
        let blocked = FetchError::Blocked { host: "evil.example".into(), addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)) };
        assert_eq!(blocked.to_string(), "blocked non-public address 10.0.0.1 for host evil.example");
        assert_eq!(blocked.http_status(), None);
        assert_eq!(FetchError::TooManyRedirects { limit: 3 }.to_string(), "more than 3 redirects");
        let long = "x".repeat(1000);
        assert_eq!(truncate(&long).chars().count(), MAX_CAUSE_CHARS + 1);
    }
}
