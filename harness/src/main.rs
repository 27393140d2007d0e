//! `earshot`: the harness. CONTRACT (filled in by later work).
fn main() {
    println!("earshot {}", earshot_probe::VERSION);
}
