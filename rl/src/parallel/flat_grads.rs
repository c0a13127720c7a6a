//! An update's gradients as one flat tensor and back, so peers exchange them in a single
//! all-reduce. The layout is the module's parameter order restricted to the parameters that
//! train (`require_grad`), which every replica of a model shares; a parameter without a
//! gradient (a peer whose share of the batch was empty) contributes zeros.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

struct Flatten<'a, A: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    pieces: Vec<Tensor<A::InnerBackend, 1>>,
}

impl<A: AutodiffBackend> ModuleVisitor<A> for Flatten<'_, A> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let grad = self
            .grads
            .remove::<A::InnerBackend, D>(param.id)
            .unwrap_or_else(|| value.inner().zeros_like());
        let numel = grad.shape().num_elements();
        self.pieces.push(grad.reshape([numel]));
    }
}

struct Unflatten<'a, A: AutodiffBackend> {
    flat: &'a Tensor<A::InnerBackend, 1>,
    offset: usize,
    grads: GradientsParams,
}

impl<A: AutodiffBackend> ModuleVisitor<A> for Unflatten<'_, A> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let shape = value.shape();
        let numel = shape.num_elements();
        let piece: Tensor<A::InnerBackend, D> = self
            .flat
            .clone()
            .slice(self.offset..self.offset + numel)
            .reshape(shape);
        self.offset += numel;
        self.grads.register(param.id, piece);
    }
}

/// The trainable parameters' gradients of `module` in `grads`, concatenated in parameter
/// order (zeros where a parameter has none); `None` when nothing trains.
pub fn flatten<A: AutodiffBackend, M: Module<A>>(
    module: &M,
    mut grads: GradientsParams,
) -> Option<Tensor<A::InnerBackend, 1>> {
    let mut v = Flatten::<A> {
        grads: &mut grads,
        pieces: Vec::new(),
    };
    module.visit(&mut v);
    (!v.pieces.is_empty()).then(|| Tensor::cat(v.pieces, 0))
}

/// The inverse of [`flatten`] for the same module layout.
pub fn unflatten<A: AutodiffBackend, M: Module<A>>(
    module: &M,
    flat: &Tensor<A::InnerBackend, 1>,
) -> GradientsParams {
    let mut v = Unflatten::<A> {
        flat,
        offset: 0,
        grads: GradientsParams::new(),
    };
    module.visit(&mut v);
    v.grads
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Distribution;

    type A = Autodiff<burn::backend::NdArray<f32>>;

    #[derive(Module, Debug)]
    struct Two<B: burn::tensor::backend::Backend> {
        a: Linear<B>,
        frozen: Linear<B>,
    }

    #[test]
    fn round_trips_the_trainable_gradients_and_fills_missing_ones_with_zeros() {
        let device = Default::default();
        let model = Two::<A> {
            a: LinearConfig::new(3, 2).init(&device),
            frozen: LinearConfig::new(2, 2).init(&device).no_grad(),
        };
        let x = Tensor::<A, 2>::random([4, 3], Distribution::Default, &device);
        let loss = model
            .frozen
            .forward(model.a.forward(x))
            .powi_scalar(2)
            .sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let weight = grads
            .get::<burn::backend::NdArray<f32>, 2>(model.a.weight.id)
            .unwrap();
        let flat = flatten::<A, _>(&model, grads).unwrap();
        // a.weight (3×2) and a.bias (2); the frozen layer has no place.
        assert_eq!(flat.dims(), [8]);
        let back = unflatten::<A, _>(&model, &flat);
        let got = back
            .get::<burn::backend::NdArray<f32>, 2>(model.a.weight.id)
            .unwrap();
        assert_eq!(got.to_data(), weight.to_data());
        assert!(back
            .get::<burn::backend::NdArray<f32>, 2>(model.frozen.weight.id)
            .is_none());
        let zeros = flatten::<A, _>(&model, GradientsParams::new()).unwrap();
        assert_eq!(zeros.abs().sum().into_scalar(), 0.0);
    }
}
