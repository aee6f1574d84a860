//! Records the git commit the benchmark was built from, for its JSON reports:
//! `HEAD`'s hash, with `-dirty` when tracked files differ from it.
fn main() {
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = std::process::Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--"])
        .status()
        .is_ok_and(|status| status.code() == Some(1));
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=RINGLOG_GIT_COMMIT={commit}{suffix}");
    // A commit moves the branch's ref, not HEAD (which names the branch), so
    // watch both, the packed refs, and the index (changed by commits and adds).
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let mut watched = vec!["HEAD".to_string(), "packed-refs".into(), "index".into()];
        watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
        for file in watched {
            println!("cargo:rerun-if-changed={git_dir}/{file}");
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
}
