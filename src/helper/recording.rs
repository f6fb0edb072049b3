//! The helper's side of recording a session: the header from what the helper knows, the
//! host key, and what happens when a recording cannot be made.

use std::time::SystemTime;

use crate::common::config::Config;
use crate::common::identity::Identity;
use crate::common::policy::Role;
use crate::common::{names, paths, timefmt};
use crate::exec::SessionInfo;
use crate::record::asciicast::{Header, Meta};
use crate::record::mask::MaskSet;
use crate::record::recorder::{self, Options, Placement, Recorder};
use crate::record::seal;
use crate::system::user::Account;

/// What the recording header says about the session.
pub struct About<'a> {
    pub session: &'a str,
    pub identity: &'a Identity,
    pub role: &'a Role,
    pub target: &'a Account,
    pub cwd: &'a str,
    pub command: &'a str,
    pub command_path: &'a str,
    pub argv: &'a [String],
    pub reason: Option<&'a str>,
    pub approval: Option<&'a super::approval::Approved>,
    pub caller_env: &'a [(String, String)],
    pub info: &'a SessionInfo,
    pub started: SystemTime,
}

pub fn host() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

pub fn header(a: &About<'_>, cfg: &Config, masks: Option<&MaskSet>) -> Header {
    let mask = |s: &str| masks.map_or_else(|| s.to_string(), |m| m.mask_text(s));
    let mut env = std::collections::BTreeMap::new();
    if let Some((_, t)) = a.caller_env.iter().rev().find(|(k, v)| k == "TERM" && names::is_sane_term(v)) {
        env.insert("TERM".to_string(), t.clone());
    }
    env.insert("SHELL".to_string(), a.target.shell.display().to_string());
    let host = host();
    Header {
        version: 2,
        width: a.info.cols,
        height: a.info.rows,
        timestamp: timefmt::unix_secs(a.started),
        command: Some(mask(a.command)),
        title: Some(format!("{}@{host}: {} (as {})", a.identity.caller.name, mask(a.command), a.target.name)),
        env,
        lpexec: Some(Meta {
            session: a.session.to_string(),
            host,
            user: a.identity.caller.name.clone(),
            uid: a.identity.caller.uid,
            identity: a.identity.oidc.iter().map(|o| o.display()).collect(),
            role: a.role.name.clone(),
            target: a.target.name.clone(),
            target_uid: a.target.uid,
            cwd: a.cwd.to_string(),
            command_path: a.command_path.to_string(),
            argv: a.argv.iter().map(|x| mask(x)).collect(),
            reason: a.reason.map(mask),
            approval: a.approval.map(|x| x.id.clone()),
            approvers: a.approval.map(|x| x.approvers.clone()).unwrap_or_default(),
            streams: if a.info.uses_pty { "pty".into() } else { "pipes".into() },
            record_input: cfg.recording.record_input,
        }),
    }
}

/// A recording in progress and the key that will seal it.
pub struct Active<'m> {
    pub recorder: Recorder<'m>,
    pub key: ed25519_dalek::SigningKey,
}

/// Starts recording: host key (created on first use), published public key, the date
/// directory, the file with its header.
pub fn start<'m>(a: &About<'_>, cfg: &Config, masks: Option<&'m MaskSet>) -> Result<Active<'m>, String> {
    let key = seal::host_key(std::path::Path::new(paths::STATE_DIR))?;
    recorder::publish_key(&cfg.recording, &key)?;
    let place = Placement::prepare(&cfg.recording, a.session)?;
    let opts = Options {
        masks,
        mask_live: a.role.mask_live,
        record_input: cfg.recording.record_input,
        on_error: cfg.recording.on_error,
    };
    let recorder = Recorder::create(place, &header(a, cfg, masks), opts, a.started)?;
    Ok(Active { recorder, key })
}
