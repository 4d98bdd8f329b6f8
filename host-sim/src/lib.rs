//! Native proxy-wasm host simulator (work in progress).
