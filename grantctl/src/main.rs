//! grantctl (stub; being written).
fn main() {
    eprintln!("grantctl: not implemented yet");
    std::process::exit(2);
}
