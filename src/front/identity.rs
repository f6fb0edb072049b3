//! `lpexec login`, `logout` and `whoami`, and the identity part of every request: which ID
//! tokens go to the helper, and what to do when the helper answers that a run needs an
//! identity the caller has not got.
//!
//! Tokens presented with a request:
//! - CI: `LPEXEC_ID_TOKEN`, else the file named by `LPEXEC_ID_TOKEN_FILE`, used as is; the
//!   helper picks the configured issuer whose URL equals the token's `iss`. When a CI token is
//!   given, the token cache is not consulted (one job, one identity).
//! - Otherwise every cached login of a configured issuer, renewed first with its refresh
//!   token when the ID token has expired (or is about to).
//!
//! Nothing here is trusted by the helper: it verifies every token itself.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::config::{Config, Issuer};
use crate::common::{duration, paths, timefmt};
use crate::helper::load::{self, Access};
use crate::helper::request::Request;
use crate::identity::cache::{Entry, TokenCache};
use crate::identity::device::{self, DeviceError, Endpoints, RefreshError, Waiter};
use crate::identity::http::{Client, Profile};
use crate::identity::{HelperResponse, Presented, TokenSource, jwt, now_unix, printable};
use crate::system::{fd, interrupt, term};
use crate::{eprintln_safe, println_safe};

/// Renew an ID token this many seconds before it expires.
const REFRESH_MARGIN: i64 = 30;
/// Largest `LPEXEC_ID_TOKEN_FILE` read (the helper bounds tokens itself, and says so).
const MAX_TOKEN_FILE: u64 = 1024 * 1024;

pub(super) fn config() -> Result<Config, String> {
    load::config(&paths::config_file(), Access::Secure)
}

fn client_for(issuer: &Issuer) -> Result<Client, String> {
    let ca = match &issuer.ca_file {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("cannot read ca_file {}: {e}", p.display()))?),
        None => None,
    };
    Client::new(Profile::Front, issuer.url.starts_with("https://"), ca.as_deref())
}

/// The CI token, if the environment provides one.
fn ci_token() -> Result<Option<Presented>, String> {
    if let Some(t) = std::env::var_os("LPEXEC_ID_TOKEN").filter(|t| !t.is_empty()) {
        let t = t.into_string().map_err(|_| "LPEXEC_ID_TOKEN is not valid UTF-8".to_string())?;
        return Ok(Some(Presented { issuer: None, token: t.trim().to_string(), from: TokenSource::Env }));
    }
    let Some(path) = std::env::var_os("LPEXEC_ID_TOKEN_FILE").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = Path::new(&path);
    let mut buf = Vec::new();
    let f = std::fs::File::open(path)
        .map_err(|e| format!("cannot read LPEXEC_ID_TOKEN_FILE {}: {e}", path.display()))?;
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_TOKEN_FILE + 1), &mut buf)
        .map_err(|e| format!("cannot read LPEXEC_ID_TOKEN_FILE {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_TOKEN_FILE {
        return Err(format!(
            "LPEXEC_ID_TOKEN_FILE {} is larger than {MAX_TOKEN_FILE} bytes; it must hold one ID token",
            path.display()
        ));
    }
    let t =
        String::from_utf8(buf).map_err(|_| format!("LPEXEC_ID_TOKEN_FILE {} is not text", path.display()))?;
    Ok(Some(Presented { issuer: None, token: t.trim().to_string(), from: TokenSource::File }))
}

/// A cached login ready to present: renewed if due. `None` when it cannot be used (the
/// helper will then say if an identity is needed).
fn usable(cache: &TokenCache, issuer: &Issuer, now: i64) -> Option<String> {
    let entry = match cache.load(&issuer.name) {
        Ok(Some(e)) if e.issuer_url == issuer.url && e.client_id == issuer.client_id => e,
        Ok(_) => return None,
        Err(e) => {
            eprintln_safe!("lpexec: warning: {e}");
            return None;
        }
    };
    if !entry.needs_refresh(now, REFRESH_MARGIN) {
        return Some(entry.id_token);
    }
    let rt = entry.refresh_token.clone()?;
    match renew(issuer, &rt) {
        Ok(tokens) => {
            let e = Entry::new(
                &issuer.name,
                &issuer.url,
                &issuer.client_id,
                tokens.id_token,
                tokens.refresh_token.or(Some(rt)),
                now,
            );
            if let Err(err) = cache.save(&e) {
                eprintln_safe!("lpexec: warning: cannot update the token cache: {err}");
            }
            Some(e.id_token)
        }
        Err(RefreshError::Rejected(_)) => None, // expired or revoked: a new login is needed
        Err(RefreshError::Failed(why)) => {
            eprintln_safe!("lpexec: warning: cannot renew your {} login: {why}", issuer.name);
            None
        }
    }
}

fn renew(issuer: &Issuer, refresh_token: &str) -> Result<device::Tokens, RefreshError> {
    let client = client_for(issuer).map_err(RefreshError::Failed)?;
    let ep = device::discover(&client, issuer).map_err(RefreshError::Failed)?;
    device::refresh(&client, issuer, &ep, refresh_token)
}

/// Fills `req.id_tokens`.
pub fn attach_tokens(req: &mut Request) -> Result<(), String> {
    req.id_tokens.clear();
    if let Some(ci) = ci_token()? {
        req.id_tokens.push(ci);
        return Ok(());
    }
    // No configuration (or a broken one, which the helper reports): nothing cached to send.
    let Ok(cfg) = config() else { return Ok(()) };
    if cfg.issuers.is_empty() {
        return Ok(());
    }
    let cache = match TokenCache::open(false) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(()),
        Err(e) => {
            eprintln_safe!("lpexec: warning: token cache: {e}");
            return Ok(());
        }
    };
    let now = now_unix();
    for issuer in &cfg.issuers {
        if let Some(token) = usable(&cache, issuer, now) {
            req.id_tokens.push(Presented {
                issuer: Some(issuer.name.clone()),
                token,
                from: TokenSource::Cache,
            });
        }
    }
    Ok(())
}

/// What to do after the helper refused with a response.
pub enum Next {
    Retry,
    Exit(i32),
}

/// The helper said the run needs an identity: log in (once) when interactive, else explain.
pub fn on_identity_required(
    response: &[u8],
    req: &Request,
    non_interactive: bool,
    tried_login: bool,
) -> Next {
    let Ok(HelperResponse { identity_required: Some(need), .. }) =
        serde_json::from_slice::<HelperResponse>(response)
    else {
        return Next::Exit(125);
    };
    let name = printable(&need.issuer, 64);
    let command = crate::common::quote::join(&req.argv);
    let ci = req.id_tokens.iter().any(|t| t.from != TokenSource::Cache);
    let interactive = !non_interactive && term::is_tty(fd::stdio(0));
    if need.device_flow && interactive && !tried_login && !ci {
        let cfg = match config() {
            Ok(c) => c,
            Err(e) => return Next::Exit(super::fail(&e)),
        };
        let Some(issuer) = cfg.issuer(&need.issuer) else {
            return Next::Exit(super::fail(&format!("issuer {name} is not configured")));
        };
        eprintln_safe!("lpexec: {command} needs your identity from {name}; logging in");
        return match login_issuer(issuer) {
            Ok(()) => Next::Retry,
            Err(code) => Next::Exit(code),
        };
    }
    if !need.device_flow {
        eprintln_safe!(
            "lpexec: {command} needs an identity from issuer {name}, which issues machine tokens only\nset LPEXEC_ID_TOKEN (or LPEXEC_ID_TOKEN_FILE) to an ID token from {name}"
        );
    } else if tried_login {
        eprintln_safe!("lpexec: {command} still needs an identity from issuer {name} after logging in");
    } else {
        let why = if ci {
            ", and the CI token presented is not from it"
        } else if non_interactive {
            " (-n: no login was started)"
        } else {
            "; without a terminal lpexec cannot start a login"
        };
        eprintln_safe!(
            "lpexec: {command} needs an identity from issuer {name}{why}\nlog in with: lpexec login {name}"
        );
    }
    Next::Exit(125)
}

struct TerminalWaiter;

impl Waiter for TerminalWaiter {
    fn sleep(&mut self, d: Duration) -> bool {
        let end = std::time::Instant::now() + d;
        while !interrupt::interrupted() {
            let now = std::time::Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(100)));
        }
        false
    }
    fn cancelled(&self) -> bool {
        interrupt::interrupted()
    }
}

fn qr(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// The device flow for one issuer, ending with the tokens cached. `Err` is the exit status
/// (the message is already printed).
fn login_issuer(issuer: &Issuer) -> Result<(), i32> {
    let fail = |m: &str| super::fail(m);
    let cache = TokenCache::open(true)
        .map_err(|e| fail(&format!("token cache: {e}")))?
        .ok_or_else(|| fail("token cache missing"))?;
    let client =
        client_for(issuer).map_err(|e| fail(&format!("cannot reach issuer {}: {e}", issuer.name)))?;
    let ep: Endpoints = device::discover(&client, issuer).map_err(|e| fail(&e))?;
    let auth = device::start(&client, issuer, &ep).map_err(|e| fail(&e))?;
    // Catch Ctrl-C before saying it cancels.
    interrupt::catch();
    let uri = printable(&auth.verification_uri, 500);
    let code = printable(&auth.user_code, 64);
    eprintln_safe!("lpexec: to log in to {}, open {uri} and enter the code {code}", issuer.name);
    if term::is_tty(fd::stdio(2)) {
        let target = auth.verification_uri_complete.as_deref().unwrap_or(&auth.verification_uri);
        if let Some(c) = &auth.verification_uri_complete {
            eprintln_safe!("  or open {} (the code is filled in), or scan:", printable(c, 500));
        }
        if let Some(q) = qr(target) {
            crate::common::out::err(&format!("{q}\n"));
        }
    }
    eprintln_safe!(
        "lpexec: waiting for the login to complete (the code is valid for {}s; Ctrl-C cancels)",
        auth.expires_in
    );
    let result = device::wait_for_tokens(&client, issuer, &ep, &auth, &mut TerminalWaiter);
    interrupt::release();
    let tokens = match result {
        Ok(t) => t,
        Err(DeviceError::Cancelled) => {
            eprintln_safe!("lpexec: login cancelled; nothing was cached");
            return Err(130);
        }
        Err(e @ (DeviceError::Denied | DeviceError::Expired | DeviceError::TimedOut(_))) => {
            return Err(fail(&format!(
                "login to {} failed: {e}\nstart again with: lpexec login {}",
                issuer.name, issuer.name
            )));
        }
        Err(e) => return Err(fail(&format!("login to {} failed: {e}", issuer.name))),
    };
    // The token came straight from the token endpoint over TLS; the helper verifies it fully
    // on use. Check here only that it is meant for us, so a misconfiguration shows now.
    let claims = jwt::peek_claims(&tokens.id_token).unwrap_or_default();
    if let Err(e) = jwt::check_issuer(&claims, &issuer.url) {
        return Err(fail(&format!("issuer {} returned an unusable ID token: {e}", issuer.name)));
    }
    let entry = Entry::new(
        &issuer.name,
        &issuer.url,
        &issuer.client_id,
        tokens.id_token,
        tokens.refresh_token,
        now_unix(),
    );
    cache.save(&entry).map_err(|e| fail(&format!("cannot cache the tokens: {e}")))?;
    let who = describe(&entry);
    eprintln_safe!("lpexec: logged in to {} as {who}", issuer.name);
    Ok(())
}

fn claim_str(c: &serde_json::Map<String, serde_json::Value>, k: &str) -> Option<String> {
    c.get(k).and_then(serde_json::Value::as_str).map(|s| printable(s, 200))
}

fn groups_of(c: &serde_json::Map<String, serde_json::Value>, claim: &str) -> Vec<String> {
    match c.get(claim) {
        Some(serde_json::Value::Array(a)) => {
            a.iter().filter_map(|v| v.as_str()).map(|s| printable(s, 100)).collect()
        }
        Some(serde_json::Value::String(s)) => vec![printable(s, 100)],
        _ => Vec::new(),
    }
}

fn describe(e: &Entry) -> String {
    let c = e.claims();
    let who = claim_str(&c, "email").or_else(|| claim_str(&c, "sub")).unwrap_or_else(|| "?".into());
    let groups = groups_of(&c, "groups");
    if groups.is_empty() { who } else { format!("{who} (groups: {})", groups.join(", ")) }
}

/// `lpexec login [ISSUER]`.
pub fn login(name: Option<String>) -> i32 {
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => return super::fail(&format!("cannot load the configuration: {e}")),
    };
    let issuer = match &name {
        Some(n) => match cfg.issuer(n) {
            Some(i) => i,
            None => {
                let known: Vec<&str> = cfg.issuer_names().into_iter().collect();
                return super::fail(&format!(
                    "no issuer named {:?} in {} (configured: {})",
                    printable(n, 64),
                    cfg.path.display(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ));
            }
        },
        None => {
            let flow: Vec<&Issuer> = cfg.issuers.iter().filter(|i| i.device_flow).collect();
            match flow.as_slice() {
                [one] => *one,
                [] => {
                    return super::fail(&format!(
                        "no issuer in {} allows logging in (an [[issuer]] with device_flow = true)\nask an administrator to configure one",
                        cfg.path.display()
                    ));
                }
                many => {
                    let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
                    return super::fail(&format!(
                        "several issuers are configured; name one: lpexec login {}",
                        names.join(" | ")
                    ));
                }
            }
        }
    };
    if !issuer.device_flow {
        return super::fail(&format!(
            "issuer {} is configured with device_flow = false (machine tokens only)\nCI jobs pass their ID token in LPEXEC_ID_TOKEN or LPEXEC_ID_TOKEN_FILE",
            issuer.name
        ));
    }
    match login_issuer(issuer) {
        Ok(()) => 0,
        Err(code) => code,
    }
}

/// `lpexec logout [ISSUER]`: forgets the cached tokens (and revokes the refresh token at the
/// issuer when it offers revocation; best effort).
pub fn logout(name: Option<String>) -> i32 {
    let cache = match TokenCache::open(false) {
        Ok(Some(c)) => c,
        Ok(None) => {
            eprintln_safe!("lpexec: not logged in");
            return 0;
        }
        Err(e) => return super::fail(&format!("token cache: {e}")),
    };
    let names = match name {
        Some(n) => vec![n],
        None => match cache.issuers() {
            Ok(n) => n,
            Err(e) => return super::fail(&e),
        },
    };
    if names.is_empty() {
        eprintln_safe!("lpexec: not logged in");
    }
    let cfg = config().ok();
    let mut code = 0;
    for n in names {
        let entry = cache.load(&n).ok().flatten();
        if let (Some(e), Some(issuer)) = (&entry, cfg.as_ref().and_then(|c| c.issuer(&n))) {
            if let Some(rt) = &e.refresh_token {
                let revoked = client_for(issuer)
                    .and_then(|c| device::discover(&c, issuer).map(|ep| (c, ep)))
                    .and_then(|(c, ep)| device::revoke(&c, issuer, &ep, rt));
                if let Err(why) = revoked {
                    eprintln_safe!("lpexec: warning: could not revoke the refresh token at {n}: {why}");
                }
            }
        }
        match cache.remove(&n) {
            Ok(true) => eprintln_safe!("lpexec: logged out of {n}"),
            Ok(false) => eprintln_safe!("lpexec: no cached login for {}", printable(&n, 64)),
            Err(e) => code = super::fail(&e),
        }
    }
    code
}

fn when(t: i64, now: i64) -> String {
    let at = timefmt::Utc::from_system(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)).short();
    if t > now {
        format!("{at} UTC (in {})", duration::human(Duration::from_secs((t - now) as u64)))
    } else {
        format!("{at} UTC ({} ago)", duration::human(Duration::from_secs((now - t) as u64)))
    }
}

fn print_identity(label: &str, token: &str, groups_claim: &str, refreshable: Option<bool>, now: i64) {
    let c = jwt::peek_claims(token).unwrap_or_default();
    println_safe!("{label}");
    if c.is_empty() {
        println_safe!("  (not a readable JWT)");
        return;
    }
    println_safe!("  issuer:   {}", claim_str(&c, "iss").unwrap_or_else(|| "-".into()));
    println_safe!("  subject:  {}", claim_str(&c, "sub").unwrap_or_else(|| "-".into()));
    println_safe!("  email:    {}", claim_str(&c, "email").unwrap_or_else(|| "-".into()));
    let groups = groups_of(&c, groups_claim);
    println_safe!("  groups:   {}", if groups.is_empty() { "-".to_string() } else { groups.join(", ") });
    let exp = c.get("exp").and_then(serde_json::Value::as_i64);
    let state = match (exp, refreshable) {
        (Some(e), Some(true)) if e <= now => "; renewed with the refresh token on next use",
        (Some(e), _) if e <= now => "; expired: log in again",
        _ => "",
    };
    println_safe!("  expires:  {}{state}", exp.map_or("-".to_string(), |e| when(e, now)));
}

/// `lpexec whoami`: the Unix caller and every cached (or CI) identity. The tokens are shown
/// as they are, unverified; the helper verifies them when they are used.
pub fn whoami() -> i32 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    match crate::system::user::caller() {
        Ok((c, _)) => {
            let groups: Vec<String> =
                c.groups.iter().map(|g| g.name.clone().unwrap_or_else(|| g.gid.to_string())).collect();
            println_safe!("unix: {} (uid {}); groups: {}", c.name, c.uid, groups.join(", "));
        }
        Err(e) => return super::fail(&e),
    }
    let cfg = config().ok();
    let groups_claim = |n: &str| {
        cfg.as_ref().and_then(|c| c.issuer(n)).map_or("groups".to_string(), |i| i.groups_claim.clone())
    };
    let mut shown = 0;
    match ci_token() {
        Ok(Some(p)) => {
            print_identity(&format!("ci token ({}):", p.from), &p.token, "groups", None, now);
            shown += 1;
        }
        Ok(None) => {}
        Err(e) => eprintln_safe!("lpexec: warning: {e}"),
    }
    match TokenCache::open(false) {
        Ok(Some(cache)) => {
            for n in cache.issuers().unwrap_or_default() {
                match cache.load(&n) {
                    Ok(Some(e)) => {
                        let configured =
                            cfg.as_ref().and_then(|c| c.issuer(&n)).is_some_and(|i| i.url == e.issuer_url);
                        let label = if configured {
                            format!("{n}:")
                        } else {
                            format!("{n}: (issuer no longer configured as at login; not used)")
                        };
                        print_identity(
                            &label,
                            &e.id_token,
                            &groups_claim(&n),
                            Some(e.refresh_token.is_some()),
                            now,
                        );
                        shown += 1;
                    }
                    Ok(None) => {}
                    Err(err) => eprintln_safe!("lpexec: warning: {err}"),
                }
            }
        }
        Ok(None) => {}
        Err(e) => eprintln_safe!("lpexec: warning: token cache: {e}"),
    }
    if shown == 0 {
        println_safe!("no OIDC identity (log in with: lpexec login)");
    }
    0
}
