//! Starting the helper: the request goes over a socket pair installed as the helper's
//! descriptor 3; the helper's exit status (or death by signal) becomes ours.

use std::ffi::{CString, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use nix::sys::socket::{AddressFamily, Shutdown, SockFlag, SockType, shutdown, socketpair};

use crate::common::paths;
use crate::helper::request::{Mode, Request, VERSION};
use crate::identity::HelperResponse;
use crate::system::fd;
use crate::system::process::{self, ChildState};

/// Converts arguments to UTF-8 (policy, logs and recordings are text).
pub fn utf8_args(args: Vec<OsString>) -> Result<Vec<String>, String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string().map_err(|_| {
                format!("argument {} is not valid UTF-8; lpexec only passes UTF-8 command lines", i + 1)
            })
        })
        .collect()
}

/// The helper's path: `LPEXEC_HELPER` (for development builds; harmless, since this process is
/// unprivileged) or the compiled-in location.
fn helper_path() -> std::path::PathBuf {
    std::env::var_os("LPEXEC_HELPER")
        .filter(|p| !p.is_empty())
        .map_or_else(|| paths::HELPER_PATH.into(), Into::into)
}

/// The outcome of one helper invocation.
pub struct HelperResult {
    pub status: ChildState,
    /// What the helper wrote back on the request channel.
    pub response: Vec<u8>,
}

/// Runs the helper once with `req`.
pub fn invoke(req: &Request) -> Result<HelperResult, String> {
    let helper = helper_path();
    let path =
        CString::new(helper.as_os_str().as_bytes()).map_err(|_| "helper path contains NUL".to_string())?;
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| format!("socketpair: {}", e.desc()))?;
    let envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "LPEXEC_ID_TOKEN" && k != "LPEXEC_ID_TOKEN_FILE")
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let pid = process::spawn_with_fd3(&path, std::slice::from_ref(&path), &envp, theirs.as_fd()).map_err(|e| {
        format!(
            "cannot run the helper {}: {}\nreinstall lpexec (the helper must be installed setuid root), or set LPEXEC_HELPER for a development build",
            helper.display(),
            e.desc()
        )
    })?;
    drop(theirs);
    process::forward_signals_to(pid);
    // The helper may refuse before reading everything (an oversized request): then the write
    // fails with EPIPE and the helper's own message and status tell the story.
    let _ = fd::write_all(ours.as_fd(), &req.encode());
    let _ = shutdown(std::os::fd::AsRawFd::as_raw_fd(&ours), Shutdown::Write);
    let response = fd::read_to_end_limited(ours.as_fd(), 4 * 1024 * 1024).unwrap_or_default();
    let status = process::wait_exit(pid).map_err(|e| format!("waiting for the helper: {}", e.desc()))?;
    Ok(HelperResult { status, response })
}

fn request(
    mode: Mode,
    argv: Vec<String>,
    user: Option<String>,
    role: Option<String>,
    reason: Option<String>,
) -> Request {
    Request { version: VERSION, mode, argv, user, role, reason, id_tokens: Vec::new(), approval_token: None }
}

/// `lpexec list` and `lpexec explain`: the helper prints; its status is ours.
pub fn query(mode: Mode, argv: Vec<String>, user: Option<String>, role: Option<String>) -> i32 {
    let mut req = request(mode, argv, user, role, None);
    if let Err(e) = super::identity::attach_tokens(&mut req) {
        return super::fail(&e);
    }
    match invoke(&req) {
        Ok(HelperResult { status: ChildState::Exited(c), .. }) => c,
        Ok(_) => 125,
        Err(e) => super::fail(&e),
    }
}

/// `lpexec COMMAND...`: run it, then exit the way it did. When the helper answers that the
/// run needs an identity, log in (interactive only) and try once more.
pub fn run(
    argv: Vec<String>,
    user: Option<String>,
    role: Option<String>,
    reason: Option<String>,
    non_interactive: bool,
) -> i32 {
    let saved = crate::system::term::get_attrs(fd::stdio(0)).ok();
    let mut req = request(Mode::Run, argv, user, role, reason);
    let mut tried_login = false;
    loop {
        if let Err(e) = super::identity::attach_tokens(&mut req) {
            return super::fail(&e);
        }
        match invoke(&req) {
            Ok(HelperResult { status: ChildState::Exited(125), response }) if !response.is_empty() => {
                if let Ok(HelperResponse { approval_required: Some(need), .. }) =
                    serde_json::from_slice(&response)
                {
                    if req.approval_token.is_some() {
                        return 125; // the helper asked again: do not loop
                    }
                    match super::approval::obtain(&need, &req.id_tokens, non_interactive) {
                        Ok(token) => req.approval_token = Some(token),
                        Err(code) => return code,
                    }
                    continue;
                }
                match super::identity::on_identity_required(&response, &req, non_interactive, tried_login) {
                    super::identity::Next::Retry => tried_login = true,
                    super::identity::Next::Exit(c) => return c,
                }
            }
            Ok(HelperResult { status: ChildState::Exited(c), .. }) => return c,
            Ok(HelperResult { status: ChildState::Signaled(s, _), .. }) => {
                // If the helper was killed while the terminal was raw, put the terminal back.
                if let Some(t) = &saved {
                    let _ = crate::system::term::set_attrs(fd::stdio(0), t);
                }
                process::die_by_signal(s)
            }
            Ok(_) => return 125,
            Err(e) => return super::fail(&e),
        }
    }
}
