//! Devices by index and lists of them, as users name them: `cpu`, `cuda:1`, `wgpu:0`,
//! `cuda:0,cuda:1`. A [`DeviceSpec`] is a [`DeviceKind`] plus an optional index (none: the
//! backend's default device); a [`DeviceList`] is the devices of one process's data-parallel
//! peers, all of one kind.

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::{Backend, Device, DeviceId};

use crate::device::DeviceKind;
use crate::error::{EngineError, Result};

/// One device: a backend and, optionally, which of its devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceSpec {
    pub kind: DeviceKind,
    /// The device's index among its backend's devices; `None` is the backend's default.
    pub index: Option<u16>,
}

impl From<DeviceKind> for DeviceSpec {
    fn from(kind: DeviceKind) -> Self {
        DeviceSpec { kind, index: None }
    }
}

impl FromStr for DeviceSpec {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        let (kind, index) = match s.split_once(':') {
            Some((kind, index)) => {
                let index = index.trim().parse::<u16>().map_err(|_| {
                    EngineError::UnknownDevice(format!(
                        "{s} (the part after ':' must be a device index such as 0 or 1)"
                    ))
                })?;
                (kind, Some(index))
            }
            None => (s, None),
        };
        Ok(DeviceSpec {
            kind: kind.trim().parse()?,
            index,
        })
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}:{i}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl serde::Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The devices of one process's peers: at least one, all of the same kind (one backend type
/// serves them all). CPU peers share the machine's cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList(Vec<DeviceSpec>);

impl DeviceList {
    /// A list of `devices`, refused when empty or when it mixes kinds.
    pub fn new(devices: Vec<DeviceSpec>) -> Result<Self> {
        let Some(first) = devices.first() else {
            return Err(EngineError::UnknownDevice(
                "an empty device list (name at least one device)".into(),
            ));
        };
        if let Some(other) = devices.iter().find(|d| d.kind != first.kind) {
            return Err(EngineError::MixedDevices {
                first: first.to_string(),
                other: other.to_string(),
            });
        }
        Ok(DeviceList(devices))
    }

    /// One device.
    pub fn single(device: DeviceSpec) -> Self {
        DeviceList(vec![device])
    }

    pub fn first(&self) -> DeviceSpec {
        self.0[0]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &DeviceSpec> {
        self.0.iter()
    }

    /// Backend `B`'s devices for this list, given the device `run_on` made for its first
    /// entry (which fixes the device type: a discrete GPU, say).
    pub fn devices_of<B: Backend>(&self, first: &B::Device) -> Vec<B::Device> {
        let type_id = first.to_id().type_id;
        self.0
            .iter()
            .enumerate()
            .map(|(i, spec)| match (i, spec.index) {
                (0, _) | (_, None) => first.clone(),
                (_, Some(index_id)) => B::Device::from_id(DeviceId { type_id, index_id }),
            })
            .collect()
    }
}

impl FromStr for DeviceList {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        let devices = s
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<DeviceSpec>>>()?;
        DeviceList::new(devices)
    }
}

impl fmt::Display for DeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_with_and_without_an_index() {
        let spec: DeviceSpec = "cuda:1".parse().unwrap();
        assert_eq!(spec.kind, DeviceKind::Cuda);
        assert_eq!(spec.index, Some(1));
        assert_eq!(spec.to_string(), "cuda:1");
        let spec: DeviceSpec = "wgpu".parse().unwrap();
        assert_eq!(spec, DeviceSpec::from(DeviceKind::Wgpu));
        assert_eq!(
            "cuda-bf16:0".parse::<DeviceSpec>().unwrap().to_string(),
            "cuda-bf16:0"
        );
    }

    #[test]
    fn refuses_bad_indices_and_kinds_by_name() {
        let err = "cuda:x".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("cuda:x") && err.contains("index"), "{err}");
        let err = "tpu:0".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("tpu"), "{err}");
    }

    #[test]
    fn lists_share_one_kind() {
        let list: DeviceList = "cpu,cpu".parse().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list.to_string(), "cpu,cpu");
        let list: DeviceList = "cuda:0, cuda:1".parse().unwrap();
        assert_eq!(
            list.iter().map(|d| d.index).collect::<Vec<_>>(),
            [Some(0), Some(1)]
        );
        let err = "cuda:0,wgpu:0"
            .parse::<DeviceList>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("cuda:0") && err.contains("wgpu:0"), "{err}");
        assert!("".parse::<DeviceList>().is_err());
    }

    #[test]
    fn cpu_peers_are_the_cpu() {
        let list: DeviceList = "cpu,cpu".parse().unwrap();
        let devices = list.devices_of::<crate::device::Cpu>(&Default::default());
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0], devices[1]);
    }
}
