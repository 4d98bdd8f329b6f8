//! `xcluster-wasm [PACKAGE]`: builds the shipped module of a workspace package (default
//! the filter) the way the tests do, and prints its path. `make build` runs it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let package = std::env::args()
        .nth(1)
        .unwrap_or_else(|| xcluster_wasm_build::FILTER_PACKAGE.to_string());
    match xcluster_wasm_build::shipped(&package) {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xcluster-wasm: {e}");
            ExitCode::FAILURE
        }
    }
}
