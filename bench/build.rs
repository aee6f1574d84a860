//! Records the git commit the benchmark was built from, for its JSON reports.
fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RINGLOG_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
}
