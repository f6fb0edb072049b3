//! The argument quoting rule that `args_regex` matches against (SPEC §4).
//!
//! Arguments are joined by single spaces; an argument is POSIX-shell-quoted when it is empty or
//! holds any byte outside `[A-Za-z0-9_@%+=:,./-]`. Quoting uses single quotes, and a single
//! quote inside becomes `'\''`, so the joined string reads back through `sh` to exactly the
//! original argument list. This makes `args_regex = '^publish( .*)?$'` unable to match an
//! argument list like `["publish x", "--force"]` by accident: that one reads `'publish x' --force`.

/// Whether `arg` can appear unquoted.
fn is_plain(arg: &str) -> bool {
    !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b))
}

/// Quotes one argument if the rule requires it.
pub fn quote(arg: &str) -> std::borrow::Cow<'_, str> {
    if is_plain(arg) {
        return std::borrow::Cow::Borrowed(arg);
    }
    let mut s = String::with_capacity(arg.len() + 2);
    s.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            s.push_str("'\\''");
        } else {
            s.push(c);
        }
    }
    s.push('\'');
    std::borrow::Cow::Owned(s)
}

/// Joins arguments the way `args_regex` sees them.
pub fn join<S: AsRef<str>>(args: &[S]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&quote(a.as_ref()));
    }
    out
}

/// Splits a string produced by [`join`] back into arguments (POSIX rules for the subset
/// `join` produces: plain words, single-quoted strings and `\'`). Used by tests and by
/// `lpexec check --test`, never to build a command line.
pub fn split(s: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if in_word {
                    args.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next()?);
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        args.push(cur);
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_examples() {
        assert_eq!(join(&["a b"]), "'a b'");
        assert_eq!(join(&["run", "build"]), "run build");
        assert_eq!(join(&[""]), "''");
        assert_eq!(join(&["it's"]), "'it'\\''s'");
        assert_eq!(join(&["--x=a/b.c,d:e@f%g+h"]), "--x=a/b.c,d:e@f%g+h");
        assert_eq!(join(&["$(id)", "a;b", "*"]), "'$(id)' 'a;b' '*'");
        assert_eq!(join::<&str>(&[]), "");
        assert_eq!(join(&["a\nb"]), "'a\nb'");
        assert_eq!(join(&["é"]), "'é'");
    }

    #[test]
    fn an_argument_with_a_space_cannot_pose_as_two() {
        let re = regex::Regex::new("^(?:publish( .*)?)$").unwrap();
        assert!(re.is_match(&join(&["publish", "--tag", "x"])));
        assert!(!re.is_match(&join(&["publish x"])));
    }

    proptest! {
        #[test]
        fn join_then_split_is_identity(args in proptest::collection::vec(".*", 0..6)) {
            let joined = join(&args);
            prop_assert_eq!(split(&joined), Some(args));
        }

        #[test]
        fn plain_words_are_never_quoted(arg in "[A-Za-z0-9_@%+=:,./-]{1,20}") {
            let q = quote(&arg);
            prop_assert_eq!(q.as_ref(), arg.as_str());
        }

        #[test]
        fn anything_else_is_single_quoted(arg in ".*[^A-Za-z0-9_@%+=:,./-].*") {
            let q = quote(&arg);
            prop_assert!(q.starts_with('\'') && q.ends_with('\''));
        }

        #[test]
        fn joined_arguments_never_contain_an_unquoted_space(args in proptest::collection::vec(".*", 1..5)) {
            // The number of top-level words is always the number of arguments.
            prop_assert_eq!(split(&join(&args)).map(|v| v.len()), Some(args.len()));
        }
    }
}
