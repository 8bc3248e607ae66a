//! Text columns: Evidently's text content drift, a domain classifier that
//! tries to tell the reference's texts from the current's, and
//! descriptors a person can read beside it (length, words, words the
//! reference never used, non-letters, empty texts).
//!
//! The classifier is Evidently's `calculate_text_drift_score`, step by
//! step:
//!
//! 1. the texts of both tables, labelled reference (0) and current (1),
//!    split at random into halves (`train_test_split(test_size=0.5,
//!    shuffle=True)`: the test half gets the odd one);
//! 2. TF-IDF fitted on the training half as sklearn's
//!    `TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english")`
//!    does it: lowercased tokens of two or more word characters (`(?u)\b\w\w+\b`),
//!    English stop words dropped, words in more than half the training texts
//!    dropped, `1 + ln(tf)` times the smoothed idf `ln((1 + n) / (1 + df)) + 1`,
//!    each text scaled to unit length;
//! 3. a linear classifier trained by sklearn's `SGDClassifier(alpha=0.0001,
//!    max_iter=50, penalty="l1", loss="modified_huber")` algorithm: the
//!    "optimal" learning rate `1 / (alpha (t0 + t))`, the truncated-gradient
//!    L1 penalty (Tsuruoka et al. 2009), sparse-data intercept steps scaled
//!    by 0.01, stopping after 5 epochs without the loss improving by 1e-3
//!    per text;
//! 4. the ROC AUC (ties counting half) of its probabilities,
//!    `(clip(w·x + b, -1, 1) + 1) / 2`, on the test half.
//!
//! The split and the epochs' order come from seeded generators, so a
//! comparison gives the same answer every time; they are not numpy's
//! draws, so the ROC AUC differs from Evidently's on the same data by the
//! split's chance (a few hundredths on small samples, far less on large).
//! Where Evidently would stop with an error (every word a stop word, or
//! in more than half the texts), the classifier has nothing to learn from
//! and scores 0.5.

use ferry_stats::Rng;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Seeds of the split, the epochs' order, a random scorer's draws and the
/// reference's halves for the vocabulary baseline (Evidently seeds with 42).
pub const SEED: u64 = 42;
/// Evidently's `SGDClassifier` settings.
const ALPHA: f64 = 1e-4;
const MAX_EPOCHS: u32 = 50;
const TOL: f64 = 1e-3;
const NO_CHANGE_EPOCHS: u32 = 5;
/// sklearn's `SPARSE_INTERCEPT_DECAY`: TF-IDF rows are sparse.
const INTERCEPT_DECAY: f64 = 0.01;
/// Words and examples shown for each side (Evidently: 25 words, 10 texts).
pub const TYPICAL_WORDS: usize = 25;
pub const TYPICAL_EXAMPLES: usize = 10;
/// Examples are cut to this many characters in reports.
const EXAMPLE_CHARS: usize = 300;
/// Texts per table the classifier sees at most; past this a seeded sample
/// (Evidently has no such limit; the ROC AUC of 100,000 texts a side is
/// within ~0.003 of the whole's).
pub const MAX_TEXTS: usize = 100_000;

/// sklearn's `ENGLISH_STOP_WORDS` (the Glasgow Information Retrieval
/// Group's list) that can be tokens (two or more word characters), sorted.
const STOP_WORDS: &[&str] = &[
    "about",
    "above",
    "across",
    "after",
    "afterwards",
    "again",
    "against",
    "all",
    "almost",
    "alone",
    "along",
    "already",
    "also",
    "although",
    "always",
    "am",
    "among",
    "amongst",
    "amoungst",
    "amount",
    "an",
    "and",
    "another",
    "any",
    "anyhow",
    "anyone",
    "anything",
    "anyway",
    "anywhere",
    "are",
    "around",
    "as",
    "at",
    "back",
    "be",
    "became",
    "because",
    "become",
    "becomes",
    "becoming",
    "been",
    "before",
    "beforehand",
    "behind",
    "being",
    "below",
    "beside",
    "besides",
    "between",
    "beyond",
    "bill",
    "both",
    "bottom",
    "but",
    "by",
    "call",
    "can",
    "cannot",
    "cant",
    "co",
    "con",
    "could",
    "couldnt",
    "cry",
    "de",
    "describe",
    "detail",
    "do",
    "done",
    "down",
    "due",
    "during",
    "each",
    "eg",
    "eight",
    "either",
    "eleven",
    "else",
    "elsewhere",
    "empty",
    "enough",
    "etc",
    "even",
    "ever",
    "every",
    "everyone",
    "everything",
    "everywhere",
    "except",
    "few",
    "fifteen",
    "fifty",
    "fill",
    "find",
    "fire",
    "first",
    "five",
    "for",
    "former",
    "formerly",
    "forty",
    "found",
    "four",
    "from",
    "front",
    "full",
    "further",
    "get",
    "give",
    "go",
    "had",
    "has",
    "hasnt",
    "have",
    "he",
    "hence",
    "her",
    "here",
    "hereafter",
    "hereby",
    "herein",
    "hereupon",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "hundred",
    "ie",
    "if",
    "in",
    "inc",
    "indeed",
    "interest",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "keep",
    "last",
    "latter",
    "latterly",
    "least",
    "less",
    "ltd",
    "made",
    "many",
    "may",
    "me",
    "meanwhile",
    "might",
    "mill",
    "mine",
    "more",
    "moreover",
    "most",
    "mostly",
    "move",
    "much",
    "must",
    "my",
    "myself",
    "name",
    "namely",
    "neither",
    "never",
    "nevertheless",
    "next",
    "nine",
    "no",
    "nobody",
    "none",
    "noone",
    "nor",
    "not",
    "nothing",
    "now",
    "nowhere",
    "of",
    "off",
    "often",
    "on",
    "once",
    "one",
    "only",
    "onto",
    "or",
    "other",
    "others",
    "otherwise",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "part",
    "per",
    "perhaps",
    "please",
    "put",
    "rather",
    "re",
    "same",
    "see",
    "seem",
    "seemed",
    "seeming",
    "seems",
    "serious",
    "several",
    "she",
    "should",
    "show",
    "side",
    "since",
    "sincere",
    "six",
    "sixty",
    "so",
    "some",
    "somehow",
    "someone",
    "something",
    "sometime",
    "sometimes",
    "somewhere",
    "still",
    "such",
    "system",
    "take",
    "ten",
    "than",
    "that",
    "the",
    "their",
    "them",
    "themselves",
    "then",
    "thence",
    "there",
    "thereafter",
    "thereby",
    "therefore",
    "therein",
    "thereupon",
    "these",
    "they",
    "thick",
    "thin",
    "third",
    "this",
    "those",
    "though",
    "three",
    "through",
    "throughout",
    "thru",
    "thus",
    "to",
    "together",
    "too",
    "top",
    "toward",
    "towards",
    "twelve",
    "twenty",
    "two",
    "un",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "via",
    "was",
    "we",
    "well",
    "were",
    "what",
    "whatever",
    "when",
    "whence",
    "whenever",
    "where",
    "whereafter",
    "whereas",
    "whereby",
    "wherein",
    "whereupon",
    "wherever",
    "whether",
    "which",
    "while",
    "whither",
    "who",
    "whoever",
    "whole",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

fn is_stop_word(w: &str) -> bool {
    STOP_WORDS.binary_search(&w).is_ok()
}

/// A word character as Python's `\w` takes it: a letter, a digit or `_`.
fn word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The tokens of `lower` (already lowercased) as sklearn's default
/// `token_pattern` finds them: runs of two or more word characters.
pub fn tokens(lower: &str) -> impl Iterator<Item = &str> {
    let mut rest = lower;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find(word_char)?;
            let tail = &rest[start..];
            let len = tail.find(|c: char| !word_char(c)).unwrap_or(tail.len());
            let word = &tail[..len];
            rest = &tail[len..];
            if word.chars().nth(1).is_some() {
                return Some(word);
            }
        }
    })
}

/// Each text repeated as often as it occurs, in the order of the texts
/// (so the same texts give the same list, however the table was read).
pub fn expand(counts: &HashMap<String, u64>) -> Vec<&str> {
    let mut distinct: Vec<(&String, &u64)> = counts.iter().collect();
    distinct.sort_unstable();
    distinct
        .into_iter()
        .flat_map(|(t, &n)| std::iter::repeat_n(t.as_str(), n as usize))
        .collect()
}

/// At most `max` of `texts`, drawn without replacement (all of them, in
/// order, when there are no more).
pub fn sample<'a>(texts: &[&'a str], max: usize, seed: u64) -> Vec<&'a str> {
    if texts.len() <= max {
        return texts.to_vec();
    }
    let mut v = texts.to_vec();
    Rng::new(seed).shuffle(&mut v);
    v.truncate(max);
    v
}

/// Sparse rows: row `i` is `idx[ptr[i]..ptr[i + 1]]` with its values.
#[derive(Default)]
struct Rows {
    ptr: Vec<usize>,
    idx: Vec<u32>,
    val: Vec<f64>,
}

impl Rows {
    fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.ptr[i], self.ptr[i + 1]);
        (&self.idx[a..b], &self.val[a..b])
    }
}

/// A fitted TF-IDF vocabulary: its words (sorted) and their idf.
struct Tfidf<'a> {
    index: HashMap<&'a str, u32>,
    words: Vec<&'a str>,
    idf: Vec<f64>,
}

impl<'a> Tfidf<'a> {
    /// Fits on `docs` (lowercased).
    fn fit(docs: &[&'a str]) -> Tfidf<'a> {
        let mut df: HashMap<&'a str, u32> = HashMap::new();
        let mut seen: Vec<&'a str> = Vec::new();
        for d in docs {
            seen.clear();
            seen.extend(tokens(d));
            seen.sort_unstable();
            seen.dedup();
            for w in &seen {
                if !is_stop_word(w) {
                    *df.entry(w).or_insert(0) += 1;
                }
            }
        }
        let n = docs.len() as f64;
        let max_df = 0.5 * n;
        let mut kept: Vec<(&'a str, u32)> = df
            .into_iter()
            .filter(|&(_, d)| f64::from(d) <= max_df)
            .collect();
        kept.sort_unstable();
        let idf = kept
            .iter()
            .map(|&(_, d)| ((1.0 + n) / (1.0 + f64::from(d))).ln() + 1.0)
            .collect();
        let words: Vec<&'a str> = kept.into_iter().map(|(w, _)| w).collect();
        let index = words
            .iter()
            .enumerate()
            .map(|(i, &w)| (w, i as u32))
            .collect();
        Tfidf { index, words, idf }
    }

    /// Unit-length rows of sublinear tf times idf (words it does not
    /// know are left out; a text with none is all zeros).
    fn transform(&self, docs: &[&str]) -> Rows {
        let mut rows = Rows::default();
        rows.ptr.push(0);
        let mut ids: Vec<u32> = Vec::new();
        for d in docs {
            ids.clear();
            ids.extend(tokens(d).filter_map(|w| self.index.get(w).copied()));
            ids.sort_unstable();
            let start = rows.idx.len();
            let mut i = 0;
            while i < ids.len() {
                let mut j = i + 1;
                while j < ids.len() && ids[j] == ids[i] {
                    j += 1;
                }
                let id = ids[i];
                rows.idx.push(id);
                rows.val
                    .push((1.0 + ((j - i) as f64).ln()) * self.idf[id as usize]);
                i = j;
            }
            let norm = rows.val[start..].iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 0.0 {
                rows.val[start..].iter_mut().for_each(|v| *v /= norm);
            }
            rows.ptr.push(rows.idx.len());
        }
        rows
    }
}

fn modified_huber(y: f64, p: f64) -> (f64, f64) {
    let z = p * y;
    if z >= 1.0 {
        (0.0, 0.0)
    } else if z >= -1.0 {
        ((1.0 - z) * (1.0 - z), 2.0 * (1.0 - z) * -y)
    } else {
        (-4.0 * z, -4.0 * y)
    }
}

fn dot(w: &[f64], (idx, val): (&[u32], &[f64])) -> f64 {
    idx.iter().zip(val).map(|(&i, v)| w[i as usize] * v).sum()
}

/// A linear model as `SGDClassifier(loss="modified_huber", penalty="l1")`
/// trains it (`y`: +1 current, -1 reference): weights, intercept, epochs.
fn sgd(x: &Rows, y: &[f64], features: usize) -> Result<(Vec<f64>, f64, u32), String> {
    let n = y.len();
    let mut w = vec![0.0; features];
    // The L1 penalty applied to each weight so far (`q`) and due (`u`).
    let mut q = vec![0.0; features];
    let mut u = 0.0;
    let mut b = 0.0;
    // The "optimal" schedule starts at eta0 = typw / max(1, dloss(-typw)).
    let typw = (1.0 / ALPHA.sqrt()).sqrt();
    let eta0 = typw / modified_huber(1.0, -typw).1.max(1.0);
    let t0 = 1.0 / (eta0 * ALPHA);
    let mut t = 1.0;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(SEED);
    let (mut best, mut stale) = (f64::INFINITY, 0);
    let mut epochs = 0;
    while epochs < MAX_EPOCHS {
        epochs += 1;
        rng.shuffle(&mut order);
        let mut sumloss = 0.0;
        for &i in &order {
            let row = x.row(i);
            let p = dot(&w, row) + b;
            let eta = 1.0 / (ALPHA * (t0 + t - 1.0));
            let (loss, dloss) = modified_huber(y[i], p);
            sumloss += loss;
            let update = -eta * dloss.clamp(-1e12, 1e12);
            if update != 0.0 {
                for (&j, v) in row.0.iter().zip(row.1) {
                    w[j as usize] += update * v;
                }
                b += update * INTERCEPT_DECAY;
            }
            u += eta * ALPHA;
            for &j in row.0 {
                let j = j as usize;
                let z = w[j];
                if z > 0.0 {
                    w[j] = (z - (u + q[j])).max(0.0);
                } else if z < 0.0 {
                    w[j] = (z + (u - q[j])).min(0.0);
                }
                q[j] += w[j] - z;
            }
            t += 1.0;
        }
        if !b.is_finite() || w.iter().any(|v| !v.is_finite()) {
            return Err(format!(
                "the domain classifier's weights overflowed at epoch {epochs}"
            ));
        }
        if sumloss > best - TOL * n as f64 {
            stale += 1;
        } else {
            stale = 0;
        }
        best = best.min(sumloss);
        if stale >= NO_CHANGE_EPOCHS {
            break;
        }
    }
    Ok((w, b, epochs))
}

/// What the domain classifier found.
#[derive(Debug, Clone)]
pub struct Classified {
    /// Its ROC AUC on the test half.
    pub roc_auc: f64,
    /// Texts in each half: (reference, current).
    pub train: (u64, u64),
    pub test: (u64, u64),
    /// Words it learned from (0: nothing to learn from; the ROC AUC is 0.5).
    pub vocabulary: u64,
    pub epochs: u32,
    /// The words most telling of each side, most telling first.
    pub words_current: Vec<String>,
    pub words_reference: Vec<String>,
    /// Test texts it was surest came from each side.
    pub examples_current: Vec<String>,
    pub examples_reference: Vec<String>,
}

/// A text cut to [`EXAMPLE_CHARS`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(EXAMPLE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Trains a domain classifier to tell `current` texts from `reference`
/// ones (see the module's doc). Errors when a half of the split lacks the
/// texts of one table (a handful of texts in all).
pub fn domain_classifier(reference: &[&str], current: &[&str]) -> Result<Classified, String> {
    let texts: Vec<&str> = reference.iter().chain(current).copied().collect();
    let is_current = |i: usize| i >= reference.len();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    Rng::new(SEED).shuffle(&mut order);
    let (test, train) = order.split_at(texts.len().div_ceil(2));
    let sides = |half: &[usize]| {
        let c = half.iter().filter(|&&i| is_current(i)).count() as u64;
        (half.len() as u64 - c, c)
    };
    let (train_sides, test_sides) = (sides(train), sides(test));
    if [train_sides, test_sides]
        .iter()
        .any(|&(r, c)| r == 0 || c == 0)
    {
        return Err(format!(
            "too few texts for the domain classifier ({} reference, {} current): each half of its random split needs texts of both tables",
            reference.len(),
            current.len()
        ));
    }
    let lower: Vec<String> = texts.iter().map(|t| t.to_lowercase()).collect();
    let pick = |half: &[usize]| half.iter().map(|&i| lower[i].as_str()).collect::<Vec<_>>();
    let (train_docs, test_docs) = (pick(train), pick(test));
    let tfidf = Tfidf::fit(&train_docs);
    let label = |half: &[usize]| {
        half.iter()
            .map(|&i| if is_current(i) { 1.0 } else { -1.0 })
            .collect::<Vec<f64>>()
    };
    let mut out = Classified {
        roc_auc: 0.5,
        train: train_sides,
        test: test_sides,
        vocabulary: tfidf.words.len() as u64,
        epochs: 0,
        words_current: vec![],
        words_reference: vec![],
        examples_current: vec![],
        examples_reference: vec![],
    };
    if tfidf.words.is_empty() {
        return Ok(out);
    }
    let (w, b, epochs) = sgd(
        &tfidf.transform(&train_docs),
        &label(train),
        tfidf.words.len(),
    )?;
    out.epochs = epochs;
    let x_test = tfidf.transform(&test_docs);
    let decision: Vec<f64> = (0..test.len())
        .map(|i| dot(&w, x_test.row(i)) + b)
        .collect();
    let proba: Vec<f64> = decision
        .iter()
        .map(|d| (d.clamp(-1.0, 1.0) + 1.0) / 2.0)
        .collect();
    let positive: Vec<bool> = test.iter().map(|&i| is_current(i)).collect();
    out.roc_auc = ferry_stats::roc_auc(&proba, &positive).map_err(|e| e.to_string())?;
    // Telling words: the largest weights each way (sklearn's coef_).
    let mut weighted: Vec<(f64, &str)> = w
        .iter()
        .zip(&tfidf.words)
        .filter(|(v, _)| **v != 0.0)
        .map(|(&v, &t)| (v, t))
        .collect();
    weighted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let words = |it: &mut dyn Iterator<Item = &(f64, &str)>| {
        it.take(TYPICAL_WORDS)
            .map(|(_, t)| (*t).to_owned())
            .collect::<Vec<_>>()
    };
    out.words_current = words(&mut weighted.iter().filter(|(v, _)| *v > 0.0));
    out.words_reference = words(&mut weighted.iter().rev().filter(|(v, _)| *v < 0.0));
    // Telling texts: the surest of each side (the decision breaks the ties
    // the clipped probabilities make).
    let mut ranked: Vec<usize> = (0..test.len()).collect();
    ranked.sort_by(|&a, &b| {
        proba[b]
            .total_cmp(&proba[a])
            .then(decision[b].total_cmp(&decision[a]))
            .then(texts[test[a]].cmp(texts[test[b]]))
    });
    let examples = |it: &mut dyn Iterator<Item = &usize>, current: bool| {
        it.filter(|&&k| positive[k] == current)
            .take(TYPICAL_EXAMPLES)
            .map(|&k| cut(texts[test[k]]))
            .collect::<Vec<_>>()
    };
    out.examples_current = examples(&mut ranked.iter(), true);
    out.examples_reference = examples(&mut ranked.iter().rev(), false);
    Ok(out)
}

/// One table's texts measured, for the descriptors and the length chart.
pub struct Measured {
    /// Characters (Unicode scalar values) of each text.
    pub chars: Vec<f64>,
    /// Words of each text: pieces between whitespace with a letter in them.
    pub words: Vec<f64>,
    /// Texts empty or of whitespace only.
    pub blank: u64,
    /// The sum over non-empty texts of their share of characters that are
    /// not letters or spaces, and how many texts that is.
    non_letters: (f64, u64),
}

impl Measured {
    pub fn of(texts: &[&str]) -> Measured {
        let mut m = Measured {
            chars: Vec::with_capacity(texts.len()),
            words: Vec::with_capacity(texts.len()),
            blank: 0,
            non_letters: (0.0, 0),
        };
        for t in texts {
            let (mut chars, mut other) = (0u64, 0u64);
            for c in t.chars() {
                chars += 1;
                if !c.is_alphabetic() && c != ' ' {
                    other += 1;
                }
            }
            m.chars.push(chars as f64);
            m.words.push(
                t.split_whitespace()
                    .filter(|w| w.chars().any(char::is_alphabetic))
                    .count() as f64,
            );
            if t.trim().is_empty() {
                m.blank += 1;
            }
            if chars > 0 {
                m.non_letters.0 += other as f64 / chars as f64;
                m.non_letters.1 += 1;
            }
        }
        m
    }
}

/// A measure of the texts in both tables.
#[derive(Debug, Clone, Serialize)]
pub struct Descriptor {
    pub name: &'static str,
    pub label: &'static str,
    pub reference: f64,
    pub current: f64,
}

/// The share of `texts`' tokens (lowercased) missing from `vocabulary`.
fn unknown_share(texts: &[&str], vocabulary: &HashSet<String>) -> f64 {
    let (mut all, mut unknown) = (0u64, 0u64);
    for t in texts {
        let lower = t.to_lowercase();
        for w in tokens(&lower) {
            all += 1;
            if !vocabulary.contains(w) {
                unknown += 1;
            }
        }
    }
    if all == 0 {
        0.0
    } else {
        unknown as f64 / all as f64
    }
}

fn vocabulary(texts: &[&str]) -> HashSet<String> {
    let mut v = HashSet::new();
    for t in texts {
        let lower = t.to_lowercase();
        for w in tokens(&lower) {
            if !v.contains(w) {
                v.insert(w.to_owned());
            }
        }
    }
    v
}

/// The descriptors of a text column: length in characters and words
/// (mean, median, 95th percentile), the share of words the reference never
/// used (for the reference: the share of one random half's words missing
/// from the other half, what a fresh sample of the same texts brings), the
/// mean share of characters that are not letters or spaces, and the share
/// of empty (or whitespace-only) texts. `reference` and `current` are the texts as
/// [`expand`] gives them, with `measured` for each.
pub fn descriptors(
    reference: &[&str],
    current: &[&str],
    measured: (&Measured, &Measured),
) -> Vec<Descriptor> {
    let (r, c) = measured;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let pct = |v: &[f64], q: f64| ferry_stats::percentile(v, q).unwrap_or(0.0);
    let mut out = Vec::with_capacity(9);
    let mut push = |name, label, reference, current| {
        out.push(Descriptor {
            name,
            label,
            reference,
            current,
        })
    };
    type Named = [(&'static str, &'static str); 3];
    let lengths: [(&[f64], &[f64], Named); 2] = [
        (
            &r.chars,
            &c.chars,
            [
                ("chars_mean", "length in characters, mean"),
                ("chars_median", "length in characters, median"),
                ("chars_p95", "length in characters, 95th percentile"),
            ],
        ),
        (
            &r.words,
            &c.words,
            [
                ("words_mean", "words, mean"),
                ("words_median", "words, median"),
                ("words_p95", "words, 95th percentile"),
            ],
        ),
    ];
    for (a, b, [m, med, p95]) in lengths {
        push(m.0, m.1, mean(a), mean(b));
        push(med.0, med.1, pct(a, 0.5), pct(b, 0.5));
        push(p95.0, p95.1, pct(a, 0.95), pct(b, 0.95));
    }
    let mut halves = reference.to_vec();
    Rng::new(SEED).shuffle(&mut halves);
    let (one, other) = halves.split_at(halves.len() / 2);
    push(
        "oov_share",
        "words not in the reference's vocabulary (reference: one half's words not in the other's)",
        if one.is_empty() {
            0.0
        } else {
            unknown_share(other, &vocabulary(one))
        },
        unknown_share(current, &vocabulary(reference)),
    );
    let non_letters = |m: &Measured| m.non_letters.0 / m.non_letters.1.max(1) as f64;
    push(
        "non_letter_share",
        "characters that are not letters or spaces, mean share per text",
        non_letters(r),
        non_letters(c),
    );
    let blank = |m: &Measured| m.blank as f64 / m.chars.len().max(1) as f64;
    push(
        "empty_share",
        "empty texts (nothing or whitespace only)",
        blank(r),
        blank(c),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_sklearns_default_tokens() {
        let lower = "don't stop-me now: a 3d café_au_lait, x 42 ü".to_lowercase();
        let t: Vec<&str> = tokens(&lower).collect();
        assert_eq!(t, ["don", "stop", "me", "now", "3d", "café_au_lait", "42"]);
        assert_eq!(tokens("").count(), 0);
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert!(is_stop_word("the") && is_stop_word("yourselves") && !is_stop_word("battery"));
    }

    #[test]
    fn tfidf_is_sklearns() {
        // sklearn: TfidfVectorizer(sublinear_tf=True, max_df=0.5,
        // stop_words="english").fit(docs); `good` is in 3 of 4 documents
        // and is dropped; idf(battery) = ln(5 / 2) + 1.
        let docs = [
            "good battery battery",
            "good delivery",
            "good courier",
            "the",
        ];
        let t = Tfidf::fit(&docs);
        assert_eq!(t.words, ["battery", "courier", "delivery"]);
        let idf = (5.0f64 / 2.0).ln() + 1.0;
        assert!((t.idf[0] - idf).abs() < 1e-12);
        let rows = t.transform(&["battery battery battery courier", "nothing known"]);
        let (idx, val) = rows.row(0);
        assert_eq!(idx, [0, 1]);
        // (1 + ln 3) * idf and 1 * idf, scaled to unit length.
        let (a, b) = ((1.0 + 3f64.ln()) * idf, idf);
        let n = (a * a + b * b).sqrt();
        assert!((val[0] - a / n).abs() < 1e-12 && (val[1] - b / n).abs() < 1e-12);
        assert_eq!(rows.row(1).0.len(), 0);
    }

    #[test]
    fn the_learning_rate_starts_where_sklearns_does() {
        // typw = 10, dloss(-10) = -4, so eta0 = 10 and t0 = 1000.
        let typw = (1.0 / ALPHA.sqrt()).sqrt();
        assert!((typw - 10.0).abs() < 1e-12);
        assert_eq!(modified_huber(1.0, -typw), (40.0, -4.0));
        assert_eq!(modified_huber(-1.0, 0.5), (2.25, 3.0));
        assert_eq!(modified_huber(1.0, 2.0), (0.0, 0.0));
    }

    #[test]
    fn expanding_and_sampling_are_deterministic() {
        let m: HashMap<String, u64> = [("b".to_string(), 2), ("a".to_string(), 1)].into();
        assert_eq!(expand(&m), ["a", "b", "b"]);
        let v: Vec<&str> = (0..10).map(|i| ["x", "y"][i % 2]).collect();
        assert_eq!(sample(&v, 20, 1), v);
        assert_eq!(sample(&v, 4, 1), sample(&v, 4, 1));
        assert_eq!(sample(&v, 4, 1).len(), 4);
        assert_eq!(cut(&"é".repeat(400)).chars().count(), EXAMPLE_CHARS + 1);
    }

    #[test]
    fn descriptors_by_hand() {
        let reference = ["Fast delivery!", "late box", "", "late box"];
        let current = ["Battery died, 2 days", "battery ok"];
        let (r, c) = (Measured::of(&reference), Measured::of(&current));
        let d = descriptors(&reference, &current, (&r, &c));
        let get = |n: &str| {
            d.iter()
                .find(|x| x.name == n)
                .map(|x| (x.reference, x.current))
                .unwrap()
        };
        // Characters: 14, 8, 0, 8 and 20, 10.
        assert_eq!(get("chars_mean"), (7.5, 15.0));
        assert_eq!(get("chars_median"), (8.0, 15.0));
        // numpy.percentile([0, 8, 8, 14], 95) == 13.1; ([10, 20], 95) == 19.5.
        let p = get("chars_p95");
        assert!(
            (p.0 - 13.1).abs() < 1e-12 && (p.1 - 19.5).abs() < 1e-12,
            "{p:?}"
        );
        // Words with a letter: 2, 2, 0, 2 and 3 (`2` is no word), 2.
        assert_eq!(get("words_mean"), (1.5, 2.5));
        // Current tokens: battery, died, days, battery, ok (`2` is too
        // short): none in the reference's vocabulary.
        assert_eq!(get("oov_share").1, 1.0);
        // Non-letters but spaces: "!" of 14; none; ",", "2" of 20; none.
        let nl = get("non_letter_share");
        assert!((nl.0 - (1.0 / 14.0) / 3.0).abs() < 1e-12, "{nl:?}");
        assert!((nl.1 - (2.0 / 20.0) / 2.0).abs() < 1e-12, "{nl:?}");
        assert_eq!(get("empty_share"), (0.25, 0.0));
    }
}
