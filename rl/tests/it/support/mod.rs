//! Helpers shared by the test binaries of this crate.

use std::net::TcpListener;

/// Three loopback ports for a two-node run (the coordinator's and each node's), each free
/// along with the port after it: exchanges between nodes use `port` and `port + 1`.
pub fn free_ports() -> [u16; 3] {
    let mut ports: Vec<u16> = Vec::new();
    let mut held = Vec::new();
    while ports.len() < 3 {
        let first = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = first.local_addr().expect("its address").port();
        let clashes = ports.iter().any(|&p| p.abs_diff(port) <= 1);
        if port == u16::MAX || clashes {
            continue;
        }
        if let Ok(second) = TcpListener::bind(("127.0.0.1", port + 1)) {
            ports.push(port);
            held.push((first, second));
        }
    }
    [ports[0], ports[1], ports[2]]
}
