//! Incremental UTF-8 decoding of a byte stream that arrives in arbitrary chunks.
//!
//! A character split across two reads must come out whole, and invalid bytes must become
//! U+FFFD rather than an error: a recording has to hold whatever the command printed.

/// Decodes successive chunks; keeps at most 3 bytes of an unfinished character between calls.
#[derive(Debug, Default)]
pub struct Decoder {
    carry: Vec<u8>,
}

impl Decoder {
    /// Appends the text of `input` (plus any carried bytes) to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut String) {
        let joined;
        let mut bytes: &[u8] = if self.carry.is_empty() {
            input
        } else {
            let mut v = std::mem::take(&mut self.carry);
            v.extend_from_slice(input);
            joined = v;
            &joined
        };
        loop {
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    out.push_str(s);
                    return;
                }
                Err(e) => {
                    let (valid, rest) = bytes.split_at(e.valid_up_to());
                    // `valid` is valid UTF-8 by construction of the error.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            bytes = &rest[n..];
                        }
                        None => {
                            // An incomplete character at the end: wait for the next chunk.
                            self.carry = rest.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// End of stream: a character left unfinished becomes U+FFFD.
    pub fn finish(&mut self, out: &mut String) {
        if !self.carry.is_empty() {
            self.carry.clear();
            out.push('\u{FFFD}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(chunks: &[&[u8]]) -> String {
        let mut d = Decoder::default();
        let mut s = String::new();
        for c in chunks {
            d.decode(c, &mut s);
        }
        d.finish(&mut s);
        s
    }

    #[test]
    fn split_characters_come_out_whole() {
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(run(&[b"a", &euro[..1], &euro[1..2], &euro[2..], b"b"]), "a€b");
        let emoji = "😀".as_bytes();
        assert_eq!(run(&[&emoji[..3], &emoji[3..]]), "😀");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        assert_eq!(run(&[b"a\xffb"]), "a\u{FFFD}b");
        assert_eq!(run(&[b"\xc3"]), "\u{FFFD}"); // truncated at the end of the stream
        assert_eq!(run(&[b"\xe2\x82", b"x"]), "\u{FFFD}x");
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_result(bytes in proptest::collection::vec(any::<u8>(), 0..64), cut in 0usize..64) {
            let cut = cut.min(bytes.len());
            prop_assert_eq!(run(&[&bytes[..cut], &bytes[cut..]]), String::from_utf8_lossy(&bytes).into_owned());
        }
    }
}
