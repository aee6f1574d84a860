//! File-system work off the core threads: deleting, and the files a roll
//! leaves behind (a sealed segment's truncation and indexes, producer
//! snapshots).
//!
//! On the development VM's ext4 every metadata update a core made blocked it
//! for about a millisecond when the disk was busy, and unlinking a 32 MiB
//! segment for 10-15 ms (`perf trace`): a roll created, renamed or truncated
//! some nine files, 5-10 ms during which that core served no request. So a
//! core hands such work to one background thread (`ringlog-fs`), which runs
//! it in the order it was handed over, as Seastar's syscall thread does for
//! Redpanda. Deleting is a rename to `<path>.deleted` now and an unlink
//! there, as Kafka renames segments to `.deleted`.
//!
//! Invariants:
//! - Jobs run one at a time, in submission order: a file a job writes is
//!   never removed by a job submitted before it, and the other way round.
//! - A path [`delete_file_later`] or [`delete_dir_later`] deletes is renamed
//!   before it is handed over, so a late unlink never removes a file or
//!   directory created since under the old name. (Segment files are removed
//!   by name in a [`submit`]ted job instead: their names never come back.)
//! - Jobs on a partition name its directory by a [`DirHandle`] (a descriptor),
//!   so a job that runs after the directory was deleted (renamed) never
//!   writes into a new partition of the same name.
//! - [`wait_for`] returns once no job submitted for a directory is pending;
//!   a partition waits so before it reads its files again, and a clean
//!   shutdown waits for all before its marker says the files can be trusted.
//! - If the thread cannot be had, the caller's thread does the work itself.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Appended to a name that waits for the background thread.
pub const DELETED_SUFFIX: &str = ".deleted";

/// Renames the file at `path` out of the way now and unlinks it later. A
/// missing file is not an error.
pub fn delete_file_later(path: &Path) -> io::Result<()> {
    delete_later(path, Kind::File)
}

/// Renames the directory at `path` out of the way now and removes it, with
/// everything in it, later. A missing directory is not an error.
pub fn delete_dir_later(path: &Path) -> io::Result<()> {
    delete_later(path, Kind::Dir)
}

/// Hands every `*.deleted` entry of `dir` (left by a crash before the
/// background thread got to it) to the background thread.
pub fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !is_deleted_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let kind = match entry.file_type() {
            Ok(file_type) if file_type.is_dir() => Kind::Dir,
            Ok(_) => Kind::File,
            Err(_) => continue,
        };
        let doomed = Doomed {
            path: entry.path(),
            kind,
        };
        run_in_background(Box::new(move || doomed.remove_logging()));
    }
}

/// A name this module gave to something it deletes.
pub fn is_deleted_name(name: &str) -> bool {
    name.ends_with(DELETED_SUFFIX)
}

/// Runs `job` on the background thread after every job submitted before it;
/// [`wait_for`] on `dir` waits for it.
pub fn submit(dir: &DirHandle, job: impl FnOnce() + Send + 'static) {
    let key = dir.path.clone();
    pending().add(&key);
    run_in_background(Box::new(move || {
        // Counted off even if the job panics, so that no waiter hangs.
        let _counted = CountedJob(key);
        job();
    }));
}

struct CountedJob(PathBuf);

impl Drop for CountedJob {
    fn drop(&mut self) {
        pending().remove(&self.0);
    }
}

/// Blocks until no job submitted for the directory at `path` is pending.
pub fn wait_for(path: &Path) {
    pending().wait_until(|counts| !counts.contains_key(path));
}

/// Blocks until no job submitted for any directory is pending (deletions
/// may still be running: what they remove is never read again).
pub fn wait_for_all() {
    pending().wait_until(HashMap::is_empty);
}

/// A directory's descriptor, for jobs that must act on that directory even
/// if it is renamed meanwhile.
#[derive(Clone)]
pub struct DirHandle {
    fd: Arc<OwnedFd>,
    /// Where it was when opened: the key of [`wait_for`], and for messages.
    path: PathBuf,
}

impl DirHandle {
    pub fn open(path: &Path) -> io::Result<Self> {
        let c_path = c_string(path.as_os_str().as_bytes())?;
        // SAFETY: a valid C string; the descriptor returned is owned below.
        let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` was just opened and nothing else owns it.
            fd: Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path that names this directory for as long as the handle lives,
    /// even after the directory was renamed (its partition deleted) and
    /// another took its name: for path-based work off the core.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.raw()))
    }

    /// Writes `contents` to `name` through a temporary file and a rename,
    /// without fsyncs (for files derived again when missing).
    pub fn write_file_lazily(&self, name: &str, contents: &[u8]) -> io::Result<()> {
        let temp_name = format!("{name}.tmp");
        let mut file = self.open_file(&temp_name, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
        file.write_all(contents)?;
        drop(file);
        let (from, to) = (c_string(temp_name.as_bytes())?, c_string(name.as_bytes())?);
        // SAFETY: valid C strings and a directory descriptor we hold.
        let renamed = unsafe { libc::renameat(self.raw(), from.as_ptr(), self.raw(), to.as_ptr()) };
        check(renamed)
    }

    /// Sets the length of the file `name`.
    pub fn truncate(&self, name: &str, length_bytes: u64) -> io::Result<()> {
        self.open_file(name, libc::O_WRONLY)?.set_len(length_bytes)
    }

    /// Unlinks the file `name`; a missing file is not an error.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        let c_name = c_string(name.as_bytes())?;
        // SAFETY: a valid C string and a directory descriptor we hold.
        match check(unsafe { libc::unlinkat(self.raw(), c_name.as_ptr(), 0) }) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn open_file(&self, name: &str, flags: libc::c_int) -> io::Result<std::fs::File> {
        let c_name = c_string(name.as_bytes())?;
        // SAFETY: a valid C string and a directory descriptor we hold; the
        // descriptor returned is owned below.
        let fd = unsafe { libc::openat(self.raw(), c_name.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
        check(fd)?;
        // SAFETY: `fd` was just opened and nothing else owns it.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }

    fn raw(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Jobs submitted per directory and not yet run.
struct Pending {
    counts: Mutex<HashMap<PathBuf, usize>>,
    changed: Condvar,
}

fn pending() -> &'static Pending {
    static PENDING: OnceLock<Pending> = OnceLock::new();
    PENDING.get_or_init(|| Pending {
        counts: Mutex::new(HashMap::new()),
        changed: Condvar::new(),
    })
}

impl Pending {
    fn add(&self, dir: &Path) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.entry(dir.to_path_buf()).or_insert(0) += 1;
    }

    fn remove(&self, dir: &Path) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(dir) {
            *count -= 1;
            if *count == 0 {
                counts.remove(dir);
            }
        }
        self.changed.notify_all();
    }

    fn wait_until(&self, done: impl Fn(&HashMap<PathBuf, usize>) -> bool) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while !done(&counts) {
            counts = self
                .changed
                .wait(counts)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    File,
    Dir,
}

struct Doomed {
    path: PathBuf,
    kind: Kind,
}

impl Doomed {
    fn remove(&self) -> io::Result<()> {
        let removed = match self.kind {
            Kind::File => std::fs::remove_file(&self.path),
            Kind::Dir => std::fs::remove_dir_all(&self.path),
        };
        match removed {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn remove_logging(&self) {
        if let Err(error) = self.remove() {
            tracing::warn!(path = %self.path.display(), %error, "deleting failed");
        }
    }
}

fn delete_later(path: &Path, kind: Kind) -> io::Result<()> {
    let mut renamed = path.as_os_str().to_owned();
    renamed.push(DELETED_SUFFIX);
    let renamed = PathBuf::from(renamed);
    match std::fs::rename(path, &renamed) {
        Ok(()) => {
            let doomed = Doomed { path: renamed, kind };
            run_in_background(Box::new(move || doomed.remove_logging()));
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        // A directory of that name waiting already (deleted, recreated and
        // deleted again before the thread got to the first): no room to
        // rename, so delete here.
        Err(_) => Doomed {
            path: path.to_path_buf(),
            kind,
        }
        .remove(),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Queues `job` for the background thread, or runs it here if the thread
/// cannot be had.
fn run_in_background(job: Job) {
    let unsent = match background_sender() {
        Some(sender) => match sender.lock() {
            Ok(sender) => sender.send(job).err().map(|mpsc::SendError(job)| job),
            Err(_) => Some(job),
        },
        None => Some(job),
    };
    if let Some(job) = unsent {
        job();
    }
}

fn background_sender() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    static SENDER: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (sender, receiver) = mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new().name("ringlog-fs".into()).spawn(move || {
                for job in receiver {
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                        tracing::error!("a background file job panicked");
                    }
                }
            });
            match spawned {
                Ok(_) => Some(Mutex::new(sender)),
                Err(error) => {
                    tracing::warn!(%error, "no background file thread; the core threads do its work");
                    None
                }
            }
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_until_gone(path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while path.exists() {
            assert!(Instant::now() < deadline, "{} was never deleted", path.display());
            std::thread::yield_now();
        }
    }

    fn deleted_name(path: &Path) -> PathBuf {
        PathBuf::from(format!("{}{DELETED_SUFFIX}", path.display()))
    }

    #[test]
    fn a_file_is_gone_from_its_name_at_once_and_from_disk_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.log");
        std::fs::write(&path, b"old segment").expect("write");
        delete_file_later(&path).expect("delete");
        assert!(!path.exists());
        // The name is free at once: a new file there outlives the late unlink.
        std::fs::write(&path, b"new segment").expect("write");
        wait_until_gone(&deleted_name(&path));
        assert_eq!(std::fs::read(&path).expect("read"), b"new segment");
    }

    #[test]
    fn a_directory_goes_with_its_contents_and_missing_paths_are_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = dir.path().join("topic-0");
        std::fs::create_dir(&partition).expect("mkdir");
        std::fs::write(partition.join("00000000000000000000.log"), b"x").expect("write");
        delete_dir_later(&partition).expect("delete");
        assert!(!partition.exists());
        wait_until_gone(&deleted_name(&partition));
        delete_dir_later(&partition).expect("a missing directory is not an error");
        delete_file_later(&dir.path().join("absent")).expect("a missing file is not an error");
    }

    #[test]
    fn a_second_deletion_of_the_same_name_while_the_first_waits_still_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partition = dir.path().join("topic-0");
        // A leftover that no thread was told about, as after a crash.
        let waiting = deleted_name(&partition);
        std::fs::create_dir_all(waiting.join("inside")).expect("mkdir");
        std::fs::create_dir(&partition).expect("mkdir");
        std::fs::write(partition.join("file"), b"x").expect("write");
        delete_dir_later(&partition).expect("delete");
        assert!(!partition.exists());
        remove_leftovers(dir.path());
        wait_until_gone(&waiting);
    }

    #[test]
    fn jobs_run_in_order_and_waiting_for_a_directory_waits_for_its_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = DirHandle::open(dir.path()).expect("open dir");
        let (release, gate) = mpsc::channel::<()>();
        // The first job holds the thread until released: the second waits.
        submit(&handle, move || {
            let _ = gate.recv();
        });
        let second = handle.clone();
        submit(&handle, move || {
            second.write_file_lazily("0.index", b"second").expect("write");
        });
        assert!(!dir.path().join("0.index").exists(), "ran before the job ahead of it");
        release.send(()).expect("release");
        wait_for(dir.path());
        assert_eq!(std::fs::read(dir.path().join("0.index")).expect("read"), b"second");
        assert!(!dir.path().join("0.index.tmp").exists());
        submit(&handle, || panic!("a job that fails"));
        wait_for_all(); // returns although the job panicked
    }

    #[test]
    fn a_directory_handle_follows_its_directory_when_renamed() {
        let root = tempfile::tempdir().expect("tempdir");
        let partition = root.path().join("topic-0");
        std::fs::create_dir(&partition).expect("mkdir");
        std::fs::write(partition.join("0.log"), b"0123456789").expect("write");
        let handle = DirHandle::open(&partition).expect("open dir");
        let moved = root.path().join("topic-0.deleted");
        std::fs::rename(&partition, &moved).expect("rename");
        std::fs::create_dir(&partition).expect("a new partition of the same name");
        handle.write_file_lazily("0.index", b"old").expect("write");
        handle.truncate("0.log", 4).expect("truncate");
        handle.remove_file("absent").expect("a missing file is not an error");
        assert_eq!(std::fs::read(moved.join("0.index")).expect("read"), b"old");
        assert_eq!(std::fs::read(moved.join("0.log")).expect("read"), b"0123");
        assert_eq!(
            std::fs::read_dir(&partition).expect("list").count(),
            0,
            "the new one untouched"
        );
    }

    #[test]
    fn leftovers_of_a_crash_are_removed_and_live_files_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leftover = dir.path().join(format!("00000000000000000000.log{DELETED_SUFFIX}"));
        let live = dir.path().join("00000000000000000100.log");
        std::fs::write(&leftover, b"x").expect("write");
        std::fs::write(&live, b"y").expect("write");
        remove_leftovers(dir.path());
        wait_until_gone(&leftover);
        assert!(live.exists());
    }
}
