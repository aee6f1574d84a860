//! ringlog-bench: placeholder until the benchmark issue (#6) builds the load
//! generator. It says so instead of pretending to measure anything.

fn main() {
    eprintln!("ringlog-bench is not implemented yet (see issue 6); use kcat or rdkafka_performance meanwhile");
    std::process::exit(2);
}
