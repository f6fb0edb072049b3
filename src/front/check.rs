//! `lpexec check`: validates configuration and policy exactly as the helper would (by
//! default including ownership and mode of the installed files), and runs policy tests.

use std::path::PathBuf;

use super::cli::CheckArgs;
use crate::common::paths;
use crate::helper::load::{self, Access};
use crate::{eprintln_safe, println_safe};

pub fn run(a: &CheckArgs) -> i32 {
    let (cfg_path, cfg_access) = match &a.config {
        Some(p) => (p.clone(), Access::Plain),
        None => (paths::config_file(), Access::Secure),
    };
    let cfg = match load::config(&cfg_path, cfg_access) {
        Ok(c) => {
            let approval = c
                .approval
                .as_ref()
                .map_or("no approval service".to_string(), |ap| format!("approvals at {}", ap.url));
            println_safe!("{}: ok ({} issuer(s), {approval})", cfg_path.display(), c.issuers.len());
            c
        }
        Err(e) => {
            report(&e);
            eprintln_safe!(
                "lpexec: {} is invalid, so the helper refuses every request; policy not checked until it is fixed",
                cfg_path.display()
            );
            return 1;
        }
    };

    let (main, dir, access): (PathBuf, Option<PathBuf>, Access) = match &a.policy {
        Some(p) => (p.clone(), None, Access::Plain),
        None => (paths::policy_file(), Some(paths::policy_dir()), Access::Secure),
    };
    let files = match load::policy_files(&main, dir.as_deref(), access) {
        Ok(f) => f,
        Err(e) => {
            report(&e);
            return 1;
        }
    };
    if files.is_empty() {
        eprintln_safe!(
            "lpexec: warning: no policy files ({} and {}/*.toml are absent): every request will be denied",
            main.display(),
            dir.as_deref().map_or("-".into(), |d| d.display().to_string())
        );
    }
    let issuers: Vec<&str> = cfg.issuers.iter().map(|i| i.name.as_str()).collect();
    let policy = match crate::common::policy::Policy::parse(&files, &issuers) {
        Ok(p) => p,
        Err(d) => {
            let n = d.0.len();
            report(&d.to_string());
            eprintln_safe!(
                "lpexec: the policy has {n} problem{}; the helper refuses every request until {} fixed",
                if n == 1 { "" } else { "s" },
                if n == 1 { "it is" } else { "they are" }
            );
            return 1;
        }
    };
    println_safe!(
        "policy: ok ({} role(s), {} rule(s) in {} file(s))",
        policy.roles.len(),
        policy.rule_count(),
        files.len()
    );

    let Some(test) = &a.test else { return 0 };
    let text = match std::fs::read_to_string(test) {
        Ok(t) => t,
        Err(e) => {
            eprintln_safe!("lpexec: cannot read {}: {e}", test.display());
            return 1;
        }
    };
    match crate::policy::cases::run(&policy, &cfg.secure_path, test, &text) {
        Err(d) => {
            report(&d.to_string());
            1
        }
        Ok(results) => {
            for r in &results {
                println_safe!("{}", r.line);
            }
            let failed = results.iter().filter(|r| !r.passed).count();
            println_safe!("{} case(s): {} passed, {failed} failed", results.len(), results.len() - failed);
            i32::from(failed > 0)
        }
    }
}

fn report(text: &str) {
    for line in text.lines() {
        eprintln_safe!("lpexec: {line}");
    }
}
