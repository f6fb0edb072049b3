//! Who is asking: the Unix caller (from the kernel) and any verified OIDC identities.
//!
//! These are plain data. The helper fills them from `getuid()`, the group database and
//! verified ID tokens; `lpexec check --test` fills them from a test case. The decision engine
//! only ever reads them.

use std::collections::BTreeMap;

/// A group the caller belongs to, by id and (when the group database knows it) by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub gid: u32,
    pub name: Option<String>,
}

/// The Unix caller: the real uid of the process that ran lpexec, never a value from input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub name: String,
    pub groups: Vec<GroupRef>,
}

impl Caller {
    pub fn in_group(&self, spec: &str) -> bool {
        match crate::common::names::parse_numeric_id(spec) {
            Some(Ok(gid)) => self.groups.iter().any(|g| g.gid == gid),
            Some(Err(_)) => false,
            None => self.groups.iter().any(|g| g.name.as_deref() == Some(spec)),
        }
    }

    pub fn is_user(&self, spec: &str) -> bool {
        match crate::common::names::parse_numeric_id(spec) {
            Some(Ok(uid)) => self.uid == uid,
            Some(Err(_)) => false,
            None => self.name == spec,
        }
    }
}

/// An OIDC identity whose ID token the helper (or the approval service) has verified.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcIdentity {
    /// The configured issuer name (`[[issuer]] name`), not the `iss` URL.
    pub issuer: String,
    pub iss: String,
    pub sub: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// Every claim of the token, for `claims = { ... }` members.
    pub claims: BTreeMap<String, serde_json::Value>,
}

impl OidcIdentity {
    /// `corp:alice@example.com` (or the subject when there is no email), as in syslog `ID=`.
    pub fn display(&self) -> String {
        format!("{}:{}", self.issuer, self.email.as_deref().unwrap_or(&self.sub))
    }
}

/// Everything known about the requester.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub caller: Caller,
    pub oidc: Vec<OidcIdentity>,
}

impl Identity {
    pub fn unix_only(caller: Caller) -> Identity {
        Identity { caller, oidc: Vec::new() }
    }

    pub fn oidc_for(&self, issuer: &str) -> Option<&OidcIdentity> {
        self.oidc.iter().find(|o| o.issuer == issuer)
    }

    /// The `ID=` value for logs: every verified identity, or `-`.
    pub fn display_oidc(&self) -> String {
        if self.oidc.is_empty() {
            return "-".to_string();
        }
        self.oidc.iter().map(OidcIdentity::display).collect::<Vec<_>>().join(",")
    }
}
