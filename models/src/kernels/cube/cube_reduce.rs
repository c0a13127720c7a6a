//! Reductions across the units of one cube through shared memory: a tree of halving strides,
//! after which every unit reads the result. The cube's unit count must be a power of two.

use cubecl::prelude::*;

/// `value` of every unit combined (sum, or minimum with `take_min`); every unit gets it.
/// `shared` holds one slot per unit and is free again on return.
#[cube]
pub fn reduce_over_cube<F: Float>(
    shared: &mut SharedMemory<F>,
    value: F,
    #[comptime] take_min: bool,
) -> F {
    let tid = UNIT_POS_X as usize;
    shared[tid] = value;
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if tid < stride {
            if take_min {
                shared[tid] = shared[tid].min(shared[tid + stride]);
            } else {
                shared[tid] = shared[tid] + shared[tid + stride];
            }
        }
        sync_cube();
        stride /= 2;
    }
    let result = shared[0];
    sync_cube();
    result
}
