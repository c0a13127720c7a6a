//! Burn's module traits for [`QuantizedMatrix`], so that a model can hold one in a
//! `#[module(skip)]` field: it has no parameters and no record (a quantized weight is neither
//! trained nor saved as such), it moves between devices with its model, and the autodiff
//! wrappers of a backend see the same blocks.

use burn::module::{
    AutodiffModule, Content, Devices, EmptyRecord, HasAutodiffModule, Module, ModuleDisplay,
    ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
};
use burn::tensor::backend::{AutodiffBackend, Backend};

use super::quantized::{DeviceBlocks, QuantizedMatrix, Storage};

impl<B: Backend> DeviceBlocks<B> {
    fn moved_to(self, device: &B::Device) -> Self {
        Self {
            scales: self.scales.to_device(device),
            mins: self.mins.to_device(device),
            codes: self.codes.to_device(device),
        }
    }
}

impl<B: Backend> Module<B> for QuantizedMatrix<B> {
    type Record = EmptyRecord;

    fn collect_devices(&self, mut devices: Devices<B>) -> Devices<B> {
        if let Storage::Device(d) = &self.storage {
            let device = d.scales.device();
            if !devices.contains(&device) {
                devices.push(device);
            }
        }
        devices
    }

    fn fork(self, device: &B::Device) -> Self {
        self.to_device(device)
    }

    fn to_device(self, device: &B::Device) -> Self {
        let storage = match self.storage {
            Storage::Device(d) => Storage::Device(d.moved_to(device)),
            host => host,
        };
        Self { storage, ..self }
    }

    fn visit<V: ModuleVisitor<B>>(&self, _visitor: &mut V) {}

    fn map<M: ModuleMapper<B>>(self, _mapper: &mut M) -> Self {
        self
    }

    fn load_record(self, _record: Self::Record) -> Self {
        self
    }

    fn into_record(self) -> Self::Record {
        EmptyRecord::new()
    }
}

impl<B: AutodiffBackend> AutodiffModule<B> for QuantizedMatrix<B> {
    type InnerModule = QuantizedMatrix<B::InnerBackend>;

    fn valid(&self) -> Self::InnerModule {
        let storage = match &self.storage {
            Storage::Host(blocks) => Storage::Host(blocks.clone()),
            Storage::Device(d) => Storage::Device(DeviceBlocks {
                scales: d.scales.clone().inner(),
                mins: d.mins.clone().inner(),
                codes: d.codes.clone().inner(),
            }),
        };
        QuantizedMatrix {
            format: self.format,
            rows: self.rows,
            cols: self.cols,
            storage,
        }
    }

    fn from_inner(module: Self::InnerModule) -> Self {
        let storage = match module.storage {
            Storage::Host(blocks) => Storage::Host(blocks),
            Storage::Device(d) => Storage::Device(DeviceBlocks {
                scales: burn::tensor::Tensor::from_inner(d.scales),
                mins: burn::tensor::Tensor::from_inner(d.mins),
                codes: burn::tensor::Tensor::from_inner(d.codes),
            }),
        };
        QuantizedMatrix {
            format: module.format,
            rows: module.rows,
            cols: module.cols,
            storage,
        }
    }
}

impl<B: AutodiffBackend> HasAutodiffModule<B> for QuantizedMatrix<B::InnerBackend> {
    type TrainModule = QuantizedMatrix<B>;
}

impl<B: Backend> ModuleDisplayDefault for QuantizedMatrix<B> {
    fn content(&self, content: Content) -> Option<Content> {
        content.add_single(&self.to_string()).optional()
    }
}

impl<B: Backend> ModuleDisplay for QuantizedMatrix<B> {}

impl<B: Backend> std::fmt::Display for QuantizedMatrix<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}, {}]", self.format.name(), self.rows, self.cols)
    }
}
