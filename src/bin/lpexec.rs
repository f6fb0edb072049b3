//! The `lpexec` binary: everything lives in the library.

fn main() {
    lpexec::front::main()
}
