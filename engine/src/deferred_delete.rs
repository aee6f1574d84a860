//! Deletes files and directories off the core threads.
//!
//! Unlinking the last name of a large file makes ext4 free its extents in
//! the calling thread: `perf trace` on the development VM showed `unlink` of
//! a 32 MiB segment taking 10 ms on a core thread, during which that core
//! served no request (a produce with one 1 MB batch in flight waited for it).
//! So a core only renames what it deletes (a metadata update) and one
//! background thread unlinks it, as Kafka renames segments to `.deleted` and
//! removes them later.
//!
//! Invariants:
//! - A path is renamed to `<path>.deleted` before it is handed over, so a late
//!   unlink never removes a file or directory created since under the old name
//!   (a segment or partition of the same offset or name).
//! - Nothing is ever read from a `.deleted` name: partitions skip them when
//!   they open, and [`remove_leftovers`] hands a crash's leftovers back to the
//!   background thread.
//! - If the rename or the thread fails, the caller's thread deletes the path
//!   itself, so nothing is left behind because of this module.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

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
        hand_over(Doomed {
            path: entry.path(),
            kind,
        });
    }
}

/// A name this module gave to something it deletes.
pub fn is_deleted_name(name: &str) -> bool {
    name.ends_with(DELETED_SUFFIX)
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
}

fn delete_later(path: &Path, kind: Kind) -> io::Result<()> {
    let mut renamed = path.as_os_str().to_owned();
    renamed.push(DELETED_SUFFIX);
    let renamed = PathBuf::from(renamed);
    match std::fs::rename(path, &renamed) {
        Ok(()) => {
            hand_over(Doomed { path: renamed, kind });
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

/// Queues `doomed` for the background thread, or removes it here if the
/// thread cannot be had.
fn hand_over(doomed: Doomed) {
    let unsent = match background_sender() {
        Some(sender) => match sender.lock() {
            Ok(sender) => sender.send(doomed).err().map(|mpsc::SendError(doomed)| doomed),
            Err(_) => Some(doomed),
        },
        None => Some(doomed),
    };
    if let Some(doomed) = unsent {
        remove_logging(&doomed);
    }
}

fn background_sender() -> Option<&'static Mutex<mpsc::Sender<Doomed>>> {
    static SENDER: OnceLock<Option<Mutex<mpsc::Sender<Doomed>>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (sender, receiver) = mpsc::channel::<Doomed>();
            let spawned = std::thread::Builder::new()
                .name("ringlog-delete".into())
                .spawn(move || {
                    for doomed in receiver {
                        remove_logging(&doomed);
                    }
                });
            match spawned {
                Ok(_) => Some(Mutex::new(sender)),
                Err(error) => {
                    tracing::warn!(%error, "no background delete thread; deleting on the core threads");
                    None
                }
            }
        })
        .as_ref()
}

fn remove_logging(doomed: &Doomed) {
    if let Err(error) = doomed.remove() {
        tracing::warn!(path = %doomed.path.display(), %error, "deleting failed");
    }
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
