//! Comparing secrets without leaking their content through timing.
//!
//! Every comparison of something a client shows against a configured secret (admin tokens,
//! signatures) goes through [`same_secret`]. A plain `==` on slices stops at the first byte
//! that differs, so the time it takes tells an attacker how long a prefix they guessed right.

use subtle::ConstantTimeEq as _;

/// Whether `shown` equals `expected`, taking the same time for every content of equal length.
///
/// The lengths may leak (a different length answers at once); the content does not. Tokens
/// are at least 16 bytes by config validation, so knowing the length does not help a guess.
pub fn same_secret(shown: &[u8], expected: &[u8]) -> bool {
    shown.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn equal_content_matches_and_any_difference_does_not() {
        let token = b"0123456789abcdef";
        assert!(same_secret(token, token));
        assert!(same_secret(b"", b""));
        // A difference in the first, a middle and the last byte.
        for i in [0, 7, 15] {
            let mut other = *token;
            other[i] ^= 1;
            assert!(!same_secret(&other, token), "byte {i}");
        }
        // A prefix, an extension and the empty string.
        assert!(!same_secret(&token[..15], token));
        assert!(!same_secret(b"0123456789abcdef0", token));
        assert!(!same_secret(b"", token));
    }
}
