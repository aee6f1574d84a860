//! One listening socket per core on the same address (SO_REUSEPORT): the kernel
//! spreads new connections over the cores, and each core serves its own.
//! With core listeners (`crate::nodes`) each core also listens on a port of
//! its own, which clients reach as that core's node.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::task::JoinHandle;

use crate::broker::Broker;
use crate::metrics;
use crate::net::connection;

const LISTEN_BACKLOG: i32 = 1024;

/// Binds `count` sockets to `address`. With port 0 the first one picks the
/// port and the others join it.
pub fn bind_reuseport(address: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut address = address;
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        let listener: std::net::TcpListener = socket.into();
        address = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Binds one listener per core on `ip`: core k on `first_port + k`, or on a
/// free port each when `first_port` is 0.
pub fn bind_core_listeners(ip: IpAddr, first_port: u16, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    (0..count)
        .map(|core| {
            let port = match first_port {
                0 => 0,
                first => u16::try_from(usize::from(first) + core)
                    .map_err(|_| std::io::Error::other(format!("core {core}'s port is past 65535")))?,
            };
            let address = SocketAddr::new(ip, port);
            let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.set_nonblocking(true)?;
            socket
                .bind(&address.into())
                .map_err(|error| std::io::Error::new(error.kind(), format!("core {core} on {address}: {error}")))?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok(socket.into())
        })
        .collect()
}

/// One counted connection under `max.connections`; released when dropped.
struct ConnectionSlot {
    broker: Arc<Broker>,
}

impl ConnectionSlot {
    fn take(broker: &Arc<Broker>) -> Option<Self> {
        use std::sync::atomic::Ordering;
        let previous = broker.connections.fetch_add(1, Ordering::Relaxed);
        if previous >= broker.config.max_connections {
            broker.connections.fetch_sub(1, Ordering::Relaxed);
            metrics::connection_refused();
            return None;
        }
        metrics::connection_opened();
        Some(Self { broker: broker.clone() })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        metrics::connection_closed();
        self.broker
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Accepts connections on this core until the returned task is aborted;
/// `own` is the core's own listener (its node's), not the shared one.
pub fn start_accepting(
    listener: std::net::TcpListener,
    broker: Arc<Broker>,
    core_id: usize,
    own: bool,
) -> std::io::Result<JoinHandle<()>> {
    let node_core = own.then_some(core_id);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio::task::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let Some(slot) = ConnectionSlot::take(&broker) else {
                        tracing::warn!(%peer, limit = broker.config.max_connections, "max.connections reached; closing");
                        drop(stream);
                        continue;
                    };
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
                    }
                    tokio::task::spawn_local(async move {
                        connection::serve(stream, peer, slot.broker.clone(), core_id, node_core).await;
                        drop(slot);
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(core = core_id, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}
