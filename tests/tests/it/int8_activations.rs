//! Which product a weight kept in blocks gets on the CPU, by the activation format chosen
//! (`kernels::HostActivations`): the 8-bit kernel takes every row count, the f32 kernel up to
//! `MAX_FUSED_ROWS`, longer inputs then falling back to a dense product; the choice made for one
//! thread leaves the others alone.

use burn::tensor::{Tensor, TensorData};
use mars2_engine::device::Cpu;
use mars2_models::kernels::quantized::{fused_matmul, MAX_FUSED_ROWS};
use mars2_models::kernels::{
    host_activations, reference, with_host_activations, HostActivations, QuantizedMatrix,
};
use mars2_models::quantized::{QuantFormat, QuantizedBlocks};

const N: usize = 24;
const K: usize = 64;

fn weights() -> QuantizedBlocks {
    let values: Vec<f32> = (0..N * K)
        .map(|i| ((i * 2_654_435_761) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    QuantizedBlocks::quantize(QuantFormat::Q4_1, &values, N, K).unwrap()
}

/// `x` `[m, K]` and the fused product with `activations`, if a fused kernel took it.
fn product(
    w: &QuantizedMatrix<Cpu>,
    m: usize,
    activations: HostActivations,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let x: Vec<f32> = (0..m * K)
        .map(|i| ((i * 7919) % 13) as f32 / 6.5 - 1.0)
        .collect();
    let tensor =
        Tensor::<Cpu, 2>::from_data(TensorData::new(x.clone(), [m, K]), &Default::default());
    let y = with_host_activations(activations, || fused_matmul(&tensor, w));
    (x, y.map(|y| y.into_data().to_vec::<f32>().unwrap()))
}

#[test]
fn each_activation_format_takes_its_rows() {
    let blocks = weights();
    let w = QuantizedMatrix::<Cpu>::new(blocks.clone(), &Default::default());
    // 600 rows: a prompt chunk, through the 8-bit kernel's wide tiles and row blocks.
    let rows = [1, MAX_FUSED_ROWS + 1, 600];
    for m in rows {
        let (x, got) = product(&w, m, HostActivations::Int8);
        assert!(got.is_some(), "int8, {m} rows");
        if let Some(got) = got {
            // Within the activations' rounding: half a step of max|x|/127 per value.
            let want = reference::quantized_matmul(&x, m, &blocks);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 0.05, "{m} rows: {a} vs {b}");
            }
        }
        let (x, got) = product(&w, m, HostActivations::F32);
        assert_eq!(got.is_some(), m <= MAX_FUSED_ROWS, "f32, {m} rows");
        if let Some(got) = got {
            let want = reference::quantized_matmul(&x, m, &blocks);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{m} rows: {a} vs {b}");
            }
        }
    }
}

#[test]
fn a_thread_choice_ends_with_its_scope_and_stays_on_its_thread() {
    let before = host_activations();
    with_host_activations(HostActivations::Int8, || {
        assert_eq!(host_activations(), HostActivations::Int8);
        let elsewhere = std::thread::spawn(host_activations).join().unwrap();
        assert_eq!(
            elsewhere, before,
            "another thread keeps the process-wide choice"
        );
        with_host_activations(HostActivations::F32, || {
            assert_eq!(host_activations(), HostActivations::F32);
        });
        assert_eq!(host_activations(), HostActivations::Int8);
    });
    assert_eq!(host_activations(), before);
}
