//! `earshot-probe`: command-line entry point. CONTRACT (filled in by later work).
fn main() {
    println!("earshot-probe {}", earshot_probe::VERSION);
}
