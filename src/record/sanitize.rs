//! Making recorded output safe to show on an auditor's terminal.
//!
//! A recording holds whatever the command printed, and the person who ran it chose the
//! command. Some escape sequences make a terminal *act* rather than draw: set the clipboard
//! (OSC 52), change the window title, or answer a query by typing into its input (device
//! status and attribute reports, window reports) — input that the auditor's shell would read
//! once replay ends (the CVE-2023-28487 class). When replaying to a terminal, lpexec drops
//! OSC, DCS, APC, PM and SOS strings and the reporting CSI sequences; everything that draws
//! (text, colours, cursor motion, clearing) passes.

/// A filter that keeps its state across chunks (a sequence may be split between events).
#[derive(Debug, Default)]
pub struct Sanitizer {
    state: State,
    csi: Vec<char>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Text,
    Esc,
    Csi,
    /// Inside an OSC/DCS/APC/PM/SOS string: dropped up to BEL or ST.
    String,
    StringEsc,
}

impl Sanitizer {
    pub fn filter(&mut self, input: &str, out: &mut String) {
        for c in input.chars() {
            match self.state {
                State::Text => match c {
                    '\x1b' => self.state = State::Esc,
                    // C1 controls that start strings or CSI.
                    '\u{9d}' | '\u{90}' | '\u{9f}' | '\u{9e}' | '\u{98}' => self.state = State::String,
                    '\u{9b}' => {
                        self.csi.clear();
                        self.state = State::Csi;
                    }
                    c => out.push(c),
                },
                State::Esc => match c {
                    ']' | 'P' | '_' | '^' | 'X' => self.state = State::String,
                    '[' => {
                        self.csi.clear();
                        self.state = State::Csi;
                    }
                    c => {
                        out.push('\x1b');
                        out.push(c);
                        self.state = State::Text;
                    }
                },
                State::Csi => {
                    self.csi.push(c);
                    if ('\x40'..='\x7e').contains(&c) {
                        // final byte: drop the reporting ones (DSR n, DA c, window ops t, DECRQM p with $, XTVERSION q)
                        let reporting =
                            matches!(c, 'n' | 'c' | 't' | 'q') || (c == 'p' && self.csi.contains(&'$'));
                        if !reporting {
                            out.push('\x1b');
                            out.push('[');
                            out.extend(self.csi.iter());
                        }
                        self.state = State::Text;
                    } else if self.csi.len() > 64 {
                        self.state = State::Text; // absurd sequence: drop it
                    }
                }
                State::String => match c {
                    '\x07' | '\u{9c}' => self.state = State::Text,
                    '\x1b' => self.state = State::StringEsc,
                    _ => {}
                },
                State::StringEsc => self.state = if c == '\\' { State::Text } else { State::String },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(chunks: &[&str]) -> String {
        let mut s = Sanitizer::default();
        let mut out = String::new();
        for c in chunks {
            s.filter(c, &mut out);
        }
        out
    }

    #[test]
    fn drawing_passes_and_acting_is_dropped() {
        assert_eq!(
            clean(&["\x1b[1;31mred\x1b[0m\r\n\x1b[2J\x1b[H"]),
            "\x1b[1;31mred\x1b[0m\r\n\x1b[2J\x1b[H"
        );
        assert_eq!(clean(&["a\x1b]52;c;cm0gLXJmIH4=\x07b"]), "ab"); // clipboard
        assert_eq!(clean(&["a\x1b]0;title\x1b\\b"]), "ab");
        assert_eq!(clean(&["a\x1b[6nb\x1b[cc\x1b[21td"]), "abcd"); // reports
        assert_eq!(clean(&["a\x1bP+q544e\x1b\\b"]), "ab"); // DCS
        assert_eq!(clean(&["x\x1b]52;", "c;AAAA", "\x07y"]), "xy"); // split across events
    }
}
