//! What servers sharing one PostgreSQL database know of each other (SPEC §9): the live
//! servers, the leases that give each webhook one owner, the version of the webhooks'
//! configuration, and the notifications that wake the other servers. PostgreSQL only: a
//! SQLite database has one server.
//!
//! Every time here is the database's clock (`hookbus_now_ms()`), so servers never compare
//! their own clocks with each other.

use std::time::Duration;

use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel_async::RunQueryDsl;

use super::records::parse_id;
use super::{from_millis, to_millis, Pool, Store, StoreError, StoreResult};
use crate::domain::circuit::{CircuitState, SavedCircuit};
use crate::domain::{EventId, EventType, WebhookId};
use crate::store::records::{DeliveryRecord, PendingDelivery};

/// Channels of `LISTEN`/`NOTIFY`.
pub mod channel {
    /// A webhook changed (payload: the new configuration version).
    pub const CONFIG: &str = "hookbus_config";
    /// Deliveries to pick up (payload: [`super::DeliveryNotice`]s).
    pub const DELIVERIES: &str = "hookbus_deliveries";
    /// Leases were released: servers with room may claim them now.
    pub const LEASES: &str = "hookbus_leases";
    /// A webhook's circuit is to close (payload: its id): a test succeeded, or it was
    /// enabled, through another server than its owner.
    pub const CIRCUIT: &str = "hookbus_circuit";
}

/// A server as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
pub struct ServerRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub started_at: i64,
    #[diesel(sql_type = BigInt)]
    pub last_seen_at: i64,
    /// Webhooks it holds a live lease on.
    #[diesel(sql_type = BigInt)]
    pub webhooks: i64,
}

/// A lease this server holds, with what it writes at each renewal.
#[derive(Debug, Clone)]
pub struct HeldLease {
    pub webhook_id: WebhookId,
    pub epoch: i64,
    /// The webhook's attempt timeout: a lease lasts `lease_ttl` plus this, so an attempt
    /// started while the lease was renewed ends before anyone else may take the webhook.
    pub timeout_ms: u32,
    pub circuit: SavedCircuit,
}

/// A lease just claimed: the webhook, the claim's epoch and the circuit its last owner saved.
#[derive(Debug, Clone)]
pub struct ClaimedLease {
    pub webhook_id: WebhookId,
    pub epoch: i64,
    pub circuit: SavedCircuit,
}

/// The owner of a webhook and the figures it last reported for it.
#[derive(Debug, Clone)]
pub struct LeaseOwner {
    pub webhook_id: WebhookId,
    pub owner: String,
    /// JSON of the owner's `EndpointHealth`, if it reported one yet.
    pub health: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct LeaseRow {
    #[diesel(sql_type = Text)]
    webhook_id: String,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = Text)]
    circuit_state: String,
    #[diesel(sql_type = Integer)]
    consecutive_failures: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    cooldown_ms: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    open_since: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    probe_at: Option<i64>,
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    webhook_id: String,
}

#[derive(diesel::QueryableByName)]
struct OwnerRow {
    #[diesel(sql_type = Text)]
    webhook_id: String,
    #[diesel(sql_type = Text)]
    owner: String,
    #[diesel(sql_type = Nullable<Text>)]
    health: Option<String>,
}

#[derive(diesel::QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = BigInt)]
    version: i64,
}

/// Says this server is alive, with the figures of the webhooks it owns. Figures equal to
/// those stored (an idle server's) keep the stored value: PostgreSQL then keeps its
/// compressed copy, where a new value would be compressed and logged whole every tick.
const HEARTBEAT: &str = "INSERT INTO servers (id, name, started_at, last_seen_at, health) \
     VALUES ($1, $2, $3, hookbus_now_ms(), $4::jsonb) \
     ON CONFLICT (id) DO UPDATE SET last_seen_at = hookbus_now_ms(), \
       health = CASE WHEN servers.health = EXCLUDED.health THEN servers.health ELSE EXCLUDED.health END";

/// Servers seen within `$1` ms; rows of servers gone for long are removed on the way.
const LIVE_SERVERS: &str = "WITH gone AS (DELETE FROM servers WHERE last_seen_at < hookbus_now_ms() - $2) \
     SELECT s.id, s.name, s.started_at, s.last_seen_at, \
       (SELECT count(*) FROM webhook_leases l WHERE l.owner = s.id AND l.expires_at > hookbus_now_ms()) AS webhooks \
     FROM servers s WHERE s.last_seen_at > hookbus_now_ms() - $1 ORDER BY s.started_at, s.id";

/// Extends this server's live leases (same epoch, not yet expired) and saves their circuits.
const RENEW: &str = "UPDATE webhook_leases AS l SET expires_at = hookbus_now_ms() + $2 + u.timeout_ms, \
       circuit_state = u.state, consecutive_failures = u.failures, cooldown_ms = u.cooldown_ms, \
       open_since = u.open_since, probe_at = u.probe_at \
     FROM unnest($3::text[], $4::int8[], $5::int8[], $6::text[], $7::int4[], $8::int8[], $9::int8[], $10::int8[]) \
       AS u(id, epoch, timeout_ms, state, failures, cooldown_ms, open_since, probe_at) \
     WHERE l.webhook_id = u.id AND l.owner = $1 AND l.epoch = u.epoch AND l.expires_at > hookbus_now_ms() \
     RETURNING l.webhook_id";

/// Claims up to `$3` enabled webhooks that nobody holds (released, or expired), without
/// waiting for leases other servers are claiming at the same moment.
/// What a claim returns: the lease and the circuit its previous owner saved.
macro_rules! claimed_columns {
    () => {
        "RETURNING l.webhook_id, l.epoch, l.circuit_state, l.consecutive_failures, l.cooldown_ms, l.open_since, \
         l.probe_at"
    };
}

const CLAIM: &str = concat!(
    "UPDATE webhook_leases AS l SET owner = $1, epoch = l.epoch + 1, \
       expires_at = hookbus_now_ms() + $2 + w.timeout_ms \
     FROM webhooks w \
     WHERE w.id = l.webhook_id AND l.webhook_id IN ( \
       SELECT c.webhook_id FROM webhook_leases c JOIN webhooks cw ON cw.id = c.webhook_id \
       WHERE cw.enabled AND (c.owner IS NULL OR c.expires_at <= hookbus_now_ms()) \
       ORDER BY c.webhook_id LIMIT $3 FOR UPDATE OF c SKIP LOCKED) ",
    claimed_columns!()
);

/// Claims one webhook's lease if nobody holds it: the server that creates a webhook owns it
/// from the start (the coordinator may hand it over later, to balance).
const CLAIM_ONE: &str = concat!(
    "UPDATE webhook_leases AS l SET owner = $1, epoch = l.epoch + 1, \
       expires_at = hookbus_now_ms() + $2 + w.timeout_ms \
     FROM webhooks w \
     WHERE w.id = l.webhook_id AND l.webhook_id = $3 AND w.enabled \
       AND (l.owner IS NULL OR l.expires_at <= hookbus_now_ms()) ",
    claimed_columns!()
);

/// Gives leases up at once (their attempts have finished and been recorded), saving circuits.
const RELEASE: &str = "UPDATE webhook_leases AS l SET owner = NULL, expires_at = 0, \
       circuit_state = u.state, consecutive_failures = u.failures, cooldown_ms = u.cooldown_ms, \
       open_since = u.open_since, probe_at = u.probe_at \
     FROM unnest($2::text[], $3::int8[], $4::text[], $5::int4[], $6::int8[], $7::int8[], $8::int8[]) \
       AS u(id, epoch, state, failures, cooldown_ms, open_since, probe_at) \
     WHERE l.webhook_id = u.id AND l.owner = $1 AND l.epoch = u.epoch \
     RETURNING l.webhook_id";

/// Each server's figures are expanded once (`jsonb_each`) and joined by key: a lookup per
/// lease (`s.health -> l.webhook_id`) would decompress the owner's whole object for every
/// row, which grows with the square of the webhooks.
const OWNERS: &str = "SELECT l.webhook_id, l.owner, h.value::text AS health \
     FROM webhook_leases l \
     LEFT JOIN (SELECT s.id, e.key, e.value FROM servers s, jsonb_each(s.health) AS e) AS h \
       ON h.id = l.owner AND h.key = l.webhook_id \
     WHERE l.webhook_id = ANY($1::text[]) AND l.owner IS NOT NULL AND l.expires_at > hookbus_now_ms()";

/// Circuits as columns, for the `unnest` of renewals and releases.
#[derive(Default)]
struct CircuitColumns {
    state: Vec<&'static str>,
    failures: Vec<i32>,
    cooldown_ms: Vec<Option<i64>>,
    open_since: Vec<Option<i64>>,
    probe_at: Vec<Option<i64>>,
}

impl CircuitColumns {
    fn push(&mut self, c: &SavedCircuit) {
        self.state.push(circuit_state_name(c.state));
        self.failures.push(c.consecutive_failures as i32);
        self.cooldown_ms.push(c.cooldown.map(|d| d.as_millis() as i64));
        self.open_since.push(c.open_since.map(to_millis));
        self.probe_at.push(c.probe_at.map(to_millis));
    }
}

fn circuit_state_name(state: CircuitState) -> &'static str {
    match state {
        CircuitState::Closed => "closed",
        CircuitState::Open => "open",
        CircuitState::HalfOpen => "half_open",
    }
}

impl TryFrom<LeaseRow> for ClaimedLease {
    type Error = StoreError;

    fn try_from(row: LeaseRow) -> StoreResult<Self> {
        let state = match row.circuit_state.as_str() {
            "closed" => CircuitState::Closed,
            "open" => CircuitState::Open,
            "half_open" => CircuitState::HalfOpen,
            other => return Err(StoreError::Corrupt(format!("lease {}: circuit state {other}", row.webhook_id))),
        };
        Ok(Self {
            webhook_id: parse_id(&row.webhook_id)?,
            epoch: row.epoch,
            circuit: SavedCircuit {
                state,
                consecutive_failures: row.consecutive_failures.max(0) as u32,
                cooldown: row.cooldown_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
                open_since: row.open_since.map(from_millis),
                probe_at: row.probe_at.map(from_millis),
            },
        })
    }
}

impl Store {
    fn postgres(&self) -> StoreResult<&super::connections::PgPool> {
        match &self.pool {
            Pool::Postgres { readers, .. } => Ok(readers),
            Pool::Sqlite { .. } => Err(StoreError::Driver("several servers need PostgreSQL".into())),
        }
    }

    /// The version of the webhooks' configuration (bumped by every change to `webhooks`).
    pub async fn config_version(&self) -> StoreResult<i64> {
        let mut conn = self.postgres()?.get().await?;
        let row: VersionRow = diesel::sql_query("SELECT version FROM cluster_config").get_result(&mut *conn).await?;
        Ok(row.version)
    }

    /// Says this server is alive, with the figures of the webhooks it owns (a JSON object by
    /// webhook id), and returns the servers seen within `live_within`.
    pub async fn heartbeat(
        &self,
        server: &ServerRow,
        health_json: &str,
        live_within: Duration,
    ) -> StoreResult<Vec<ServerRow>> {
        let mut conn = self.postgres()?.get().await?;
        diesel::sql_query(HEARTBEAT)
            .bind::<Text, _>(&server.id)
            .bind::<Text, _>(&server.name)
            .bind::<BigInt, _>(server.started_at)
            .bind::<Text, _>(health_json)
            .execute(&mut *conn)
            .await?;
        let live_ms = live_within.as_millis() as i64;
        Ok(diesel::sql_query(LIVE_SERVERS)
            .bind::<BigInt, _>(live_ms)
            .bind::<BigInt, _>(live_ms * 30)
            .load(&mut *conn)
            .await?)
    }

    /// This server's row goes (a clean stop): the others count one server fewer at once.
    pub async fn leave(&self, server_id: &str) -> StoreResult<()> {
        let mut conn = self.postgres()?.get().await?;
        diesel::sql_query("DELETE FROM servers WHERE id = $1").bind::<Text, _>(server_id).execute(&mut *conn).await?;
        Ok(())
    }

    /// Renews the leases; returns the webhooks whose lease was renewed (the others are lost).
    pub async fn renew_leases(
        &self,
        server_id: &str,
        ttl: Duration,
        leases: &[HeldLease],
    ) -> StoreResult<Vec<WebhookId>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut circuits = CircuitColumns::default();
        leases.iter().for_each(|l| circuits.push(&l.circuit));
        let mut conn = self.postgres()?.get().await?;
        let rows: Vec<IdRow> = diesel::sql_query(RENEW)
            .bind::<Text, _>(server_id)
            .bind::<BigInt, _>(ttl.as_millis() as i64)
            .bind::<Array<Text>, _>(leases.iter().map(|l| l.webhook_id.to_string()).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(leases.iter().map(|l| l.epoch).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(leases.iter().map(|l| i64::from(l.timeout_ms)).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(circuits.state)
            .bind::<Array<Integer>, _>(circuits.failures)
            .bind::<Array<Nullable<BigInt>>, _>(circuits.cooldown_ms)
            .bind::<Array<Nullable<BigInt>>, _>(circuits.open_since)
            .bind::<Array<Nullable<BigInt>>, _>(circuits.probe_at)
            .load(&mut *conn)
            .await?;
        rows.iter().map(|r| parse_id(&r.webhook_id)).collect()
    }

    /// Claims up to `limit` webhooks nobody holds.
    pub async fn claim_leases(&self, server_id: &str, ttl: Duration, limit: usize) -> StoreResult<Vec<ClaimedLease>> {
        let mut conn = self.postgres()?.get().await?;
        let rows: Vec<LeaseRow> = diesel::sql_query(CLAIM)
            .bind::<Text, _>(server_id)
            .bind::<BigInt, _>(ttl.as_millis() as i64)
            .bind::<BigInt, _>(limit as i64)
            .load(&mut *conn)
            .await?;
        rows.into_iter().map(ClaimedLease::try_from).collect()
    }

    /// Claims `webhook_id`'s lease for `server_id` unless another server holds it.
    pub async fn claim_lease(
        &self,
        server_id: &str,
        ttl: Duration,
        webhook_id: WebhookId,
    ) -> StoreResult<Option<ClaimedLease>> {
        let mut conn = self.postgres()?.get().await?;
        let rows: Vec<LeaseRow> = diesel::sql_query(CLAIM_ONE)
            .bind::<Text, _>(server_id)
            .bind::<BigInt, _>(ttl.as_millis() as i64)
            .bind::<Text, _>(webhook_id.to_string())
            .load(&mut *conn)
            .await?;
        rows.into_iter().next().map(ClaimedLease::try_from).transpose()
    }

    /// Gives leases up for another server to claim at once, and tells the others.
    pub async fn release_leases(&self, server_id: &str, leases: &[HeldLease]) -> StoreResult<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut circuits = CircuitColumns::default();
        leases.iter().for_each(|l| circuits.push(&l.circuit));
        let mut conn = self.postgres()?.get().await?;
        let _: Vec<IdRow> = diesel::sql_query(RELEASE)
            .bind::<Text, _>(server_id)
            .bind::<Array<Text>, _>(leases.iter().map(|l| l.webhook_id.to_string()).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(leases.iter().map(|l| l.epoch).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(circuits.state)
            .bind::<Array<Integer>, _>(circuits.failures)
            .bind::<Array<Nullable<BigInt>>, _>(circuits.cooldown_ms)
            .bind::<Array<Nullable<BigInt>>, _>(circuits.open_since)
            .bind::<Array<Nullable<BigInt>>, _>(circuits.probe_at)
            .load(&mut *conn)
            .await?;
        drop(conn);
        self.notify(channel::LEASES, "").await
    }

    /// The live owners of these webhooks, with the figures each owner last reported.
    pub async fn lease_owners(&self, webhooks: &[WebhookId]) -> StoreResult<Vec<LeaseOwner>> {
        let mut conn = self.postgres()?.get().await?;
        let rows: Vec<OwnerRow> = diesel::sql_query(OWNERS)
            .bind::<Array<Text>, _>(webhooks.iter().map(ToString::to_string).collect::<Vec<_>>())
            .load(&mut *conn)
            .await?;
        rows.into_iter()
            .map(|r| Ok(LeaseOwner { webhook_id: parse_id(&r.webhook_id)?, owner: r.owner, health: r.health }))
            .collect()
    }

    /// Tells whichever servers own their webhooks of these deliveries (`NOTIFY` on
    /// [`channel::DELIVERIES`]), every payload in one statement.
    pub async fn announce(&self, notices: &[DeliveryNotice]) -> StoreResult<()> {
        let payloads = DeliveryNotice::payloads(notices);
        if payloads.is_empty() {
            return Ok(());
        }
        let mut conn = self.postgres()?.get().await?;
        diesel::sql_query("SELECT pg_notify($1, p)::text AS webhook_id FROM unnest($2::text[]) AS p")
            .bind::<Text, _>(channel::DELIVERIES)
            .bind::<Array<Text>, _>(payloads)
            .load::<IdRow>(&mut *conn)
            .await?;
        Ok(())
    }

    /// `NOTIFY` on `channel`.
    pub async fn notify(&self, channel: &str, payload: &str) -> StoreResult<()> {
        let mut conn = self.postgres()?.get().await?;
        diesel::sql_query("SELECT pg_notify($1, $2)::text AS webhook_id")
            .bind::<Text, _>(channel)
            .bind::<Text, _>(payload)
            .load::<IdRow>(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Deliveries for one webhook, in a notification on [`channel::DELIVERIES`]: the ids of new
/// deliveries, or every pending one (`requeued`, after a replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryNotice {
    pub webhook_id: WebhookId,
    pub deliveries: Vec<crate::domain::DeliveryId>,
    pub requeued: bool,
}

/// Longest notification payload sent (PostgreSQL's limit is 8,000 bytes).
const PAYLOAD_LIMIT: usize = 7_900;

impl DeliveryNotice {
    /// The notice of one new delivery.
    pub fn of(delivery: &DeliveryRecord) -> Self {
        Self { webhook_id: delivery.webhook_id, deliveries: vec![delivery.id], requeued: false }
    }

    /// Notification payloads for `notices`, each under PostgreSQL's 8,000-byte limit: one line
    /// per webhook, `<webhook id> <delivery id>,<delivery id>…` or `<webhook id> *`.
    pub fn payloads(notices: &[DeliveryNotice]) -> Vec<String> {
        let mut payloads = vec![String::new()];
        for notice in notices {
            let mut line = format!("{} ", notice.webhook_id);
            let head = line.len();
            if notice.requeued {
                line.push('*');
            }
            let mut ids = notice.deliveries.iter().peekable();
            while notice.requeued || ids.peek().is_some() {
                while let Some(id) = ids.peek() {
                    if line.len() + 37 > PAYLOAD_LIMIT {
                        break;
                    }
                    if line.len() > head {
                        line.push(',');
                    }
                    line.push_str(&id.to_string());
                    ids.next();
                }
                let current = payloads.last_mut().expect("never empty");
                if current.len() + line.len() + 1 > PAYLOAD_LIMIT {
                    payloads.push(String::new());
                }
                let current = payloads.last_mut().expect("never empty");
                if !current.is_empty() {
                    current.push('\n');
                }
                current.push_str(&line);
                line.truncate(head);
                if notice.requeued {
                    break;
                }
            }
        }
        payloads.retain(|p| !p.is_empty());
        payloads
    }

    /// The notice on one line of a payload.
    fn parse_line(line: &str) -> Option<DeliveryNotice> {
        let (webhook, ids) = line.split_once(' ')?;
        let webhook_id = webhook.parse().ok()?;
        if ids == "*" {
            return Some(DeliveryNotice { webhook_id, deliveries: Vec::new(), requeued: true });
        }
        let deliveries = ids.split(',').filter_map(|id| id.parse().ok()).collect();
        Some(DeliveryNotice { webhook_id, deliveries, requeued: false })
    }
}

/// The line that announces a new delivery to its webhook's owner: the whole delivery when it
/// fits ([`carried_line`]), else its ids, as [`DeliveryNotice::payloads`] writes them.
pub fn announcement_line(delivery: &DeliveryRecord, data_json: &str) -> String {
    carried_line(delivery, data_json).unwrap_or_else(|| format!("{} {}", delivery.webhook_id, delivery.id))
}

/// A new delivery with all its owner needs to send it, as one line of a notification on
/// [`channel::DELIVERIES`], so the owner need not read it back:
/// `<webhook id> +<delivery id> <workspace id> <created at, ms> <event type> <event id's length>
/// <event id> <data>` (an event id may hold spaces; compact JSON holds no newline). `None` when
/// it would not fit in a notification: the owner is then told the id, and reads the rest.
fn carried_line(delivery: &DeliveryRecord, data_json: &str) -> Option<String> {
    let event_id = delivery.event_id.as_str();
    let line = format!(
        "{} +{} {} {} {} {} {event_id} {data_json}",
        delivery.webhook_id,
        delivery.id,
        delivery.workspace_id,
        to_millis(delivery.created_at),
        delivery.event.as_str(),
        event_id.len(),
    );
    (line.len() <= PAYLOAD_LIMIT).then_some(line)
}

/// Which payload each line goes in, in order, so that no payload is over the limit.
pub fn payload_numbers(line_lengths: impl IntoIterator<Item = usize>) -> Vec<i32> {
    let (mut payload, mut used) = (0, 0);
    line_lengths
        .into_iter()
        .map(|len| {
            if used > 0 && used + 1 + len > PAYLOAD_LIMIT {
                (payload, used) = (payload + 1, 0);
            }
            used += len + usize::from(used > 0);
            payload
        })
        .collect()
}

fn parse_carried(line: &str) -> Option<PendingDelivery> {
    let (webhook, rest) = line.split_once(" +")?;
    let mut fields = rest.splitn(5, ' ');
    let (id, workspace, created, event) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let (id_len, rest) = fields.next()?.split_once(' ')?;
    let id_len: usize = id_len.parse().ok()?;
    let (event_id, data_json) = (rest.get(..id_len)?, rest.get(id_len..)?.strip_prefix(' ')?);
    let created_at = from_millis(created.parse().ok()?);
    let delivery = DeliveryRecord::pending(
        id.parse().ok()?,
        workspace.parse().ok()?,
        webhook.parse().ok()?,
        EventId::parse("id", event_id).ok()?,
        EventType::parse("event", event).ok()?,
        created_at,
    );
    Some(PendingDelivery { delivery, data_json: data_json.into(), event_created_at: created_at })
}

/// What notifications on [`channel::DELIVERIES`] announced.
#[derive(Debug, Default)]
pub struct Announcements {
    /// Deliveries to read from the database (or all of a webhook's pending ones).
    pub notices: Vec<DeliveryNotice>,
    /// New deliveries carried whole, by webhook, as their lines came: every server hears every
    /// announcement, so a line is parsed only by the server that runs its webhook
    /// ([`Announcements::carried_for`]).
    carried: Vec<(WebhookId, String)>,
}

impl Announcements {
    /// Adds what a payload announces; lines that do not parse are skipped (the sweep finds
    /// their deliveries).
    pub fn add(&mut self, payload: &str) {
        for line in payload.lines() {
            match line.split_once(" +") {
                Some((webhook, _)) => self.carried.extend(webhook.parse().ok().map(|id| (id, line.to_owned()))),
                None => self.notices.extend(DeliveryNotice::parse_line(line)),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.notices.is_empty() && self.carried.is_empty()
    }

    /// The carried deliveries of the webhooks for which `wanted` holds, parsed; the others'
    /// lines are dropped unread.
    pub fn carried_for(&mut self, wanted: impl Fn(&WebhookId) -> bool) -> Vec<PendingDelivery> {
        std::mem::take(&mut self.carried)
            .into_iter()
            .filter(|(webhook_id, _)| wanted(webhook_id))
            .filter_map(|(_, line)| parse_carried(&line))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DeliveryId;

    #[test]
    fn delivery_notices_survive_their_payloads_and_fit_postgres_limit() {
        let notices: Vec<DeliveryNotice> = (0..30)
            .map(|i| DeliveryNotice {
                webhook_id: WebhookId::generate(),
                deliveries: if i % 7 == 3 { vec![] } else { (0..i * 20).map(|_| DeliveryId::generate()).collect() },
                requeued: i % 7 == 3,
            })
            .collect();
        let payloads = DeliveryNotice::payloads(&notices);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() < 8_000), "{:?}", payloads.iter().map(String::len).collect::<Vec<_>>());
        let mut announced = Announcements::default();
        payloads.iter().for_each(|p| announced.add(p));
        assert!(announced.carried_for(|_| true).is_empty());
        let mut parsed = announced.notices;
        // A notice split over payloads comes back as several; join them again.
        parsed.dedup_by(|later, earlier| {
            let same = later.webhook_id == earlier.webhook_id;
            if same {
                earlier.deliveries.append(&mut later.deliveries);
            }
            same
        });
        assert_eq!(parsed, notices.into_iter().filter(|n| n.requeued || !n.deliveries.is_empty()).collect::<Vec<_>>());
    }

    #[test]
    fn a_carried_delivery_comes_back_as_it_was_sent() {
        use crate::domain::WorkspaceId;
        let event = crate::store::records::EventRecord {
            workspace_id: WorkspaceId::generate(),
            id: EventId::parse("id", "order 42 \u{e9}t\u{e9} +1").unwrap(),
            event: EventType::parse("event", "artifact.completed").unwrap(),
            data_json: r#"{"note":"two words + more","n":1}"#.into(),
            body_hash: String::new(),
            matched_webhooks: 1,
            created_at: crate::domain::now(),
        };
        let delivery = DeliveryRecord::new_pending(&event, WebhookId::generate());
        let line = carried_line(&delivery, &event.data_json).expect("fits");
        let mut announced = Announcements::default();
        announced.add(&format!("{}\n{line}", WebhookId::generate()));
        assert!(announced.notices.is_empty(), "a line without deliveries announces nothing");
        let carried = announced.carried_for(|_| true);
        let [carried] = &carried[..] else { panic!("{carried:?}") };
        assert_eq!(carried.delivery, delivery);
        assert_eq!(&*carried.data_json, event.data_json);
        assert_eq!(carried.event_created_at, event.created_at);

        let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(PAYLOAD_LIMIT));
        assert_eq!(carried_line(&delivery, &big), None, "too big for a notification: read by id");
        let mut by_id = Announcements::default();
        by_id.add(&announcement_line(&delivery, &big));
        assert_eq!(by_id.notices, [DeliveryNotice::of(&delivery)], "the id, as a notice");
        let numbers = payload_numbers([3000, 3000, 3000, 7000, 10]);
        assert_eq!(numbers, [0, 0, 1, 2, 2]);
    }
}
