-- Tokens issued by `geowebdns token issue`, so that `token list` can show them.
-- The token itself is never stored: only its id and claims.
create table tokens (
    jti        text collate "C" primary key,
    sub        text not null,
    scopes     text not null,   -- JSON array of scope strings
    issued_at  text collate "C" not null,
    expires_at text collate "C" not null
);
