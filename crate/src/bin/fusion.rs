//! `fusion`: the native command line: questions, test models, conversion, benchmarks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fusion::config::Backbone;
use fusion::engine::{AskOptions, StopReason};
use fusion::generate::SamplingOptions;
use fusion::image::Views;
use fusion::model::WeightFormat;
use fusion::session::Session;
use fusion::{Error, Gpu, Result};

#[derive(Parser)]
#[command(name = "fusion", version, about = "FUSION vision-language models on burn + WGSL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a question about a photo (or, without --image, a text-only one) and stream the
    /// answer to stdout.
    Ask {
        /// Checkpoint directory (config.json, safetensors shards, tokenizer.json).
        #[arg(long)]
        model: PathBuf,
        /// The photo (JPEG, PNG, GIF, WebP). Without one the question goes to the plain LLM
        /// (no vision work: our extension, the reference answers only about a photo).
        #[arg(long)]
        image: Option<PathBuf>,
        /// The question.
        question: String,
        /// Follow-up questions in the same conversation, asked in order after the first.
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
        /// A system prompt in place of the chat template's (FUSION was tuned with the template's).
        #[arg(long, value_name = "TEXT")]
        system: Option<String>,
        /// End the answer before this text (repeat the flag for several); it is not printed.
        #[arg(long = "stop", value_name = "TEXT")]
        stop: Vec<String>,
        /// Divide the logits of tokens already in the answer by this where positive, multiply
        /// where negative (Hugging Face's; 1 is none).
        #[arg(long, default_value_t = 1.0)]
        repetition_penalty: f32,
        /// Subtract this per occurrence from the logits of tokens already in the answer
        /// (OpenAI's; -2 to 2).
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        frequency_penalty: f32,
        /// Subtract this once from the logits of tokens already in the answer (OpenAI's; -2 to 2).
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        presence_penalty: f32,
        /// After each answer, print a JSON line on stderr with each token's log-probability
        /// and the N most likely tokens at its step (OpenAI's `logprobs.content`; 0 to 20).
        #[arg(long, value_name = "N")]
        logprobs: Option<usize>,
        /// Latent tokens Q (4, 16, 36, 64, 144, …); default: the config's, else 64.
        #[arg(long)]
        latents: Option<usize>,
        /// FUSION-L: reduce the image tokens to an M×M grid (the reference's comment uses 12).
        #[arg(long, value_name = "M", num_args = 0..=1, default_missing_value = "12")]
        reduced: Option<usize>,
        /// Keep linear weights in int4 (group size 32) instead of f32.
        #[arg(long)]
        int4: bool,
        /// Run every kernel on WebGPU's baseline path (f32, no subgroups) even where the GPU has
        /// more: the same answers, bit for bit, as a browser without shader-f16 or subgroups.
        #[arg(long)]
        baseline: bool,
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
        /// The context length, in positions (config.json's `tokenizer_model_max_length`;
        /// 4096 when not given), so tests can fill it in a few turns.
        #[arg(long)]
        context: Option<usize>,
        /// A LLaMA-3.1-8B-wide decoder (10 layers, ≈ 1.2 GB) written straight as int4 shards
        /// with random weights, for memory and speed tests.
        #[arg(long)]
        large: bool,
        /// What the published repository holds (FUSION[-X]-Phi3.5-3B, FUSION[-X]-LLaMA3.1-8B):
        /// every key at the real layer counts, the full config with the tower as a hub id, bf16
        /// shards, the tokenizer files it ships; tiny widths.
        #[arg(long, conflicts_with_all = ["large", "context"])]
        published: bool,
        /// With --published: the real widths too, the published model's full size (the 3B is
        /// 10 GB of bf16, written in a few MB of memory), to measure a conversion.
        #[arg(long, requires = "published")]
        full_size: bool,
    },
    /// Say what a checkpoint or converted model folder is (variant, tower, parameters, int4
    /// size, GPU memory) and every problem with it, without a GPU; exits 1 on a problem.
    Check {
        dir: PathBuf,
        /// The context to size the GPU memory for (default: the model's own).
        #[arg(long)]
        context: Option<usize>,
    },
    /// Convert a Hugging Face checkpoint to int4 shards (≤ 256 MB) and a manifest.
    Convert {
        /// The checkpoint directory.
        src: PathBuf,
        /// Where to write manifest.json, the shards and tokenizer.json.
        out: PathBuf,
        /// int4 group size (a multiple of 32).
        #[arg(long, default_value_t = 32)]
        group: usize,
    },
    /// Measure kernels and whole models at the published shapes (random int4 weights, no
    /// downloads) against the device's copy bandwidth and burn's stock ops; write a JSON report.
    Bench {
        /// Model shapes to measure (repeat the flag for several).
        #[arg(long = "model", value_enum, default_values_t = [BenchShapes::Fusion3b, BenchShapes::Fusion8b])]
        models: Vec<BenchShapes>,
        /// Decode steps timed per model (at least one).
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// Repeats of each kernel measurement.
        #[arg(long, default_value_t = 20)]
        repeats: usize,
        /// int4 group size.
        #[arg(long, default_value_t = 32)]
        group: usize,
        /// Also time burn's f32 matmul on every decoder shape.
        #[arg(long)]
        stock: bool,
        /// Also run the whole model with f32 weights through burn's matmul and attention (4
        /// bytes per parameter of GPU memory, ≈ 15 GB for 3B and 32 GB for 8B, and minutes).
        #[arg(long)]
        f32_model: bool,
        /// MiB the copy-bandwidth probe moves each way.
        #[arg(long, default_value_t = 1024)]
        copy_mib: usize,
        /// Only what issuing the work costs the CPU: each model on wgpu's noop device, which
        /// runs nothing (no GPU needed; the report's `cpu_side`).
        #[arg(long)]
        cpu_only: bool,
        /// Where to write the JSON report; rewritten after each phase, so a run stopped early
        /// leaves what it measured (a model's `finished` says whether it ran to the end).
        #[arg(long, default_value = "bench.json")]
        out: PathBuf,
    },
    /// Check that a GPU adapter can be opened.
    Info,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BenchShapes {
    Tiny,
    #[value(name = "3b")]
    Fusion3b,
    #[value(name = "x-3b")]
    FusionX3b,
    #[value(name = "8b")]
    Fusion8b,
    #[value(name = "x-8b")]
    FusionX8b,
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

/// A photo file decoded and cut into the model's views.
fn read_photo(image: &Path) -> Result<Views> {
    let bytes = std::fs::read(image).map_err(|e| Error::io(image, e))?;
    let (rgb, w, h) =
        fusion::image::decode(&bytes).map_err(|e| Error::invalid(image.display().to_string(), e.to_string()))?;
    Views::from_rgb(&rgb, w, h)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ask {
            model,
            image,
            question,
            follow_ups,
            max_tokens,
            temperature,
            top_p,
            seed,
            stop,
            repetition_penalty,
            frequency_penalty,
            presence_penalty,
            logprobs,
            system,
            latents,
            reduced,
            int4,
            baseline,
        } => {
            if let Some(q) = latents {
                fusion::config::FusionConfig::latent_side(q)?;
            }
            let sampling = SamplingOptions {
                max_new_tokens: max_tokens,
                temperature,
                top_p,
                seed,
                repetition_penalty,
                frequency_penalty,
                presence_penalty,
                stop,
                logprobs,
            };
            sampling.check()?;
            let options = AskOptions { sampling, latents, reduced_side: reduced, system };
            let views = image.map(|image| read_photo(&image)).transpose()?;
            let format = if int4 { WeightFormat::Int4 { group: 32 } } else { WeightFormat::F32 };
            // One engine driven from this one thread: decode steps can be recorded.
            let gpu = Gpu::new()?.record_decode_steps(true);
            let gpu = if baseline { gpu.baseline() } else { gpu };
            // On a terminal, a bar over the model's tensors as they reach the GPU.
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("loading {bar:40} {pos}/{len} tensors (ETA {eta})")
                    .map_err(|e| Error::invalid("progress bar", e.to_string()))?,
            );
            let mut session = Session::open_reporting(&gpu, &model, format, views, &mut |taken, total| {
                bar.set_length(total as u64);
                bar.set_position(taken as u64);
            })?;
            bar.finish_and_clear();
            let mut lost = 0;
            for (i, q) in std::iter::once(question).chain(follow_ups).enumerate() {
                if i > 0 {
                    println!("\n> {q}");
                }
                let answer = pollster::block_on(session.ask(&q, &options, |piece| {
                    print!("{piece}");
                    std::io::stdout().flush().is_ok()
                }));
                println!();
                let answer = match answer {
                    // The session reloads the model onto a new device for the next question.
                    Err(e @ Error::DeviceLost(_)) => {
                        eprintln!("error: {e}; the next question reloads the model onto a new device");
                        lost += 1;
                        continue;
                    }
                    answer => answer?,
                };
                let stop = match answer.stop {
                    StopReason::EndOfTurn => "end of turn",
                    StopReason::StopSequence => "a stop sequence",
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
                if logprobs.is_some() {
                    eprintln!("{}", serde_json::json!({ "logprobs": session.engine().logprobs_json(&answer) }));
                }
            }
            // A question lost with its device fails the run, even when the later ones recovered.
            match lost {
                0 => Ok(()),
                n => Err(Error::Execution(format!("{n} question(s) went unanswered: the GPU device was lost"))),
            }
        }
        Command::Check { dir, context } => {
            let report = fusion::check::check(&dir);
            print!("{report}");
            if let (Some(context), Some(bytes)) = (context, context.and_then(|c| report.gpu_bytes(c))) {
                println!("GPU memory at a {context}-position context: {:.2} GB + working buffers", bytes as f64 / 1e9);
            }
            if report.ok() {
                Ok(())
            } else {
                Err(Error::invalid(dir.display().to_string(), "the model folder has problems (listed above)"))
            }
        }
        Command::Tiny { out, backbone, siglip2, seed, context, large, published, full_size } => {
            let backbone = match backbone {
                TinyBackbone::Phi => Backbone::Phi,
                TinyBackbone::Llama => Backbone::Llama,
            };
            let config_overrides =
                context.map_or(serde_json::json!({}), |c| serde_json::json!({ "tokenizer_model_max_length": c }));
            let base = if full_size {
                fusion::testing::TinySpec::published_full_size(backbone, siglip2)
            } else if published {
                fusion::testing::TinySpec::published(backbone, siglip2)
            } else {
                fusion::testing::TinySpec::new(backbone)
            };
            let spec = fusion::testing::TinySpec { siglip2, seed, config_overrides, ..base };
            if large {
                let spec = fusion::testing::TinySpec { decoder: fusion::testing::DecoderDims::LARGE, ..spec };
                fusion::testing::write_random_int4(&out, &spec, 32)?;
            } else {
                fusion::testing::write_tiny_checkpoint(&out, &spec)?;
            }
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Info => Gpu::new().map(|gpu| {
            let c = gpu.capabilities();
            println!("GPU ready: {} (shader-f16: {}, subgroups: {})", gpu.adapter_name(), c.f16, c.subgroups);
        }),
        Command::Convert { src, out, group } => {
            let options = fusion::convert::ConvertOptions { group, ..Default::default() };
            // On a terminal, a bar over the source's weights; nothing when stderr is not one.
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} (ETA {eta})")
                    .map_err(|e| Error::invalid("progress bar", e.to_string()))?,
            );
            let m = fusion::convert::convert_with_progress(&src, &out, &options, &mut |p| {
                bar.set_length(p.total);
                bar.set_position(p.done);
                bar.set_message(p.tensor.to_owned());
            })?;
            bar.finish_and_clear();
            let bytes: u64 = m.shards.iter().map(|s| s.bytes).sum();
            println!(
                "wrote {} tensors in {} shards ({:.1} MB) to {}",
                m.tensors.len(),
                m.shards.len(),
                bytes as f64 / 1e6,
                out.display()
            );
            Ok(())
        }
        Command::Bench { models, tokens, repeats, group, stock, f32_model, copy_mib, cpu_only, out } => {
            use fusion::bench::Shapes;
            let shapes = models
                .into_iter()
                .map(|m| match m {
                    BenchShapes::Tiny => Shapes::Tiny,
                    BenchShapes::Fusion3b => Shapes::Fusion3b,
                    BenchShapes::FusionX3b => Shapes::FusionX3b,
                    BenchShapes::Fusion8b => Shapes::Fusion8b,
                    BenchShapes::FusionX8b => Shapes::FusionX8b,
                })
                .collect();
            let options = fusion::bench::BenchOptions {
                shapes,
                decode_tokens: tokens,
                repeats,
                group,
                stock_matmul: stock,
                f32_model,
                copy_bytes: copy_mib << 20,
            };
            // Written whole to a neighbour and renamed over the report: a run killed mid-write
            // leaves the last complete report, never half of one.
            let partial = out.with_extension("json.partial");
            let mut save = |report: &serde_json::Value| -> fusion::Result<()> {
                let text =
                    serde_json::to_string_pretty(report).map_err(|e| Error::invalid("bench report", e.to_string()))?;
                std::fs::write(&partial, text + "\n").map_err(|e| Error::io(&partial, e))?;
                std::fs::rename(&partial, &out).map_err(|e| Error::io(&out, e))
            };
            match cpu_only {
                true => save(&fusion::bench::run_cpu_side(&options)?)?,
                // Saved after each phase, the last one included.
                false => drop(fusion::bench::run(&Gpu::new()?.record_decode_steps(true), &options, &mut save)?),
            }
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}
