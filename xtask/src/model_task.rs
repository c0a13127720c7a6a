//! Running command-line work on the device the user chose: a closure-like task that loads a
//! model on the selected backend and does something with it.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::Backend;
use mars2_engine::{run_on, BackendTask, DeviceKind};
use mars2_models::{load_model, LoadedModel};

/// Work to do with a loaded model, on any backend.
pub trait WithModel {
    type Output;
    fn run<B: Backend>(self, model: LoadedModel<B>, device: &B::Device) -> Result<Self::Output>;
}

struct Task<W> {
    path: PathBuf,
    work: W,
}

impl<W: WithModel> BackendTask for Task<W> {
    type Output = Result<W::Output>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let started = std::time::Instant::now();
        let model = load_model::<B>(&self.path, &device)?;
        tracing::info!(
            "loaded {} in {:.1}s",
            self.path.display(),
            started.elapsed().as_secs_f64()
        );
        self.work.run(model, &device)
    }
}

/// Loads the model at `path` on `device` and runs `work` with it.
pub fn with_model<W: WithModel>(device: DeviceKind, path: PathBuf, work: W) -> Result<W::Output> {
    run_on(device, Task { path, work })?
}
