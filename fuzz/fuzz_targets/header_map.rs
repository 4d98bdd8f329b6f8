//! The ABI's serialized header map → `header_map::parse_header_map`: any bytes parse or
//! are refused, never read out of bounds or panic; what parses serializes back to bytes
//! that parse to the same headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcluster_filter::header_map::{parse_header_map, serialize_header_map};

fuzz_target!(|data: &[u8]| {
    if let Some(headers) = parse_header_map(data) {
        let bytes = serialize_header_map(&headers);
        assert_eq!(parse_header_map(&bytes), Some(headers));
    }
});
