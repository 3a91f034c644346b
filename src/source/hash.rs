//! The row hash: how a run tells, without reading a row's values back, whether it changed since
//! HubSpot acknowledged it. A 64-bit hash of the row as the warehouse sends it, seeded with what
//! the sync maps it to, computed while the rows stream in. Also the hash of a key alone, to pick
//! the rows whose values a run must read.
//!
//! The function is ours (not std's, whose hash may change between Rust releases): the hashes
//! are stored in the state files. Changing it makes every row look changed once; such a run
//! re-reads every row, finds the values HubSpot holds equal to the model's, and sends nothing.

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// The finalizer of MurmurHash3: every input bit affects every output bit.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hashes `bytes` eight at a time. Each step is a bijection of the state for a given word and
/// of the word for a given state, so two inputs of the same length differing in one word never
/// collide.
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K2);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K1).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K1).rotate_left(31);
    }
    mix(h)
}

/// The seed of a sync's row hashes: its columns, their kinds and the properties they feed, so
/// that mapping a column to another property makes every row look changed.
pub fn seed(parts: &[&str]) -> u64 {
    let joined = parts.join("\u{1f}");
    hash_bytes(0x6875_6273_796e_6301, joined.as_bytes())
}

/// The hash of a key, to pick rows by key while they stream.
pub fn key_hash(key: &str) -> u64 {
    hash_bytes(0, key.as_bytes())
}

/// Hashes a row of values: each value tagged and length-prefixed, so no two rows share an
/// encoding.
pub fn hash_values(seed: u64, values: &[Option<String>], buffer: &mut Vec<u8>) -> u64 {
    buffer.clear();
    for v in values {
        match v {
            None => buffer.push(0),
            Some(s) => {
                buffer.push(1);
                buffer.extend_from_slice(&(s.len() as u32).to_le_bytes());
                buffer.extend_from_slice(s.as_bytes());
            }
        }
    }
    hash_bytes(seed, buffer)
}

/// A set of key hashes: sorted, eight bytes per key.
#[derive(Debug, Clone, Default)]
pub struct KeySet(Vec<u64>);

impl KeySet {
    pub fn new(mut hashes: Vec<u64>) -> KeySet {
        hashes.sort_unstable();
        hashes.dedup();
        KeySet(hashes)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key with this hash may be in the set (a 64-bit collision lets another in).
    pub fn contains(&self, hash: u64) -> bool {
        self.0.binary_search(&hash).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Stored in state files: these must never change.
        assert_eq!(hash_bytes(0, b""), mix(0));
        assert_eq!(key_hash("42"), hash_bytes(0, b"42"));
        assert_eq!(hash_bytes(7, b"hello, world"), hash_bytes(7, b"hello, world"));
    }

    #[test]
    fn any_change_changes_the_hash() {
        let a = hash_bytes(1, b"1\tada@example.com\tAda\t2024-01-01");
        assert_ne!(a, hash_bytes(1, b"1\tada@example.com\tAda\t2024-01-02"));
        assert_ne!(a, hash_bytes(2, b"1\tada@example.com\tAda\t2024-01-01"));
        assert_ne!(hash_bytes(1, b"ab"), hash_bytes(1, b"ab\0"));
        let mut buffer = Vec::new();
        let v = |s: &[Option<&str>]| s.iter().map(|x| x.map(str::to_string)).collect::<Vec<_>>();
        let x = hash_values(1, &v(&[Some("a"), None]), &mut buffer);
        assert_ne!(x, hash_values(1, &v(&[None, Some("a")]), &mut buffer));
        assert_ne!(x, hash_values(1, &v(&[Some("a"), Some("")]), &mut buffer));
        assert_eq!(x, hash_values(1, &v(&[Some("a"), None]), &mut buffer));
    }

    #[test]
    fn key_sets() {
        let set = KeySet::new(vec![key_hash("b"), key_hash("a"), key_hash("b")]);
        assert_eq!(set.len(), 2);
        assert!(set.contains(key_hash("a")));
        assert!(!set.contains(key_hash("c")));
        assert!(KeySet::default().is_empty());
    }
}
