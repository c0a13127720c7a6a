//! A registered group of peers on burn-collective: this process's devices, and the other
//! processes of a multi-node run through the coordinator that node 0 hosts. Every collective
//! call runs under a time limit: burn-collective waits for every peer without one, so a peer
//! that died would hang the others; here they fail with [`ParallelError::Timeout`].
//!
//! Across nodes, burn-collective 0.21.0 completes one all-reduce per registration: its node
//! sync (`global/node/sync.rs`) clears a copy of the list of synced nodes instead of the list,
//! so a second exchange waits forever. Each exchange between nodes is therefore a session of
//! its own (register, all-reduce, finish), and sessions alternate between two channels (two
//! coordinators on `port` and `port + 1`, two data ports likewise, served as backend `B` and
//! `Autodiff<B>`): a node cannot register for exchange k + 2 on a channel before every node
//! has finished exchange k there, because exchange k + 1 on the other channel needs them all.
//!
//! burn-collective keeps one server per backend type in the process, so one group at a time
//! may exist per process; a second waits for the first to be dropped.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_collective::{
    all_reduce, finish_collective, register, reset_collective, AllReduceStrategy, CollectiveConfig,
    CollectiveError, PeerId, ReduceOperation,
};

use super::error::ParallelError;
use super::settings::Parallel;

/// One group at a time per process (burn-collective's servers are per backend type).
static BUSY: Mutex<bool> = Mutex::new(false);
static FREED: Condvar = Condvar::new();

fn acquire() {
    let mut busy = BUSY.lock().unwrap_or_else(|e| e.into_inner());
    while *busy {
        busy = FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
    }
    *busy = true;
}

fn release() {
    *BUSY.lock().unwrap_or_else(|e| e.into_inner()) = false;
    FREED.notify_one();
}

/// The peers of one run, registered with burn-collective on backend `B`.
pub struct PeerGroup<B: Backend> {
    layout: Parallel,
    /// Across nodes, the settings of the two channels' sessions.
    channels: Option<[CollectiveConfig; 2]>,
    /// Exchanges done by each local peer (they all make the same sequence of them).
    exchanges: Vec<AtomicUsize>,
    devices: Vec<B::Device>,
    /// Set once a call failed or timed out: dropping then resets the collective server instead
    /// of waiting for peers that will not come.
    failed: AtomicBool,
    /// All-reduces local peer 0 made and the time it spent in them (waits included).
    exchanges_done: AtomicU64,
    exchange_nanos: AtomicU64,
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> PeerGroup<B> {
    /// Registers this process's peers, one per device of `devices` (in `layout`'s order), with
    /// the others of the run; node 0 of a multi-node run first starts the coordinator.
    pub fn start(layout: &Parallel, devices: Vec<B::Device>) -> Result<Self, ParallelError> {
        if devices.len() != layout.local_peers() {
            return Err(ParallelError::Settings(format!(
                "{} devices given for {} local peers",
                devices.len(),
                layout.local_peers()
            )));
        }
        let local = CollectiveConfig::default().with_num_devices(devices.len());
        let channels = match &layout.nodes {
            None => None,
            Some(nodes) => {
                let address = |host_port: &str, offset: u16| -> Result<_, ParallelError> {
                    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "0"));
                    let port = port.parse::<u16>().unwrap_or(0).checked_add(offset);
                    let port = port.ok_or_else(|| {
                        ParallelError::Settings(format!("{host_port}: no port after it is free"))
                    })?;
                    let parsed = format!("ws://{host}:{port}").parse().map_err(|e| {
                        ParallelError::Settings(format!("address {host_port:?}: {e}"))
                    })?;
                    Ok((parsed, port))
                };
                let channel = |offset: u16| -> Result<CollectiveConfig, ParallelError> {
                    let (coordinator, coordinator_port) = address(&nodes.coordinator, offset)?;
                    if nodes.node_id == 0 {
                        start_coordinator(coordinator_port)?;
                    }
                    let (node, data_port) = address(&nodes.node_address, offset)?;
                    Ok(local
                        .clone()
                        .with_num_nodes(nodes.nodes)
                        .with_global_address(coordinator)
                        .with_node_address(node)
                        .with_data_service_port(data_port)
                        .with_global_all_reduce_strategy(AllReduceStrategy::Tree(2)))
                };
                Some([channel(0)?, channel(1)?])
            }
        };
        acquire();
        let group = PeerGroup {
            layout: layout.clone(),
            channels,
            exchanges: devices.iter().map(|_| AtomicUsize::new(0)).collect(),
            devices,
            failed: AtomicBool::new(false),
            exchanges_done: AtomicU64::new(0),
            exchange_nanos: AtomicU64::new(0),
            _backend: PhantomData,
        };
        // One process: register once for the whole run. Several: one first exchange, which
        // checks that every node is there.
        let results: Vec<Result<(), ParallelError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..group.devices.len())
                .map(|local_peer| {
                    let (group, config): (&PeerGroup<B>, _) = (&group, local.clone());
                    scope.spawn(move || {
                        let device: B::Device = group.devices[local_peer].clone();
                        if group.channels.is_some() {
                            let zero = Tensor::<B, 1>::zeros([1], &device);
                            return group.all_reduce_sum(local_peer, zero).map(|_| ());
                        }
                        let id = PeerId::from(group.peer(local_peer));
                        group.within(local_peer, "registering with the other peers", move || {
                            register::<B>(id, device, config)
                        })
                    })
                })
                .collect();
            group.join_peers(handles, "registering")
        });
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(group)
    }

    pub fn layout(&self) -> &Parallel {
        &self.layout
    }

    /// This process's devices, in peer order.
    pub fn devices(&self) -> &[B::Device] {
        &self.devices
    }

    /// Peers in the whole run.
    pub fn world(&self) -> usize {
        self.layout.world()
    }

    /// The run-wide index of local peer `local`: nodes in order, each node's devices in order.
    pub fn peer(&self, local: usize) -> usize {
        self.layout.node_id() * self.devices.len() + local
    }

    /// Joins one scoped thread per local peer, in peer order; a thread that panicked becomes
    /// an error naming its peer and what it was `doing`, and marks the group as broken.
    pub fn join_peers<T>(
        &self,
        handles: Vec<ScopedJoinHandle<'_, Result<T, ParallelError>>>,
        doing: &str,
    ) -> Vec<Result<T, ParallelError>> {
        handles
            .into_iter()
            .enumerate()
            .map(|(local, handle)| {
                handle.join().unwrap_or_else(|_| {
                    self.mark_failed();
                    Err(ParallelError::PeerStopped {
                        peer: self.peer(local),
                        message: format!("its thread panicked while {doing}"),
                    })
                })
            })
            .collect()
    }

    /// Marks the group as broken (a local peer stopped), so dropping it does not wait.
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    /// The sum of `tensor` over every peer of the run, as seen by local peer `local`. Every
    /// peer must call this the same number of times, with tensors of one shape. A count of
    /// the peers rides along with the data, so a sum that some peer missed is an error, not
    /// a silently smaller number.
    pub fn all_reduce_sum(
        &self,
        local: usize,
        tensor: Tensor<B, 1>,
    ) -> Result<Tensor<B, 1>, ParallelError> {
        let started = Instant::now();
        let id = PeerId::from(self.peer(local));
        let len = tensor.dims()[0];
        let device = tensor.device();
        let counted = Tensor::cat(vec![tensor, Tensor::ones([1], &device)], 0);
        let sum = match &self.channels {
            None => {
                let primitive = counted.into_primitive().tensor();
                self.within(local, "the gradient all-reduce", move || {
                    all_reduce::<B>(id, primitive, ReduceOperation::Sum)
                        .map(|p| Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(p)))
                })?
            }
            Some(channels) => {
                let exchange = self.exchanges[local].fetch_add(1, Ordering::SeqCst);
                let config = channels[exchange % 2].clone();
                let step = "an exchange with the other nodes";
                if exchange.is_multiple_of(2) {
                    let primitive = counted.into_primitive().tensor();
                    self.within(local, step, move || {
                        register::<B>(id, device, config)?;
                        let sum = all_reduce::<B>(id, primitive, ReduceOperation::Sum)?;
                        finish_collective::<B>(id)?;
                        Ok(Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(sum)))
                    })?
                } else {
                    let primitive = Tensor::<Autodiff<B>, 1>::from_inner(counted)
                        .into_primitive()
                        .tensor();
                    self.within(local, step, move || {
                        register::<Autodiff<B>>(id, device, config)?;
                        let sum = all_reduce::<Autodiff<B>>(id, primitive, ReduceOperation::Sum)?;
                        finish_collective::<Autodiff<B>>(id)?;
                        Ok(
                            Tensor::<Autodiff<B>, 1>::from_primitive(TensorPrimitive::Float(sum))
                                .inner(),
                        )
                    })?
                }
            }
        };
        let peers = sum
            .clone()
            .slice(len..len + 1)
            .into_data()
            .to_vec::<f32>()
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(0.0);
        if peers.round() as usize != self.world() {
            self.mark_failed();
            return Err(ParallelError::PeerStopped {
                peer: self.peer(local),
                message: format!(
                    "only {peers} of the run's {} peers took part in an all-reduce",
                    self.world()
                ),
            });
        }
        if local == 0 {
            self.exchanges_done.fetch_add(1, Ordering::Relaxed);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.exchange_nanos.fetch_add(nanos, Ordering::Relaxed);
        }
        Ok(sum.slice(0..len))
    }

    /// All-reduces made so far by local peer 0, and the time spent in them (waiting for the
    /// other peers included).
    pub fn exchange_time(&self) -> (u64, Duration) {
        (
            self.exchanges_done.load(Ordering::Relaxed),
            Duration::from_nanos(self.exchange_nanos.load(Ordering::Relaxed)),
        )
    }

    /// The sum over nodes of one vector per node: this node's local peers all take part, the
    /// first contributing `values`, the others zeros.
    fn sum_over_nodes(&self, values: Vec<f32>) -> Result<Vec<f32>, ParallelError> {
        let len = values.len();
        let results: Vec<Result<Vec<f32>, ParallelError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.devices.len())
                .map(|local| {
                    let data = if local == 0 {
                        values.clone()
                    } else {
                        vec![0.0; len]
                    };
                    scope.spawn(move || {
                        let device = &self.devices[local];
                        let t = Tensor::<B, 1>::from_data(TensorData::new(data, [len]), device);
                        let sum = self.all_reduce_sum(local, t)?;
                        sum.into_data().to_vec::<f32>().map_err(|e| {
                            ParallelError::Gathered(format!("reading a reduced tensor: {e:?}"))
                        })
                    })
                })
                .collect();
            self.join_peers(handles, "gathering")
        });
        let mut results = results.into_iter();
        let first = results.next().unwrap_or_else(|| Ok(Vec::new()));
        for other in results {
            other?;
        }
        first
    }

    /// Every node's `bytes`, in node order (all nodes call this together). A single-node
    /// group returns its own bytes. Bytes travel as exact small integers in an f32 sum over
    /// disjoint slots, an all-gather built on the all-reduce burn-collective provides.
    pub fn gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, ParallelError> {
        let nodes = self.layout.node_count();
        if nodes == 1 {
            return Ok(vec![bytes.to_vec()]);
        }
        let node = self.layout.node_id();
        // Lengths as two 16-bit halves, each exact in f32.
        let mut lengths = vec![0.0f32; 2 * nodes];
        let len = u32::try_from(bytes.len())
            .map_err(|_| ParallelError::Gathered(format!("{} bytes is too many", bytes.len())))?;
        lengths[2 * node] = (len >> 16) as f32;
        lengths[2 * node + 1] = (len & 0xffff) as f32;
        let lengths: Vec<usize> = self
            .sum_over_nodes(lengths)?
            .chunks(2)
            .map(|hl| ((hl[0] as usize) << 16) | hl[1] as usize)
            .collect();
        let offset: usize = lengths[..node].iter().sum();
        let total: usize = lengths.iter().sum();
        let mut payload = vec![0.0f32; total];
        for (slot, &b) in payload[offset..offset + bytes.len()].iter_mut().zip(bytes) {
            *slot = b as f32;
        }
        let payload = self.sum_over_nodes(payload)?;
        let mut out = Vec::with_capacity(nodes);
        let mut start = 0;
        for len in lengths {
            let part = &payload[start..start + len];
            if part
                .iter()
                .any(|&v| !(0.0..=255.0).contains(&v) || v.fract() != 0.0)
            {
                return Err(ParallelError::Gathered(
                    "two nodes wrote the same slot (do all nodes run the same config?)".into(),
                ));
            }
            out.push(part.iter().map(|&v| v as u8).collect());
            start += len;
        }
        Ok(out)
    }

    /// Runs a blocking collective call on a helper thread and waits at most the layout's
    /// timeout for it.
    fn within<T: Send + 'static>(
        &self,
        local: usize,
        step: &'static str,
        call: impl FnOnce() -> Result<T, CollectiveError> + Send + 'static,
    ) -> Result<T, ParallelError> {
        let peer = self.peer(local);
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name(format!("collective-{peer}"))
            .spawn(move || {
                let _ = tx.send(call());
            })
            .map_err(|e| ParallelError::Collective {
                peer,
                step,
                message: format!("no thread for the call: {e}"),
            })?;
        let timeout = self.layout.timeout();
        match rx.recv_timeout(timeout) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.mark_failed();
                Err(ParallelError::Collective {
                    peer,
                    step,
                    message: format!("{e:?}"),
                })
            }
            Err(RecvTimeoutError::Timeout) => {
                self.mark_failed();
                Err(ParallelError::Timeout {
                    peer,
                    step,
                    seconds: timeout.as_secs().max(1),
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.mark_failed();
                Err(ParallelError::Collective {
                    peer,
                    step,
                    message: "the collective call panicked".into(),
                })
            }
        }
    }
}

impl<B: Backend> Drop for PeerGroup<B> {
    fn drop(&mut self) {
        // burn-collective's server may have stopped after a lost node; resetting it then
        // panics, which must not escape a destructor.
        let reset = || {
            let _ = std::panic::catch_unwind(reset_collective::<B>);
            if self.channels.is_some() {
                let _ = std::panic::catch_unwind(reset_collective::<Autodiff<B>>);
            }
        };
        // Between nodes every exchange finished its own session; one process's peers finish
        // the registration of the run.
        if self.channels.is_none() && !self.failed.load(Ordering::SeqCst) {
            let finish_limit = Duration::from_secs(30);
            std::thread::scope(|scope| {
                for local in 0..self.devices.len() {
                    let id = PeerId::from(self.peer(local));
                    scope.spawn(move || {
                        let (tx, rx) = channel();
                        let _ = std::thread::Builder::new().spawn(move || {
                            let _ = tx.send(finish_collective::<B>(id));
                        });
                        let _ = rx.recv_timeout(finish_limit);
                    });
                }
            });
        }
        reset();
        release();
    }
}

/// Starts burn-collective's coordinator on `port` in the background (once per port per
/// process); it serves until the process ends.
fn start_coordinator(port: u16) -> Result<(), ParallelError> {
    static STARTED: OnceLock<Mutex<Vec<u16>>> = OnceLock::new();
    let started = STARTED.get_or_init(|| Mutex::new(Vec::new()));
    let mut started = started.lock().unwrap_or_else(|e| e.into_inner());
    if started.contains(&port) {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| ParallelError::Settings(format!("starting the coordinator: {e}")))?;
    std::thread::Builder::new()
        .name(format!("coordinator-{port}"))
        .spawn(move || runtime.block_on(burn_collective::start_global_orchestrator(port)))
        .map_err(|e| ParallelError::Settings(format!("starting the coordinator: {e}")))?;
    started.push(port);
    Ok(())
}
