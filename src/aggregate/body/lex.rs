//! A validating JSON lexer over bytes: strings, numbers, literals and whole
//! values are checked against the JSON grammar (RFC 8259) and skipped
//! without allocating. It knows nothing of job lists; `scan` builds on it.
//!
//! # Implementation notes
//!
//! Strings are searched eight bytes at a time for the bytes that need a
//! look (`"`, `\`, control bytes and non-ASCII bytes); UTF-8 is checked
//! only where a string has non-ASCII bytes (anywhere else they are a syntax
//! error anyway). Values nest without recursion: a `u128` holds one bit per
//! open array or object, so nesting is capped at [`MAX_DEPTH`].

use std::ops::Range;

/// Arrays and objects nested deeper than this make a body invalid. It
/// counts from the top of the body, as serde_json's own limit does.
pub(super) const MAX_DEPTH: u32 = 128;

/// The bytes that may follow a backslash on their own (`u` takes four hex
/// digits more).
const SHORT_ESCAPES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    let escapes = b"\"\\/bfnrt";
    while i < escapes.len() {
        table[escapes[i] as usize] = true;
        i += 1;
    }
    table
};

/// Why bytes are not JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bad {
    /// The bytes end inside a value.
    Truncated,
    /// Anything else against the grammar.
    Syntax,
    /// A string holds bytes that are not UTF-8.
    NotUtf8,
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// A position in a JSON text.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

// === impl Cursor ===

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// The whole text.
    pub(super) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The offset of the next byte.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// Steps over `n` bytes already looked at.
    pub(super) fn advance(&mut self, n: usize) {
        self.pos += n;
    }

    /// Skips whitespace; the next byte, if any.
    #[inline(always)]
    pub(super) fn skip_ws(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b' ' | b'\n' | b'\r' | b'\t' => self.pos += 1,
                _ => return Some(b),
            }
        }
        None
    }

    /// Skips whitespace and consumes `want`, which must come next.
    #[inline(always)]
    pub(super) fn expect(&mut self, want: u8) -> Result<(), Bad> {
        match self.skip_ws() {
            Some(b) if b == want => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(Bad::Syntax),
            None => Err(Bad::Truncated),
        }
    }

    /// Just after an opening `[` or `{`: whether a first element or member
    /// follows (`false` when `close` comes at once, and is consumed).
    #[inline(always)]
    pub(super) fn enter(&mut self, close: u8) -> Result<bool, Bad> {
        match self.skip_ws() {
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) => Ok(true),
            None => Err(Bad::Truncated),
        }
    }

    /// After an element or member: whether a `,` (another one follows) or
    /// `close` (the end) comes next; either is consumed.
    #[inline(always)]
    pub(super) fn next_or_close(&mut self, close: u8) -> Result<bool, Bad> {
        match self.skip_ws() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) => Err(Bad::Syntax),
            None => Err(Bad::Truncated),
        }
    }

    /// An object member's key and its `:`; the range of the key's content
    /// and whether it has escapes.
    #[inline(always)]
    pub(super) fn key(&mut self) -> Result<(Range<usize>, bool), Bad> {
        match self.skip_ws() {
            Some(b'"') => {}
            Some(_) => return Err(Bad::Syntax),
            None => return Err(Bad::Truncated),
        }
        let key = self.string()?;
        self.expect(b':')?;
        Ok(key)
    }

    /// A string whose opening quote is the next byte: the range of its
    /// content (between the quotes) and whether it has escapes. Escapes are
    /// checked for form only (`\uD800` alone passes, as the grammar allows).
    #[inline(always)]
    pub(super) fn string(&mut self) -> Result<(Range<usize>, bool), Bad> {
        let start = self.pos + 1;
        let mut pos = start;
        let mut escaped = false;
        // The common case, eight bytes at a time: ASCII text, one-letter
        // escapes and the closing quote.
        while let Some(chunk) = self.bytes.get(pos..pos + 8) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let hits = special_bytes(word);
            if hits == 0 {
                pos += 8;
                continue;
            }
            let at = hits.trailing_zeros() / 8;
            pos += at as usize;
            match (word >> (at * 8)) as u8 {
                b'"' => {
                    self.pos = pos + 1;
                    return Ok((start..pos, escaped));
                }
                b'\\' if self.is_short_escape(pos + 1) => {
                    escaped = true;
                    pos += 2;
                }
                _ => break,
            }
        }
        self.pos = pos;
        self.string_rest(start, escaped)
    }

    /// The rest of a string from the cursor on, a byte at a time where
    /// needed: non-ASCII text, `\u` escapes, errors, the end of the bytes.
    #[inline(never)]
    fn string_rest(
        &mut self,
        start: usize,
        mut escaped: bool,
    ) -> Result<(Range<usize>, bool), Bad> {
        loop {
            let rest = &self.bytes[self.pos..];
            self.pos += rest
                .iter()
                .position(|&b| b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80)
                .unwrap_or(rest.len());
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok((start..self.pos - 1, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    if self.is_short_escape(self.pos + 1) {
                        self.pos += 2;
                    } else {
                        self.unicode_escape()?;
                    }
                }
                Some(&b) if b < 0x20 => return Err(Bad::Syntax),
                Some(_) => self.pos += utf8_len(&self.bytes[self.pos..])?,
                None => return Err(Bad::Truncated),
            }
        }
    }

    /// Whether the byte at `at` makes a one-letter escape after a backslash.
    #[inline(always)]
    fn is_short_escape(&self, at: usize) -> bool {
        self.bytes
            .get(at)
            .is_some_and(|&b| SHORT_ESCAPES[usize::from(b)])
    }

    /// One literal (`true`, `false` or `null`), given whole.
    pub(super) fn literal(&mut self, word: &[u8]) -> Result<(), Bad> {
        let rest = &self.bytes[self.pos..];
        if rest.starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else if word.starts_with(rest) {
            Err(Bad::Truncated)
        } else {
            Err(Bad::Syntax)
        }
    }

    /// One value of any kind, after optional whitespace. `depth` is how
    /// many arrays and objects enclose it.
    pub(super) fn skip_value(&mut self, depth: u32) -> Result<(), Bad> {
        let mut byte = self.skip_ws().ok_or(Bad::Truncated)?;
        if byte != b'{' && byte != b'[' {
            return self.scalar(byte);
        }
        let room = MAX_DEPTH.saturating_sub(depth);
        // Bit 0 is the innermost open container: 1 for an object.
        let mut objects: u128 = 0;
        let mut open: u32 = 0;
        loop {
            // `byte` is the first byte of a value, at the cursor.
            if byte == b'{' || byte == b'[' {
                if open == room {
                    return Err(Bad::TooDeep);
                }
                let object = byte == b'{';
                objects = objects << 1 | u128::from(object);
                open += 1;
                self.pos += 1;
                if self.enter(if object { b'}' } else { b']' })? {
                    if object {
                        self.key()?;
                    }
                    byte = self.skip_ws().ok_or(Bad::Truncated)?;
                    continue;
                }
                objects >>= 1;
                open -= 1;
            } else {
                self.scalar(byte)?;
            }

            // After a value: close containers until a `,` starts the next.
            loop {
                if open == 0 {
                    return Ok(());
                }
                let object = objects & 1 == 1;
                if self.next_or_close(if object { b'}' } else { b']' })? {
                    if object {
                        self.key()?;
                    }
                    byte = self.skip_ws().ok_or(Bad::Truncated)?;
                    break;
                }
                objects >>= 1;
                open -= 1;
            }
        }
    }

    /// A string, number or literal starting with `first`, the next byte.
    #[inline(always)]
    fn scalar(&mut self, first: u8) -> Result<(), Bad> {
        match first {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => Err(Bad::Syntax),
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), Bad> {
        let b = self.bytes;
        let mut p = self.pos;
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        match b.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => p = digits(b, p + 1),
            Some(_) => return Err(Bad::Syntax),
            None => return Err(Bad::Truncated),
        }
        if b.get(p) == Some(&b'.') {
            p = some_digits(b, p + 1)?;
        }
        if let Some(b'e' | b'E') = b.get(p) {
            p += 1;
            if let Some(b'+' | b'-') = b.get(p) {
                p += 1;
            }
            p = some_digits(b, p)?;
        }
        self.pos = p;
        Ok(())
    }

    /// The escape whose backslash is the next byte, other than the
    /// one-letter ones: `\uXXXX`.
    fn unicode_escape(&mut self) -> Result<(), Bad> {
        match self.bytes.get(self.pos + 1) {
            Some(b'u') => {}
            Some(_) => return Err(Bad::Syntax),
            None => return Err(Bad::Truncated),
        }
        let hex = self
            .bytes
            .get(self.pos + 2..self.pos + 6)
            .ok_or(Bad::Truncated)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(Bad::Syntax);
        }
        self.pos += 6;
        Ok(())
    }
}

/// The content of a string as text, with escapes replaced, passed to `out`
/// piece by piece. `content` must have passed [`Cursor::string`]. `None`
/// when a `\u` escape is a surrogate without its pair, which serde_json
/// refuses wherever it reads a string as text.
pub(super) fn unescape(content: &str, mut out: impl FnMut(&str)) -> Option<()> {
    let mut rest = content;
    while let Some(at) = rest.find('\\') {
        out(&rest[..at]);
        let kind = *rest.as_bytes().get(at + 1)?;
        rest = rest.get(at + 2..)?;
        let c = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = hex4(rest)?;
                rest = rest.get(4..)?;
                match unit {
                    0xD800..=0xDBFF => {
                        let low = hex4(rest.strip_prefix("\\u")?)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        rest = rest.get(6..)?;
                        char::from_u32(0x1_0000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        };
        out(c.encode_utf8(&mut [0; 4]));
    }
    out(rest);
    Some(())
}

/// The value of four hex digits at the start of `s`.
fn hex4(s: &str) -> Option<u32> {
    let hex = s.get(..4)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// The offset of the first byte after the digits from `from` on.
#[inline]
fn digits(b: &[u8], from: usize) -> usize {
    from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Like [`digits`], but at least one digit must be there.
#[inline]
fn some_digits(b: &[u8], from: usize) -> Result<usize, Bad> {
    match b.get(from) {
        Some(b'0'..=b'9') => Ok(digits(b, from + 1)),
        Some(_) => Err(Bad::Syntax),
        None => Err(Bad::Truncated),
    }
}

/// The bytes of `word` (read little-endian) that need a look inside a
/// string: `"`, `\`, control bytes and non-ASCII bytes. Each has its high
/// bit set in the result, and the lowest set bit is always a true one.
#[inline]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    // A byte below 0x20, or equal to `"` or `\`, borrows and sets its high
    // bit; a borrow only ever passes upwards from such a byte, so only bits
    // above a true one can be false. Non-ASCII bytes have theirs already.
    (word.wrapping_sub(ONES * 0x20)
        | quote.wrapping_sub(ONES)
        | backslash.wrapping_sub(ONES)
        | word)
        & (ONES << 7)
}

/// The length of the UTF-8 sequence at the start of `bytes`, whose first
/// byte is not ASCII (the well-formed sequences of Unicode's table 3-7).
fn utf8_len(bytes: &[u8]) -> Result<usize, Bad> {
    let (len, second) = match bytes.first() {
        Some(0xC2..=0xDF) => (2, 0x80..=0xBF),
        Some(0xE0) => (3, 0xA0..=0xBF),
        Some(0xE1..=0xEC | 0xEE..=0xEF) => (3, 0x80..=0xBF),
        Some(0xED) => (3, 0x80..=0x9F),
        Some(0xF0) => (4, 0x90..=0xBF),
        Some(0xF1..=0xF3) => (4, 0x80..=0xBF),
        Some(0xF4) => (4, 0x80..=0x8F),
        _ => return Err(Bad::NotUtf8),
    };
    match bytes.get(1..len) {
        Some([first, rest @ ..])
            if second.contains(first) && rest.iter().all(|b| (0x80..=0xBF).contains(b)) =>
        {
            Ok(len)
        }
        _ => Err(Bad::NotUtf8),
    }
}

#[cfg(test)]
mod tests;
