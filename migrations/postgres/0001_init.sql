-- geowebdns registry, PostgreSQL dialect (mirrors migrations/sqlite/0001_init.sql).
-- Times are RFC 3339 text in UTC, exactly as the SQLite store writes them; JSON
-- columns hold compact JSON text, so records round-trip byte for byte.
-- Keys, times and other columns that are sorted or compared use the "C"
-- collation: byte order, as in SQLite, whatever the database's locale is.

-- A government (or district) that serves an area.
create table jurisdictions (
    id              text collate "C" primary key,   -- stable key, e.g. us-county:18105
    name            text not null,
    tier            text not null check (tier in ('country', 'state', 'county', 'place', 'special_district', 'other')),
    parent_id       text collate "C",                -- smallest containing jurisdiction of a higher tier
    parent_override boolean not null default false,  -- true when parent_id was set explicitly
    ocd_id          text collate "C" unique,         -- Open Civic Data division id
    external_ids    text not null default '{}',      -- JSON object: layer code -> value (fips, geoid, iso_3166_2...)
    boundary        text not null,                   -- GeoJSON geometry (Polygon/MultiPolygon), lossless
    area_km2        double precision not null,
    source          text,
    license         text,
    created_at      text collate "C" not null,
    updated_at      text collate "C" not null,
    version         bigint not null default 1
);
create index jurisdictions_parent on jurisdictions (parent_id);
create index jurisdictions_tier on jurisdictions (tier);

-- An Open311 server (fields of the Open311 Service Discovery document).
create table endpoints (
    id                      text collate "C" primary key,
    jurisdiction_id         text collate "C" not null references jurisdictions (id),
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
    last_checked            text collate "C",
    last_ok                 text collate "C",
    status                  text not null default 'unknown',
    created_at              text collate "C" not null,
    updated_at              text collate "C" not null,
    version                 bigint not null default 1
);
create index endpoints_jurisdiction on endpoints (jurisdiction_id);

-- A GeoReport v2 service of an endpoint.
create table services (
    endpoint_id  text collate "C" not null references endpoints (id) on delete cascade,
    service_code text collate "C" not null,
    service_name text not null,
    description  text,
    metadata     boolean not null default false,
    type         text not null default 'realtime',
    keywords     text not null default '[]',   -- JSON array
    group_name   text,
    position     bigint not null default 0,    -- keeps the order the server gave
    primary key (endpoint_id, service_code)
);

-- Append-only change log: one row per record written. seq is the index_version clients see.
-- Writers are serialised (see src/store/postgres.rs), so seq order is commit order;
-- a rolled-back write may leave a gap in seq.
create table changes (
    seq        bigint generated always as identity primary key,
    entity     text not null,   -- jurisdiction | endpoint
    entity_id  text collate "C" not null,
    op         text not null,   -- upsert | delete
    at         text collate "C" not null
);

-- Every change is announced on the `geowebdns_changes` channel with its seq as
-- payload. Notifications are delivered when the writing transaction commits,
-- and never for a write that rolls back.
create function geowebdns_notify_change() returns trigger
language plpgsql as $$
begin
    perform pg_notify('geowebdns_changes', new.seq::text);
    return new;
end;
$$;

create trigger changes_notify
    after insert on changes
    for each row execute function geowebdns_notify_change();

-- Who did what, with the record before and after.
create table audit (
    id              bigint generated always as identity primary key,
    at              text collate "C" not null,
    actor_sub       text not null,
    actor_jti       text,
    action          text not null,
    entity          text not null,
    entity_id       text collate "C" not null,
    jurisdiction_id text collate "C",
    before          text,            -- JSON or null
    after           text             -- JSON or null
);
create index audit_jurisdiction on audit (jurisdiction_id, at);

-- Token ids that no longer work.
create table revoked_tokens (
    jti        text collate "C" primary key,
    revoked_at text collate "C" not null,
    reason     text
);
