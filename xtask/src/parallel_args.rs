//! The flags that place a run's learners: this process's devices and, for a multi-node run,
//! the node count, this node's id and the addresses (else the `MARS2_*` environment
//! variables), shared by `train` and `bench train-step`.

use anyhow::Result;
use mars2_engine::DeviceList;
use mars2_rl::parallel::{NodeSettings, Parallel};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ParallelArgs {
    /// Data-parallel peers in this process, one learner replica per device, all of one kind
    /// (`cuda:0,cuda:1`; `cpu,cpu` for trying it on a CPU). The engine runs on the first.
    #[arg(long)]
    pub devices: Option<DeviceList>,
    /// Processes (machines) in a multi-node run [env: MARS2_NODES]; every node runs the same
    /// command and config, node 0 hosts the coordinator and writes the run directory.
    #[arg(long, requires_all = ["node_id", "coordinator", "node_address"])]
    pub nodes: Option<u32>,
    /// This process's node id, 0..nodes [env: MARS2_NODE_ID].
    #[arg(long)]
    pub node_id: Option<u32>,
    /// host:port of the coordinator, on node 0; it also uses the next port
    /// [env: MARS2_COORDINATOR].
    #[arg(long)]
    pub coordinator: Option<String>,
    /// host:port at which the other nodes reach this one; it also uses the next port
    /// [env: MARS2_NODE_ADDRESS].
    #[arg(long)]
    pub node_address: Option<String>,
    /// Seconds a peer waits for the others at an exchange before failing (default 1800): a
    /// peer that died makes the others stop with an error after this long.
    #[arg(long)]
    pub peer_timeout: Option<u64>,
}

impl ParallelArgs {
    /// The run's peers from the flags, else from `MARS2_*` environment variables.
    pub fn parallel(&self) -> Result<Parallel> {
        let nodes =
            match (
                self.nodes,
                self.node_id,
                &self.coordinator,
                &self.node_address,
            ) {
                (Some(nodes), Some(id), Some(coordinator), Some(address)) => Some(
                    NodeSettings::new(nodes, id, coordinator.clone(), address.clone())?,
                ),
                _ => NodeSettings::from_env()?,
            };
        Ok(Parallel {
            local_devices: self.devices.clone(),
            nodes,
            timeout: self.peer_timeout.map(std::time::Duration::from_secs),
        })
    }
}
