//! Generated container names, Docker style (`adjective_surname`), that never run out: after a
//! few random tries a numeric suffix is added (`brave_curie2`, `brave_curie3`, …).

const ADJECTIVES: &[&str] = &[
    "admiring", "bold", "brave", "calm", "clever", "cool", "dazzling", "eager", "elated",
    "festive", "fervent", "gallant", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nifty",
    "quirky", "serene", "sharp", "tender", "upbeat", "vivid", "wise", "zealous",
];

const SURNAMES: &[&str] = &[
    "albattani",
    "babbage",
    "curie",
    "darwin",
    "euler",
    "fermat",
    "galileo",
    "hopper",
    "hypatia",
    "kepler",
    "knuth",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ramanujan",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "turing",
    "volta",
    "wright",
    "yalow",
    "zuse",
];

fn random() -> String {
    let a = ADJECTIVES[rand::random::<usize>() % ADJECTIVES.len()];
    let b = SURNAMES[rand::random::<usize>() % SURNAMES.len()];
    format!("{a}_{b}")
}

/// A name for which `taken` is false: random names first, then a random name with the
/// smallest free numeric suffix. Terminates as long as finitely many names are taken.
pub fn generate(mut taken: impl FnMut(&str) -> bool) -> String {
    for _ in 0..8 {
        let n = random();
        if !taken(&n) {
            return n;
        }
    }
    let base = random();
    (2u64..)
        .map(|i| format!("{base}{i}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn never_runs_out() {
        let mut used = HashSet::new();
        for _ in 0..(ADJECTIVES.len() * SURNAMES.len() + 200) {
            let n = generate(|n| used.contains(n));
            assert!(used.insert(n));
        }
    }
}
