//! Other questions that lie close: `cache neighbours` scans the pair
//! files for them, `cache labelled` measures the labelled ones
//! (`tests/corpus/cache/neighbours-*.json`).

use super::*;
use std::collections::HashSet;

/// `neighbours SETS`: every two prompts of the sets (comma-separated) that
/// belong to different questions, at or above the least cosine, through
/// the default decision. A cache holds many prompts of one topic; the pair
/// sets measure only the near miss written beside each prompt, this the
/// unwritten ones: another question that happens to lie close. Prompts
/// joined by a paraphrase pair count as one question; the labelled pairs
/// themselves are left out (`pairs` measures them). Served pairs are
/// listed for reading: two writers may have asked the same question.
pub(super) fn neighbours(sets: &str) {
    let floor = threshold();
    let j = judge_in_use();
    let pc = pair_classifier();
    let mut texts: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut enc: HashMap<String, Encoded> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    let mut labelled_pairs: HashSet<(usize, usize)> = Default::default();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for set in sets.split(',') {
        let ps = pairs(set);
        let all: Vec<&str> = ps
            .iter()
            .flat_map(|p| [p.a.as_str(), p.b.as_str()])
            .collect();
        enc.extend(encodings(set, &all));
        for p in &ps {
            let mut id = |t: &str| {
                *index.entry(t.to_string()).or_insert_with(|| {
                    texts.push(t.to_string());
                    parent.push(parent.len());
                    texts.len() - 1
                })
            };
            let (a, b) = (id(&p.a), id(&p.b));
            labelled_pairs.insert((a.min(b), a.max(b)));
            if p.same {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[ra] = rb;
            }
        }
    }
    let class: Vec<usize> = (0..texts.len()).map(|i| root(&mut parent, i)).collect();
    let started = Instant::now();
    // Each pair once: (cosine, a, b, served with `a` new, with `b` new).
    let (mut close, mut guard_served, mut rows) = (0usize, 0usize, Vec::new());
    // BENCH_FEATURES_OUT=FILE: each direction's judge features (new
    // prompt, cached prompt, a hard failure, served, the features), for
    // fitting on labelled neighbours.
    let features_out = std::env::var("BENCH_FEATURES_OUT").ok();
    let mut directions: Vec<String> = Vec::new();
    let alone = floor.max(llmops_cache::GUARD_ALONE_MIN_SIMILARITY);
    for a in 0..texts.len() {
        for b in a + 1..texts.len() {
            if class[a] == class[b] || labelled_pairs.contains(&(a, b)) {
                continue;
            }
            // Sentence vectors are unit length: the cosine is the dot
            // product (60 million of them for the ten sets).
            let (va, vb) = (&enc[&texts[a]].pooled, &enc[&texts[b]].pooled);
            let cos: f32 = va.iter().zip(vb).map(|(x, y)| x * y).sum();
            if cos < floor {
                continue;
            }
            // Both ways: either prompt may be the cached one.
            let mut ways = Vec::new();
            for (q, c) in [(a, b), (b, a)] {
                close += 1;
                let (qt, ct) = (&texts[q], &texts[c]);
                let p = judge::screen(qt, ct, cos, floor)
                    .is_ok()
                    .then(|| pc.probability(qt, ct).expect("classifier"));
                let ok = classified(&pc, (qt, ct), cos, p, floor).is_ok();
                ways.push(ok);
                if features_out.is_some() {
                    let failures = guard::failures(qt, ct);
                    let hard = failures.iter().any(judge::is_hard);
                    let x = judge::features(&enc[qt], &enc[ct], &failures);
                    let xs: Vec<String> = x.iter().map(|v| format!("{v:.4}")).collect();
                    let judged = j.verify((qt, &enc[qt]), (ct, &enc[ct]), cos, floor).is_ok();
                    directions.push(format!("{qt}\t{ct}\t{hard}\t{judged}\t{}", xs.join("\t")));
                }
                if guard::verify(qt, ct, cos, alone).is_ok() {
                    guard_served += 1;
                }
            }
            rows.push((cos, a, b, ways[0], ways[1]));
        }
    }
    // The served directions: (cosine, new prompt, cached prompt).
    let mut served: Vec<(f32, usize, usize)> = rows
        .iter()
        .flat_map(|&(cos, a, b, ab, ba)| [(ab, (cos, a, b)), (ba, (cos, b, a))])
        .filter_map(|(ok, d)| ok.then_some(d))
        .collect();
    let classes = class.iter().collect::<HashSet<_>>().len();
    println!(
        "{sets}: {} prompts, {classes} questions; {close} ordered pairs of different questions at cosine ≥ {floor:.2} ({:.1} s)",
        texts.len(),
        started.elapsed().as_secs_f64()
    );
    let (lo, hi) = wilson(served.len(), close);
    println!(
        "guard + pair classifier (default) served {} = {:.2}% ({lo:.2} – {hi:.2}%); the guard alone at {alone:.2} served {guard_served}",
        served.len(),
        pct(served.len(), close)
    );
    if let Some(file) = features_out {
        std::fs::write(file, directions.join("\n") + "\n").expect("writing the features");
    }
    // BENCH_NEIGHBOURS_TSV=FILE: every such pair once (cosine, served
    // with the first prompt as the new one, the other way, both prompts).
    if let Ok(file) = std::env::var("BENCH_NEIGHBOURS_TSV") {
        let lines: Vec<String> = rows
            .iter()
            .map(|(cos, a, b, ab, ba)| {
                format!("{cos:.3}\t{ab}\t{ba}\t{}\t{}", texts[*a], texts[*b])
            })
            .collect();
        std::fs::write(file, lines.join("\n") + "\n").expect("writing the pairs");
    }
    if std::env::var("BENCH_SHOW_ERRORS").is_ok() {
        served.sort_by(|x, y| y.0.total_cmp(&x.0));
        for (cos, q, c) in served {
            println!("{cos:.3} | {} | {}", texts[c], texts[q]);
        }
    }
}

/// A labelled pair of different prompts that lie close (`neighbours-*.json`:
/// `label` is `same`, `a_covers_b`, `b_covers_a` or `different`), as two
/// directions: (new prompt, cached prompt, whether the cached prompt's
/// answer answers the new one).
pub(super) fn labelled(name: &str) -> Vec<(String, String, bool)> {
    #[derive(serde::Deserialize)]
    struct Labelled {
        a: String,
        b: String,
        label: String,
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/cache")
        .join(format!("neighbours-{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<Labelled> = serde_json::from_str(&text).expect("neighbours file");
    rows.into_iter()
        .flat_map(|r| {
            let (same, ab, ba) = (
                r.label == "same",
                r.label == "a_covers_b",
                r.label == "b_covers_a",
            );
            assert!(
                same || ab || ba || r.label == "different",
                "label {}",
                r.label
            );
            [
                (r.b.clone(), r.a.clone(), same || ab),
                (r.a, r.b, same || ba),
            ]
        })
        .collect()
}

/// `cache labelled NAME`: the labelled neighbours through the default
/// decision: how many directions whose cached answer does not answer the
/// new prompt are served (false hits), and how many that it does.
pub(super) fn eval_labelled(name: &str) {
    let floor = threshold();
    let j = judge_in_use();
    let pc = pair_classifier();
    let rows = labelled(name);
    let texts: Vec<&str> = rows
        .iter()
        .flat_map(|r| [r.0.as_str(), r.1.as_str()])
        .collect();
    let enc = encodings(&format!("neighbours-{name}"), &texts);
    let alone = floor.max(llmops_cache::GUARD_ALONE_MIN_SIMILARITY);
    // Served (answer right, answer wrong) by the default decision, the
    // guard alone and the judge.
    let (mut ok_n, mut g_n, mut j_n, mut wrong) = ([0; 2], [0; 2], [0; 2], Vec::new());
    for (q, c, covers) in &rows {
        let cos = llmops_cache::embed::cosine(&enc[q].pooled, &enc[c].pooled);
        let screened = judge::screen(q, c, cos, floor).is_ok();
        let p = screened.then(|| pc.probability(q, c).expect("classifier"));
        let ok = classified(&pc, (q, c), cos, p, floor).is_ok();
        let judged = j.verify((q, &enc[q]), (c, &enc[c]), cos, floor).is_ok();
        let g = guard::verify(q, c, cos, alone).is_ok();
        let k = usize::from(!covers);
        ok_n[k] += usize::from(ok);
        g_n[k] += usize::from(g);
        j_n[k] += usize::from(judged);
        super::decision_row(name, *covers, cos, screened, ok, q, c);
        if ok && !covers {
            wrong.push((cos, q, c));
        }
    }
    let answered = rows.iter().filter(|r| r.2).count();
    let other = rows.len() - answered;
    println!(
        "neighbours-{name}.json: {} directions (pairs drawn at cosine ≥ 0.75); {answered} where the cached answer answers the new prompt, {other} where it does not",
        rows.len()
    );
    println!(
        "| decision | served, cached answer answers | served, it does not (false hits) | false-hit 95% interval |"
    );
    println!("|---|---|---|---|");
    for (label, [t, f]) in [
        (
            format!("guard + pair classifier, threshold {floor:.2} (default)"),
            ok_n,
        ),
        (
            format!("guard + judge (until 2026-12-04), threshold {floor:.2}"),
            j_n,
        ),
        (format!("guard alone, threshold {alone:.2}"), g_n),
    ] {
        let (lo, hi) = wilson(f, other);
        println!(
            "| {label} | {t}/{answered} = {:.1}% | {f}/{other} = {:.1}% | {lo:.1} – {hi:.1}% |",
            pct(t, answered),
            pct(f, other)
        );
    }
    if std::env::var("BENCH_SHOW_ERRORS").is_ok() {
        wrong.sort_by(|x, y| y.0.total_cmp(&x.0));
        for (cos, q, c) in wrong {
            println!("{cos:.3} | cached: {c} | new: {q}");
        }
    }
}
