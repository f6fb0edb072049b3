//! (in progress)
pub fn main() {}
