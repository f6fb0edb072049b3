//! Masking secrets in a byte stream (the role's `mask` patterns → `****`), also when a secret
//! arrives split across reads.
//!
//! Output is passed on as soon as it cannot be the start of a secret. Only a tail that could
//! still grow into a match is held back: an anchored lazy DFA is run from each candidate start
//! position in the last [`WINDOW`] bytes, and the earliest position whose DFA is not dead at
//! the end of the data is where hold-back starts. Held bytes are released (masked as far as
//! they match) when more data settles them, at [`HOLD`] after the last data, or at the end
//! of the session — so interactive echo is delayed by at most [`HOLD`], and only while what
//! was typed looks like the beginning of a secret.

use std::time::{Duration, Instant};

use regex::bytes::Regex;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Anchored, Input};

/// How far back a partial secret is looked for (and so the longest secret masked even when
/// split across reads).
pub const WINDOW: usize = 1024;
/// How long held-back output may wait for the rest of a possible secret.
pub const HOLD: Duration = Duration::from_millis(20);
/// What a secret becomes.
pub const REPLACEMENT: &[u8] = b"****";

/// The compiled patterns, shared by the maskers of all streams.
pub struct MaskSet {
    re: Regex,
    dfa: DFA,
    /// Bytes that can start a match (others need no DFA run).
    first: [bool; 256],
}

impl MaskSet {
    pub fn new(patterns: &[String]) -> Result<MaskSet, String> {
        if patterns.is_empty() {
            return Err("no mask patterns".into());
        }
        let combined = patterns.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
        let re = Regex::new(&combined).map_err(|e| format!("mask patterns: {e}"))?;
        let dfa = DFA::new(&combined).map_err(|e| format!("mask patterns: {e}"))?;
        let mut cache = dfa.create_cache();
        let mut first = [false; 256];
        let start = dfa
            .start_state_forward(&mut cache, &Input::new(&b""[..]).anchored(Anchored::Yes))
            .map_err(|e| format!("mask patterns: {e}"))?;
        for (b, slot) in first.iter_mut().enumerate() {
            *slot = match dfa.next_state(&mut cache, start, b as u8) {
                Ok(s) => !s.is_dead(),
                Err(_) => true,
            };
        }
        Ok(MaskSet { re, dfa, first })
    }
}

impl MaskSet {
    /// Masks a whole string at once (command lines, titles).
    pub fn mask_text(&self, s: &str) -> String {
        String::from_utf8_lossy(&self.re.replace_all(s.as_bytes(), REPLACEMENT)).into_owned()
    }
}

/// One stream's masker.
pub struct Masker<'a> {
    set: &'a MaskSet,
    cache: Cache,
    pending: Vec<u8>,
    last: Instant,
    /// How long held-back bytes may wait: [`HOLD`] for what the caller sees live; `None` for
    /// the recording, which can wait until the data settles (or the session ends).
    hold: Option<Duration>,
}

impl<'a> Masker<'a> {
    /// A masker for the recording: holds a possible secret until it is settled.
    pub fn new(set: &'a MaskSet) -> Masker<'a> {
        Masker { set, cache: set.dfa.create_cache(), pending: Vec::new(), last: Instant::now(), hold: None }
    }

    /// A masker for the live stream: releases held bytes after [`HOLD`].
    pub fn live(set: &'a MaskSet) -> Masker<'a> {
        Masker { hold: Some(HOLD), ..Masker::new(set) }
    }

    /// Whether some output is held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// When held-back output must be released.
    pub fn deadline(&self) -> Option<Instant> {
        self.hold.filter(|_| self.has_pending()).map(|h| self.last + h)
    }

    /// Takes `data`; appends to `out` everything that is now settled, with secrets masked.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(data);
        self.last = Instant::now();
        let hold = self.hold_from();
        self.emit(hold, out);
    }

    /// Releases everything held back (secrets in it masked).
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        let len = self.pending.len();
        self.emit(len, out);
    }

    /// Where the unsettled tail starts.
    fn hold_from(&mut self) -> usize {
        let len = self.pending.len();
        let window_start = len.saturating_sub(WINDOW);
        for p in window_start..len {
            if self.set.first[self.pending[p] as usize] && self.may_continue(p) {
                return p;
            }
        }
        len
    }

    /// Whether a match starting at `p` could still be in progress at the end of the data.
    fn may_continue(&mut self, p: usize) -> bool {
        let dfa = &self.set.dfa;
        let hay = &self.pending[p..];
        let Ok(mut sid) = dfa.start_state_forward(&mut self.cache, &Input::new(hay).anchored(Anchored::Yes))
        else {
            return true;
        };
        for &b in hay {
            match dfa.next_state(&mut self.cache, sid, b) {
                Ok(s) if s.is_dead() => return false,
                Ok(s) => sid = s,
                Err(_) => return true, // cache trouble: be conservative
            }
        }
        true
    }

    /// Emits `pending[..upto]` (moved back to the start of any match that crosses it),
    /// masking the matches inside.
    fn emit(&mut self, upto: usize, out: &mut Vec<u8>) {
        let mut upto = upto;
        let mut cut = Vec::new();
        for m in self.set.re.find_iter(&self.pending) {
            if m.start() >= upto {
                break;
            }
            if m.end() > upto || (m.end() == self.pending.len() && upto < self.pending.len()) {
                upto = m.start();
                break;
            }
            cut.push((m.start(), m.end()));
        }
        let mut at = 0;
        for (s, e) in cut {
            out.extend_from_slice(&self.pending[at..s]);
            out.extend_from_slice(REPLACEMENT);
            at = e;
        }
        out.extend_from_slice(&self.pending[at..upto]);
        self.pending.drain(..upto);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NPM: &str = "npm_[A-Za-z0-9]{36}";
    const TOKEN: &str = "npm_abcdefghijklmnopqrstuvwxyz0123456789";

    fn set(p: &[&str]) -> MaskSet {
        MaskSet::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    /// Feeds chunks, then flushes; returns everything emitted.
    fn run(s: &MaskSet, chunks: &[&[u8]]) -> String {
        let mut m = Masker::new(s);
        let mut out = Vec::new();
        for c in chunks {
            m.push(c, &mut out);
        }
        m.flush(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_whole_secret_is_masked() {
        let s = set(&[NPM]);
        assert_eq!(run(&s, &[format!("token {TOKEN} ok\n").as_bytes()]), "token **** ok\n");
    }

    #[test]
    fn a_secret_split_at_every_position_is_masked() {
        let s = set(&[NPM]);
        let text = format!("a {TOKEN} b");
        for cut in 0..=text.len() {
            let (x, y) = text.as_bytes().split_at(cut);
            assert_eq!(run(&s, &[x, y]), "a **** b", "cut at {cut}");
        }
        // one byte at a time
        let bytes: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
        assert_eq!(run(&s, &bytes), "a **** b");
    }

    #[test]
    fn ordinary_output_is_not_held_back() {
        let s = set(&[NPM]);
        let mut m = Masker::live(&s);
        let mut out = Vec::new();
        m.push(b"hello world\r\n$ ls", &mut out);
        assert_eq!(out, b"hello world\r\n$ ls");
        assert!(!m.has_pending());
        // the beginning of a possible secret is held, and only that
        m.push(b" npm_ab", &mut out);
        assert_eq!(out, b"hello world\r\n$ ls ");
        assert!(m.has_pending());
        assert!(m.deadline().is_some());
        assert!(Masker::new(&s).deadline().is_none());
        // it turns out not to be one
        m.push(b"!", &mut out);
        assert_eq!(out, b"hello world\r\n$ ls npm_ab!");
        assert!(!m.has_pending());
    }

    #[test]
    fn a_match_that_could_still_grow_is_held_until_settled() {
        let s = set(&["secret=[a-z]+"]);
        let mut m = Masker::new(&s);
        let mut out = Vec::new();
        m.push(b"x secret=abc", &mut out);
        assert_eq!(out, b"x ");
        m.push(b"def y", &mut out);
        assert_eq!(out, b"x **** y");
    }

    #[test]
    fn overlapping_patterns() {
        let s = set(&["AKIA[0-9A-Z]{16}", "[0-9A-Z]{20}"]);
        assert_eq!(run(&s, &[b"k=AKIAIOSFODNN7EXAMPLE;"]), "k=****;");
        let s = set(&["abc", "bcd"]);
        assert_eq!(run(&s, &[b"abcd"]), "****d");
        assert_eq!(run(&s, &[b"ab", b"cd"]), "****d");
    }

    #[test]
    fn secrets_at_buffer_edges() {
        let s = set(&[NPM]);
        assert_eq!(run(&s, &[TOKEN.as_bytes()]), "****");
        assert_eq!(run(&s, &[TOKEN.as_bytes(), TOKEN.as_bytes()]), "********");
        let big = format!("{}{TOKEN}", "x".repeat(5000));
        assert_eq!(run(&s, &[big.as_bytes()]), format!("{}****", "x".repeat(5000)));
        // Split exactly at the window boundary.
        let (a, b) = big.as_bytes().split_at(5000 + 10);
        assert_eq!(run(&s, &[a, b]), format!("{}****", "x".repeat(5000)));
    }

    #[test]
    fn flush_masks_what_it_releases() {
        let s = set(&["secret=[a-z]+"]);
        assert_eq!(run(&s, &[b"secret=abc"]), "****");
        assert_eq!(run(&s, &[b"secret="]), "secret=");
    }

    #[test]
    fn holdback_is_bounded() {
        let s = set(&["x[a-z]*y"]);
        let mut m = Masker::new(&s);
        let mut out = Vec::new();
        m.push(b"x", &mut out);
        m.push("a".repeat(3 * WINDOW).as_bytes(), &mut out);
        assert!(m.pending.len() <= WINDOW, "{}", m.pending.len());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// However the stream is cut, the result is exactly what masking the whole text at
            /// once gives.
            #[test]
            fn streaming_equals_whole_text(
                parts in proptest::collection::vec(prop_oneof![
                    Just("npm_abcdefghijklmnopqrstuvwxyz0123456789".to_string()),
                    Just("secret=".to_string()),
                    "[a-z= ]{0,8}",
                    Just("AKIAIOSFODNN7EXAMPLE".to_string()),
                ], 0..8),
                cuts in proptest::collection::vec(0usize..200, 0..6),
            ) {
                let s = set(&[NPM, "secret=[a-z]+", "AKIA[0-9A-Z]{16}"]);
                let text = parts.concat();
                let whole = String::from_utf8(s.re.replace_all(text.as_bytes(), REPLACEMENT).into_owned()).unwrap();
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
                cuts.sort();
                let mut chunks = Vec::new();
                let mut at = 0;
                for c in cuts {
                    chunks.push(&text.as_bytes()[at..c]);
                    at = c;
                }
                chunks.push(&text.as_bytes()[at..]);
                prop_assert_eq!(run(&s, &chunks), whole);
            }
        }
    }
}
