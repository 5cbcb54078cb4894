//! Chunking by the embedding model's own tokens.
//!
//! The text is tokenized once (no truncation, no special tokens) with
//! character offsets. Chunks are windows of at most `max_tokens` tokens that
//! end, by preference, where a paragraph ends; a chunk never crosses a
//! Markdown heading (`#` … `######`), so a section starts a new chunk. A
//! paragraph longer than the window is cut at a token boundary. The next
//! chunk of the same section repeats the last `overlap` tokens (snapped to a
//! paragraph start when one lies in that window). Each chunk knows the
//! headings above it (`section`), which are embedded with its text.

use std::sync::Arc;

/// A chunk: its text and where it lies in the document (character offsets,
/// end exclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub index: usize,
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// The headings above the chunk, outermost first, joined by ` > `.
    pub section: String,
    pub tokens: usize,
}

impl Chunk {
    /// What is embedded: the section path and the text.
    pub fn embedding_text(&self) -> String {
        if self.section.is_empty() {
            self.text.clone()
        } else {
            format!("{}\n\n{}", self.section, self.text)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    Paragraph,
    Heading,
}

/// Paragraph and heading starts (character offsets), and the headings:
/// `(offset, level, title)`.
#[allow(clippy::type_complexity)]
fn structure(text: &str) -> (Vec<(usize, Boundary)>, Vec<(usize, usize, String)>) {
    let mut bounds = Vec::new();
    let mut headings = Vec::new();
    let mut offset = 0usize; // in chars
    let mut blank_before = true;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let len = line.chars().count();
        let hashes = trimmed.chars().take_while(|c| *c == '#').count();
        let is_heading = (1..=6).contains(&hashes)
            && trimmed.chars().nth(hashes).is_some_and(char::is_whitespace);
        if is_heading {
            bounds.push((offset, Boundary::Heading));
            headings.push((offset, hashes, trimmed[hashes..].trim().to_string()));
        } else if !trimmed.is_empty() && blank_before {
            bounds.push((offset, Boundary::Paragraph));
        }
        blank_before = trimmed.is_empty() || is_heading;
        offset += len;
    }
    (bounds, headings)
}

/// The heading path of each heading (outermost first, joined by ` > `),
/// by the heading's offset: one pass.
fn section_paths(headings: &[(usize, usize, String)]) -> Vec<(usize, String)> {
    let mut path: Vec<(usize, &str)> = Vec::new();
    headings
        .iter()
        .map(|(at, level, title)| {
            path.retain(|(l, _)| l < level);
            path.push((*level, title));
            let joined = path.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" > ");
            (*at, joined)
        })
        .collect()
}

/// The heading path in force at `offset` (a binary search).
fn section_at(paths: &[(usize, String)], offset: usize) -> String {
    match paths.partition_point(|(at, _)| *at <= offset) {
        0 => String::new(),
        i => paths[i - 1].1.clone(),
    }
}

/// Splits `text` into chunks of at most `max_tokens` tokens with `overlap`.
pub fn chunk(
    tokenizer: &Arc<tokenizers::Tokenizer>,
    text: &str,
    max_tokens: usize,
    overlap: usize,
) -> Result<Vec<Chunk>, String> {
    let max_tokens = max_tokens.max(8);
    let overlap = overlap.min(max_tokens / 2);
    let mut tk = tokenizers::Tokenizer::clone(tokenizer);
    tk.with_truncation(None).map_err(|e| e.to_string())?;
    tk.with_padding(None);
    let enc = tk
        .encode_char_offsets(text, false)
        .map_err(|e| format!("tokenizing: {e}"))?;
    let offsets: Vec<(usize, usize)> = enc
        .get_offsets()
        .iter()
        .copied()
        .filter(|(s, e)| e > s)
        .collect();
    if offsets.is_empty() {
        return Ok(Vec::new());
    }
    let (bounds, headings) = structure(text);
    let paths = section_paths(&headings);
    // Token index where each boundary starts (ascending), and the
    // headings' among them: every lookup below is a binary search, so
    // chunking is O(n log n) whatever the document's shape.
    let tok_at = |char_off: usize| offsets.partition_point(|(s, _)| *s < char_off);
    let breaks: Vec<usize> = bounds
        .iter()
        .map(|(c, _)| tok_at(*c))
        .filter(|t| *t > 0 && *t < offsets.len())
        .collect();
    let heading_breaks: Vec<usize> = bounds
        .iter()
        .filter(|(_, b)| *b == Boundary::Heading)
        .map(|(c, _)| tok_at(*c))
        .filter(|t| *t > 0 && *t < offsets.len())
        .collect();
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < offsets.len() {
        let limit = (start + max_tokens).min(offsets.len());
        // A heading inside the window ends the chunk there.
        let heading = heading_breaks
            .get(heading_breaks.partition_point(|t| *t <= start))
            .copied()
            .filter(|t| *t <= limit);
        let end = match heading {
            Some(h) => h,
            None if limit == offsets.len() => limit,
            // The last paragraph start in the window, if it leaves at
            // least half a window in the chunk.
            None => match breaks.partition_point(|t| *t <= limit) {
                0 => limit,
                i => Some(breaks[i - 1])
                    .filter(|t| *t > start && *t - start >= max_tokens / 2)
                    .unwrap_or(limit),
            },
        };
        let (s_char, e_char) = (offsets[start].0, offsets[end - 1].1);
        let text: String = chars[s_char.min(chars.len())..e_char.min(chars.len())]
            .iter()
            .collect();
        out.push(Chunk {
            index: out.len(),
            start: s_char,
            end: e_char,
            text,
            section: section_at(&paths, s_char),
            tokens: end - start,
        });
        if end >= offsets.len() {
            break;
        }
        let at_heading = heading_breaks.binary_search(&end).is_ok();
        start = if at_heading || overlap == 0 {
            end
        } else {
            let from = end.saturating_sub(overlap).max(start + 1);
            // Snap to a paragraph start inside the overlap window.
            breaks
                .get(breaks.partition_point(|t| *t < from))
                .copied()
                .filter(|t| *t < end)
                .unwrap_or(from)
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-level tokenizer built in code (no file): one token per word.
    fn words() -> Arc<tokenizers::Tokenizer> {
        use tokenizers::models::wordlevel::WordLevel;
        use tokenizers::pre_tokenizers::whitespace::Whitespace;
        let model = WordLevel::builder()
            .vocab([("[UNK]".to_string(), 0u32)].into_iter().collect())
            .unk_token("[UNK]".into())
            .build()
            .expect("model");
        let mut t = tokenizers::Tokenizer::new(model);
        t.with_pre_tokenizer(Some(Whitespace {}));
        Arc::new(t)
    }

    #[test]
    fn windows_respect_headings_paragraphs_and_overlap() {
        let text = "# Title\n\nalpha beta gamma delta.\n\nepsilon zeta eta theta iota kappa lambda mu nu xi omicron pi.\n\n## Sub\n\nrho sigma tau.\n";
        let chunks = chunk(&words(), text, 8, 2).expect("chunk");
        // Every chunk's span is its text.
        let chars: Vec<char> = text.chars().collect();
        for c in &chunks {
            assert_eq!(chars[c.start..c.end].iter().collect::<String>(), c.text);
            assert!(c.tokens <= 8, "{c:?}");
        }
        // No chunk crosses the `## Sub` heading; the last is that section.
        let sub = text.find("## Sub").expect("heading");
        assert!(chunks.iter().all(|c| c.end <= sub || c.start >= sub));
        let last = chunks.last().expect("chunks");
        assert_eq!(last.section, "Title > Sub");
        assert!(last.text.starts_with("## Sub"));
        assert_eq!(chunks[0].section, "Title");
        // The long paragraph was cut and the next window overlaps it.
        let long: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| c.text.contains("lambda") || c.text.contains("omicron"))
            .collect();
        assert!(long.len() >= 2, "{chunks:#?}");
        assert!(long[1].start < long[0].end, "overlap expected: {long:#?}");
        // Indexes are consecutive.
        assert!(chunks.iter().enumerate().all(|(i, c)| c.index == i));
    }

    #[test]
    fn empty_text_has_no_chunks() {
        assert!(chunk(&words(), "  \n\n ", 8, 2).expect("chunk").is_empty());
    }
}
