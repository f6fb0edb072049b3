//! Accounts and groups from the system databases (through libc's NSS, like every setuid tool).
//!
//! Accounts are keyed by uid everywhere state is kept; names are only ever looked up, never
//! used to build paths (sudo-rs CVE-2023-42456).

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User};

use crate::common::identity::{Caller, GroupRef};
use crate::common::names;
use crate::policy::Target;

/// A passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub home: PathBuf,
    pub shell: PathBuf,
}

impl From<User> for Account {
    fn from(u: User) -> Account {
        Account { uid: u.uid.as_raw(), gid: u.gid.as_raw(), name: u.name, home: u.dir, shell: u.shell }
    }
}

/// Looks up an account by name or `#uid`. Refuses malformed names and the `#-1` class of ids.
pub fn lookup(spec: &str) -> Result<Account, String> {
    let found = match names::parse_numeric_id(spec) {
        Some(Err(e)) => return Err(e),
        Some(Ok(uid)) => User::from_uid(Uid::from_raw(uid)),
        None if names::is_valid_account_name(spec) => User::from_name(spec),
        None => return Err(format!("invalid user name {spec:?}")),
    };
    match found {
        Ok(Some(u)) => Ok(u.into()),
        Ok(None) => Err(format!("unknown user {spec:?}")),
        Err(e) => Err(format!("cannot look up user {spec:?}: {}", e.desc())),
    }
}

pub fn lookup_target(spec: &str) -> Result<Target, String> {
    lookup(spec).map(|a| Target { uid: a.uid, name: a.name })
}

pub fn by_uid(uid: u32) -> Result<Account, String> {
    lookup(&format!("#{uid}"))
}

/// Supplementary groups of an account from the group database (including its primary group).
pub fn group_ids(account: &Account) -> Result<Vec<u32>, String> {
    let name = CString::new(account.name.as_bytes()).map_err(|_| "user name contains NUL".to_string())?;
    nix::unistd::getgrouplist(&name, Gid::from_raw(account.gid))
        .map(|v| v.into_iter().map(Gid::as_raw).collect())
        .map_err(|e| format!("cannot list groups of {}: {}", account.name, e.desc()))
}

/// Group ids with their names (when the group database knows them).
pub fn group_refs(gids: &[u32]) -> Vec<GroupRef> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for &gid in gids {
        if seen.contains(&gid) {
            continue;
        }
        seen.push(gid);
        let name = Group::from_gid(Gid::from_raw(gid)).ok().flatten().map(|g| g.name);
        out.push(GroupRef { gid, name });
    }
    out
}

/// The groups of a named account (for policy tests).
pub fn groups_of_name(name: &str) -> Result<Vec<GroupRef>, String> {
    let a = lookup(name)?;
    Ok(group_refs(&group_ids(&a)?))
}

/// A group's id by name or `#gid`.
pub fn group_id(spec: &str) -> Result<u32, String> {
    match names::parse_numeric_id(spec) {
        Some(Ok(g)) => Ok(g),
        Some(Err(e)) => Err(e),
        None => match Group::from_name(spec) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            Ok(None) => Err(format!("unknown group {spec:?}")),
            Err(e) => Err(format!("cannot look up group {spec:?}: {}", e.desc())),
        },
    }
}

/// The Unix caller: the real uid from the kernel, its passwd entry, and its groups — the
/// process's own (from the kernel) plus the group database's.
pub fn caller() -> Result<(Caller, Account), String> {
    let uid = nix::unistd::getuid().as_raw();
    let account =
        by_uid(uid).map_err(|_| format!("your uid {uid} does not exist in the password database"))?;
    let mut gids: Vec<u32> = vec![nix::unistd::getgid().as_raw()];
    gids.extend(nix::unistd::getgroups().unwrap_or_default().into_iter().map(Gid::as_raw));
    gids.extend(group_ids(&account)?);
    let caller = Caller { uid, name: account.name.clone(), groups: group_refs(&gids) };
    Ok((caller, account))
}
