//! A small stable hash for state: it must give the same value across Rust releases and platforms,
//! because it is persisted (the standard library's hashers promise neither).

/// 64-bit FNV-1a over the given byte slices, with a separator between parts so that
/// `("ab", "c")` and `("a", "bc")` differ.
pub fn stable_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::stable_hash;

    #[test]
    fn is_stable_and_separates_parts() {
        // The value is persisted: a change here invalidates every state store in the field.
        assert_eq!(stable_hash([b"a".as_slice()]), 0x089b_c907_b544_c769_u64);
        assert_ne!(
            stable_hash([b"ab".as_slice(), b"c".as_slice()]),
            stable_hash([b"a".as_slice(), b"bc".as_slice()])
        );
    }
}
