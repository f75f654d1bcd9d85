-- geowebdns registry, SQLite dialect.
-- Times are RFC 3339 text in UTC; JSON columns hold compact JSON text.

-- A government (or district) that serves an area.
create table jurisdictions (
    id              text primary key,            -- stable key, e.g. us-county:18105
    name            text not null,
    tier            text not null check (tier in ('country', 'state', 'county', 'place', 'special_district', 'other')),
    parent_id       text,                         -- smallest containing jurisdiction of a higher tier
    parent_override integer not null default 0,   -- 1 when parent_id was set explicitly
    ocd_id          text unique,                  -- Open Civic Data division id
    external_ids    text not null default '{}',   -- JSON object: layer code -> value (fips, geoid, iso_3166_2...)
    boundary        text not null,                -- GeoJSON geometry (Polygon/MultiPolygon), lossless
    area_km2        real not null,
    source          text,
    license         text,
    created_at      text not null,
    updated_at      text not null,
    version         integer not null default 1
);
create index jurisdictions_parent on jurisdictions (parent_id);
create index jurisdictions_tier on jurisdictions (tier);

-- An Open311 server (fields of the Open311 Service Discovery document).
create table endpoints (
    id                      text primary key,
    jurisdiction_id         text not null references jurisdictions (id),
    specification           text not null,
    url                     text not null,
    type                    text not null check (type in ('production', 'test')),
    formats                 text not null default '[]',   -- JSON array of MIME types
    open311_jurisdiction_id text,
    key_service             text,
    discovery_url           text,
    docs_url                text,
    terms_url               text,
    contact                 text,
    changeset               text,
    last_checked            text,
    last_ok                 text,
    status                  text not null default 'unknown',
    created_at              text not null,
    updated_at              text not null,
    version                 integer not null default 1
);
create index endpoints_jurisdiction on endpoints (jurisdiction_id);

-- A GeoReport v2 service of an endpoint.
create table services (
    endpoint_id  text not null references endpoints (id) on delete cascade,
    service_code text not null,
    service_name text not null,
    description  text,
    metadata     integer not null default 0,
    type         text not null default 'realtime',
    keywords     text not null default '[]',   -- JSON array
    group_name   text,
    position     integer not null default 0,   -- keeps the order the server gave
    primary key (endpoint_id, service_code)
);

-- Append-only change log: one row per record written. seq is the index_version clients see.
create table changes (
    seq        integer primary key autoincrement,
    entity     text not null,   -- jurisdiction | endpoint
    entity_id  text not null,
    op         text not null,   -- upsert | delete
    at         text not null
);

-- Who did what, with the record before and after.
create table audit (
    id         integer primary key autoincrement,
    at         text not null,
    actor_sub  text not null,
    actor_jti  text,
    action     text not null,
    entity     text not null,
    entity_id  text not null,
    jurisdiction_id text,
    before     text,            -- JSON or null
    after      text             -- JSON or null
);
create index audit_jurisdiction on audit (jurisdiction_id, at);

-- Token ids that no longer work.
create table revoked_tokens (
    jti        text primary key,
    revoked_at text not null,
    reason     text
);
