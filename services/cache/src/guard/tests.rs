//! The guard's checks, one near miss or paraphrase at a time.

use super::*;

fn ok(a: &str, b: &str) -> Result<(), Rejection> {
    verify(a, b, 0.999, 0.5)
}

#[test]
fn paraphrases_pass() {
    ok("How do I reset my password?", "how can I reset my password").unwrap();
    ok(
        "What's the capital of France?",
        "What is the capital of France",
    )
    .unwrap();
    ok("Convert 5 km to miles", "convert 5 kilometres to miles").unwrap();
    ok(
        "Write a haiku about autumn.",
        "Please write a haiku about autumn",
    )
    .unwrap();
}

#[test]
fn near_misses_fail() {
    use Rejection::*;
    let cases = [
        (
            "Is it safe to eat raw eggs?",
            "Is it unsafe to eat raw eggs?",
            Negation,
        ),
        (
            "Is it safe to eat raw eggs?",
            "Is it not safe to eat raw eggs?",
            Negation,
        ),
        (
            "Book a flight from Paris to Berlin",
            "Book a flight from Berlin to Paris",
            Sequence,
        ),
        (
            "Convert Fahrenheit to Celsius",
            "Convert Celsius to Fahrenheit",
            Units,
        ),
        (
            "Sort the list in ascending order",
            "Sort the list in descending order",
            Antonym,
        ),
        (
            "What was the weather today?",
            "What was the weather yesterday?",
            Dates,
        ),
        ("What is 15% of 80?", "What is 15% of 60?", Numbers),
        (
            "What does error E1234 mean?",
            "What does error E1243 mean?",
            Identifiers,
        ),
        (
            "Replace \"foo\" with bar",
            "Replace \"baz\" with bar",
            Quoted,
        ),
        (
            "What is the capital of France?",
            "What is the capital of Germany?",
            Entities,
        ),
        (
            "Is Python faster than Java?",
            "Is Java faster than Python?",
            Sequence,
        ),
        (
            "What is the capital of France?",
            "Quelle est la capitale de la France ?",
            Language,
        ),
        ("Convert 5 miles to km", "Convert 5 km to miles", Units),
    ];
    for (a, b, why) in cases {
        assert_eq!(ok(a, b), Err(why), "{a} / {b}");
    }
}

#[test]
fn a_replaced_object_or_a_moved_argument_fails() {
    let (a, b) = (
        "How do I sort a list in postgres",
        "How do I sort a list in mysql",
    );
    assert_eq!(verify(a, b, 0.93, 0.9), Err(Rejection::Substitution));
    assert_eq!(verify(a, a, 0.93, 0.9), Ok(()));
    assert_eq!(verify(a, a, 0.89, 0.9), Err(Rejection::Similarity));
    assert_eq!(
        ok(
            "What time is it in Tokyo when it is 9am in London?",
            "What time is it in London when it is 9am in Tokyo?"
        ),
        Err(Rejection::Sequence)
    );
}

#[test]
fn quoted_spans_particles_and_hyphenated_digits() {
    // A quoted span found unquoted in the other prompt is the same span.
    assert!(
        !failures(
            "What is the difference between `map` and `forEach` in JavaScript?",
            "JavaScript: forEach vs map, what's the difference?"
        )
        .contains(&Rejection::Quoted)
    );
    assert!(
        failures(
            "Translate 'good night' into Welsh",
            "Translate 'good morning' into Welsh"
        )
        .contains(&Rejection::Quoted)
    );
    assert!(
        failures("How do I zoom in on a map?", "How do I zoom out on a map?")
            .contains(&Rejection::Particle)
    );
    assert!(
        !failures(
            "How many days are between 2024-01-01 and 2024-03-01?",
            "How many days are between 2023-01-01 and 2023-03-01?"
        )
        .is_empty()
    );
    assert!(
        failures(
            "How many bytes are in 1 megabit?",
            "How many bytes are in 1 megabyte?"
        )
        .contains(&Rejection::Units)
    );
}

#[test]
fn written_out_numbers_ordinals_and_rates() {
    for (a, b) in [
        (
            "What is the TCP three-way handshake?",
            "Explain how TCP's 3-way handshake works.",
        ),
        (
            "How do I potty train a 3-year-old?",
            "What's the best way to potty train a three-year-old?",
        ),
        (
            "What is Newton's second law?",
            "Explain Newton's 2nd law of motion.",
        ),
        ("Is it okay to run every day?", "Is it okay to run daily?"),
    ] {
        let hard: Vec<Rejection> = failures(a, b)
            .into_iter()
            .filter(crate::judge::is_hard)
            .collect();
        assert_eq!(hard, vec![], "{a} | {b}");
    }
    assert!(
        failures(
            "How do I potty train a 3-year-old?",
            "How do I potty train a 4-year-old?"
        )
        .contains(&Rejection::Numbers)
    );
    assert!(
        failures("Explain Newton's 2nd law.", "Explain Newton's 3rd law.")
            .contains(&Rejection::Numbers)
    );
    assert!(
        failures("Explain Newton's second law.", "Explain Newton's 3rd law.")
            .contains(&Rejection::Numbers)
    );
    assert!(
        failures("How much water per day?", "How much water weekly?").contains(&Rejection::Units)
    );
}

#[test]
fn another_question_word_is_another_question() {
    assert!(
        failures(
            "Who wrote Pride and Prejudice?",
            "When was Pride and Prejudice written?"
        )
        .contains(&Rejection::Question)
    );
    assert!(
        !failures("Who wrote Hamlet?", "Hamlet was written by whom?")
            .contains(&Rejection::Question)
    );
    assert!(
        !failures(
            "When did the Berlin Wall fall?",
            "What year did the Berlin Wall fall?"
        )
        .contains(&Rejection::Question)
    );
}

#[test]
fn the_same_words_in_another_order_are_another_question() {
    assert!(
        failures(
            "Why did Brutus betray Caesar?",
            "Why did Caesar betray Brutus?"
        )
        .contains(&Rejection::Sequence)
    );
    assert!(
        !failures(
            "Why did Brutus betray Caesar?",
            "why did brutus betray caesar"
        )
        .contains(&Rejection::Sequence)
    );
}

#[test]
fn fails_closed_on_odd_input() {
    assert_eq!(verify("", "x", 1.0, 0.5), Err(Rejection::Unreadable));
    assert_eq!(verify("a", "a", f32::NAN, 0.5), Err(Rejection::Unreadable));
    let long = "word ".repeat(1000);
    assert_eq!(verify(&long, &long, 1.0, 0.5), Err(Rejection::Unreadable));
}
