//! Where a run's learners live: this process's devices and, for a multi-node run, how the
//! processes find each other (node count, this node's id, the coordinator's address), from
//! flags or from `MARS2_*` environment variables as torchrun reads `WORLD_SIZE`/`RANK`.

use std::time::Duration;

use burn::tensor::backend::Backend;
use mars2_engine::{DeviceList, DeviceSpec};

use super::error::ParallelError;

/// How long a peer waits for the others at a collective step before giving up. A peer that
/// died never arrives; the survivors fail with a clear error after this long instead of hanging.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The learners' layout of one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parallel {
    /// This process's devices, one learner replica on each (`None`: the config's device). The
    /// engine runs on the first.
    pub local_devices: Option<DeviceList>,
    /// Several processes (nodes) joined through burn-collective's coordinator.
    pub nodes: Option<NodeSettings>,
    /// How long to wait for the other peers at a collective step (`None`: the default).
    pub timeout: Option<Duration>,
}

impl Parallel {
    /// Peers in this process.
    pub fn local_peers(&self) -> usize {
        self.local_devices.as_ref().map_or(1, DeviceList::len)
    }

    /// Processes in the run.
    pub fn node_count(&self) -> usize {
        self.nodes.as_ref().map_or(1, |n| n.nodes as usize)
    }

    /// Peers in the whole run.
    pub fn world(&self) -> usize {
        self.local_peers() * self.node_count()
    }

    /// Whether learners need to talk at all.
    pub fn is_distributed(&self) -> bool {
        self.world() > 1
    }

    /// The device `run_on` should start on: the first of this process's devices, else `default`.
    pub fn first_device(&self, default: DeviceSpec) -> DeviceSpec {
        self.local_devices
            .as_ref()
            .map_or(default, DeviceList::first)
    }

    /// Backend `B`'s devices for this process's peers, given the one `run_on` made.
    pub fn devices_of<B: Backend>(&self, first: &B::Device) -> Vec<B::Device> {
        match &self.local_devices {
            Some(list) => list.devices_of::<B>(first),
            None => vec![first.clone()],
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_PEER_TIMEOUT)
    }

    /// This process's node id (0 when there is one process).
    pub fn node_id(&self) -> usize {
        self.nodes.as_ref().map_or(0, |n| n.node_id as usize)
    }

    /// Whether this process writes the run's files (node 0 does; the others compute the same
    /// things and keep quiet).
    pub fn writes_files(&self) -> bool {
        self.node_id() == 0
    }
}

/// One process of a multi-node run. Every node runs the same command with the same config;
/// node 0 also hosts the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// Processes in the run.
    pub nodes: u32,
    /// This process's place, `0..nodes`.
    pub node_id: u32,
    /// `host:port` of the coordinator (node 0 listens on `port` and `port + 1`).
    pub coordinator: String,
    /// `host:port` at which the other nodes reach this one for gradient exchange (`port` and
    /// `port + 1` are used).
    pub node_address: String,
}

/// The environment variables a launcher sets instead of flags.
pub const ENV_NODES: &str = "MARS2_NODES";
pub const ENV_NODE_ID: &str = "MARS2_NODE_ID";
pub const ENV_COORDINATOR: &str = "MARS2_COORDINATOR";
pub const ENV_NODE_ADDRESS: &str = "MARS2_NODE_ADDRESS";

impl NodeSettings {
    /// Checks the settings: a node id inside the run, addresses of the form `host:port`.
    pub fn new(
        nodes: u32,
        node_id: u32,
        coordinator: String,
        node_address: String,
    ) -> Result<Self, ParallelError> {
        if nodes < 1 {
            return Err(ParallelError::Settings(
                "the node count must be at least 1".into(),
            ));
        }
        if nodes > 1
            && [&coordinator, &node_address]
                .iter()
                .any(|a| a.ends_with(":65535"))
        {
            return Err(ParallelError::Settings(
                "ports 65535 cannot be used: each address also needs the port after it".into(),
            ));
        }
        if node_id >= nodes {
            return Err(ParallelError::Settings(format!(
                "node id {node_id} is outside a run of {nodes} nodes (ids are 0..{nodes})"
            )));
        }
        for (what, address) in [
            ("coordinator", &coordinator),
            ("node address", &node_address),
        ] {
            port_of(address).map_err(|e| ParallelError::Settings(format!("{what} {e}")))?;
        }
        Ok(NodeSettings {
            nodes,
            node_id,
            coordinator,
            node_address,
        })
    }

    /// The settings in `MARS2_NODES`, `MARS2_NODE_ID`, `MARS2_COORDINATOR` and
    /// `MARS2_NODE_ADDRESS`; `None` when `MARS2_NODES` is unset.
    pub fn from_env() -> Result<Option<Self>, ParallelError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(nodes) = var(ENV_NODES) else {
            return Ok(None);
        };
        let number = |name: &str, value: String| {
            value.trim().parse::<u32>().map_err(|_| {
                ParallelError::Settings(format!("{name}={value:?} is not a whole number"))
            })
        };
        let missing =
            |name: &str| ParallelError::Settings(format!("{ENV_NODES} is set but {name} is not"));
        let nodes = number(ENV_NODES, nodes)?;
        let node_id = number(
            ENV_NODE_ID,
            var(ENV_NODE_ID).ok_or_else(|| missing(ENV_NODE_ID))?,
        )?;
        let coordinator = var(ENV_COORDINATOR).ok_or_else(|| missing(ENV_COORDINATOR))?;
        let node_address = var(ENV_NODE_ADDRESS).ok_or_else(|| missing(ENV_NODE_ADDRESS))?;
        NodeSettings::new(nodes, node_id, coordinator, node_address).map(Some)
    }

    pub fn coordinator_port(&self) -> u16 {
        port_of(&self.coordinator).unwrap_or_default()
    }

    pub fn data_port(&self) -> u16 {
        port_of(&self.node_address).unwrap_or_default()
    }
}

/// The port of `host:port`.
fn port_of(address: &str) -> Result<u16, String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} is not of the form host:port"))?;
    if host.is_empty() {
        return Err(format!("{address:?} has no host"));
    }
    port.parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("{address:?} has no valid port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_peers_over_devices_and_nodes() {
        let single = Parallel::default();
        assert_eq!((single.world(), single.is_distributed()), (1, false));
        assert!(single.writes_files());
        let two = Parallel {
            local_devices: Some("cpu,cpu".parse().unwrap()),
            nodes: Some(NodeSettings::new(3, 2, "h:1".into(), "h:2".into()).unwrap()),
            timeout: None,
        };
        assert_eq!((two.world(), two.node_id()), (6, 2));
        assert!(!two.writes_files());
        assert_eq!(two.timeout(), DEFAULT_PEER_TIMEOUT);
    }

    #[test]
    fn refuses_bad_node_settings_by_name() {
        let err = NodeSettings::new(2, 2, "h:1".into(), "h:2".into()).unwrap_err();
        assert!(err.to_string().contains("node id 2"), "{err}");
        let err = NodeSettings::new(2, 0, "h".into(), "h:2".into()).unwrap_err();
        assert!(err.to_string().contains("coordinator"), "{err}");
        let err = NodeSettings::new(2, 0, "h:1".into(), "h:0".into()).unwrap_err();
        assert!(err.to_string().contains("node address"), "{err}");
        let ok = NodeSettings::new(2, 1, "10.0.0.1:7000".into(), "10.0.0.2:7001".into()).unwrap();
        assert_eq!((ok.coordinator_port(), ok.data_port()), (7000, 7001));
    }
}
