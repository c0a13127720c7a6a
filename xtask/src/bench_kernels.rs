//! `cargo xtask bench kernels`: every kernel workload through Burn's stock ops and through the
//! fused kernel (where the backend has one), measured back to back in one run, as a table with
//! the speed-up and the achieved GB/s or GFLOP/s.

use std::time::{Duration, Instant};

use anyhow::Result;
use burn::tensor::backend::Backend;
use mars2_benches::kernel_workloads::{workloads, Runner};
use mars2_engine::{run_on, BackendTask, DeviceKind};
use serde_json::json;

/// Median seconds per run: three warm-up runs, then runs until 0.3 s or 200 of them.
fn time(run: &Runner) -> f64 {
    for _ in 0..3 {
        run();
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 200 && (samples.len() < 5 || start.elapsed() < Duration::from_millis(300))
    {
        let t = Instant::now();
        run();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

struct Table {
    json: bool,
    device: DeviceKind,
}

impl BackendTask for Table {
    type Output = ();
    fn run<B: Backend>(self, device: B::Device) {
        let mut rows = Vec::new();
        for w in workloads::<B>(&device) {
            let stock = time(&w.stock);
            let fused = w.fused.as_ref().map(time);
            let best = fused.unwrap_or(stock).min(stock);
            let row = json!({
                "op": w.op, "shape": w.shape, "device": self.device.to_string(),
                "stock_us": stock * 1e6, "fused_us": fused.map(|f| f * 1e6),
                "speedup": fused.map(|f| stock / f),
                "gb_per_s": w.bytes / best / 1e9,
                "gflop_per_s": (w.flops > 0.0).then(|| w.flops / best / 1e9),
            });
            eprintln!("{row}");
            rows.push(row);
        }
        if self.json {
            for r in &rows {
                println!("{r}");
            }
            return;
        }
        println!("device: {}", self.device);
        println!();
        println!("| op | shape | stock µs | fused µs | stock/fused | GB/s | GFLOP/s |");
        println!("|:---|:------|---------:|---------:|------------:|-----:|--------:|");
        let num = |v: &serde_json::Value, digits: usize| {
            v.as_f64()
                .map_or("—".to_string(), |x| format!("{x:.digits$}"))
        };
        for r in &rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                r["op"].as_str().unwrap_or(""),
                r["shape"].as_str().unwrap_or(""),
                num(&r["stock_us"], 1),
                num(&r["fused_us"], 1),
                num(&r["speedup"], 2),
                num(&r["gb_per_s"], 1),
                num(&r["gflop_per_s"], 1),
            );
        }
    }
}

pub fn run(device: DeviceKind, json: bool) -> Result<()> {
    run_on(device, Table { json, device })?;
    Ok(())
}
