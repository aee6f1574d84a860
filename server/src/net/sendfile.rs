//! Zero-copy from a segment file to a non-blocking socket. io_uring has no
//! sendfile op, so this waits for writability through Tokio and calls
//! sendfile(2) directly; the bytes go from the page cache to the socket.

use std::io;
use std::os::fd::AsRawFd;

use ringlog_engine::FileRegion;
use tokio::io::Interest;
use tokio::net::TcpStream;

pub async fn send_region(stream: &TcpStream, region: &FileRegion) -> io::Result<()> {
    let mut offset = region.position as libc::off_t;
    let end = offset + region.len as libc::off_t;
    let socket_fd = stream.as_raw_fd();
    let file_fd = region.file.as_raw_fd();
    while offset < end {
        stream.writable().await?;
        let remaining = (end - offset) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call and
            // `offset` is a valid pointer to an off_t.
            let sent = unsafe { libc::sendfile(socket_fd, file_fd, &mut offset, remaining) };
            if sent < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(sent as usize)
            }
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file shorter than the region sent",
                ));
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
