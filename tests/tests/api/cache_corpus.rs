//! The semantic level's decision on the labelled corpus
//! (`tests/corpus/cache`): floors on the held-out pair sets and the
//! held-out labelled neighbours, at the default settings.

use crate::cache::minilm_dir;
use llmops_cache::{Encoded, Judge, MiniLm};

/// The decision as `SemanticCache` takes it with the in-process encoder:
/// the guard's hard rules, then the learned judge, at the default floor.
struct Decision {
    model: MiniLm,
    judge: Judge,
    threshold: f32,
}

impl Decision {
    fn load() -> Self {
        Self {
            model: MiniLm::load("all-minilm-l6-v2", std::path::Path::new(&minilm_dir())).unwrap(),
            judge: Judge::builtin().unwrap(),
            threshold: llmops_cache::CacheConfig::default().min_similarity,
        }
    }

    fn encode(&self, text: &str) -> Encoded {
        self.model.encode_blocking(text).unwrap()
    }

    /// Whether the cached prompt's answer is served for the new prompt.
    fn serves(&self, new: (&String, &Encoded), cached: (&String, &Encoded)) -> bool {
        let cos = llmops_cache::embed::cosine(&new.1.pooled, &cached.1.pooled);
        self.judge
            .verify((new.0, new.1), (cached.0, cached.1), cos, self.threshold)
            .is_ok()
    }
}

/// The semantic level's decision (the guard's hard rules, then the
/// learned judge, as `SemanticCache` calls them) on the held-out pair sets
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
    // at the cosine floor 0.80, final 115/156 and 1/360, blind 85/160 and
    // 2/360, blind2 89/160 and 2/360, blind3 95/160 and 1/360, blind4
    // 76/160 and 2/360, blind5 79/160 and 2/360 (3/360 at its single run,
    // before the path-end rule read "to one").
    for (set, least_hits, most_false) in [
        ("final", 113, 1),
        ("blind", 83, 2),
        ("blind2", 87, 2),
        ("blind3", 93, 1),
        ("blind4", 74, 2),
        ("blind5", 77, 2),
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
/// decision. Reported at the default settings: 62 of the 560 directions
/// whose cached answer does not answer the new prompt are served (11.1%),
/// and 112 of the 240 whose cached answer does. The floors catch a
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
    assert!(served_wrong <= 64, "{served_wrong}/{other} served wrongly");
    assert!(served_right >= 110, "{served_right}/{answered} served");
}
