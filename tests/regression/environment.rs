//! The environment and what the helper loads: CVE-2023-22809 (editor variables),
//! CVE-2014-9680 (TZ paths), bash function exports, hostile locales, and CVE-2025-32463
//! (nothing loaded from roots the caller controls).

use crate::harness::*;

#[test]
fn cve_2023_22809_editor_variables_never_reach_the_command() {
    let sb = Sandbox::new("reg-editor");
    sb.policy(&dev_policy(&allow("env")));
    let evil = "vi -- /etc/shadow";
    let o = sb.lp_env(
        ALICE,
        &[
            ("EDITOR", evil),
            ("VISUAL", evil),
            ("SUDO_EDITOR", evil),
            ("GIT_EDITOR", evil),
            ("PAGER", evil),
            ("GIT_SSH_COMMAND", "touch /tmp/x"),
        ],
        &["env"],
    );
    o.assert_code(0);
    for k in ["EDITOR", "VISUAL", "SUDO_EDITOR", "GIT_EDITOR", "PAGER", "GIT_SSH_COMMAND"] {
        assert!(!o.stdout.contains(&format!("{k}=")), "{k} reached the command:\n{}", o.stdout);
    }
    // and a policy cannot pass them on
    sb.policy(&format!("{}env_keep = [\"EDITOR\"]\n{}", dev_policy(""), allow("env")));
    let o = sb.lp(ALICE, &["env"]);
    o.assert_code(125);
    assert!(o.stderr.contains("env_keep entry \"EDITOR\" is dangerous"), "{}", o.stderr);
}

#[test]
fn cve_2014_9680_tz_paths_are_dropped_even_when_tz_is_kept() {
    let sb = Sandbox::new("reg-tz");
    sb.policy(&format!("{}env_keep = [\"TZ\", \"NODE_ENV\"]\n{}", dev_policy(""), allow("env")));
    for evil in ["/etc/shadow", ":/etc/shadow", "../../../../etc/shadow", "Europe/../../etc/shadow"] {
        let o = sb.lp_env(ALICE, &[("TZ", evil)], &["env"]);
        o.assert_code(0);
        assert!(!o.stdout.contains("TZ="), "TZ={evil} reached the command");
    }
    let o = sb.lp_env(ALICE, &[("TZ", "Europe/Paris")], &["env"]);
    assert!(o.stdout.contains("TZ=Europe/Paris\n"), "{}", o.stdout);
}

#[test]
fn bash_function_exports_never_reach_the_command() {
    let sb = Sandbox::new("reg-bashfunc");
    sb.policy(&format!("{}env_keep = [\"NODE_ENV\"]\n{}", dev_policy(""), allow("bash")));
    let o = sb.lp_env(
        ALICE,
        &[("BASH_FUNC_id%%", "() { echo PWNED; }"), ("NODE_ENV", "() { :; }; echo PWNED")],
        &["bash", "-c", "id -u; env | grep -c NODE_ENV || true"],
    );
    o.assert_code(0);
    assert!(!o.stdout.contains("PWNED"), "{}", o.stdout);
    assert_eq!(o.stdout, "0\n0\n");
}

#[test]
fn hostile_locale_settings_are_ignored() {
    let sb = Sandbox::new("reg-locale");
    sb.policy(&dev_policy(&allow("env")));
    let evil_dir = sb.dir.join("evil-locale");
    std::fs::create_dir_all(&evil_dir).unwrap();
    let d = evil_dir.display().to_string();
    let o = sb.lp_env(
        ALICE,
        &[
            ("LC_ALL", "../../../../tmp/evil"),
            ("LANG", "../x"),
            ("LOCPATH", &d),
            ("NLSPATH", &d),
            ("LANGUAGE", "../../y"),
        ],
        &["env"],
    );
    o.assert_code(0);
    for k in ["LC_ALL=", "LANG=", "LOCPATH=", "NLSPATH=", "LANGUAGE="] {
        assert!(!o.stdout.contains(k), "{k} reached the command");
    }
    let o = sb.lp_env(ALICE, &[("LC_ALL", "C.UTF-8")], &["env"]);
    assert!(o.stdout.contains("LC_ALL=C.UTF-8\n"));
}

#[test]
fn cve_2025_32463_nothing_is_loaded_from_roots_the_caller_controls() {
    // A fake root in a directory the caller owns, with an nsswitch.conf naming an NSS module
    // whose constructor leaves a marker. sudo's --chroot loaded it; lpexec has no chroot, reads
    // /etc with absolute paths, and ignores the loader variables that would find the module.
    let sb = Sandbox::new("reg-nss");
    sb.policy(&dev_policy(&allow("id")));
    let marker = sb.dir.join("nss-marker");
    let root = sb.dir.join("fakeroot");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::write(root.join("etc/nsswitch.conf"), "passwd: evil\ngroup: evil\n").unwrap();
    let src = sb.dir.join("evil.c");
    std::fs::write(&src, format!("#include <stdio.h>\n__attribute__((constructor)) static void f(void) {{ FILE *m = fopen(\"{}\", \"w\"); if (m) fclose(m); }}\n", marker.display())).unwrap();
    let lib = root.join("lib/libnss_evil.so.2");
    let o = output_within(
        std::process::Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src),
        COMMAND_LIMIT,
    );
    assert!(o.status.success(), "gcc (apt install gcc) builds the bait module: {o:?}");
    must_sh(&format!("chmod -R a+rX '{}'; chmod 777 '{}'", root.display(), sb.dir.display()));
    let libdir = root.join("lib").display().to_string();
    let o = sb.run(
        ALICE,
        &[("LD_LIBRARY_PATH", &libdir), ("LD_PRELOAD", &lib.display().to_string())],
        &[
            "sh",
            "-c",
            &format!("cd '{}' && LPEXEC_HELPER=$LPEXEC_HELPER {} id -u", root.display(), sb.lpexec()),
        ],
    );
    // The unprivileged front end may load what the caller preloads (it is the caller's own
    // process); the setuid helper must not, and nothing runs with the fake nsswitch.conf.
    assert_eq!(o.stdout.trim(), "0", "{o:?}");
    let _ = std::fs::remove_file(&marker);
    let o = sb.run(ALICE, &[], &["sh", "-c", &format!("cd '{}' && {} id -u", root.display(), sb.lpexec())]);
    assert_eq!(o.stdout.trim(), "0", "{o:?}");
    assert!(!marker.exists(), "the bait NSS module was loaded");
}
