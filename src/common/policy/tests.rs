use super::*;

fn parse(text: &str) -> Result<Policy, Diags> {
    Policy::parse(&[(PathBuf::from("/etc/lpexec/policy.toml"), text.to_string())], &["corp", "github"])
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const SPEC_EXAMPLE: &str = r#"
[[role]]
name = "web-deploy"
description = "Build and ship the web app"
members = [
  { unix_group = "deployers" },
  { unix_user = "alice" },
  { issuer = "corp", groups = ["sre"] },
  { issuer = "corp", email = "bob@example.com" },
  { issuer = "github", claims = { repository = "acme/web", ref = "refs/heads/main" }, unix_user = "runner" },
]
run_as = ["root"]
env_keep = ["NODE_ENV"]
env_set = { CI = "true" }
mask = ['npm_[A-Za-z0-9]{36}']
mask_live = false
record = true

  [[role.rule]]
  action = "allow"
  command = "npm"
  args = ["ci"]

  [[role.rule]]
  action = "allow"
  command = "/usr/bin/npm"
  args_regex = '^(test|run build)( .*)?$'

  [[role.rule]]
  action = "approve"
  command = "/usr/bin/npm"
  args_regex = '^publish( .*)?$'
  approvers = [{ issuer = "corp", groups = ["release-managers"] }]
  min_approvals = 1
  ttl = "10m"

  [[role.rule]]
  action = "deny"
  command = "/usr/bin/npm"
  args_regex = '^(adduser|login|token)( .*)?$'
  message = "npm credentials are managed by the release pipeline"
"#;

#[test]
fn the_spec_example_parses() {
    let p = parse(SPEC_EXAMPLE).unwrap();
    let r = &p.roles[0];
    assert_eq!(r.name, "web-deploy");
    assert_eq!(r.members.len(), 5);
    assert_eq!(r.members[4].claims["repository"], "acme/web");
    assert_eq!(r.rules.len(), 4);
    assert_eq!(r.rules[0].command, CommandSpec::Name("npm".into()));
    assert_eq!(r.rules[0].args, ArgsSpec::Exact(vec!["ci".into()]));
    assert_eq!(r.rules[2].approval.as_ref().unwrap().ttl, Duration::from_secs(600));
    assert_eq!(r.env_set, vec![("CI".to_string(), "true".to_string())]);
    assert!(r.record);
}

#[test]
fn rule_origins_point_at_their_table() {
    let p = parse(SPEC_EXAMPLE).unwrap();
    let lines: Vec<usize> = p.roles[0].rules.iter().map(|r| r.origin.line).collect();
    let text_lines: Vec<usize> = SPEC_EXAMPLE
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("action ="))
        .map(|(i, _)| i + 1)
        .collect();
    // The origin is the rule's table: its header or its first key, never past the action.
    for (got, action_line) in lines.iter().zip(&text_lines) {
        assert!(*got >= action_line - 1 && *got <= *action_line, "{lines:?} vs {text_lines:?}");
    }
}

#[test]
fn unknown_key_in_a_rule_names_file_line_and_column() {
    let e = err(
        "[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\n[[role.rule]]\naction = \"allow\"\ncommand = \"ls\"\nargz = []\n",
    );
    assert!(e.starts_with("/etc/lpexec/policy.toml:7:1: unknown field `argz`"), "{e}");
}

#[test]
fn rule_without_action_is_an_error() {
    let e =
        err("[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\n[[role.rule]]\ncommand = \"ls\"\n");
    assert!(e.contains(":4:1: this rule has no action"), "{e}");
    assert!(e.starts_with("/etc/lpexec/policy.toml:"), "{e}");
}

#[test]
fn misspelled_action_is_an_error() {
    let e = err(
        "[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\n[[role.rule]]\naction = \"alow\"\ncommand = \"ls\"\n",
    );
    assert!(e.contains(":5:10: unknown variant `alow`"), "{e}");
}

#[test]
fn bad_regex_is_an_error_with_position() {
    let e = err(
        "[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\n[[role.rule]]\naction = \"allow\"\ncommand = \"ls\"\nargs_regex = '^(x'\n",
    );
    assert!(e.contains(":7:14: args_regex is not a valid regex"), "{e}");
}

#[test]
fn bad_mask_regex_is_an_error() {
    let e = err("[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\nmask = ['[a-']\n");
    assert!(e.contains(":4:9: mask pattern is not a valid regex"), "{e}");
    let e = err("[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\nmask = ['x*']\n");
    assert!(e.contains("matches the empty string"), "{e}");
}

#[test]
fn unknown_issuer_is_an_error() {
    let e = err("[[role]]\nname = \"r\"\nmembers = [{ issuer = \"nope\", groups = [\"x\"] }]\n");
    assert!(
        e.contains(":3:12: unknown issuer \"nope\" (configured in lpexec.toml [[issuer]]: corp, github)"),
        "{e}"
    );
    let e = Policy::parse(
        &[(PathBuf::from("/p.toml"), "[[role]]\nname = \"r\"\nmembers = [{ issuer = \"corp\" }]\n".into())],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("none are configured"), "{e}");
}

#[test]
fn dangerous_env_keep_is_an_error() {
    for var in [
        "LD_PRELOAD",
        "BASH_ENV",
        "ENV",
        "PYTHONPATH",
        "PERL5LIB",
        "RUBYLIB",
        "NODE_OPTIONS",
        "GCONV_PATH",
        "IFS",
    ] {
        let e = err(&format!(
            "[[role]]\nname = \"r\"\nmembers = [{{ unix_user = \"a\" }}]\nenv_keep = [\"{var}\"]\n"
        ));
        assert!(e.contains(&format!(":4:13: env_keep entry \"{var}\" is dangerous")), "{e}");
    }
}

#[test]
fn duplicate_role_names_across_files_are_an_error() {
    let role = "[[role]]\nname = \"ops\"\nmembers = [{ unix_user = \"a\" }]\n";
    let e = Policy::parse(
        &[
            (PathBuf::from("/etc/lpexec/policy.toml"), role.into()),
            (PathBuf::from("/etc/lpexec/policy.d/10-ops.toml"), format!("\n\n{role}")),
        ],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("/etc/lpexec/policy.d/10-ops.toml:3:1: role \"ops\" is already defined at /etc/lpexec/policy.toml:1"), "{e}");
}

#[test]
fn every_problem_is_reported() {
    let e = parse(
        "[[role]]\nname = \"bad name\"\nmembers = []\nrun_as = [\"#-1\"]\nenv_keep = [\"LD_PRELOAD\"]\n\
         [[role.rule]]\naction = \"allow\"\ncommand = \"bin/ls\"\n\
         [[role.rule]]\naction = \"approve\"\ncommand = \"/bin/ls\"\n\
         [[role.rule]]\naction = \"deny\"\ncommand = \"*\"\nsha256 = \"zz\"\nttl = \"1m\"\n",
    )
    .unwrap_err();
    // name, members, run_as, env_keep, relative command, approvers missing, bad sha, * pinned, ttl on deny
    assert_eq!(e.0.len(), 9, "{e}");
}

#[test]
fn member_and_approver_shapes() {
    let e = err("[[role]]\nname = \"r\"\nmembers = [{}]\n");
    assert!(e.contains("empty member entry"), "{e}");
    let e = err("[[role]]\nname = \"r\"\nmembers = [{ groups = [\"x\"] }]\n");
    assert!(e.contains("names no issuer"), "{e}");
    let e = err(
        "[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\n[[role.rule]]\naction = \"approve\"\ncommand = \"ls\"\napprovers = [{ unix_group = \"ops\" }]\n",
    );
    assert!(e.contains("approvers are matched by OIDC identity"), "{e}");
    let e = err("[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\", shell = \"x\" }]\n");
    assert!(e.contains("unknown field `shell`"), "{e}");
}

#[test]
fn args_and_args_regex_exclude_each_other() {
    let e = err(
        "[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\n[[role.rule]]\naction = \"allow\"\ncommand = \"ls\"\nargs = []\nargs_regex = 'x'\n",
    );
    assert!(e.contains("args or args_regex, not both"), "{e}");
}

#[test]
fn regexes_compile_lazily_and_anchor_to_the_whole_string() {
    let p = parse(SPEC_EXAMPLE).unwrap();
    let ArgsSpec::Regex(r) = &p.roles[0].rules[1].args else { panic!() };
    let re = r.regex().unwrap();
    assert!(re.is_match("test"));
    assert!(re.is_match("run build --prod"));
    assert!(!re.is_match("xtest"));
    assert!(!re.is_match("run buildx"));
}

#[test]
fn defaults() {
    let p = parse("[[role]]\nname = \"r\"\nmembers = [{ unix_user = \"a\" }]\n").unwrap();
    assert_eq!(p.roles[0].run_as, vec!["root".to_string()]);
    assert!(p.roles[0].record);
    assert_eq!(p.roles[0].default_target(), "root");
}

fn args_regex(src: &str) -> ArgsRegex {
    ArgsRegex::new(src.to_string()).unwrap()
}

#[test]
fn prefix_prefilter_examples() {
    let r = args_regex("^(test|run build)( .*)?$");
    assert!(r.may_match("test"));
    assert!(r.may_match("run build --x"));
    assert!(!r.may_match("publish"));
    assert!(args_regex(".*").may_match("anything"));
    assert!(args_regex("(a|)b").may_match("b"));
    assert!(args_regex("(?i)publish").may_match("PUBLISH"));
}

mod prefilter_props {
    use super::*;
    use proptest::prelude::*;

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c]{1,3}",
            Just(".*".to_string()),
            Just("[ab]".to_string()),
            Just("( .*)?".to_string()),
            Just("(?i)a".to_string()),
            Just("x?".to_string()),
            Just("^".to_string()),
            Just("\\d+".to_string()),
            ("[a-c]{1,2}", "[a-c]{0,2}").prop_map(|(a, b)| format!("({a}|{b})")),
        ]
    }

    proptest! {
        /// The prefilter never rejects a string the pattern matches.
        #[test]
        fn prefilter_is_sound(pieces in proptest::collection::vec(piece(), 1..5), s in "[abcxAB 0-9]{0,8}") {
            let src: String = pieces.concat();
            let r = args_regex(&src);
            if r.regex().unwrap().is_match(&s) {
                prop_assert!(r.may_match(&s), "pattern {src:?} matches {s:?} but the prefilter said no");
            }
        }
    }
}
