//! A linear pre-scan of YAML text that bounds nesting before the parser sees it.
//!
//! libyaml (under yaml_serde) takes time quadratic in the nesting depth: a 200 KB document
//! of nested flow collections (`[[[[…]]]]`) or compact block sequences (`- - - - …`) kept a
//! core busy for seconds, and yaml_serde's recursion limit only fires after the whole
//! document was tokenised. Ratify resources nest fewer than 20 levels, so [`too_deep`] walks
//! the text once and refuses it at the first point deeper than the limit.
//!
//! The scan is a small tokenizer, not a YAML parser. It knows just enough to tell structure
//! from text: comments, single- and double-quoted scalars (also across lines), plain
//! scalars (where `[`, `'` and `#` without a space before it are text), block scalars
//! (`|`, `>`) and their more-indented content, flow collections and block indentation
//! (one level per indentation step and per `- `/`? ` indicator, so `- - - a` counts three).
//! Where the tokenizer cannot tell, it errs towards counting: text it is unsure of is
//! scanned as structure, never skipped. A document it over-counts would need dozens of
//! unbalanced brackets outside quotes, which no Ratify resource has.

/// Deepest nesting accepted: flow collections plus block indentation levels.
pub(crate) const MAX_NESTING: usize = 64;

/// Where the text first nests deeper than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooDeep {
    /// 1-based position of the document (counting `---` separators), as errors number them.
    pub(crate) document: usize,
    /// 1-based line.
    pub(crate) line: usize,
}

/// `None` when `text` nests at most `limit` levels, else where it first goes deeper.
pub(crate) fn too_deep(text: &str, limit: usize) -> Option<TooDeep> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut scanner = Scanner {
        limit,
        line: 0,
        document: 1,
        document_has_content: false,
        document_started: false,
        indents: Vec::new(),
        flow: 0,
        quote: None,
        block_scalar: None,
        plain: None,
        flow_plain: false,
    };
    for line in lines(text.as_bytes()) {
        scanner.line += 1;
        if scanner.scan_line(line).is_err() {
            return Some(TooDeep {
                document: scanner.document,
                line: scanner.line,
            });
        }
    }
    None
}

/// The lines of `text`, split at every line break libyaml knows: `\n`, `\r\n`, a lone
/// `\r`, and U+0085, U+2028, U+2029 (a comment ended by any of them is followed by
/// structure).
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut i = 0;
        while i < text.len() {
            let width = match text[i] {
                b'\n' => 1,
                b'\r' if text.get(i + 1) == Some(&b'\n') => 2,
                b'\r' => 1,
                0xC2 if text.get(i + 1) == Some(&0x85) => 2,
                0xE2 if text.get(i + 1) == Some(&0x80)
                    && matches!(text.get(i + 2), Some(&0xA8 | &0xA9)) =>
                {
                    3
                }
                _ => 0,
            };
            if width > 0 {
                rest = Some(&text[i + width..]);
                return Some(&text[..i]);
            }
            i += 1;
        }
        rest = None;
        Some(text)
    })
}

/// The limit was exceeded on the current line.
struct Exceeded;

struct Scanner {
    limit: usize,
    line: usize,
    document: usize,
    document_has_content: bool,
    /// The current document was opened by a `---` marker.
    document_started: bool,
    /// The open block levels: their columns (non-decreasing) and whether each is a
    /// sequence. A sequence may sit at its parent mapping's column (`key:` then `- item`
    /// below it), so a column can hold two levels.
    indents: Vec<(usize, bool)>,
    /// Open flow collections.
    flow: usize,
    /// Inside a quoted scalar that continues on the next line: its quote character.
    quote: Option<u8>,
    /// Inside a block scalar: lines more indented than this column (or blank) are content.
    block_scalar: Option<usize>,
    /// The previous line ended in a plain scalar (block context): lines more indented than
    /// this column continue it.
    plain: Option<usize>,
    /// The previous line ended in a plain scalar inside a flow collection: the next line
    /// starts with its continuation.
    flow_plain: bool,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r'
}

fn is_flow_indicator(b: u8) -> bool {
    matches!(b, b',' | b'[' | b']' | b'{' | b'}')
}

impl Scanner {
    fn depth(&self) -> usize {
        self.indents.len() + self.flow
    }

    fn check(&self) -> Result<(), Exceeded> {
        if self.depth() > self.limit {
            Err(Exceeded)
        } else {
            Ok(())
        }
    }

    fn scan_line(&mut self, line: &[u8]) -> Result<(), Exceeded> {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let blank = line[indent..].iter().all(|&b| is_blank(b));

        if let Some(quote) = self.quote {
            return match quoted_end(line, 0, quote) {
                None => Ok(()),
                Some(end) => {
                    self.quote = None;
                    self.tokens(line, end, indent)
                }
            };
        }
        if self.flow > 0 {
            if std::mem::take(&mut self.flow_plain) {
                // A plain scalar continued from the line before: text first.
                let start = line.iter().take_while(|&&b| is_blank(b)).count();
                if start < line.len() && line[start] != b'#' {
                    return match self.plain_scalar(line, start, indent) {
                        Some(next) => self.tokens(line, next, indent),
                        None => Ok(()),
                    };
                }
            }
            return self.tokens(line, indent, indent);
        }
        if let Some(parent) = self.block_scalar {
            if blank || indent > parent {
                return Ok(());
            }
            self.block_scalar = None;
        }
        if blank {
            return Ok(());
        }
        if line[indent] == b'#' {
            self.plain = None; // a comment ends a plain scalar
            return Ok(());
        }
        if let Some(parent) = self.plain.take()
            && indent > parent
        {
            // A continuation of a multi-line plain scalar: text up to a comment, which ends
            // the scalar.
            let commented = line.windows(2).any(|w| is_blank(w[0]) && w[1] == b'#');
            if !commented {
                self.plain = Some(parent);
            }
            return Ok(());
        }
        if indent == 0 && line[0] == b'%' {
            return Ok(()); // a directive
        }
        let marker = line.starts_with(b"---") || line.starts_with(b"...");
        if indent == 0 && marker && line.get(3).is_none_or(|&b| is_blank(b)) {
            if line[0] == b'-' {
                // `---` opens a document; the first one only if nothing came before it.
                if self.document_has_content || self.document_started {
                    self.document += 1;
                }
                self.document_started = true;
                self.document_has_content = line[3..]
                    .iter()
                    .find(|&&b| !is_blank(b))
                    .is_some_and(|&b| b != b'#');
            }
            self.indents.clear();
            return self.tokens(line, 3, 0);
        }
        self.document_has_content = true;
        let sequence_item =
            line[indent] == b'-' && line.get(indent + 1).is_none_or(|&b| is_blank(b));
        while let Some(&(column, sequence)) = self.indents.last() {
            if column > indent || (column == indent && sequence && !sequence_item) {
                self.indents.pop();
            } else {
                break;
            }
        }
        match self.indents.last() {
            Some(&(column, sequence)) if column == indent && sequence == sequence_item => {}
            _ => {
                self.indents.push((indent, sequence_item));
                self.check()?;
            }
        }
        self.tokens(line, indent, indent)
    }

    /// Scans the tokens of `line` from `start`; `node` is the column of the innermost block
    /// node begun on this line (block scalars and plain scalars continue below it).
    fn tokens(&mut self, line: &[u8], start: usize, mut node: usize) -> Result<(), Exceeded> {
        let mut i = start;
        loop {
            while i < line.len() && is_blank(line[i]) {
                i += 1;
            }
            let Some(&c) = line.get(i) else {
                return Ok(());
            };
            let next = line.get(i + 1).copied();
            let ends_indicator = |next: Option<u8>, flow: usize| {
                next.is_none_or(|n| is_blank(n) || (flow > 0 && is_flow_indicator(n)))
            };
            match c {
                b'#' => return Ok(()),
                b'\'' | b'"' => match quoted_end(line, i + 1, c) {
                    Some(end) => i = end,
                    None => {
                        self.quote = Some(c);
                        return Ok(());
                    }
                },
                b'[' | b'{' => {
                    self.flow += 1;
                    self.check()?;
                    i += 1;
                }
                b']' | b'}' => {
                    self.flow = self.flow.saturating_sub(1);
                    i += 1;
                }
                b',' => i += 1,
                b'|' | b'>' if self.flow == 0 => {
                    self.block_scalar = Some(node);
                    return Ok(());
                }
                b'-' | b'?' if ends_indicator(next, self.flow) => {
                    i += 1;
                    if self.flow == 0 {
                        // `- - a`: each indicator opens a block level at its content.
                        let mut content = i;
                        while content < line.len() && is_blank(line[content]) {
                            content += 1;
                        }
                        if content < line.len() && line[content] != b'#' {
                            node = content;
                            let sequence = line[content] == b'-'
                                && line.get(content + 1).is_none_or(|&b| is_blank(b));
                            self.indents.push((content, sequence));
                            self.check()?;
                        }
                    }
                }
                b':' if ends_indicator(next, self.flow) => i += 1,
                b'&' | b'!' | b'*' => {
                    // Anchor, tag or alias: a word.
                    i += 1;
                    while i < line.len()
                        && !is_blank(line[i])
                        && !(self.flow > 0 && is_flow_indicator(line[i]))
                    {
                        i += 1;
                    }
                }
                _ => match self.plain_scalar(line, i + 1, node) {
                    Some(next) => i = next,
                    None => return Ok(()),
                },
            }
        }
    }

    /// Scans a plain scalar from `i` up to a comment, a `: ` (it was a key), the end of the
    /// line or (in a flow collection) a flow indicator: `Some(index)` where tokens resume,
    /// `None` when the scalar ends the line. A scalar that reaches the end of the line may
    /// continue on the next one (below `node` in block context, anywhere in a flow
    /// collection); one ended by a comment does not.
    fn plain_scalar(&mut self, line: &[u8], mut i: usize, node: usize) -> Option<usize> {
        loop {
            let Some(&b) = line.get(i) else {
                if self.flow == 0 {
                    self.plain = Some(node);
                } else {
                    self.flow_plain = true;
                }
                return None;
            };
            if b == b'#' && i > 0 && is_blank(line[i - 1]) {
                return None;
            }
            let next = line.get(i + 1).copied();
            if b == b':'
                && next.is_none_or(|n| is_blank(n) || (self.flow > 0 && is_flow_indicator(n)))
            {
                return Some(i + 1);
            }
            if self.flow > 0 && is_flow_indicator(b) {
                return Some(i);
            }
            i += 1;
        }
    }
}

/// The index just past the quote that closes a quoted scalar whose content starts at
/// `from`, or `None` when it continues past the end of `line`.
fn quoted_end(line: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut i = from;
    while i < line.len() {
        let b = line[i];
        if quote == b'"' && b == b'\\' {
            i += 2;
            continue;
        }
        if b == quote {
            if quote == b'\'' && line.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        too_deep(text, limit).is_none()
    }

    #[test]
    fn counts_flow_collections() {
        assert!(depth_ok("a: [[[1]]]\n", 4));
        assert_eq!(
            too_deep("a: b\nc: [[[[1]]]]\n", 4),
            Some(TooDeep {
                document: 1,
                line: 2
            })
        );
        assert!(!depth_ok(&"[".repeat(100), 64));
        assert!(!depth_ok(&"{a: ".repeat(100), 64));
        // Across lines.
        assert!(!depth_ok(&"[\n".repeat(100), 64));
    }

    #[test]
    fn counts_block_levels_and_compact_sequences() {
        assert!(!depth_ok(&"- ".repeat(100).to_string(), 64));
        assert!(!depth_ok(&"? ".repeat(100).to_string(), 64));
        let mut nested = String::new();
        for i in 0..100 {
            nested.push_str(&" ".repeat(i));
            nested.push_str("a:\n");
        }
        assert!(!depth_ok(&nested, 64));
        // A sequence at its parent mapping's column is a level of its own.
        let mut zigzag = String::new();
        for i in 0..40 {
            zigzag.push_str(&" ".repeat(2 * i));
            zigzag.push_str("- k:\n");
        }
        assert!(!depth_ok(&zigzag, 64), "40 sequences in 40 mappings");
        assert!(depth_ok("a:\n- b\n- c\nd:\n- e\n", 3));
        // Dedenting pops levels: many siblings are shallow.
        assert!(depth_ok(&"a:\n  b: 1\n".repeat(1000), 3));
    }

    #[test]
    fn text_is_not_structure() {
        let brackets = "[".repeat(100);
        assert!(depth_ok(&format!("a: '{brackets}'\n"), 3));
        assert!(depth_ok(&format!("a: \"{brackets}\"\n"), 3));
        assert!(depth_ok(&format!("a: \"x\\\"{brackets}\"\n"), 3));
        assert!(depth_ok(&format!("a: 'it''s {brackets}'\n"), 3));
        assert!(depth_ok(&format!("a: x{brackets}\n"), 3));
        assert!(depth_ok(&format!("a: b # {brackets}\n"), 3));
        assert!(depth_ok(&format!("# {brackets}\n"), 3));
        assert!(depth_ok(
            &format!("a: |\n  {brackets}\n  {brackets}\nb: 1\n"),
            3
        ));
        assert!(depth_ok(&format!("- a: >-\n    {brackets}\n"), 3));
        // A quoted scalar across lines.
        assert!(depth_ok(&format!("a: \"x\n  {brackets}\n  y\"\nb: 1\n"), 3));
        // A plain scalar across lines, even when a continuation starts with a quote.
        assert!(depth_ok(&format!("a: x\n  'y {brackets}\n"), 3));
        // An apostrophe inside a plain scalar does not open a quote.
        assert!(!depth_ok(&format!("a: it's\nb: {brackets}\n"), 64));
    }

    #[test]
    fn every_yaml_line_break_ends_a_comment() {
        // Found by the ratify_config fuzz target: a comment ended by a lone CR hid the
        // nesting after it.
        let deep = "{".repeat(100);
        for newline in ["\n", "\r\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"] {
            let found = too_deep(&format!("# comment{newline}{deep}"), 64);
            assert_eq!(
                found,
                Some(TooDeep {
                    document: 1,
                    line: 2
                }),
                "{newline:?}"
            );
        }
        assert!(depth_ok("a: 1\r\nb: 2\r\n", 1));
    }

    #[test]
    fn plain_scalars_continue_across_lines() {
        let deep = "[".repeat(100);
        // Found by the ratify_config fuzz target: in a flow collection, a quote starting a
        // line continues a plain scalar; it opens no quoted scalar hiding what follows.
        assert!(!depth_ok(&format!("[a\n\" b, {deep}\n"), 64));
        // A comment ends a plain scalar: what follows on deeper lines is structure again.
        assert!(!depth_ok(&format!("a: b # c\n  {deep}\n"), 64));
        assert!(!depth_ok(&format!("a: b\n  c # d\n  {deep}\n"), 64));
        assert!(!depth_ok(&format!("a: b\n  # d\n  {deep}\n"), 64));
        // Without a comment the deeper line is text.
        assert!(depth_ok(&format!("a: b\n  {deep}\n"), 64));
    }

    #[test]
    fn a_block_scalar_ends_at_its_parent_indentation() {
        let brackets = "[".repeat(100);
        assert!(!depth_ok(&format!("a: |\n  text\nb: {brackets}\n"), 64));
    }

    #[test]
    fn documents_are_numbered() {
        let deep = "[".repeat(100);
        let found = too_deep(&format!("a: 1\n---\nb: 2\n---\n{deep}\n"), 64).unwrap();
        assert_eq!(
            found,
            TooDeep {
                document: 3,
                line: 5
            }
        );
        let found = too_deep(&format!("---\na: 1\n---\n{deep}\n"), 64).unwrap();
        assert_eq!(found.document, 2);
        let found = too_deep(&format!("---\n---\n{deep}\n"), 64).unwrap();
        assert_eq!(found.document, 2, "an empty document counts");
        let found = too_deep(&format!("--- a\n---\n{deep}\n"), 64).unwrap();
        assert_eq!(found.document, 2);
    }
}
