//! Validation of chat-format fine-tuning files (OpenAI's JSONL: one
//! `{"messages": [...]}` example per line), fed in chunks as an upload
//! streams in, so a file is never held in memory whole.
//!
//! Each line must be a JSON object whose `messages` is a non-empty array of
//! `{role, content}` with roles `system`, `user`, `assistant` or `tool`,
//! string content (an assistant turn may carry `tool_calls` instead), an
//! optional `weight` of 0 or 1 on assistant turns, and at least one
//! assistant turn with weight 1 to learn from. Blank lines are skipped.
//! Errors name the line (1-based) and the field; the first
//! [`MAX_ERRORS`] are kept.

/// Errors kept per file; the count goes on.
pub const MAX_ERRORS: usize = 20;

/// Limits of one file.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line_bytes: usize,
    pub max_file_bytes: u64,
    /// Most messages in one example.
    pub max_messages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: 1 << 20,
            max_file_bytes: 512 << 20,
            max_messages: 1024,
        }
    }
}

/// One thing wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineError {
    /// 1-based; 0 for the file as a whole.
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// What a valid file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub bytes: u64,
    pub lines: u64,
    pub examples: u64,
    pub messages: u64,
    /// Characters of content, all roles.
    pub characters: u64,
    /// Characters of the assistant turns that are trained on.
    pub trained_characters: u64,
}

/// The outcome: the stats, and the errors (empty when valid).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub stats: Stats,
    pub errors: Vec<LineError>,
    /// All errors, also those not kept.
    pub error_count: u64,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.error_count == 0
    }
}

/// Feeds a file through in chunks of any size.
#[derive(Debug, Default)]
pub struct Validator {
    limits: Limits,
    report: Report,
    /// The current line's bytes so far (never more than the line limit).
    partial: Vec<u8>,
    /// The current line went over the limit: skip to its end.
    overlong: bool,
    stopped: bool,
}

impl Validator {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    fn error(&mut self, line: u64, message: impl Into<String>) {
        self.report.error_count += 1;
        if self.report.errors.len() < MAX_ERRORS {
            self.report.errors.push(LineError {
                line,
                message: message.into(),
            });
        }
    }

    /// The next bytes of the file.
    pub fn push(&mut self, mut chunk: &[u8]) {
        if self.stopped {
            return;
        }
        self.report.stats.bytes += chunk.len() as u64;
        if self.report.stats.bytes > self.limits.max_file_bytes {
            self.error(
                0,
                format!(
                    "the file is larger than {} bytes",
                    self.limits.max_file_bytes
                ),
            );
            self.stopped = true;
            return;
        }
        while let Some(end) = chunk.iter().position(|b| *b == b'\n') {
            let (head, rest) = chunk.split_at(end);
            self.take(head);
            self.end_line();
            chunk = &rest[1..];
        }
        self.take(chunk);
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.partial.len() + bytes.len() > self.limits.max_line_bytes {
            self.overlong = true;
            self.partial.clear();
            return;
        }
        self.partial.extend_from_slice(bytes);
    }

    fn end_line(&mut self) {
        self.report.stats.lines += 1;
        let line = self.report.stats.lines;
        if std::mem::take(&mut self.overlong) {
            self.error(
                line,
                format!(
                    "the line is longer than {} bytes",
                    self.limits.max_line_bytes
                ),
            );
            return;
        }
        let bytes = std::mem::take(&mut self.partial);
        self.check_line(line, &bytes);
    }

    /// Ends the file; the report.
    pub fn finish(mut self) -> Report {
        if !self.stopped && (!self.partial.is_empty() || self.overlong) {
            self.end_line();
        }
        if !self.stopped && self.report.stats.examples == 0 && self.report.error_count == 0 {
            self.error(0, "the file holds no examples");
        }
        self.report
    }

    fn check_line(&mut self, line: u64, bytes: &[u8]) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                return self.error(
                    line,
                    format!("not UTF-8 (invalid byte at column {})", e.valid_up_to() + 1),
                );
            }
        };
        let example: serde_json::Value = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) => return self.error(line, format!("not valid JSON ({e})")),
        };
        let Some(example) = example.as_object() else {
            return self.error(line, "each line must be a JSON object with `messages`");
        };
        let Some(serde_json::Value::Array(messages)) = example.get("messages") else {
            return self.error(line, "`messages` must be an array of messages");
        };
        if messages.is_empty() {
            return self.error(line, "`messages` is empty");
        }
        if messages.len() > self.limits.max_messages {
            return self.error(
                line,
                format!(
                    "more than {} messages in one example",
                    self.limits.max_messages
                ),
            );
        }
        let mut characters = 0u64;
        let mut trained = 0u64;
        let mut learns = false;
        for (i, m) in messages.iter().enumerate() {
            match check_message(m) {
                Ok(turn) => {
                    characters += turn.characters;
                    if turn.trained {
                        learns = true;
                        trained += turn.characters;
                    }
                }
                Err(why) => return self.error(line, format!("messages[{i}]: {why}")),
            }
        }
        if !learns {
            return self.error(
                line,
                "the example has no assistant message to learn from (with weight 1)",
            );
        }
        let s = &mut self.report.stats;
        s.examples += 1;
        s.messages += messages.len() as u64;
        s.characters += characters;
        s.trained_characters += trained;
    }
}

struct Turn {
    characters: u64,
    trained: bool,
}

fn check_message(m: &serde_json::Value) -> Result<Turn, String> {
    let obj = m.as_object().ok_or("must be an object")?;
    let role = obj
        .get("role")
        .and_then(|r| r.as_str())
        .ok_or("`role` is missing or not a string")?;
    if !matches!(role, "system" | "user" | "assistant" | "tool") {
        return Err(format!(
            "`role` must be system, user, assistant or tool, not `{}`",
            role.chars().take(32).collect::<String>()
        ));
    }
    let content = match obj.get("content") {
        Some(serde_json::Value::String(s)) => s.chars().count() as u64,
        None | Some(serde_json::Value::Null)
            if role == "assistant" && obj.get("tool_calls").is_some_and(|t| t.is_array()) =>
        {
            0
        }
        _ => return Err("`content` must be a string".into()),
    };
    let trained = match obj.get("weight") {
        None => role == "assistant",
        Some(w) if role != "assistant" => {
            return Err(format!("`weight` is only for assistant messages (got {w})"));
        }
        Some(w) => match w.as_u64() {
            Some(0) => false,
            Some(1) => true,
            _ => return Err("`weight` must be 0 or 1".into()),
        },
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "role" | "content" | "name" | "weight" | "tool_calls" | "tool_call_id"
        ) {
            return Err(format!(
                "unknown field `{}`",
                key.chars().take(32).collect::<String>()
            ));
        }
    }
    Ok(Turn {
        characters: content,
        trained,
    })
}

/// Validates a whole file held in memory (tests, small files).
pub fn validate(bytes: &[u8], limits: Limits) -> Report {
    let mut v = Validator::new(limits);
    v.push(bytes);
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}"#;

    fn errors(text: &str) -> Vec<String> {
        validate(text.as_bytes(), Limits::default())
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_valid_file_counts_examples_and_characters() {
        let text = format!("{GOOD}\n\n{GOOD}\r\n");
        let r = validate(text.as_bytes(), Limits::default());
        assert!(r.is_valid(), "{:?}", r.errors);
        assert_eq!(r.stats.examples, 2);
        assert_eq!(r.stats.messages, 6);
        assert_eq!(r.stats.lines, 3);
        assert_eq!(r.stats.characters, 2 * (9 + 2 + 6));
        assert_eq!(r.stats.trained_characters, 12);
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let text = [
            GOOD,
            "not json",
            r#"[1, 2]"#,
            r#"{"messages": []}"#,
            r#"{"messages": [{"role": "user", "content": "Hi"}]}"#,
            r#"{"messages": [{"role": "robot", "content": "Hi"}, {"role": "assistant", "content": "x"}]}"#,
            r#"{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}"#,
            r#"{"messages": [{"role": "user", "content": "a", "weight": 1}, {"role": "assistant", "content": "x"}]}"#,
            r#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x", "weight": 0}]}"#,
            r#"{"messages": [{"role": "user", "content": "a", "extra": 1}, {"role": "assistant", "content": "x"}]}"#,
        ]
        .join("\n");
        let e = errors(&text);
        assert_eq!(e.len(), 9, "{e:#?}");
        assert!(e[0].starts_with("line 2: not valid JSON"), "{}", e[0]);
        assert_eq!(
            e[1],
            "line 3: each line must be a JSON object with `messages`"
        );
        assert_eq!(e[2], "line 4: `messages` is empty");
        assert!(e[3].starts_with("line 5: the example has no assistant message"));
        assert!(
            e[4].starts_with("line 6: messages[0]: `role` must be"),
            "{}",
            e[4]
        );
        assert_eq!(e[5], "line 7: messages[0]: `content` must be a string");
        assert!(e[6].starts_with("line 8: messages[0]: `weight` is only for assistant"));
        assert!(e[7].starts_with("line 9: the example has no assistant message"));
        assert_eq!(e[8], "line 10: messages[0]: unknown field `extra`");
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let text = format!("{GOOD}\nnot json\n{GOOD}");
        let whole = validate(text.as_bytes(), Limits::default());
        for size in [1, 2, 3, 7, 64] {
            let mut v = Validator::new(Limits::default());
            for c in text.as_bytes().chunks(size) {
                v.push(c);
            }
            let r = v.finish();
            assert_eq!(r.stats, whole.stats, "chunks of {size}");
            assert_eq!(r.errors, whole.errors, "chunks of {size}");
        }
    }

    #[test]
    fn limits_are_enforced_without_holding_the_line() {
        let limits = Limits {
            max_line_bytes: 64,
            max_file_bytes: 10_000,
            max_messages: 2,
        };
        let long = format!("{{\"messages\": \"{}\"}}", "x".repeat(500));
        let three = r#"{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}"#;
        let r = validate(
            format!("{three}\n").as_bytes(),
            Limits {
                max_line_bytes: 1000,
                ..limits
            },
        );
        assert_eq!(r.errors[0].line, 1);
        assert!(r.errors[0].message.contains("more than 2 messages"));
        let r = validate(format!("{long}\n").as_bytes(), limits);
        assert_eq!(
            r.errors[0].to_string(),
            "line 1: the line is longer than 64 bytes"
        );
        let r = validate("x".repeat(20_000).as_bytes(), limits);
        assert_eq!(
            r.errors[0].to_string(),
            "the file is larger than 10000 bytes"
        );
        assert!(!validate(b"\n\n", limits).is_valid());
        assert!(
            validate(b"\xff\xfe{}\n", limits).errors[0]
                .message
                .starts_with("not UTF-8")
        );
    }

    #[test]
    fn many_errors_are_counted_but_only_some_kept() {
        let text = "x\n".repeat(100);
        let r = validate(text.as_bytes(), Limits::default());
        assert_eq!(r.error_count, 100);
        assert_eq!(r.errors.len(), MAX_ERRORS);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_lines_stay_in_range() {
        // Mutations of a valid file: flipped, dropped and duplicated bytes.
        let base = format!("{GOOD}\n{GOOD}\n{GOOD}\n").into_bytes();
        let mut seed: u64 = 0x2026_1201;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..2000 {
            let mut bytes = base.clone();
            for _ in 0..(1 + next() % 8) {
                let i = next() % bytes.len();
                match next() % 3 {
                    0 => bytes[i] = (next() % 256) as u8,
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.insert(i, bytes[i]),
                }
            }
            let r = validate(&bytes, Limits::default());
            let lines = r.stats.lines;
            assert!(r.errors.iter().all(|e| e.line <= lines.max(1)));
            assert_eq!(r.is_valid(), r.errors.is_empty());
            assert!(r.stats.examples <= 3 + 1);
        }
    }
}
