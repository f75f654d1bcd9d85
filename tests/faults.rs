//! Database outages: instances keep answering from their last snapshot, say
//! they are stale, refuse admin writes with 503, and converge by themselves
//! when the database returns. The outage is made by cutting a TCP proxy that
//! sits between the instances and PostgreSQL (stopping the shared server
//! would disturb other tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::server::serve;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy that can be cut (every connection dropped, new ones refused) and restored.
struct Proxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (o, l) = (open.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().unwrap().push(link);
            }
        });
        Proxy { addr, open, links, accept }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_survive_a_database_outage_and_converge() {
    let Some(db) = common::pg::create_pg_database().await else { return };
    geowebdns::cli::prepare_store(&db.url, true).await.unwrap();
    let server = url::Url::parse(&db.url).unwrap();
    let target: SocketAddr = format!("{}:{}", server.host_str().unwrap(), server.port().unwrap_or(5432))
        .parse()
        .expect("the test PostgreSQL URL names an IP address");
    let proxy = Proxy::start(target).await;
    let mut via_proxy = server.clone();
    via_proxy.set_port(Some(proxy.addr.port())).unwrap();
    let via_proxy = via_proxy.to_string();

    let keys = tempfile::tempdir().unwrap();
    let a = serve(&via_proxy, keys.path(), &["--poll-interval-ms", "200"]);
    let b = serve(&via_proxy, keys.path(), &["--poll-interval-ms", "200"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geowebdns"))
        .args(["--database-url", &db.url, "--key-dir", keys.path().to_str().unwrap()])
        .args(["token", "issue", "--scope", "admin", "--ttl", "10m", "--sub", "fault-test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::new();

    // Queries run against both instances for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed, client) = (stop.clone(), ok.clone(), failed.clone(), client.clone());
        let bases = [a.base.clone(), b.base.clone()];
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let url = format!("{}/v1/resolve?lat=39.1653&lon=-86.5264", bases[i % 2]);
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // Outage.
    proxy.cut();
    for base in [&a.base, &b.base] {
        let url = format!("{base}/readyz");
        wait_for("readyz says stale", Duration::from_secs(15), async || {
            let r = client.get(&url).send().await.unwrap();
            r.status() == 503 && r.json::<serde_json::Value>().await.unwrap()["status"] == "stale"
        })
        .await;
    }
    let write = client
        .post(format!("{}/admin/v1/jurisdictions/us-place:1805860/endpoints", a.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"url": "https://during-outage.example/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 503, "admin writes fail clearly while the database is away");
    assert_eq!(write.headers()["content-type"], "application/problem+json");
    // Meanwhile the registry changes behind their back (another instance elsewhere).
    let direct = geowebdns::store::connect(&db.url).await.unwrap();
    let marker = "https://written-during-outage.example/open311/v2/";
    let mut endpoint = geowebdns::import::bundled::endpoints().unwrap().remove(0);
    endpoint.id = "ep-outage".into();
    endpoint.url = marker.into();
    let jurisdiction = endpoint.jurisdiction_id.clone();
    direct.create_endpoint(&endpoint, &geowebdns::store::Actor::local("test")).await.unwrap();
    let latest = direct.latest_seq().await.unwrap();

    // Recovery: both instances catch up by themselves.
    proxy.restore();
    for base in [&a.base, &b.base] {
        let url = format!("{base}/readyz");
        wait_for("ready again and caught up", Duration::from_secs(20), async || {
            let r = json(&client, &url).await;
            r["status"] == "ready" && r["index_version"] == latest && r["lag"] == 0
        })
        .await;
        let one = json(&client, &format!("{base}/v1/jurisdictions/{jurisdiction}")).await;
        assert!(one.to_string().contains(marker), "{base} converged");
    }
    // A quick recovery may leave the load few turns: let it reach its count
    // (queries after recovery must not fail either).
    wait_for("the query load ran", Duration::from_secs(20), async || ok.load(Ordering::SeqCst) > 50).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("queries during the test: {ok} ok, {failed} failed");
    assert!(ok > 50, "queries ran: {ok}");
    assert_eq!(failed, 0, "no query failed during the outage");
}
