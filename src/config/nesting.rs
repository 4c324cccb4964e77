//! A cheap pass over the config text, before the YAML parser sees it, that bounds how deeply
//! its collections nest.
//!
//! libyaml (under serde_yaml) keeps one "possible simple key" per open flow collection and
//! visits all of them for every token, so its work grows with the square of the nesting: a file
//! of 100,000 nested `[` keeps it busy for minutes. serde_yaml's own recursion limit (128) only
//! applies once the whole document has been parsed. This pass follows libyaml's scanner in
//! everything that decides where a token starts and ends (plain scalars over several lines, in
//! block and in flow context; quoted scalars; block scalars `|` and `>` with their indentation;
//! comments; anchors, aliases and tags; the indentation stack and simple keys), without building
//! tokens. It stops where libyaml would report an error, as libyaml stops there too. The depth
//! is the open flow collections plus the open block collections; the scan is linear in the text,
//! and refuses a text nested deeper than the limit, with the line and column.

/// The deepest nesting the config accepts. The deepest key of the config format is six levels
/// down (`routes[].request_headers.add.<name>[]`).
pub(super) const MAX_DEPTH: usize = 32;

/// Where the nesting went past the limit (1-based, as YAML errors count).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TooDeep {
    pub(super) line: usize,
    pub(super) column: usize,
}

/// Checks that no collection in `text` nests deeper than `max`.
pub(super) fn check(text: &str, max: usize) -> Result<(), TooDeep> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        chars: 0,
        line: 0,
        col: 0,
        indent: -1,
        indents: Vec::new(),
        maps: Vec::new(),
        indentless: None,
        keys: vec![None],
        simple_key_allowed: true,
        max,
    };
    if s.b.starts_with(b"\xEF\xBB\xBF") {
        s.i = 3;
    }
    match s.run() {
        Ok(Flow::Stop) | Ok(Flow::Go) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A possible simple key (a mapping key on one line, before its `:`).
#[derive(Clone, Copy)]
struct Key {
    line: usize,
    col: usize,
    chars: usize,
    /// A block key at the current indentation: libyaml reports an error when it is not one.
    required: bool,
}

/// Whether to go on scanning, or stop where libyaml reports an error (and parses no further).
#[derive(PartialEq)]
enum Flow {
    Go,
    Stop,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Characters consumed (libyaml's `mark.index`).
    chars: usize,
    line: usize,
    /// In characters.
    col: usize,
    /// libyaml's `parser->indent`: the column of the innermost block collection, -1 at first.
    indent: isize,
    /// The enclosing indentations; one entry per open block collection.
    indents: Vec<isize>,
    /// Whether each open block collection is a mapping (else a sequence).
    maps: Vec<bool>,
    /// A sequence at its mapping key's column (`key:` then `- a` below it), which libyaml's
    /// parser opens without an indentation level: the indentation it lives at.
    indentless: Option<isize>,
    /// One possible simple key per flow level (the first is the block context's).
    keys: Vec<Option<Key>>,
    simple_key_allowed: bool,
    max: usize,
}

/// libyaml's `IS_ALPHA`: the characters of anchors, aliases and tag handles.
fn alpha(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn flow_indicator(c: u8) -> bool {
    matches!(c, b',' | b'[' | b']' | b'{' | b'}')
}

impl Scanner<'_> {
    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn eof(&self) -> bool {
        self.i >= self.b.len()
    }

    /// The length of the line break at `i + k`, if one is there (libyaml's `IS_BREAK`: CR, LF,
    /// NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR).
    fn brk(&self, k: usize) -> usize {
        let r = &self.b[(self.i + k).min(self.b.len())..];
        match r {
            [b'\r', b'\n', ..] => 2,
            [b'\r' | b'\n', ..] => 1,
            [0xC2, 0x85, ..] => 2,
            [0xE2, 0x80, 0xA8 | 0xA9, ..] => 3,
            _ => 0,
        }
    }

    fn blank(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    /// Blank, a line break or the end (libyaml's `IS_BLANKZ`).
    fn blankz(&self, k: usize) -> bool {
        self.i + k >= self.b.len() || self.blank(k) || self.brk(k) > 0
    }

    /// Consumes one character or one line break.
    fn advance(&mut self) {
        let n = self.brk(0);
        if n > 0 {
            self.i += n;
            self.chars += if n == 2 && self.b[self.i - 2] == b'\r' {
                2
            } else {
                1
            };
            self.line += 1;
            self.col = 0;
            return;
        }
        let len = match self.at(0) {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        self.i = (self.i + len).min(self.b.len());
        self.chars += 1;
        self.col += 1;
    }

    fn depth(&self) -> usize {
        self.indents.len() + self.keys.len() - 1 + usize::from(self.indentless.is_some())
    }

    fn too_deep(&self) -> Result<(), TooDeep> {
        if self.depth() > self.max {
            return Err(TooDeep {
                line: self.line + 1,
                column: self.col + 1,
            });
        }
        Ok(())
    }

    fn flow(&self) -> bool {
        self.keys.len() > 1
    }

    /// A block collection (a mapping when `map`) opens at `col` when it is deeper than the
    /// current one. Returns whether it opened.
    fn roll_indent(&mut self, col: usize, map: bool) -> Result<bool, TooDeep> {
        if !self.flow() && self.indent < col as isize {
            self.indents.push(self.indent);
            self.maps.push(map);
            self.indent = col as isize;
            self.too_deep()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn unroll_indent(&mut self, col: isize) {
        if self.flow() {
            return;
        }
        while self.indent > col {
            self.indent = self.indents.pop().unwrap_or(-1);
            self.maps.pop();
        }
        if self.indentless.is_some_and(|at| self.indent < at) {
            self.indentless = None;
        }
    }

    /// Forgets the current level's key; `Stop` where libyaml reports a missing `:`.
    fn remove_key(&mut self) -> Flow {
        match self.keys.last_mut().and_then(Option::take) {
            Some(k) if k.required => Flow::Stop,
            _ => Flow::Go,
        }
    }

    fn save_key(&mut self) -> Flow {
        if !self.simple_key_allowed {
            return Flow::Go;
        }
        let key = Key {
            line: self.line,
            col: self.col,
            chars: self.chars,
            required: !self.flow() && self.indent == self.col as isize,
        };
        if self.remove_key() == Flow::Stop {
            return Flow::Stop;
        }
        if let Some(top) = self.keys.last_mut() {
            *top = Some(key);
        }
        Flow::Go
    }

    /// Keys not followed by `:` on their line (or within 1024 characters) are no keys.
    fn stale_keys(&mut self) -> Flow {
        let (line, chars) = (self.line, self.chars);
        for slot in &mut self.keys {
            if let Some(k) = slot {
                if k.line < line || k.chars + 1024 < chars {
                    if k.required {
                        return Flow::Stop;
                    }
                    *slot = None;
                }
            }
        }
        Flow::Go
    }

    /// libyaml's `yaml_parser_scan_to_next_token`: white space, comments and line breaks.
    fn skip_to_next_token(&mut self) {
        loop {
            while self.at(0) == b' '
                || ((self.flow() || !self.simple_key_allowed) && self.at(0) == b'\t')
            {
                self.advance();
            }
            if self.at(0) == b'#' {
                while !self.eof() && self.brk(0) == 0 {
                    self.advance();
                }
            }
            if self.brk(0) > 0 {
                self.advance();
                if !self.flow() {
                    self.simple_key_allowed = true;
                }
            } else {
                break;
            }
        }
    }

    fn document_indicator(&self) -> bool {
        self.col == 0
            && (self.b[self.i..].starts_with(b"---") || self.b[self.i..].starts_with(b"..."))
            && self.blankz(3)
    }

    fn run(&mut self) -> Result<Flow, TooDeep> {
        loop {
            self.skip_to_next_token();
            if self.eof() {
                return Ok(Flow::Go);
            }
            if self.stale_keys() == Flow::Stop {
                return Ok(Flow::Stop);
            }
            self.unroll_indent(self.col as isize);
            let c = self.at(0);
            if !self.flow()
                && self.indentless == Some(self.col as isize)
                && !(c == b'-' && self.blankz(1))
            {
                // Back at the sequence's column with something else than an entry.
                self.indentless = None;
            }
            if self.col == 0 && c == b'%' {
                // A directive: the rest of the line.
                while !self.eof() && self.brk(0) == 0 {
                    self.advance();
                }
                continue;
            }
            if self.document_indicator() {
                self.unroll_indent(-1);
                if self.remove_key() == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                self.simple_key_allowed = false;
                for _ in 0..3 {
                    self.advance();
                }
                continue;
            }
            let step = match c {
                b'[' | b'{' => {
                    if self.save_key() == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                    self.keys.push(None);
                    self.too_deep()?;
                    self.simple_key_allowed = true;
                    self.advance();
                    Flow::Go
                }
                b']' | b'}' => {
                    if self.remove_key() == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                    if self.keys.len() > 1 {
                        self.keys.pop();
                    }
                    self.simple_key_allowed = false;
                    self.advance();
                    Flow::Go
                }
                b',' => {
                    let f = self.remove_key();
                    self.simple_key_allowed = true;
                    self.advance();
                    f
                }
                b'-' if self.blankz(1) => {
                    if self.flow() {
                        // A block entry in a flow collection: the parser stops here.
                        return Ok(Flow::Stop);
                    }
                    if !self.simple_key_allowed {
                        return Ok(Flow::Stop);
                    }
                    let opened = self.roll_indent(self.col, false)?;
                    if !opened
                        && self.indent == self.col as isize
                        && self.maps.last() == Some(&true)
                        && self.indentless.is_none()
                    {
                        self.indentless = Some(self.indent);
                        self.too_deep()?;
                    }
                    let f = self.remove_key();
                    self.simple_key_allowed = true;
                    self.advance();
                    f
                }
                b'?' if self.flow() || self.blankz(1) => {
                    if !self.flow() {
                        if !self.simple_key_allowed {
                            return Ok(Flow::Stop);
                        }
                        self.roll_indent(self.col, true)?;
                    }
                    let f = self.remove_key();
                    self.simple_key_allowed = !self.flow();
                    self.advance();
                    f
                }
                b':' if self.flow() || self.blankz(1) => {
                    match self.keys.last_mut().and_then(Option::take) {
                        Some(k) => {
                            self.roll_indent(k.col, true)?;
                            self.simple_key_allowed = false;
                        }
                        None => {
                            if !self.flow() {
                                if !self.simple_key_allowed {
                                    return Ok(Flow::Stop);
                                }
                                self.roll_indent(self.col, true)?;
                            }
                            self.simple_key_allowed = !self.flow();
                        }
                    }
                    self.advance();
                    Flow::Go
                }
                b'*' | b'&' => self.anchor(),
                b'!' => self.tag(),
                b'|' | b'>' if !self.flow() => self.block_scalar(),
                b'\'' | b'"' => self.quoted(c),
                _ => {
                    let indicator = matches!(
                        c,
                        b'-' | b'?'
                            | b':'
                            | b','
                            | b'['
                            | b']'
                            | b'{'
                            | b'}'
                            | b'#'
                            | b'&'
                            | b'*'
                            | b'!'
                            | b'|'
                            | b'>'
                            | b'\''
                            | b'"'
                            | b'%'
                            | b'@'
                            | b'`'
                    );
                    let plain_start = !(self.blankz(0) || indicator)
                        || (c == b'-' && !self.blank(1))
                        || (!self.flow() && matches!(c, b'?' | b':') && !self.blankz(1));
                    if !plain_start {
                        // "found character that cannot start any token" (a tab, `@`, ...).
                        return Ok(Flow::Stop);
                    }
                    self.plain()
                }
            };
            if step == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
    }

    fn anchor(&mut self) -> Flow {
        if self.save_key() == Flow::Stop {
            return Flow::Stop;
        }
        self.simple_key_allowed = false;
        self.advance();
        let start = self.i;
        while alpha(self.at(0)) {
            self.advance();
        }
        let ok = self.i > start
            && (self.blankz(0)
                || matches!(
                    self.at(0),
                    b'?' | b':' | b',' | b']' | b'}' | b'%' | b'@' | b'`'
                ));
        if ok {
            Flow::Go
        } else {
            Flow::Stop
        }
    }

    fn tag(&mut self) -> Flow {
        if self.save_key() == Flow::Stop {
            return Flow::Stop;
        }
        self.simple_key_allowed = false;
        self.advance();
        let uri = |c: u8, verbatim: bool| {
            alpha(c)
                || b";/?:@&=+$.%!~*'()".contains(&c)
                || (verbatim && matches!(c, b',' | b'[' | b']'))
        };
        if self.at(0) == b'<' {
            self.advance();
            while uri(self.at(0), true) {
                self.advance();
            }
            if self.at(0) != b'>' {
                return Flow::Stop;
            }
            self.advance();
        } else {
            while uri(self.at(0), false) {
                self.advance();
            }
        }
        if !(self.blankz(0) || (self.flow() && self.at(0) == b',')) {
            return Flow::Stop;
        }
        Flow::Go
    }

    /// `'…'` or `"…"`, over as many lines as it takes.
    fn quoted(&mut self, q: u8) -> Flow {
        if self.save_key() == Flow::Stop {
            return Flow::Stop;
        }
        self.simple_key_allowed = false;
        self.advance();
        loop {
            if self.eof() || self.document_indicator() {
                return Flow::Stop;
            }
            let c = self.at(0);
            if q == b'\'' && c == b'\'' && self.at(1) == b'\'' {
                self.advance();
                self.advance();
            } else if c == q {
                self.advance();
                return Flow::Go;
            } else if q == b'"' && c == b'\\' {
                self.advance();
                if !self.eof() {
                    self.advance();
                }
            } else {
                self.advance();
            }
        }
    }

    /// libyaml's `yaml_parser_scan_plain_scalar`.
    fn plain(&mut self) -> Flow {
        if self.save_key() == Flow::Stop {
            return Flow::Stop;
        }
        self.simple_key_allowed = false;
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.document_indicator() || self.at(0) == b'#' {
                break;
            }
            while !self.blankz(0) {
                let c = self.at(0);
                if self.flow()
                    && c == b':'
                    && matches!(self.at(1), b',' | b'?' | b'[' | b']' | b'{' | b'}')
                {
                    return Flow::Stop;
                }
                if (c == b':' && self.blankz(1)) || (self.flow() && flow_indicator(c)) {
                    break;
                }
                self.advance();
            }
            if !(self.blank(0) || self.brk(0) > 0) {
                break;
            }
            while self.blank(0) || self.brk(0) > 0 {
                if self.blank(0) {
                    if leading_blanks && (self.col as isize) < indent && self.at(0) == b'\t' {
                        return Flow::Stop;
                    }
                } else {
                    leading_blanks = true;
                }
                self.advance();
            }
            if !self.flow() && (self.col as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
        Flow::Go
    }

    /// libyaml's `yaml_parser_scan_block_scalar`: the header, then every line indented at
    /// least as far as the content (given by an indentation indicator, or by the first
    /// non-empty line).
    fn block_scalar(&mut self) -> Flow {
        if self.remove_key() == Flow::Stop {
            return Flow::Stop;
        }
        self.simple_key_allowed = true;
        self.advance();
        let mut increment = 0isize;
        for _ in 0..2 {
            match self.at(0) {
                b'+' | b'-' => self.advance(),
                c @ b'1'..=b'9' if increment == 0 => {
                    increment = isize::from(c - b'0');
                    self.advance();
                }
                b'0' => return Flow::Stop,
                _ => {}
            }
        }
        while self.blank(0) {
            self.advance();
        }
        if self.at(0) == b'#' {
            while !self.eof() && self.brk(0) == 0 {
                self.advance();
            }
        }
        if self.eof() {
            return Flow::Go;
        }
        if self.brk(0) == 0 {
            return Flow::Stop;
        }
        self.advance();
        let mut indent: isize = if increment > 0 {
            if self.indent >= 0 {
                self.indent + increment
            } else {
                increment
            }
        } else {
            0
        };
        if self.block_breaks(&mut indent) == Flow::Stop {
            return Flow::Stop;
        }
        while self.col as isize == indent && !self.eof() {
            while !self.eof() && self.brk(0) == 0 {
                self.advance();
            }
            if self.eof() {
                break;
            }
            self.advance();
            if self.block_breaks(&mut indent) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Go
    }

    /// libyaml's `yaml_parser_scan_block_scalar_breaks`: indentation and empty lines; with
    /// `indent` 0, finds the content's indentation.
    fn block_breaks(&mut self, indent: &mut isize) -> Flow {
        let mut max_indent: isize = 0;
        loop {
            while (*indent == 0 || (self.col as isize) < *indent) && self.at(0) == b' ' {
                self.advance();
            }
            max_indent = max_indent.max(self.col as isize);
            if (*indent == 0 || (self.col as isize) < *indent) && self.at(0) == b'\t' {
                return Flow::Stop;
            }
            if self.brk(0) == 0 {
                break;
            }
            self.advance();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
        Flow::Go
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The depth the scan reaches (the smallest limit that accepts the text).
    fn depth(text: &str) -> usize {
        (0..=64)
            .find(|&max| check(text, max).is_ok())
            .expect("at most 64")
    }

    #[test]
    fn depth_table() {
        // (text, depth, why)
        let cases: &[(&str, usize, &str)] = &[
            ("a: 1\n", 1, "one block mapping"),
            (
                "a: [1, [2, {b: 3}]]\n",
                4,
                "flow collections in a block mapping",
            ),
            ("a:\n  b:\n    c: 1\n", 3, "block mappings by indentation"),
            ("- - - x\n", 3, "compact block sequences"),
            ("a:\n- 1\n- 2\nb: 3\n", 2, "a sequence at its key's column"),
            ("a:\n- 1\nb:\n- 2\n", 2, "one such sequence after another"),
            (
                "a: '[[[['\nb: \"{{{{\"\n",
                1,
                "brackets inside quoted scalars",
            ),
            ("a: x[[[[\n", 1, "brackets inside a plain scalar"),
            ("a: x # [[[[\n# [[[[\n", 1, "brackets inside comments"),
            (
                "a: |\n  [[[[\n  'x\nb: 1\n",
                1,
                "a literal block scalar's content",
            ),
            ("a: >2\n   [[[[\nb: 1\n", 1, "an indentation indicator"),
            (
                "a: see\n  [docs 'x\nb: 1\n",
                1,
                "a plain scalar over two lines",
            ),
            (
                "a: it's\nb: [[1]]\n",
                3,
                "an apostrophe inside a plain scalar starts no quote",
            ),
            ("a: 'it''s [[['\nb: [x]\n", 2, "an escaped quote"),
            ("a: \"\\\" [[[\"\nb: [x]\n", 2, "an escaped double quote"),
            (
                "- key: |\n    text\n  other: [[[1]]]\n",
                5,
                "a block scalar ends at its mapping's indentation",
            ),
            ("a: !t [[1]]\n", 3, "a tag before a flow collection"),
            (
                "a: &x [[1]]\nb: *x\n",
                3,
                "an anchor before a flow collection",
            ),
            ("[a, b]: [[1]]\n", 3, "a flow collection as a key"),
            (
                "a: [b, 'c]]]', [d]]\n",
                3,
                "a quoted scalar in flow context",
            ),
            (
                "a: [b c d, e]\n",
                2,
                "a plain scalar of several words in flow context",
            ),
            (
                "a: [\n  b,\n  [c]\n]\n",
                3,
                "a flow collection over several lines",
            ),
            ("a: b\u{85}c: [[1]]\n", 3, "NEL is a line break"),
        ];
        for (text, want, why) in cases {
            assert_eq!(depth(text), *want, "{why}: {text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_with_its_position() {
        let n = 100_000;
        for (text, why) in [
            (
                format!("listen: {}{}\n", "[".repeat(n), "]".repeat(n)),
                "flow sequences",
            ),
            (
                format!("a: {}1{}\n", "{a: ".repeat(n), "}".repeat(n)),
                "flow mappings",
            ),
            (format!("{}x\n", "- ".repeat(n)), "compact block sequences"),
            (
                format!("a: [{}]\n", "[\"]\", ".repeat(n)),
                "closing brackets hidden in quoted scalars",
            ),
        ] {
            let e = check(&text, MAX_DEPTH).expect_err(why);
            assert_eq!(e.line, 1, "{why}");
            assert!(e.column < 200, "{why}: {e:?}");
        }
        let mut indented = String::new();
        for i in 0..40 {
            indented.push_str(&" ".repeat(i));
            indented.push_str("a:\n");
        }
        let e = check(&indented, MAX_DEPTH).expect_err("block mappings");
        assert_eq!(e.line, 33);
    }

    /// Any text, including broken YAML: the scan ends, and agrees with serde_yaml that the
    /// values it parses are no deeper than the scan found. A one-pair mapping inside a
    /// sequence is not counted: `[a: 1]` is such a mapping without a level of its own in the
    /// scanner (nor in libyaml's flow level, which is what costs); nor is a mapping around its
    /// keys.
    #[test]
    fn the_scan_never_finds_less_nesting_than_the_parser() {
        fn value_depth(v: &serde_yaml::Value) -> usize {
            match v {
                serde_yaml::Value::Sequence(s) => {
                    1 + s
                        .iter()
                        .map(|e| match e {
                            serde_yaml::Value::Mapping(m) if m.len() == 1 => m
                                .iter()
                                .map(|(k, v)| value_depth(k).max(value_depth(v)))
                                .max()
                                .unwrap_or(0),
                            e => value_depth(e),
                        })
                        .max()
                        .unwrap_or(0)
                }
                // A key is read before the scanner knows it is one (a simple key), so a
                // collection as a key is not inside the mapping's level.
                serde_yaml::Value::Mapping(m) => m
                    .iter()
                    .map(|(k, v)| value_depth(k).max(1 + value_depth(v)))
                    .max()
                    .unwrap_or(1),
                serde_yaml::Value::Tagged(t) => value_depth(&t.value),
                _ => 0,
            }
        }
        const ALPHABET: &[&str] = &[
            "[", "]", "{", "}", ",", ":", ": ", "- ", "? ", "'", "\"", "\\", "#", " #", "|", ">",
            "\n", "\n  ", "\n    ", " ", "a", "b", "&x ", "*x", "!t ", "1", "\t", "---\n",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = (seed % 40) as usize + 1;
            let mut text = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(ALPHABET[(seed % ALPHABET.len() as u64) as usize]);
            }
            let scanned = depth(&text);
            if let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(&text) {
                parsed += 1;
                assert!(
                    value_depth(&v) <= scanned,
                    "{text:?}: parsed {} levels, the scan found {scanned}",
                    value_depth(&v)
                );
            }
        }
        assert!(parsed > 1000, "enough inputs parse to compare: {parsed}");
    }
}
