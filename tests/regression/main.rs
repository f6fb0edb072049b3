//! Regression tests named after the attacks they pin — on sudo, sudo-rs, doas and JWT
//! libraries — each a system test against the installed setuid helper as an unprivileged
//! user (see the system tests' harness). Run as root: `cargo test --test regression`.

#[path = "../system/harness.rs"]
mod harness;

mod attacks;
mod environment;
mod faults;
mod files;
mod process;
mod terminal;
