//! The HTTP API ([`crate::approval::api`] has the table): handlers, error answers, long-poll.
//!
//! Every handler authenticates first (blocking verification on the blocking pool), then does
//! one store call (one transaction, on the blocking pool), then wakes long-pollers of the
//! request it changed. Errors are JSON [`ErrorBody`]s with a reason a person can act on;
//! internal failures (database, I/O) are logged in full and answered with a generic 500 so
//! that no SQL, file path or key material ever reaches a client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ed25519_dalek::SigningKey;
use serde::Deserialize;
use tokio::sync::watch;

use super::auth::{AuthError, Verifier};
use super::listen::Remote;
use super::log::{self, Level};
use super::store::{Record, Refusal, Store};
use crate::approval::api::{self, Act, ErrorBody, Key, Keys, RequestList, RequestView, Status, Submit};
use crate::approval::{MAX_COMMENT, Principal, token};
use crate::common::identity::OidcIdentity;
use crate::identity::now_unix;

/// Most requests `GET /v1/requests` returns.
const MAX_LIST: usize = 500;

/// Everything the handlers share.
pub struct App {
    pub public_url: String,
    pub request_ttl: Duration,
    pub key: SigningKey,
    pub store: Store,
    pub verifier: Verifier,
    /// Per-request change signals for long-pollers (entries live while someone waits).
    watchers: Mutex<HashMap<String, watch::Sender<()>>>,
    /// Becomes true when the service is shutting down: long-polls answer at once.
    shutdown: watch::Receiver<bool>,
}

impl App {
    pub fn new(
        public_url: String,
        request_ttl: Duration,
        key: SigningKey,
        store: Store,
        verifier: Verifier,
        shutdown: watch::Receiver<bool>,
    ) -> App {
        App { public_url, request_ttl, key, store, verifier, watchers: Mutex::new(HashMap::new()), shutdown }
    }

    fn watchers(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<()>>> {
        self.watchers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes everyone long-polling `id`.
    fn changed(&self, id: &str) {
        if let Some(tx) = self.watchers().get(id) {
            tx.send_replace(());
        }
    }
}

/// A subscription to one request's changes; unregisters itself when the last one goes.
struct Watch {
    app: Arc<App>,
    id: String,
    rx: Option<watch::Receiver<()>>,
}

impl Watch {
    fn new(app: &Arc<App>, id: &str) -> Watch {
        let rx = app.watchers().entry(id.to_string()).or_insert_with(|| watch::channel(()).0).subscribe();
        Watch { app: app.clone(), id: id.to_string(), rx: Some(rx) }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut w = self.app.watchers();
        if w.get(&self.id).is_some_and(|tx| tx.receiver_count() == 0) {
            w.remove(&self.id);
        }
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "no such request (or it is not yours to see)")
    }

    /// Logs `detail` and answers a generic 500.
    fn internal(what: &str, detail: impl std::fmt::Display) -> ApiError {
        log::line(Level::Error, what).field("error", detail.to_string()).emit();
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error in the approval service; its log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(ErrorBody { error: self.message })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::NotFound => ApiError::not_found(),
            Refusal::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            Refusal::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            Refusal::Store(e) => ApiError::internal("database error", e),
        }
    }
}

type Answer<T> = Result<T, ApiError>;

/// Runs blocking work (verification, the database) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Answer<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal("task failed", e))
}

/// The router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/keys", get(keys))
        .route("/v1/requests", get(list).post(submit))
        .route("/v1/requests/{id}", get(show).delete(withdraw))
        .route("/v1/requests/{id}/approve", axum::routing::post(approve))
        .route("/v1/requests/{id}/deny", axum::routing::post(deny))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such endpoint; see lpexec-approvald(8)")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
        })
        .layer(DefaultBodyLimit::max(api::MAX_BODY))
        .with_state(app)
}

async fn healthz(State(app): State<Arc<App>>) -> Answer<Json<serde_json::Value>> {
    let a = app.clone();
    match blocking(move || a.store.health()).await? {
        Ok(()) => Ok(Json(serde_json::json!({"status": "ok"}))),
        Err(e) => {
            log::line(Level::Error, "health check failed").field("error", e.to_string()).emit();
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable"))
        }
    }
}

async fn keys(State(app): State<Arc<App>>) -> Json<Keys> {
    let vk = app.key.verifying_key();
    Json(Keys { keys: vec![Key { kid: token::kid(vk.as_bytes()), public_key: token::public_key_text(&vk) }] })
}

/// Verifies the caller's ID token.
async fn authenticate(app: &Arc<App>, headers: &HeaderMap, remote: &Remote) -> Answer<OidcIdentity> {
    let header = match headers.get(header::AUTHORIZATION).map(HeaderValue::to_str) {
        Some(Ok(h)) => Some(h.to_string()),
        Some(Err(_)) => None,
        None => None,
    };
    let a = app.clone();
    let r = blocking(move || a.verifier.verify_header(header.as_deref(), now_unix())).await?;
    r.map_err(|e| {
        let (status, msg, detail) = match e {
            AuthError::Missing => (
                StatusCode::UNAUTHORIZED,
                "an ID token is required: send `Authorization: Bearer <ID token>` (lpexec login gets one)".to_string(),
                None,
            ),
            AuthError::Refused(why) => {
                (StatusCode::UNAUTHORIZED, format!("the ID token was refused: {why}"), None)
            }
            AuthError::Unavailable(detail) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot verify ID tokens right now: the identity provider's keys are unavailable; try again later"
                    .to_string(),
                Some(detail),
            ),
        };
        log::line(if detail.is_some() { Level::Error } else { Level::Warn }, "authentication failed")
            .field("remote", remote.0.clone())
            .field("reason", msg.clone())
            .field("error", detail)
            .emit();
        ApiError::new(status, msg)
    })
}

/// Parses a JSON body strictly (unknown fields are refused by the types).
fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    empty_ok: bool,
) -> Answer<T> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {} bytes", api::MAX_BODY),
            )
        } else {
            ApiError::new(r.status(), "the request body could not be read")
        }
    })?;
    let text: &[u8] = if empty_ok && body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
    serde_json::from_slice(text).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn check_comment(c: &Option<String>) -> Answer<()> {
    match c {
        Some(c) if c.len() > MAX_COMMENT || c.chars().any(|ch| ch.is_control() && ch != '\n') => {
            Err(ApiError::bad_request(format!(
                "the comment must be at most {MAX_COMMENT} bytes without control characters"
            )))
        }
        _ => Ok(()),
    }
}

fn check_id(id: &str) -> Answer<()> {
    if token::valid_id(id) { Ok(()) } else { Err(ApiError::not_found()) }
}

/// The view of `r` for `who`: the token only for the requester.
fn view(r: &Record, who: &OidcIdentity) -> RequestView {
    RequestView {
        id: r.id.clone(),
        status: r.status,
        requester: r.requester.clone(),
        requester_email: r.requester_email.clone(),
        created: r.created,
        expires: r.expires,
        request: r.request.clone(),
        approvals: r.approvals.iter().map(|a| a.approval.clone()).collect(),
        denials: r.denials.clone(),
        token: if r.is_requester(who) { r.token.clone() } else { None },
    }
}

fn visible(r: &Record, who: &OidcIdentity) -> bool {
    r.is_requester(who) || r.may_approve(who)
}

/// A new request id: `req_` and 128 random bits in base64url.
fn new_id() -> Answer<String> {
    use base64::Engine;
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ApiError::internal("no randomness", e))?;
    Ok(format!("req_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)))
}

fn acted(event: &str, r: &Record, who: &OidcIdentity, remote: &Remote) {
    log::line(Level::Info, event)
        .field("request", r.id.clone())
        .field("principal", who.display())
        .field("remote", remote.0.clone())
        .field("status", r.status.as_str())
        .emit();
}

async fn submit(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<(StatusCode, Json<RequestView>)> {
    let who = authenticate(&app, &headers, &remote).await?;
    let Submit { mut request } = parse_body(body, false)?;
    request.check().map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))?;
    // The requester is who the token says, whatever the body claimed.
    request.subject.requester = Some(Principal { iss: who.iss.clone(), sub: who.sub.clone() });
    let id = new_id()?;
    let now = now_unix();
    let expires = now.saturating_add(i64::try_from(app.request_ttl.as_secs()).unwrap_or(i64::MAX));
    let (a, w) = (app.clone(), who.clone());
    let r = blocking(move || a.store.submit(&id, &w, &request, now, expires))
        .await?
        .map_err(|e| ApiError::internal("database error", e))?;
    acted("asked", &r, &who, &remote);
    Ok((StatusCode::CREATED, Json(view(&r, &who))))
}

async fn list(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    headers: HeaderMap,
) -> Answer<Json<RequestList>> {
    let who = authenticate(&app, &headers, &remote).await?;
    let a = app.clone();
    let all = blocking(move || a.store.pending(now_unix(), 100_000))
        .await?
        .map_err(|e| ApiError::internal("database error", e))?;
    let requests = all
        .iter()
        .filter(|r| !r.is_requester(&who) && r.may_approve(&who))
        .filter(|r| !r.approvals.iter().any(|a| a.approval.iss == who.iss && a.approval.sub == who.sub))
        .take(MAX_LIST)
        .map(|r| view(r, &who))
        .collect();
    Ok(Json(RequestList { requests }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    wait: Option<u64>,
    since: Option<String>,
}

async fn show(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer<Json<RequestView>> {
    let who = authenticate(&app, &headers, &remote).await?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    check_id(&id)?;
    let wait = q.wait.unwrap_or(0);
    if wait > api::MAX_WAIT {
        return Err(ApiError::bad_request(format!("wait must be at most {} seconds", api::MAX_WAIT)));
    }
    let since = match q.since.as_deref() {
        None => Status::Pending,
        Some(s) => Status::parse(s).ok_or_else(|| {
            ApiError::bad_request("since must be one of pending, approved, denied, expired, withdrawn")
        })?,
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut shutdown = app.shutdown.clone();
    // Subscribe before reading, so that a change committed after the read still wakes us.
    let mut watch = Watch::new(&app, &id);
    // A waiter also wants to hear of approvals that do not yet complete the request.
    let mut first_count = None;
    loop {
        let (a, i) = (app.clone(), id.clone());
        let r = blocking(move || a.store.get(&i, now_unix()))
            .await?
            .map_err(|e| ApiError::internal("database error", e))?
            .filter(|r| visible(r, &who))
            .ok_or_else(ApiError::not_found)?;
        let count = r.approvals.len() + r.denials.len();
        let progressed = *first_count.get_or_insert(count) != count;
        if r.status != since || progressed || wait == 0 || Instant::now() >= deadline || *shutdown.borrow() {
            return Ok(Json(view(&r, &who)));
        }
        // Wake at a change, at the deadline, at shutdown, or when a pending request expires.
        let mut until = deadline;
        if r.status == Status::Pending {
            let expiry = UNIX_EPOCH + Duration::from_secs(u64::try_from(r.expires).unwrap_or(0));
            let left = expiry.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
            until = until.min(Instant::now() + left);
        }
        let Some(rx) = watch.rx.as_mut() else { return Ok(Json(view(&r, &who))) };
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep_until(until.into()) => {}
            _ = shutdown.changed() => {}
        }
        // A spurious or coalesced wake-up just reads again.
        watch.rx.as_mut().map(|rx| rx.borrow_and_update());
    }
}

/// What approve and deny check first: the caller, the body (a comment at most), the id.
async fn approver_act(
    app: &Arc<App>,
    headers: &HeaderMap,
    remote: &Remote,
    id: &str,
    body: Result<Bytes, BytesRejection>,
) -> Answer<(OidcIdentity, Act)> {
    let who = authenticate(app, headers, remote).await?;
    let act: Act = parse_body(body, true)?;
    check_comment(&act.comment)?;
    check_id(id)?;
    Ok((who, act))
}

async fn approve(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Json<RequestView>> {
    let (who, act) = approver_act(&app, &headers, &remote, &id, body).await?;
    let (a, w, i) = (app.clone(), who.clone(), id.clone());
    let out = blocking(move || {
        let now = now_unix();
        let (key, iss) = (&a.key, a.public_url.as_str());
        a.store.approve(&i, &w, act.comment.as_deref(), now, |r| {
            let approvals = r.approvals.iter().map(|x| x.approval.clone()).collect();
            let exp = now.saturating_add(i64::try_from(r.request.ttl).unwrap_or(i64::MAX));
            token::sign(key, &token::Claims::new(iss, &r.id, now, exp, &r.request.subject, approvals))
        })
    })
    .await?;
    let (r, issued) = out.map_err(|e| refused(e, "approve", &id, &who, &remote))?;
    app.changed(&id);
    acted("approved", &r, &who, &remote);
    if issued {
        acted("token issued", &r, &who, &remote);
    }
    Ok(Json(view(&r, &who)))
}

async fn deny(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Json<RequestView>> {
    let (who, act) = approver_act(&app, &headers, &remote, &id, body).await?;
    let (a, w, i) = (app.clone(), who.clone(), id.clone());
    let r = blocking(move || a.store.deny(&i, &w, act.comment.as_deref(), now_unix()))
        .await?
        .map_err(|e| refused(e, "deny", &id, &who, &remote))?;
    app.changed(&id);
    acted("denied", &r, &who, &remote);
    Ok(Json(view(&r, &who)))
}

async fn withdraw(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<Remote>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<RequestView>> {
    let who = authenticate(&app, &headers, &remote).await?;
    check_id(&id)?;
    let (a, w, i) = (app.clone(), who.clone(), id.clone());
    let r = blocking(move || a.store.withdraw(&i, &w, now_unix()))
        .await?
        .map_err(|e| refused(e, "withdraw", &id, &who, &remote))?;
    app.changed(&id);
    acted("withdrew", &r, &who, &remote);
    Ok(Json(view(&r, &who)))
}

/// Logs a refused action and turns it into the answer.
fn refused(e: Refusal, what: &str, id: &str, who: &OidcIdentity, remote: &Remote) -> ApiError {
    if let Refusal::Forbidden(m) | Refusal::Conflict(m) = &e {
        log::line(Level::Warn, &format!("{what} refused"))
            .field("request", id)
            .field("principal", who.display())
            .field("remote", remote.0.clone())
            .field("reason", m.clone())
            .emit();
    }
    e.into()
}
