//! System tests: the real setuid helper, installed in a private mount namespace, run as real
//! unprivileged users (see `harness`). Run as root: `cargo test --test system`.

mod admin;
mod approval;
mod approval_flow;
mod approvald;
mod cli;
mod core;
mod harness;
mod identity;
mod idp;
mod record;
mod terminal;
