//! Multi-query associative recall: every scored position is a query whose answer is written in
//! the key-value prefix; sets are reproducible and train/test differ.

use hedgehog_tasks::recall::{IGNORE, RecallConfig, recall_accuracy};

fn config() -> RecallConfig {
    RecallConfig {
        vocab_size: 256,
        seq_len: 64,
        num_kv_pairs: 8,
        power_a: 0.01,
        train_examples: 50,
        test_examples: 20,
        train_seed: 1,
        test_seed: 2,
    }
}

#[test]
fn every_query_is_answered_by_its_key_value_pair() {
    let config = config();
    let set = config.train().unwrap();
    assert_eq!(set.inputs.len(), 50 * 64);
    assert_eq!(set.targets.len(), 50 * 64);
    let t = config.seq_len;
    for example in 0..set.examples {
        let inputs = &set.inputs[example * t..(example + 1) * t];
        let targets = &set.targets[example * t..(example + 1) * t];
        let prefix = &inputs[..2 * config.num_kv_pairs];
        let keys: Vec<i64> = prefix.iter().step_by(2).copied().collect();
        assert!(
            keys.iter().all(|&k| (1..128).contains(&k)),
            "keys in the first half of the vocabulary"
        );
        assert!(
            prefix
                .iter()
                .skip(1)
                .step_by(2)
                .all(|&v| (128..256).contains(&v)),
            "values in the second half"
        );
        let mut distinct = keys.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), keys.len(), "keys are distinct");
        let scored: Vec<usize> = (0..t).filter(|&p| targets[p] != IGNORE).collect();
        assert_eq!(scored.len(), config.num_kv_pairs, "one query per pair");
        for p in scored {
            assert!(p >= 2 * config.num_kv_pairs, "queries come after the pairs");
            let query = inputs[p];
            let pair = keys
                .iter()
                .position(|&k| k == query)
                .expect("the query token is a key");
            assert_eq!(
                targets[p],
                prefix[2 * pair + 1],
                "the target is the key's value"
            );
        }
    }
    // The oracle that looks answers up scores 100 %.
    let oracle: Vec<i64> = (0..set.inputs.len())
        .map(|i| {
            let (example, p) = (i / t, i % t);
            let inputs = &set.inputs[example * t..(example + 1) * t];
            let pair = inputs[..16].iter().step_by(2).position(|&k| k == inputs[p]);
            pair.map_or(0, |j| inputs[2 * j + 1])
        })
        .collect();
    assert_eq!(recall_accuracy(&oracle, &set.targets), 1.0);
    assert_eq!(
        recall_accuracy(&vec![0; set.targets.len()], &set.targets),
        0.0
    );
}

#[test]
fn sets_are_reproducible_and_train_differs_from_test() {
    let config = config();
    assert_eq!(config.train().unwrap(), config.train().unwrap());
    let (train, test) = (config.train().unwrap(), config.test().unwrap());
    assert_eq!(test.examples, 20);
    assert_ne!(train.inputs[..64], test.inputs[..64]);
}

#[test]
fn impossible_configs_are_errors() {
    let cases = [
        (
            RecallConfig {
                seq_len: 63,
                ..config()
            },
            "must be even",
        ),
        (
            RecallConfig {
                vocab_size: 64,
                ..config()
            },
            "must exceed seq_len",
        ),
        (
            RecallConfig {
                num_kv_pairs: 17,
                ..config()
            },
            "num_kv_pairs",
        ),
        (
            RecallConfig {
                test_seed: 1,
                ..config()
            },
            "must differ",
        ),
    ];
    for (config, needle) in cases {
        let err = config.train().unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
}
