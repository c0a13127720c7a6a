//! `x·Wᵀ` with `W` kept in GGUF blocks while training on the CPU (autodiff over ndarray): the
//! frozen base of a learner with low-rank adapters stays in its file's 4–8-bit blocks. The
//! gradient flows to `x` (and through it to the adapters and everything before) and never to
//! `W`, and no f32 copy of `W` lives from the forward to the backward pass: each pass
//! dequantizes the rows it needs a chunk at a time, uses them and drops them. Autodiff through Burn's own ops
//! would keep every dequantized matrix in the graph until the backward pass, an f32 copy of
//! the whole base.
//!
//! The op is reached from generic code by checking the backend's tensor type at run time (as
//! the host kernels are), so the models stay generic over `Backend`.

use std::any::{Any, TypeId};
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

use super::quantized::MAX_FUSED_ROWS;
use super::skinny_quantized;
use crate::quantized::QuantizedBlocks;

type Host = NdArray<f32>;
type Learner = Autodiff<Host>;
type LearnerTensor = FloatTensor<Learner>;
type HostTensor = FloatTensor<Host>;

/// Whether `B` is the CPU training backend (autodiff over ndarray, f32).
pub fn is_cpu_learner<B: Backend>() -> bool {
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<LearnerTensor>()
}

/// `x` `[m, k]` times `blocksᵀ` (`blocks` `[n, k]`) with the gradient to `x` only; `None`
/// unless `B` is the CPU training backend.
pub fn quantized_linear<B: Backend>(
    x: &Tensor<B, 2>,
    blocks: &Arc<QuantizedBlocks>,
) -> Option<Tensor<B, 2>> {
    if !is_cpu_learner::<B>() {
        return None;
    }
    let x: LearnerTensor = cast(x.clone().into_primitive().tensor())?;
    let y = forward(x, blocks);
    Some(Tensor::from_primitive(TensorPrimitive::Float(cast(y)?)))
}

/// A value of one type as another that is the same type (checked at run time).
fn cast<From: 'static, To: 'static>(value: From) -> Option<To> {
    let boxed: Box<dyn Any> = Box::new(value);
    boxed.downcast::<To>().ok().map(|b| *b)
}

fn forward(x: LearnerTensor, blocks: &Arc<QuantizedBlocks>) -> LearnerTensor {
    let y = product(x.primitive.clone(), blocks);
    match ProductBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(Arc::clone(blocks), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// Values of `W` dequantized at a time: 16 MB, so that even an output head of 150k rows never
/// exists in f32 at once.
const CHUNK_VALUES: usize = 1 << 22;

/// `W`'s rows in chunks `(first row, rows as a dense [chunk, k] f32 tensor)`, each made for
/// one use.
fn dense_chunks(blocks: &QuantizedBlocks) -> impl Iterator<Item = (usize, Tensor<Host, 2>)> + '_ {
    let rows = (CHUNK_VALUES / blocks.cols.max(1)).max(1);
    (0..blocks.rows).step_by(rows).map(move |first| {
        let last = (first + rows).min(blocks.rows);
        let values = blocks.dequantize_rows(first..last);
        let chunk = TensorData::new(values, [last - first, blocks.cols]);
        (first, Tensor::from_data(chunk, &Default::default()))
    })
}

/// `x·Wᵀ` on the host: the skinny block kernel for a few rows, else one dense product.
fn product(x: HostTensor, blocks: &QuantizedBlocks) -> HostTensor {
    let x = Tensor::<Host, 2>::from_primitive(TensorPrimitive::Float(x));
    let [m, _] = x.dims();
    let y = if m <= MAX_FUSED_ROWS {
        let values = x.into_data().convert::<f32>();
        let values = values.as_slice::<f32>().unwrap_or(&[]);
        Tensor::from_data(
            TensorData::new(
                skinny_quantized::matmul(values, m, blocks),
                [m, blocks.rows],
            ),
            &Default::default(),
        )
    } else {
        let parts: Vec<Tensor<Host, 2>> = dense_chunks(blocks)
            .map(|(_, w)| x.clone().matmul(w.transpose()))
            .collect();
        Tensor::cat(parts, 1)
    };
    y.into_primitive().tensor()
}

/// The backward pass of `y = x·Wᵀ`: `∂x = ∂y·W`; `W`, frozen, gets nothing.
#[derive(Debug)]
struct ProductBackward;

impl Backward<Host, 1> for ProductBackward {
    type State = Arc<QuantizedBlocks>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x] = ops.parents;
        let grad = grads.consume::<Host>(&ops.node);
        if let Some(x) = x {
            let grad = Tensor::<Host, 2>::from_primitive(TensorPrimitive::Float(grad));
            let [m, _] = grad.dims();
            let grad_x = dense_chunks(&ops.state)
                .map(|(first, w)| {
                    let rows = w.dims()[0];
                    grad.clone().slice([0..m, first..first + rows]).matmul(w)
                })
                .reduce(|sum, part| sum + part)
                .unwrap_or_else(|| Tensor::zeros([m, ops.state.cols], &Default::default()));
            grads.register::<Host>(x.id, grad_x.into_primitive().tensor());
        }
    }
}
