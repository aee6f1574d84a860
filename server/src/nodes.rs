//! The brokers ("nodes") clients are told about, and which of them leads each
//! partition and coordinates each group.
//!
//! With core listeners (`core.listeners`), every core is a node of its own:
//! node `node.id + k` is core k's own listening port. A partition's leader
//! and a group's or transactional id's coordinator is the node of the core
//! that owns it, so a client, which sends each request to the leader or
//! coordinator, reaches the core that serves it and no request hops between
//! cores. Without them there is one node, the shared listener, and the core
//! that accepted a connection forwards work to the owners.
//!
//! Invariants: node ids are `node.id .. node.id + n` in core order; every
//! node a response names is in [`Nodes::all`]; with core listeners there is
//! one node per core.

/// One advertised broker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeAddress {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

#[derive(Debug, Clone)]
pub struct Nodes {
    /// One per core with core listeners; otherwise just the shared listener.
    nodes: Vec<NodeAddress>,
}

impl Nodes {
    /// One node: the listener every core shares.
    pub fn single(node_id: i32, host: &str, port: i32) -> Self {
        Self {
            nodes: vec![NodeAddress {
                node_id,
                host: host.to_string(),
                port,
            }],
        }
    }

    /// A node per core: core k at `core_ports[k]`, node id `first_node_id + k`.
    pub fn per_core(first_node_id: i32, host: &str, core_ports: &[i32]) -> Self {
        assert!(!core_ports.is_empty(), "at least one core");
        let nodes = core_ports
            .iter()
            .enumerate()
            .map(|(core, port)| NodeAddress {
                node_id: first_node_id + core as i32,
                host: host.to_string(),
                port: *port,
            })
            .collect();
        Self { nodes }
    }

    pub fn all(&self) -> &[NodeAddress] {
        &self.nodes
    }

    /// The node a client should use for work that `core` owns.
    pub fn of_core(&self, core: usize) -> &NodeAddress {
        // Without core listeners the one node serves every core's work.
        self.nodes.get(core).unwrap_or(&self.nodes[0])
    }

    /// The node that core 0 serves (the controller runs there).
    pub fn controller(&self) -> &NodeAddress {
        &self.nodes[0]
    }

    pub fn contains(&self, node_id: i32) -> bool {
        self.nodes.iter().any(|node| node.node_id == node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_core_is_a_node_of_its_own_numbered_from_the_node_id() {
        let nodes = Nodes::per_core(5, "h", &[9001, 9002]);
        assert_eq!(nodes.all().len(), 2);
        assert_eq!(
            nodes.of_core(1),
            &NodeAddress {
                node_id: 6,
                host: "h".into(),
                port: 9002
            }
        );
        assert_eq!(nodes.controller().node_id, 5);
        assert!(nodes.contains(5) && nodes.contains(6) && !nodes.contains(7));
    }

    #[test]
    fn without_core_listeners_the_one_node_serves_every_core() {
        let nodes = Nodes::single(0, "h", 9092);
        assert_eq!(nodes.of_core(0).port, 9092);
        assert_eq!(nodes.of_core(3).port, 9092);
    }
}
