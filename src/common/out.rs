//! Writing to stdout and stderr without ever panicking.
//!
//! A setuid program's caller controls its file descriptors: stdout may be closed, a full pipe or
//! a terminal that hung up. `println!` panics on such errors; these helpers ignore them, which is
//! the only safe choice for diagnostics (there is nowhere else to report the failure).

use std::io::Write;

/// Writes `msg` to stderr, ignoring errors.
pub fn err(msg: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(msg.as_bytes());
    let _ = e.flush();
}

/// Writes `msg` to stdout, ignoring errors. Returns false when stdout is gone.
pub fn out(msg: &str) -> bool {
    let mut o = std::io::stdout().lock();
    o.write_all(msg.as_bytes()).and_then(|()| o.flush()).is_ok()
}

/// `eprintln!` that cannot panic.
#[macro_export]
macro_rules! eprintln_safe {
    ($($arg:tt)*) => {{
        let mut s = format!($($arg)*);
        s.push('\n');
        $crate::common::out::err(&s);
    }};
}

/// `println!` that cannot panic.
#[macro_export]
macro_rules! println_safe {
    ($($arg:tt)*) => {{
        let mut s = format!($($arg)*);
        s.push('\n');
        $crate::common::out::out(&s);
    }};
}
