//! Cheap output-quality signals, computed off the hot path for every
//! generated answer: empty, truncated, refusal, repetition, and a language
//! that differs from the prompt's.

/// An answer this repetitive (share of repeated word trigrams) counts as
/// repetitive in rollups.
pub const REPETITIVE: f64 = 0.5;

/// Fewest characters before a language is guessed at all.
const LANG_MIN_CHARS: usize = 24;

/// What one answer looks like.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub empty: bool,
    pub truncated: bool,
    pub refusal: bool,
    /// 0 (no word trigram repeats) to 1.
    pub repetition: f64,
    pub prompt_lang: Option<&'static str>,
    pub output_lang: Option<&'static str>,
    pub language_mismatch: bool,
}

/// Openings of refusals, lower case, apostrophes normalised to `'`.
const REFUSALS: &[&str] = &[
    "i'm sorry, but",
    "i am sorry, but",
    "sorry, but i can",
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i can't provide",
    "i cannot provide",
    "i can't comply",
    "i cannot comply",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "i won't be able to",
    "i must decline",
    "as an ai language model",
    "as an ai, i",
];

/// Signals of an answer to `prompt` that ended with `finish_reason`.
pub fn signals(prompt: &str, output: &str, finish_reason: Option<&str>) -> Signals {
    let prompt_lang = language(prompt);
    let output_lang = language(output);
    Signals {
        empty: output.trim().is_empty(),
        truncated: finish_reason == Some("length"),
        refusal: refusal(output),
        repetition: repetition(output),
        prompt_lang,
        output_lang,
        language_mismatch: matches!((prompt_lang, output_lang), (Some(a), Some(b)) if a != b),
    }
}

/// Does the answer open (first 300 characters) like a refusal?
pub fn refusal(output: &str) -> bool {
    let head: String = output
        .chars()
        .take(300)
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' => '\'',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    REFUSALS.iter().any(|r| head.contains(r))
}

/// Share of the answer's word trigrams that repeat an earlier one (0 for
/// answers under 8 words). A model stuck in a loop scores near 1.
pub fn repetition(output: &str) -> f64 {
    let words: Vec<String> = output
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() < 8 {
        return 0.0;
    }
    let grams: Vec<&[String]> = words.windows(3).collect();
    let mut seen = std::collections::HashSet::with_capacity(grams.len());
    let repeats = grams.iter().filter(|g| !seen.insert(**g)).count();
    repeats as f64 / grams.len() as f64
}

/// The text's language (ISO 639-3), when the detector is confident.
pub fn language(text: &str) -> Option<&'static str> {
    if text.chars().filter(|c| c.is_alphabetic()).count() < LANG_MIN_CHARS {
        return None;
    }
    let info = whatlang::detect(text)?;
    info.is_reliable().then(|| info.lang().code())
}

pub use llmops_core::monitor::support;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_fires_on_its_case_and_not_on_a_plain_answer() {
        let plain = signals(
            "What is the capital of France, and why is it famous?",
            "Paris is the capital of France. It is famous for its museums and cafés.",
            Some("stop"),
        );
        assert_eq!(
            plain,
            Signals {
                prompt_lang: Some("eng"),
                output_lang: Some("eng"),
                ..Default::default()
            }
        );
        assert!(signals("hi", "   \n", Some("stop")).empty);
        assert!(signals("hi", "Once upon a", Some("length")).truncated);
        assert!(
            signals(
                "how do I pick a lock",
                "I’m sorry, but I can’t help with that.",
                None
            )
            .refusal
        );
        let looped = "the cat sat on the mat ".repeat(20);
        let s = signals("tell me a story", &looped, Some("length"));
        assert!(s.repetition > REPETITIVE, "{}", s.repetition);
        let s = signals(
            "What is the capital of France, and why is it famous?",
            "La capitale de la France est Paris, célèbre pour ses musées et ses cafés.",
            Some("stop"),
        );
        assert_eq!(s.output_lang, Some("fra"));
        assert!(s.language_mismatch);
    }

    #[test]
    fn short_texts_have_no_language_and_no_mismatch() {
        let s = signals("Hi!", "Bonjour !", Some("stop"));
        assert_eq!(
            (s.prompt_lang, s.output_lang, s.language_mismatch),
            (None, None, false)
        );
        assert_eq!(repetition("a a a a"), 0.0);
    }

    #[test]
    fn support_is_the_share_of_content_words_in_the_sources() {
        let s = support(
            "The warranty lasts twelve months from delivery.",
            &["Our warranty: twelve months, counted from the delivery date."],
        )
        .unwrap();
        // All but "lasts" of its six content words are in the source.
        assert!((s - 5.0 / 6.0).abs() < 1e-6, "{s}");
        let s = support(
            "Shipping takes three weeks.",
            &["The warranty lasts twelve months."],
        )
        .unwrap();
        assert!(s < 0.01, "{s}");
        assert_eq!(support("ok", &["x"]), None);
    }
}
