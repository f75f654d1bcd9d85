//! The command line: one [`Cli`] with a subcommand per task. Every flag can
//! also be set with a `GEOWEBDNS_*` environment variable.

use crate::api::params::{self, Location};
use crate::auth::{Algorithm, KeySettings, Keys, Scope};
use crate::import::{self, ImportOptions, OnInvalid, PropertyMap};
use crate::index::{self, Snapshot};
use crate::model::Tier;
use crate::store::{self, Actor, DynStore, TokenRecord};
use crate::{AppState, Settings};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// GeoWebDNS: which governments serve this spot, and which Open311 servers do they run?
// `Debug` (below) hides the database password and the JWT secret.
#[derive(Parser)]
#[command(name = "geowebdns", version, about, long_about = None)]
pub struct Cli {
    /// Database URL: `sqlite://FILE` (embedded default) or `postgres://...`.
    #[arg(long, global = true, env = "GEOWEBDNS_DATABASE_URL", default_value = "sqlite://geowebdns.db")]
    pub database_url: String,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `geowebdns=debug`.
    #[arg(long, global = true, env = "GEOWEBDNS_LOG", default_value = "info")]
    pub log: String,

    /// Log line format on stderr: `text` (human-readable) or `json` (one JSON object a line,
    /// with the request's span fields, among them `request_id`).
    #[arg(long, global = true, value_enum, env = "GEOWEBDNS_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Directory of the Ed25519 token key pair (created on first use).
    #[arg(long, global = true, env = "GEOWEBDNS_KEY_DIR", default_value = "keys")]
    pub key_dir: PathBuf,

    /// Pinned token signing algorithm.
    #[arg(long, global = true, value_enum, env = "GEOWEBDNS_JWT_ALGORITHM", default_value_t = Algorithm::EdDSA)]
    pub jwt_algorithm: Algorithm,

    /// HS256 secret (at least 32 bytes); only with `--jwt-algorithm hs256`.
    #[arg(long, global = true, env = "GEOWEBDNS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Longest token lifetime issued (`token issue --ttl`) or accepted (`exp - iat`), e.g. `30d`;
    /// longer-lived tokens are refused even with a good signature. Set it alike on every instance.
    #[arg(long, global = true, env = "GEOWEBDNS_MAX_TOKEN_LIFETIME", default_value = "30d", value_parser = parse_ttl)]
    pub max_token_lifetime: Duration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("database_url", &store::redact_url(&self.database_url))
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field("key_dir", &self.key_dir)
            .field("jwt_algorithm", &self.jwt_algorithm)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<redacted>"))
            .field("command", &self.command)
            .finish()
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (migrates, imports the bundled data into an empty store, serves).
    Serve(ServeArgs),
    /// Run database migrations and exit.
    Migrate,
    /// Import boundaries from a GeoJSON FeatureCollection (.geojson, .gz) or a zipped Shapefile,
    /// or restore a registry written by `export`.
    Import(ImportArgs),
    /// Write the whole registry (jurisdictions, boundaries, endpoints, services) as one
    /// GeoJSON FeatureCollection that `import` restores, on any backend.
    Export(ExportArgs),
    /// Resolve one point offline, against the store, and print the JSON answer.
    Resolve(ResolveArgs),
    /// Create, issue, revoke and list admin API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create the Ed25519 key pair in the key directory.
    Keygen {
        /// Replace an existing key pair (every token issued with it stops working).
        #[arg(long, env = "GEOWEBDNS_KEYGEN_FORCE")]
        force: bool,
    },
    /// Issue a token and print it on stdout (and nothing else).
    Issue {
        /// Scope: `admin` or `jurisdiction:<id>`; repeat for several.
        #[arg(long = "scope", required = true, env = "GEOWEBDNS_TOKEN_SCOPES", value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime, e.g. `30m`, `1h`, `7d`.
        #[arg(long, env = "GEOWEBDNS_TOKEN_TTL", default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
        /// Who the token is for (recorded in the audit log).
        #[arg(long, env = "GEOWEBDNS_TOKEN_SUB")]
        sub: String,
    },
    /// Revoke a token by its id (`jti`); takes effect at once.
    Revoke {
        /// The token id.
        #[arg(env = "GEOWEBDNS_REVOKE_JTI")]
        jti: String,
        /// Why (kept with the revocation).
        #[arg(long, env = "GEOWEBDNS_REVOKE_REASON")]
        reason: Option<String>,
    },
    /// List issued tokens (ids and claims, never the tokens themselves).
    List,
}

/// Parses a lifetime such as `90s`, `30m`, `1h` or `7d`.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a lifetime such as 30m, 1h or 7d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (use s, m, h or d)")),
    };
    if secs == 0 || secs > 366 * 86_400 {
        return Err("a token lifetime must be between 1 second and 366 days".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GEOWEBDNS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not import the bundled boundaries and Open311 servers into an empty store.
    #[arg(long, env = "GEOWEBDNS_NO_BUNDLED")]
    pub no_bundled: bool,
    /// Most points in one `POST /v1/resolve`.
    #[arg(long, env = "GEOWEBDNS_MAX_BATCH", default_value_t = 10_000)]
    pub max_batch: usize,
    /// `Cache-Control: max-age` of public answers, in seconds.
    #[arg(long, env = "GEOWEBDNS_CACHE_MAX_AGE", default_value_t = 60)]
    pub cache_max_age: u32,
    /// Largest request body in bytes.
    #[arg(long, env = "GEOWEBDNS_MAX_BODY_BYTES", default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Time limit of one request, in seconds.
    #[arg(long, env = "GEOWEBDNS_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// Most vertices in one boundary written through the admin API.
    #[arg(long, env = "GEOWEBDNS_MAX_VERTICES", default_value_t = 250_000)]
    pub max_vertices: usize,
    /// Largest size a gzip or zipped upload to `POST /admin/v1/import` may decompress to, in bytes.
    #[arg(long, env = "GEOWEBDNS_MAX_IMPORT_BYTES", default_value_t = 256 << 20)]
    pub max_import_bytes: u64,
    /// Largest `within=` (near-miss radius) a query may ask for, in metres.
    #[arg(long, env = "GEOWEBDNS_MAX_WITHIN_M", default_value_t = 10_000.0)]
    pub max_within_m: f64,
    /// How far `nearest=true` searches for the nearest jurisdiction of a tier, in metres.
    #[arg(long, env = "GEOWEBDNS_NEAREST_MAX_M", default_value_t = 200_000.0)]
    pub nearest_max_m: f64,
    /// How often each endpoint's service list is harvested, in seconds; 0 turns the background harvester off.
    #[arg(long, env = "GEOWEBDNS_HARVEST_INTERVAL", default_value_t = 3600)]
    pub harvest_interval: u64,
    /// Most endpoints harvested at once.
    #[arg(long, env = "GEOWEBDNS_HARVEST_CONCURRENCY", default_value_t = 4)]
    pub harvest_concurrency: usize,
    /// Time limit of one harvest fetch (connect, redirects and body), in seconds.
    #[arg(long, env = "GEOWEBDNS_HARVEST_TIMEOUT", default_value_t = 10)]
    pub harvest_timeout: u64,
    /// Largest service list or discovery document accepted, in bytes.
    #[arg(long, env = "GEOWEBDNS_HARVEST_MAX_BYTES", default_value_t = 1 << 20)]
    pub harvest_max_bytes: usize,
    /// Longest wait between attempts on an endpoint that keeps failing, in seconds.
    #[arg(long, env = "GEOWEBDNS_HARVEST_MAX_BACKOFF", default_value_t = 86_400)]
    pub harvest_max_backoff: u64,
    /// Most public requests in flight; more are answered 503 with Retry-After at once.
    #[arg(long, env = "GEOWEBDNS_MAX_CONCURRENT", default_value_t = 1024)]
    pub max_concurrent: usize,
    /// Most admin requests in flight (a pool of their own, so public load cannot starve them).
    #[arg(long, env = "GEOWEBDNS_ADMIN_MAX_CONCURRENT", default_value_t = 64)]
    pub admin_max_concurrent: usize,
    /// Public requests per second per client address (429 beyond); 0 turns the rate limit off.
    #[arg(long, env = "GEOWEBDNS_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,
    /// Burst size of the per-client rate limit.
    #[arg(long, env = "GEOWEBDNS_RATE_BURST", default_value_t = 50)]
    pub rate_burst: u32,
    /// Largest request line plus headers, in bytes (431 beyond).
    #[arg(long, env = "GEOWEBDNS_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Let the harvester fetch from loopback addresses (local development and tests only).
    #[arg(long, env = "GEOWEBDNS_HARVEST_ALLOW_LOOPBACK")]
    pub harvest_allow_loopback: bool,
    /// Let the harvester fetch from private, link-local and loopback addresses (closed networks only).
    #[arg(long, env = "GEOWEBDNS_HARVEST_ALLOW_PRIVATE")]
    pub harvest_allow_private: bool,
    /// How often to poll the change log for other instances' writes, in milliseconds
    /// (PostgreSQL also pushes changes at once with LISTEN/NOTIFY).
    #[arg(long, env = "GEOWEBDNS_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// This server's name in LoST `source` and `via` attributes: a dotted name
    /// such as `lost.example.org` (RFC 5222 `appUniqueString`).
    #[arg(long, env = "GEOWEBDNS_LOST_SERVER_NAME", default_value = crate::lost::DEFAULT_SERVER_NAME, value_parser = parse_lost_server_name)]
    pub lost_server_name: String,
    /// After SIGTERM or SIGINT, how long open connections may take to finish
    /// their requests before the process exits anyway, in seconds.
    #[arg(long, env = "GEOWEBDNS_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// Before an idle worker thread sleeps, poll the connections for up to this
    /// many microseconds (0: off). Cuts the per-request wake-up at low
    /// concurrency on virtual machines, at the cost of CPU time; Linux only.
    /// At most 1000000 (one second).
    #[arg(long, env = "GEOWEBDNS_BUSY_POLL_US", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub busy_poll_us: u64,

    /// Serve Prometheus metrics on `GET /metrics` (`--metrics false` turns the route off).
    #[arg(long, env = "GEOWEBDNS_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
}

fn parse_lost_server_name(s: &str) -> Result<String, String> {
    if crate::lost::valid_source(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not a dotted server name such as lost.example.org"))
    }
}

/// Flags of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import. Omit it with `--bundled`. A file written by `export` is recognised
    /// and restored as exported (the mapping and invalid-geometry flags do not apply to it).
    #[arg(required_unless_present = "bundled", env = "GEOWEBDNS_IMPORT_FILE")]
    pub file: Option<PathBuf>,
    /// Import the bundled data set (boundaries/ and its Open311 servers).
    #[arg(long, env = "GEOWEBDNS_IMPORT_BUNDLED", conflicts_with = "file")]
    pub bundled: bool,
    /// What to do with invalid geometry.
    #[arg(long, value_enum, env = "GEOWEBDNS_ON_INVALID", default_value_t = OnInvalid::Repair)]
    pub on_invalid: OnInvalid,
    /// Property holding the jurisdiction id.
    #[arg(long, env = "GEOWEBDNS_ID_FIELD", default_value = "id")]
    pub id_field: String,
    /// Prefix for ids (e.g. `us-place:` with `--id-field GEOID`).
    #[arg(long, env = "GEOWEBDNS_ID_PREFIX", default_value = "")]
    pub id_prefix: String,
    /// Property holding the name.
    #[arg(long, env = "GEOWEBDNS_NAME_FIELD", default_value = "name")]
    pub name_field: String,
    /// Property holding the tier (`level` is also tried).
    #[arg(long, env = "GEOWEBDNS_TIER_FIELD", default_value = "tier")]
    pub tier_field: String,
    /// Tier for features without a tier property.
    #[arg(long, env = "GEOWEBDNS_TIER", value_parser = parse_tier)]
    pub tier: Option<Tier>,
    /// Property holding an explicit parent id (otherwise parents are computed).
    #[arg(long, env = "GEOWEBDNS_PARENT_FIELD", default_value = "parent")]
    pub parent_field: String,
    /// Boundary source for features without a `source` property.
    #[arg(long, env = "GEOWEBDNS_SOURCE")]
    pub source: Option<String>,
    /// Licence for features without a `license` property.
    #[arg(long, env = "GEOWEBDNS_LICENSE")]
    pub license: Option<String>,
    /// Print the summary as JSON.
    #[arg(long, env = "GEOWEBDNS_IMPORT_JSON")]
    pub json: bool,
}

/// Flags of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to FILE instead of stdout (gzip-compressed when it ends in `.gz`). The file is
    /// written beside it first and renamed into place once complete.
    #[arg(long, short = 'o', env = "GEOWEBDNS_EXPORT_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn parse_tier(s: &str) -> Result<Tier, String> {
    s.parse().map_err(|e: crate::model::UnknownTier| e.to_string())
}

/// Flags of `resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Latitude.
    #[arg(long, allow_hyphen_values = true, env = "GEOWEBDNS_LAT")]
    pub lat: f64,
    /// Longitude.
    #[arg(long, allow_hyphen_values = true, env = "GEOWEBDNS_LON")]
    pub lon: f64,
    /// Comma-separated tier filter.
    #[arg(long, env = "GEOWEBDNS_RESOLVE_TIER")]
    pub tier: Option<String>,
}

/// Sets up logging on stderr: `filter` in `EnvFilter` syntax, lines as text
/// or JSON. JSON lines carry the event's fields at the top level and the
/// spans it was logged in under `spans` (for a request: `request_id`,
/// `method`, `route`, `path`).
pub fn init_tracing(filter: &str, format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(false).with_span_list(true).with_ansi(false).try_init()
        }
    };
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let keys = KeySettings {
        key_dir: cli.key_dir.clone(),
        algorithm: cli.jwt_algorithm,
        hs256_secret: cli.jwt_secret.clone(),
        max_token_lifetime: cli.max_token_lifetime,
    };
    match cli.command {
        Command::Serve(args) => serve(&cli.database_url, &keys, args).await,
        Command::Token(cmd) => token(&cli.database_url, &keys, cmd).await,
        Command::Migrate => {
            let store = open_store(&cli.database_url).await?;
            tracing::info!(backend = store.backend(), "migrations applied");
            Ok(())
        }
        Command::Import(args) => run_import(&cli.database_url, args).await,
        Command::Export(args) => run_export(&cli.database_url, args).await,
        Command::Resolve(args) => {
            let store = open_store(&cli.database_url).await?;
            let snapshot = index::load_snapshot(&store).await?;
            let loc = Location {
                lat: params::check_coordinate("lat", args.lat, -90.0, 90.0).map_err(|e| anyhow::anyhow!("{e}"))?,
                lon: params::check_coordinate("lon", args.lon, -180.0, 180.0).map_err(|e| anyhow::anyhow!("{e}"))?,
            };
            let tiers = match args.tier {
                Some(t) => params::tiers(&[("tier", t)]).map_err(|e| anyhow::anyhow!("{e}"))?,
                None => None,
            };
            let body = crate::api::resolve::answer_one(&snapshot, loc, tiers).map_err(|e| anyhow::anyhow!("{e}"))?;
            let value: serde_json::Value = serde_json::from_slice(&body)?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
    }
}

/// Opens the store and runs migrations.
pub async fn open_store(url: &str) -> anyhow::Result<DynStore> {
    let store = store::connect(url).await.with_context(|| format!("opening {}", store::redact_url(url)))?;
    store.migrate().await.context("running migrations")?;
    Ok(store)
}

async fn run_import(url: &str, args: ImportArgs) -> anyhow::Result<()> {
    let store = open_store(url).await?;
    let summary = if args.bundled {
        import::bundled::import_bundled(&store).await?
    } else {
        let path = args.file.context("a FILE or --bundled is required")?;
        let opts = ImportOptions {
            on_invalid: args.on_invalid,
            map: PropertyMap {
                id: args.id_field,
                id_prefix: args.id_prefix,
                name: args.name_field,
                tier: args.tier_field,
                default_tier: args.tier,
                parent: args.parent_field,
            },
            source: args.source,
            license: args.license,
            progress: true,
            max_vertices: 0,
        };
        let done = import::import_path(&store, &path, &opts, &Actor::local("cli"))
            .await
            .with_context(|| format!("importing {}", path.display()))?;
        match done {
            import::FileImport::Features(summary) => summary,
            import::FileImport::Dump(restored) => return print_restore(&path, &restored, args.json),
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for r in &summary.reports {
            eprintln!("{r}");
        }
        println!(
            "read {} features: imported {} ({} repaired), skipped {}, endpoints {}, parents set {}; index version {}",
            summary.read,
            summary.imported,
            summary.repaired,
            summary.skipped,
            summary.endpoints,
            summary.parents_set,
            summary.seq
        );
    }
    Ok(())
}

fn print_restore(path: &std::path::Path, r: &crate::export::RestoreSummary, json: bool) -> anyhow::Result<()> {
    if r.existing_before > 0 {
        eprintln!(
            "note: the store already held {} jurisdictions: those with ids in the export were replaced, the \
             others kept",
            r.existing_before
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        let from = match (r.source_seq, &r.exported_at) {
            (Some(seq), Some(at)) => format!(" (exported at {at}, source seq {seq})"),
            (Some(seq), None) => format!(" (source seq {seq})"),
            (None, Some(at)) => format!(" (exported at {at})"),
            (None, None) => String::new(),
        };
        println!(
            "restored export {}{from}: {} jurisdictions, {} endpoints, {} services; parents kept as exported; \
             index version {}",
            path.display(),
            r.jurisdictions,
            r.endpoints,
            r.services,
            r.seq
        );
    }
    Ok(())
}

async fn run_export(url: &str, args: ExportArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let store = open_store(url).await?;
    let Some(path) = args.output else {
        let summary = crate::export::export(&store, std::io::stdout()).await.context("exporting to stdout")?;
        eprintln!(
            "exported {} jurisdictions, {} endpoints, {} services (seq {})",
            summary.jurisdictions, summary.endpoints, summary.services, summary.seq
        );
        return Ok(());
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    anyhow::ensure!(!file_name.is_empty(), "--output {} does not name a file", path.display());
    let partial = path.with_file_name(format!(".{file_name}.partial"));
    let gzip = file_name.to_ascii_lowercase().ends_with(".gz");
    let result = async {
        let file = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let summary = if gzip {
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            let summary = crate::export::export(&store, &mut gz).await?;
            let mut file = gz.finish()?;
            file.flush()?;
            file.sync_all()?;
            summary
        } else {
            let mut file = file;
            let summary = crate::export::export(&store, &mut file).await?;
            file.sync_all()?;
            summary
        };
        std::fs::rename(&partial, &path).with_context(|| format!("renaming {} into place", partial.display()))?;
        anyhow::Ok(summary)
    }
    .await;
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context(format!("exporting to {}", path.display())));
        }
    };
    eprintln!(
        "exported {} jurisdictions, {} endpoints, {} services (seq {}) to {}",
        summary.jurisdictions,
        summary.endpoints,
        summary.services,
        summary.seq,
        path.display()
    );
    Ok(())
}

/// Prepares a store for serving: migrate, import the bundled data when empty.
pub async fn prepare_store(url: &str, bundled: bool) -> anyhow::Result<DynStore> {
    let store = open_store(url).await?;
    if bundled && store.count_jurisdictions().await? == 0 {
        tracing::info!("empty store: importing the bundled boundaries and Open311 servers");
        let summary = import::bundled::import_bundled(&store).await.context("importing bundled data")?;
        tracing::info!(
            imported = summary.imported,
            repaired = summary.repaired,
            skipped = summary.skipped,
            endpoints = summary.endpoints,
            "bundled data imported"
        );
    }
    Ok(store)
}

async fn token(url: &str, settings: &KeySettings, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Keygen { force } => {
            let path = Keys::keygen(settings, force)?;
            eprintln!("key pair written to {}", path.display());
        }
        TokenCommand::Issue { scopes, ttl, sub } => {
            let scopes = scopes
                .iter()
                .map(|s| s.parse::<Scope>().map_err(|e| anyhow::anyhow!("--scope {s}: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let keys = Keys::load_or_create(settings)?;
            let store = open_store(url).await?;
            let (token, claims) = keys.issue(&sub, &scopes, ttl)?;
            store
                .record_token(&TokenRecord {
                    jti: claims.jti.clone(),
                    sub: claims.sub.clone(),
                    scopes: claims.scopes.clone(),
                    issued_at: unix_to_rfc3339(claims.iat),
                    expires_at: unix_to_rfc3339(claims.exp),
                    revoked_at: None,
                })
                .await?;
            println!("{token}");
        }
        TokenCommand::Revoke { jti, reason } => {
            let store = open_store(url).await?;
            if store.revoke_token(&jti, reason.as_deref()).await? {
                eprintln!("token {jti} revoked");
            } else {
                eprintln!("token {jti} was already revoked");
            }
        }
        TokenCommand::List => {
            let store = open_store(url).await?;
            println!("{}", serde_json::to_string_pretty(&store.list_tokens().await?)?);
        }
    }
    Ok(())
}

fn unix_to_rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Loads the token keys for `serve`: the full pair (created on first use), or
/// only the public key on a query instance that was given just that.
fn serve_keys(settings: &KeySettings) -> anyhow::Result<Keys> {
    let only_public = settings.algorithm == Algorithm::EdDSA
        && !settings.private_key_path().exists()
        && settings.public_key_path().exists();
    if only_public {
        tracing::info!(key = %settings.public_key_path().display(), "verify-only instance: no private key");
        Ok(Keys::load_verify_only(settings)?)
    } else {
        Ok(Keys::load_or_create(settings)?)
    }
}

/// Opens the store for `serve`, retrying with backoff while the database is
/// unreachable (and saying why), so instances may start before their database.
async fn open_store_with_retry(url: &str, bundled: bool) -> anyhow::Result<DynStore> {
    let mut delay = Duration::from_millis(500);
    loop {
        match prepare_store(url, bundled).await {
            Ok(store) => return Ok(store),
            Err(e) if is_unreachable(&e) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64, "database unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error means the database could not be reached (worth retrying).
fn is_unreachable(e: &anyhow::Error) -> bool {
    let transient =
        |e: &sqlx::Error| matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed);
    e.chain().any(|cause| {
        cause.downcast_ref::<sqlx::Error>().is_some_and(transient)
            || matches!(cause.downcast_ref::<store::StoreError>(), Some(store::StoreError::Database(d)) if transient(d))
    })
}

async fn serve(url: &str, key_settings: &KeySettings, args: ServeArgs) -> anyhow::Result<()> {
    let keys = std::sync::Arc::new(serve_keys(key_settings).context("loading token keys")?);
    let store = open_store_with_retry(url, !args.no_bundled).await?;
    let snapshot: Snapshot = index::load_snapshot(&store).await.context("building the index")?;
    let settings = Settings {
        max_batch: args.max_batch,
        cache_max_age: args.cache_max_age,
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_secs(args.request_timeout),
        max_vertices: args.max_vertices,
        max_import_bytes: args.max_import_bytes,
        max_within_m: args.max_within_m,
        nearest_max_m: args.nearest_max_m,
        limits: crate::limits::LimitSettings {
            max_concurrent: args.max_concurrent.max(1),
            admin_max_concurrent: args.admin_max_concurrent.max(1),
            rate_limit: std::num::NonZeroU32::new(args.rate_limit),
            rate_burst: std::num::NonZeroU32::new(args.rate_burst).unwrap_or(std::num::NonZeroU32::MIN),
            max_header_bytes: args.max_header_bytes,
        },
        harvest: crate::harvest::HarvestSettings {
            interval: (args.harvest_interval > 0).then(|| Duration::from_secs(args.harvest_interval)),
            concurrency: args.harvest_concurrency.max(1),
            max_backoff: Duration::from_secs(args.harvest_max_backoff),
            policy: crate::harvest::fetch::FetchPolicy {
                timeout: Duration::from_secs(args.harvest_timeout.max(1)),
                max_bytes: args.harvest_max_bytes,
                allow_loopback: args.harvest_allow_loopback,
                allow_private: args.harvest_allow_private,
                ..Default::default()
            },
        },
        lost_server_name: args.lost_server_name,
        metrics: args.metrics,
    };
    let state = AppState::new(store, std::sync::Arc::new(snapshot), settings).with_keys(keys);
    let follower = crate::index::follower::spawn(
        state.index.clone(),
        state.store.clone(),
        state.write_lock.clone(),
        Duration::from_millis(args.poll_interval_ms.max(10)),
    );
    let harvester = crate::harvest::spawn(state.clone());
    // The per-client rate limiter forgets clients whose bucket is full again.
    let pruner = {
        let limits = state.limits.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                limits.forget_idle_clients();
            }
        })
    };
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    #[cfg(target_os = "linux")]
    crate::busy_poll::watch(std::os::fd::AsFd::as_fd(&listener));
    // No Nagle delay: a streamed batch answer is written a chunk at a time,
    // and with Nagle's algorithm on each chunk after the first waited for
    // the client's (delayed, up to 40 ms) acknowledgement of the one before.
    // With `--busy-poll-us`, every connection is also watched by the poller.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
        #[cfg(target_os = "linux")]
        crate::busy_poll::watch(std::os::fd::AsFd::as_fd(tcp));
    });
    let store = state.store.clone();
    tracing::info!(address = %local, backend = store.backend(), busy_poll_us = args.busy_poll_us, "listening");
    // On SIGTERM/SIGINT: stop the background tasks and accepting connections,
    // let the requests in flight finish (at most `--shutdown-grace`), close the store.
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown_signal().await;
        let _ = stopping_tx.send(true);
    };
    use std::future::IntoFuture;
    let mut server = Box::pin(
        axum::serve(listener, crate::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(signal)
            .into_future(),
    );
    let grace = Duration::from_secs(args.shutdown_grace);
    let drained = tokio::select! {
        served = &mut server => { served?; true }
        _ = stopping.wait_for(|stop| *stop) => {
            follower.abort();
            pruner.abort();
            if let Some(h) = &harvester {
                h.abort();
            }
            tracing::info!(grace_s = grace.as_secs(), "no longer accepting connections; finishing the requests in flight");
            tokio::select! {
                served = &mut server => { served?; true }
                _ = tokio::time::sleep(grace) => false,
            }
        }
    };
    follower.abort();
    pruner.abort();
    if let Some(h) = harvester {
        h.abort();
    }
    if !drained {
        tracing::warn!(
            grace_s = grace.as_secs(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
    // Dropping the server future drops its accept loop; connection tasks still
    // running past the grace period end with the runtime. The store waits for
    // connections in use to come back, so bound that too.
    drop(server);
    if tokio::time::timeout(Duration::from_secs(5), store.close()).await.is_err() {
        tracing::warn!("store connections still in use after 5 s; exiting without waiting for them");
    } else {
        tracing::info!("store closed");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag and argument of every subcommand can also come from a `GEOWEBDNS_*` variable.
    #[test]
    fn every_flag_has_an_environment_variable() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                match arg.get_env() {
                    Some(env) if env.to_string_lossy().starts_with("GEOWEBDNS_") => {}
                    _ => missing.push(format!("{path} {id}")),
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "geowebdns", &mut missing);
        assert!(missing.is_empty(), "flags without GEOWEBDNS_* variables: {missing:?}");
    }

    #[test]
    fn debug_hides_secrets() {
        let cli = Cli::parse_from([
            "geowebdns",
            "--database-url",
            "postgres://app:hunter2-pw@db.internal/geo?sslmode=require",
            "--jwt-algorithm",
            "hs256",
            "--jwt-secret",
            "a-very-long-and-secret-hs256-key-of-40-bytes",
            "serve",
        ]);
        let shown = format!("{cli:?}");
        assert!(!shown.contains("hunter2-pw"), "{shown}");
        assert!(!shown.contains("a-very-long"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal/geo"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("400d").is_err());
    }
}
