//! What the crash tests share: a random number, and the acknowledgements a
//! writer printed before it was killed.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;

/// A random number, without a dependency.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// Reads the writer's acknowledged numbers: complete lines only. Each one
/// sends on `first` (the first tells the writer is under way).
pub fn read_acks(stdout: std::process::ChildStdout, first: mpsc::Sender<()>) -> Vec<u64> {
    let mut reader = BufReader::new(stdout);
    let mut acks = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.ends_with('\n') => {
                acks.push(line.trim().parse().expect("the writer prints numbers"));
                let _ = first.send(());
            }
            Ok(_) => break,
        }
    }
    acks
}
