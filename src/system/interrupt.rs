//! Ctrl-C while the front end waits on an identity provider (the device flow): SIGINT only
//! sets a flag, which the polling loop checks between short sleeps, so `lpexec login` stops
//! cleanly — nothing half-written, a message saying nothing was cached — instead of dying
//! mid-request. `SA_RESTART` is not set, so a blocking read returns early too.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Starts catching SIGINT (and SIGTERM) into the flag.
pub fn catch() {
    INTERRUPTED.store(false, Ordering::SeqCst);
    let act = SigAction::new(SigHandler::Handler(on_interrupt), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &act) };
    }
}

/// Back to the default dispositions.
pub fn release() {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: installing SIG_DFL runs no code.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &dfl) };
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
