//! A single pass over a WeCom answer that finds what `facts::read` reads (`errcode`, `errmsg`
//! and the four undelivered-recipient lists at the top level) without serde, for the shapes
//! WeCom answers with. It never decides alone that an answer is broken: on anything outside
//! what it reads exactly as serde_json would (an escape in a field it keeps or in a top-level
//! key, a number `errcode` is not a plain integer in, a field of another type, a key seen twice,
//! trailing bytes, nesting past [`MAX_DEPTH`]) it gives up and `facts::read` asks serde_json.
//! Whatever it does answer, serde_json answers the same (`facts_tests.rs` checks it against
//! serde_json on generated and mutated bodies).
//!
//! What it holds serde_json to: JSON whitespace is space, tab, CR and LF; a value that is
//! skipped is checked as serde_json's `IgnoredAny` checks it (strings without control bytes
//! and with valid escapes, UTF-8 not checked; numbers of JSON's grammar, any size); a string
//! that is kept must be valid UTF-8.

/// What the top-level fields say, each as found (a field absent is `None`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scanned<'a> {
    /// `Some(None)`: `errcode` is `null`.
    pub errcode: Option<Option<i64>>,
    pub errmsg: Option<&'a str>,
    pub invaliduser: Option<&'a str>,
    pub invalidparty: Option<&'a str>,
    pub invalidtag: Option<&'a str>,
    pub unlicenseduser: Option<&'a str>,
}

/// Deepest nesting of skipped arrays and objects read here (deeper: serde_json reads it).
const MAX_DEPTH: u32 = 64;

/// Gave up: serde_json decides.
struct GiveUp;

type Step<T> = Result<T, GiveUp>;

/// The top-level fields of `body`, or `None` when serde_json must decide.
pub(super) fn scan(body: &[u8]) -> Option<Scanned<'_>> {
    let mut s = Scanner { b: body, i: 0 };
    s.object().ok()
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips JSON whitespace; the next byte, if any.
    fn ws(&mut self) -> Option<u8> {
        while let Some(c) = self.peek() {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    fn expect(&mut self, c: u8) -> Step<()> {
        if self.ws() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// The top-level object, then nothing but whitespace.
    fn object(&mut self) -> Step<Scanned<'a>> {
        let mut out = Scanned::default();
        self.expect(b'{')?;
        if self.ws() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                self.expect(b'"')?;
                let key = self.plain_string()?;
                if !key.is_ascii() {
                    return Err(GiveUp);
                }
                self.expect(b':')?;
                self.ws();
                match key {
                    b"errcode" => set(&mut out.errcode, self.errcode()?)?,
                    b"errmsg" => set(&mut out.errmsg, self.text()?)?,
                    b"invaliduser" => set(&mut out.invaliduser, self.text()?)?,
                    b"invalidparty" => set(&mut out.invalidparty, self.text()?)?,
                    b"invalidtag" => set(&mut out.invalidtag, self.text()?)?,
                    b"unlicenseduser" => set(&mut out.unlicenseduser, self.text()?)?,
                    _ => self.skip_value()?,
                }
                match self.ws() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(GiveUp),
                }
            }
        }
        match self.ws() {
            None => Ok(out),
            Some(_) => Err(GiveUp),
        }
    }

    /// A string's bytes after its opening quote, up to its closing one, when it has no escape
    /// and no control byte (anything else: give up).
    fn plain_string(&mut self) -> Step<&'a [u8]> {
        let rest = &self.b[self.i..];
        let at = crate::plain::json_special_at(rest).ok_or(GiveUp)?;
        if rest[at] != b'"' {
            return Err(GiveUp);
        }
        self.i += at + 1;
        Ok(&rest[..at])
    }

    /// A kept string field: a plain string of valid UTF-8.
    fn text(&mut self) -> Step<&'a str> {
        self.expect(b'"')?;
        let bytes = self.plain_string()?;
        std::str::from_utf8(bytes).map_err(|_| GiveUp)
    }

    /// `errcode`: `null`, or an integer of at most 18 digits (no fraction, no exponent, not
    /// `-0`, which serde_json reads as a float).
    fn errcode(&mut self) -> Step<Option<i64>> {
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            return Ok(None);
        }
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let mut n: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start == 18 {
                return Err(GiveUp);
            }
            n = n * 10 + i64::from(c - b'0');
            self.i += 1;
        }
        let digits = self.i - start;
        let leading_zero = digits > 1 && self.b[start] == b'0';
        if digits == 0 || leading_zero || (negative && n == 0) {
            return Err(GiveUp);
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(GiveUp);
        }
        Ok(Some(if negative { -n } else { n }))
    }

    /// Skips one value as serde_json's `IgnoredAny` does, arrays and objects included.
    fn skip_value(&mut self) -> Step<()> {
        // Bit i set: the container at depth i + 1 is an object.
        let mut objects: u64 = 0;
        let mut depth: u32 = 0;
        loop {
            // A value.
            match self.ws() {
                Some(b'"') => {
                    self.i += 1;
                    self.skip_string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.skip_number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(c @ (b'[' | b'{')) => {
                    self.i += 1;
                    if depth == MAX_DEPTH {
                        return Err(GiveUp);
                    }
                    let object = c == b'{';
                    objects = (objects & !(1 << depth)) | (u64::from(object) << depth);
                    depth += 1;
                    let close = if object { b'}' } else { b']' };
                    if self.ws() == Some(close) {
                        self.i += 1;
                        depth -= 1;
                    } else {
                        if object {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                _ => return Err(GiveUp),
            }
            // After a value: a comma and the next one, or the end of containers.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let object = objects & (1 << (depth - 1)) != 0;
                let close = if object { b'}' } else { b']' };
                match self.ws() {
                    Some(b',') => {
                        self.i += 1;
                        if object {
                            self.member_key()?;
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.i += 1;
                        depth -= 1;
                    }
                    _ => return Err(GiveUp),
                }
            }
        }
    }

    /// A skipped object's key and its colon.
    fn member_key(&mut self) -> Step<()> {
        self.expect(b'"')?;
        self.skip_string()?;
        self.expect(b':')
    }

    /// Skips a string after its opening quote: no control byte, escapes valid.
    fn skip_string(&mut self) -> Step<()> {
        loop {
            let rest = &self.b[self.i..];
            let at = crate::plain::json_special_at(rest).ok_or(GiveUp)?;
            self.i += at + 1;
            match rest[at] {
                b'"' => return Ok(()),
                b'\\' => match self.peek() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                    Some(b'u') => {
                        let hex = self.b.get(self.i + 1..self.i + 5).ok_or(GiveUp)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(GiveUp);
                        }
                        self.i += 5;
                    }
                    _ => return Err(GiveUp),
                },
                _ => return Err(GiveUp),
            }
        }
    }

    /// Skips a number of JSON's grammar: `-`? (`0` | [1-9][0-9]*) (`.`[0-9]+)? ([eE][+-]?[0-9]+)?
    fn skip_number(&mut self) -> Step<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(GiveUp);
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(GiveUp),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(GiveUp);
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(GiveUp);
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Step<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(GiveUp)
        }
    }
}

/// Records a field's value; a field seen twice is an error to serde_json: give up.
fn set<T>(slot: &mut Option<T>, value: T) -> Step<()> {
    if slot.is_some() {
        return Err(GiveUp);
    }
    *slot = Some(value);
    Ok(())
}
