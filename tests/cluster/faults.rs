//! Servers killed, stopped, joining, restarted in turn and cut off from the database, under
//! load: every accepted event arrives, duplicates stay within what was in flight, and a
//! `max_in_flight = 1` webhook never has two attempts in flight.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::helpers::*;
use crate::*;

/// Webhooks per scenario: several per server, so leases are spread and moved.
const WEBHOOKS: usize = 9;
const TIMEOUT_MS: u64 = 1_000;

/// The scenario's webhooks: one receiver each, all subscribed to `order.*`; the first one
/// has `max_in_flight = 1` and a receiver that answers slowly, to catch overlapping attempts.
struct Load {
    receivers: Vec<TestReceiver>,
    accepted: HashSet<String>,
}

impl Load {
    async fn register(cluster: &Cluster) -> Self {
        let mut receivers = Vec::new();
        for i in 0..WEBHOOKS {
            let receiver = TestReceiver::start().await;
            let max_in_flight = if i == 0 { 1 } else { 4 };
            if i == 0 {
                receiver.answer(Answer::status(200).delayed(Duration::from_millis(20)));
            }
            let body = json!({"url": receiver.url(), "events": ["order.*"], "max_in_flight": max_in_flight,
                "timeout_ms": TIMEOUT_MS});
            cluster.create_webhook(i % cluster.servers.len(), body).await;
            receivers.push(receiver);
        }
        Self { receivers, accepted: HashSet::new() }
    }

    /// Publishes events `from..to` through the live servers in turn (an event refused by a
    /// dying server is sent again, with the same id, through the next one).
    async fn publish(&mut self, cluster: &Cluster, range: std::ops::Range<usize>) {
        let live: Vec<usize> = cluster.live().map(|(i, _)| i).collect();
        for n in range {
            let id = format!("event-{n}");
            for attempt in 0..live.len() {
                if cluster.publish_through(live[(n + attempt) % live.len()], &id).await {
                    self.accepted.insert(id.clone());
                    break;
                }
            }
        }
    }

    /// Waits until every accepted event reached every receiver; returns the duplicates
    /// (deliveries received more than once, counted beyond the first).
    async fn all_delivered(&self, cluster: &Cluster, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let missing: Vec<(usize, Vec<&String>)> = self
                .receivers
                .iter()
                .map(|r| {
                    let received = received_events(r);
                    self.accepted.iter().filter(|e| !received.contains(*e)).collect::<Vec<_>>()
                })
                .enumerate()
                .filter(|(_, m)| !m.is_empty())
                .collect();
            if missing.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let via = cluster.live().next().unwrap().0;
                for w in cluster.dashboard(via).await["webhooks"].as_array().unwrap() {
                    eprintln!(
                        "{} owner {} queue {} in flight {}",
                        w["id"], w["owner"], w["queue_depth"], w["in_flight"]
                    );
                }
                for (i, _) in cluster.live() {
                    let log = std::fs::read_to_string(cluster.log_path(i)).unwrap_or_default();
                    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("hookbus::requests")).collect();
                    eprintln!("server {i}:\n{}", lines.join("\n"));
                }
                panic!("accepted deliveries never arrived (by receiver): {missing:?}");
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(self.receivers[0].max_concurrency(), 1, "two attempts in flight on a max_in_flight = 1 webhook");
        self.receivers.iter().flat_map(|r| received_counts(r).into_values()).map(|n| n - 1).sum()
    }
}

/// Waits until the dashboard through `via` shows every webhook owned by a live server, and
/// the live servers are exactly `servers`; returns how long that took.
async fn settled(cluster: &Cluster, via: usize, servers: usize, within: Duration) -> Duration {
    let started = Instant::now();
    cluster
        .dashboard_when(via, within, |d| {
            d["servers"].as_array().map_or(0, Vec::len) == servers && owned_by_live_servers(d)
        })
        .await;
    started.elapsed()
}

#[actix_web::test]
async fn a_killed_server_s_webhooks_move_within_the_lease_and_every_accepted_event_arrives() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(mut cluster) = Cluster::start(3, &[]).await else { return };
    let mut load = Load::register(&cluster).await;
    settled(&cluster, 0, 3, Duration::from_secs(10)).await;
    load.publish(&cluster, 0..100).await;
    let victim_id = cluster.dashboard(2).await["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "server-2")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    let owned_by_victim =
        owners(&cluster.dashboard(0).await).values().filter(|o| o.as_deref() == Some(&victim_id)).count();
    assert!(owned_by_victim > 0, "the victim owned nothing");
    cluster.servers[2].as_ref().unwrap().signal(Signal::SIGKILL);
    cluster.servers[2].as_mut().unwrap().wait_exit(Duration::from_secs(5));
    cluster.servers[2] = None;
    // Publishing goes on through the others while their webhooks move.
    let (_, takeover) =
        tokio::join!(load.publish(&cluster, 100..300), settled(&cluster, 0, 2, Duration::from_secs(20)));
    let duplicates = load.all_delivered(&cluster, Duration::from_secs(30)).await;
    // At most what the victim had in flight: its webhooks' max_in_flight each.
    let bound = owned_by_victim * 4;
    eprintln!(
        "SIGKILL: {owned_by_victim} webhooks moved within {takeover:?} (bound {} ms + a tick); {duplicates} duplicates (bound {bound})",
        LEASE_TTL_MS + TIMEOUT_MS
    );
    assert!(takeover < Duration::from_millis(LEASE_TTL_MS + TIMEOUT_MS) + Duration::from_secs(4), "{takeover:?}");
    assert!(duplicates <= bound, "{duplicates} duplicates, more than the {bound} attempts that could be in flight");
}

#[actix_web::test]
async fn a_stopped_server_hands_its_webhooks_over_at_once_and_a_joining_one_takes_its_share() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // Leases of a minute: a hand-over that waited for them to run out would show.
    let Some(mut cluster) = Cluster::start(2, &["--lease-ttl-ms", "60000"]).await else { return };
    let mut load = Load::register(&cluster).await;
    settled(&cluster, 0, 2, Duration::from_secs(10)).await;
    load.publish(&cluster, 0..100).await;

    // A third server joins under load and takes its share, without duplicate sends.
    let joined = cluster.add().await;
    let joining = Instant::now();
    load.publish(&cluster, 100..200).await;
    cluster
        .dashboard_when(0, Duration::from_secs(20), |d| {
            let servers = d["servers"].as_array().unwrap();
            servers.len() == 3
                && owned_by_live_servers(d)
                && servers.iter().all(|s| s["webhooks"].as_u64().unwrap() >= (WEBHOOKS / 3) as u64)
        })
        .await;
    eprintln!("join: the third server had its share {:?} after it started", joining.elapsed());

    // SIGTERM: it finishes what is in flight and hands over, long before its leases end.
    cluster.servers[joined].as_ref().unwrap().signal(Signal::SIGTERM);
    let stopping = Instant::now();
    load.publish(&cluster, 200..300).await;
    let status = cluster.servers[joined].as_mut().unwrap().wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    cluster.servers[joined] = None;
    let handed = settled(&cluster, 0, 2, Duration::from_secs(15)).await;
    let took = stopping.elapsed();
    eprintln!("SIGTERM: its webhooks had new owners {took:?} after the signal ({handed:?} after it exited)");
    assert!(took < Duration::from_secs(15), "the hand-over waited for the leases");

    let duplicates = load.all_delivered(&cluster, Duration::from_secs(30)).await;
    eprintln!("join and SIGTERM: {duplicates} duplicates");
    assert_eq!(duplicates, 0, "a join or a clean stop sent something twice");
}

#[actix_web::test]
async fn a_rolling_restart_of_three_servers_under_load_loses_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(mut cluster) = Cluster::start(3, &[]).await else { return };
    let mut load = Load::register(&cluster).await;
    settled(&cluster, 0, 3, Duration::from_secs(10)).await;
    let mut next = 0;
    for i in 0..3 {
        load.publish(&cluster, next..next + 50).await;
        next += 50;
        cluster.servers[i].as_ref().unwrap().signal(Signal::SIGTERM);
        load.publish(&cluster, next..next + 30).await;
        next += 30;
        let status = cluster.servers[i].as_mut().unwrap().wait_exit(Duration::from_secs(15));
        assert!(status.success(), "server {i}: {status:?}");
        cluster.servers[i] = None;
        cluster.restart(i).await;
        let via = (i + 1) % 3;
        settled(&cluster, via, 3, Duration::from_secs(20)).await;
    }
    let duplicates = load.all_delivered(&cluster, Duration::from_secs(30)).await;
    eprintln!("rolling restart: {} events accepted, {duplicates} duplicates", load.accepted.len());
    assert_eq!(load.accepted.len(), next);
    assert_eq!(duplicates, 0, "a clean restart sent something twice");
}

#[actix_web::test]
async fn the_circuit_moves_with_the_webhook() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let args = ["--failure-threshold", "3", "--circuit-cooldown-ms", "60000", "--circuit-cooldown-max-ms", "60000"];
    let Some(mut cluster) = Cluster::start(2, &args).await else { return };
    let dead = TestReceiver::start().await;
    dead.answer(Answer::status(503));
    let id = cluster
        .create_webhook(0, json!({"url": dead.url(), "events": ["order.*"], "max_retries": 10, "backoff_base_ms": 10}))
        .await;
    cluster.publish_through(0, "first").await;
    let opened = cluster
        .dashboard_when(0, Duration::from_secs(10), |d| {
            d["webhooks"].as_array().unwrap().iter().any(|w| w["id"] == id.as_str() && w["circuit"] == "open")
        })
        .await;
    let owner = owners(&opened)[&id].clone().unwrap();
    let owner_index = opened["servers"].as_array().unwrap().iter().find(|s| s["id"] == owner.as_str()).unwrap()["name"]
        .as_str()
        .unwrap()
        .trim_start_matches("server-")
        .parse::<usize>()
        .unwrap();
    let other = 1 - owner_index;
    let hits = dead.count();
    assert_eq!(hits, 3, "the threshold opened the circuit");
    cluster.servers[owner_index].as_ref().unwrap().signal(Signal::SIGTERM);
    cluster.servers[owner_index].as_mut().unwrap().wait_exit(Duration::from_secs(15));
    cluster.servers[owner_index] = None;
    let moved = cluster
        .dashboard_when(other, Duration::from_secs(15), |d| {
            owners(d)[&id].is_some() && owners(d)[&id].as_deref() != Some(owner.as_str())
        })
        .await;
    let webhook = moved["webhooks"].as_array().unwrap().iter().find(|w| w["id"] == id.as_str()).unwrap().clone();
    assert_eq!(webhook["circuit"], "open", "the new owner starts with the circuit open: {webhook:#}");
    assert_eq!(webhook["consecutive_failures"], 3);
    // The new owner waits for the probe time like the old one would have.
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(dead.count(), hits, "the new owner hammered a dead endpoint");
}

#[actix_web::test]
async fn servers_cut_off_from_the_database_and_back_leave_each_webhook_one_owner() {
    let _turn = ONE_AT_A_TIME.lock().await;
    if postgres_url().is_none() {
        return;
    }
    // Server 0 reaches PostgreSQL through a proxy that the test cuts; the others directly.
    let db = TestDb::new(Backend::Postgres).await;
    let (proxy, proxied) = Proxy::in_front_of(&db.url).await;
    let Some(mut cluster) = Cluster::start(0, &[]).await else { return };
    let direct = db.url.clone();
    drop(std::mem::replace(&mut cluster.db, db));
    cluster.url = proxied;
    cluster.add().await;
    cluster.url = direct;
    cluster.add().await;
    cluster.add().await;
    let mut load = Load::register(&cluster).await;
    settled(&cluster, 1, 3, Duration::from_secs(10)).await;
    load.publish(&cluster, 0..60).await;

    proxy.cut();
    // Longer than a lease: the others take server 0's webhooks over meanwhile.
    let mut n = 60;
    let cut = Instant::now();
    while cut.elapsed() < Duration::from_millis(LEASE_TTL_MS + TIMEOUT_MS + 3_000) {
        for i in [1, 2] {
            if cluster.publish_through(i, &format!("event-{n}")).await {
                load.accepted.insert(format!("event-{n}"));
            }
            n += 1;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let during = cluster.dashboard(1).await;
    assert!(owners(&during).values().all(Option::is_some), "a webhook had no owner: {during:#}");
    proxy.restore();
    load.publish(&cluster, n..n + 60).await;
    settled(&cluster, 1, 3, Duration::from_secs(20)).await;
    // Each server's own count of the leases it runs endpoints for adds up to the webhooks:
    // none is run by two servers, none by nobody.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut total = 0.0;
        for (i, _) in cluster.live() {
            total += cluster.owned_webhooks(i).await;
        }
        if total == WEBHOOKS as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "servers run endpoints for {total} webhooks, not {WEBHOOKS}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    let duplicates = load.all_delivered(&cluster, Duration::from_secs(30)).await;
    eprintln!("database cut: {} events accepted, {duplicates} duplicates", load.accepted.len());
}
