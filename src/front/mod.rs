//! `lpexec`, the unprivileged front end: parses the command line, gathers what the helper
//! needs, starts the helper with the request on descriptor 3, and passes its exit status on.
//! It never decides anything; the helper decides.

mod approval;
mod audit;
mod check;
pub mod cli;
mod identity;
mod run;

use clap::Parser;

use crate::eprintln_safe;
use crate::helper::request::Mode;
use cli::{Cli, Verb};

/// Entry point of `lpexec`.
pub fn main() -> ! {
    if crate::system::fd::ensure_stdio().is_err() {
        std::process::exit(125);
    }
    crate::system::process::ignore_signal(nix::sys::signal::Signal::SIGPIPE);
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            std::process::exit(0);
        }
        Err(e) => {
            // clap's "error: ..." in the house style: "lpexec: ...".
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            crate::common::out::err(&format!("lpexec: {text}"));
            std::process::exit(125);
        }
    };
    let code = dispatch(cli);
    std::process::exit(code)
}

fn dispatch(cli: Cli) -> i32 {
    match cli.verb {
        Some(Verb::List { role }) => run::query(Mode::List, Vec::new(), None, role.or(cli.role)),
        Some(Verb::Explain(e)) => match run::utf8_args(e.command) {
            Ok(argv) => run::query(Mode::Explain, argv, e.user, e.role),
            Err(msg) => fail(&msg),
        },
        Some(Verb::Check(a)) => check::run(&a),
        Some(Verb::Sessions(a)) => audit::sessions(&a),
        Some(Verb::Replay { session, speed, idle_limit, print }) => {
            audit::replay(&session, speed, idle_limit, print)
        }
        Some(Verb::Verify { session }) => audit::verify(&session),
        Some(Verb::Login { issuer }) => identity::login(issuer),
        Some(Verb::Logout { issuer }) => identity::logout(issuer),
        Some(Verb::Whoami) => identity::whoami(),
        Some(Verb::Requests) => approval::requests(),
        Some(Verb::Approve { id, comment, yes }) => approval::act(&id, true, comment, yes),
        Some(Verb::Deny { id, comment }) => approval::act(&id, false, comment, false),
        None if cli.list => run::query(Mode::List, Vec::new(), None, cli.role),
        None if cli.command.is_empty() => {
            eprintln_safe!(
                "lpexec: no command given\nusage: lpexec [-r ROLE] [-u USER] [--reason TEXT] [-n] [--] COMMAND [ARG]...\nsee: lpexec --help"
            );
            125
        }
        None => match run::utf8_args(cli.command) {
            Ok(argv) => run::run(argv, cli.user, cli.role, cli.reason, cli.non_interactive),
            Err(msg) => fail(&msg),
        },
    }
}

/// Prints `lpexec: msg` and returns the refusal status.
pub(crate) fn fail(msg: &str) -> i32 {
    eprintln_safe!("lpexec: {msg}");
    125
}
