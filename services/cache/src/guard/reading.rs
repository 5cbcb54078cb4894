//! Reading a prompt for the guard: its words, numbers and amounts, units,
//! quoted spans, identifiers, entities, dates, negations and language.

use crate::words::*;
use std::collections::{BTreeMap, BTreeSet};

/// A prompt read for comparison.
#[derive(Debug, Default)]
pub(super) struct Reading {
    /// Lower-case word tokens, in order (contractions split).
    pub(super) words: Vec<String>,
    pub(super) numbers: BTreeMap<String, u32>,
    /// Units not attached to a number, in order ("in miles", "per day"):
    /// which is converted into which.
    pub(super) units: Vec<String>,
    /// Units of an amount ("5 km", "a 2-week trip", "20 °C"), as a set:
    /// "grams in 1 pound" asks what "1 pound is how many grams" asks.
    pub(super) quantities: BTreeMap<String, u32>,
    /// The numbers and one-letter names in order (see `failures`).
    pub(super) sequence: Vec<String>,
    pub(super) quoted: BTreeSet<String>,
    pub(super) identifiers: BTreeSet<String>,
    /// Capitalised (not sentence-initial) or all-caps words, lower-case.
    pub(super) entities: BTreeSet<String>,
    pub(super) dates: BTreeSet<String>,
    pub(super) negations: usize,
    /// (verb, particle) pairs: `("zoom", "in")`.
    pub(super) particles: BTreeSet<(String, String)>,
    /// Content words, stemmed and with synonyms folded.
    pub(super) content: BTreeSet<String>,
    pub(super) language: &'static str,
    /// Indices in `words` of the words that start a sentence.
    pub(super) starts: BTreeSet<usize>,
}

fn count(map: &mut BTreeMap<String, u32>, key: String) {
    *map.entry(key).or_default() += 1;
}

/// Takes one back from `count` (an amount that turned out to be part of
/// another: "10" of "10 million", "2" of "2 times").
fn uncount(map: &mut BTreeMap<String, u32>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

pub(super) fn is_in(list: &[&str], w: &str) -> bool {
    list.contains(&w)
}

/// Spans in straight, curly or back quotes (apostrophes inside words are
/// not quotes).
fn quoted_spans(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = text.chars().collect();
    let pairs = [
        ('"', '"'),
        ('`', '`'),
        ('“', '”'),
        ('‘', '’'),
        ('\'', '\''),
        ('«', '»'),
    ];
    for (open, close) in pairs {
        let mut i = 0;
        while i < chars.len() {
            let starts =
                chars[i] == open && (open != '\'' || i == 0 || !chars[i - 1].is_alphanumeric());
            if starts
                && let Some(len) = chars[i + 1..].iter().enumerate().position(|(k, &c)| {
                    c == close
                        && (close != '\''
                            || chars.get(i + 2 + k).is_none_or(|n| !n.is_alphanumeric()))
                })
            {
                let span: String = chars[i + 1..i + 1 + len].iter().collect();
                if !span.trim().is_empty() {
                    out.insert(span.trim().to_string());
                }
                i += len + 2;
                continue;
            }
            i += 1;
        }
    }
    out
}

/// Splits into raw tokens: runs of letters, digits and the joiners that
/// belong inside identifiers, numbers and contractions; each with whether
/// it starts a sentence (its capital then says nothing).
fn raw_tokens(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut initial = true;
    let mut flush = |cur: &mut String, initial: &mut bool| {
        let ends_sentence = cur.ends_with(['.', '!', ':']);
        let t = cur
            .trim_matches(|c: char| !c.is_alphanumeric() && !"%$€£¥°".contains(c))
            .to_string();
        if !t.is_empty() {
            out.push((t, *initial));
            *initial = ends_sentence;
        }
        cur.clear();
    };
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // A thousands separator stays in its number: "$1,000" is one
        // amount (not 1 and 0), "1, 2" two.
        let grouping = c == ','
            && cur.ends_with(|d: char| d.is_ascii_digit())
            && chars
                .get(i + 1..i + 4)
                .is_some_and(|g| g.iter().all(char::is_ascii_digit))
            && !chars.get(i + 4).is_some_and(char::is_ascii_digit);
        if grouping || c.is_alphanumeric() || "._-/:'’@#+%$€£¥°\\=".contains(c) {
            cur.push(if c == '’' { '\'' } else { c });
        } else {
            flush(&mut cur, &mut initial);
            if "?!\n".contains(c) {
                initial = true;
            }
        }
    }
    flush(&mut cur, &mut initial);
    out
}

/// Numeronyms spelled out ("k8s" is "kubernetes"), and a name joined to
/// its number read as the two words ("carbon-14" is "carbon 14",
/// "COVID-19" is "COVID 19"): the same question either way.
fn respelled((raw, initial): (String, bool)) -> Vec<(String, bool)> {
    let lower = raw.to_lowercase();
    if let Some((_, word)) = NUMERONYMS.iter().find(|(n, _)| *n == lower) {
        return vec![((*word).to_string(), initial)];
    }
    // "carbon-14's half-life": the possessive goes with the name.
    let bare = raw.strip_suffix("'s").unwrap_or(&raw);
    if let Some((name, digits)) = bare.split_once('-')
        && name.chars().count() >= 2
        && name.chars().all(char::is_alphabetic)
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
    {
        return vec![(name.to_string(), initial), (digits.to_string(), false)];
    }
    vec![(raw, initial)]
}

/// The number of a number glued to a unit ("72°f" → "72").
fn glued_amount(w: &str) -> Option<&str> {
    let end = w
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|&e| e > 0)?;
    is_in(UNITS, &w[end..]).then_some(&w[..end])
}

/// The number of an ordinal written in digits that has no word form
/// here ("90th" → "90"; "2nd" was read as "second").
fn digit_ordinal(w: &str) -> Option<&str> {
    let end = w.find(|c: char| !c.is_ascii_digit()).filter(|&e| e > 0)?;
    matches!(&w[end..], "st" | "nd" | "rd" | "th").then_some(&w[..end])
}

pub(super) fn is_number(t: &str) -> bool {
    let t = t.trim_end_matches('%');
    let t = t.trim_start_matches(['$', '€', '£', '¥', '-', '+']);
    !t.is_empty()
        && t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && t.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
}

/// A number's value as the guard compares it: no currency sign, no
/// percent sign, no thousands separators ("$1,000" → "1000").
fn amount_value(t: &str) -> String {
    normalise_number(
        t.trim_start_matches(['$', '€', '£', '¥'])
            .trim_end_matches('%'),
    )
}

fn normalise_number(t: &str) -> String {
    let mut s: String = t.chars().filter(|c| *c != ',').collect();
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s
}

fn looks_like_identifier(t: &str) -> bool {
    let has_digit = t.chars().any(|c| c.is_ascii_digit());
    let has_alpha = t.chars().any(|c| c.is_alphabetic());
    // Digits joined by hyphens: dates (2024-01-01), ranges, phone numbers.
    (has_digit && (has_alpha || t.contains([':', '/', '^', '*', '+', '=', '-'])))
        || t.contains('_')
        || t.contains("::")
        || t.contains("://")
        || t.contains('/')
        || t.contains('\\')
        || t.contains('=')
        || t.contains('@')
        || t.contains('#')
        || (t.contains('.') && has_alpha && !t.ends_with('.'))
        || t.starts_with('-')
}

/// English stemming, light: plurals and common verb endings.
pub(super) fn stem(w: &str) -> String {
    let w = w.trim_end_matches("'s");
    for (suffix, keep) in [
        ("ies", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ] {
        if let Some(base) = w.strip_suffix(suffix)
            && base.chars().count() >= 3
            && !(suffix == "s"
                && (base.ends_with('s') || base.ends_with('u') || base.ends_with('i')))
        {
            return format!("{base}{keep}");
        }
    }
    w.to_string()
}

pub(super) fn synonym(w: &str) -> String {
    SYNONYMS
        .iter()
        .find(|(from, _)| *from == w)
        .map_or_else(|| w.to_string(), |(_, to)| (*to).to_string())
}

fn expand_contraction(w: &str, out: &mut Vec<String>) -> bool {
    let special = [
        ("can't", ["can", "not"]),
        ("won't", ["will", "not"]),
        ("cannot", ["can", "not"]),
        ("shan't", ["shall", "not"]),
        ("ain't", ["is", "not"]),
    ];
    if let Some((_, parts)) = special.iter().find(|(c, _)| *c == w) {
        out.extend(parts.iter().map(|s| s.to_string()));
        return true;
    }
    if let Some(base) = w.strip_suffix("n't") {
        out.push(base.to_string());
        out.push("not".into());
        return true;
    }
    for (suffix, full) in [
        ("'s", "is"),
        ("'re", "are"),
        ("'ll", "will"),
        ("'ve", "have"),
        ("'d", "would"),
        ("'m", "am"),
    ] {
        if let Some(base) = w.strip_suffix(suffix)
            && !base.is_empty()
        {
            out.push(base.to_string());
            if matches!(
                base,
                "what"
                    | "how"
                    | "it"
                    | "that"
                    | "there"
                    | "who"
                    | "where"
                    | "here"
                    | "he"
                    | "she"
                    | "let"
            ) || suffix != "'s"
            {
                out.push(full.to_string());
            }
            return true;
        }
    }
    false
}

fn language(words: &[String]) -> &'static str {
    let mut best = ("en", 0usize);
    let mut scores = Vec::new();
    for (lang, list) in LANGUAGES {
        let n = words.iter().filter(|w| list.contains(&w.as_str())).count();
        scores.push((*lang, n));
        if n > best.1 {
            best = (*lang, n);
        }
    }
    let en = scores.first().map_or(0, |s| s.1);
    // Non-ASCII letters English prompts rarely carry.
    if best.0 != "en" && best.1 > en {
        best.0
    } else if en == 0
        && words
            .iter()
            .any(|w| w.chars().any(|c| !c.is_ascii() && c.is_alphabetic()))
    {
        "other"
    } else {
        "en"
    }
}

pub(super) fn read(text: &str) -> Reading {
    let mut r = Reading {
        quoted: quoted_spans(text),
        ..Reading::default()
    };
    for (raw, initial) in raw_tokens(text).into_iter().flat_map(respelled) {
        if initial {
            r.starts.insert(r.words.len());
        }
        let lower = raw.to_lowercase();
        if is_number(&raw) {
            *r.numbers.entry(amount_value(&raw)).or_default() += 1;
            if raw.ends_with('%') {
                count(&mut r.quantities, unit_key("%"));
            }
            if let Some(c) = raw.chars().next().filter(|c| "$€£¥".contains(*c)) {
                count(&mut r.quantities, unit_key(&c.to_string()));
            }
            r.words.push(lower);
            continue;
        }
        // "5km", "10GB", "3x": a number glued to a unit.
        let digits: String = raw
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if !digits.is_empty() {
            let rest = lower[digits.len()..].to_string();
            // "2nd" is "second", as written out (not a count).
            if matches!(rest.as_str(), "st" | "nd" | "rd" | "th")
                && let Some(word) = ORDINALS.iter().find(|(d, _)| *d == digits).map(|(_, w)| *w)
            {
                r.words.push(word.to_string());
                continue;
            }
            // "3-way" is "three-way": the word form, whose number the
            // words' pass counts; other numbers are counted here.
            if let Some(tail) = rest.strip_prefix('-')
                && !tail.is_empty()
                && tail.chars().all(|c| c.is_alphabetic() || c == '-')
            {
                match NUMBER_WORDS.iter().find(|(_, d)| *d == digits) {
                    Some((word, _)) => r.words.push(format!("{word}-{tail}")),
                    None => {
                        *r.numbers.entry(normalise_number(&digits)).or_default() += 1;
                        r.words.push(lower);
                    }
                }
                continue;
            }
            if is_in(UNITS, &rest) || matches!(rest.as_str(), "x" | "st" | "nd" | "rd" | "th") {
                *r.numbers.entry(normalise_number(&digits)).or_default() += 1;
                if is_in(UNITS, &rest) {
                    count(&mut r.quantities, unit_key(&rest));
                }
                r.words.push(lower);
                continue;
            }
        }
        if looks_like_identifier(&raw) && !lower.contains('\'') {
            // Case kept: `MB/s` is not `Mb/s`, `userId` is not `userid`.
            r.identifiers.insert(raw.clone());
            r.words.push(lower);
            continue;
        }
        let alpha = raw.chars().filter(|c| c.is_alphabetic()).count();
        let caps = raw.chars().filter(|c| c.is_uppercase()).count();
        let inner_upper =
            raw.chars().skip(1).any(char::is_uppercase) && raw.chars().any(char::is_lowercase);
        let scale = matches!(lower.as_str(), "celsius" | "fahrenheit" | "kelvin");
        // "I", "I'm", "I've": the speaker, not a name.
        let pronoun = raw == "I" || raw.starts_with("I'");
        if scale {
            // A unit's capital names no entity: the units rule compares it.
        } else if (!initial && raw.chars().next().is_some_and(char::is_uppercase) && !pronoun)
            || (alpha >= 2 && caps == alpha && !pronoun)
            || (!initial && alpha == 1 && caps == 1 && raw.chars().count() == 1 && !pronoun)
            || inner_upper
        {
            r.entities.insert(lower.clone());
        }
        let mut parts = Vec::new();
        if !expand_contraction(&lower, &mut parts) {
            parts.push(lower);
        }
        r.words.extend(parts);
    }
    // A written-out number that is an amount (not "first", "half").
    let amount = |d: &str| (is_number(d) && !d.contains('.')) || d.starts_with('x');
    for (i, w) in r.words.iter().enumerate() {
        let next = r.words.get(i + 1).map(String::as_str);
        // The numbers in order, written out or not: `found` is this
        // word's ("five-sentence" has one).
        let mut found: Vec<String> = Vec::new();
        let parts: Vec<&str> = w.split('-').filter(|_| w.contains('-')).collect();
        for (k, part) in parts.iter().enumerate() {
            // "a 25-year-old" is "a 25 year old": its number was counted
            // with the token, its amount and unit are counted here.
            let digits = (k == 0 && is_number(part)).then(|| normalise_number(part));
            let word = NUMBER_WORDS.iter().find(|(n, _)| n == part);
            if let Some(d) = digits.as_deref().or(word.map(|(_, d)| *d)) {
                if word.is_some() {
                    *r.numbers.entry(d.to_string()).or_default() += 1;
                }
                if amount(d) {
                    found.push(d.to_string());
                }
                // "a two-week trip", "a ten-year-old": an amount's unit.
                if let Some(unit) = parts
                    .get(k + 1)
                    .filter(|u| is_in(UNITS, u) || is_in(PERIODS, u))
                {
                    count(&mut r.quantities, unit_key(unit));
                }
            }
        }
        // "10 million" is one amount, as "10,000,000" is: the number
        // before a scale word is multiplied by it.
        let scale = match w.as_str() {
            "hundred" => Some(1e2),
            "thousand" => Some(1e3),
            "million" => Some(1e6),
            "billion" => Some(1e9),
            _ => None,
        };
        let scaled = scale.and_then(|s| {
            let before = r.words.get(i.checked_sub(1)?)?;
            let v = if is_number(before) {
                amount_value(before)
            } else {
                let (_, d) = NUMBER_WORDS.iter().find(|(n, _)| n == before)?;
                (*d).to_string()
            };
            let x = v.parse::<f64>().ok().filter(|x| x.is_finite())? * s;
            Some((v, normalise_number(&format!("{x:.3}"))))
        });
        if let Some((v, product)) = scaled {
            uncount(&mut r.numbers, &v);
            count(&mut r.numbers, product.clone());
            if r.sequence.last() == Some(&v) {
                r.sequence.pop();
            }
            found.push(product);
        } else if let Some((_, d)) = NUMBER_WORDS.iter().find(|(n, _)| n == w) {
            // "one of", "a second" are not always numbers, but a changed
            // one is a changed question: counted either way. In the order
            // only amounts: "check first" and "a half marathon" say when
            // and what as often as how many.
            *r.numbers.entry((*d).to_string()).or_default() += 1;
            if amount(d) {
                found.push((*d).to_string());
            }
        } else if is_number(w) {
            found.push(amount_value(w));
        } else if let Some(digits) = digit_ordinal(w) {
            // "her 90th" is "turning 90": the number, as `numbers` has it.
            found.push(normalise_number(digits));
        } else if let Some(digits) = glued_amount(w) {
            // "72°f", "5km": the amount of a number glued to its unit.
            found.push(normalise_number(digits));
        } else if w == "one" && next.is_some_and(|n| is_in(UNITS, n) || is_in(PERIODS, n)) {
            // "one mile" is "1 mile" ("one of them" is no amount).
            *r.numbers.entry("1".into()).or_default() += 1;
            found.push("1".into());
        } else if w.chars().count() == 1 && r.entities.contains(w) {
            found.push(w.clone());
        }
        // "Two times" with no number after it is "twice" (a multiplier);
        // "3 times 4" is a product.
        let followed_by_number = r
            .words
            .get(i + 2)
            .is_some_and(|x| is_number(x) || NUMBER_WORDS.iter().any(|(n, _)| n == x));
        if next == Some("times")
            && !followed_by_number
            && let Some(d) = found.pop().filter(|d| is_number(d))
        {
            uncount(&mut r.numbers, &d);
            let times = format!("x{d}");
            count(&mut r.numbers, times.clone());
            found.push(times);
        }
        // A multiplier says how often, not which argument comes first:
        // "charged twice for order 48213" / "order 48213 billed two times".
        r.sequence
            .extend(found.into_iter().filter(|d| !d.starts_with('x')));
        // Ordinals are numbers too ("second" or "2nd" is not "3rd"), but
        // "first" says "before anything else" as often as "number one".
        if let Some((d, _)) = ORDINALS
            .iter()
            .find(|(_, o)| o == w)
            .filter(|(d, _)| *d != "1")
        {
            *r.numbers.entry(format!("#{d}")).or_default() += 1;
        }
        // "non-technical" is "not technical", "gluten-free" is "without
        // gluten": counted as the negations they are (so "non-technical" /
        // "technical" fails here rather than as a negating prefix).
        if is_in(NEGATIONS, w)
            || w.starts_with("non-")
            || w.strip_suffix("-free").is_some_and(|x| !x.is_empty())
        {
            r.negations += 1;
        }
        if is_in(DATE_WORDS, w) {
            r.dates.insert(w.clone());
        }
        // "last week", "next month", "two days ago", "this year".
        if is_in(DATE_MODIFIERS, w) {
            let near = |j: usize| r.words.get(j).filter(|x| is_in(PERIODS, x));
            if let Some(period) = near(i + 1).or_else(|| i.checked_sub(1).and_then(near)) {
                r.dates.insert(format!("{w} {}", unit_key(period)));
            }
        }
        if is_in(DIMINISHERS, w) {
            r.negations += 1;
        }
        if is_in(PARTICLES, w)
            && let Some(prev) = i.checked_sub(1).and_then(|j| r.words.get(j))
            && !is_in(STOP, prev)
        {
            r.particles.insert((stem(prev), w.clone()));
        }
        // Units only next to a number, or unambiguous ones anywhere.
        let numeric = |j: usize| {
            r.words.get(j).is_some_and(|x| {
                is_number(x)
                    || NUMBER_WORDS.iter().any(|(n, _)| n == x)
                    || (x == "one" && j + 1 == i)
            })
        };
        let after_number = (i > 0 && numeric(i - 1))
            || (i > 1
                && numeric(i - 2)
                && matches!(
                    r.words[i - 1].as_str(),
                    "cubic"
                        | "square"
                        | "sq"
                        | "fluid"
                        | "metric"
                        | "nautical"
                        | "imperial"
                        | "us"
                        | "degree"
                        | "degrees"
                ));
        // "20 degrees Celsius" is "20 °C": the scale is the unit.
        let scale_follows = w.starts_with("degree")
            && next.is_some_and(|n| matches!(n, "celsius" | "fahrenheit" | "kelvin" | "c" | "f"));
        // A rate: "daily" is "per day".
        if let Some((_, period)) = RATES.iter().find(|(r, _)| r == w) {
            push_unit(&mut r.units, format!("per {}", unit_key(period)));
        }
        // A rate: "per week", "an hour", "per square metre" (not "per
        // square": the area's unit is the one after).
        if matches!(w.as_str(), "per" | "a" | "an" | "each" | "every") {
            let (shape, at) = match next {
                Some(m @ ("square" | "sq" | "cubic")) => (format!("{m} "), i + 2),
                _ => (String::new(), i + 1),
            };
            if let Some(period) = r
                .words
                .get(at)
                .filter(|x| is_in(PERIODS, x) || is_in(UNITS, x))
            {
                push_unit(&mut r.units, format!("per {shape}{}", unit_key(period)));
            }
        }
        if is_in(UNITS, w) && !scale_follows {
            if after_number {
                count(&mut r.quantities, unit_key(w));
            } else if is_in(ANYWHERE_UNITS, w) {
                push_unit(&mut r.units, unit_key(w));
            }
        }
    }
    r.language = language(&r.words);
    r.content = r
        .words
        .iter()
        .filter(|w| !is_in(STOP, w) && !is_in(NEGATIONS, w) && w.chars().any(char::is_alphabetic))
        .map(|w| synonym(&stem(w)))
        .collect();
    r
}

/// A unit not attached to a number, once where it repeats: "20 miles a
/// week, a weekly plan" converts per week once.
fn push_unit(units: &mut Vec<String>, unit: String) {
    if units.last() != Some(&unit) {
        units.push(unit);
    }
}

/// Canonical unit names (so "km" and "kilometres" are the same unit).
pub(super) fn unit_key(u: &str) -> String {
    UNIT_GROUPS
        .iter()
        .find(|g| g.contains(&u))
        .and_then(|g| g.first())
        .map_or_else(|| u.to_string(), |s| (*s).to_string())
}
