//! `fusion`: the native command line (conversion, questions, benchmarks, serving the web app).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "fusion", version, about = "FUSION vision-language models on burn + WGSL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a question about a photo and stream the answer.
    Ask,
    /// Convert a Hugging Face checkpoint to int4 shards and a manifest.
    Convert,
    /// Measure kernels and the model at real shapes; write a JSON report.
    Bench,
    /// Serve the web app and a converted model on localhost.
    Serve,
    /// Print the GPU adapter the engine would use.
    Info,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => fusion::Gpu::new().map(|_| println!("GPU ready")),
        Command::Ask | Command::Convert | Command::Bench | Command::Serve => {
            Err(fusion::Error::invalid("fusion", "this subcommand is not built yet"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
