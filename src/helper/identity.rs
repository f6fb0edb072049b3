//! The helper's identity steps: verify the presented ID tokens (before deciding), and answer
//! "identity required" on the request channel when a denied run would be allowed with an
//! identity the caller has not presented (so the front end can start `lpexec login`).

use std::os::fd::{AsFd, OwnedFd};

use super::log::{self, Level};
use super::{Ctx, Exit, REFUSED};
use crate::common::config::Config;
use crate::common::identity::{Caller, Identity};
use crate::identity::{HelperResponse, IdentityRequired, Presented, now_unix, verify};

/// Verifies every presented token; any failure refuses the request (logged with the reason,
/// never the token).
pub(super) fn verify(
    ctx: &mut Ctx,
    cfg: &Config,
    caller: Caller,
    presented: &[Presented],
) -> Result<Identity, Exit> {
    if presented.is_empty() {
        return Ok(Identity::unix_only(caller));
    }
    match verify::verify_presented(cfg, presented, now_unix()) {
        Ok(oidc) => Ok(Identity { caller, oidc }),
        Err(e) => Err(ctx.refuse(
            &e,
            Some(
                "log in again with `lpexec login ISSUER`, or check the token in LPEXEC_ID_TOKEN / LPEXEC_ID_TOKEN_FILE",
            ),
        )),
    }
}

/// Logs the denial and tells the front end which issuer's identity would help.
pub(super) fn required(
    ctx: &mut Ctx,
    cfg: &Config,
    issuer: &str,
    identity: &Identity,
    target: &str,
    control: &OwnedFd,
) -> Exit {
    let mut f = ctx.fields("-", &identity.display_oidc(), target);
    f.extend([
        ("DECISION", "deny".to_string()),
        ("WHY", format!("an identity from issuer {issuer} is required")),
    ]);
    ctx.log.send(Level::Alert, &log::line(&ctx.caller, &f));
    let device_flow = cfg.issuer(issuer).is_some_and(|i| i.device_flow);
    let resp = HelperResponse {
        identity_required: Some(IdentityRequired { issuer: issuer.to_string(), device_flow }),
        approval_required: None,
    };
    let sent = serde_json::to_vec(&resp)
        .ok()
        .is_some_and(|b| crate::system::fd::write_all(control.as_fd(), &b).is_ok());
    if !sent {
        // No front end listening (or an old one): say it ourselves.
        crate::eprintln_safe!(
            "lpexec: {} needs an identity from issuer {issuer}\nlog in with: lpexec login {issuer}",
            ctx.command
        );
    }
    REFUSED
}
