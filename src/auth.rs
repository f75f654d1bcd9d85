//! Admin API tokens: scopes, claims, signing keys, issuing and verifying JWTs,
//! and the authentication / authorization errors of the admin API.
//!
//! This module owns:
//! - [`Scope`] (`admin` or `jurisdiction:<id>`) and the [`Claims`] of a token
//!   (`sub`, `iat`, `exp`, optional `nbf`, `jti`, `scopes`);
//! - [`Keys`]: the one pinned signing algorithm with its key material, loaded
//!   from (or created in) a key directory ([`KeySettings`]): EdDSA (Ed25519) by
//!   default, with `<key_dir>/ed25519-private.pem` (PKCS#8 PEM, mode 0600) and
//!   `<key_dir>/ed25519-public.pem` (SPKI PEM); or HS256 with a configured
//!   secret of at least [`MIN_SECRET_BYTES`] bytes;
//! - [`Keys::issue`] and [`Keys::verify`], which turns a token into a
//!   [`Principal`] or an [`AuthError`];
//! - [`bearer_token`], which reads `Authorization: Bearer <token>`.
//!
//! Only the pinned algorithm is ever accepted: `alg: none`, another algorithm
//! (including HS256 signed with the public key, the classic key-confusion
//! attack) and bad signatures are refused. Why a token was refused is logged at
//! `debug` level; callers only ever see [`AuthError::code`].
//!
//! Revocation is not checked here: the caller looks [`Principal::jti`] up in
//! the store after [`Keys::verify`] and answers [`AuthError::Revoked`].

use axum::http::{header, HeaderMap};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// File name of the Ed25519 private key (PKCS#8 PEM) inside the key directory.
pub const PRIVATE_KEY_FILE: &str = "ed25519-private.pem";
/// File name of the Ed25519 public key (SPKI PEM) inside the key directory.
pub const PUBLIC_KEY_FILE: &str = "ed25519-public.pem";
/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Clock leeway for `exp` and `nbf`, in seconds. Zero: an expired token is
/// refused from the second after its `exp`. Tokens issued here carry no `nbf`,
/// so clock skew between instances only matters at expiry.
pub const LEEWAY_SECS: u64 = 0;
/// Longest token lifetime (`exp - iat`) issued or accepted unless configured
/// otherwise (`--max-token-lifetime`): 30 days. A longer-lived token is refused
/// even when its signature is good, so a leaked or carelessly minted
/// long-lived token cannot become a standing credential.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// Why a request is not authenticated (401) or not authorized (403), or why
/// keys could not be loaded or a token issued (500).
///
/// The [`Display`](fmt::Display) text is short and safe to show; details are
/// logged at `debug` where the error is made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// 401: no `Authorization` header.
    #[error("missing bearer token")]
    Missing,
    /// 401: not a `Bearer` header, not a JWT, or claims missing or malformed
    /// (including unknown or empty scopes).
    #[error("malformed token")]
    Malformed,
    /// 401: the token's algorithm is not the pinned one.
    #[error("token algorithm not accepted")]
    WrongAlgorithm,
    /// 401: the signature does not match.
    #[error("invalid token signature")]
    BadSignature,
    /// 401: `exp` has passed.
    #[error("token expired")]
    Expired,
    /// 401: `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// 401: the token id is revoked (checked by the caller against the store).
    #[error("token revoked")]
    Revoked,
    /// 401: `exp - iat` is longer than the configured maximum token lifetime.
    #[error("token lifetime exceeds the maximum this service accepts")]
    LifetimeTooLong,
    /// 403: the token is valid but lacks the scope `needed`.
    #[error("token lacks the scope `{needed}`")]
    Forbidden {
        /// The scope that would have allowed the request, e.g. `admin`.
        needed: String,
    },
    /// 500: key files or key settings are missing, unreadable or invalid.
    #[error("key error: {0}")]
    Key(String),
    /// 500: a token could not be issued (no private key here, no scope, bad TTL...).
    #[error("cannot issue token: {0}")]
    Issue(String),
}

impl AuthError {
    /// Stable short code for responses and logs, e.g. `token_expired`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "token_missing",
            AuthError::Malformed => "token_malformed",
            AuthError::WrongAlgorithm => "token_algorithm",
            AuthError::BadSignature => "token_signature",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::Revoked => "token_revoked",
            AuthError::LifetimeTooLong => "token_lifetime",
            AuthError::Forbidden { .. } => "forbidden",
            AuthError::Key(_) => "key_error",
            AuthError::Issue(_) => "token_issue",
        }
    }

    /// HTTP status: 401 for every token problem, 403 for a missing scope, 500
    /// for key and issuing problems.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing
            | AuthError::Malformed
            | AuthError::WrongAlgorithm
            | AuthError::BadSignature
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::Revoked
            | AuthError::LifetimeTooLong => 401,
            AuthError::Forbidden { .. } => 403,
            AuthError::Key(_) | AuthError::Issue(_) => 500,
        }
    }

    /// The `WWW-Authenticate` value to send with this error (RFC 6750 §3):
    /// `Bearer` when no token was sent, `Bearer error="invalid_token"` for the
    /// other 401s, `Bearer error="insufficient_scope"` for 403, none for 500.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing => Some("Bearer"),
            AuthError::Forbidden { .. } => Some("Bearer error=\"insufficient_scope\""),
            AuthError::Key(_) | AuthError::Issue(_) => None,
            _ => Some("Bearer error=\"invalid_token\""),
        }
    }
}

/// The error of parsing a [`Scope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope `{0}`: expected `admin` or `jurisdiction:<id>`")]
pub struct InvalidScope(pub String);

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Everything (`admin`).
    Admin,
    /// The endpoints and services of one jurisdiction (`jurisdiction:<id>`).
    Jurisdiction(String),
}

impl FromStr for Scope {
    type Err = InvalidScope;

    /// Parses `admin` or `jurisdiction:<id>` (exact, case-sensitive; the id is
    /// non-empty and has no control characters).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "admin" {
            return Ok(Scope::Admin);
        }
        match s.strip_prefix("jurisdiction:") {
            Some(id) if !id.is_empty() && !id.chars().any(char::is_control) => Ok(Scope::Jurisdiction(id.to_owned())),
            _ => Err(InvalidScope(s.escape_debug().to_string())),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Jurisdiction(id) => write!(f, "jurisdiction:{id}"),
        }
    }
}

/// The claims of an admin token. Unknown extra claims are ignored when decoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: who the token was issued to.
    pub sub: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Not before, seconds since the Unix epoch (absent in tokens issued here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token id, the key of revocation.
    pub jti: String,
    /// Scopes as strings (`admin`, `jurisdiction:<id>`), a JSON array.
    pub scopes: Vec<String>,
}

/// What a token is decoded into: its [`Claims`] and whether it has an `aud`
/// claim, whatever its value.
#[derive(Deserialize)]
struct Decoded {
    #[serde(flatten)]
    claims: Claims,
    #[serde(default)]
    aud: Present,
}

/// `true` when the member is present (even `null`), its value ignored.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Present(true))
    }
}

/// Who a verified token speaks for, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token subject.
    pub sub: String,
    /// Token id (for revocation checks and the audit log).
    pub jti: String,
    /// Parsed scopes, never empty.
    pub scopes: Vec<Scope>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

impl Principal {
    /// Whether the token has the `admin` scope.
    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }

    /// Whether the token may manage the endpoints and services of `jurisdiction_id`:
    /// `admin`, or `jurisdiction:<jurisdiction_id>`.
    pub fn may_manage(&self, jurisdiction_id: &str) -> bool {
        self.scopes.iter().any(|s| match s {
            Scope::Admin => true,
            Scope::Jurisdiction(id) => id == jurisdiction_id,
        })
    }

    /// `Ok` for an admin token, else [`AuthError::Forbidden`] (403).
    pub fn require_admin(&self) -> Result<(), AuthError> {
        if self.is_admin() {
            Ok(())
        } else {
            tracing::debug!(sub = %self.sub, jti = %self.jti, needed = "admin", "token lacks scope");
            Err(AuthError::Forbidden { needed: Scope::Admin.to_string() })
        }
    }

    /// `Ok` if the token [may manage](Self::may_manage) `jurisdiction_id`, else
    /// [`AuthError::Forbidden`] (403).
    pub fn require_jurisdiction(&self, jurisdiction_id: &str) -> Result<(), AuthError> {
        if self.may_manage(jurisdiction_id) {
            Ok(())
        } else {
            let needed = Scope::Jurisdiction(jurisdiction_id.to_owned()).to_string();
            tracing::debug!(sub = %self.sub, jti = %self.jti, needed = %needed, "token lacks scope");
            Err(AuthError::Forbidden { needed })
        }
    }
}

/// The pinned token signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Algorithm {
    /// Ed25519 with a key pair in the key directory (the default).
    #[default]
    #[value(name = "eddsa")]
    EdDSA,
    /// HMAC-SHA256 with a configured secret.
    #[value(name = "hs256")]
    HS256,
}

impl Algorithm {
    fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;

    /// `eddsa` or `hs256`, case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("eddsa") {
            Ok(Algorithm::EdDSA)
        } else if s.eq_ignore_ascii_case("hs256") {
            Ok(Algorithm::HS256)
        } else {
            Err(format!("unknown JWT algorithm `{s}` (expected `eddsa` or `hs256`)"))
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::EdDSA => "eddsa",
            Algorithm::HS256 => "hs256",
        })
    }
}

/// Where token keys come from (the `--key-dir`, `--jwt-algorithm` and
/// `--jwt-secret` flags). `Debug` redacts the secret.
#[derive(Clone)]
pub struct KeySettings {
    /// Directory of the Ed25519 key files (default `keys`).
    pub key_dir: PathBuf,
    /// The pinned algorithm.
    pub algorithm: Algorithm,
    /// The HS256 secret (at least [`MIN_SECRET_BYTES`] bytes); unused with EdDSA.
    pub hs256_secret: Option<String>,
    /// Longest token lifetime (`exp - iat`) issued or accepted
    /// (default [`DEFAULT_MAX_TOKEN_LIFETIME`]).
    pub max_token_lifetime: Duration,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            key_dir: PathBuf::from("keys"),
            algorithm: Algorithm::EdDSA,
            hs256_secret: None,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
        }
    }
}

impl fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySettings")
            .field("key_dir", &self.key_dir)
            .field("algorithm", &self.algorithm)
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "<redacted>"))
            .field("max_token_lifetime", &self.max_token_lifetime)
            .finish()
    }
}

impl KeySettings {
    /// `<key_dir>/ed25519-private.pem`.
    pub fn private_key_path(&self) -> PathBuf {
        self.key_dir.join(PRIVATE_KEY_FILE)
    }

    /// `<key_dir>/ed25519-public.pem`.
    pub fn public_key_path(&self) -> PathBuf {
        self.key_dir.join(PUBLIC_KEY_FILE)
    }
}

/// The key material of the pinned algorithm: always able to verify, able to
/// issue only where the private key (or the HS256 secret) is loaded.
#[derive(Clone)]
pub struct Keys {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    max_lifetime_secs: i64,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("algorithm", &self.algorithm)
            .field("can_sign", &self.encoding.is_some())
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys for `serve` and `token issue`.
    ///
    /// EdDSA: loads the private key (and checks the public key file against it,
    /// or derives the public key when that file is missing); creates and writes
    /// a new key pair when neither file exists. When only the public key exists
    /// (a query-only instance), falls back to [`Keys::load_verify_only`].
    /// HS256: uses the configured secret, which must have at least
    /// [`MIN_SECRET_BYTES`] bytes.
    pub fn load_or_create(settings: &KeySettings) -> Result<Keys, AuthError> {
        Self::load_or_create_inner(settings).map(|keys| keys.with_max_lifetime(settings.max_token_lifetime))
    }

    fn load_or_create_inner(settings: &KeySettings) -> Result<Keys, AuthError> {
        match settings.algorithm {
            Algorithm::HS256 => Self::hs256(settings, true),
            Algorithm::EdDSA => {
                warn_unused_secret(settings);
                let private_path = settings.private_key_path();
                let public_path = settings.public_key_path();
                if let Some(pem) = read_optional(&private_path)? {
                    refuse_if_exposed(&private_path)?;
                    let signing = parse_private(&pem, &private_path)?;
                    check_public_matches(&signing, &public_path)?;
                    return Self::ed25519(Some(&signing), &signing.verifying_key());
                }
                if public_path.exists() {
                    tracing::info!(
                        public = %public_path.display(),
                        "no Ed25519 private key; this instance can verify but not issue tokens"
                    );
                    return Self::load_verify_only_inner(settings);
                }
                let signing = SigningKey::generate(&mut OsRng);
                write_key_pair(&settings.key_dir, &signing, false)?;
                tracing::info!(
                    private = %private_path.display(),
                    public = %public_path.display(),
                    "created a new Ed25519 key pair for admin tokens"
                );
                Self::ed25519(Some(&signing), &signing.verifying_key())
            }
        }
    }

    /// Keys that verify but never sign, for query-only instances.
    ///
    /// EdDSA: needs only `<key_dir>/ed25519-public.pem` (derived from the
    /// private key file if only that exists); creates nothing. HS256: the
    /// configured secret (verification needs it too).
    pub fn load_verify_only(settings: &KeySettings) -> Result<Keys, AuthError> {
        Self::load_verify_only_inner(settings).map(|keys| keys.with_max_lifetime(settings.max_token_lifetime))
    }

    fn load_verify_only_inner(settings: &KeySettings) -> Result<Keys, AuthError> {
        match settings.algorithm {
            Algorithm::HS256 => Self::hs256(settings, false),
            Algorithm::EdDSA => {
                warn_unused_secret(settings);
                let public_path = settings.public_key_path();
                let verifying = match read_optional(&public_path)? {
                    Some(pem) => parse_public(&pem, &public_path)?,
                    None => {
                        let private_path = settings.private_key_path();
                        match read_optional(&private_path)? {
                            Some(pem) => {
                                refuse_if_exposed(&private_path)?;
                                parse_private(&pem, &private_path)?.verifying_key()
                            }
                            None => {
                                return Err(AuthError::Key(format!(
                                    "no Ed25519 public key at {} (copy it from the instance that issues tokens)",
                                    public_path.display()
                                )))
                            }
                        }
                    }
                };
                Self::ed25519(None, &verifying)
            }
        }
    }

    /// Creates a new Ed25519 key pair in the key directory (`geowebdns token
    /// keygen`) and returns the private key's path. Refuses to replace an
    /// existing key file unless `force`; tokens signed by a replaced key stop
    /// verifying.
    pub fn keygen(settings: &KeySettings, force: bool) -> Result<PathBuf, AuthError> {
        if settings.algorithm != Algorithm::EdDSA {
            return Err(AuthError::Key("keygen creates Ed25519 keys; HS256 uses the configured secret".into()));
        }
        let private_path = settings.private_key_path();
        let public_path = settings.public_key_path();
        if !force {
            if let Some(existing) = [&private_path, &public_path].into_iter().find(|p| p.exists()) {
                return Err(AuthError::Key(format!(
                    "{} already exists; pass --force to replace the key pair (tokens signed by the old key stop verifying)",
                    existing.display()
                )));
            }
        }
        let signing = SigningKey::generate(&mut OsRng);
        write_key_pair(&settings.key_dir, &signing, force)?;
        tracing::info!(
            private = %private_path.display(),
            public = %public_path.display(),
            "created a new Ed25519 key pair for admin tokens"
        );
        Ok(private_path)
    }

    /// The same keys with another maximum token lifetime (see
    /// [`KeySettings::max_token_lifetime`]).
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime_secs = secs(max);
        self
    }

    /// The longest token lifetime issued or accepted.
    pub fn max_lifetime(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.max_lifetime_secs).unwrap_or(0))
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether these keys can [issue](Self::issue) tokens.
    pub fn can_sign(&self) -> bool {
        self.encoding.is_some()
    }

    /// Issues a token for `sub` with `scopes` (at least one), valid for `ttl`
    /// (at least one second) from now, with a random 128-bit hex `jti`.
    /// Returns the token and its claims.
    pub fn issue(&self, sub: &str, scopes: &[Scope], ttl: Duration) -> Result<(String, Claims), AuthError> {
        let Some(encoding) = &self.encoding else {
            return Err(AuthError::Issue(
                "this instance holds only the public key; issue tokens where the private key is".into(),
            ));
        };
        if sub.trim().is_empty() {
            return Err(AuthError::Issue("the subject must not be empty".into()));
        }
        if scopes.is_empty() {
            return Err(AuthError::Issue("a token needs at least one scope".into()));
        }
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        if ttl_secs < 1 {
            return Err(AuthError::Issue("the TTL must be at least one second".into()));
        }
        if ttl_secs > self.max_lifetime_secs {
            return Err(AuthError::Issue(format!(
                "the TTL ({ttl_secs} s) is longer than the maximum token lifetime ({} s); \
                 raise --max-token-lifetime (GEOWEBDNS_MAX_TOKEN_LIFETIME) on every instance to allow it",
                self.max_lifetime_secs
            )));
        }
        let iat = now_secs();
        let exp = iat.checked_add(ttl_secs).ok_or_else(|| AuthError::Issue("the TTL is too long".into()))?;
        let claims = Claims {
            sub: sub.to_owned(),
            iat,
            exp,
            nbf: None,
            jti: random_jti(),
            scopes: scopes.iter().map(ToString::to_string).collect(),
        };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm.jwt()), &claims, encoding)
            .map_err(|e| AuthError::Issue(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies a token: the pinned algorithm only, the signature, `exp`, `nbf`
    /// (leeway [`LEEWAY_SECS`]), the required claims `sub`, `iat`, `exp`, `jti`
    /// and `scopes` (non-empty, each a valid [`Scope`]). Tokens with an `aud`
    /// claim are refused (this service issues none). Does not check revocation.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let result = self.verify_inner(token);
        if let Err(e) = &result {
            tracing::debug!(code = e.code(), "token refused");
        }
        result
    }

    fn verify_inner(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Decoded>(token, &self.decoding, &self.validation).map_err(|e| {
            tracing::debug!(reason = %e, "token failed validation");
            map_jwt_error(e.kind())
        })?;
        // jsonwebtoken refuses an `aud` it can parse (a string or an array of
        // strings) but ignores any other `aud` (`[null]`, `5`, `{}`); refuse
        // every token that has the claim at all.
        if data.claims.aud.0 {
            tracing::debug!("token has an aud claim");
            return Err(AuthError::Malformed);
        }
        let claims = data.claims.claims;
        // A token that lives longer than configured is refused whoever signed it.
        if claims.exp.saturating_sub(claims.iat) > self.max_lifetime_secs {
            tracing::debug!(jti = %claims.jti, "token lifetime exceeds the maximum");
            return Err(AuthError::LifetimeTooLong);
        }
        if claims.sub.is_empty() || claims.jti.is_empty() {
            tracing::debug!("token has an empty sub or jti");
            return Err(AuthError::Malformed);
        }
        if claims.scopes.is_empty() {
            tracing::debug!(jti = %claims.jti, "token has no scopes");
            return Err(AuthError::Malformed);
        }
        let scopes = claims.scopes.iter().map(|s| s.parse::<Scope>()).collect::<Result<Vec<_>, _>>().map_err(|e| {
            tracing::debug!(jti = %claims.jti, reason = %e, "token has an invalid scope");
            AuthError::Malformed
        })?;
        Ok(Principal { sub: claims.sub, jti: claims.jti, scopes, exp: claims.exp })
    }

    fn hs256(settings: &KeySettings, can_sign: bool) -> Result<Keys, AuthError> {
        let secret = settings
            .hs256_secret
            .as_deref()
            .ok_or_else(|| AuthError::Key("HS256 needs a secret (--jwt-secret or GEOWEBDNS_JWT_SECRET)".into()))?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::Key(format!(
                "the HS256 secret must have at least {MIN_SECRET_BYTES} bytes, it has {}",
                secret.len()
            )));
        }
        Ok(Keys {
            algorithm: Algorithm::HS256,
            encoding: can_sign.then(|| EncodingKey::from_secret(secret.as_bytes())),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation: validation(Algorithm::HS256),
            max_lifetime_secs: secs(DEFAULT_MAX_TOKEN_LIFETIME),
        })
    }

    fn ed25519(signing: Option<&SigningKey>, verifying: &VerifyingKey) -> Result<Keys, AuthError> {
        let encoding = match signing {
            // PKCS#8 v1 (no embedded public key): what every backend reads.
            Some(key) => {
                let der = KeypairBytes { secret_key: key.to_bytes(), public_key: None }
                    .to_pkcs8_der()
                    .map_err(|e| AuthError::Key(format!("cannot encode the Ed25519 private key: {e}")))?;
                Some(EncodingKey::from_ed_der(der.as_bytes()))
            }
            None => None,
        };
        let public_pem = verifying
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AuthError::Key(format!("cannot encode the Ed25519 public key: {e}")))?;
        let decoding = DecodingKey::from_ed_pem(public_pem.as_bytes())
            .map_err(|e| AuthError::Key(format!("cannot load the Ed25519 public key: {e}")))?;
        Ok(Keys {
            algorithm: Algorithm::EdDSA,
            encoding,
            decoding,
            validation: validation(Algorithm::EdDSA),
            max_lifetime_secs: secs(DEFAULT_MAX_TOKEN_LIFETIME),
        })
    }
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut v = Validation::new(algorithm.jwt());
    v.algorithms = vec![algorithm.jwt()];
    v.leeway = LEEWAY_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    // `iat` and `jti` are required by deserializing into `Claims`.
    v.set_required_spec_claims(&["exp", "sub"]);
    v
}

/// Maps a jsonwebtoken failure to the answer; anything unknown is a 401.
fn map_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => AuthError::WrongAlgorithm,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        // Our own key is unusable: not the client's fault. (A token cannot cause
        // these: its `alg` has already been matched against the pinned one.)
        ErrorKind::InvalidEddsaKey | ErrorKind::InvalidKeyFormat => AuthError::Key(format!("{kind:?}")),
        // InvalidToken, Base64, Json (including `alg: none`, which is no known
        // algorithm), Utf8, missing or ill-typed claims, `aud`/`iss`/`sub`
        // mismatches, and any kind added later.
        _ => AuthError::Malformed,
    }
}

/// Reads the token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive). No header: [`AuthError::Missing`]; several headers,
/// another scheme, an empty token or a token with spaces: [`AuthError::Malformed`].
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        tracing::debug!(code = "token_missing", "no Authorization header");
        return Err(AuthError::Missing);
    };
    let malformed = |reason: &str| {
        tracing::debug!(code = "token_malformed", reason, "bad Authorization header");
        AuthError::Malformed
    };
    if values.next().is_some() {
        return Err(malformed("several Authorization headers"));
    }
    let value = value.to_str().map_err(|_| malformed("not visible ASCII"))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| malformed("no scheme or no token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed("not the Bearer scheme"));
    }
    let token = token.trim_matches(' ');
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(malformed("empty token or token with spaces"));
    }
    Ok(token)
}

fn now_secs() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn warn_unused_secret(settings: &KeySettings) {
    if settings.hs256_secret.is_some() {
        tracing::warn!("a JWT secret is configured but the algorithm is EdDSA; the secret is ignored");
    }
}

/// The file's text, or `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, AuthError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuthError::Key(format!("cannot read {}: {e}", path.display()))),
    }
}

fn parse_private(pem: &str, path: &Path) -> Result<SigningKey, AuthError> {
    SigningKey::from_pkcs8_pem(pem)
        .map_err(|e| AuthError::Key(format!("{} is not a PKCS#8 PEM Ed25519 private key: {e}", path.display())))
}

fn parse_public(pem: &str, path: &Path) -> Result<VerifyingKey, AuthError> {
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| AuthError::Key(format!("{} is not an SPKI PEM Ed25519 public key: {e}", path.display())))
}

/// Checks the public key file, if any, against the private key.
fn check_public_matches(signing: &SigningKey, public_path: &Path) -> Result<(), AuthError> {
    match read_optional(public_path)? {
        Some(pem) => {
            if parse_public(&pem, public_path)? != signing.verifying_key() {
                return Err(AuthError::Key(format!(
                    "{} does not belong to the private key beside it",
                    public_path.display()
                )));
            }
        }
        None => tracing::info!(
            public = %public_path.display(),
            "no Ed25519 public key file; derived the public key from the private key"
        ),
    }
    Ok(())
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Refuses a private key file that group or others may read, write or
/// execute (like OpenSSH does): whoever can read it can mint admin tokens.
#[cfg(unix)]
fn refuse_if_exposed(path: &Path) -> Result<(), AuthError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| AuthError::Key(format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AuthError::Key(format!(
            "the private key {} has mode {mode:04o}: group or others can access it; run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_exposed(_path: &Path) -> Result<(), AuthError> {
    Ok(())
}

/// Writes `<dir>/ed25519-private.pem` (mode 0600) and `<dir>/ed25519-public.pem`
/// (mode 0644), creating `dir` with mode 0700 if needed. Without `overwrite` an
/// existing private key file is never replaced.
fn write_key_pair(dir: &Path, signing: &SigningKey, overwrite: bool) -> Result<(), AuthError> {
    let key_err =
        |what: &str, path: &Path, e: &dyn fmt::Display| AuthError::Key(format!("{what} {}: {e}", path.display()));
    create_dir(dir).map_err(|e| key_err("cannot create the key directory", dir, &e))?;
    let private_pem = KeypairBytes { secret_key: signing.to_bytes(), public_key: None }
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| key_err("cannot encode the private key for", dir, &e))?;
    let public_pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| key_err("cannot encode the public key for", dir, &e))?;

    let private_path = dir.join(PRIVATE_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    if overwrite {
        write_replacing(&private_path, private_pem.as_bytes(), 0o600)
    } else {
        write_new(&private_path, private_pem.as_bytes(), 0o600)
    }
    .map_err(|e| key_err("cannot write", &private_path, &e))?;
    write_replacing(&public_path, public_pem.as_bytes(), 0o644).map_err(|e| key_err("cannot write", &public_path, &e))
}

fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates `path` (failing if it exists) with `mode` and writes `contents`.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Writes `contents` to a fresh temporary file with `mode` beside `path`, then
/// renames it over `path`.
fn write_replacing(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    write_new(&tmp, contents, mode)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn eddsa_settings(dir: &Path) -> KeySettings {
        KeySettings { key_dir: dir.join("keys"), ..KeySettings::default() }
    }

    fn hs256_settings() -> KeySettings {
        KeySettings {
            algorithm: Algorithm::HS256,
            hs256_secret: Some("0123456789abcdef0123456789abcdef".into()),
            ..KeySettings::default()
        }
    }

    fn eddsa_keys() -> (tempfile::TempDir, Keys) {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load_or_create(&eddsa_settings(dir.path())).unwrap();
        (dir, keys)
    }

    /// Signs arbitrary claims with the keys' own private key.
    fn sign_raw(keys: &Keys, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(keys.algorithm.jwt()), claims, keys.encoding.as_ref().unwrap()).unwrap()
    }

    fn b64url(data: &[u8]) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    fn good_claims() -> serde_json::Value {
        let now = now_secs();
        json!({"sub": "alice", "iat": now, "exp": now + 600, "jti": "abc", "scopes": ["admin"]})
    }

    #[test]
    fn base64url_helper_matches_rfc4648() {
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(b"foob"), "Zm9vYg");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn scopes_parse_and_display() {
        assert_eq!("admin".parse::<Scope>().unwrap(), Scope::Admin);
        assert_eq!("jurisdiction:us-ca".parse::<Scope>().unwrap(), Scope::Jurisdiction("us-ca".into()));
        assert_eq!("jurisdiction:a:b".parse::<Scope>().unwrap(), Scope::Jurisdiction("a:b".into()));
        for bad in ["", "Admin", "root", "jurisdiction:", "jurisdiction", "jurisdiction:a\nb", " admin"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(Scope::Jurisdiction("x".into()).to_string(), "jurisdiction:x");
        assert_eq!(Scope::Admin.to_string(), "admin");
    }

    #[test]
    fn principal_scopes_decide_access() {
        let p = Principal {
            sub: "s".into(),
            jti: "j".into(),
            scopes: vec![Scope::Jurisdiction("a".into()), Scope::Jurisdiction("b".into())],
            exp: 0,
        };
        assert!(!p.is_admin());
        assert!(p.may_manage("a") && p.may_manage("b") && !p.may_manage("c"));
        assert!(p.require_jurisdiction("b").is_ok());
        let err = p.require_jurisdiction("c").unwrap_err();
        assert!(matches!(&err, AuthError::Forbidden { needed } if needed == "jurisdiction:c"));
        assert_eq!((err.status(), err.code()), (403, "forbidden"));
        assert!(matches!(p.require_admin(), Err(AuthError::Forbidden { needed }) if needed == "admin"));
        let admin = Principal { scopes: vec![Scope::Admin], ..p };
        assert!(admin.is_admin() && admin.may_manage("anything"));
        assert!(admin.require_admin().is_ok() && admin.require_jurisdiction("z").is_ok());
    }

    #[test]
    fn eddsa_round_trip() {
        let (_dir, keys) = eddsa_keys();
        let scopes = [Scope::Jurisdiction("us-ca".into()), Scope::Jurisdiction("us-ny".into())];
        let (token, claims) = keys.issue("ops@example.org", &scopes, Duration::from_secs(3600)).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().alg, jsonwebtoken::Algorithm::EdDSA);
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.jti.len(), 32);
        assert_eq!(claims.scopes, ["jurisdiction:us-ca", "jurisdiction:us-ny"]);
        let p = keys.verify(&token).unwrap();
        assert_eq!(p, Principal { sub: claims.sub, jti: claims.jti, scopes: scopes.to_vec(), exp: claims.exp });
        let (_, other) = keys.issue("x", &[Scope::Admin], Duration::from_secs(60)).unwrap();
        assert_ne!(other.jti, p.jti);
    }

    #[test]
    fn hs256_round_trip_and_secret_rules() {
        let keys = Keys::load_or_create(&hs256_settings()).unwrap();
        let (token, claims) = keys.issue("ci", &[Scope::Admin], Duration::from_secs(60)).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().alg, jsonwebtoken::Algorithm::HS256);
        let p = keys.verify(&token).unwrap();
        assert!(p.is_admin());
        assert_eq!(p.jti, claims.jti);

        let other =
            KeySettings { hs256_secret: Some("another-secret-of-32-bytes-or-more!".into()), ..hs256_settings() };
        let err = Keys::load_or_create(&other).unwrap().verify(&token).unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");

        let short = KeySettings { hs256_secret: Some("too short".into()), ..hs256_settings() };
        assert!(matches!(Keys::load_or_create(&short), Err(AuthError::Key(_))));
        let none = KeySettings { hs256_secret: None, ..hs256_settings() };
        assert!(matches!(Keys::load_or_create(&none), Err(AuthError::Key(_))));
        assert!(!format!("{:?}", hs256_settings()).contains("0123456789"));
    }

    #[test]
    fn an_eddsa_token_is_refused_by_an_hs256_verifier() {
        let (_dir, ed) = eddsa_keys();
        let (token, _) = ed.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();
        let hs = Keys::load_or_create(&hs256_settings()).unwrap();
        assert!(matches!(hs.verify(&token), Err(AuthError::WrongAlgorithm)));
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused() {
        let (_dir, keys) = eddsa_keys();
        let now = now_secs();
        let expired =
            sign_raw(&keys, &json!({"sub": "a", "iat": now - 100, "exp": now - 1, "jti": "j", "scopes": ["admin"]}));
        let err = keys.verify(&expired).unwrap_err();
        assert!(matches!(err, AuthError::Expired), "{err:?}");
        assert_eq!((err.status(), err.code()), (401, "token_expired"));

        let future = sign_raw(
            &keys,
            &json!({"sub": "a", "iat": now, "nbf": now + 60, "exp": now + 600, "jti": "j", "scopes": ["admin"]}),
        );
        let err = keys.verify(&future).unwrap_err();
        assert!(matches!(err, AuthError::NotYetValid), "{err:?}");
        assert_eq!((err.status(), err.code()), (401, "token_not_yet_valid"));

        let past_nbf = sign_raw(
            &keys,
            &json!({"sub": "a", "iat": now, "nbf": now - 5, "exp": now + 600, "jti": "j", "scopes": ["admin"]}),
        );
        assert!(keys.verify(&past_nbf).is_ok());
    }

    #[test]
    fn a_token_of_another_key_pair_has_a_bad_signature() {
        let (_d1, keys) = eddsa_keys();
        let (_d2, other) = eddsa_keys();
        let (token, _) = other.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();
        let err = keys.verify(&token).unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");
        assert_eq!((err.status(), err.code()), (401, "token_signature"));

        // Same header and claims, signature of another token.
        let (mine, _) = keys.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();
        let forged = format!("{}.{}", token.rsplit_once('.').unwrap().0, mine.rsplit_once('.').unwrap().1);
        assert!(matches!(keys.verify(&forged), Err(AuthError::BadSignature)));
        // Tampered payload.
        let parts: Vec<&str> = mine.split('.').collect();
        let payload = b64url(good_claims().to_string().as_bytes());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert!(matches!(keys.verify(&tampered), Err(AuthError::BadSignature)));
    }

    #[test]
    fn alg_none_is_refused() {
        let (_dir, keys) = eddsa_keys();
        let payload = b64url(good_claims().to_string().as_bytes());
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#, r#"{"typ":"JWT"}"#] {
            let header = b64url(header.as_bytes());
            for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
                let err = keys.verify(&token).unwrap_err();
                assert!(matches!(err, AuthError::Malformed | AuthError::WrongAlgorithm), "{err:?}");
                assert_eq!(err.status(), 401);
            }
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let settings = eddsa_settings(dir.path());
        let keys = Keys::load_or_create(&settings).unwrap();
        let public_pem = std::fs::read(settings.public_key_path()).unwrap();
        let forged = jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(&public_pem),
        )
        .unwrap();
        let err = keys.verify(&forged).unwrap_err();
        assert!(matches!(err, AuthError::WrongAlgorithm), "{err:?}");
        assert_eq!((err.status(), err.code()), (401, "token_algorithm"));
        // Also with the raw public key bytes as the HMAC key.
        let raw = Keys::load_verify_only(&settings).unwrap();
        let vk = parse_public(std::str::from_utf8(&public_pem).unwrap(), Path::new("p")).unwrap();
        let forged = jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &good_claims(),
            &EncodingKey::from_secret(vk.as_bytes()),
        )
        .unwrap();
        assert!(matches!(raw.verify(&forged), Err(AuthError::WrongAlgorithm)));
    }

    #[test]
    fn other_algorithms_in_the_header_are_refused() {
        let (_dir, keys) = eddsa_keys();
        let (token, _) = keys.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        for alg in ["RS256", "ES256", "HS512", "PS256"] {
            let header = b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
            let err = keys.verify(&format!("{header}.{rest}")).unwrap_err();
            assert!(matches!(err, AuthError::WrongAlgorithm), "{alg}: {err:?}");
        }
        let header = b64url(br#"{"alg":"XX999"}"#);
        assert_eq!(keys.verify(&format!("{header}.{rest}")).unwrap_err().status(), 401);
    }

    #[test]
    fn garbage_is_malformed() {
        let (_dir, keys) = eddsa_keys();
        for token in ["", "abc", "a.b", "a.b.c", "...", "a.b.c.d", "eyJhbGciOiJFZERTQSJ9.e30.%%%"] {
            let err = keys.verify(token).unwrap_err();
            assert!(matches!(err, AuthError::Malformed), "{token:?}: {err:?}");
            assert_eq!((err.status(), err.code()), (401, "token_malformed"));
        }
        // A well-formed EdDSA header with junk after it fails at the signature, which is checked first.
        let err = keys.verify("eyJhbGciOiJFZERTQSJ9.%%%.c2ln").unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");
    }

    #[test]
    fn claims_must_be_complete_and_scopes_valid() {
        let (_dir, keys) = eddsa_keys();
        let now = now_secs();
        let cases = [
            json!({"sub": "a", "iat": now, "exp": now + 60, "jti": "j"}),
            json!({"sub": "a", "iat": now, "exp": now + 60, "jti": "j", "scopes": []}),
            json!({"sub": "a", "iat": now, "exp": now + 60, "jti": "j", "scopes": ["superuser"]}),
            json!({"sub": "a", "iat": now, "exp": now + 60, "jti": "j", "scopes": ["jurisdiction:"]}),
            json!({"sub": "a", "iat": now, "exp": now + 60, "jti": "j", "scopes": "admin"}),
            json!({"sub": "a", "iat": now, "exp": now + 60, "jti": "j", "scopes": ["admin", 3]}),
            json!({"iat": now, "exp": now + 60, "jti": "j", "scopes": ["admin"]}),
            json!({"sub": "a", "exp": now + 60, "jti": "j", "scopes": ["admin"]}),
            json!({"sub": "a", "iat": now, "jti": "j", "scopes": ["admin"]}),
            json!({"sub": "a", "iat": now, "exp": now + 60, "scopes": ["admin"]}),
            json!({"sub": "", "iat": now, "exp": now + 60, "jti": "j", "scopes": ["admin"]}),
            json!({"sub": "a", "iat": now, "exp": "soon", "jti": "j", "scopes": ["admin"]}),
            json!({"sub": "a", "iat": now, "exp": now + 60, "jti": "j", "scopes": ["admin"], "aud": "other"}),
        ];
        for claims in cases {
            let err = keys.verify(&sign_raw(&keys, &claims)).unwrap_err();
            assert!(matches!(err, AuthError::Malformed), "{claims}: {err:?}");
        }
        // Unknown extra claims are tolerated.
        let extra =
            json!({"sub": "a", "iat": now, "exp": now + 60, "jti": "j", "scopes": ["admin"], "iss": "x", "foo": [1]});
        assert!(keys.verify(&sign_raw(&keys, &extra)).unwrap().is_admin());
    }

    #[test]
    fn issue_checks_its_inputs() {
        let (_dir, keys) = eddsa_keys();
        assert!(matches!(keys.issue("a", &[], Duration::from_secs(60)), Err(AuthError::Issue(_))));
        assert!(matches!(keys.issue(" ", &[Scope::Admin], Duration::from_secs(60)), Err(AuthError::Issue(_))));
        assert!(matches!(keys.issue("a", &[Scope::Admin], Duration::from_millis(500)), Err(AuthError::Issue(_))));
        assert!(matches!(keys.issue("a", &[Scope::Admin], Duration::MAX), Err(AuthError::Issue(_))));
    }

    #[test]
    fn key_files_are_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let settings = eddsa_settings(dir.path());
        let keys = Keys::load_or_create(&settings).unwrap();
        assert!(keys.can_sign());
        let private_pem = std::fs::read_to_string(settings.private_key_path()).unwrap();
        let public_pem = std::fs::read_to_string(settings.public_key_path()).unwrap();
        assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&settings.private_key_path()), 0o600);
            assert_eq!(mode(&settings.key_dir), 0o700);
        }
        let (token, _) = keys.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();

        // Reloading finds the same pair, signs with it, and rewrites nothing.
        let again = Keys::load_or_create(&settings).unwrap();
        assert!(again.verify(&token).is_ok());
        let (token2, _) = again.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();
        assert!(keys.verify(&token2).is_ok());
        assert_eq!(std::fs::read_to_string(settings.private_key_path()).unwrap(), private_pem);

        // Missing public file: derived from the private key.
        std::fs::remove_file(settings.public_key_path()).unwrap();
        let derived = Keys::load_or_create(&settings).unwrap();
        assert!(derived.verify(&token).is_ok() && derived.can_sign());
        assert!(Keys::load_verify_only(&settings).unwrap().verify(&token).is_ok());

        // A public file of another pair is an error, not a silent mismatch.
        let other = tempfile::tempdir().unwrap();
        let other_settings = eddsa_settings(other.path());
        Keys::keygen(&other_settings, false).unwrap();
        std::fs::copy(other_settings.public_key_path(), settings.public_key_path()).unwrap();
        assert!(matches!(Keys::load_or_create(&settings), Err(AuthError::Key(_))));

        // A corrupt private key is an error too.
        std::fs::write(settings.private_key_path(), "not a key").unwrap();
        assert!(matches!(Keys::load_or_create(&settings), Err(AuthError::Key(_))));
    }

    #[test]
    fn openssl_generated_keys_load() {
        // `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` (a test-only key).
        const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINhdVvjY6YZMZeyOJbpXHG5bWlcTQZv9HaS3tlWKjEXS\n-----END PRIVATE KEY-----\n";
        const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAdUDc8zGnmF03BK6TR7ddEL1K2mhRgWRzlR0c9govzIE=\n-----END PUBLIC KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let settings = eddsa_settings(dir.path());
        std::fs::create_dir_all(&settings.key_dir).unwrap();
        std::fs::write(settings.private_key_path(), PRIVATE).unwrap();
        std::fs::write(settings.public_key_path(), PUBLIC).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(settings.private_key_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let keys = Keys::load_or_create(&settings).unwrap();
        let (token, _) = keys.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();
        assert!(Keys::load_verify_only(&settings).unwrap().verify(&token).is_ok());
    }

    /// A private key that group or others can read is refused by every
    /// loader (serve, token issue, a verify-only instance deriving the public
    /// key), with the fix in the message; 0600 and 0400 load.
    #[cfg(unix)]
    #[test]
    fn exposed_private_keys_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let settings = eddsa_settings(dir.path());
        Keys::load_or_create(&settings).unwrap();
        let chmod = |mode| {
            std::fs::set_permissions(settings.private_key_path(), std::fs::Permissions::from_mode(mode)).unwrap()
        };
        for mode in [0o640, 0o604, 0o644, 0o660, 0o606, 0o666, 0o610, 0o601] {
            chmod(mode);
            match Keys::load_or_create(&settings) {
                Err(AuthError::Key(msg)) => {
                    assert!(msg.contains("chmod 600") && msg.contains(&format!("{mode:04o}")), "{msg}")
                }
                other => panic!("mode {mode:o} was accepted: {other:?}"),
            }
        }
        // Verify-only with no public key file derives it from the private key: refused too.
        std::fs::remove_file(settings.public_key_path()).unwrap();
        assert!(matches!(Keys::load_verify_only(&settings), Err(AuthError::Key(_))));
        for mode in [0o600, 0o400] {
            chmod(mode);
            assert!(Keys::load_or_create(&settings).unwrap().can_sign(), "mode {mode:o}");
        }
    }

    /// Tokens that live longer than the configured maximum are neither issued
    /// nor accepted, even when signed with our own key; configuring a longer
    /// maximum allows them.
    #[test]
    fn long_lived_tokens_are_refused_unless_configured() {
        let (_dir, keys) = eddsa_keys();
        assert_eq!(keys.max_lifetime(), DEFAULT_MAX_TOKEN_LIFETIME);
        let day = 86_400;
        // Issuing: up to the maximum only.
        assert!(keys.issue("a", &[Scope::Admin], DEFAULT_MAX_TOKEN_LIFETIME).is_ok());
        let err = keys.issue("a", &[Scope::Admin], DEFAULT_MAX_TOKEN_LIFETIME + Duration::from_secs(1)).unwrap_err();
        assert!(matches!(&err, AuthError::Issue(m) if m.contains("--max-token-lifetime")), "{err}");

        // Verifying: a correctly signed token with a 10-year lifetime is refused.
        let now = now_secs();
        let claims =
            |lifetime: i64| json!({"sub": "a", "iat": now, "exp": now + lifetime, "jti": "j", "scopes": ["admin"]});
        let ten_years = sign_raw(&keys, &claims(3650 * day));
        let err = keys.verify(&ten_years).unwrap_err();
        assert_eq!((err.status(), err.code()), (401, "token_lifetime"));
        // An old iat makes the lifetime long even when exp is near.
        let backdated = sign_raw(
            &keys,
            &json!({"sub": "a", "iat": now - 400 * day, "exp": now + 60, "jti": "j", "scopes": ["admin"]}),
        );
        assert_eq!(keys.verify(&backdated).unwrap_err().code(), "token_lifetime");
        // Exactly the maximum is fine.
        assert!(keys.verify(&sign_raw(&keys, &claims(30 * day))).is_ok());

        // Configured for a year: both pass.
        let year = keys.clone().with_max_lifetime(Duration::from_secs(365 * day as u64));
        assert!(year.verify(&sign_raw(&keys, &claims(300 * day))).is_ok());
        assert!(year.issue("a", &[Scope::Admin], Duration::from_secs(300 * day as u64)).is_ok());
        assert_eq!(year.verify(&ten_years).unwrap_err().code(), "token_lifetime");

        // The setting reaches keys loaded from files and from an HS256 secret.
        let dir = tempfile::tempdir().unwrap();
        let short = KeySettings { max_token_lifetime: Duration::from_secs(3600), ..eddsa_settings(dir.path()) };
        let loaded = Keys::load_or_create(&short).unwrap();
        assert!(loaded.issue("a", &[Scope::Admin], Duration::from_secs(7200)).is_err());
        assert_eq!(Keys::load_verify_only(&short).unwrap().max_lifetime(), Duration::from_secs(3600));
        let hs = KeySettings { max_token_lifetime: Duration::from_secs(3600), ..hs256_settings() };
        assert_eq!(Keys::load_or_create(&hs).unwrap().max_lifetime(), Duration::from_secs(3600));
    }

    #[test]
    fn verify_only_keys_verify_but_cannot_issue() {
        let signer_dir = tempfile::tempdir().unwrap();
        let signer_settings = eddsa_settings(signer_dir.path());
        let signer = Keys::load_or_create(&signer_settings).unwrap();
        let (token, _) = signer.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();

        // A query instance holding only the public key.
        let query_dir = tempfile::tempdir().unwrap();
        let query_settings = eddsa_settings(query_dir.path());
        std::fs::create_dir_all(&query_settings.key_dir).unwrap();
        std::fs::copy(signer_settings.public_key_path(), query_settings.public_key_path()).unwrap();
        for keys in [Keys::load_verify_only(&query_settings).unwrap(), Keys::load_or_create(&query_settings).unwrap()] {
            assert!(!keys.can_sign());
            assert!(keys.verify(&token).unwrap().is_admin());
            let err = keys.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap_err();
            assert!(matches!(&err, AuthError::Issue(m) if m.contains("public key")), "{err:?}");
        }
        assert!(!query_settings.private_key_path().exists(), "load_or_create must not create a private key here");

        // Nothing at all: verify-only refuses and creates nothing.
        let empty = tempfile::tempdir().unwrap();
        let empty_settings = eddsa_settings(empty.path());
        assert!(matches!(Keys::load_verify_only(&empty_settings), Err(AuthError::Key(_))));
        assert!(!empty_settings.key_dir.exists());

        // HS256 verify-only keys do not sign either.
        let hs = Keys::load_verify_only(&hs256_settings()).unwrap();
        assert!(!hs.can_sign());
        let hs_signer = Keys::load_or_create(&hs256_settings()).unwrap();
        let (token, _) = hs_signer.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();
        assert!(hs.verify(&token).is_ok());
    }

    #[test]
    fn keygen_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let settings = eddsa_settings(dir.path());
        let path = Keys::keygen(&settings, false).unwrap();
        assert_eq!(path, settings.private_key_path());
        let first = std::fs::read_to_string(&path).unwrap();
        let keys = Keys::load_or_create(&settings).unwrap();
        let (token, _) = keys.issue("a", &[Scope::Admin], Duration::from_secs(60)).unwrap();

        let err = Keys::keygen(&settings, false).unwrap_err();
        assert!(matches!(&err, AuthError::Key(m) if m.contains("--force")), "{err:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);

        Keys::keygen(&settings, true).unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let replaced = Keys::load_or_create(&settings).unwrap();
        assert!(matches!(replaced.verify(&token), Err(AuthError::BadSignature)));

        assert!(matches!(Keys::keygen(&hs256_settings(), false), Err(AuthError::Key(_))));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let with = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert!(matches!(bearer_token(&HeaderMap::new()), Err(AuthError::Missing)));
        assert_eq!(AuthError::Missing.status(), 401);
        assert_eq!(bearer_token(&with(&["Bearer abc.def.ghi"])).unwrap(), "abc.def.ghi");
        assert_eq!(bearer_token(&with(&["bearer abc"])).unwrap(), "abc");
        assert_eq!(bearer_token(&with(&["BEARER  abc "])).unwrap(), "abc");
        for bad in [
            &["Basic dXNlcjpwYXNz"][..],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a b"],
            &["abc"],
            &[""],
            &["Bearer a", "Bearer b"],
        ] {
            let err = bearer_token(&with(bad)).unwrap_err();
            assert!(matches!(err, AuthError::Malformed), "{bad:?}: {err:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff").unwrap());
        assert!(matches!(bearer_token(&h), Err(AuthError::Malformed)));
    }

    #[test]
    fn error_codes_statuses_and_challenges() {
        let all = [
            (AuthError::Missing, 401, "token_missing"),
            (AuthError::Malformed, 401, "token_malformed"),
            (AuthError::WrongAlgorithm, 401, "token_algorithm"),
            (AuthError::BadSignature, 401, "token_signature"),
            (AuthError::Expired, 401, "token_expired"),
            (AuthError::NotYetValid, 401, "token_not_yet_valid"),
            (AuthError::Revoked, 401, "token_revoked"),
            (AuthError::Forbidden { needed: "admin".into() }, 403, "forbidden"),
            (AuthError::Key("x".into()), 500, "key_error"),
            (AuthError::Issue("x".into()), 500, "token_issue"),
        ];
        for (err, status, code) in all {
            assert_eq!((err.status(), err.code()), (status, code));
            match status {
                401 | 403 => assert!(err.www_authenticate().unwrap().starts_with("Bearer")),
                _ => assert!(err.www_authenticate().is_none()),
            }
        }
        assert_eq!(AuthError::Missing.www_authenticate(), Some("Bearer"));
    }

    #[test]
    fn algorithm_names() {
        assert_eq!("EdDSA".parse::<Algorithm>().unwrap(), Algorithm::EdDSA);
        assert_eq!("hs256".parse::<Algorithm>().unwrap(), Algorithm::HS256);
        assert!("rs256".parse::<Algorithm>().is_err());
        assert_eq!(Algorithm::default().to_string(), "eddsa");
        assert_eq!(<Algorithm as clap::ValueEnum>::from_str("hs256", false).unwrap(), Algorithm::HS256);
        assert_eq!(<Algorithm as clap::ValueEnum>::from_str("eddsa", false).unwrap(), Algorithm::EdDSA);
    }
}
