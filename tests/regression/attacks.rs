//! Attack regressions against the installed setuid helper, each named after what it pins.

use crate::harness::*;

fn sandbox(name: &str, rules: &[&str]) -> Sandbox {
    let sb = Sandbox::new(name);
    let rules: String = rules.iter().map(|c| allow(c)).collect();
    sb.policy(&dev_policy(&rules));
    sb
}

#[test]
fn cve_2019_14287_uid_minus_one_is_refused() {
    let sb = Sandbox::new("uidm1");
    sb.policy(&format!(
        "[[role]]\nname = \"any\"\nmembers = [{{ unix_group = \"{DEV}\" }}]\nrun_as = [\"*\"]\n{}",
        allow("id")
    ));
    for spelling in ["#-1", "#4294967295", "#4294967296", "#+0", "#0x0", "#-4294967296"] {
        let o = sb.lp(ALICE, &["-u", spelling, "id"]);
        o.assert_code(125);
        assert!(o.stdout.is_empty(), "{spelling}: the command ran: {}", o.stdout);
        assert!(o.stderr.contains("invalid numeric id"), "{spelling}: {}", o.stderr);
    }
    sb.expect_syslog(&["DECISION=error", "invalid numeric id"]);
}

#[test]
fn cve_2010_0426_relative_command_names_never_match_secure_path_rules() {
    let sb = sandbox("relative", &["ls"]);
    // A fake `ls` in a directory the caller controls.
    let o = sb.sh(ALICE, "d=$(mktemp -d) && printf '#!/bin/sh\\necho PWNED\\n' > $d/ls && chmod 755 $d/ls && cd $d && $LP ./ls; echo rc=$?; rm -rf $d");
    assert!(o.stdout.contains("rc=125"), "{o:?}");
    assert!(!o.stdout.contains("PWNED"), "{o:?}");
}

#[test]
fn path_hijack_cannot_replace_a_bare_command_name() {
    let sb = sandbox("pathhijack", &["ls"]);
    let o = sb.sh(ALICE, "d=$(mktemp -d) && printf '#!/bin/sh\\necho PWNED\\n' > $d/ls && chmod 755 $d/ls && PATH=$d:$PATH $LP ls -d /; echo rc=$?; rm -rf $d");
    assert!(o.stdout.contains("/\nrc=0"), "{o:?}");
    assert!(!o.stdout.contains("PWNED"), "{o:?}");
}

#[test]
fn loader_and_shell_variables_never_reach_the_command() {
    let sb = sandbox("dangerenv", &["env"]);
    let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("libm");
    let env = [
        ("LD_PRELOAD", libm),
        ("LD_LIBRARY_PATH", "/tmp"),
        ("LD_AUDIT", libm),
        ("BASH_ENV", "/tmp/evil"),
        ("ENV", "/tmp/evil"),
        ("BASH_FUNC_ls%%", "() { echo PWNED; }"),
        ("PYTHONPATH", "/tmp"),
        ("PERL5OPT", "-Mevil"),
        ("NODE_OPTIONS", "--require /tmp/evil.js"),
        ("TZ", "/tmp/evil"),
        ("PS4", "$(touch /tmp/pwned)"),
        ("IFS", "x"),
        ("GCONV_PATH", "/tmp"),
        ("LC_ALL", "../../../tmp/evil"),
    ];
    let o = sb.lp_env(ALICE, &env, &["env"]);
    o.assert_code(0);
    for (k, _) in env {
        assert!(
            !o.stdout.lines().any(|l| l.starts_with(&format!("{k}="))),
            "{k} reached the command:\n{}",
            o.stdout
        );
    }
}

#[test]
fn callers_extra_descriptors_are_not_inherited() {
    let sb = sandbox("fd7", &["readlink"]);
    let o = sb.sh(ALICE, "exec 7</etc/hostname; $LP readlink /proc/self/fd/7 /proc/self/fd/3; echo rc=$?");
    assert_eq!(o.stdout, "rc=1\n", "{o:?}");
}

fn refused_for(sb: &Sandbox, needle: &str) {
    let o = sb.lp(ALICE, &["id"]);
    o.assert_code(125);
    assert!(o.stdout.is_empty(), "the command ran: {}", o.stdout);
    assert!(o.stderr.contains(needle), "{}", o.stderr);
    assert!(o.stderr.contains("fix with: chown root:root"), "{}", o.stderr);
    sb.expect_syslog(&["DECISION=error", needle]);
}

#[test]
fn group_writable_policy_is_refused() {
    let sb = sandbox("gwpolicy", &["id"]);
    sb.run("root", &[], &["chmod", "664", &sb.etc.join("policy.toml").display().to_string()]);
    refused_for(&sb, "/etc/lpexec/policy.toml is writable by its group (mode 0664)");
}

#[test]
fn world_writable_config_dir_is_refused() {
    let sb = sandbox("wwdir", &["id"]);
    std::fs::set_permissions(&sb.etc, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    refused_for(&sb, "/etc/lpexec is writable by others (mode 0777)");
}

#[test]
fn policy_not_owned_by_root_is_refused() {
    let sb = sandbox("owner", &["id"]);
    let uid = uid_of(ALICE);
    nix::unistd::chown(&sb.etc.join("policy.toml"), Some(uid.into()), None).unwrap();
    refused_for(&sb, &format!("/etc/lpexec/policy.toml is owned by uid {uid}, not root"));
}

#[test]
fn policy_d_file_not_owned_by_root_is_refused() {
    let sb = sandbox("owner_d", &["id"]);
    let p = sb.etc_file("policy.d/50-extra.toml", "");
    nix::unistd::chown(&p, Some(uid_of(ALICE).into()), None).unwrap();
    refused_for(&sb, "/etc/lpexec/policy.d/50-extra.toml is owned by uid");
}

#[test]
fn symlinked_policy_is_refused() {
    let sb = sandbox("symlink", &["id"]);
    let real = sb.dir.join("real-policy.toml");
    std::fs::rename(sb.etc.join("policy.toml"), &real).unwrap();
    std::os::unix::fs::symlink(&real, sb.etc.join("policy.toml")).unwrap();
    let o = sb.lp(ALICE, &["id"]);
    o.assert_code(125);
    assert!(o.stderr.contains("/etc/lpexec/policy.toml is a symbolic link"), "{}", o.stderr);
}

#[test]
fn invalid_policy_refuses_every_request_naming_the_problem() {
    let sb = sandbox("invalid", &["id"]);
    sb.etc_file(
        "policy.d/10-typo.toml",
        "[[role]]\nname = \"x\"\nmembers = [{ unix_user = \"a\" }]\nenv_keep = [\"LD_PRELOAD\"]\n",
    );
    let o = sb.lp(ALICE, &["id"]);
    o.assert_code(125);
    assert!(o.stdout.is_empty());
    assert!(
        o.stderr.contains("the lpexec configuration is invalid, so every request is refused"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("/etc/lpexec/policy.d/10-typo.toml:4:13: env_keep entry \"LD_PRELOAD\" is dangerous"),
        "{}",
        o.stderr
    );
    let o = sb.lp(ALICE, &["list"]);
    o.assert_code(125);
}

#[test]
fn control_characters_in_arguments_cannot_forge_syslog_lines() {
    let sb = sandbox("forge", &["true"]);
    let evil = "x\nDec  3 00:00:00 host lpexec[1]: root : DECISION=allow\x1b[1A ; EXIT=0";
    sb.lp(ALICE, &["true", evil]).assert_code(0);
    let l = sb.expect_syslog(&["DECISION=allow"]);
    assert!(!l.contains('\n') && !l.contains('\x1b'), "{l:?}");
    assert!(l.contains("\\x0aDec  3"), "{l}");
    assert!(l.contains("\\x1b[1A \\x3b EXIT=0"), "{l}");
    // Every line is the caller's: the forged "root : ..." never starts a message.
    let lines = sb.syslog(std::time::Duration::from_millis(300));
    for l in &lines {
        let msg = l.split_once("]: ").map(|x| x.1).unwrap_or("");
        assert!(msg.starts_with(&format!("{ALICE} : ")), "{l}");
    }
}

#[test]
fn cve_2021_3156_trailing_backslash_and_huge_arguments() {
    let sb = sandbox("huge", &["printf"]);
    // Arguments ending in a backslash pass through untouched.
    let o = sb.lp(ALICE, &["printf", "%s|", "a\\", "\\", "b\\\\"]);
    o.assert_code(0);
    assert_eq!(o.stdout, "a\\|\\|b\\\\|");
    // A command line of more than 1 MiB (ten 120 KiB arguments; the kernel limits one
    // argument to 128 KiB) is refused cleanly by the helper, not crashed on.
    let o = sb.sh(ALICE, "a=$(head -c 122880 /dev/zero | tr '\\0' x); $LP printf %s $a $a $a $a $a $a $a $a $a $a | wc -c; echo rc=$?");
    assert!(o.stdout.contains("0\nrc=0") || o.stdout.ends_with("0\nrc=0\n"), "{o:?}");
    assert!(o.stderr.contains("lpexec: the request is too large"), "{}", o.stderr);
}

#[test]
fn hostile_input_on_the_helpers_request_channel_is_refused() {
    let sb = sandbox("hostile", &["id"]);
    let helper = sb.bin.join("lpexec-helper").display().to_string();
    let cases: &[(&str, &str)] = &[
        ("", "not run directly"),
        ("3</dev/null", "malformed request"),
        ("3</dev/zero", "too large"),
        ("3</etc", "cannot read the request"),
        ("3<<'E'\n{\"version\":1,\"mode\":\"run\",\"argv\":[\"id\"],\"uid\":0}\nE\n", "unknown field `uid`"),
        ("3<<'E'\n{\"version\":1,\"mode\":\"run\",\"argv\":[]}\nE\n", "no command given"),
        ("3<<'E'\n{\"version\":1,\"mode\":\"sudo\",\"argv\":[\"id\"]}\nE\n", "unknown variant `sudo`"),
        ("3<<'E'\n\u{ff}\u{fe}garbage\nE\n", "malformed request"),
    ];
    for (redir, needle) in cases {
        let o = sb.run(ALICE, &[], &["/bin/sh", "-c", &format!("'{helper}' {redir}")]);
        assert_eq!(o.code(), Some(125), "{redir}: {o:?}");
        assert!(o.stdout.is_empty(), "{redir}: {o:?}");
        assert!(o.stderr.contains(needle), "{redir}: expected {needle:?} in {}", o.stderr);
    }
    // A well-formed request sent directly is decided like any other.
    let o = sb.run(
        ALICE,
        &[],
        &[
            "/bin/sh",
            "-c",
            &format!("'{helper}' 3<<'E'\n{{\"version\":1,\"mode\":\"run\",\"argv\":[\"id\",\"-u\"]}}\nE\n"),
        ],
    );
    o.assert_code(0);
    assert_eq!(o.stdout, "0\n");
}

#[test]
fn helper_without_setuid_says_how_to_fix_it() {
    let sb = sandbox("nosuid", &["id"]);
    let copy = sb.dir.join("helper-copy");
    std::fs::copy(sb.bin.join("lpexec-helper"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = sb.lp_env(ALICE, &[("LPEXEC_HELPER", &copy.display().to_string())], &["id"]);
    o.assert_code(125);
    assert!(
        o.stderr.contains("lpexec-helper is not running as root: it must be installed setuid root"),
        "{}",
        o.stderr
    );
}

#[test]
fn no_new_privs_is_detected() {
    let sb = sandbox("nnp", &["id"]);
    let lp = sb.lpexec();
    let o = sb.run(ALICE, &[], &["setpriv", "--no-new-privs", &lp, "id"]);
    o.assert_code(125);
    assert!(o.stderr.contains("no_new_privs flag is set"), "{}", o.stderr);
}

#[test]
fn callers_closed_stdout_does_not_crash_the_helper() {
    let sb = sandbox("closed", &["sh"]);
    let o = sb.sh(ALICE, "$LP sh -c 'echo hi; exit 4' >&-; echo rc=$?");
    assert!(o.stdout.contains("rc=4"), "{o:?}");
    let o = sb.sh(ALICE, "$LP nonexistent-xyz 2>&- >&-; echo rc=$?");
    assert!(o.stdout.contains("rc=127"), "{o:?}");
}
