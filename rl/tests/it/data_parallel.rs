//! Data-parallel learners on burn-collective, on the CPU: two peers in one process and two
//! processes over loopback train as one peer does with the same global batch (within 1e-5:
//! the shares' gradients are summed in another order), a resumed run may change its peer
//! count, and a peer that stops makes the others fail within their time limit instead of
//! hanging.
//!
//! The two-process tests start this test binary again as the second node, running the
//! ignored test `second_node` with the settings in environment variables.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use mars2_models::{LoraConfig, ModelConfig, Transformer};
use mars2_rl::logprobs::response_logprobs_at;
use mars2_rl::parallel::{NodeSettings, Parallel, ParallelError, PeerGroup};
use mars2_rl::schedule::LrSchedule;
use mars2_rl::{AgentTrainer, LossConfig, StepMetrics, TrainSample, TrainerConfig};

use crate::support::free_ports;

type Cpu = NdArray<f32>;
type Train = Autodiff<Cpu>;

const TOLERANCE: f64 = 1e-5;

fn config() -> ModelConfig {
    ModelConfig {
        intermediate_size: 12,
        max_position_embeddings: 32,
        ..ModelConfig::tiny_llama(12, 8, 1)
    }
}

fn samples(count: usize) -> Vec<TrainSample> {
    (0..count)
        .map(|i| TrainSample {
            prompt: vec![1, 2, 3 + i as u32 % 4],
            response: vec![4 + i as u32 % 5, 9, 3 + i as u32 % 3],
            rollout_logprobs: vec![-2.4, -2.5, -2.3],
            advantage: if i % 2 == 0 { 1.0 } else { -0.5 },
            reward: (i % 2 == 0) as u8 as f64,
            weights_version: 0,
        })
        .collect()
}

fn trainer(batch: usize, adapters: bool) -> AgentTrainer<Train> {
    let mut model = Transformer::<Train>::random(&config(), &Default::default());
    if adapters {
        model = model.with_adapters(&LoraConfig {
            rank: 2,
            ..LoraConfig::default()
        });
    }
    AgentTrainer::new(
        model,
        TrainerConfig {
            schedule: LrSchedule {
                peak: 0.01,
                warmup_fraction: 0.0,
                total_steps: 4,
                floor_fraction: 0.1,
            },
            train_batch: batch,
            grad_clip: 1.0,
            loss: LossConfig {
                kl_beta: 0.05,
                ..LossConfig::default()
            },
            temperature: 1.0,
        },
        Default::default(),
    )
}

fn layout(devices: &str, nodes: Option<NodeSettings>, timeout: Duration) -> Parallel {
    Parallel {
        local_devices: Some(devices.parse().unwrap()),
        nodes,
        timeout: Some(timeout),
    }
}

fn peered(batch: usize, adapters: bool, layout: &Parallel) -> AgentTrainer<Train> {
    peered_with_group(batch, adapters, layout).0
}

fn peered_with_group(
    batch: usize,
    adapters: bool,
    layout: &Parallel,
) -> (AgentTrainer<Train>, Arc<PeerGroup<Cpu>>) {
    let devices = vec![Default::default(); layout.local_peers()];
    let group = Arc::new(PeerGroup::<Cpu>::start(layout, devices).expect("peers register"));
    (trainer(batch, adapters).with_peers(group.clone()), group)
}

/// Runs `steps` updates and returns their metrics.
fn run(trainer: &mut AgentTrainer<Train>, steps: usize) -> Vec<StepMetrics> {
    let batch = trainer.config.train_batch;
    trainer.push(samples(batch * steps));
    (0..steps)
        .map(|_| trainer.train_step().expect("peers agree").expect("a batch"))
        .collect()
}

/// What the trained weights say about a fixed response: the model's fingerprint.
fn fingerprint(trainer: &AgentTrainer<Train>) -> Vec<f32> {
    let model = trainer.model().expect("a model").valid();
    let logp: Tensor<Cpu, 1> =
        response_logprobs_at(&model, &[2, 5, 7], &[1, 8, 3, 10], 1.0, &Default::default());
    logp.to_data().to_vec::<f32>().unwrap()
}

fn assert_close(what: &str, a: f64, b: f64) {
    assert!(
        (a - b).abs() <= TOLERANCE * (1.0 + a.abs().max(b.abs())),
        "{what}: {a} against {b}"
    );
}

fn assert_same_training(got: &[StepMetrics], want: &[StepMetrics]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.step, g.samples, g.tokens, g.vetoed),
            (w.step, w.samples, w.tokens, w.vetoed)
        );
        for (what, a, b) in [
            ("loss", g.loss, w.loss),
            ("kl", g.kl, w.kl),
            ("ratio", g.ratio, w.ratio),
            ("clipped", g.clipped, w.clipped),
            ("grad norm", g.grad_norm, w.grad_norm),
            ("lr", g.lr, w.lr),
            ("mean reward", g.mean_reward, w.mean_reward),
        ] {
            assert_close(&format!("step {} {what}", g.step), a, b);
        }
        assert!(g.grad_norm > 0.0, "step {} learned nothing", g.step);
    }
}

fn assert_same_weights(got: &[f32], want: &[f32]) {
    for (a, b) in got.iter().zip(want) {
        assert_close("log-prob under the trained weights", *a as f64, *b as f64);
    }
}

#[test]
fn two_peers_in_one_process_train_as_one_peer() {
    for adapters in [false, true] {
        let mut single = trainer(4, adapters);
        let want = run(&mut single, 3);
        let mut two = peered(
            4,
            adapters,
            &layout("cpu,cpu", None, Duration::from_secs(120)),
        );
        let got = run(&mut two, 3);
        assert_same_training(&got, &want);
        assert_same_weights(&fingerprint(&two), &fingerprint(&single));
    }
}

#[test]
fn uneven_and_empty_shares_still_sum_to_the_batch() {
    // Three samples over two peers (2 + 1), and one sample over two (1 + 0).
    for batch in [3, 1] {
        let mut single = trainer(batch, true);
        let want = run(&mut single, 2);
        let mut two = peered(
            batch,
            true,
            &layout("cpu,cpu", None, Duration::from_secs(120)),
        );
        let got = run(&mut two, 2);
        assert_same_training(&got, &want);
        assert_same_weights(&fingerprint(&two), &fingerprint(&single));
    }
}

#[test]
fn a_checkpoint_of_two_peers_resumes_on_one() {
    use mars2_rl::checkpoint::{load_checkpoint, save_checkpoint, ExportInfo};
    let mut single = trainer(4, true);
    let want = run(&mut single, 3);

    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("agent");
    let mut two = peered(4, true, &layout("cpu,cpu", None, Duration::from_secs(120)));
    two.push(samples(12));
    let first = two.train_step().unwrap().unwrap();
    let cfg = config();
    let export = ExportInfo {
        config: &cfg,
        tokenizer: None,
        template: None,
    };
    save_checkpoint(&ckpt, &two, &export, serde_json::json!({"round": 0})).unwrap();
    drop(two);

    let mut one = trainer(4, true);
    load_checkpoint(&ckpt, &mut one, &Default::default()).unwrap();
    let rest: Vec<StepMetrics> = (0..2).map(|_| one.train_step().unwrap().unwrap()).collect();
    let got: Vec<StepMetrics> = std::iter::once(first).chain(rest).collect();
    assert_same_training(&got, &want);
    assert_same_weights(&fingerprint(&one), &fingerprint(&single));
}

#[test]
fn a_peer_that_never_arrives_fails_the_other_within_its_timeout() {
    let layout = layout("cpu,cpu", None, Duration::from_secs(2));
    let group = PeerGroup::<Cpu>::start(&layout, vec![Default::default(); 2]).unwrap();
    let started = Instant::now();
    // Local peer 1 never calls: peer 0 must give up, not hang.
    let err = group
        .all_reduce_sum(
            0,
            Tensor::<Cpu, 1>::from_floats([1.0, 2.0], &Default::default()),
        )
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(
        matches!(err, ParallelError::Timeout { peer: 0, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("did not complete within 2 s"),
        "{err}"
    );
    drop(group);
    // The collective server was reset: a new group works.
    let mut two = peered(2, true, &layout);
    assert_eq!(run(&mut two, 1).len(), 1);
}

const ENV_ROLE: &str = "MARS2_TEST_SECOND_NODE";

fn node_settings(ports: [u16; 3], node_id: u32) -> NodeSettings {
    NodeSettings::new(
        2,
        node_id,
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1 + node_id as usize]),
    )
    .unwrap()
}

/// Starts this test binary as a node of a two-node run; `role` tells it what to do.
fn spawn_node(ports: [u16; 3], role: &str, out: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "data_parallel::node_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(ENV_ROLE, role)
        .env(
            "MARS2_TEST_PORTS",
            format!("{},{},{}", ports[0], ports[1], ports[2]),
        )
        .env("MARS2_TEST_OUT", out)
        .spawn()
        .expect("the test binary starts again")
}

#[test]
#[ignore = "a node of the two-process tests, started by them"]
fn node_process() {
    let Ok(role) = std::env::var(ENV_ROLE) else {
        panic!("run by the two-process tests, with {ENV_ROLE} set");
    };
    let ports: Vec<u16> = std::env::var("MARS2_TEST_PORTS")
        .unwrap()
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let ports = [ports[0], ports[1], ports[2]];
    let out = std::path::PathBuf::from(std::env::var("MARS2_TEST_OUT").unwrap());
    if role == "die" {
        let layout = layout(
            "cpu",
            Some(node_settings(ports, 1)),
            Duration::from_secs(120),
        );
        let group = PeerGroup::<Cpu>::start(&layout, vec![Default::default()]).unwrap();
        std::mem::forget(group);
        std::process::exit(0);
    }
    if role == "survive" {
        // Node 0 of a run whose node 1 dies after registering: it must fail, not hang. (A
        // process of its own: burn-collective's server does not recover from a lost node.)
        let layout = layout("cpu", Some(node_settings(ports, 0)), Duration::from_secs(5));
        let group = PeerGroup::<Cpu>::start(&layout, vec![Default::default()]).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        let err = group
            .all_reduce_sum(0, Tensor::<Cpu, 1>::from_floats([1.0], &Default::default()))
            .unwrap_err();
        let seconds = started.elapsed().as_secs_f64();
        std::fs::write(out, format!("{seconds}\n{err}")).unwrap();
        std::mem::forget(group);
        std::process::exit(0);
    }
    let layout = layout(
        "cpu",
        Some(node_settings(ports, 1)),
        Duration::from_secs(120),
    );
    let (mut trainer, group) = peered_with_group(4, true, &layout);
    run(&mut trainer, 3);
    let gathered = group.gather_bytes(b"from node one").unwrap();
    let result = serde_json::json!({
        "fingerprint": fingerprint(&trainer),
        "gathered": gathered,
    });
    std::fs::write(out, result.to_string()).unwrap();
}

#[test]
fn two_processes_over_loopback_train_as_one_peer() {
    let mut single = trainer(4, true);
    let want = run(&mut single, 3);

    let ports = free_ports();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("node1.json");
    let mut child = spawn_node(ports, "train", &out);
    let layout = layout(
        "cpu",
        Some(node_settings(ports, 0)),
        Duration::from_secs(120),
    );
    let (mut node0, group) = peered_with_group(4, true, &layout);
    let got = run(&mut node0, 3);
    let gathered = group.gather_bytes(b"node 0").unwrap();
    assert!(child.wait().unwrap().success(), "node 1 failed");
    let both = vec![b"node 0".to_vec(), b"from node one".to_vec()];
    assert_eq!(gathered, both);
    assert_same_training(&got, &want);
    assert_same_weights(&fingerprint(&node0), &fingerprint(&single));
    // Both nodes hold the same weights, bit for bit.
    let node1: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let theirs: Vec<f32> = serde_json::from_value(node1["fingerprint"].clone()).unwrap();
    assert_eq!(theirs, fingerprint(&node0));
    let theirs: Vec<Vec<u8>> = serde_json::from_value(node1["gathered"].clone()).unwrap();
    assert_eq!(theirs, both);
}

#[test]
fn a_node_that_dies_fails_the_other_within_its_timeout() {
    let ports = free_ports();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("node0.txt");
    let mut survivor = spawn_node(ports, "survive", &report);
    let mut dying = spawn_node(ports, "die", &dir.path().join("unused"));
    let _ = dying.wait();
    let started = Instant::now();
    assert!(survivor.wait().unwrap().success(), "node 0 did not report");
    assert!(started.elapsed() < Duration::from_secs(60));
    let text = std::fs::read_to_string(&report).unwrap();
    let (seconds, err) = text.split_once('\n').unwrap();
    let seconds: f64 = seconds.parse().unwrap();
    assert!(seconds < 30.0, "failed after {seconds} s: {err}");
    assert!(err.contains("peer 0"), "{err}");
}
