//! FNV-1a hashing, the filter's hash map type, and hex digits without `fmt`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: a small, fast hash for the filter's maps. Their keys come from the plugin
/// config, not from clients, so hash flooding is not a concern; requests only look up.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Appends the low `digits` hex digits of `value` (no `fmt` machinery in the .wasm).
pub fn push_hex(out: &mut String, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (value >> (4 * i)) & 0xf;
        out.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
}

/// The map type of the filter's indexes.
pub type Map<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// 64-bit FNV-1a of `bytes` (sticky keys, target seeds, shared-data keys).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn hex_digits() {
        let mut s = String::new();
        push_hex(&mut s, 0xab, 4);
        push_hex(&mut s, u64::MAX, 16);
        assert_eq!(s, "00abffffffffffffffff");
    }
}
