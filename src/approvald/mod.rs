//! `lpexec-approvald`, the approval service (SPEC §7): an HTTP JSON API where requesters
//! submit what the helper said needs approval, approvers approve or deny it, and — once every
//! requirement has enough distinct approvers — exactly one Ed25519-signed approval token is
//! issued for the helper to verify offline.
//!
//! - [`config`]: `approvald.toml`, checked like `lpexec.toml` (file:line:col diagnostics);
//! - [`key`]: the signing key file (`keygen`, and refusing a key others can read);
//! - [`auth`]: callers authenticated by their OIDC ID tokens, with the helper's rules;
//! - [`store`]: SQLite (WAL, `synchronous=FULL`), the one place state changes, serialised;
//! - [`routes`]: the HTTP API and long-polling; [`listen`]: TCP, TLS and unix sockets;
//! - [`log`]: one JSON object per line on stderr.
//!
//! The service is an ordinary unprivileged daemon: it runs as its own user, holds no
//! privilege, and links the async runtime and HTTP server that the helper never does.

pub mod auth;
pub mod config;
pub mod key;
pub mod listen;
pub mod log;
pub mod routes;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use clap::{Parser, Subcommand};

use self::config::{Config, DEFAULT_CONFIG};
use self::log::Level;
use crate::common::out;

/// The command line (also the source of the man page's synopsis).
#[derive(Debug, Parser)]
#[command(
    name = "lpexec-approvald",
    version,
    about = "The lpexec approval service: requests, approvals and signed approval tokens over HTTP",
    long_about = "The lpexec approval service. Requesters submit the exact command lpexec-helper says \
needs approval, approvers approve or deny it, and once every requirement has enough distinct \
approvers the service signs exactly one Ed25519 approval token, which the helper verifies \
offline against its own policy. Everyone is authenticated by an OIDC ID token; every change \
is stored in SQLite before the service answers. Without a command it serves."
)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG, global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new signing key (mode 0600, never overwriting) and print its public key for
    /// the hosts' [approval] trusted_keys.
    Keygen {
        /// Where to write the key [default: signing_key from the configuration].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check the configuration (and that the signing key is usable) and exit 0, or print
    /// every problem and exit 1.
    Check,
    /// Print the audit trail: who asked, approved, denied or withdrew which request, when and
    /// with which comment, expiries and issued tokens; kept after requests expire. Reads the
    /// database without changing it, so it can run beside the service (as its user).
    Audit {
        /// Only the events of this request.
        #[arg(long, value_name = "ID")]
        request: Option<String>,
        /// Only events at or after WHEN: 2026-12-03, "2026-12-03 19:05", 2026-12-03T19:05:25Z,
        /// or an age such as 2h or 7d.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve (the default).
    Serve,
}

/// The binary's entry point.
pub fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Keygen { out } => keygen(&cli.config, out.as_deref()),
        Command::Check => check(&cli.config),
        Command::Audit { request, since, json } => {
            audit(&cli.config, request.as_deref(), since.as_deref(), json)
        }
        Command::Serve => serve(&cli.config),
    };
    if let Err(e) = result {
        out::err(&format!("lpexec-approvald: {e}\n"));
        std::process::exit(1);
    }
}

fn keygen(config: &Path, out_path: Option<&Path>) -> Result<(), String> {
    let path = match out_path {
        Some(p) => p.to_path_buf(),
        None => {
            Config::load(config)
                .map_err(|e| format!("{e}\n(keygen writes the configured signing_key; or pass --out FILE)"))?
                .signing_key
        }
    };
    let key = key::generate(&path)?;
    out::out(&format!("{}\n", crate::approval::token::public_key_text(&key.verifying_key())));
    out::err(&format!(
        "lpexec-approvald: wrote a new signing key to {}; add the public key above to [approval] trusted_keys in each host's lpexec.toml\n",
        path.display()
    ));
    Ok(())
}

fn check(config: &Path) -> Result<(), String> {
    let cfg = Config::load(config)?;
    auth::Verifier::new(&cfg.issuers)?;
    if let Some((cert, key)) = &cfg.tls {
        listen::tls_acceptor(cert, key)?;
    }
    match key::load(&cfg.signing_key) {
        Ok(k) => out::out(&format!(
            "{}: ok (signing key {})\n",
            config.display(),
            crate::approval::token::public_key_text(&k.verifying_key())
        )),
        // Checking a configuration before the key exists (packaging, a fresh host) is normal.
        Err(e) if !cfg.signing_key.exists() => out::out(&format!("{}: ok; note: {e}\n", config.display())),
        Err(e) => return Err(e),
    };
    Ok(())
}

fn audit(config: &Path, request: Option<&str>, since: Option<&str>, json: bool) -> Result<(), String> {
    use crate::common::timefmt::{self, Utc};
    use crate::identity::printable;
    let cfg = Config::load(config)?;
    if let Some(id) = request {
        if !crate::approval::token::valid_id(id) {
            return Err(format!(
                "--request {:?} is not a request id (ids look like req_…)",
                printable(id, 80)
            ));
        }
    }
    let now = std::time::SystemTime::now();
    let since = match since {
        Some(s) => timefmt::unix_secs(timefmt::parse_when(s, now).map_err(|e| format!("--since: {e}"))?),
        None => 0,
    };
    let events = store::audit(&cfg.database, request, i64::try_from(since).unwrap_or(i64::MAX))
        .map_err(|e| e.to_string())?;
    for e in &events {
        if json {
            out::out(&format!("{}\n", serde_json::to_string(e).unwrap_or_default()));
            continue;
        }
        let at = UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(e.time).unwrap_or(0));
        let who = match (&e.issuer, e.email.as_ref().or(e.sub.as_ref())) {
            (Some(i), Some(w)) => format!("{}:{}", printable(i, 64), printable(w, 120)),
            _ => "-".to_string(),
        };
        let comment = e.comment.as_deref().map(|c| format!("  {:?}", printable(c, 1024))).unwrap_or_default();
        out::out(&format!(
            "{}  {:<26}  {:<12}  {}{comment}\n",
            Utc::from_system(at).short(),
            printable(&e.request, 64),
            e.event,
            who
        ));
    }
    if events.is_empty() && !json {
        out::err("lpexec-approvald: no events\n");
    }
    Ok(())
}

fn serve(config: &Path) -> Result<(), String> {
    // Database, WAL and socket files are private to the service user unless set otherwise.
    crate::system::process::umask(0o077);
    let cfg = Config::load(config)?;
    let key = key::load(&cfg.signing_key)?;
    let verifier = auth::Verifier::new(&cfg.issuers)?;
    let tls = match &cfg.tls {
        Some((cert, k)) => Some(listen::tls_acceptor(cert, k)?),
        None => None,
    };
    let store = store::Store::open(&cfg.database).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(run(cfg, key, verifier, tls, store))
}

async fn run(
    cfg: Config,
    key: ed25519_dalek::SigningKey,
    verifier: auth::Verifier,
    tls: Option<tokio_rustls::TlsAcceptor>,
    store: store::Store,
) -> Result<(), String> {
    let bound = listen::bind(&cfg.listen, tls.clone()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let kid = crate::approval::token::kid(key.verifying_key().as_bytes());
    let app =
        Arc::new(routes::App::new(cfg.public_url.clone(), cfg.request_ttl, key, store, verifier, stop_rx));
    log::line(Level::Info, "started")
        .field("listen", bound.describe())
        .field("tls", tls.is_some())
        .field("public_url", cfg.public_url.clone())
        .field("kid", kid)
        .field("config", cfg.path.display().to_string())
        .emit();
    let socket = match &bound {
        listen::Bound::Unix(_, p) => Some(p.clone()),
        listen::Bound::Tcp(..) => None,
    };
    let incoming = bound.start();
    let service = routes::router(app.clone()).into_make_service_with_connect_info::<listen::Remote>();
    let shutdown = async move {
        let signal = wait_for_signal().await;
        log::line(Level::Info, "stopping").field("signal", signal).emit();
        let _ = stop_tx.send(true);
    };
    let served = axum::serve(incoming, service).with_graceful_shutdown(shutdown).await;
    if let Some(p) = socket {
        let _ = std::fs::remove_file(p);
    }
    // In-flight requests are done; dropping the last reference closes the database.
    drop(app);
    served.map_err(|e| format!("serving failed: {e}"))?;
    log::line(Level::Info, "stopped").emit();
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        log::line(Level::Error, "cannot install signal handlers; stop the service with SIGKILL").emit();
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
