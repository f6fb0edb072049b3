//! Diagnostics that say what is wrong and where: `file:line:column: message`.
//!
//! Configuration and policy errors are collected rather than returned one at a time so that
//! `lpexec check` can report every problem in one run; the helper refuses if there is any.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the file as a whole.
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.msg)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.msg)
        }
    }
}

/// Several problems; `Display` prints one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diags(pub Vec<Diag>);

impl fmt::Display for Diags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diags {}

/// A file's text plus its name, for turning byte spans into line and column.
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// Byte offset of the start of every line (computed once: policies can be large).
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        Source { path, text, line_starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts.get(line.saturating_sub(1)).copied().unwrap_or(0);
        let col = self.text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        (line, col)
    }

    pub fn at(&self, span: &Range<usize>, msg: impl Into<String>) -> Diag {
        let (line, col) = self.line_col(span.start);
        Diag { file: self.path.to_path_buf(), line, col, msg: msg.into() }
    }

    pub fn whole(&self, msg: impl Into<String>) -> Diag {
        Diag { file: self.path.to_path_buf(), line: 0, col: 0, msg: msg.into() }
    }

    /// Turns a TOML syntax or schema error into a diagnostic.
    pub fn toml_error(&self, e: &toml::de::Error) -> Diag {
        // toml's message may span several lines (it quotes the source); keep the first.
        let msg = e.message().lines().next().unwrap_or("invalid TOML").trim().to_string();
        match e.span() {
            Some(span) => self.at(&span, msg),
            None => self.whole(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = Source::new(Path::new("/x.toml"), "a = 1\nbé = 2\n");
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        // "bé = 2": the "=" is the 4th character even though "é" is two bytes.
        assert_eq!(src.line_col(10), (2, 4));
        assert_eq!(src.at(&(6..7), "bad").to_string(), "/x.toml:2:1: bad");
        assert_eq!(src.line_col(5), (1, 6)); // the newline itself belongs to line 1
        assert_eq!(src.line_col(99), (3, 1));
    }
}
