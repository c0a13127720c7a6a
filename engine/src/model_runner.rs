//! Runs one agent's model over one ragged batch of rows and samples their next tokens: the
//! half of a scheduling step that touches tensors. The scheduler ([`crate::scheduler`]) decides
//! which rows run and where their keys and values live; it hands over each row's tokens, the
//! KV slots of its positions and how it samples, and gets back one token per sampling row.
//!
//! On the ndarray CPU backend a pass of at most
//! [`mars2_models::host_decode::MAX_HOST_ROWS`] token places (decode steps, short prompt
//! chunks; any prompt chunk when every product of the model is 8-bit) runs as host loops over
//! the agent's keys and values in place ([`Transformer::forward_hidden_host`], which decides);
//! longer passes and other backends go through Burn ops and [`PagedStep`]. Rows shorter than the pass are padded; their padding places write to a
//! scratch slot and repeat the row's last position.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use mars2_models::host_decode::HostStep;
use mars2_models::Transformer;

use crate::device_sampling::{sample_on_device, RowDraw};
use crate::paged::{AgentKvStorage, PagedStep, StepLayout};
use crate::sampling::SampledToken;

/// Seconds spent in each stage of the forward passes, summed over passes. With profiling on,
/// the engine waits for the device at the end of each stage, so each figure holds that
/// stage's device time as well as its host time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepProfile {
    /// Forward passes timed.
    pub passes: usize,
    /// Building the step on the host: slots, positions, block tables, and their upload.
    pub prepare: f64,
    /// Issuing the transformer's layers (returns as soon as the work is queued on an
    /// asynchronous device).
    pub issue: f64,
    /// Waiting for the device to finish the layers after they were issued.
    pub device_wait: f64,
    /// Output head, sampling and reading the tokens back.
    pub sample: f64,
}

/// One row of a forward pass.
pub(crate) struct PassRow {
    /// The tokens fed this pass (a prompt chunk, or the last sampled token).
    pub tokens: Vec<u32>,
    /// KV slot of every position the row holds after this pass: its cached positions, then
    /// one per fed token.
    pub slots: Vec<usize>,
    /// How the row samples its next token; `None` for a prompt chunk that is not the last.
    pub draw: Option<RowDraw>,
}

impl PassRow {
    /// Position of the first fed token.
    fn start(&self) -> usize {
        self.slots.len() - self.tokens.len()
    }
}

/// Where a pass writes what it does not keep, and where it runs.
pub(crate) struct PassTarget<'a, B: Backend> {
    pub model: &'a Transformer<B>,
    pub storage: &'a mut AgentKvStorage<B>,
    /// The slot padding places write to.
    pub scratch_slot: usize,
    pub block_size: usize,
    pub device: &'a B::Device,
}

/// Runs `rows` through the model, writing their keys and values, and returns the sampled
/// token of each row with a draw, in row order (`None` for the others). `profile` collects
/// stage times when given.
pub(crate) fn run_pass<B: Backend>(
    target: PassTarget<'_, B>,
    rows: &[PassRow],
    profile: Option<&mut StepProfile>,
) -> Vec<Option<SampledToken>> {
    let PassTarget {
        model,
        storage,
        scratch_slot,
        block_size,
        device,
    } = target;
    let mut clock = profile.map(|p| (StageClock::<B>::start(device), p));
    let t = rows.iter().map(|r| r.tokens.len()).max().unwrap_or(1);
    let b = rows.len();
    let layout = step_layout(rows, t, scratch_slot);
    let mut ids = Vec::with_capacity(b * t);
    for row in rows {
        ids.extend(row.tokens.iter().copied());
        ids.extend(std::iter::repeat_n(0, t - row.tokens.len()));
    }
    let host_hidden = storage.host_layers_mut().and_then(|kv| {
        let positions: Vec<usize> = layout.positions.iter().flatten().copied().collect();
        let write_slots: Vec<usize> = layout.write_slots.iter().flatten().copied().collect();
        let step = HostStep {
            batch: b,
            tokens: t,
            ids: &ids,
            positions: &positions,
            write_slots: &write_slots,
            block_tables: &layout.block_tables(block_size),
            visible: &layout.visible(),
            block_size,
        };
        model.forward_hidden_host(&step, kv)
    });
    let hidden = if let Some(hidden) = host_hidden {
        if let Some((c, p)) = clock.as_mut() {
            p.passes += 1;
            p.issue += c.lap(false);
        }
        hidden
    } else {
        let positions: Vec<i64> = layout
            .positions
            .iter()
            .flatten()
            .map(|&p| p as i64)
            .collect();
        let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let mut ctx = PagedStep::new(storage, layout, device);
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, t]), device);
        let positions = Tensor::<B, 2, Int>::from_data(TensorData::new(positions, [b, t]), device);
        let prepare = clock.as_mut().map(|(c, _)| c.lap(false));
        let hidden = model.forward_hidden(ids, positions, &mut ctx);
        if let Some((c, p)) = clock.as_mut() {
            p.passes += 1;
            p.prepare += prepare.unwrap_or(0.0);
            p.issue += c.lap(false);
            p.device_wait += c.lap(true);
        }
        hidden
    };
    let sampled: Vec<usize> = (0..b).filter(|&i| rows[i].draw.is_some()).collect();
    let mut tokens = vec![None; b];
    if sampled.is_empty() {
        return tokens;
    }
    // The hidden state of each sampled row's last token, taken in one gather.
    let d = hidden.dims()[2];
    let last: Vec<i64> = sampled
        .iter()
        .map(|&i| (i * t + rows[i].tokens.len() - 1) as i64)
        .collect();
    let last = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [sampled.len()]), device);
    let last = hidden.reshape([b * t, d]).select(0, last);
    let logits = model.lm_head(last.reshape([sampled.len(), 1, d]));
    let vocab = logits.dims()[2];
    let draws: Vec<RowDraw> = sampled.iter().filter_map(|&i| rows[i].draw).collect();
    let drawn = sample_on_device(logits.reshape([sampled.len(), vocab]), &draws, device);
    if let Some((c, p)) = clock.as_mut() {
        p.sample += c.lap(false);
    }
    for (&i, token) in sampled.iter().zip(drawn) {
        tokens[i] = Some(token);
    }
    tokens
}

/// Write slots, read slots and positions of every place, `t` places per row.
fn step_layout(rows: &[PassRow], t: usize, scratch_slot: usize) -> StepLayout {
    let mut layout = StepLayout {
        write_slots: Vec::with_capacity(rows.len()),
        read_slots: Vec::with_capacity(rows.len()),
        positions: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        let (start, n) = (row.start(), row.tokens.len());
        let mut write = Vec::with_capacity(t);
        let mut positions = Vec::with_capacity(t);
        for i in 0..t {
            if i < n {
                write.push(row.slots[start + i]);
                positions.push(start + i);
            } else {
                write.push(scratch_slot);
                positions.push(start + n - 1);
            }
        }
        layout.read_slots.push(row.slots.clone());
        layout.write_slots.push(write);
        layout.positions.push(positions);
    }
    layout
}

/// Wall-clock laps of a profiled forward pass.
struct StageClock<B: Backend> {
    device: B::Device,
    last: std::time::Instant,
}

impl<B: Backend> StageClock<B> {
    fn start(device: &B::Device) -> Self {
        Self {
            device: device.clone(),
            last: std::time::Instant::now(),
        }
    }

    /// Seconds since the previous lap, after waiting for the device when `wait` is set.
    fn lap(&mut self, wait: bool) -> f64 {
        if wait {
            // A failed sync surfaces at the next read of the results anyway.
            let _ = B::sync(&self.device);
        }
        let now = std::time::Instant::now();
        let seconds = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        seconds
    }
}
