//! The service's durable state: one SQLite database in WAL mode with `synchronous=FULL`, so
//! that every request, approval, denial and issued token is on disk before the HTTP answer
//! leaves.
//!
//! Writes go through one connection, one at a time ([`Store::write`]): each re-reads the
//! request's status first, which is what makes "two approvers race on the last approval"
//! issue exactly one token. They are *group-committed*: writers that queue up while a commit
//! is being flushed run next, one after another, each in its own savepoint of one shared
//! transaction, and the last of them commits for all — one fsync for the group, and nobody
//! is answered before the commit that holds their change is on disk. A write's savepoint is
//! rolled back on a store error, so one failing write never undoes another's.
//!
//! Reads use a second connection, which sees only committed data (a WAL snapshot), so a
//! reader never answers with a change that is not yet durable, and never waits for a flush.
//!
//! Tables (schema version in `PRAGMA user_version`, upgraded by [`migrate`]):
//! - `requests`: one row per request, the request as JSON (with the verified requester), its
//!   status and, once approved, the one token ever signed for it;
//! - `approvals`, `denials`: who acted, when, with which comment, and the approver's verified
//!   claims (to count requirements again without trusting anything else);
//! - `events`: the append-only audit trail (asked, approved, denied, withdrew, expired,
//!   token issued), which nothing deletes or updates.
//!
//! Every statement is parameterised: strings are stored and returned verbatim.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use rusqlite::{Connection, OptionalExtension, params};

use crate::approval::api::{Denial, Status};
use crate::approval::{Approval, ApprovalRequest, Principal};
use crate::common::identity::OidcIdentity;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE requests (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    requester_issuer TEXT NOT NULL,
    requester_iss   TEXT NOT NULL,
    requester_sub   TEXT NOT NULL,
    requester_email TEXT,
    created         INTEGER NOT NULL,
    expires         INTEGER NOT NULL,
    request         TEXT NOT NULL,
    token           TEXT,
    decided         INTEGER
) STRICT;
CREATE INDEX requests_pending ON requests (status, expires);
CREATE TABLE approvals (
    request_id  TEXT NOT NULL REFERENCES requests (id),
    issuer      TEXT NOT NULL,
    iss         TEXT NOT NULL,
    sub         TEXT NOT NULL,
    email       TEXT,
    groups      TEXT NOT NULL,
    claims      TEXT NOT NULL,
    time        INTEGER NOT NULL,
    comment     TEXT,
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    UNIQUE (request_id, iss, sub)
) STRICT;
CREATE TABLE denials (
    request_id  TEXT NOT NULL REFERENCES requests (id),
    iss         TEXT NOT NULL,
    sub         TEXT NOT NULL,
    email       TEXT,
    time        INTEGER NOT NULL,
    comment     TEXT,
    seq         INTEGER PRIMARY KEY AUTOINCREMENT
) STRICT;
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    time        INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    event       TEXT NOT NULL,
    issuer      TEXT,
    iss         TEXT,
    sub         TEXT,
    email       TEXT,
    comment     TEXT
) STRICT;
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
";

/// What went wrong in the store: always logged in full, never shown to clients.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError(format!("database: {e}"))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> StoreError {
        StoreError(format!("database holds invalid JSON: {e}"))
    }
}

/// One approval as stored: what the token binds, plus the identity it is matched as.
#[derive(Debug, Clone)]
pub struct StoredApproval {
    pub approval: Approval,
    pub identity: OidcIdentity,
}

/// A request with everything that happened to it.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub status: Status,
    /// The requester's configured issuer name.
    pub requester_issuer: String,
    pub requester: Principal,
    pub requester_email: Option<String>,
    pub created: i64,
    pub expires: i64,
    pub request: ApprovalRequest,
    pub approvals: Vec<StoredApproval>,
    pub denials: Vec<Denial>,
    pub token: Option<String>,
}

impl Record {
    /// Whether `who` is the requester: the same subject of the same issuer, or the same email
    /// at the same issuer (one person, two accounts).
    pub fn is_requester(&self, who: &OidcIdentity) -> bool {
        (who.iss == self.requester.iss && who.sub == self.requester.sub)
            || (who.issuer == self.requester_issuer
                && who.email.is_some()
                && who.email == self.requester_email)
    }

    /// Whether `who` matches an approver of any requirement.
    pub fn may_approve(&self, who: &OidcIdentity) -> bool {
        self.request.requirements.iter().any(|r| r.approvers.iter().any(|a| a.matches(who)))
    }

    /// Whether every requirement is met by the approvals so far.
    pub fn satisfied(&self) -> bool {
        self.request.requirements.iter().all(|r| r.satisfied_by(self.approvals.iter().map(|a| &a.identity)))
    }
}

/// Why an action was refused (each maps to one HTTP status).
#[derive(Debug)]
pub enum Refusal {
    NotFound,
    /// Not allowed to do this at all (403).
    Forbidden(String),
    /// Not in this state, or already done (409).
    Conflict(String),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Store(e)
    }
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Refusal {
        Refusal::Store(e.into())
    }
}

/// Most writes that share one commit (bounds how long the first of them waits).
const MAX_GROUP: usize = 64;

/// The database.
pub struct Store {
    writer: Mutex<Group>,
    /// Signalled when a group's commit has finished.
    committed: Condvar,
    /// Writers waiting for `writer`: while there are any, a finished write leaves the commit
    /// to them.
    queued: AtomicUsize,
    reader: Mutex<Connection>,
}

/// The write connection and the group of writes in its open transaction.
struct Group {
    conn: Connection,
    /// The open transaction's outcome, shared by its writers; `None`: no transaction open.
    open: Option<Arc<OnceLock<Result<(), String>>>>,
    members: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave a write half-applied (writes run inside a
    // savepoint that is rolled back, and SQLite rolls back an unfinished transaction), so a
    // poisoned lock still guards a usable connection.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a write's error means for its changes: store errors roll them back; refusals keep
/// what the checks recorded (an expiry noticed on the way).
trait WriteError: From<StoreError> {
    fn keeps_changes(&self) -> bool;
}

impl WriteError for StoreError {
    fn keeps_changes(&self) -> bool {
        false
    }
}

impl WriteError for Refusal {
    fn keeps_changes(&self) -> bool {
        !matches!(self, Refusal::Store(_))
    }
}

fn open_connection(path: &Path, flags: rusqlite::OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError(format!("cannot open the database {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// The database's schema version (`PRAGMA user_version`; 0 for a new or foreign file).
fn schema_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn status_of(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError(format!("database holds an unknown status {s:?}")))
}

impl Store {
    /// Opens (creating if needed) and upgrades the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let at = |e: rusqlite::Error| StoreError(format!("cannot use the database {}: {e}", path.display()));
        let conn = open_connection(path, rusqlite::OpenFlags::default())?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(at)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!(
                "the database {} cannot use WAL mode (it reports {mode:?}); put it on a local file system",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;").map_err(at)?;
        migrate(&conn).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        let reader = open_connection(path, rusqlite::OpenFlags::default())?;
        reader.execute_batch("PRAGMA query_only = ON;").map_err(at)?;
        Ok(Store {
            writer: Mutex::new(Group { conn, open: None, members: 0 }),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
            reader: Mutex::new(reader),
        })
    }

    /// Runs `f` as one write: in its own savepoint of the group's transaction, answered only
    /// once that transaction is committed (by this caller, or by the last writer queued
    /// behind it). `f` sees every committed change and those of earlier writes in its group.
    fn write<R, E: WriteError>(&self, f: impl FnOnce(&Connection) -> Result<R, E>) -> Result<R, E> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut g = lock(&self.writer);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let outcome = match g.open.clone() {
            Some(o) => o,
            None => {
                g.conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::from)?;
                let o = Arc::new(OnceLock::new());
                g.open = Some(o.clone());
                g.members = 0;
                o
            }
        };
        g.members += 1;
        let result = in_savepoint(&g.conn, f);
        if self.queued.load(Ordering::SeqCst) > 0 && g.members < MAX_GROUP {
            // Someone is queued behind us and will commit for both (or pass it on).
            while outcome.get().is_none() {
                g = self.committed.wait(g).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        } else {
            let done = g.conn.execute_batch("COMMIT").map_err(|e| format!("cannot commit: {e}"));
            if done.is_err() {
                let _ = g.conn.execute_batch("ROLLBACK");
            }
            let _ = outcome.set(done);
            g.open = None;
            self.committed.notify_all();
        }
        drop(g);
        match outcome.get() {
            Some(Ok(())) => result,
            Some(Err(e)) => Err(StoreError(e.clone()).into()),
            None => Err(StoreError("a write group ended without an outcome".into()).into()),
        }
    }

    /// Runs `f` in a read transaction on the reader connection (committed data only).
    fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut c = lock(&self.reader);
        let tx = c.transaction()?;
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    }

    /// Whether the database answers.
    pub fn health(&self) -> Result<(), StoreError> {
        let c = lock(&self.reader);
        let v = schema_version(&c)?;
        let _: i64 =
            c.query_row("SELECT count(*) FROM (SELECT 1 FROM requests LIMIT 1)", [], |r| r.get(0))?;
        if v != SCHEMA_VERSION {
            return Err(StoreError(format!("schema version changed under the service to {v}")));
        }
        Ok(())
    }

    /// Stores a new request from `requester` (verified) and records that they asked.
    pub fn submit(
        &self,
        id: &str,
        requester: &OidcIdentity,
        request: &ApprovalRequest,
        created: i64,
        expires: i64,
    ) -> Result<Record, StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO requests (id, status, requester_issuer, requester_iss, requester_sub,
                                       requester_email, created, expires, request)
                 VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    requester.issuer,
                    requester.iss,
                    requester.sub,
                    requester.email,
                    created,
                    expires,
                    serde_json::to_string(request)?
                ],
            )?;
            event(tx, created, id, "asked", Some(requester), request.reason.as_deref())?;
            load(tx, id)?.ok_or_else(|| StoreError("a stored request vanished".into()))
        })
    }

    /// The request `id` as of `now` (a pending request past its expiry is recorded as expired).
    pub fn get(&self, id: &str, now: i64) -> Result<Option<Record>, StoreError> {
        match self.read(|tx| load(tx, id))? {
            Some(r) if r.status == Status::Pending && now >= r.expires => {
                self.write(|tx| match load(tx, id)? {
                    Some(r) => Ok(Some(expire_if_due(tx, r, now)?)),
                    None => Ok(None),
                })
            }
            r => Ok(r),
        }
    }

    /// Pending, unexpired requests, oldest first (at most `limit`).
    pub fn pending(&self, now: i64, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.read(|tx| {
            let ids: Vec<String> = {
                let mut st = tx.prepare_cached(
                    "SELECT id FROM requests WHERE status = 'pending' AND expires > ?1
                     ORDER BY created, id LIMIT ?2",
                )?;
                st.query_map(params![now, limit as i64], |r| r.get(0))?.collect::<Result<_, _>>()?
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(r) = load(tx, &id)? {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    /// Records an approval by `who`; when it completes every requirement, marks the request
    /// approved and stores the token `sign` makes, in the same transaction. `sign` is called at
    /// most once per request, ever.
    pub fn approve(
        &self,
        id: &str,
        who: &OidcIdentity,
        comment: Option<&str>,
        now: i64,
        sign: impl FnOnce(&Record) -> String,
    ) -> Result<(Record, bool), Refusal> {
        self.write(|tx| {
            actionable(tx, id, who, now)?;
            let groups = serde_json::to_string(&who.groups).map_err(StoreError::from)?;
            let claims = serde_json::to_string(&who.claims).map_err(StoreError::from)?;
            tx.execute(
                "INSERT INTO approvals (request_id, issuer, iss, sub, email, groups, claims, time, comment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, who.issuer, who.iss, who.sub, who.email, groups, claims, now, comment],
            )?;
            event(tx, now, id, "approved", Some(who), comment)?;
            let mut r = load(tx, id)?.ok_or(Refusal::NotFound)?;
            debug_assert_eq!(r.status, Status::Pending, "{}", r.id);
            let issued = r.satisfied();
            if issued {
                r.status = Status::Approved;
                let token = sign(&r);
                tx.execute(
                    "UPDATE requests SET status = 'approved', token = ?2, decided = ?3
                     WHERE id = ?1 AND status = 'pending'",
                    params![id, token, now],
                )?;
                event(tx, now, id, "token issued", None, None)?;
                r.token = Some(token);
            }
            Ok((r, issued))
        })
    }

    /// Records a denial by `who`: the request is denied at the first one.
    pub fn deny(
        &self,
        id: &str,
        who: &OidcIdentity,
        comment: Option<&str>,
        now: i64,
    ) -> Result<Record, Refusal> {
        self.write(|tx| {
            actionable(tx, id, who, now)?;
            tx.execute(
                "INSERT INTO denials (request_id, iss, sub, email, time, comment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, who.iss, who.sub, who.email, now, comment],
            )?;
            tx.execute(
                "UPDATE requests SET status = 'denied', decided = ?2 WHERE id = ?1 AND status = 'pending'",
                params![id, now],
            )?;
            event(tx, now, id, "denied", Some(who), comment)?;
            load(tx, id)?.ok_or(Refusal::NotFound)
        })
    }

    /// The requester withdraws a pending request.
    pub fn withdraw(&self, id: &str, who: &OidcIdentity, now: i64) -> Result<Record, Refusal> {
        self.write(|tx| {
            let r = load(tx, id)?.ok_or(Refusal::NotFound)?;
            if !r.is_requester(who) {
                // Approvers may see a request, but only its requester may take it back.
                return Err(if r.may_approve(who) {
                    Refusal::Forbidden("only the requester may withdraw a request".into())
                } else {
                    Refusal::NotFound
                });
            }
            let r = expire_if_due(tx, r, now)?;
            if r.status != Status::Pending {
                return Err(Refusal::Conflict(format!("the request is {}, not pending", r.status.as_str())));
            }
            tx.execute(
                "UPDATE requests SET status = 'withdrawn', decided = ?2 WHERE id = ?1 AND status = 'pending'",
                params![id, now],
            )?;
            event(tx, now, id, "withdrew", Some(who), None)?;
            load(tx, id)?.ok_or(Refusal::NotFound)
        })
    }
}

/// Runs one write in a savepoint of the open transaction: released when it succeeds or is a
/// refusal that keeps its checks' changes, rolled back on a store error or a panic.
fn in_savepoint<R, E: WriteError>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, E>,
) -> Result<R, E> {
    conn.execute_batch("SAVEPOINT write").map_err(StoreError::from)?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError("internal error in a database write".into()).into()));
    let keep = match &result {
        Ok(_) => true,
        Err(e) => e.keeps_changes(),
    };
    let end = if keep { "RELEASE write" } else { "ROLLBACK TO write; RELEASE write" };
    conn.execute_batch(end).map_err(StoreError::from)?;
    result
}

/// The checks shared by approve and deny, inside the transaction: the request exists, `who`
/// may act on it (an approver, not the requester), it is pending and unexpired, and `who` has
/// not acted on it yet.
fn actionable(tx: &Connection, id: &str, who: &OidcIdentity, now: i64) -> Result<Record, Refusal> {
    let r = load(tx, id)?.ok_or(Refusal::NotFound)?;
    if r.is_requester(who) {
        return Err(Refusal::Forbidden(
            "you asked for this request; approvals and denials must come from someone else".into(),
        ));
    }
    if !r.may_approve(who) {
        return Err(Refusal::Forbidden(format!(
            "{} does not match any approver this request needs ({})",
            who.display(),
            r.request.requirements.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        )));
    }
    let r = expire_if_due(tx, r, now)?;
    if r.status != Status::Pending {
        return Err(Refusal::Conflict(format!("the request is {}, not pending", r.status.as_str())));
    }
    if r.approvals.iter().any(|a| a.approval.iss == who.iss && a.approval.sub == who.sub) {
        return Err(Refusal::Conflict(
            "you already approved this request; approvals must come from distinct people".into(),
        ));
    }
    Ok(r)
}

/// Marks `r` expired when it is pending and past its expiry, recording the event.
fn expire_if_due(tx: &Connection, mut r: Record, now: i64) -> Result<Record, StoreError> {
    if r.status == Status::Pending && now >= r.expires {
        tx.execute(
            "UPDATE requests SET status = 'expired', decided = ?2 WHERE id = ?1 AND status = 'pending'",
            params![r.id, r.expires],
        )?;
        event(tx, r.expires, &r.id, "expired", None, None)?;
        r.status = Status::Expired;
    }
    Ok(r)
}

fn event(
    tx: &Connection,
    time: i64,
    id: &str,
    what: &str,
    who: Option<&OidcIdentity>,
    comment: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO events (time, request_id, event, issuer, iss, sub, email, comment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        time,
        id,
        what,
        who.map(|w| &w.issuer),
        who.map(|w| &w.iss),
        who.map(|w| &w.sub),
        who.and_then(|w| w.email.as_ref()),
        comment
    ])?;
    Ok(())
}

fn load(tx: &Connection, id: &str) -> Result<Option<Record>, StoreError> {
    let row = tx
        .prepare_cached(
            "SELECT status, requester_issuer, requester_iss, requester_sub, requester_email, created, expires,
                    request, token
             FROM requests WHERE id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })
        .optional()?;
    let Some((status, requester_issuer, iss, sub, requester_email, created, expires, request, token)) = row
    else {
        return Ok(None);
    };
    let mut approvals = Vec::new();
    {
        let mut st = tx.prepare_cached(
            "SELECT issuer, iss, sub, email, groups, claims, time, comment FROM approvals
             WHERE request_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        for row in rows {
            let (issuer, iss, sub, email, groups, claims, time, comment) = row?;
            let groups: Vec<String> = serde_json::from_str(&groups)?;
            let claims: BTreeMap<String, serde_json::Value> = serde_json::from_str(&claims)?;
            let approval = Approval { iss, sub, email, groups, time, comment };
            let mut identity = approval.identity(&issuer);
            identity.claims = claims;
            approvals.push(StoredApproval { approval, identity });
        }
    }
    let mut denials = Vec::new();
    {
        let mut st = tx.prepare_cached(
            "SELECT iss, sub, email, time, comment FROM denials WHERE request_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map(params![id], |r| {
            Ok(Denial {
                iss: r.get(0)?,
                sub: r.get(1)?,
                email: r.get(2)?,
                time: r.get(3)?,
                comment: r.get(4)?,
            })
        })?;
        for d in rows {
            denials.push(d?);
        }
    }
    Ok(Some(Record {
        id: id.to_string(),
        status: status_of(&status)?,
        requester_issuer,
        requester: Principal { iss, sub },
        requester_email,
        created,
        expires,
        request: serde_json::from_str(&request)?,
        approvals,
        denials,
        token,
    }))
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    /// Seconds since the epoch.
    pub time: i64,
    pub request: String,
    /// `asked`, `approved`, `denied`, `withdrew`, `expired` or `token issued`.
    pub event: String,
    /// The configured issuer name and the verified subject and email of who acted (none for
    /// `expired` and `token issued`).
    pub issuer: Option<String>,
    pub sub: Option<String>,
    pub email: Option<String>,
    pub comment: Option<String>,
}

/// Reads the audit trail of the database at `path` without changing it (read-only, so an
/// operator can read it beside the running service): events at or after `since`, of one
/// request if given, oldest first.
pub fn audit(path: &Path, request: Option<&str>, since: i64) -> Result<Vec<AuditEvent>, StoreError> {
    use rusqlite::OpenFlags;
    let conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let v = schema_version(&conn)
        .map_err(|e| StoreError(format!("cannot read the database {}: {e}", path.display())))?;
    if v != SCHEMA_VERSION {
        return Err(StoreError(format!(
            "{} has schema version {v}, this lpexec-approvald reads version {SCHEMA_VERSION}{}",
            path.display(),
            if v == 0 { " (is it an lpexec-approvald database?)" } else { "" }
        )));
    }
    let mut st = conn.prepare(
        "SELECT seq, time, request_id, event, issuer, sub, email, comment FROM events
         WHERE time >= ?1 AND (?2 IS NULL OR request_id = ?2) ORDER BY seq",
    )?;
    let rows = st.query_map(params![since, request], |r| {
        Ok(AuditEvent {
            seq: r.get(0)?,
            time: r.get(1)?,
            request: r.get(2)?,
            event: r.get(3)?,
            issuer: r.get(4)?,
            sub: r.get(5)?,
            email: r.get(6)?,
            comment: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Brings the schema to [`SCHEMA_VERSION`], refusing a database from a newer build.
fn migrate(conn: &Connection) -> Result<(), String> {
    let v = schema_version(conn).map_err(|e| e.to_string())?;
    if v > SCHEMA_VERSION {
        return Err(format!(
            "the database has schema version {v}, newer than this lpexec-approvald understands ({SCHEMA_VERSION}); \
             run the newer version, or restore a backup made before the upgrade"
        ));
    }
    if v < 1 {
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;"))
            .map_err(|e| format!("cannot create the schema: {e}"))?;
    }
    // Later versions: `if v < 2 { ... PRAGMA user_version = 2 }`, each in its own transaction.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::{Approver, Requirement, Subject};

    fn who(sub: &str, groups: &[&str]) -> OidcIdentity {
        OidcIdentity {
            issuer: "corp".into(),
            iss: "https://id".into(),
            sub: sub.into(),
            email: Some(format!("{sub}@example.com")),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            claims: BTreeMap::new(),
        }
    }

    fn request(min: u32) -> ApprovalRequest {
        ApprovalRequest {
            subject: Subject {
                host: "h".into(),
                uid: 1000,
                user: "alice".into(),
                requester: Some(Principal { iss: "https://id".into(), sub: "alice".into() }),
                role: "r".into(),
                run_as: "root".into(),
                command: "/usr/bin/npm".into(),
                argv: vec!["npm".into(), "'); DROP TABLE requests;--".into()],
                cwd: "/srv".into(),
            },
            requirements: vec![Requirement {
                rule: "policy.toml:3".into(),
                approvers: vec![Approver {
                    issuer: "corp".into(),
                    sub: None,
                    email: None,
                    groups: vec!["ops".into()],
                    claims: BTreeMap::new(),
                }],
                min_approvals: min,
            }],
            ttl: 600,
            reason: Some("Robert'); DROP TABLE events;--".into()),
        }
    }

    fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "approvald-store-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        (Store::open(&dir.join("a.db")).unwrap(), dir)
    }

    #[test]
    fn two_distinct_approvers_issue_one_token() {
        let (s, dir) = store();
        let alice = who("alice", &[]);
        let r = s.submit("req_aaaaaaaaaaaa", &alice, &request(2), 100, 200).unwrap();
        assert_eq!(r.request, request(2), "stored verbatim");
        assert!(matches!(
            s.approve(&r.id, &alice, None, 101, |_| unreachable!()),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            s.approve(&r.id, &who("eve", &["dev"]), None, 101, |_| unreachable!()),
            Err(Refusal::Forbidden(_))
        ));
        let (r1, issued) =
            s.approve(&r.id, &who("bob", &["ops"]), Some("ok"), 102, |_| unreachable!()).unwrap();
        assert!(!issued && r1.status == Status::Pending);
        assert!(matches!(
            s.approve(&r.id, &who("bob", &["ops"]), None, 103, |_| unreachable!()),
            Err(Refusal::Conflict(_))
        ));
        let (r2, issued) = s.approve(&r.id, &who("carol", &["ops"]), None, 104, |_| "tok".into()).unwrap();
        assert!(issued && r2.status == Status::Approved && r2.token.as_deref() == Some("tok"));
        assert!(matches!(
            s.approve(&r.id, &who("dave", &["ops"]), None, 105, |_| unreachable!()),
            Err(Refusal::Conflict(_))
        ));
        let again = s.get(&r.id, 1000).unwrap().unwrap();
        assert_eq!(again.status, Status::Approved, "approved requests do not expire");
        assert_eq!(again.token.as_deref(), Some("tok"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn expiry_deny_and_withdraw() {
        let (s, dir) = store();
        let alice = who("alice", &[]);
        s.submit("req_expiring00", &alice, &request(1), 100, 200).unwrap();
        assert_eq!(s.get("req_expiring00", 199).unwrap().unwrap().status, Status::Pending);
        assert_eq!(s.pending(199, 10).unwrap().len(), 1);
        assert!(s.pending(200, 10).unwrap().is_empty());
        assert_eq!(s.get("req_expiring00", 200).unwrap().unwrap().status, Status::Expired);
        s.submit("req_denied0000", &alice, &request(1), 100, 200).unwrap();
        let d = s.deny("req_denied0000", &who("bob", &["ops"]), Some("no"), 150).unwrap();
        assert_eq!((d.status, d.denials[0].comment.as_deref()), (Status::Denied, Some("no")));
        s.submit("req_withdrawn0", &alice, &request(1), 100, 200).unwrap();
        assert!(matches!(
            s.withdraw("req_withdrawn0", &who("bob", &["ops"]), 150),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(s.withdraw("req_withdrawn0", &who("eve", &[]), 150), Err(Refusal::NotFound)));
        assert_eq!(s.withdraw("req_withdrawn0", &alice, 150).unwrap().status, Status::Withdrawn);
        assert!(matches!(s.withdraw("req_withdrawn0", &alice, 150), Err(Refusal::Conflict(_))));
        let c = Connection::open(dir.join("a.db")).unwrap();
        let n: i64 = c.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 6); // 3 asked, expired, denied, withdrew
        assert!(c.execute("DELETE FROM events", []).is_err(), "append-only");
        drop(c);
        // The trail, read-only, beside the open store: kept after expiry, with comments.
        let trail = audit(&dir.join("a.db"), None, 0).unwrap();
        let kinds: Vec<&str> = trail.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds, ["asked", "expired", "asked", "denied", "asked", "withdrew"]);
        assert_eq!(
            (trail[3].email.as_deref(), trail[3].comment.as_deref()),
            (Some("bob@example.com"), Some("no"))
        );
        assert_eq!(trail[1].sub, None);
        let one = audit(&dir.join("a.db"), Some("req_withdrawn0"), 0).unwrap();
        assert_eq!(one.len(), 2);
        let late: Vec<String> =
            audit(&dir.join("a.db"), None, 151).unwrap().into_iter().map(|e| e.event).collect();
        assert_eq!(late, ["expired"]);
        assert!(audit(&dir.join("missing.db"), None, 0).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn queued_writers_share_a_commit_and_a_failing_write_undoes_only_itself() {
        let (s, dir) = store();
        let s = Arc::new(s);
        // Hold the write connection so that every writer below queues up behind it: they
        // then run one after another in one group and the last commits for all.
        let held = lock(&s.writer);
        let mut threads = Vec::new();
        for n in 0..8 {
            let s = s.clone();
            threads.push(std::thread::spawn(move || {
                let id = format!("req_group{n:07}");
                let r = s.submit(&id, &who("alice", &[]), &request(1), 100, 10_000);
                // Every other writer then fails on purpose: a duplicate id.
                let dup = if n % 2 == 0 {
                    Some(s.submit(&id, &who("alice", &[]), &request(1), 100, 10_000))
                } else {
                    None
                };
                (r.map(|r| r.id), dup.map(|d| d.is_err()))
            }));
        }
        while s.queued.load(Ordering::SeqCst) < 8 {
            std::thread::yield_now();
        }
        drop(held);
        for t in threads {
            let (r, dup_failed) = t.join().unwrap();
            assert!(r.is_ok(), "{r:?}");
            assert_ne!(dup_failed, Some(false), "a duplicate id was accepted");
        }
        // Everything committed is there, once; a refusal keeps what it recorded, a store error
        // only rolls back its own write.
        let c = Connection::open(dir.join("a.db")).unwrap();
        let n: i64 = c.query_row("SELECT count(*) FROM requests", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 8);
        let n: i64 =
            c.query_row("SELECT count(*) FROM events WHERE event = 'asked'", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 8);
        let kept: Result<(), Refusal> = s.write(|tx| {
            event(tx, 1, "req_kept0000000", "asked", None, None)?;
            Err(Refusal::Conflict("a refusal".into()))
        });
        assert!(matches!(kept, Err(Refusal::Conflict(_))));
        let undone: Result<(), Refusal> = s.write(|tx| {
            event(tx, 1, "req_undone00000", "asked", None, None)?;
            Err(Refusal::Store(StoreError("a store error".into())))
        });
        assert!(matches!(undone, Err(Refusal::Store(_))));
        let ids: Vec<String> =
            audit(&dir.join("a.db"), None, 0).unwrap().into_iter().map(|e| e.request).collect();
        assert!(
            ids.contains(&"req_kept0000000".to_string()) && !ids.contains(&"req_undone00000".to_string())
        );
        // A reader sees only what is committed.
        assert_eq!(s.get("req_group0000003", 101).unwrap().unwrap().status, Status::Pending);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn same_email_counts_as_the_requester() {
        let (s, dir) = store();
        let alice = who("alice", &[]);
        s.submit("req_sameemail0", &alice, &request(1), 100, 200).unwrap();
        let mut alt = who("alice-admin", &["ops"]);
        alt.email = Some("alice@example.com".into());
        assert!(matches!(
            s.approve("req_sameemail0", &alt, None, 101, |_| unreachable!()),
            Err(Refusal::Forbidden(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_naming_it() {
        let (s, dir) = store();
        drop(s);
        let bogus = dir.join("bogus.db");
        std::fs::write(&bogus, b"not a database, not at all, definitely not").unwrap();
        let e = Store::open(&bogus).err().unwrap().to_string();
        assert!(e.contains(&bogus.display().to_string()) && e.contains("not a database"), "{e}");
        let e = audit(&bogus, None, 0).unwrap_err().to_string();
        assert!(e.contains(&bogus.display().to_string()) && e.contains("not a database"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn newer_schema_is_refused() {
        let (s, dir) = store();
        Connection::open(dir.join("a.db")).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
        drop(s);
        let e = Store::open(&dir.join("a.db")).err().unwrap().to_string();
        assert!(e.contains("newer than this lpexec-approvald understands"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
