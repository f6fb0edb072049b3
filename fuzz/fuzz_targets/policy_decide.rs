//! Policy parsing and the decision over any policy that parses: no panic, and the verdict is
//! always one of the three, with a rule exactly when it should have one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lpexec::common::identity::{Caller, GroupRef, Identity};
use lpexec::common::policy::Policy;
use lpexec::policy::{Request, Target, Verdict, World, decide};
use std::path::{Path, PathBuf};

struct Fake;
impl World for Fake {
    fn resolve_name(&self, name: &str) -> Option<PathBuf> {
        (!name.is_empty() && !name.contains('/')).then(|| PathBuf::from(format!("/usr/bin/{name}")))
    }
    fn canonicalize(&self, p: &Path) -> Option<PathBuf> {
        Some(p.to_path_buf())
    }
    fn sha256(&self, _: &Path) -> Option<[u8; 32]> {
        Some([0; 32])
    }
    fn lookup_user(&self, spec: &str) -> Option<Target> {
        Some(Target { uid: if spec == "root" { 0 } else { 1000 }, name: spec.to_string() })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(p) = Policy::parse(&[(PathBuf::from("/p.toml"), text.to_string())], &["corp"]) else { return };
    let id = Identity::unix_only(Caller {
        uid: 1000,
        name: "alice".into(),
        groups: vec![GroupRef { gid: 100, name: Some("dev".into()) }],
    });
    for (cmd, args) in [("/usr/bin/ls", vec![]), ("/usr/bin/npm", vec!["publish".to_string(), "a b".into()])]
    {
        let req =
            Request { command: Path::new(cmd), args: &args, cwd: Path::new("/"), target: None, role: None };
        let d = decide(&p, &id, &req, &Fake);
        match d.verdict {
            Verdict::Allow => assert!(d.rule.is_some() && d.reason.is_none()),
            Verdict::Approve => assert!(!d.approvals.is_empty()),
            Verdict::Deny => assert!(d.reason.is_some()),
        }
    }
});
