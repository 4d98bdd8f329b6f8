//! A header map with Envoy's semantics: names are stored lower-case, lookups are
//! case-insensitive, values are raw bytes, order is kept and names may repeat.

use crate::abi::Pairs;

/// An ordered multi-map of headers (or trailers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Pairs,
}

impl HeaderMap {
    /// A map of `pairs`, names lower-cased as Envoy's codecs do.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Self {
        let mut map = Self::default();
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }

    /// All entries in order.
    pub fn pairs(&self) -> &Pairs {
        &self.entries
    }

    /// Number of entries (a repeated name counts once per value).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of `name` (what `proxy_get_header_map_value` returns).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` as text (lossy for non-UTF-8 bytes).
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &[u8]) -> Vec<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Appends an entry (`addCopy`).
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        self.entries
            .push((name.to_ascii_lowercase(), value.to_vec()));
    }

    /// Removes every entry of `name`.
    pub fn remove(&mut self, name: &[u8]) {
        let name = name.to_ascii_lowercase();
        self.entries.retain(|(k, _)| *k != name);
    }

    /// Replaces every entry of `name` with one entry at the end (`setCopy`).
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        self.remove(name);
        self.add(name, value);
    }

    /// Replaces the whole map (`proxy_set_header_map_pairs`).
    pub fn set_all(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) {
        self.entries.clear();
        for (k, v) in pairs {
            self.add(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_values_repeat() {
        let mut map = HeaderMap::from_pairs(&[("X-A", "1"), ("x-a", "2"), ("b", "3")]);
        assert_eq!(map.get(b"X-a"), Some(&b"1"[..]));
        assert_eq!(map.get_all(b"x-A"), vec![&b"1"[..], &b"2"[..]]);
        map.replace(b"X-A", b"9");
        assert_eq!(map.get_all(b"x-a"), vec![&b"9"[..]]);
        assert_eq!(map.pairs().last(), Some(&(b"x-a".to_vec(), b"9".to_vec())));
        map.remove(b"B");
        assert_eq!(map.get(b"b"), None);
        assert_eq!(map.len(), 1);
    }
}
