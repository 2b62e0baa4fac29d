//! 150 turns of one conversation about a photo, far past the context limit: GPU memory and the
//! process's resident memory must stay flat. Alone in a process of its own, because RSS is the
//! whole process's: other tests running beside it on other threads (a model converted, a device
//! renewed) would show in it as growth. The test runs this binary again for itself alone.

use std::io::Write;
use std::process::Command;

use crate::common::chat::{ask, engine, options, photo};
use crate::common::gpu;

/// Set in the process that runs the soak alone.
const ALONE: &str = "FUSION_SOAK_ALONE";

/// Theil–Sen slope of `ys` against their index: the median of the slopes between every two
/// samples. A steady leak shows in every pair; a one-time step (the allocator reserving another
/// page) only in the pairs that straddle it, a minority, so it does not count.
fn slope(ys: &[f64]) -> f64 {
    let mut slopes: Vec<f64> =
        (0..ys.len()).flat_map(|i| (i + 1..ys.len()).map(move |j| (ys[j] - ys[i]) / (j - i) as f64)).collect();
    slopes.sort_by(f64::total_cmp);
    slopes[slopes.len() / 2]
}

fn rss_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() * 4096.0
}

#[test]
fn a_long_conversation_keeps_memory_flat() {
    if std::env::var_os(ALONE).is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["soak::a_long_conversation_keeps_memory_flat", "--exact", "--nocapture", "--test-threads=1"])
            .env(ALONE, "1")
            .output()
            .unwrap();
        // Straight to stderr, past libtest's capture of eprintln!: the soak's figures are shown.
        std::io::stderr().write_all(&[&out.stdout[..], &out.stderr[..]].concat()).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // A filter that matched nothing would pass too: the soak must have run.
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "the soak failed in its own process ({}): its output is above",
            out.status
        );
        return;
    }
    let turns: usize = std::env::var("FUSION_SOAK_TURNS").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    let engine = engine(gpu(), "soak", 3000);
    let photo = photo(&engine);
    let o = options(3);
    let mut c = engine.new_conversation();
    ask(&engine, &mut c, &photo, "What is in this photo?", &o).unwrap();
    let (mut gpu_mb, mut rss_mb) = (Vec::new(), Vec::new());
    for i in 0..turns {
        ask(&engine, &mut c, &photo, &format!("Tell me more, please ({i})."), &o).unwrap();
        pollster::block_on(gpu().sync()).unwrap();
        gpu_mb.push(gpu().memory().0 as f64 / 1e6);
        rss_mb.push(rss_bytes() / 1e6);
    }
    // The KV cache fills and is trimmed, so memory saws up and down, and the allocators reserve
    // a page now and then; after the first rebuilds the trend must be flat.
    let settled = turns / 3;
    let (g, r) = (slope(&gpu_mb[settled..]), slope(&rss_mb[settled..]));
    eprintln!(
        "soak: {turns} turns, {} follow-ups dropped; GPU in use {:.1}–{:.1} MB, slope {g:+.4} MB/turn; RSS {:.1}–{:.1} MB, slope {r:+.4} MB/turn",
        c.dropped_turns(),
        gpu_mb.iter().cloned().fold(f64::MAX, f64::min),
        gpu_mb.iter().cloned().fold(0.0, f64::max),
        rss_mb.iter().cloned().fold(f64::MAX, f64::min),
        rss_mb.iter().cloned().fold(0.0, f64::max),
    );
    assert!(c.dropped_turns() > 0, "the soak must cross the context limit");
    // Keeping one turn's KV rows (≈ 45 positions × 640 B) would grow GPU memory ≈ 0.03 MB per
    // turn; measured slopes are ≤ 0.005 MB/turn.
    assert!(g.abs() < 0.01, "GPU memory grows {g} MB per turn");
    assert!(r < 0.02, "RSS grows {r} MB per turn");
}
