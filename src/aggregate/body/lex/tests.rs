//! Tests of the lexer: each rule of the grammar, UTF-8 against `std`, and
//! the nesting cap.

use super::*;

/// Skips one value that must be the whole text.
fn skip(text: &[u8]) -> Result<(), Bad> {
    let mut cur = Cursor::new(text);
    cur.skip_value(0)?;
    match cur.skip_ws() {
        None => Ok(()),
        Some(_) => Err(Bad::Syntax),
    }
}

/// The offset of the first byte `special_bytes` flags in `text`.
fn first_special(text: &[u8]) -> usize {
    text.chunks(8)
        .map(|chunk| {
            let mut word = [b'a'; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            special_bytes(u64::from_le_bytes(word))
        })
        .position(|hits| hits != 0)
        .map_or(text.len(), |word| {
            let hits = special_bytes(u64::from_le_bytes(
                text[word * 8..]
                    .iter()
                    .chain([b'a'; 8].iter())
                    .take(8)
                    .copied()
                    .collect::<Vec<_>>()
                    .try_into()
                    .expect("eight bytes"),
            ));
            word * 8 + (hits.trailing_zeros() / 8) as usize
        })
}

#[test]
fn special_bytes_finds_the_first_hit() {
    let text = b"abcdefghijklmnopqrstuvwxyz";
    assert_eq!(first_special(text), text.len());
    for at in 0..text.len() {
        for hit in [b'"', b'\\', 0x00, 0x1f, 0x80, 0xff] {
            for after in [b'"', b'\\', 0x00, 0x20, 0x21, 0x5b, 0x5d] {
                let mut t = text.to_vec();
                t[at] = hit;
                if at + 1 < t.len() {
                    t[at + 1] = after;
                }
                assert_eq!(first_special(&t), at, "{hit:#x} at {at}, then {after:#x}");
            }
        }
    }
    assert_eq!(first_special(b" !#[]~\x7f\x7f\x7f"), 9);
}

#[test]
fn strings_are_read_in_words_and_bytes_alike() {
    // Every split of the same strings between the word loop and the end.
    let strings: &[&[u8]] = &[
        b"\"plain text\"",
        b"\"\\\"quoted\\\" \\\\ \\/ \\b\\f\\n\\r\\t\"",
        b"\"\\u00e9 \\uD83D\\uDE00 caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80\"",
        b"\"\\\\\"",
    ];
    for string in strings {
        for pad in 0..10 {
            let text = [string, &b" "[..]].concat();
            let text = [text, vec![b' '; pad]].concat();
            let mut cur = Cursor::new(&text);
            let (range, escaped) = cur.string().expect("a valid string");
            assert_eq!(range, 1..string.len() - 1);
            assert_eq!(escaped, string.contains(&b'\\'));
            assert_eq!(cur.pos(), string.len());
        }
        for cut in 1..string.len() {
            let mut cur = Cursor::new(&string[..cut]);
            assert!(cur.string().is_err(), "cut at {cut}");
        }
    }
}

#[test]
fn utf8_matches_std() {
    for a in 0x80..=0xffu8 {
        for b in [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff] {
            for c in [0x80, 0xbf, 0xc0] {
                for d in [0x80, 0xbf, 0x41] {
                    let bytes = [a, b, c, d];
                    let want = match std::str::from_utf8(&bytes) {
                        Ok(s) => s.chars().next().map(char::len_utf8),
                        Err(e) if e.valid_up_to() > 0 => {
                            std::str::from_utf8(&bytes[..e.valid_up_to()])
                                .ok()
                                .and_then(|s| s.chars().next())
                                .map(char::len_utf8)
                        }
                        Err(_) => None,
                    };
                    assert_eq!(utf8_len(&bytes).ok(), want, "{bytes:x?}");
                }
            }
        }
    }
}

#[test]
fn values_are_skipped_whole() {
    for text in [
        &b"0"[..],
        b"-0.5e+7",
        b"1E9",
        b"true",
        b"null",
        b"\"a\\u00e9\\n\xc3\xa9\"",
        b"[]",
        b"{}",
        b"[1,[2,{\"a\":[{}]}],\"x\"]",
        b"{ \"a\" : { \"b\" : [ 1 , 2 ] } , \"c\" : null }",
    ] {
        assert_eq!(skip(text), Ok(()), "{}", String::from_utf8_lossy(text));
    }
}

#[test]
fn bad_values_are_refused() {
    let cases: &[(&[u8], Bad)] = &[
        (b"", Bad::Truncated),
        (b"01", Bad::Syntax),
        (b"-", Bad::Truncated),
        (b"1.", Bad::Truncated),
        (b"1.e5", Bad::Syntax),
        (b"1e", Bad::Truncated),
        (b"+1", Bad::Syntax),
        (b"tru", Bad::Truncated),
        (b"nul!", Bad::Syntax),
        (b"\"a", Bad::Truncated),
        (b"\"\\x\"", Bad::Syntax),
        (b"\"\\u12g4\"", Bad::Syntax),
        (b"\"a\x01\"", Bad::Syntax),
        (b"\"\xff\"", Bad::NotUtf8),
        (b"\"\xed\xa0\x80\"", Bad::NotUtf8),
        (b"[1,]", Bad::Syntax),
        (b"[1 2]", Bad::Syntax),
        (b"{\"a\":1,}", Bad::Syntax),
        (b"{\"a\" 1}", Bad::Syntax),
        (b"{1:1}", Bad::Syntax),
        (b"[}", Bad::Syntax),
        (b"{\"a\":]", Bad::Syntax),
        (b"[[[", Bad::Truncated),
    ];
    for (text, want) in cases {
        assert_eq!(skip(text), Err(*want), "{}", String::from_utf8_lossy(text));
    }
}

#[test]
fn nesting_is_capped_without_recursion() {
    let deep = |n: usize| [vec![b'['; n], vec![b']'; n]].concat();
    assert_eq!(skip(&deep(128)), Ok(()));
    assert_eq!(skip(&deep(129)), Err(Bad::TooDeep));
    assert_eq!(skip(&deep(1_000_000)), Err(Bad::TooDeep));
    let mut cur = Cursor::new(b"[[]]");
    assert_eq!(cur.skip_value(127), Err(Bad::TooDeep));
}

#[test]
fn unescape_pairs_surrogates_strictly() {
    let text = |s: &str| {
        let mut out = String::new();
        unescape(s, |piece| out.push_str(piece)).map(|()| out)
    };
    assert_eq!(text(r"a\u0062c\n\/").as_deref(), Some("abc\n/"));
    assert_eq!(text(r"\ud83d\ude00!").as_deref(), Some("\u{1f600}!"));
    assert_eq!(text(r"\ud83d"), None);
    assert_eq!(text(r"\ud83dx"), None);
    assert_eq!(text(r"\ud83d\u0041"), None);
    assert_eq!(text(r"\ude00"), None);
}
