//! `fusion`: the native command line (questions, test models; conversion, benchmarks and
//! serving come with their issues).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fusion::config::Backbone;
use fusion::engine::{AskOptions, Engine, StopReason};
use fusion::generate::SamplingOptions;
use fusion::image::Views;
use fusion::model::WeightFormat;
use fusion::{Error, Gpu, Result};

#[derive(Parser)]
#[command(name = "fusion", version, about = "FUSION vision-language models on burn + WGSL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a question about a photo and stream the answer to stdout.
    Ask {
        /// Checkpoint directory (config.json, safetensors shards, tokenizer.json).
        #[arg(long)]
        model: PathBuf,
        /// The photo (JPEG or PNG).
        #[arg(long)]
        image: PathBuf,
        /// The question.
        question: String,
        /// Follow-up questions about the same photo, asked in order after the first.
        #[arg(long = "then")]
        follow_ups: Vec<String>,
        #[arg(long, default_value_t = 512)]
        max_tokens: usize,
        /// 0 is greedy decoding.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Latent tokens Q (4, 16, 36, 64, 144, …); default: the config's, else 64.
        #[arg(long)]
        latents: Option<usize>,
        /// FUSION-L: reduce the image tokens to an M×M grid (the reference's comment uses 12).
        #[arg(long, value_name = "M", num_args = 0..=1, default_missing_value = "12")]
        reduced: Option<usize>,
        /// Keep linear weights in int4 (group size 32) instead of f32.
        #[arg(long)]
        int4: bool,
    },
    /// Write a tiny random-weight FUSION checkpoint (for tests and the demo).
    Tiny {
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = TinyBackbone::Phi)]
        backbone: TinyBackbone,
        /// Use the SigLIP2 (FUSION-X) tower path.
        #[arg(long)]
        siglip2: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A LLaMA-3.1-8B-wide decoder (10 layers, ≈ 1.2 GB) written straight as int4 shards
        /// with random weights, for memory and speed tests.
        #[arg(long)]
        large: bool,
    },
    /// Convert a Hugging Face checkpoint to int4 shards (≤ 256 MB) and a manifest.
    Convert {
        /// The checkpoint directory.
        src: PathBuf,
        /// Where to write manifest.json, the shards and tokenizer.json.
        out: PathBuf,
        /// int4 group size (a multiple of 8).
        #[arg(long, default_value_t = 32)]
        group: usize,
    },
    /// Measure kernels and the model at real shapes; write a JSON report.
    Bench,
    /// Serve the web app and a converted model on localhost.
    Serve,
    /// Check that a GPU adapter can be opened.
    Info,
}

#[derive(Clone, Copy, ValueEnum)]
enum TinyBackbone {
    Phi,
    Llama,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ask { model, image, question, follow_ups, max_tokens, temperature, top_p, seed, latents, reduced, int4 } => {
            if let Some(q) = latents {
                fusion::config::FusionConfig::latent_side(q)?;
            }
            let bytes = std::fs::read(&image).map_err(|e| Error::io(&image, e))?;
            let (rgb, w, h) = fusion::image::decode(&bytes).map_err(|e| Error::invalid(image.display().to_string(), e.to_string()))?;
            let views = Views::from_rgb(&rgb, w, h)?;
            let gpu = Gpu::new()?;
            let format = if int4 { WeightFormat::Int4 { group: 32 } } else { WeightFormat::F32 };
            let engine = Engine::load(&model, &gpu, format)?;
            let photo = engine.encode_photo(views)?;
            let options = AskOptions { sampling: SamplingOptions { max_new_tokens: max_tokens, temperature, top_p, seed }, latents, reduced_side: reduced };
            let mut conversation = engine.new_conversation();
            for (i, q) in std::iter::once(question).chain(follow_ups).enumerate() {
                if i > 0 {
                    println!("\n> {q}");
                }
                let answer = pollster::block_on(engine.ask(&mut conversation, &photo, &q, &options, |piece| {
                    print!("{piece}");
                    std::io::stdout().flush().is_ok()
                }))?;
                println!();
                let stop = match answer.stop {
                    StopReason::EndOfTurn => "end of turn",
                    StopReason::Length => "token limit",
                    StopReason::Cancelled => "cancelled",
                };
                let t = answer.timings;
                eprintln!(
                    "[{} prompt tokens, {} new tokens, stopped at {stop}; vision {:.0} ms, prefill {:.0} ms, decode {:.0} ms]",
                    answer.prompt_tokens,
                    answer.tokens.len(),
                    t.vision_ms,
                    t.prefill_ms,
                    t.decode_ms
                );
            }
            Ok(())
        }
        Command::Tiny { out, backbone, siglip2, seed, large } => {
            let backbone = match backbone {
                TinyBackbone::Phi => Backbone::Phi,
                TinyBackbone::Llama => Backbone::Llama,
            };
            let spec = fusion::testing::TinySpec { siglip2, seed, ..fusion::testing::TinySpec::new(backbone) };
            if large {
                let spec = fusion::testing::TinySpec { decoder: fusion::testing::DecoderDims::LARGE, ..spec };
                fusion::testing::write_random_int4(&out, &spec, 32)?;
            } else {
                fusion::testing::write_tiny_checkpoint(&out, &spec)?;
            }
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Info => Gpu::new().map(|_| println!("GPU ready")),
        Command::Convert { src, out, group } => {
            let options = fusion::convert::ConvertOptions { group, ..Default::default() };
            let m = fusion::convert::convert(&src, &out, &options)?;
            let bytes: u64 = m.shards.iter().map(|s| s.bytes).sum();
            println!("wrote {} tensors in {} shards ({:.1} MB) to {}", m.tensors.len(), m.shards.len(), bytes as f64 / 1e6, out.display());
            Ok(())
        }
        Command::Bench | Command::Serve => Err(Error::invalid("fusion", "this subcommand is not built yet")),
    }
}
