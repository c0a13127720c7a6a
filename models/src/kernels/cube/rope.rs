//! Rotate-half RoPE as one kernel: a unit per pair `(i, i + d/2)` of one head vector, reading
//! that token's cos/sin row.

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::{calculate_cube_count_elemwise, prelude::*};

#[cube(launch)]
fn rope_kernel<F: Float>(
    x: &Tensor<F>,
    cos: &Tensor<F>,
    sin: &Tensor<F>,
    out: &mut Tensor<F>,
    #[define(F)] _dtype: StorageType,
) {
    let heads = x.shape(1);
    let tokens = x.shape(2);
    let d = x.shape(3);
    let half = d / 2;
    let pos = ABSOLUTE_POS;
    if pos >= x.len() / 2 {
        terminate!();
    }
    let i = pos % half;
    // Row of x: (b·heads + h)·tokens + t.
    let row = pos / half;
    let t = row % tokens;
    let b = row / (tokens * heads);
    let xo = row * d;
    let co = (b * tokens + t) * d;
    let x1 = f32::cast_from(x[xo + i]);
    let x2 = f32::cast_from(x[xo + i + half]);
    let (c1, s1) = (f32::cast_from(cos[co + i]), f32::cast_from(sin[co + i]));
    let (c2, s2) = (
        f32::cast_from(cos[co + i + half]),
        f32::cast_from(sin[co + i + half]),
    );
    out[xo + i] = F::cast_from(x1 * c1 - x2 * s1);
    out[xo + i + half] = F::cast_from(x2 * c2 + x1 * s2);
}

/// `x` `[b, h, t, d]`, `cos`/`sin` `[b, 1, t, d]`; `out` contiguous like `x`.
pub fn launch<R: CubeRuntime>(
    x: CubeTensor<R>,
    cos: CubeTensor<R>,
    sin: CubeTensor<R>,
    out: CubeTensor<R>,
) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let cos = into_contiguous(cos);
    let sin = into_contiguous(sin);
    let units = x.meta.num_elements() / 2;
    let client = x.client.clone();
    let dtype = x.dtype;
    if units > 0 {
        let cube_dim = CubeDim::new(&client, units);
        let cube_count = calculate_cube_count_elemwise(&client, units, cube_dim);
        rope_kernel::launch::<R>(
            &client,
            cube_count,
            cube_dim,
            x.into_tensor_arg(),
            cos.into_tensor_arg(),
            sin.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            dtype.into(),
        );
    }
    out
}
