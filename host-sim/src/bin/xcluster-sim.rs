//! `xcluster-sim`: dry-run a plugin config against the real filter module and print what
//! it would decide for a request profile.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use xcluster_host_sim::dryrun;
use xcluster_host_sim::profile::Profile;
use xcluster_wasm_build::filter_wasm;

/// Dry-run an xcluster plugin config: drive the real filter (.wasm) with a request
/// profile and print the share per target, denials, failovers and wasm instructions.
#[derive(Debug, Parser)]
#[command(name = "xcluster-sim", version)]
struct Args {
    /// The filter module [default: $XCLUSTER_WASM, else the filter as it ships,
    /// target/xcluster_filter.wasm, rebuilt first when the sources changed].
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// Plugin config (JSON, or YAML when the file ends in .yaml / .yml).
    #[arg(long)]
    config: PathBuf,
    /// Request profile (YAML or JSON).
    #[arg(long)]
    profile: PathBuf,
    /// Override the profile's request count.
    #[arg(long)]
    requests: Option<u64>,
    /// Override the profile's seed.
    #[arg(long)]
    seed: Option<u64>,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn load_config(path: &Path) -> Result<serde_json::Value, String> {
    let text = read(path)?;
    let yaml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if yaml {
        xcluster_host_sim::yaml::from_str(&text, path)
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn main_inner(args: Args) -> Result<String, String> {
    let config = load_config(&args.config)?;
    let mut profile = Profile::parse(&read(&args.profile)?, &args.profile)?;
    if let Some(n) = args.requests {
        profile.requests = n;
    }
    if let Some(seed) = args.seed {
        profile.seed = seed;
    }
    let wasm_path = match args.wasm {
        Some(path) => path,
        None => filter_wasm().map_err(|e| e.to_string())?,
    };
    let wasm = std::fs::read(&wasm_path)
        .map_err(|e| format!("cannot read the filter module {}: {e}", wasm_path.display()))?;
    let report = dryrun::run(&wasm, &config, &profile).map_err(|e| {
        format!(
            "{} with {}: {e}",
            args.config.display(),
            args.profile.display()
        )
    })?;
    Ok(report.to_string())
}

fn main() -> ExitCode {
    match main_inner(Args::parse()) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xcluster-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
