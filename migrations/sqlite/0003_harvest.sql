-- Harvester: health of each endpoint's last service-list fetch, and where each service comes from.
alter table endpoints add column http_status integer;
alter table endpoints add column latency_ms integer;
alter table endpoints add column last_error text;
alter table endpoints add column consecutive_failures integer not null default 0;
alter table endpoints add column harvest_etag text;            -- validators for a conditional GET
alter table endpoints add column harvest_last_modified text;
alter table services add column source text not null default 'manual' check (source in ('manual', 'harvested'));
