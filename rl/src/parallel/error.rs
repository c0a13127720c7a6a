//! What can go wrong between peers, each error saying which step and which peer.

#[derive(Debug, thiserror::Error)]
pub enum ParallelError {
    #[error("parallel settings: {0}")]
    Settings(String),
    #[error(
        "peer {peer}: {step} did not complete within {seconds} s; another peer has probably \
         stopped (look for its error), or the nodes cannot reach each other"
    )]
    Timeout {
        peer: usize,
        step: &'static str,
        seconds: u64,
    },
    #[error("peer {peer}: {step} failed: {message}")]
    Collective {
        peer: usize,
        step: &'static str,
        message: String,
    },
    #[error("peer {peer}: {message}")]
    PeerStopped { peer: usize, message: String },
    #[error("data gathered from the other nodes is unreadable: {0}")]
    Gathered(String),
}
