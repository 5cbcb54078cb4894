//! WordNet's antonyms (`wordnet.tsv`, written by
//! `scripts/wordnet-antonyms.py`), compared by lemma: "why does my dough
//! rise too much" is not "… too little", and "the price rose" is not "the
//! price fell", whatever the inflection.
//!
//! The guard's own lists (`words.rs`, `antonyms.tsv`) hold the opposites
//! that prompts use most, in the forms they use; this one adds the 3,300
//! pairs of a lexicographers' resource that nobody here chose, so that an
//! opposite nobody thought of still vetoes.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

struct Lexicon {
    /// Each lemma's antonyms (both directions).
    opposites: HashMap<&'static str, Vec<&'static str>>,
    /// Irregular forms and their lemmas ("rose" → "rise", "worse" → "bad").
    forms: HashMap<&'static str, Vec<&'static str>>,
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut opposites: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
        let mut forms: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
        for line in include_str!("../wordnet.tsv").lines() {
            let mut fields = line.split('\t');
            match (fields.next(), fields.next(), fields.next()) {
                (Some("antonym"), Some(x), Some(y)) => {
                    opposites.entry(x).or_default().push(y);
                    opposites.entry(y).or_default().push(x);
                }
                (Some("form"), Some(form), Some(lemma)) => {
                    forms.entry(form).or_default().push(lemma)
                }
                _ => {}
            }
        }
        Lexicon { opposites, forms }
    })
}

/// The lemmas with an antonym that `word` may be a form of: itself, its
/// irregular forms' lemmas, and what WordNet's regular suffix rules give
/// (plurals, third persons, past tenses, gerunds, comparatives), with a
/// doubled final consonant undone ("stopped", "bigger").
fn lemmas(word: &str, out: &mut BTreeSet<&'static str>) {
    let lexicon = lexicon();
    let mut note = |candidate: &str| {
        if let Some((lemma, _)) = lexicon.opposites.get_key_value(candidate) {
            out.insert(lemma);
        }
    };
    note(word);
    // One buffer for the candidates with an ending ("stud" + "y").
    let mut buf = String::new();
    for (suffix, ending) in SUFFIXES {
        let Some(base) = word.strip_suffix(suffix) else {
            continue;
        };
        if base.chars().count() < 2 {
            continue;
        }
        if ending.is_empty() {
            note(base);
            let mut tail = base.chars().rev();
            if let (Some(x), Some(y)) = (tail.next(), tail.next())
                && x == y
                && !"aeiouls".contains(x)
            {
                note(&base[..base.len() - x.len_utf8()]);
            }
        } else {
            buf.clear();
            buf.push_str(base);
            buf.push_str(ending);
            note(&buf);
        }
    }
    if let Some(bases) = lexicon.forms.get(word) {
        out.extend(bases.iter().filter(|b| lexicon.opposites.contains_key(*b)));
    }
}

/// WordNet's regular inflections (its `morphy` rules, and the comparative
/// and superlative), each as the suffix and the ending that replaces it.
const SUFFIXES: [(&str, &str); 21] = [
    ("ies", "y"),
    ("ied", "y"),
    ("ier", "y"),
    ("iest", "y"),
    ("ses", "s"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("es", "e"),
    ("es", ""),
    ("s", ""),
    ("ed", "e"),
    ("ed", ""),
    ("ing", "e"),
    ("ing", ""),
    ("er", "e"),
    ("er", ""),
    ("est", "e"),
    ("est", ""),
];

/// The lemmas with an antonym that a prompt's words may be forms of.
fn lemmas_of<'a>(words: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for w in words {
        lemmas(w, &mut out);
    }
    out
}

/// Whether one prompt has a lemma whose antonym the other has, each
/// without the other's: "rises too much" / "rises too little". Words are
/// lower case; a prompt with both sides of a pair ("pros and cons") is
/// left to the other checks.
pub(super) fn opposed<'a>(
    a: impl IntoIterator<Item = &'a str>,
    b: impl IntoIterator<Item = &'a str>,
) -> bool {
    let (la, lb) = (lemmas_of(a), lemmas_of(b));
    let opposites = &lexicon().opposites;
    la.difference(&lb).any(|x| {
        opposites
            .get(x)
            .into_iter()
            .flatten()
            .any(|y| lb.contains(y) && !la.contains(y))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&str> {
        s.split(' ').collect()
    }

    #[test]
    fn opposites_are_found_by_lemma_in_any_inflection() {
        let cases = [
            (
                "why does my dough rise too much",
                "why does my dough rise too little",
                true,
            ),
            ("the price rose", "the price fell", true),
            ("the stocks rising", "the stocks falling", true),
            ("is walking better", "is walking worse", true),
            ("a bigger house", "a smaller house", true),
            ("the shop stopped selling", "the shop stopped buying", true),
            ("retail prices", "wholesale prices", true),
            // Both sides in one prompt, or the same word: no veto here.
            ("buy or sell", "sell or buy", false),
            ("buy low", "buy cheap", false),
            ("rise too much", "rise too much please", false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(opposed(words(a), words(b)), expected, "{a} / {b}");
            assert_eq!(opposed(words(b), words(a)), expected, "{b} / {a}");
        }
    }

    #[test]
    fn the_pairs_that_fired_on_training_paraphrases_are_left_out() {
        for (a, b) in [
            ("all", "some"),
            ("off", "on"),
            ("end", "middle"),
            ("multiple", "single"),
        ] {
            assert!(!opposed([a], [b]), "{a} / {b}");
        }
    }

    #[test]
    fn every_line_is_read() {
        let text = include_str!("../wordnet.tsv");
        let antonyms = text.lines().filter(|l| l.starts_with("antonym\t")).count();
        let forms = text.lines().filter(|l| l.starts_with("form\t")).count();
        let lexicon = lexicon();
        assert!(antonyms > 3000, "{antonyms}");
        assert_eq!(
            lexicon.opposites.values().map(Vec::len).sum::<usize>(),
            2 * antonyms
        );
        assert_eq!(lexicon.forms.values().map(Vec::len).sum::<usize>(), forms);
        assert!(
            text.lines().all(|l| l.starts_with('#')
                || l.starts_with("antonym\t")
                || l.starts_with("form\t"))
        );
    }
}
