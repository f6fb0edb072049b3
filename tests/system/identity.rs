//! Identity end to end (SPEC §6): the device flow against a real OIDC provider, the token
//! cache, refresh, CI tokens, and the helper's verification of every token, including
//! hostile ones. Each test runs its own provider (`idp::Idp`).

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;
use crate::idp::*;

/// Alice is in no Unix role: only her corp identity in group sre lets her run `id`.
fn oidc_policy() -> String {
    format!(
        "[[role]]\nname = \"sre\"\nmembers = [{{ issuer = \"corp\", groups = [\"sre\"] }}]\nrun_as = [\"root\"]\n{}{}",
        allow("id"),
        allow("env")
    )
}

fn sandbox(name: &str, idp: &Idp, extra_config: &str) -> (Sandbox, String) {
    let sb = Sandbox::new(name);
    sb.config(&format!("{}{extra_config}", issuer_toml("corp", &idp.issuer, "")));
    sb.policy(&oidc_policy());
    let cache = cache_home(&sb, ALICE).display().to_string();
    (sb, cache)
}

#[test]
fn login_caches_tokens_privately_and_an_oidc_member_runs_the_command() {
    let idp = Idp::start(&[("IDP_DEVICE_INTERVAL", "1")]);
    let (sb, cache) = sandbox("oidc-e2e", &idp, "");
    let env = [("XDG_CACHE_HOME", cache.as_str())];

    // Without an identity: refused, naming the login to do (no terminal: no login started).
    let o = sb.lp_env(ALICE, &env, &["id"]);
    o.assert_code(125);
    assert!(o.stderr.contains("needs an identity from issuer corp"), "{}", o.stderr);
    assert!(o.stderr.contains("log in with: lpexec login corp"), "{}", o.stderr);
    sb.expect_syslog(&["DECISION=deny", "WHY=an identity from issuer corp is required"]);

    // The device flow, completed in the provider's own pages.
    let o = login(&sb, &idp, ALICE, &env, "alice");
    o.assert_code(0);
    assert!(o.stderr.contains(&format!("open {}/device and enter the code", idp.issuer)), "{}", o.stderr);
    assert!(o.stderr.contains("logged in to corp as alice@example.com (groups: sre, dev)"), "{}", o.stderr);
    assert!(!o.stderr.contains("scan"), "no QR code without a terminal: {}", o.stderr);

    // The cache: 0700 directory, 0600 file, both alice's; refresh token kept.
    let dir = std::path::Path::new(&cache).join("lpexec");
    let file = dir.join("corp.json");
    let uid = uid_of(ALICE);
    assert_eq!(mode_owner(&dir).0, 0o700);
    assert_eq!(mode_owner(&dir).1, uid);
    assert_eq!(mode_owner(&file).0, 0o600);
    assert_eq!(mode_owner(&file).1, uid);
    let cached: serde_json::Value = serde_json::from_str(&read(&file)).unwrap();
    assert!(cached["refresh_token"].is_string(), "{cached}");
    let id_token = cached["id_token"].as_str().unwrap().to_string();

    // The run the identity allows, as root, logged with the identity and never the token.
    let o = sb.lp_env(ALICE, &env, &["id", "-u"]);
    o.assert_code(0);
    assert_eq!(o.stdout.trim(), "0");
    let l = sb.expect_syslog(&["DECISION=allow", "ID=corp:alice@example.com"]);
    assert!(l.contains(&format!("{ALICE} : ROLE=sre ; ID=corp:alice@example.com ; ")), "{l}");
    for line in sb.syslog(Duration::from_millis(200)) {
        assert!(!line.contains(&id_token[..40]), "a token reached syslog: {line}");
    }
    // The token is not in the command's environment either.
    let o = sb.lp_env(ALICE, &env, &["env"]);
    o.assert_code(0);
    assert!(!o.stdout.contains(&id_token[..40]) && !o.stdout.contains("LPEXEC_ID_TOKEN"), "{}", o.stdout);

    // The helper cached the issuer's keys root-owned in the state directory.
    let jwks = sb.state.join("jwks");
    assert_eq!(mode_owner(&jwks), (0o700, 0, 0));
    assert_eq!(mode_owner(&jwks.join("corp.json")), (0o600, 0, 0));
    let fetched = idp.stats()["jwks"].as_u64().unwrap();
    sb.lp_env(ALICE, &env, &["id"]).assert_code(0);
    assert_eq!(idp.stats()["jwks"].as_u64().unwrap(), fetched, "keys must come from the cache");

    // whoami shows the Unix caller and the identity.
    let o = sb.lp_env(ALICE, &env, &["whoami"]);
    o.assert_code(0);
    assert!(o.stdout.starts_with(&format!("unix: {ALICE} (uid {uid}); groups: ")), "{}", o.stdout);
    for want in [
        "corp:",
        &format!("issuer:   {}", idp.issuer),
        "subject:  alice",
        "email:    alice@example.com",
        "groups:   sre, dev",
        "expires:  ",
    ] {
        assert!(o.stdout.contains(want), "{want:?} missing:\n{}", o.stdout);
    }

    // logout forgets it.
    let o = sb.lp_env(ALICE, &env, &["logout"]);
    o.assert_code(0);
    assert!(o.stderr.contains("logged out of corp"), "{}", o.stderr);
    assert!(!file.exists());
    sb.lp_env(ALICE, &env, &["id"]).assert_code(125);
    let o = sb.lp_env(ALICE, &env, &["whoami"]);
    assert!(o.stdout.contains("no OIDC identity"), "{}", o.stdout);
}

#[test]
fn an_expired_id_token_is_renewed_silently_with_the_refresh_token() {
    // Ed25519-signed ID tokens that live 3 seconds.
    let idp =
        Idp::start(&[("IDP_DEVICE_INTERVAL", "1"), ("IDP_ID_TOKEN_TTL", "3"), ("IDP_ID_TOKEN_ALG", "EdDSA")]);
    let (sb, cache) = sandbox("oidc-refresh", &idp, "");
    let env = [("XDG_CACHE_HOME", cache.as_str())];
    login(&sb, &idp, ALICE, &env, "alice").assert_code(0);
    let file = std::path::Path::new(&cache).join("lpexec/corp.json");
    let before: serde_json::Value = serde_json::from_str(&read(&file)).unwrap();
    std::thread::sleep(Duration::from_secs(4)); // now truly expired
    let tokens_before = idp.stats()["token"].as_u64().unwrap();
    let o = sb.lp_env(ALICE, &env, &["id", "-u"]);
    o.assert_code(0);
    assert!(o.stderr.is_empty(), "the renewal must be silent: {}", o.stderr);
    assert_eq!(idp.stats()["token"].as_u64().unwrap(), tokens_before + 1, "one refresh grant");
    let after: serde_json::Value = serde_json::from_str(&read(&file)).unwrap();
    assert_ne!(before["id_token"], after["id_token"]);
    assert_eq!(mode_owner(&file).0, 0o600);
    sb.expect_syslog(&["DECISION=allow", "ID=corp:alice@example.com"]);
}

#[test]
fn a_run_that_needs_an_identity_starts_the_device_flow_on_a_terminal() {
    let idp = Idp::start(&[("IDP_DEVICE_INTERVAL", "1")]);
    let (sb, cache) = sandbox("oidc-autologin", &idp, "");
    let mut t = sb.pty(ALICE, &[("XDG_CACHE_HOME", &cache)], &[&sb.lpexec(), "id", "-un"]);
    t.expect("needs your identity from corp; logging in");
    t.expect("(the code is filled in), or scan:");
    t.expect("waiting for the login");
    let code = user_code_in(&t.text()).expect("user code");
    idp.complete(&code, "alice", "approve");
    t.expect("logged in to corp as alice@example.com");
    let st = t.wait(Duration::from_secs(20));
    assert!(st.success(), "{}", t.text());
    assert!(t.text().contains("\nroot\r\n") || t.text().contains("root\r\n"), "{}", t.text());
    // A QR code was drawn (half-block characters).
    assert!(t.text().contains('▀') || t.text().contains('▄'), "{}", t.text());
}

#[test]
fn non_interactive_runs_never_start_a_login() {
    let idp = Idp::start(&[]);
    let (sb, cache) = sandbox("oidc-n", &idp, "");
    let mut t = sb.pty(ALICE, &[("XDG_CACHE_HOME", &cache)], &[&sb.lpexec(), "-n", "id"]);
    assert_eq!(t.wait(Duration::from_secs(10)).code(), Some(125));
    assert!(t.text().contains("(-n: no login was started)"), "{}", t.text());
    assert!(t.text().contains("log in with: lpexec login corp"), "{}", t.text());
    assert_eq!(idp.stats()["device"], 0);
}

#[test]
fn login_denied_with_the_providers_abort_button() {
    let idp = Idp::start(&[("IDP_DEVICE_INTERVAL", "1")]);
    let (sb, cache) = sandbox("oidc-abort", &idp, "");
    let env = [("XDG_CACHE_HOME", cache.as_str())];
    let r = Running::start(&sb, ALICE, &env, &["login", "corp"]);
    let code = r.user_code();
    idp.complete(&code, "alice", "abort");
    let o = r.wait(Duration::from_secs(20));
    o.assert_code(125);
    assert!(
        o.stderr.contains("lpexec: login to corp failed: the login was denied (access_denied)"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("start again with: lpexec login corp"), "{}", o.stderr);
    assert!(!std::path::Path::new(&cache).join("lpexec/corp.json").exists());
}

#[test]
fn login_fails_clearly_when_the_device_code_expires() {
    // The code lives 2 s; the first poll comes after 3 s.
    let idp = Idp::start(&[("IDP_DEVICE_INTERVAL", "3"), ("IDP_DEVICE_CODE_TTL", "2")]);
    let (sb, cache) = sandbox("oidc-expire", &idp, "");
    let o = sb.lp_env(ALICE, &[("XDG_CACHE_HOME", &cache)], &["login"]);
    o.assert_code(125);
    assert!(
        o.stderr.contains(
            "login to corp failed: the code expired before the login was completed (expired_token)"
        ),
        "{}",
        o.stderr
    );
}

#[test]
fn without_an_interval_the_device_flow_polls_every_five_seconds() {
    let stub = Idp::stub(&[("STUB_SCRIPT", "authorization_pending,expired_token")]);
    let sb = Sandbox::new("oidc-interval");
    sb.config(&issuer_toml("corp", &stub.issuer, ""));
    let cache = cache_home(&sb, ALICE).display().to_string();
    let o = sb.lp_env(ALICE, &[("XDG_CACHE_HOME", &cache)], &["login"]);
    o.assert_code(125);
    assert!(o.stderr.contains("(expired_token)"), "{}", o.stderr);
    let p = stub.polls();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0] >= 4.9 && p[1] - p[0] >= 4.9, "polls must be 5 s apart: {p:?}");
}

#[test]
fn slow_down_adds_five_seconds_to_the_polling_interval() {
    let stub = Idp::stub(&[
        ("STUB_SCRIPT", "slow_down,authorization_pending,access_denied"),
        ("STUB_INTERVAL", "1"),
    ]);
    let sb = Sandbox::new("oidc-slowdown");
    sb.config(&issuer_toml("corp", &stub.issuer, ""));
    let cache = cache_home(&sb, ALICE).display().to_string();
    let o = sb.lp_env(ALICE, &[("XDG_CACHE_HOME", &cache)], &["login"]);
    o.assert_code(125);
    assert!(o.stderr.contains("the login was denied (access_denied)"), "{}", o.stderr);
    let p = stub.polls();
    assert_eq!(p.len(), 3, "{p:?}");
    assert!((0.9..3.0).contains(&p[0]), "first poll after the interval (1 s): {p:?}");
    assert!(p[1] - p[0] >= 5.9, "slow_down must add 5 s: {p:?}");
    assert!(p[2] - p[1] >= 5.9, "and keep it: {p:?}");
}

#[test]
fn polling_gives_up_when_the_code_lifetime_is_over() {
    // A provider that says "pending" forever.
    let stub = Idp::stub(&[
        ("STUB_SCRIPT", "authorization_pending"),
        ("STUB_EXPIRES_IN", "2"),
        ("STUB_INTERVAL", "1"),
    ]);
    let sb = Sandbox::new("oidc-localexpiry");
    sb.config(&issuer_toml("corp", &stub.issuer, ""));
    let cache = cache_home(&sb, ALICE).display().to_string();
    let o = sb.lp_env(ALICE, &[("XDG_CACHE_HOME", &cache)], &["login"]);
    o.assert_code(125);
    assert!(o.stderr.contains("the code expired after 2s without the login being completed"), "{}", o.stderr);
    assert!(stub.polls().len() <= 4, "{:?}", stub.polls());
}

#[test]
fn ctrl_c_stops_a_login_cleanly() {
    let idp = Idp::start(&[]);
    let (sb, cache) = sandbox("oidc-ctrlc", &idp, "");
    let mut t = sb.pty(ALICE, &[("XDG_CACHE_HOME", &cache)], &[&sb.lpexec(), "login"]);
    t.expect("Ctrl-C cancels");
    t.send("\x03");
    t.expect("lpexec: login cancelled; nothing was cached");
    assert_eq!(t.wait(Duration::from_secs(10)).code(), Some(130));
    assert!(!std::path::Path::new(&cache).join("lpexec/corp.json").exists());
}

#[test]
fn a_cache_directory_others_can_read_is_refused() {
    let idp = Idp::start(&[]);
    let (sb, cache) = sandbox("oidc-cachemode", &idp, "");
    let dir = std::path::Path::new(&cache).join("lpexec");
    std::fs::create_dir(&dir).unwrap();
    nix::unistd::chown(&dir, Some(uid_of(ALICE).into()), None).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = sb.lp_env(ALICE, &[("XDG_CACHE_HOME", &cache)], &["login"]);
    o.assert_code(125);
    assert!(o.stderr.contains("is accessible to other users (mode 0755)"), "{}", o.stderr);
    assert!(o.stderr.contains(&format!("fix with: chmod 700 {}", dir.display())), "{}", o.stderr);
    // Someone else's directory.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    nix::unistd::chown(&dir, Some(uid_of(BOB).into()), None).unwrap();
    let o = sb.lp_env(ALICE, &[("XDG_CACHE_HOME", &cache)], &["login"]);
    o.assert_code(125);
    assert!(o.stderr.contains("not to you"), "{}", o.stderr);
    assert_eq!(idp.stats()["device"], 0, "nothing is started before the cache is usable");
}

/// CI mode: `LPEXEC_ID_TOKEN` with `claims = { repository = ... }` members.
#[test]
fn ci_token_with_the_right_repository_runs_and_another_repository_is_denied() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new("oidc-ci");
    sb.config(&issuer_toml("ci", &idp.issuer, "device_flow = false\n"));
    sb.policy(&format!(
        "[[role]]\nname = \"deploy\"\nmembers = [{{ issuer = \"ci\", claims = {{ repository = \"acme/web\", ref = \"refs/heads/main\" }}, unix_user = \"{ALICE}\" }}]\nrun_as = [\"root\"]\n{}",
        allow("id")
    ));
    let ci = |repo: &str| {
        idp.mint(json!({"alg": "RS256", "omit": ["email", "email_verified", "groups"],
            "claims": {"sub": format!("repo:{repo}:ref:refs/heads/main"), "repository": repo, "ref": "refs/heads/main"}}))
    };
    let good = ci("acme/web");
    let o = sb.lp_env(ALICE, &[("LPEXEC_ID_TOKEN", &good)], &["id", "-u"]);
    o.assert_code(0);
    assert_eq!(o.stdout.trim(), "0");
    sb.expect_syslog(&["DECISION=allow", "ID=ci:repo:acme/web:ref:refs/heads/main"]);

    let o = sb.lp_env(ALICE, &[("LPEXEC_ID_TOKEN", &ci("acme/other"))], &["id"]);
    o.assert_code(125);
    assert!(o.stderr.contains("not a member of any role"), "{}", o.stderr);
    sb.expect_syslog(&["DECISION=deny", "ID=ci:repo:acme/other:ref:refs/heads/main"]);

    // From a file as well; and without any token the issuer's kind is named.
    let f = sb.dir.join("token");
    std::fs::write(&f, format!("{good}\n")).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    sb.lp_env(ALICE, &[("LPEXEC_ID_TOKEN_FILE", &f.display().to_string())], &["id"]).assert_code(0);
    let o = sb.lp(ALICE, &["id"]);
    o.assert_code(125);
    assert!(o.stderr.contains("which issues machine tokens only"), "{}", o.stderr);
}

/// One refused token: status 125, the reason on stderr and in syslog, never the token.
#[track_caller]
fn refused(sb: &Sandbox, env: &[(&str, &str)], why: &str) {
    let o = sb.lp_env(ALICE, env, &["id"]);
    o.assert_code(125);
    assert!(o.stderr.contains(why), "expected {why:?} in:\n{}", o.stderr);
    assert!(o.stdout.is_empty(), "the command ran: {}", o.stdout);
    let l = sb.expect_syslog(&["DECISION=error", why]);
    if let Some((_, v)) = env.iter().find(|(k, _)| *k == "LPEXEC_ID_TOKEN") {
        assert!(!l.contains(&v[..v.len().min(30)]) || v.len() < 30, "the token reached syslog: {l}");
    }
}

#[test]
fn hostile_tokens_are_refused_with_a_logged_reason() {
    let idp = Idp::start(&[]);
    let other = Idp::start(&[]);
    let sb = Sandbox::new("oidc-hostile");
    sb.config(&format!(
        "{}{}",
        issuer_toml("corp", &idp.issuer, ""),
        issuer_toml("other", &other.issuer, "")
    ));
    sb.policy(&oidc_policy());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let tok = |spec: serde_json::Value| idp.mint(spec);

    // The control: a good token runs.
    let good = tok(json!({"alg": "RS256"}));
    sb.lp_env(ALICE, &[("LPEXEC_ID_TOKEN", &good)], &["id"]).assert_code(0);
    sb.lp_env(ALICE, &[("LPEXEC_ID_TOKEN", &tok(json!({"alg": "PS256"})))], &["id"]).assert_code(0);
    sb.lp_env(ALICE, &[("LPEXEC_ID_TOKEN", &tok(json!({"alg": "EdDSA"})))], &["id"]).assert_code(0);

    refused(
        &sb,
        &[("LPEXEC_ID_TOKEN", &tok(json!({"alg": "none"})))],
        "the token is unsigned (alg \"none\")",
    );
    refused(
        &sb,
        &[("LPEXEC_ID_TOKEN", &tok(json!({"alg": "HS256-pubkey"})))],
        "the token uses the symmetric algorithm \"HS256\"",
    );
    refused(&sb, &[("LPEXEC_ID_TOKEN", &tok(json!({"claims": {"exp": now - 120}})))], "the token expired");
    refused(
        &sb,
        &[("LPEXEC_ID_TOKEN", &tok(json!({"claims": {"nbf": now + 600}})))],
        "the token is not valid for another",
    );
    refused(
        &sb,
        &[("LPEXEC_ID_TOKEN", &tok(json!({"claims": {"iss": "https://evil.example.com"}})))],
        "it was issued by \"https://evil.example.com\", which is not a configured issuer",
    );
    refused(
        &sb,
        &[("LPEXEC_ID_TOKEN", &tok(json!({"claims": {"aud": "someone-else"}})))],
        "the token is not meant for audience \"lpexec\"",
    );
    // Tampered: the payload of a token for bob with groups added, the signature of the original.
    let parts: Vec<&str> = good.split('.').collect();
    let forged = tok(json!({"alg": "RS256", "claims": {"groups": ["sre", "root"]}}));
    let tampered = format!("{}.{}.{}", parts[0], forged.split('.').nth(1).unwrap(), parts[2]);
    refused(&sb, &[("LPEXEC_ID_TOKEN", &tampered)], "the token's signature is invalid");
    refused(&sb, &[("LPEXEC_ID_TOKEN", "garbage")], "the token is not a valid signed JWT");
    refused(
        &sb,
        &[("LPEXEC_ID_TOKEN", "eyJhbGciOiJSUzI1NiJ9.e30.QUJD")],
        "the token has no valid \"iss\" claim",
    );

    // Size: 100 KiB is refused by the token bound, 1 MiB by the request bound.
    for (size, why) in
        [(100 * 1024, "more than the 16384 accepted"), (1024 * 1024, "the request is too large")]
    {
        let f = sb.dir.join(format!("big-{size}"));
        std::fs::write(&f, "A".repeat(size)).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        refused(&sb, &[("LPEXEC_ID_TOKEN_FILE", &f.display().to_string())], why);
    }

    // A token of issuer A presented (from the cache) as issuer B's.
    let cache = cache_home(&sb, ALICE);
    let dir = cache.join("lpexec");
    std::fs::create_dir(&dir).unwrap();
    let entry = json!({"version": 1, "issuer": "other", "issuer_url": other.issuer, "client_id": "lpexec",
                       "id_token": good, "obtained_at": now});
    std::fs::write(dir.join("other.json"), entry.to_string()).unwrap();
    for p in [&dir, &dir.join("other.json")] {
        nix::unistd::chown(p, Some(uid_of(ALICE).into()), None).unwrap();
    }
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::set_permissions(dir.join("other.json"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
    refused(
        &sb,
        &[("XDG_CACHE_HOME", &cache.display().to_string())],
        &format!(
            "the ID token for other from lpexec login was refused: the token was issued by \"{}\", not by \"{}\"",
            idp.issuer, other.issuer
        ),
    );
    assert_eq!(other.stats()["jwks"], 0, "a foreign token must not make the helper fetch keys");
}

#[test]
fn unknown_kid_refetches_the_keys_once_and_a_burst_does_not_hammer_the_provider() {
    // Issuer on "localhost": the helper resolves a name (and must stay single-threaded).
    let idp = Idp::start(&[("IDP_HOST", "localhost")]);
    let sb = Sandbox::new("oidc-kid");
    sb.config(&issuer_toml("corp", &idp.issuer, ""));
    sb.policy(&oidc_policy());
    sb.lp_env(ALICE, &[("LPEXEC_ID_TOKEN", &idp.mint(json!({})))], &["id"]).assert_code(0);
    assert_eq!(idp.stats()["jwks"], 1);

    let rotated = idp.mint(json!({"kid": "rotated-key"}));
    refused(
        &sb,
        &[("LPEXEC_ID_TOKEN", &rotated)],
        "the token is signed with key \"rotated-key\", which the issuer does not publish",
    );
    assert_eq!(idp.stats()["jwks"], 2, "exactly one refetch");

    // A burst of eight at once: no further fetch.
    let lp = sb.lpexec();
    let burst: Vec<std::process::Child> = (0..8)
        .map(|_| {
            sb.command(ALICE, &[("LPEXEC_ID_TOKEN", &rotated)], &[&lp, "id"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in burst {
        assert_eq!(wait_within(&mut c, COMMAND_LIMIT).code(), Some(125));
    }
    assert_eq!(idp.stats()["jwks"], 2, "a burst of unknown kids must not refetch");
    assert_eq!(idp.stats()["discovery"], 1);
}

#[test]
fn pinned_jwks_file_is_used_without_fetching() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new("oidc-pinned");
    sb.etc_file("corp-jwks.json", &idp.jwks());
    let fetched_by_the_test = idp.stats()["jwks"].as_u64().unwrap();
    sb.config(&issuer_toml("corp", &idp.issuer, "jwks_file = \"/etc/lpexec/corp-jwks.json\"\n"));
    sb.policy(&oidc_policy());
    sb.lp_env(ALICE, &[("LPEXEC_ID_TOKEN", &idp.mint(json!({"alg": "EdDSA"})))], &["id"]).assert_code(0);
    refused(
        &sb,
        &[("LPEXEC_ID_TOKEN", &idp.mint(json!({"kid": "rotated-key"})))],
        "which the issuer does not publish",
    );
    let s = idp.stats();
    assert_eq!((s["discovery"].as_u64(), s["jwks"].as_u64()), (Some(0), Some(fetched_by_the_test)), "{s}");
    // The pinned file must be root's like all configuration.
    let f = sb.etc.join("corp-jwks.json");
    nix::unistd::chown(&f, Some(uid_of(ALICE).into()), None).unwrap();
    let o = sb.lp_env(ALICE, &[("LPEXEC_ID_TOKEN", &idp.mint(json!({})))], &["id"]);
    o.assert_code(125);
    assert!(o.stderr.contains("not root"), "{}", o.stderr);
    assert_eq!(std::fs::metadata(&f).unwrap().uid(), uid_of(ALICE));
}

#[test]
fn an_unreachable_issuer_fails_closed() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new("oidc-down");
    sb.config(&issuer_toml("corp", &idp.issuer, ""));
    sb.policy(&oidc_policy());
    let token = idp.mint(json!({}));
    drop(idp);
    refused(&sb, &[("LPEXEC_ID_TOKEN", &token)], "cannot get the issuer's signing keys");
}

#[test]
fn a_stalled_issuer_times_out_and_fails_closed() {
    // An "identity provider" that accepts connections and never answers: the helper's
    // discovery fetch must give up on its own (bounded timeouts) and refuse.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", stalled.local_addr().unwrap().port());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in stalled.incoming().flatten() {
            held.push(c);
        }
    });
    let idp = Idp::start(&[]);
    let token = idp.mint(json!({"claims": {"iss": url}}));
    let sb = Sandbox::new("oidc-stalled");
    sb.config(&issuer_toml("corp", &url, ""));
    sb.policy(&oidc_policy());
    let t0 = Instant::now();
    refused(&sb, &[("LPEXEC_ID_TOKEN", &token)], "cannot get the issuer's signing keys");
    // A liveness bound, not a performance figure: the helper's own timeouts are 5 s to
    // connect and 10 s for an answer.
    assert!(t0.elapsed() < Duration::from_secs(60), "the helper hung for {:?}", t0.elapsed());
}

#[test]
fn https_issuer_with_its_ca_file_and_without_it() {
    let sb = Sandbox::new("oidc-https");
    let pki = sb.dir.join("pki");
    std::fs::create_dir(&pki).unwrap();
    let (ca, chain, key) = test_pki(&pki);
    let idp = Idp::start(&[
        ("IDP_DEVICE_INTERVAL", "1"),
        ("IDP_TLS_CERT", chain.to_str().unwrap()),
        ("IDP_TLS_KEY", key.to_str().unwrap()),
    ]);
    assert!(idp.issuer.starts_with("https://127.0.0.1:"), "{}", idp.issuer);
    sb.etc_file("corp-ca.pem", &read(&ca));
    sb.config(&issuer_toml("corp", &idp.issuer, "ca_file = \"/etc/lpexec/corp-ca.pem\"\n"));
    sb.policy(&oidc_policy());
    let cache = cache_home(&sb, ALICE).display().to_string();
    let env = [("XDG_CACHE_HOME", cache.as_str())];

    let r = Running::start(&sb, ALICE, &env, &["login"]);
    let code = r.user_code();
    idp.complete_env(&code, "alice", "approve", &[("NODE_EXTRA_CA_CERTS", ca.to_str().unwrap())]);
    r.wait(Duration::from_secs(30)).assert_code(0);
    // The helper fetches the keys over https, trusting the issuer's ca_file.
    let o = sb.lp_env(ALICE, &env, &["id", "-u"]);
    o.assert_code(0);
    assert_eq!(o.stdout.trim(), "0");
    sb.expect_syslog(&["DECISION=allow", "ID=corp:alice@example.com"]);

    // Without the CA the certificate is not trusted: the helper refuses (fail closed).
    sb.config(&issuer_toml("corp", &idp.issuer, ""));
    let _ = std::fs::remove_dir_all(sb.state.join("jwks"));
    let o = sb.lp_env(ALICE, &env, &["id"]);
    o.assert_code(125);
    assert!(o.stderr.contains("cannot get the issuer's signing keys"), "{}", o.stderr);
    assert!(o.stderr.to_lowercase().contains("certificate"), "{}", o.stderr);
}
