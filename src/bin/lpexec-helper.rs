//! The `lpexec-helper` binary: everything lives in the library.

fn main() {
    lpexec::helper::main()
}
