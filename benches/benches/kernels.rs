//! Kernel throughput with criterion: each op of `mars2_benches::kernel_workloads` through Burn's
//! stock ops and through the fused kernel, on every backend compiled in (the CPU always; `cuda`
//! and `wgpu` with those features of this crate, when a device is present, each also with
//! half-precision tensors: `wgpu-f16`, `cuda-f16`, `cuda-bf16`).

use burn::tensor::backend::Backend;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mars2_benches::kernel_workloads::workloads;
use mars2_engine::{run_on, BackendTask, DeviceKind};

struct Bench<'a>(&'a mut Criterion, DeviceKind);

impl BackendTask for Bench<'_> {
    type Output = ();
    fn run<B: Backend>(self, device: B::Device) {
        let Bench(c, kind) = self;
        for w in workloads::<B>(&device) {
            let mut group = c.benchmark_group(format!("{kind}/{} {}", w.op, w.shape));
            group.sample_size(10);
            group.throughput(Throughput::Bytes(w.bytes as u64));
            group.bench_function("stock", |b| b.iter(|| (w.stock)()));
            if let Some(fused) = &w.fused {
                group.bench_function("fused", |b| b.iter(fused));
            }
            group.finish();
        }
    }
}

fn kernels(c: &mut Criterion) {
    for kind in DeviceKind::compiled() {
        if let Err(e) = run_on(kind, Bench(c, kind)) {
            eprintln!("skipping {kind}: {e}");
        }
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
