//! The one command-line definition. Help, the man page `lpexec(1)` and the shell completions
//! are all generated from it, so they cannot disagree.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
The first argument is a verb only if it is one of the verbs above; `--` always starts a
command (`lpexec -- list` runs a program called list).

Exit status: the command's own status when it ran; 128+N when it was killed by signal N
(lpexec re-raises the signal); 125 when lpexec refused or failed (denied, identity or approval
missing or invalid, bad configuration); 126 when the command was found but could not be
executed; 127 when it was not found.";

/// lpexec: run a command as another user, checked against exact per-role rules, approved when
/// risky, and recorded.
#[derive(Debug, Parser)]
#[command(
    name = "lpexec",
    version,
    about = "Run a command as another user, checked against exact per-role rules, approved when risky, and recorded",
    long_about = "Runs COMMAND as another user (by default the first run_as user of the role written for \
it, usually root) when the policy in /etc/lpexec allows it. The caller is identified by their \
Unix account and, where the policy asks for it, by an OIDC identity; risky commands need \
another person's approval first. The command runs on its own terminal with a clean \
environment, and the session is recorded and logged to syslog.\n\n\
Use `lpexec list` to see what you may run and `lpexec explain -- COMMAND` to see why a \
command is allowed or not.",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
    override_usage = "lpexec [-r ROLE] [-u USER] [--reason TEXT] [-n] [--] COMMAND [ARG]...\n       lpexec <VERB> [OPTIONS]",
)]
pub struct Cli {
    /// Act in ROLE only: the rules of your other roles do not apply
    #[arg(short = 'r', long = "role", value_name = "ROLE")]
    pub role: Option<String>,

    /// Run the command as USER (a name or #UID) instead of the role's default target
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// Why you are running this; logged, and shown to approvers
    #[arg(long = "reason", value_name = "TEXT")]
    pub reason: Option<String>,

    /// Never prompt or start a login; fail instead (the default when stdin is not a terminal)
    #[arg(short = 'n', long = "non-interactive")]
    pub non_interactive: bool,

    /// List the roles and rules that apply to you (same as `lpexec list`)
    #[arg(short = 'l', long = "list")]
    pub list: bool,

    #[command(subcommand)]
    pub verb: Option<Verb>,

    /// The command to run and its arguments
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// List the roles and rules that apply to you
    List {
        /// Only this role
        #[arg(short = 'r', long = "role", value_name = "ROLE")]
        role: Option<String>,
    },
    /// Show the decision for a command and the rule (file:line) that makes it, without running it
    Explain(ExplainArgs),
    /// Log in to an identity provider with the device flow and cache the tokens
    Login {
        /// The issuer to log in to (as named in lpexec.toml); the only one if omitted
        issuer: Option<String>,
    },
    /// Forget cached tokens
    Logout {
        /// Only this issuer's tokens
        issuer: Option<String>,
    },
    /// Show your Unix identity and every cached OIDC identity
    Whoami,
    /// List pending approval requests you may act on
    Requests,
    /// Approve a request
    Approve {
        /// The request id
        id: String,
        /// A comment recorded with your approval
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        /// Do not ask for confirmation
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
    /// Deny a request
    Deny {
        /// The request id
        id: String,
        /// A comment recorded with your denial
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
    },
    /// List recorded sessions
    Sessions(SessionsArgs),
    /// Replay a recorded session in the terminal
    Replay {
        /// A session id or the path of a .cast file
        session: String,
        /// Playback speed factor
        #[arg(long, value_name = "F", default_value_t = 1.0)]
        speed: f64,
        /// Cap pauses at SECS seconds
        #[arg(long = "idle-limit", value_name = "SECS")]
        idle_limit: Option<f64>,
        /// Print the output at once instead of replaying it in real time
        #[arg(long)]
        print: bool,
    },
    /// Check a recording's seal: sealed and valid, tampered, or unsealed
    Verify {
        /// A session id or the path of a .cast file
        session: String,
    },
    /// Check configuration and policy files, and run policy tests
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Decide for ROLE only
    #[arg(short = 'r', long = "role", value_name = "ROLE")]
    pub role: Option<String>,
    /// Decide for running as USER
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// The command and its arguments
    #[arg(value_name = "COMMAND", required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Only sessions of this Unix caller
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// Only sessions whose command line matches REGEX
    #[arg(long, value_name = "REGEX")]
    pub command: Option<String>,
    /// Only sessions that started at or after WHEN (2026-12-03, "2026-12-03 19:05", or an age such as 2h)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only sessions that started before WHEN
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check this main configuration file instead of the installed one
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check this policy file instead of the installed policy.toml and policy.d/
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Run the policy tests in FILE against the policy being checked
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("lpexec").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn a_command_is_anything_that_is_not_a_verb() {
        let c = parse(&["-u", "web", "id", "-u", "x"]);
        assert!(c.verb.is_none());
        assert_eq!(c.user.as_deref(), Some("web"));
        assert_eq!(c.command, ["id", "-u", "x"]);
        let c = parse(&["ls", "-l", "--", "x"]);
        assert_eq!(c.command, ["ls", "-l", "--", "x"]);
    }

    #[test]
    fn double_dash_always_means_a_command() {
        let c = parse(&["--", "list"]);
        assert!(c.verb.is_none());
        assert_eq!(c.command, ["list"]);
        let c = parse(&["--", "-weird"]);
        assert_eq!(c.command, ["-weird"]);
    }

    #[test]
    fn verbs() {
        assert!(matches!(parse(&["list"]).verb, Some(Verb::List { role: None })));
        assert!(parse(&["-l"]).list);
        let c = parse(&["explain", "-u", "root", "--", "npm", "publish", "--tag", "x"]);
        let Some(Verb::Explain(e)) = c.verb else { panic!() };
        assert_eq!(e.command, ["npm", "publish", "--tag", "x"]);
        assert_eq!(e.user.as_deref(), Some("root"));
        let c = parse(&["explain", "ls", "-l"]);
        let Some(Verb::Explain(e)) = c.verb else { panic!() };
        assert_eq!(e.command, ["ls", "-l"]);
        assert!(matches!(parse(&["check", "--test", "t.toml"]).verb, Some(Verb::Check(_))));
    }
}
