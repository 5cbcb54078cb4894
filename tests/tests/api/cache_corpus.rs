//! The semantic level's decision on the labelled corpus
//! (`tests/corpus/cache`): floors on the held-out pair sets and the
//! held-out labelled neighbours, at the default settings.

use crate::cache::minilm_dir;
use llmops_cache::embed::Precision;
use llmops_cache::{Embedder, MiniLm, PairClassifier};
use std::path::Path;

/// The decision as `SemanticCache` takes it with the in-process encoder:
/// the cosine floor and the guard's hard rules, then the pair classifier,
/// at the default settings.
struct Decision {
    model: MiniLm,
    threshold: f32,
}

impl Decision {
    fn load() -> Self {
        Self {
            model: MiniLm::load("all-minilm-l6-v2", Path::new(&minilm_dir())).unwrap(),
            threshold: llmops_cache::CacheConfig::default().min_similarity,
        }
    }

    fn encode(&self, text: &str) -> Vec<f32> {
        self.model.embed_blocking(text).unwrap()
    }

    /// Whether the cached prompt's answer is served for the new prompt.
    fn serves(&self, new: (&String, &Vec<f32>), cached: (&String, &Vec<f32>)) -> bool {
        let cos = llmops_cache::embed::cosine(new.1, cached.1);
        llmops_cache::judge::screen(new.0, cached.0, cos, self.threshold).is_ok()
            && self.model.classifier().unwrap().accepts(new.0, cached.0)
    }
}

/// The pair classifier in this process gives the probabilities it gave
/// where it was trained (`services/cache/train/pair_classifier.py`, jax,
/// f32): 40 pairs spread over the whole range, with the default bf16
/// weights and with f32 ones. A wrong merge of the adapter, a wrong token
/// type or pooling, or another tokenisation of pairs moves them by far
/// more than the tolerance.
#[test]
fn the_pair_classifier_gives_the_trained_probabilities() {
    #[derive(serde::Deserialize)]
    struct Reference {
        new: String,
        cached: String,
        probability: f32,
    }
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/cache/pair-classifier-reference.json");
    let rows: Vec<Reference> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(rows.len(), 40);
    for (precision, tolerance) in [(Precision::Bf16, 0.02f32), (Precision::F32, 0.001)] {
        let c = PairClassifier::load(Path::new(&minilm_dir()), precision).unwrap();
        assert_eq!(c.threshold, 0.5);
        let mut worst = 0.0f32;
        for r in &rows {
            let p = c.probability(&r.new, &r.cached).unwrap();
            worst = worst.max((p - r.probability).abs());
        }
        assert!(
            worst <= tolerance,
            "{precision:?}: largest difference {worst}"
        );
        eprintln!("{precision:?}: largest difference from training {worst:.5}");
    }
}

/// The script that trained the shipped adapter runs (a smoke run of two
/// steps, holding out the validation rows) and writes an adapter this
/// process loads: the same tensors, the threshold asked for.
#[test]
fn the_pair_classifier_training_script_writes_an_adapter_the_cache_loads() {
    let python = std::env::var("TEST_PAIR_PYTHON")
        .expect("TEST_PAIR_PYTHON (set by scripts/test.sh: scripts/lib.sh pair_python)");
    let dir = llmops_tests::TempDir::new("pair-classifier").unwrap();
    let out = dir.0.join("pair.safetensors");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/cache/train/pair_classifier.py");
    let run = std::process::Command::new(python)
        .arg(script)
        .arg(minilm_dir())
        .arg(&out)
        .args(["--validate", "--steps", "2", "--threshold", "0.6"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The shipped adapter's rows: training pairs and labelled neighbours
    // less the validation ones.
    assert!(
        stdout.contains("5824 training directions (1942 answered), 609 validation"),
        "{stdout}"
    );
    assert!(stdout.contains("validation pairs-dev"), "{stdout}");
    let dir_model = minilm_dir();
    let trained = PairClassifier::load_adapter(
        Path::new(&dir_model),
        &std::fs::read(&out).unwrap(),
        Precision::F32,
    )
    .unwrap();
    assert_eq!(trained.threshold, 0.6);
    let p = trained
        .probability(
            "How do I undo a commit?",
            "How can I revert my last git commit?",
        )
        .unwrap();
    assert!((0.0..=1.0).contains(&p), "{p}");
    // Not the shipped one: two steps leave it near where it started.
    let shipped = PairClassifier::load(Path::new(&dir_model), Precision::F32).unwrap();
    assert_ne!(
        p,
        shipped
            .probability(
                "How do I undo a commit?",
                "How can I revert my last git commit?"
            )
            .unwrap()
    );
}

/// The semantic level's decision (the cosine floor and the guard's hard
/// rules, then the pair classifier, as `SemanticCache` calls them) on the
/// held-out pair sets
/// (`pairs-final.json` and the five blind sets, never fitted on), at the
/// default settings. The figures are printed by benches/cache.sh; these
/// floors catch a verifier or a model that got worse by accident (more
/// wrong answers served, or fewer paraphrases).
#[tokio::test]
async fn the_pair_sets_get_no_more_false_hits_than_reported() {
    #[derive(serde::Deserialize)]
    struct Pair {
        a: String,
        b: String,
        same: bool,
        kind: String,
    }
    let decision = Decision::load();
    // (set, least paraphrases served, most near misses served): reported
    // at the default settings, final 130/156 and 1/360, blind 90/160 and
    // 0/360, blind2 93/160 and 0/360, blind3 101/160 and 1/360, blind4
    // 82/160 and 2/360, blind5 74/160 and 1/360.
    for (set, least_hits, most_false) in [
        ("final", 128, 1),
        ("blind", 88, 0),
        ("blind2", 91, 0),
        ("blind3", 99, 1),
        ("blind4", 80, 2),
        ("blind5", 72, 1),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("corpus/cache/pairs-{set}.json"));
        let pairs: Vec<Pair> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let (mut hits, mut para, mut false_hits) = (0, 0, Vec::new());
        for p in &pairs {
            let (a, b) = (decision.encode(&p.a), decision.encode(&p.b));
            let ok = decision.serves((&p.b, &b), (&p.a, &a));
            if p.same {
                para += 1;
                hits += usize::from(ok);
            } else if ok {
                false_hits.push(format!("{}: {} | {}", p.kind, p.a, p.b));
            }
        }
        assert!(para >= 100 && pairs.len() - para >= 300, "{set}");
        assert!(false_hits.len() <= most_false, "{set}: {false_hits:#?}");
        assert!(
            hits >= least_hits,
            "{set}: {hits}/{para} paraphrases served"
        );
    }
}

/// Other questions that lie close: the held-out labelled neighbours
/// (`neighbours-heldout.json`, pairs of prompts of different pair-set
/// questions at cosine ≥ 0.75, labelled by two readers) through the same
/// decision. Reported at the default settings: 53 of the 560 directions
/// whose cached answer does not answer the new prompt are served (9.5%;
/// 62 with the learned judge before the pair classifier), and 116 of the
/// 240 whose cached answer does. The floors catch a
/// decision that got worse by accident; the rate itself is the cache's
/// main open weakness (benches/README.md).
#[tokio::test]
async fn the_labelled_neighbours_get_no_more_false_hits_than_reported() {
    #[derive(serde::Deserialize)]
    struct Labelled {
        a: String,
        b: String,
        label: String,
    }
    let decision = Decision::load();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus/cache/neighbours-heldout.json");
    let rows: Vec<Labelled> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut served_right, mut answered, mut served_wrong, mut other) = (0, 0, 0, 0);
    for r in &rows {
        let (a, b) = (decision.encode(&r.a), decision.encode(&r.b));
        // Both ways: `b` new with `a` cached, then the reverse.
        for (new, cached, covers) in [
            (
                (&r.b, &b),
                (&r.a, &a),
                matches!(r.label.as_str(), "same" | "a_covers_b"),
            ),
            (
                (&r.a, &a),
                (&r.b, &b),
                matches!(r.label.as_str(), "same" | "b_covers_a"),
            ),
        ] {
            let ok = decision.serves(new, cached);
            if covers {
                answered += 1;
                served_right += usize::from(ok);
            } else {
                other += 1;
                served_wrong += usize::from(ok);
            }
        }
    }
    assert_eq!((answered, other), (240, 560));
    // Two directions of margin each way: a pair's cosine may round the
    // other side of the floor on another CPU's kernels.
    assert!(served_wrong <= 55, "{served_wrong}/{other} served wrongly");
    assert!(served_right >= 114, "{served_right}/{answered} served");
}
