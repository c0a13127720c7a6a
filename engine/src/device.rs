//! Run-time choice of backend among those compiled in.
//!
//! Burn 0.21 backends are types, so code that runs "on the chosen device" is written once as a
//! [`BackendTask`] (a method generic over the backend) and [`run_on`] instantiates it for the
//! backend the user named: `cpu` (ndarray, always built), `wgpu` and `cuda` (cargo features of
//! the same names).

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;

use crate::error::{EngineError, Result};

/// The CPU backend: ndarray with f32 elements.
pub type Cpu = burn::backend::NdArray<f32>;
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// A device the user can name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    #[default]
    Cpu,
    Wgpu,
    Cuda,
}

impl FromStr for DeviceKind {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "ndarray" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(EngineError::UnknownDevice(other.to_string())),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        })
    }
}

impl DeviceKind {
    /// The devices compiled into this build.
    pub fn compiled() -> Vec<DeviceKind> {
        let mut v = vec![Self::Cpu];
        if cfg!(feature = "wgpu") {
            v.push(Self::Wgpu);
        }
        if cfg!(feature = "cuda") {
            v.push(Self::Cuda);
        }
        v
    }
}

/// Work that can run on any backend.
pub trait BackendTask {
    type Output;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on the named device, or explains why that device cannot be used.
pub fn run_on<T: BackendTask>(kind: DeviceKind, task: T) -> Result<T::Output> {
    match kind {
        DeviceKind::Cpu => Ok(task.run::<Cpu>(Default::default())),
        DeviceKind::Wgpu => run_wgpu(task),
        DeviceKind::Cuda => run_cuda(task),
    }
}

#[cfg(feature = "wgpu")]
fn run_wgpu<T: BackendTask>(task: T) -> Result<T::Output> {
    Ok(task.run::<Wgpu>(Default::default()))
}

#[cfg(not(feature = "wgpu"))]
fn run_wgpu<T: BackendTask>(_task: T) -> Result<T::Output> {
    Err(EngineError::NotCompiled {
        device: "wgpu".into(),
        feature: "wgpu".into(),
    })
}

#[cfg(feature = "cuda")]
fn run_cuda<T: BackendTask>(task: T) -> Result<T::Output> {
    // Creating a CUDA device without a driver panics inside a worker thread; check first.
    cuda_driver_present().map_err(|reason| EngineError::DeviceUnavailable {
        device: "cuda".into(),
        reason,
    })?;
    Ok(task.run::<Cuda>(Default::default()))
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<T: BackendTask>(_task: T) -> Result<T::Output> {
    Err(EngineError::NotCompiled {
        device: "cuda".into(),
        feature: "cuda".into(),
    })
}

/// Looks for the CUDA driver library the way the dynamic loader would.
#[cfg(feature = "cuda")]
fn cuda_driver_present() -> std::result::Result<(), String> {
    let dirs = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    let mut candidates: Vec<std::path::PathBuf> = dirs
        .split(':')
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .collect();
    candidates.extend(
        [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
            "/usr/local/cuda/lib64",
            "/usr/local/nvidia/lib64",
            "/usr/lib/wsl/lib",
        ]
        .map(std::path::PathBuf::from),
    );
    let found = candidates
        .iter()
        .any(|d| d.join("libcuda.so.1").exists() || d.join("libcuda.so").exists());
    if found {
        Ok(())
    } else {
        Err("the CUDA driver (libcuda.so) was not found; is an NVIDIA driver installed?".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceKind>().unwrap(), DeviceKind::Cpu);
        assert_eq!("CUDA".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda);
        let err = "tpu".parse::<DeviceKind>().unwrap_err().to_string();
        assert!(err.contains("tpu"), "{err}");
    }

    struct Add;
    impl BackendTask for Add {
        type Output = f32;
        fn run<B: Backend>(self, device: B::Device) -> f32 {
            let t = burn::tensor::Tensor::<B, 1>::from_floats([1.0, 2.0], &device);
            burn::tensor::ElementConversion::elem(t.sum().into_scalar())
        }
    }

    #[test]
    fn runs_on_cpu_and_refuses_missing_backends_clearly() {
        assert_eq!(run_on(DeviceKind::Cpu, Add).unwrap(), 3.0);
        if !cfg!(feature = "wgpu") {
            let err = run_on(DeviceKind::Wgpu, Add).unwrap_err().to_string();
            assert!(err.contains("--features wgpu"), "{err}");
        }
    }
}
