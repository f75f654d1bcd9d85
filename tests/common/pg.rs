//! Throw-away PostgreSQL databases for tests: one fresh database per test on
//! the server named by `GEOWEBDNS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped afterwards. Without a
//! reachable server the PostgreSQL variants are skipped with a loud warning,
//! unless `CI` is set, where they fail.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use geowebdns::store;
use sqlx::{Connection, PgConnection};
use std::time::Duration;

/// A throw-away PostgreSQL database, dropped (connections and all) on drop,
/// also when the test panics.
pub struct PgDatabase {
    pub admin_url: String,
    pub name: String,
    pub url: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("drop database if exists {} with (force)", self.name);
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(&sql).execute(&mut conn).await?;
                conn.close().await
            })
        })
        .join();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

pub fn postgres_server_url() -> String {
    std::env::var("GEOWEBDNS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates a fresh database on the test server, or `None` (after a loud
/// warning) when the server cannot be reached outside CI.
pub async fn create_pg_database() -> Option<PgDatabase> {
    let admin_url = postgres_server_url();
    let shown = store::redact_url(&admin_url);
    let conn = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin_url)).await;
    let mut conn = match conn {
        Ok(Ok(conn)) => conn,
        failure => {
            let why = match failure {
                Ok(Err(e)) => e.to_string(),
                _ => "no answer within 5 s".to_owned(),
            };
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL not reachable at {shown} ({why}) and CI is set");
            }
            eprintln!(
                "\n*** SKIPPED: PostgreSQL not reachable at {shown} ({why}); set GEOWEBDNS_TEST_POSTGRES_URL ***\n"
            );
            return None;
        }
    };
    let name = format!("gwd_t_{:016x}", rand::random::<u64>());
    // CREATE DATABASE cannot run in a transaction: send it as a plain simple query.
    // Prefer an ICU en-US default collation, under which naive `order by` would differ
    // from SQLite's byte order; fall back to the server default when ICU is missing.
    let icu = format!("create database {name} template template0 locale_provider icu icu_locale 'en-US'");
    if sqlx::raw_sql(&icu).execute(&mut conn).await.is_err() {
        sqlx::raw_sql(&format!("create database {name}")).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    Some(PgDatabase { admin_url, name, url: url.to_string() })
}

/// Creates a fresh database copied from `template` (which must have no open
/// connections). Retries while another copy from the same template is running.
pub async fn copy_pg_database(template: &str) -> PgDatabase {
    let admin_url = postgres_server_url();
    let name = format!("gwd_t_{:016x}", rand::random::<u64>());
    let mut conn = PgConnection::connect(&admin_url).await.unwrap();
    let sql = format!("create database {name} template {template} strategy file_copy");
    let mut tries = 0;
    while let Err(e) = sqlx::raw_sql(&sql).execute(&mut conn).await {
        tries += 1;
        assert!(tries < 100, "cannot copy {template}: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.close().await.unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    PgDatabase { admin_url, name, url: url.to_string() }
}
