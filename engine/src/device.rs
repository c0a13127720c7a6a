//! Run-time choice of backend among those compiled in.
//!
//! Burn 0.21 backends are types, so code that runs "on the chosen device" is written once as a
//! [`BackendTask`] (a method generic over the backend) and [`run_on`] instantiates it for the
//! backend the user named: `cpu` (ndarray, always built), `wgpu` and `cuda` (cargo features of
//! the same names). The GPU backends also come with half-precision activations and weights:
//! `wgpu-f16`, `cuda-f16` and `cuda-bf16` (WGSL has no bf16).

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;
use burn::tensor::DType;

use crate::device_spec::DeviceSpec;
use crate::error::{EngineError, Result};

/// The CPU backend: ndarray with f32 elements.
pub type Cpu = burn::backend::NdArray<f32>;
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;
#[cfg(feature = "wgpu")]
pub type WgpuF16 = burn::backend::Wgpu<burn::tensor::f16>;
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;
#[cfg(feature = "cuda")]
pub type CudaF16 = burn::backend::Cuda<burn::tensor::f16>;
#[cfg(feature = "cuda")]
pub type CudaBf16 = burn::backend::Cuda<burn::tensor::bf16>;

/// A device the user can name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    #[default]
    Cpu,
    Wgpu,
    /// wgpu with f16 tensors (needs the adapter's `shader-f16`).
    WgpuF16,
    Cuda,
    CudaF16,
    CudaBf16,
}

impl FromStr for DeviceKind {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "ndarray" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "wgpu-f16" => Ok(Self::WgpuF16),
            "cuda" => Ok(Self::Cuda),
            "cuda-f16" => Ok(Self::CudaF16),
            "cuda-bf16" => Ok(Self::CudaBf16),
            other => Err(EngineError::UnknownDevice(other.to_string())),
        }
    }
}

/// Configs name a device as the command line does (`"cpu"`, `"cuda-bf16"`, …).
impl serde::Serialize for DeviceKind {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceKind {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::WgpuF16 => "wgpu-f16",
            Self::Cuda => "cuda",
            Self::CudaF16 => "cuda-f16",
            Self::CudaBf16 => "cuda-bf16",
        })
    }
}

impl DeviceKind {
    /// The devices compiled into this build.
    pub fn compiled() -> Vec<DeviceKind> {
        let mut v = vec![Self::Cpu];
        if cfg!(feature = "wgpu") {
            v.extend([Self::Wgpu, Self::WgpuF16]);
        }
        if cfg!(feature = "cuda") {
            v.extend([Self::Cuda, Self::CudaF16, Self::CudaBf16]);
        }
        v
    }

    /// The element type of float tensors on this device.
    pub fn float_type(self) -> DType {
        match self {
            Self::Cpu | Self::Wgpu | Self::Cuda => DType::F32,
            Self::WgpuF16 | Self::CudaF16 => DType::F16,
            Self::CudaBf16 => DType::BF16,
        }
    }
}

/// Work that can run on any backend.
pub trait BackendTask {
    type Output;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on the named device (`cuda:1`, or a bare kind for the backend's default
/// device), or explains why that device cannot be used.
pub fn run_on<T: BackendTask>(device: impl Into<DeviceSpec>, task: T) -> Result<T::Output> {
    let spec = device.into();
    match spec.kind {
        DeviceKind::Cpu => Ok(task.run::<Cpu>(Default::default())),
        DeviceKind::Wgpu | DeviceKind::WgpuF16 => run_wgpu(spec, task),
        DeviceKind::Cuda | DeviceKind::CudaF16 | DeviceKind::CudaBf16 => run_cuda(spec, task),
    }
}

#[cfg(feature = "wgpu")]
fn run_wgpu<T: BackendTask>(spec: DeviceSpec, task: T) -> Result<T::Output> {
    use burn::backend::wgpu::WgpuDevice;
    let kind = spec.kind;
    // An index names a discrete GPU; without one wgpu picks its default adapter.
    let device = spec.index.map_or(WgpuDevice::DefaultDevice, |i| {
        WgpuDevice::DiscreteGpu(i.into())
    });
    if kind == DeviceKind::WgpuF16 {
        check_dtype::<WgpuF16>(kind)?;
        return Ok(task.run::<WgpuF16>(device));
    }
    Ok(task.run::<Wgpu>(device))
}

/// Refuses a backend whose device cannot hold its float type (wgpu without `shader-f16`, a
/// GPU without bf16) before any work starts.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn check_dtype<B: Backend>(kind: DeviceKind) -> Result<()> {
    let dtype = kind.float_type();
    if B::supports_dtype(&Default::default(), dtype) {
        Ok(())
    } else {
        Err(EngineError::DeviceUnavailable {
            device: kind.to_string(),
            reason: format!("the adapter does not support {dtype:?} tensors"),
        })
    }
}

#[cfg(not(feature = "wgpu"))]
fn run_wgpu<T: BackendTask>(spec: DeviceSpec, _task: T) -> Result<T::Output> {
    Err(EngineError::NotCompiled {
        device: spec.to_string(),
        feature: "wgpu".into(),
    })
}

#[cfg(feature = "cuda")]
fn run_cuda<T: BackendTask>(spec: DeviceSpec, task: T) -> Result<T::Output> {
    use burn::backend::cuda::CudaDevice;
    let kind = spec.kind;
    // Creating a CUDA device without a driver panics inside a worker thread; check first.
    cuda_driver_present().map_err(|reason| EngineError::DeviceUnavailable {
        device: spec.to_string(),
        reason,
    })?;
    let device = CudaDevice {
        index: spec.index.unwrap_or(0).into(),
    };
    Ok(match kind {
        DeviceKind::CudaF16 => {
            check_dtype::<CudaF16>(kind)?;
            task.run::<CudaF16>(device)
        }
        DeviceKind::CudaBf16 => {
            check_dtype::<CudaBf16>(kind)?;
            task.run::<CudaBf16>(device)
        }
        _ => task.run::<Cuda>(device),
    })
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<T: BackendTask>(spec: DeviceSpec, _task: T) -> Result<T::Output> {
    Err(EngineError::NotCompiled {
        device: spec.to_string(),
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
        for kind in [
            DeviceKind::WgpuF16,
            DeviceKind::CudaF16,
            DeviceKind::CudaBf16,
        ] {
            assert_eq!(kind.to_string().parse::<DeviceKind>().unwrap(), kind);
        }
        assert_eq!(DeviceKind::CudaBf16.float_type(), DType::BF16);
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
            let err = run_on(DeviceKind::WgpuF16, Add).unwrap_err().to_string();
            assert!(
                err.contains("wgpu-f16") && err.contains("--features wgpu"),
                "{err}"
            );
        }
    }
}
