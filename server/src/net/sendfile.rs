//! Zero-copy from a segment file to a non-blocking socket (`log.read.mode`
//! sendfile, the default). io_uring has no sendfile op, so this waits for
//! writability through Tokio and calls sendfile(2); the bytes go from the
//! page cache to the socket.

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

/// The page cache's largest folio (a PMD on x86-64 and arm64 with 4 KiB
/// pages). The kernel drops only folios wholly inside the range asked.
const PAGE_CACHE_FOLIO_BYTES_MAX: u64 = 2 << 20;

/// Asks the kernel to drop the pages of `region` from the page cache, from
/// the folio boundary at or before its start to the one at or before its end
/// (so a folio shared with the next region goes with the next region; the
/// one before the start may go early, costing at worst a read from disk).
/// Pages a socket buffer still holds are skipped (not waited for), so this
/// never takes bytes from a response still on its way.
pub fn drop_from_page_cache(region: &FileRegion) {
    let start = region.position / PAGE_CACHE_FOLIO_BYTES_MAX * PAGE_CACHE_FOLIO_BYTES_MAX;
    let end = region.end() / PAGE_CACHE_FOLIO_BYTES_MAX * PAGE_CACHE_FOLIO_BYTES_MAX;
    if end <= start {
        return;
    }
    // SAFETY: the descriptor is open for the duration of the call.
    let result = unsafe {
        libc::posix_fadvise(
            region.file.as_raw_fd(),
            start as libc::off_t,
            (end - start) as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        )
    };
    if result != 0 {
        tracing::debug!(error = %io::Error::from_raw_os_error(result), "dropping sent pages from the page cache failed");
    }
}
