//! The `lpexec-approvald` binary: everything lives in the library.

fn main() {
    lpexec::approvald::main()
}
